//! A VirtualCluster's lifecycle in the reconciler: pause and resume from `spec.paused` with
//! the same host calls as `vc pause` / `vc resume` (so the upstream CLI reads the same
//! annotations), idle sleep at `last activity + spec.sleepAfter`, waking on request, and the
//! expiry checked against the object as stored before it is deleted. Prints nothing.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::reconcile::{Context, ReconcileError};
use super::resource::VirtualCluster;
use crate::host::{ClusterRecord, PAUSE_REASON_IDLE, PAUSE_REASON_USER};
use crate::spec;

/// Annotation on the VirtualCluster asking the operator to wake a cluster that sleeps for
/// being idle (`vc connect` and `vc resume` set it; any value). The operator removes it once
/// it has acted on it.
pub const ANNOTATION_WAKE: &str = "vc.dev/wake";

/// Status reason of a cluster paused because `spec.paused` is true.
pub const REASON_PAUSED_BY_SPEC: &str = "PausedBySpec";
/// Status reason of a cluster put to sleep for being idle longer than `spec.sleepAfter`.
pub const REASON_IDLE: &str = "Idle";

/// How soon a pause in progress (pods still stopping) is looked at again.
const PAUSE_SETTLE: Duration = Duration::from_secs(2);

/// Where the lifecycle left the cluster, for the status and the next timer.
#[derive(Debug, PartialEq)]
pub(super) enum Lifecycle {
    /// Running as wanted; `sleeps_at` is when it goes to sleep unless used before.
    Running { sleeps_at: Option<Timestamp> },
    /// Just resumed (or resuming): the control plane's readiness follows.
    Resumed,
    /// Paused, for `reason` ([`REASON_PAUSED_BY_SPEC`] or [`REASON_IDLE`]); `settling` while
    /// pods are still stopping.
    Paused { reason: &'static str, message: String, settling: bool },
}

impl Lifecycle {
    /// When the reconcile should run again for the lifecycle alone.
    pub(super) fn next(&self, now: Timestamp) -> Option<Duration> {
        match self {
            Self::Running { sleeps_at: Some(at) } => {
                Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
            }
            Self::Paused { settling: true, .. } => Some(PAUSE_SETTLE),
            _ => None,
        }
    }
}

/// When a running cluster with an idle limit goes to sleep: its last activity (a request
/// through vc's forwards, or the last resume; its creation when neither) plus the limit.
pub(super) fn sleeps_at(object: &VirtualCluster, record: &ClusterRecord) -> Option<Timestamp> {
    if !object.spec.persistent() {
        return None;
    }
    let limit = object.spec.sleep_after_duration()?;
    let since = record.active_at()?;
    since.checked_add(jiff::SignedDuration::try_from(limit).ok()?).ok()
}

/// Brings the host's control plane to what the object wants: paused while `spec.paused`,
/// asleep once idle past `spec.sleepAfter` until woken, running otherwise. A cluster paused
/// on the host by other means (`vcluster pause`, a scale to zero) is resumed: the object's
/// spec is the desired state.
pub(super) async fn drive(
    api: &Api<VirtualCluster>,
    object: &VirtualCluster,
    record: &ClusterRecord,
    ctx: &Context,
) -> Result<Lifecycle, ReconcileError> {
    let host = &ctx.host;
    let id = format!("{}/{}", record.namespace, record.name);
    let now = ctx.clock.now();
    let wake = object.annotations().contains_key(ANNOTATION_WAKE);
    if object.spec.paused {
        if !record.is_paused() {
            (ctx.log)("info", &id, "pausing: spec.paused is true");
            host.pause_cluster(record, PAUSE_REASON_USER, now).await?;
        } else if record.is_sleeping() {
            // Asleep, and now paused on purpose: it stays paused when spec.paused goes back.
            host.set_pause_reason(record, PAUSE_REASON_USER).await?;
        }
        if wake {
            forget_wake(api, object).await?;
        }
        let left = host.finish_pause_step(record).await?;
        return Ok(Lifecycle::Paused {
            reason: REASON_PAUSED_BY_SPEC,
            message: "the control plane is stopped because spec.paused is true (vc resume, or set it to false)".into(),
            settling: left > 0,
        });
    }
    if record.is_paused() {
        if record.is_sleeping() && !wake {
            let left = host.finish_pause_step(record).await?;
            let since = record.paused_at.map_or_else(String::new, |t| format!(" since {t}"));
            return Ok(Lifecycle::Paused {
                reason: REASON_IDLE,
                message: format!(
                    "asleep{since}: no request for {}; vc connect or vc resume wakes it",
                    object.spec.sleep_after.as_deref().unwrap_or("its idle limit")
                ),
                settling: left > 0,
            });
        }
        let why = if record.is_sleeping() { "woken on request" } else { "spec.paused is false" };
        (ctx.log)("info", &id, &format!("resuming: {why}"));
        host.resume_cluster(record, now).await?;
        if wake {
            forget_wake(api, object).await?;
        }
        return Ok(Lifecycle::Resumed);
    }
    if wake {
        forget_wake(api, object).await?;
    }
    let sleeps_at = sleeps_at(object, record);
    if sleeps_at.is_some_and(|at| at <= now) {
        (ctx.log)(
            "info",
            &id,
            &format!(
                "idle since {}, longer than sleepAfter {}: pausing",
                record.active_at().map(|t| t.to_string()).unwrap_or_default(),
                object.spec.sleep_after.as_deref().unwrap_or_default()
            ),
        );
        host.pause_cluster(record, PAUSE_REASON_IDLE, now).await?;
        return Ok(Lifecycle::Paused {
            reason: REASON_IDLE,
            message: "asleep: idle past spec.sleepAfter; vc connect or vc resume wakes it".into(),
            settling: true,
        });
    }
    Ok(Lifecycle::Running { sleeps_at })
}

/// Renders the control plane at zero replicas, for a re-apply of a paused cluster: the
/// apply owns `spec.replicas`, and would otherwise start it again behind its pause markers.
pub(super) fn keep_stopped(objects: &mut [crate::engine::HostObject]) {
    for object in objects {
        if let crate::engine::HostObject::StatefulSet(sts) = object
            && let Some(spec) = sts.spec.as_mut()
        {
            spec.replicas = Some(0);
        }
    }
}

/// Removes a wake request that has been acted on (or that had nothing to wake).
async fn forget_wake(
    api: &Api<VirtualCluster>,
    object: &VirtualCluster,
) -> Result<(), ReconcileError> {
    let patch = json!({"metadata": {"annotations": {ANNOTATION_WAKE: Value::Null}}});
    api.patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            ReconcileError::Api(format!(
                "removing the wake request of {}/{}: {e}",
                object.namespace().unwrap_or_default(),
                object.name_any()
            ))
        })
}

