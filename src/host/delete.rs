//! Deleting a virtual cluster's host objects and waiting until they are gone.

use futures::FutureExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams};
use serde::de::DeserializeOwned;

use crate::engine::{self, LABEL_CLUSTER};

use super::{ClusterRecord, Host, HostError, LABEL_SYNCED_BY, control_plane_selector};

/// The selectors of what a cluster leaves in a shared namespace: `vc`'s objects, the objects
/// the engine synced, and the control plane's volume claims.
fn selectors(name: &str) -> (String, String, String) {
    (
        format!("{LABEL_CLUSTER}={name}"),
        format!("{LABEL_SYNCED_BY}={name}"),
        control_plane_selector(name),
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
        let (ns, name) = (record.namespace.as_str(), record.name.as_str());
        if own_namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            return match api.delete(ns, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(self.explain(&format!("deleting namespace {ns}"), e)),
            };
        }
        // In a shared namespace, stop the control plane first and wait until its pod is gone:
        // a running syncer re-creates the host objects of its virtual cluster as they are
        // removed. Foreground propagation keeps the StatefulSet until its pods are gone.
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let uid = self.uid_of(&sets, name).await?;
        match sets.delete(name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(self.explain(&format!("deleting StatefulSet {ns}/{name}"), e)),
        }
        if let Some(uid) = uid {
            use kube::runtime::wait::{await_condition, conditions};
            await_condition(sets, name, conditions::is_deleted::<StatefulSet>(&uid))
                .await
                .map_err(|e| HostError::Api {
                    what: format!("waiting for the control plane {ns}/{name} to stop"),
                    message: e.to_string(),
                })?;
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod_name = format!("{name}-0");
        if let Some(uid) = self.uid_of(&pods, &pod_name).await? {
            use kube::runtime::wait::{await_condition, conditions};
            await_condition(pods, &pod_name, conditions::is_deleted::<Pod>(&uid)).await.map_err(
                |e| HostError::Api {
                    what: format!("waiting for pod {ns}/{pod_name} to go"),
                    message: e.to_string(),
                },
            )?;
        }
        let (ours, synced, claims) = selectors(name);
        let results = futures::future::join_all([
            self.delete_labelled::<Service>(ns, &ours).boxed_local(),
            self.delete_labelled::<Secret>(ns, &ours).boxed_local(),
            self.delete_labelled::<ServiceAccount>(ns, &ours).boxed_local(),
            self.delete_labelled::<Role>(ns, &ours).boxed_local(),
            self.delete_labelled::<RoleBinding>(ns, &ours).boxed_local(),
            self.delete_labelled::<NetworkPolicy>(ns, &ours).boxed_local(),
            self.delete_labelled::<ResourceQuota>(ns, &ours).boxed_local(),
            self.delete_labelled::<LimitRange>(ns, &ours).boxed_local(),
            self.delete_labelled::<PersistentVolumeClaim>(ns, &claims).boxed_local(),
            self.delete_labelled::<Pod>(ns, &synced).boxed_local(),
            self.delete_labelled::<Service>(ns, &synced).boxed_local(),
            self.delete_labelled::<Secret>(ns, &synced).boxed_local(),
            self.delete_labelled::<PersistentVolumeClaim>(ns, &synced).boxed_local(),
            self.delete_labelled::<ConfigMap>(ns, &synced).boxed_local(),
            self.delete_labelled::<ServiceAccount>(ns, &synced).boxed_local(),
            self.delete_named::<Secret>(ns, &engine::kubeconfig_secret_name(name)).boxed_local(),
        ])
        .await;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(())
    }

    /// What is left on the host of a cluster in a shared namespace, as "Kind/name".
    pub async fn leftovers(&self, namespace: &str, name: &str) -> Result<Vec<String>, HostError> {
        let (ours, synced, claims) = selectors(name);
        let listed = futures::future::try_join_all([
            self.names_labelled::<StatefulSet>(namespace, &ours).boxed_local(),
            self.names_labelled::<Service>(namespace, &ours).boxed_local(),
            self.names_labelled::<Secret>(namespace, &ours).boxed_local(),
            self.names_labelled::<ServiceAccount>(namespace, &ours).boxed_local(),
            self.names_labelled::<Role>(namespace, &ours).boxed_local(),
            self.names_labelled::<RoleBinding>(namespace, &ours).boxed_local(),
            self.names_labelled::<NetworkPolicy>(namespace, &ours).boxed_local(),
            self.names_labelled::<ResourceQuota>(namespace, &ours).boxed_local(),
            self.names_labelled::<LimitRange>(namespace, &ours).boxed_local(),
            self.names_labelled::<PersistentVolumeClaim>(namespace, &claims).boxed_local(),
            self.names_labelled::<Pod>(namespace, &synced).boxed_local(),
            self.names_labelled::<Service>(namespace, &synced).boxed_local(),
            self.names_labelled::<Secret>(namespace, &synced).boxed_local(),
            self.names_labelled::<PersistentVolumeClaim>(namespace, &synced).boxed_local(),
            self.names_labelled::<ConfigMap>(namespace, &synced).boxed_local(),
            self.names_labelled::<ServiceAccount>(namespace, &synced).boxed_local(),
        ])
        .await?;
        Ok(listed.into_iter().flatten().collect())
    }

    async fn names_labelled<K>(
        &self,
        namespace: &str,
        selector: &str,
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
        Ok(list
            .items
            .into_iter()
            .filter_map(|i| i.metadata.name)
            .map(|n| format!("{kind}/{n}"))
            .collect())
    }

    async fn delete_labelled<K>(&self, namespace: &str, selector: &str) -> Result<(), HostError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        self.delete_labelled_except::<K>(namespace, selector, &[]).await
    }

    /// Deletes the objects of kind `K` matching `selector`, but those named in `keep`.
    pub(super) async fn delete_labelled_except<K>(
        &self,
        namespace: &str,
        selector: &str,
        keep: &[&str],
    ) -> Result<(), HostError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let kind = K::kind(&());
        let list = match api.list_metadata(&ListParams::default().labels(selector)).await {
            Ok(list) => list,
            Err(e) => return Err(self.explain(&format!("listing {kind}s in {namespace}"), e)),
        };
        for item in list.items {
            let Some(name) = item.metadata.name else { continue };
            if keep.contains(&name.as_str()) {
                continue;
            }
            self.delete_named::<K>(namespace, &name).await?;
        }
        Ok(())
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
        use kube::runtime::wait::{await_condition, conditions};
        let (ns, name) = (record.namespace.as_str(), record.name.as_str());
        let gone = |what: String| {
            move |e: kube::runtime::wait::Error| HostError::Api {
                what: what.clone(),
                message: e.to_string(),
            }
        };
        if own_namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let Some(uid) = self.uid_of(&api, ns).await? else { return Ok(()) };
            await_condition(api, ns, conditions::is_deleted::<Namespace>(&uid))
                .await
                .map_err(gone(format!("waiting for namespace {ns} to go")))?;
            return Ok(());
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
