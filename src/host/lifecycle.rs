//! Pausing and resuming a control plane, moving its expiry and recording activity: merge
//! patches on the control-plane workload with the upstream CLI's annotations, so a cluster
//! paused by either tool is resumed by the other. Prints nothing.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::engine::{ANNOTATION_EXPIRES_AT, FIELD_MANAGER};

use super::records::{Workload, record_from_deployment};
use super::{ClusterRecord, Host, HostError, LABEL_SYNCED_BY, control_plane_selector, record_from};

/// The upstream CLI's pause marker (value `"true"`), which it and `vc` both honour.
pub const ANNOTATION_PAUSED: &str = "loft.sh/paused";
/// The replica count to restore, as the upstream CLI records it (decimal).
pub const ANNOTATION_PAUSED_REPLICAS: &str = "loft.sh/paused-replicas";
/// When the upstream CLI paused it, as `2006-01-02T15:04:05.000Z`.
pub const ANNOTATION_PAUSED_DATE: &str = "loft.sh/paused-date";
/// When `vc` paused it (RFC 3339).
pub const ANNOTATION_PAUSED_AT: &str = "vc.dev/paused-at";
/// Why `vc` paused it: [`PAUSE_REASON_USER`] or [`PAUSE_REASON_IDLE`].
pub const ANNOTATION_PAUSE_REASON: &str = "vc.dev/pause-reason";
/// The last request seen through one of `vc`'s forwards, or the last resume (RFC 3339).
pub const ANNOTATION_LAST_ACTIVITY: &str = "vc.dev/last-activity";
/// Paused by `vc pause`.
pub const PAUSE_REASON_USER: &str = "user";
/// Put to sleep by `vc gc` for being idle longer than its limit.
pub const PAUSE_REASON_IDLE: &str = "idle";

/// How often a write that lost a race with another writer is tried again.
const CONFLICT_RETRIES: usize = 5;
/// How often the waits look again.
const POLL: Duration = Duration::from_millis(250);

/// What [`Host::pause_cluster`] did.
#[derive(Clone, Debug)]
pub enum PauseOutcome {
    Paused {
        replicas: i32,
    },
    /// It was paused already (by `vc` or the upstream CLI); the record as found.
    AlreadyPaused(Box<ClusterRecord>),
}

/// What [`Host::resume_cluster`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeOutcome {
    Resumed {
        replicas: i32,
    },
    /// It was not paused.
    NotPaused,
}

impl Host {
    /// The record as it is now on the host, read again (for a write that must not race).
    pub async fn fresh_record(&self, record: &ClusterRecord) -> Result<ClusterRecord, HostError> {
        let (ns, name) = (record.namespace.as_str(), record.host_name.as_str());
        let what = format!("reading the control plane {ns}/{name}");
        let found = match record.workload {
            Workload::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                .get_opt(name)
                .await
                .map_err(|e| self.explain(&what, e))?
                .as_ref()
                .and_then(record_from),
            Workload::Deployment => Api::<Deployment>::namespaced(self.client.clone(), ns)
                .get_opt(name)
                .await
                .map_err(|e| self.explain(&what, e))?
                .as_ref()
                .and_then(record_from_deployment),
        };
        found.ok_or_else(|| {
            HostError::NotFound(format!(
                "virtual cluster {name:?} not found in namespace {ns:?} on context {:?} (see: vc list)",
                self.context
            ))
        })
    }