/// The expiry of the object as stored now, read again before an expired one is deleted: a
/// timer set for an earlier expiry must not delete a cluster whose `spec.ttl` was extended
/// since (the cache behind the timer may not have seen the change yet). None without a TTL,
/// or when the object is gone.
pub(super) async fn stored_expiry(
    api: &Api<VirtualCluster>,
    object: &VirtualCluster,
) -> Result<Option<Timestamp>, ReconcileError> {
    let name = object.name_any();
    let stored = api.get_opt(&name).await.map_err(|e| {
        ReconcileError::Api(format!(
            "reading {}/{name}: {e}",
            object.namespace().unwrap_or_default()
        ))
    })?;
    Ok(stored.as_ref().and_then(expiry))
}

/// Creation time plus `spec.ttl`.
pub(super) fn expiry(object: &VirtualCluster) -> Option<Timestamp> {
    let created = object.metadata.creation_timestamp.as_ref()?.0;
    let ttl = spec::parse_ttl(object.spec.ttl.as_deref()?).ok()?;
    Some(created.checked_add(jiff::SignedDuration::try_from(ttl).ok()?).unwrap_or(Timestamp::MAX))
}

/// `until - created` as a `spec.ttl` value, whole seconds rounded up so the expiry is never
/// earlier than asked: `1h`, `2h30m`, `1d5s`.
pub fn ttl_reaching(created: Timestamp, until: Timestamp) -> Option<String> {
    let span = until.duration_since(created);
    if span <= jiff::SignedDuration::ZERO {
        return None;
    }
    let mut left = span.as_secs() + i64::from(span.subsec_nanos() > 0);
    let mut text = String::new();
    for (unit, seconds) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        let n = left / seconds;
        left %= seconds;
        if n > 0 {
            text.push_str(&format!("{n}{unit}"));
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn ttl_reaching_rounds_up_and_reads_back() {
        let created = at("2026-12-01T10:00:00Z");
        assert_eq!(ttl_reaching(created, at("2026-12-01T11:00:00Z")).as_deref(), Some("1h"));
        assert_eq!(
            ttl_reaching(created, at("2026-12-02T12:30:00.2Z")).as_deref(),
            Some("1d2h30m1s")
        );
        assert_eq!(ttl_reaching(created, created), None);
        assert_eq!(ttl_reaching(created, at("2026-12-01T09:00:00Z")), None);
        let pattern = regex::Regex::new(super::super::resource::PATTERN_DURATION).unwrap();
        for until in ["2026-12-01T10:00:07Z", "2026-12-09T00:00:00Z", "2027-03-01T23:59:59.9Z"] {
            let ttl = ttl_reaching(created, at(until)).unwrap();
            let back =
                created + jiff::SignedDuration::try_from(spec::parse_ttl(&ttl).unwrap()).unwrap();
            assert!(back >= at(until) && back.duration_since(at(until)).as_secs() < 1, "{ttl}");
            assert!(pattern.is_match(&ttl));
        }
    }

    #[test]
    fn sleep_is_due_at_the_last_activity_plus_the_limit() {
        let mut object: VirtualCluster = serde_json::from_value(json!({
            "metadata": {"name": "dev", "namespace": "team"},
            "spec": {"sleepAfter": "30m"},
        }))
        .unwrap();
        let mut record = ClusterRecord::placeholder("dev", "team");
        record.created_at = Some(at("2026-12-01T10:00:00Z"));
        assert_eq!(sleeps_at(&object, &record), Some(at("2026-12-01T10:30:00Z")), "from creation");
        record.last_activity = Some(at("2026-12-01T11:00:00Z"));
        assert_eq!(sleeps_at(&object, &record), Some(at("2026-12-01T11:30:00Z")), "from activity");
        let later = Lifecycle::Running { sleeps_at: sleeps_at(&object, &record) };
        assert_eq!(later.next(at("2026-12-01T11:29:00Z")), Some(Duration::from_secs(60)));
        assert_eq!(later.next(at("2026-12-01T11:31:00Z")), Some(Duration::ZERO), "overdue: now");
        object.spec.sleep_after = None;
        assert_eq!(sleeps_at(&object, &record), None, "no limit, no sleep");
        let settled =
            Lifecycle::Paused { reason: REASON_IDLE, message: String::new(), settling: false };
        assert_eq!(settled.next(at("2026-12-01T11:31:00Z")), None, "a settled pause has no timer");
    }

    #[test]
    fn the_object_spec_takes_paused_beside_the_flattened_cluster_spec() {
        let object: VirtualCluster = serde_json::from_value(json!({
            "apiVersion": "vc.dev/v1alpha1", "kind": "VirtualCluster",
            "metadata": {"name": "dev", "namespace": "team", "creationTimestamp": "2026-12-01T10:00:00Z"},
            "spec": {"ttl": "2h", "paused": true, "sleepAfter": "30m"},
        }))
        .unwrap();
        assert!(object.spec.paused);
        assert_eq!(object.spec.ttl.as_deref(), Some("2h"));
        assert_eq!(expiry(&object), Some(at("2026-12-01T12:00:00Z")));
        let back = serde_json::to_value(&object).unwrap();
        assert_eq!((&back["spec"]["paused"], &back["spec"]["ttl"]), (&json!(true), &json!("2h")));
        let running = VirtualCluster::new("team", "dev", object.spec.cluster.clone());
        let back = serde_json::to_value(&running).unwrap();
        assert!(back["spec"].get("paused").is_none(), "false is left out: {back}");
        let unknown = serde_json::from_value::<VirtualCluster>(json!({
            "metadata": {"name": "dev"}, "spec": {"ttll": "2h"},
        }));
        assert!(unknown.is_err(), "an unknown spec field is refused");
    }
}
