//! Snapshots of a virtual cluster's datastore: the file format (pure, [`format`]), the
//! streams that carry it to and from the host ([`stream`]) and restoring into a new cluster
//! ([`restore`]).

pub mod format;
pub mod restore;
pub mod stream;

use kube::ResourceExt;

use crate::error::CliError;
use crate::host::{ClusterRecord, Host, MadeBy};
use format::Metadata;

/// What a snapshot of this cluster says about itself, taken now.
pub fn metadata_for(record: &ClusterRecord) -> Metadata {
    let images = record.spec.as_ref().and_then(|s| crate::engine::images::resolve(s).ok());
    let minor = record
        .kubernetes_version
        .clone()
        .or_else(|| images.as_ref().map(|i| i.kubernetes_version.clone()))
        .unwrap_or_default();
    Metadata {
        format: format::FORMAT_KIND.to_string(),
        format_version: format::FORMAT_VERSION,
        cluster: record.name.clone(),
        namespace: record.namespace.clone(),
        spec: record
            .spec
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(serde_json::Value::Null),
        kubernetes_version: minor,
        engine_release: crate::engine::images::ENGINE_RELEASE.to_string(),
        engine_image: images.as_ref().map(|i| i.engine.clone()).unwrap_or_default(),
        control_plane_image: images.as_ref().map(|i| i.control_plane.clone()).unwrap_or_default(),
        created_at: jiff::Timestamp::now().to_string(),
        datastore: datastore_kind(record).to_string(),
        source: "engine-key-value".to_string(),
    }
}

/// The datastore a snapshot was read from: `kine` (SQLite behind kine), `etcd` (deployed
/// beside the control plane) or `etcd-external`; `unknown` for a cluster without a record
/// vc can read. The payload is the same key-value form for every kind, so a snapshot of one
/// restores into any other.
pub fn datastore_kind(record: &ClusterRecord) -> &'static str {
    match &record.spec {
        Some(spec) if spec.datastore.external_etcd().is_some() => "etcd-external",
        Some(spec) if spec.datastore.deploys_etcd() => "etcd",
        Some(_) => "kine",
        None if record.made_by != MadeBy::Vcluster => "kine",
        None => "unknown",
    }
}

/// How long a control plane that is starting (its syncer container running, not yet ready) is
/// waited for: vc's own readiness check can report a new cluster ready before the kubelet's
/// probe marks the container ready.
const SYNCER_START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The running control-plane pod whose syncer container is asked for the snapshot. A syncer
/// that is running but not yet ready is waited for (up to a minute); a cluster without one
/// (paused, or its pod not started) is an error at once.
pub async fn running_syncer_pod(host: &Host, record: &ClusterRecord) -> anyhow::Result<String> {
    let started = tokio::time::Instant::now();
    loop {
        let pods = host.control_plane_pods(Some(&record.namespace)).await?;
        let own = pods.iter().filter(|p| {
            p.labels().get("release").map(String::as_str) == Some(record.host_name.as_str())
        });
        let syncers = |p: &k8s_openapi::api::core::v1::Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.name == stream::SYNCER_CONTAINER)
                .collect::<Vec<_>>()
        };
        let mut starting = false;
        for pod in own {
            let statuses = syncers(pod);
            if statuses.iter().any(|c| c.ready) {
                return Ok(pod.metadata.name.clone().unwrap_or_default());
            }
            starting |=
                statuses.iter().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        }
        if !starting || started.elapsed() >= SYNCER_START_WAIT {
            return Err(CliError::new(
                crate::error::Exit::Failure,
                format!(
                    "virtual cluster {:?} in namespace {:?} has no running control plane to read the datastore from (see: vc describe {})",
                    record.name, record.namespace, record.name
                ),
            )
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
