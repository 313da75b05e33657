//! Applying a rendered set of host objects with server-side apply.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};

use k8s_openapi::Resource as _;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};

use crate::engine::{FIELD_MANAGER, HostObject, LABEL_CLUSTER, LABEL_MANAGED_BY, MANAGED_BY};

use super::{Host, HostError};

/// The round an object is applied in. Every object of a round must succeed before the next
/// starts, so the control plane never runs without its guards (quota, limits, policies) or its
/// rights, and a RoleBinding is applied only once the Role it names exists (the API server
/// resolves it to check escalation).
fn round(object: &HostObject) -> usize {
    match object {
        HostObject::Namespace(_) => 0,
        HostObject::ServiceAccount(_)
        | HostObject::Role(_)
        | HostObject::Secret(_)
        | HostObject::Service(_)
        | HostObject::Ingress(_)
        | HostObject::NetworkPolicy(_)
        | HostObject::ResourceQuota(_)
        | HostObject::LimitRange(_) => 1,
        HostObject::RoleBinding(_) => 2,
        HostObject::StatefulSet(_) => 3,
    }
}

/// Number of apply rounds.
const ROUNDS: usize = 4;

impl Host {
    /// Applies every object with server-side apply, in rounds (see [`round`]), each round
    /// concurrent inside. `force` takes over fields another manager changed (re-applying with
    /// `--upsert`). Before the control plane, removes the isolation objects an earlier apply
    /// of the same cluster made and this set no longer has (an `--upsert --no-quota`).
    pub async fn apply_all(&self, objects: &[HostObject], force: bool) -> Result<(), HostError> {
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = force;
        for current in 0..ROUNDS {
            if current == ROUNDS - 1 {
                self.prune_isolation(objects).await?;
            }
            let batch = objects.iter().filter(|o| round(o) == current);
            let results =
                futures::future::join_all(batch.map(|o| self.apply_one(o, &params))).await;
            let failed: Vec<HostError> = results.into_iter().filter_map(Result::err).collect();
            if let Some(first) = failed.into_iter().next() {
                return Err(if current == 0 { self.namespace_hint(first) } else { first });
            }
        }
        Ok(())
    }

    /// Deletes the NetworkPolicies, ResourceQuotas, LimitRanges and Ingresses labelled for this
    /// cluster that are not in `objects` (an `--upsert` that no longer exposes an Ingress).
    async fn prune_isolation(&self, objects: &[HostObject]) -> Result<(), HostError> {
        let Some(control_plane) = objects.iter().find(|o| o.is_control_plane()) else {
            return Ok(());
        };
        let (name, namespace) =
            (control_plane.name(), control_plane.namespace().unwrap_or_default());
        let kept = |kind: &str| -> Vec<&str> {
            objects.iter().filter(|o| o.kind() == kind).map(HostObject::name).collect()
        };
        let selector = format!("{LABEL_CLUSTER}={name},{LABEL_MANAGED_BY}={MANAGED_BY}");
        let (policies, quotas, limits) =
            (kept(NetworkPolicy::KIND), kept(ResourceQuota::KIND), kept(LimitRange::KIND));
        let ingresses = kept(Ingress::KIND);
        futures::try_join!(
            self.sweep_labelled::<NetworkPolicy>(namespace, &selector, Some(&policies)),
            self.sweep_labelled::<ResourceQuota>(namespace, &selector, Some(&quotas)),
            self.sweep_labelled::<LimitRange>(namespace, &selector, Some(&limits)),
            self.sweep_labelled::<Ingress>(namespace, &selector, Some(&ingresses)),
        )?;
        Ok(())
    }

    fn namespace_hint(&self, err: HostError) -> HostError {
        match err {
            HostError::Forbidden { context, message, .. } => HostError::Forbidden {
                context,
                message,
                hint: "; vc creates a namespace for each cluster unless you pass an existing one with --namespace NS".to_string(),
            },
            other => other,
        }
    }

    async fn apply_one(&self, object: &HostObject, params: &PatchParams) -> Result<(), HostError> {
        let (resource, value) = object_parts(object);
        let (name, namespace) = (object.name(), object.namespace());
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        if object.engine_owned() {
            return self.create_unless_present(&api, object, value).await;
        }
        api.patch(name, params, &Patch::Apply(&value))
            .await
            .map(|_| ())
            .map_err(|e| self.explain(&format!("applying {} {name:?}", resource.kind), e))
    }

    /// Creates an object the engine owns once it exists; one already there (an earlier apply,
    /// or the engine's own, perhaps renewed) is kept as it is.
    async fn create_unless_present(
        &self,
        api: &Api<DynamicObject>,
        object: &HostObject,
        value: serde_json::Value,
    ) -> Result<(), HostError> {
        let what = format!("creating {} {:?}", object.kind(), object.name());
        let body: DynamicObject =
            serde_json::from_value(value).map_err(|e| HostError::Failed(format!("{what}: {e}")))?;
        let params =
            PostParams { field_manager: Some(FIELD_MANAGER.to_string()), ..Default::default() };
        match api.create(&params, &body).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(self.explain(&what, e)),
        }
    }
}

/// The API resource and JSON body of a rendered object, for one generic apply path.
fn object_parts(object: &HostObject) -> (ApiResource, serde_json::Value) {
    let api_version = object.api_version();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, object.kind());
    (ApiResource::from_gvk(&gvk), object.to_json())
}
