//! What `vc describe` reads: a cluster's host objects, quota usage and admin kubeconfig.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};

use crate::engine::{self, LABEL_CLUSTER};

use super::{ClusterRecord, Host, HostError, ReadyEvent, control_plane_selector, pod_progress};

/// One host object of a virtual cluster and a word on its state, for `vc describe`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ObjectState {
    pub kind: &'static str,
    pub name: String,
    pub state: String,
}

/// Quota usage in the cluster's namespace: resource, used, hard.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuotaUsage {
    pub resource: String,
    pub used: String,
    pub hard: String,
}

impl Host {
    /// The host objects of a cluster with their state, the quota usage of its namespace, and
    /// its control-plane pods.
    pub async fn cluster_objects(
        &self,
        record: &ClusterRecord,
    ) -> Result<(Vec<ObjectState>, Vec<QuotaUsage>, Vec<Pod>), HostError> {
        let (ns, name) = (record.namespace.as_str(), record.host_name.as_str());
        let ours = ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}"));
        let engine_labels = ListParams::default().labels(&control_plane_selector(name));
        let client = &self.client;
        let fail = |what: &'static str| move |e| self.explain(what, e);
        let (sts, pods, services, claims, policies, quotas) = futures::try_join!(
            async {
                Api::<StatefulSet>::namespaced(client.clone(), ns)
                    .get_opt(name)
                    .await
                    .map_err(fail("reading the StatefulSet"))
            },
            async {
                Api::<Pod>::namespaced(client.clone(), ns)
                    .list(&engine_labels)
                    .await
                    .map_err(fail("listing pods"))
            },
            async {
                Api::<Service>::namespaced(client.clone(), ns)
                    .list(&ours)
                    .await
                    .map_err(fail("listing services"))
            },
            async {
                Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                    .list(&engine_labels)
                    .await
                    .map_err(fail("listing PVCs"))
            },
            async {
                Api::<NetworkPolicy>::namespaced(client.clone(), ns)
                    .list(&ours)
                    .await
                    .map_err(fail("listing NetworkPolicies"))
            },
            async {
                Api::<ResourceQuota>::namespaced(client.clone(), ns)
                    .list(&ours)
                    .await
                    .map_err(fail("listing ResourceQuotas"))
            },
        )?;
        let mut objects = Vec::new();
        if let Some(sts) = sts {
            let status = sts.status.unwrap_or_default();
            objects.push(ObjectState {
                kind: "StatefulSet",
                name: name.to_string(),
                state: format!(
                    "{}/{} ready",
                    status.ready_replicas.unwrap_or(0),
                    sts.spec.and_then(|s| s.replicas).unwrap_or(1)
                ),
            });
        }
        for pod in &pods.items {
            let mut state = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            for event in pod_progress(pod) {
                match event {
                    ReadyEvent::PodReady => state.push_str(", Ready"),
                    ReadyEvent::Unschedulable(m) => {
                        state.push_str(&format!(", unschedulable: {m}"))
                    }
                    ReadyEvent::Waiting { reason, .. } => state.push_str(&format!(", {reason}")),
                    ReadyEvent::Scheduled | ReadyEvent::Initialized => {}
                }
            }
            objects.push(ObjectState {
                kind: "Pod",
                name: pod.metadata.name.clone().unwrap_or_default(),
                state,
            });
        }
        for svc in services.items {
            let spec = svc.spec.unwrap_or_default();
            objects.push(ObjectState {
                kind: "Service",
                name: svc.metadata.name.unwrap_or_default(),
                state: spec.cluster_ip.unwrap_or_else(|| "-".into()),
            });
        }
        for claim in claims.items {
            objects.push(ObjectState {
                kind: "PersistentVolumeClaim",
                name: claim.metadata.name.unwrap_or_default(),
                state: claim.status.and_then(|s| s.phase).unwrap_or_else(|| "Pending".into()),
            });
        }
        for policy in policies.items {
            objects.push(ObjectState {
                kind: "NetworkPolicy",
                name: policy.metadata.name.unwrap_or_default(),
                state: "active".into(),
            });
        }
        let mut usage = Vec::new();
        for quota in quotas.items {
            let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
            let used = quota.status.and_then(|s| s.used).unwrap_or_default();
            objects.push(ObjectState {
                kind: "ResourceQuota",
                name: quota.metadata.name.unwrap_or_default(),
                state: format!("{} limits", hard.len()),
            });
            for (resource, limit) in hard {
                usage.push(QuotaUsage {
                    used: used.get(&resource).map_or_else(|| "0".into(), |q| q.0.clone()),
                    resource,
                    hard: limit.0,
                });
            }
        }
        Ok((objects, usage, pods.items))
    }
}

impl Host {
    /// The admin kubeconfig in the engine's certificate Secret `<name>-certs` (key
    /// `admin.conf`), if the engine has written it yet.
    pub async fn engine_admin_conf(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, HostError> {
        let secret_name = engine::certs_secret_name(name);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(&secret_name)
            .await
            .map_err(|e| self.explain(&format!("reading Secret {namespace}/{secret_name}"), e))?;
        Ok(secret
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(engine::CERTS_ADMIN_KEY))
            .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned()))
    }

    /// The engine's admin kubeconfig (Secret `vc-<name>`, key `config`), if it exists yet.
    pub async fn admin_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, HostError> {
        let secret_name = engine::kubeconfig_secret_name(name);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(&secret_name)
            .await
            .map_err(|e| self.explain(&format!("reading Secret {namespace}/{secret_name}"), e))?;
        let Some(secret) = secret else { return Ok(None) };
        let config =
            secret.data.as_ref().and_then(|d| d.get("config")).ok_or_else(|| HostError::Api {
                what: format!("Secret {namespace}/{secret_name}"),
                message: "it has no key \"config\"".into(),
            })?;
        Ok(Some(String::from_utf8_lossy(&config.0).into_owned()))
    }
}
