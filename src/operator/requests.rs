//! What the CLI asks of a VirtualCluster's operator: pause, resume, wake and a new expiry are
//! patches of the object (its spec is the desired state, so a GitOps tool sees them), then
//! waits on what the operator reports. Checks first that an operator holds the Lease. Talks to
//! the cluster; prints nothing.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::install::DEFAULT_NAMESPACE;
use super::leader::{self, LEASE_NAME};
use super::lifecycle::ANNOTATION_WAKE;
use super::resource::VirtualCluster;
use crate::engine::FIELD_MANAGER;
use crate::host::{Host, HostError};

/// How often the waits look again.
const POLL: Duration = Duration::from_millis(250);

/// The namespace of the operator's Lease, as `vc operator run` picks it without `-n`.
pub fn lease_namespace() -> String {
    std::env::var("VC_OPERATOR_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

/// Refuses (exit 1) unless an operator holds the Lease and renewed it within its duration:
/// without one, a change of the object would only wait until it timed out.
pub async fn require_operator(host: &Host, owner: &str, namespace: &str) -> Result<(), HostError> {
    let lease_ns = lease_namespace();
    let api: Api<Lease> = Api::namespaced(host.client.clone(), &lease_ns);
    let lease = api
        .get_opt(LEASE_NAME)
        .await
        .map_err(|e| host.explain(&format!("reading the Lease {lease_ns}/{LEASE_NAME}"), e))?;
    // The Lease's times are the operator's wall clock, not vc's (VC_NOW moves only vc's).
    let live = lease.as_ref().and_then(|l| leader::holder(l, jiff::Timestamp::now()));
    if live.is_some_and(|h| h.live) {
        return Ok(());
    }
    Err(HostError::Failed(format!(
        "no operator holds the Lease {lease_ns}/{LEASE_NAME} on context {:?}, and the cluster of VirtualCluster {namespace}/{owner} changes only through its operator; start one (vc operator run, or vc operator install), or record the change in the object yourself: kubectl edit vcl {owner} -n {namespace}",
        host.context
    )))
}

/// The VirtualCluster `namespace/name` as stored.
pub async fn read(host: &Host, namespace: &str, name: &str) -> Result<VirtualCluster, HostError> {
    let api: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|e| host.explain(&format!("reading VirtualCluster {namespace}/{name}"), e))?
        .ok_or_else(|| {
            HostError::NotFound(format!(
                "VirtualCluster {namespace}/{name} not found on context {:?} (see: kubectl get vcl -n {namespace})",
                host.context
            ))
        })
}

async fn patch(host: &Host, namespace: &str, name: &str, patch: &Value) -> Result<(), HostError> {
    let api: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    api.patch(name, &params, &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(|e| host.explain(&format!("changing VirtualCluster {namespace}/{name}"), e))
}

/// `spec.paused: true`.
pub async fn request_pause(host: &Host, namespace: &str, name: &str) -> Result<(), HostError> {
    patch(host, namespace, name, &json!({"spec": {"paused": true}})).await
}

/// `spec.paused` removed (its default, false) and a wake request, so a cluster asleep for
/// being idle starts too.
pub async fn request_resume(host: &Host, namespace: &str, name: &str) -> Result<(), HostError> {
    let body = json!({
        "metadata": {"annotations": {ANNOTATION_WAKE: jiff::Timestamp::now().to_string()}},
        "spec": {"paused": Value::Null},
    });
    patch(host, namespace, name, &body).await
}

/// A wake request alone: the cluster sleeps for being idle, and a user is back.
pub async fn request_wake(host: &Host, namespace: &str, name: &str) -> Result<(), HostError> {
    let body = json!({
        "metadata": {"annotations": {ANNOTATION_WAKE: jiff::Timestamp::now().to_string()}},
    });
    patch(host, namespace, name, &body).await
}

/// A new `spec.ttl`, counted from the object's creation as the field always is.
pub async fn request_ttl(
    host: &Host,
    namespace: &str,
    name: &str,
    ttl: &str,
) -> Result<(), HostError> {
    patch(host, namespace, name, &json!({"spec": {"ttl": ttl}})).await
}

/// Waits until the object's status satisfies `done` (the caller bounds it with a timeout).
pub async fn wait_status(
    host: &Host,
    namespace: &str,
    name: &str,
    done: impl Fn(&VirtualCluster) -> bool,
) -> Result<VirtualCluster, HostError> {
    loop {
        let object = read(host, namespace, name).await?;
        if done(&object) {
            return Ok(object);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The status phase and the Ready condition's reason.
pub fn phase_and_reason(object: &VirtualCluster) -> (Option<&str>, Option<&str>) {
    let status = object.status.as_ref();
    (
        status.and_then(|s| s.phase.as_deref()),
        status.and_then(|s| s.condition("Ready")).map(|c| c.reason.as_str()),
    )
}
