//! Deleting a virtual cluster's host objects and waiting until they are gone.

use futures::FutureExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams};
use serde::de::DeserializeOwned;

use crate::engine::{self, LABEL_CLUSTER};

use super::{ClusterRecord, Host, HostError, LABEL_SYNCED_BY, control_plane_selector};

/// Whether [`Host::labelled_objects`] only lists or also deletes.
#[derive(Clone, Copy)]
enum Sweep {
    List,
    Delete,
}

impl Sweep {
    /// What [`Host::sweep_labelled`] keeps: everything when only listing, nothing otherwise.
    fn keep(self) -> Option<&'static [&'static str]> {
        match self {
            Sweep::List => None,
            Sweep::Delete => Some(&[]),
        }
    }
}

/// The selectors of what a cluster leaves in a shared namespace: `vc`'s objects, the objects
/// the engine synced, the control plane's volume claims and the deployed etcd's.
fn selectors(name: &str) -> (String, String, String, String) {
    (
        format!("{LABEL_CLUSTER}={name}"),
        format!("{LABEL_SYNCED_BY}={name}"),
        control_plane_selector(name),
        format!("app={},release={name}", crate::engine::etcd::APP_ETCD),
    )
}

impl Host {
    /// Deletes everything `vc` created for a cluster: its namespace when `vc` created it,
    /// otherwise every object labelled for it (PVCs included) and the objects the engine synced.
    pub async fn delete_cluster(
        &self,
        record: &ClusterRecord,
        own_namespace: bool,
    ) -> Result<(), HostError> {
        self.start_delete(record, own_namespace).await.map(|_| ())
    }

    /// [`Host::delete_cluster`], telling whether this call started the deletion (false when
    /// another one was already under way or had finished: a racing `vc gc` or `vc delete`).
    pub async fn start_delete(
        &self,
        record: &ClusterRecord,
        own_namespace: bool,
    ) -> Result<bool, HostError> {
        let (ns, name) = (record.namespace.as_str(), record.host_name.as_str());
        if own_namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            return match api.delete(ns, &DeleteParams::background()).await {
                Ok(_) => Ok(true),
                // 409: the namespace is already finalizing (another delete got there first).
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
                Err(e) => Err(self.explain(&format!("deleting namespace {ns}"), e)),
            };
        }
        // In a shared namespace, stop the control plane first and wait until its pod is gone:
        // a running syncer re-creates the host objects of its virtual cluster as they are
        // removed. Foreground propagation keeps the StatefulSet until its pods are gone.
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let uid = self.uid_of(&sets, name).await?;
        let started = match sets.delete(name, &DeleteParams::foreground()).await {
            Ok(_) => !record.deleting,
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => return Err(self.explain(&format!("deleting StatefulSet {ns}/{name}"), e)),
        };
        if let Some(uid) = uid {
            self.wait_gone(sets, name, &uid, &format!("the control plane {ns}/{name}")).await?;
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod_name = format!("{name}-0");
        if let Some(uid) = self.uid_of(&pods, &pod_name).await? {
            self.wait_gone(pods, &pod_name, &uid, &format!("pod {ns}/{pod_name}")).await?;
        }
        self.labelled_objects(ns, name, Sweep::Delete).await?;
        self.delete_named::<Secret>(ns, &engine::kubeconfig_secret_name(name)).await?;
        Ok(started)
    }

    /// What is left on the host of a cluster in a shared namespace, as "Kind/name".
    pub async fn leftovers(&self, namespace: &str, name: &str) -> Result<Vec<String>, HostError> {
        self.labelled_objects(namespace, name, Sweep::List).await
    }

