//! Server-side apply of loaded manifests through a client of the virtual API server: each
//! kind resolved once by discovery, CustomResourceDefinitions waited on until Established
//! before anything after them, the first failure named and returned.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};

use super::{Manifest, ProvisionError, ordered};

/// The field manager of everything vc applies.
const FIELD_MANAGER: &str = "vc";
/// How often an applied CustomResourceDefinition is looked at until it is Established.
const ESTABLISHED_POLL: Duration = Duration::from_millis(200);
/// How long a CustomResourceDefinition may take to become Established.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);
/// The namespace of a namespaced object that names none, as kubectl does.
const DEFAULT_NAMESPACE: &str = "default";

/// Applies the manifests in apply order; calls `on_applied` after each. Returns how many were
/// applied. The caller bounds it with its deadline.
pub async fn apply(
    client: &kube::Client,
    manifests: &[Manifest],
    mut on_applied: impl FnMut(&Manifest),
) -> Result<usize, ProvisionError> {
    let mut kinds: BTreeMap<(String, String), (ApiResource, ApiCapabilities)> = BTreeMap::new();
    let order = ordered(manifests);
    let mut pending_crds: Vec<&Manifest> = Vec::new();
    for manifest in &order {
        if !manifest.is_crd() && !pending_crds.is_empty() {
            for crd in pending_crds.drain(..) {
                wait_established(client, crd).await?;
            }
        }
        let key = (manifest.api_version().to_string(), manifest.kind().to_string());
        if !kinds.contains_key(&key) {
            kinds.insert(key.clone(), resolve(client, manifest).await?);
        }
        let (resource, capabilities) = &kinds[&key];
        apply_one(client, manifest, resource, capabilities).await?;
        on_applied(manifest);
        if manifest.is_crd() {
            pending_crds.push(manifest);
        }
    }
    for crd in pending_crds {
        wait_established(client, crd).await?;
    }
    Ok(order.len())
}

async fn resolve(
    client: &kube::Client,
    manifest: &Manifest,
) -> Result<(ApiResource, ApiCapabilities), ProvisionError> {
    let api_version = manifest.api_version();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, manifest.kind());
    let not_served = || ProvisionError::NotServed {
        object: manifest.describe(),
        from: manifest.source.clone(),
        kind: manifest.kind().to_string(),
        api_version: api_version.to_string(),
    };
    match discovery::pinned_kind(client, &gvk).await {
        Ok(found) => Ok(found),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(not_served()),
        Err(kube::Error::Discovery(_)) => Err(not_served()),
        Err(e) => Err(ProvisionError::Apply {
            object: manifest.describe(),
            from: manifest.source.clone(),
            reason: format!("cannot look up its kind: {}", reason(&e)),
        }),
    }
}

async fn apply_one(
    client: &kube::Client,
    manifest: &Manifest,
    resource: &ApiResource,
    capabilities: &ApiCapabilities,
) -> Result<(), ProvisionError> {
    let mut object = manifest.object.clone();
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => {
            let namespace = manifest
                .namespace()
                .or(manifest.default_namespace.as_deref())
                .unwrap_or(DEFAULT_NAMESPACE)
                .to_string();
            object["metadata"]["namespace"] = serde_json::Value::String(namespace.clone());
            Api::namespaced_with(client.clone(), &namespace, resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), resource),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let described = Manifest { object: object.clone(), ..manifest.clone() };
    api.patch(manifest.name(), &params, &Patch::Apply(&object)).await.map(|_| ()).map_err(|e| {
        ProvisionError::Apply {
            object: described.describe(),
            from: manifest.source.clone(),
            reason: reason(&e),
        }
    })
}

async fn wait_established(client: &kube::Client, crd: &Manifest) -> Result<(), ProvisionError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let fail = |reason: String| ProvisionError::NotEstablished {
        name: crd.name().to_string(),
        from: crd.source.clone(),
        reason,
    };
    let wait = async {
        loop {
            let found = api.get_opt(crd.name()).await.map_err(|e| fail(reason(&e)))?;
            let conditions =
                found.and_then(|c| c.status).and_then(|s| s.conditions).unwrap_or_default();
            if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
                return Ok(());
            }
            if let Some(refused) =
                conditions.iter().find(|c| c.type_ == "NamesAccepted" && c.status == "False")
            {
                return Err(fail(refused.message.clone().unwrap_or_default()));
            }
            tokio::time::sleep(ESTABLISHED_POLL).await;
        }
    };
    match tokio::time::timeout(ESTABLISHED_TIMEOUT, wait).await {
        Ok(result) => result,
        Err(_) => {
            Err(fail(format!("still not Established after {}s", ESTABLISHED_TIMEOUT.as_secs())))
        }
    }
}

/// The API server's own message when it gave one, else the deepest cause.
fn reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => crate::host::root_cause(other),
    }
}
