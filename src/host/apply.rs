//! Applying a rendered set of host objects with server-side apply.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};

use crate::engine::{FIELD_MANAGER, HostObject};

use super::{Host, HostError};

impl Host {
    /// Applies every object with server-side apply: the namespace first, the rest concurrently.
    /// `force` takes over fields another manager changed (re-applying with `--upsert`).
    pub async fn apply_all(&self, objects: &[HostObject], force: bool) -> Result<(), HostError> {
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = force;
        let (first, rest): (Vec<&HostObject>, Vec<&HostObject>) =
            objects.iter().partition(|o| matches!(o, HostObject::Namespace(_)));
        for object in first {
            self.apply_one(object, &params).await.map_err(|e| self.namespace_hint(e))?;
        }
        let results =
            futures::future::join_all(rest.into_iter().map(|o| self.apply_one(o, &params))).await;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
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
        api.patch(name, params, &Patch::Apply(&value))
            .await
            .map(|_| ())
            .map_err(|e| self.explain(&format!("applying {} {name:?}", resource.kind), e))
    }
}

/// The API resource and JSON body of a rendered object, for one generic apply path.
fn object_parts(object: &HostObject) -> (ApiResource, serde_json::Value) {
    let api_version = object.api_version();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, object.kind());
    (ApiResource::from_gvk(&gvk), object.to_json())
}