    /// Scales the control plane to zero and marks it paused the way the upstream CLI does
    /// (`loft.sh/paused`, `loft.sh/paused-replicas`, `loft.sh/paused-date`), plus `vc`'s own
    /// `vc.dev/paused-at` and why. The write carries the resourceVersion it read, so two
    /// pauses racing cannot both record a replica count.
    pub async fn pause_cluster(
        &self,
        record: &ClusterRecord,
        reason: &str,
        now: Timestamp,
    ) -> Result<PauseOutcome, HostError> {
        for _ in 0..CONFLICT_RETRIES {
            let fresh = self.fresh_record(record).await?;
            if fresh.paused {
                // An earlier pause may have stopped before the etcd beside it.
                self.pause_etcd(&fresh, now).await?;
                return Ok(PauseOutcome::AlreadyPaused(Box::new(fresh)));
            }
            // Scaled to zero by hand: resume brings back one replica, as the upstream CLI does.
            let replicas = if fresh.replicas > 0 { fresh.replicas } else { 1 };
            let patch = json!({
                "metadata": {
                    "resourceVersion": fresh.resource_version,
                    "annotations": {
                        ANNOTATION_PAUSED: "true",
                        ANNOTATION_PAUSED_REPLICAS: replicas.to_string(),
                        ANNOTATION_PAUSED_DATE: upstream_date(now),
                        ANNOTATION_PAUSED_AT: now.to_string(),
                        ANNOTATION_PAUSE_REASON: reason,
                    },
                },
                "spec": {"replicas": 0},
            });
            match self.patch_workload(&fresh, &patch).await {
                Ok(()) => {
                    self.pause_etcd(&fresh, now).await?;
                    return Ok(PauseOutcome::Paused { replicas });
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(self.explain(&workload_what(&fresh, "pausing"), e)),
            }
        }
        Err(HostError::Conflict(format!(
            "virtual cluster {:?} kept changing while vc paused it; try again",
            record.name
        )))
    }

    /// Waits until the control-plane pods are gone, then deletes the pods the engine synced
    /// to the host (they come back from the virtual datastore on resume) and waits until they
    /// are gone too. Deleting them earlier would let the running syncer re-create them. The
    /// caller bounds it with a timeout.
    pub async fn wait_paused(&self, record: &ClusterRecord) -> Result<usize, HostError> {
        let (ns, name) = (record.namespace.as_str(), record.host_name.as_str());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let control_plane = ListParams::default().labels(&control_plane_selector(name));
        let synced = format!("{LABEL_SYNCED_BY}={name}");
        let list_what = format!("listing pods in {ns}");
        loop {
            let left = pods
                .list_metadata(&control_plane)
                .await
                .map_err(|e| self.explain(&list_what, e))?;
            if left.items.is_empty() {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let removed = self.sweep_labelled::<Pod>(ns, &synced, Some(&[])).await?.len();
        let synced_params = ListParams::default().labels(&synced);
        loop {
            let left = pods
                .list_metadata(&synced_params)
                .await
                .map_err(|e| self.explain(&list_what, e))?;
            if left.items.is_empty() {
                return Ok(removed);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One look, without waiting, at a pause in progress: once the control-plane pods are
    /// gone, deletes the pods the engine synced to the host. Returns how many pods of either
    /// kind are still there (zero: the pause is complete). For a caller that comes back later
    /// instead of blocking, such as the operator.
    pub async fn finish_pause_step(&self, record: &ClusterRecord) -> Result<usize, HostError> {
        let (ns, name) = (record.namespace.as_str(), record.host_name.as_str());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let list_what = format!("listing pods in {ns}");
        let control_plane = pods
            .list_metadata(&ListParams::default().labels(&control_plane_selector(name)))
            .await
            .map_err(|e| self.explain(&list_what, e))?;
        let synced = format!("{LABEL_SYNCED_BY}={name}");
        if !control_plane.items.is_empty() {
            let left = pods
                .list_metadata(&ListParams::default().labels(&synced))
                .await
                .map_err(|e| self.explain(&list_what, e))?;
            return Ok(control_plane.items.len() + left.items.len());
        }
        Ok(self.sweep_labelled::<Pod>(ns, &synced, Some(&[])).await?.len())
    }

    /// The pods of a pause in progress, read only: control-plane pods and synced pods still on
    /// the host.
    pub async fn pause_leftovers(&self, record: &ClusterRecord) -> Result<usize, HostError> {
        let (ns, name) = (record.namespace.as_str(), record.host_name.as_str());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let list_what = format!("listing pods in {ns}");
        let mut left = 0;
        for selector in [control_plane_selector(name), format!("{LABEL_SYNCED_BY}={name}")] {
            left += pods
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| self.explain(&list_what, e))?
                .items
                .len();
        }
        Ok(left)
    }

    /// The synced workload pods on the host now (what a pause removes).
    pub async fn synced_pod_count(&self, record: &ClusterRecord) -> Result<usize, HostError> {
        let ns = record.namespace.as_str();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let selector = format!("{LABEL_SYNCED_BY}={}", record.host_name);
        pods.list_metadata(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items.len())
            .map_err(|e| self.explain(&format!("listing pods in {ns}"), e))
    }

    /// Records why a paused cluster is paused (`vc.dev/pause-reason`), leaving the rest.
    pub async fn set_pause_reason(
        &self,
        record: &ClusterRecord,
        reason: &str,
    ) -> Result<(), HostError> {
        let patch = json!({"metadata": {"annotations": {ANNOTATION_PAUSE_REASON: reason}}});
        self.patch_workload(record, &patch)
            .await
            .map_err(|e| self.explain(&workload_what(record, "pausing"), e))
    }

    /// Restores the replica count a pause recorded (1 when none is) and removes the pause
    /// annotations of both tools; records the resume as activity, so the idle limit counts
    /// from now.
    pub async fn resume_cluster(
        &self,
        record: &ClusterRecord,
        now: Timestamp,
    ) -> Result<ResumeOutcome, HostError> {
        for _ in 0..CONFLICT_RETRIES {
            let fresh = self.fresh_record(record).await?;
            if !fresh.is_paused() {
                self.resume_etcd(&fresh).await?;
                return Ok(ResumeOutcome::NotPaused);
            }
            let replicas = fresh.paused_replicas.filter(|r| *r > 0).unwrap_or(1);
            // The datastore first: the control plane's engine waits for it as it starts.
            self.resume_etcd(&fresh).await?;
            let patch = json!({
                "metadata": {
                    "resourceVersion": fresh.resource_version,
                    "annotations": {
                        ANNOTATION_PAUSED: Value::Null,
                        ANNOTATION_PAUSED_REPLICAS: Value::Null,
                        ANNOTATION_PAUSED_DATE: Value::Null,
                        ANNOTATION_PAUSED_AT: Value::Null,
                        ANNOTATION_PAUSE_REASON: Value::Null,
                        ANNOTATION_LAST_ACTIVITY: now.to_string(),
                    },
                },
                "spec": {"replicas": replicas},
            });
            match self.patch_workload(&fresh, &patch).await {
                Ok(()) => return Ok(ResumeOutcome::Resumed { replicas }),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(self.explain(&workload_what(&fresh, "resuming"), e)),
            }
        }
        Err(HostError::Conflict(format!(
            "virtual cluster {:?} kept changing while vc resumed it; try again",
            record.name
        )))
    }

    /// The etcd StatefulSets a control plane runs beside (the deployed etcd,
    /// `app=vcluster-etcd`): the chart's, beside a Deployment, which the upstream CLI pauses and
    /// resumes with it, and `vc`'s, beside a StatefulSet whose record says etcd. Paused after
    /// the control plane, resumed before it.
    async fn etcd_sets(&self, record: &ClusterRecord) -> Result<Vec<StatefulSet>, HostError> {
        let deployed = record.spec.as_ref().is_some_and(|s| s.datastore.deploys_etcd());
        if record.workload != Workload::Deployment && !deployed {
            return Ok(Vec::new());
        }
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &record.namespace);
        let params = ListParams::default()
            .labels(&format!("app=vcluster-etcd,release={}", record.host_name));
        api.list(&params)
            .await
            .map(|l| l.items)
            .map_err(|e| self.explain(&format!("listing the etcd of {:?}", record.name), e))
    }

    async fn pause_etcd(&self, record: &ClusterRecord, now: Timestamp) -> Result<(), HostError> {
        for sts in self.etcd_sets(record).await? {
            let annotations = sts.metadata.annotations.clone().unwrap_or_default();
            if annotations.get(ANNOTATION_PAUSED).map(String::as_str) == Some("true") {
                continue;
            }
            let replicas =
                sts.spec.as_ref().and_then(|s| s.replicas).filter(|r| *r > 0).unwrap_or(1);
            let patch = json!({
                "metadata": {"annotations": {
                    ANNOTATION_PAUSED: "true",
                    ANNOTATION_PAUSED_REPLICAS: replicas.to_string(),
                    ANNOTATION_PAUSED_DATE: upstream_date(now),
                }},
                "spec": {"replicas": 0},
            });
            self.patch_etcd(record, &sts, &patch).await?;
        }
        Ok(())
    }

    async fn resume_etcd(&self, record: &ClusterRecord) -> Result<(), HostError> {
        for sts in self.etcd_sets(record).await? {
            let annotations = sts.metadata.annotations.clone().unwrap_or_default();
            if annotations.get(ANNOTATION_PAUSED).map(String::as_str) != Some("true") {
                continue;
            }
            let replicas = annotations
                .get(ANNOTATION_PAUSED_REPLICAS)
                .and_then(|r| r.parse::<i32>().ok())
                .filter(|r| *r > 0)
                .unwrap_or(1);
            let patch = json!({
                "metadata": {"annotations": {
                    ANNOTATION_PAUSED: Value::Null,
                    ANNOTATION_PAUSED_REPLICAS: Value::Null,
                    ANNOTATION_PAUSED_DATE: Value::Null,
                }},
                "spec": {"replicas": replicas},
            });
            self.patch_etcd(record, &sts, &patch).await?;
        }
        Ok(())
    }

    async fn patch_etcd(
        &self,
        record: &ClusterRecord,
        sts: &StatefulSet,
        patch: &Value,
    ) -> Result<(), HostError> {
        let name = sts.metadata.name.clone().unwrap_or_default();
        let params =
            PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        Api::<StatefulSet>::namespaced(self.client.clone(), &record.namespace)
            .patch(&name, &params, &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| {
                self.explain(&format!("scaling StatefulSet {}/{name}", record.namespace), e)
            })
    }

    /// Records a new expiry (`vc.dev/expires-at`).
    pub async fn set_expiry(&self, record: &ClusterRecord, at: Timestamp) -> Result<(), HostError> {
        let patch = json!({"metadata": {"annotations": {ANNOTATION_EXPIRES_AT: at.to_string()}}});
        self.patch_workload(record, &patch)
            .await
            .map_err(|e| self.explain(&workload_what(record, "extending"), e))
    }

    async fn patch_workload(
        &self,
        record: &ClusterRecord,
        patch: &Value,
    ) -> Result<(), kube::Error> {
        let (ns, name) = (record.namespace.as_str(), record.host_name.as_str());
        let params =
            PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        match record.workload {
            Workload::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                .patch(name, &params, &Patch::Merge(patch))
                .await
                .map(|_| ()),
            Workload::Deployment => Api::<Deployment>::namespaced(self.client.clone(), ns)
                .patch(name, &params, &Patch::Merge(patch))
                .await
                .map(|_| ()),
        }
    }
}

/// Records a request seen through a forward on the control-plane StatefulSet
/// (`vc.dev/last-activity`), for the idle limit. Used by the forwarders, which hold only a
/// client.
pub async fn record_activity(
    client: &Client,
    namespace: &str,
    name: &str,
    at: Timestamp,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {ANNOTATION_LAST_ACTIVITY: at.to_string()}}});
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .patch(name, &params, &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

fn workload_what(record: &ClusterRecord, verb: &str) -> String {
    let kind = match record.workload {
        Workload::StatefulSet => "StatefulSet",
        Workload::Deployment => "Deployment",
    };
    format!(
        "{verb} virtual cluster {:?} ({kind} {}/{})",
        record.name, record.namespace, record.host_name
    )
}

/// The upstream CLI's date format for `loft.sh/paused-date`: UTC with milliseconds.
pub(super) fn upstream_date(now: Timestamp) -> String {
    format!("{:.3}", now.round(jiff::Unit::Millisecond).unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_date_has_the_upstream_shape() {
        let t: Timestamp = "2026-12-01T12:34:56.789654Z".parse().unwrap();
        assert_eq!(upstream_date(t), "2026-12-01T12:34:56.790Z");
        let whole: Timestamp = "2026-12-01T12:34:56Z".parse().unwrap();
        assert_eq!(upstream_date(whole), "2026-12-01T12:34:56.000Z");
    }
}
