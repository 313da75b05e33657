//! `render`: a spec and its placement become the ordered list of host objects. Pure: the
//! clock is read by the caller and passed in through [`Placement`].

use std::collections::BTreeMap;

use super::config::{self, EngineConfig};
use super::objects::{self, Record, View};
use super::{
    ANNOTATION_CREATED_AT, ANNOTATION_EXPIRES_AT, ANNOTATION_KUBERNETES_VERSION, ANNOTATION_SPEC,
    EngineError, HostObject, Placement, Rendered, etcd, images, isolation,
};
use crate::spec::VirtualClusterSpec;

/// The complete engine configuration `vc` writes for this spec and placement.
pub fn engine_config(
    spec: &VirtualClusterSpec,
    placement: &Placement,
) -> Result<EngineConfig, EngineError> {
    let images = images::resolve(spec)?;
    config::build(spec, placement.own_namespace, &images)
}

/// Renders every host object of one virtual cluster, in apply order: the namespace (when `vc`
/// owns it), the isolation objects, the identities and the configuration, the services, and
/// last the StatefulSet carrying the record.
pub fn render(spec: &VirtualClusterSpec, placement: &Placement) -> Result<Rendered, EngineError> {
    spec.validate()?;
    let images = images::resolve(spec)?;
    let engine = config::build(spec, placement.own_namespace, &images)?;
    let config_yaml = engine.to_yaml()?;
    let view = View { config: &engine.typed };
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    let labels = objects::engine_labels(name);

    let mut out = Vec::new();
    if placement.own_namespace {
        out.push(HostObject::Namespace(objects::render_namespace(name, namespace)));
    }
    if let Some(quota) = isolation::resource_quota(name, namespace, &labels, &engine.typed)? {
        out.push(HostObject::ResourceQuota(quota));
    }
    if let Some(limits) = isolation::limit_range(name, namespace, &labels, &engine.typed)? {
        out.push(HostObject::LimitRange(limits));
    }
    let host_api = spec.isolation.host_api_endpoints();
    for policy in isolation::network_policies(name, namespace, &labels, &engine.typed, &host_api)? {
        out.push(HostObject::NetworkPolicy(policy));
    }
    for account in objects::render_service_accounts(name, namespace, &view) {
        out.push(HostObject::ServiceAccount(account));
    }
    if let Some((role, binding)) =
        objects::render_rbac(name, namespace, &view, placement.host_minor)?
    {
        out.push(HostObject::Role(role));
        out.push(HostObject::RoleBinding(binding));
    }
    out.push(HostObject::Secret(objects::render_config_secret(
        name,
        namespace,
        &view,
        &config_yaml,
    )));
    if let Some(service) = objects::render_service(name, namespace, &view)? {
        out.push(HostObject::Service(service));
    }
    out.push(HostObject::Service(objects::render_headless_service(name, namespace, &view)));
    if let Some(ingress) = objects::render_ingress(name, namespace, &view)? {
        out.push(HostObject::Ingress(ingress));
    }
    let (etcd_services, etcd_sts) = etcd::render_etcd(name, namespace, &view)?;
    out.extend(etcd_services.into_iter().map(HostObject::Service));
    out.extend(etcd_sts.map(HostObject::StatefulSet));
    let expires_at = expiry(spec, placement)?;
    let record = record(spec, placement, &images.kubernetes_version, &config_yaml, expires_at)?;
    let mut control_plane =
        objects::render_statefulset(name, namespace, &view, record, spec.persistent())?;
    if let Some((_, secret)) = spec.datastore.external_etcd() {
        etcd::mount_external_tls(&mut control_plane, secret);
    }
    out.push(HostObject::StatefulSet(control_plane));

    Ok(Rendered {
        objects: out,
        expires_at,
        kubernetes_version: images.kubernetes_version,
        control_plane_image: images.control_plane,
        engine_image: images.engine,
    })
}

/// When the cluster expires: creation time plus TTL.
fn expiry(
    spec: &VirtualClusterSpec,
    placement: &Placement,
) -> Result<Option<jiff::Timestamp>, EngineError> {
    spec.ttl_duration()
        .map(|ttl| {
            placement.created_at.checked_add(ttl).map_err(|_| {
                EngineError::Values(format!(
                    "ttl {:?} is too long",
                    spec.ttl.as_deref().unwrap_or("")
                ))
            })
        })
        .transpose()
}

/// The record annotations and the user's labels for the StatefulSet.
fn record(
    spec: &VirtualClusterSpec,
    placement: &Placement,
    kubernetes_version: &str,
    config_yaml: &str,
    expires_at: Option<jiff::Timestamp>,
) -> Result<Record, EngineError> {
    let spec_json = serde_json::to_string(spec)
        .map_err(|e| EngineError::Values(format!("cannot record the spec: {e}")))?;
    let mut annotations = BTreeMap::from([
        (ANNOTATION_SPEC.to_string(), spec_json),
        (ANNOTATION_CREATED_AT.to_string(), placement.created_at.to_string()),
        (ANNOTATION_KUBERNETES_VERSION.to_string(), kubernetes_version.to_string()),
    ]);
    if let Some(expires) = expires_at {
        annotations.insert(ANNOTATION_EXPIRES_AT.to_string(), expires.to_string());
    }
    Ok(Record {
        annotations,
        labels: spec.labels.clone(),
        config_hash: objects::digest(config_yaml),
    })
}
