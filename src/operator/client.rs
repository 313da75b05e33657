//! What the CLI asks of declarative mode: whether an operator runs (the CRD is served and the
//! Lease has a live holder), and reading, applying and marking VirtualCluster objects for
//! `vc create` and `vc adopt`. Talks to the cluster; prints nothing.

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::leader::{self, LEASE_NAME};
use super::resource::{ANNOTATION_ADOPT, ANNOTATION_ADOPTED_CREATED_AT, VirtualCluster};
use crate::engine::FIELD_MANAGER;
use crate::host::{Host, HostError};

/// The namespace of the operator's Lease as the CLI looks for it: `$VC_OPERATOR_NAMESPACE`,
/// else `vc-system` (where `vc operator install` runs it).
pub fn lease_namespace() -> String {
    std::env::var("VC_OPERATOR_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| super::install::DEFAULT_NAMESPACE.to_string())
}

/// Whether declarative mode can take a cluster on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// The VirtualCluster resource is not served (the CRD is not installed).
    NoCrd,
    /// The CRD is there, but no operator is known to run; the reason says why.
    NoOperator(String),
    /// The Lease has a holder that renewed it within its duration.
    Operator { identity: String },
}

/// Reads the CRD (a LIST of VirtualClusters in `namespace`, one item at most: it needs only
/// the rights a user of that namespace has) and the operator's Lease.
pub async fn presence(host: &Host, namespace: &str) -> Result<Presence, HostError> {
    let clusters: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
    match clusters.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Presence::NoCrd),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return Ok(Presence::NoOperator(format!(
                "you may not list VirtualClusters in namespace {namespace:?}"
            )));
        }
        Err(e) => return Err(host.explain("listing VirtualClusters", e)),
    }
    let lease_namespace = lease_namespace();
    let leases: Api<Lease> = Api::namespaced(host.client.clone(), &lease_namespace);
    let lease = match leases.get_opt(LEASE_NAME).await {
        Ok(Some(lease)) => lease,
        Ok(None) => {
            return Ok(Presence::NoOperator(format!(
                "there is no Lease {lease_namespace}/{LEASE_NAME} (set VC_OPERATOR_NAMESPACE when the operator runs elsewhere)"
            )));
        }
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return Ok(Presence::NoOperator(format!(
                "you may not read the Lease {lease_namespace}/{LEASE_NAME}"
            )));
        }
        Err(e) => {
            return Err(host.explain(&format!("reading Lease {lease_namespace}/{LEASE_NAME}"), e));
        }
    };
    // The holder renews with the real clock, so the real clock judges it.
    Ok(match leader::holder(&lease, jiff::Timestamp::now()) {
        Some(holder) if holder.live => Presence::Operator { identity: holder.identity },
        Some(holder) => Presence::NoOperator(format!(
            "the Lease {lease_namespace}/{LEASE_NAME} held by {:?} has not been renewed within its duration",
            holder.identity
        )),
        None => {
            Presence::NoOperator(format!("the Lease {lease_namespace}/{LEASE_NAME} has no holder"))
        }
    })
}

/// The VirtualCluster `namespace/name`, if there is one.
pub async fn get_cluster_object(
    host: &Host,
    namespace: &str,
    name: &str,
) -> Result<Option<VirtualCluster>, HostError> {
    let api: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|e| host.explain(&format!("reading VirtualCluster {namespace}/{name}"), e))
}

/// Applies `object`'s metadata labels, annotations and spec with server-side apply (field
/// manager `vc`, forced, as `vc create --upsert` re-applies); returns the stored object.
pub async fn apply_cluster_object(
    host: &Host,
    object: &VirtualCluster,
) -> Result<VirtualCluster, HostError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let api: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
    let mut body = object.clone();
    body.status = None;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| host.explain(&format!("applying VirtualCluster {namespace}/{name}"), e))
}

/// Marks an existing VirtualCluster to adopt the CLI-made cluster of its name, keeping that
/// cluster's creation time (and with it its expiry).
pub async fn mark_for_adoption(
    host: &Host,
    namespace: &str,
    name: &str,
    created_at: Option<jiff::Timestamp>,
) -> Result<VirtualCluster, HostError> {
    let api: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
    let mut annotations = serde_json::Map::new();
    annotations.insert(ANNOTATION_ADOPT.to_string(), json!("true"));
    if let Some(at) = created_at {
        annotations.insert(ANNOTATION_ADOPTED_CREATED_AT.to_string(), json!(at.to_string()));
    }
    let patch = json!({ "metadata": { "annotations": annotations } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| host.explain(&format!("marking VirtualCluster {namespace}/{name}"), e))
}

/// The namespaces holding a VirtualCluster `name` (only `namespace`, when given): for a
/// VirtualCluster whose operator has not made its control plane yet. None without the CRD.
pub async fn namespaces_of_cluster_object(
    host: &Host,
    name: &str,
    namespace: Option<&str>,
) -> Result<Vec<String>, HostError> {
    if let Some(namespace) = namespace {
        return match get_cluster_object(host, namespace, name).await {
            Ok(found) => Ok(found.map(|_| namespace.to_string()).into_iter().collect()),
            Err(HostError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
    }
    let api: Api<VirtualCluster> = Api::all(host.client.clone());
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    match api.list_metadata(&params).await {
        Ok(list) => Ok(list
            .items
            .into_iter()
            .filter(|o| o.metadata.name.as_deref() == Some(name))
            .filter_map(|o| o.metadata.namespace)
            .collect()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => Ok(Vec::new()),
        Err(e) => Err(host.explain("listing VirtualClusters", e)),
    }
}