    /// Lists (and with [`Sweep::Delete`] deletes) every object labelled for cluster `name` in
    /// a shared namespace: `vc`'s objects, its control plane's claims and what the engine
    /// synced. Returns them as "Kind/name".
    async fn labelled_objects(
        &self,
        ns: &str,
        name: &str,
        sweep: Sweep,
    ) -> Result<Vec<String>, HostError> {
        let (ours, synced, claims, etcd_claims) = selectors(name);
        let found = futures::future::try_join_all([
            self.sweep_labelled::<StatefulSet>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<Service>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<Secret>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<ServiceAccount>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<Role>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<RoleBinding>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<NetworkPolicy>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<Ingress>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<ResourceQuota>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<LimitRange>(ns, &ours, sweep.keep()).boxed(),
            self.sweep_labelled::<PersistentVolumeClaim>(ns, &claims, sweep.keep()).boxed(),
            self.sweep_labelled::<PersistentVolumeClaim>(ns, &etcd_claims, sweep.keep()).boxed(),
            self.sweep_labelled::<Pod>(ns, &synced, sweep.keep()).boxed(),
            self.sweep_labelled::<Service>(ns, &synced, sweep.keep()).boxed(),
            self.sweep_labelled::<Secret>(ns, &synced, sweep.keep()).boxed(),
            self.sweep_labelled::<PersistentVolumeClaim>(ns, &synced, sweep.keep()).boxed(),
            self.sweep_labelled::<ConfigMap>(ns, &synced, sweep.keep()).boxed(),
            self.sweep_labelled::<ServiceAccount>(ns, &synced, sweep.keep()).boxed(),
        ])
        .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The objects of kind `K` matching `selector`, as "Kind/name"; with `delete` (the names
    /// to keep), also deletes the others.
    pub(super) async fn sweep_labelled<K>(
        &self,
        namespace: &str,
        selector: &str,
        delete: Option<&[&str]>,
    ) -> Result<Vec<String>, HostError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let kind = K::kind(&());
        let list = api
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .map_err(|e| self.explain(&format!("listing {kind}s in {namespace}"), e))?;
        let mut found = Vec::new();
        for name in list.items.into_iter().filter_map(|i| i.metadata.name) {
            if let Some(keep) = delete
                && !keep.contains(&name.as_str())
            {
                self.delete_named::<K>(namespace, &name).await?;
            }
            found.push(format!("{kind}/{name}"));
        }
        Ok(found)
    }

    async fn delete_named<K>(&self, namespace: &str, name: &str) -> Result<(), HostError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => {
                Err(self.explain(&format!("deleting {} {namespace}/{name}", K::kind(&())), e))
            }
        }
    }

    /// Waits until the object `name` with `uid` is gone; `what` names it in an error.
    async fn wait_gone<K>(
        &self,
        api: Api<K>,
        name: &str,
        uid: &str,
        what: &str,
    ) -> Result<(), HostError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        use kube::runtime::wait::{await_condition, conditions};
        await_condition(api, name, conditions::is_deleted::<K>(uid)).await.map(|_| ()).map_err(
            |e| HostError::Api {
                what: format!("waiting for {what} to go"),
                message: e.to_string(),
            },
        )
    }

    async fn uid_of<K>(&self, api: &Api<K>, name: &str) -> Result<Option<String>, HostError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        match api.get_metadata_opt(name).await {
            Ok(found) => Ok(found.and_then(|m| m.metadata.uid)),
            Err(e) => Err(self.explain(&format!("reading {name}"), e)),
        }
    }

    /// Waits until what `delete_cluster` removed is gone (the namespace, else everything
    /// labelled for the cluster). The caller bounds it with a timeout.
    pub async fn wait_deleted(
        &self,
        record: &ClusterRecord,
        own_namespace: bool,
    ) -> Result<(), HostError> {
        let (ns, name) = (record.namespace.as_str(), record.host_name.as_str());
        if own_namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let Some(uid) = self.uid_of(&api, ns).await? else { return Ok(()) };
            return self.wait_gone(api, ns, &uid, &format!("namespace {ns}")).await;
        }
        // Pods end after their grace period and claims once no pod uses them; nothing
        // labelled for the cluster may be left.
        loop {
            if self.leftovers(ns, name).await?.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}
