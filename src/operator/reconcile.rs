//! One `VirtualCluster`'s reconcile: validate the spec, render and apply the host objects with
//! the same engine and host calls as `vc create` (only when the spec changed), derive the
//! status from the host objects, and delete the cluster at its expiry. Writes nothing when
//! nothing changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event, finalizer};
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;

use super::lifecycle::{self, Lifecycle};
use super::resource::{
    ANNOTATION_ADOPT, ANNOTATION_ADOPTED_CREATED_AT, Condition, FINALIZER, VirtualCluster,
    VirtualClusterStatus,
};
use super::{Clock, Log, Metrics};
use crate::engine::{self, Placement};
use crate::host::{self, ClusterRecord, Host, HostError};
use crate::spec;

/// Longest wait between retries of a failing reconcile.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often a cluster that cannot be placed (its namespace is taken) is looked at again.
const BLOCKED_RECHECK: Duration = Duration::from_secs(300);

pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_STARTING: &str = "Starting";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_PAUSED: &str = "Paused";
pub const PHASE_DEGRADED: &str = "Degraded";
pub const PHASE_DELETING: &str = "Deleting";

/// What every reconcile shares.
pub struct Context {
    pub host: Host,
    pub clock: Clock,
    pub log: Log,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per object (namespace/name), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(host: Host, clock: Clock, log: Log, metrics: Arc<Metrics>) -> Self {
        Self { host, clock, log, metrics, failures: Mutex::new(HashMap::new()) }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A panic while holding this lock loses only retry counts.
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A reconcile that failed; the controller retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{0}")]
    Api(String),
}

fn key(object: &VirtualCluster) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

/// The controller's reconcile: the finalizer first (added before anything is applied, so a
/// deletion always runs vc's delete path), then apply or clean up.
pub async fn reconcile(
    object: Arc<VirtualCluster>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let namespace = object.namespace().unwrap_or_default();
    let id = key(&object);
    let api: Api<VirtualCluster> = Api::namespaced(ctx.host.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Event::Apply(object) => apply(&api, &object, &ctx).await,
            Event::Cleanup(object) => cleanup(&api, &object, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => ReconcileError::Api(other.to_string()),
    });
    ctx.metrics.reconciled(started.elapsed(), result.is_err());
    match &result {
        Ok(_) => {
            ctx.failures().remove(&id);
        }
        Err(e) => (ctx.log)("warn", &id, &format!("reconcile failed: {e}")),
    }
    result
}

/// Retries a failed reconcile after 1 s, 2 s, 4 s, ... up to five minutes.
pub fn error_policy(object: Arc<VirtualCluster>, _: &ReconcileError, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures();
    let count = failures.entry(key(&object)).or_insert(0);
    let delay = Duration::from_secs(1u64 << (*count).min(9)).min(MAX_BACKOFF);
    *count += 1;
    Action::requeue(delay)
}

/// Whether `sts` is controlled by `object` (an owner reference with its uid).
fn owned_by(sts: &StatefulSet, object: &VirtualCluster) -> bool {
    let uid = object.metadata.uid.as_deref();
    sts.owner_references()
        .iter()
        .any(|r| Some(r.uid.as_str()) == uid && r.kind == super::resource::KIND)
}

/// Whether `object` is marked to adopt `sts` (`vc adopt`) and `sts` is a cluster `vc create`
/// made that no controller owns yet: only then does the apply take it over.
fn adoptable(sts: &StatefulSet, object: &VirtualCluster) -> bool {
    let marked = object.annotations().get(ANNOTATION_ADOPT).map(String::as_str) == Some("true");
    let controlled = sts.owner_references().iter().any(|r| r.controller == Some(true));
    marked
        && !controlled
        && host::record_from(sts).is_some_and(|r| {
            r.made_by == host::MadeBy::Vc && r.pool.is_none() && r.name == r.host_name
        })
}

/// The creation time an adopted cluster keeps (`vc adopt` records it on the object).
fn adopted_created_at(object: &VirtualCluster) -> Option<jiff::Timestamp> {
    let annotations = object.annotations();
    if annotations.get(ANNOTATION_ADOPT).map(String::as_str) != Some("true") {
        return None;
    }
    annotations.get(ANNOTATION_ADOPTED_CREATED_AT)?.parse().ok()
}

fn owner_reference(object: &VirtualCluster) -> OwnerReference {
    OwnerReference {
        api_version: VirtualCluster::api_version(&()).into_owned(),
        kind: super::resource::KIND.to_string(),
        name: object.name_any(),
        uid: object.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The status conditions as one builder, keeping each condition's transition time when its
/// status does not change.
struct StatusBuilder<'a> {
    old: &'a VirtualClusterStatus,
    new: VirtualClusterStatus,
    now: String,
    generation: Option<i64>,
}

impl<'a> StatusBuilder<'a> {
    fn new(old: &'a VirtualClusterStatus, now: jiff::Timestamp, generation: Option<i64>) -> Self {
        let mut new = old.clone();
        new.conditions.clear();
        Self { old, new, now: now.to_string(), generation }
    }

    fn condition(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let status = if status { "True" } else { "False" };
        let last_transition_time = match self.old.condition(type_) {
            Some(old) if old.status == status => old.last_transition_time.clone(),
            _ => self.now.clone(),
        };
        self.new.conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time,
            observed_generation: self.generation,
        });
    }

    /// Degraded: phase, Ready False and Progressing False with the same reason.
    fn degraded(mut self, reason: &str, message: &str) -> VirtualClusterStatus {
        self.new.phase = Some(PHASE_DEGRADED.to_string());
        self.condition("Ready", false, reason, message);
        self.condition("Progressing", false, reason, message);
        self.condition("Degraded", true, reason, message);
        self.new
    }
}

/// Writes the status only when it differs from what the object holds.
async fn write_status(
    ctx: &Context,
    api: &Api<VirtualCluster>,
    object: &VirtualCluster,
    status: VirtualClusterStatus,
) -> Result<(), ReconcileError> {
    ctx.metrics.set_phase(&key(object), status.phase.as_deref());
    if object.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = json!({ "status": status });
    api.patch_status(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| ReconcileError::Api(format!("writing the status of {}: {e}", key(object))))
}

/// Seconds since creation, to a tenth.
fn since(created: jiff::Timestamp, now: jiff::Timestamp) -> f64 {
    let seconds = now.duration_since(created).as_secs_f64().max(0.0);
    (seconds * 10.0).round() / 10.0
}

async fn apply(
    api: &Api<VirtualCluster>,
    object: &VirtualCluster,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let host = &ctx.host;
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    let id = key(object);
    let generation = object.metadata.generation;
    let now = ctx.clock.now();
    let created_at = adopted_created_at(object)
        .or_else(|| object.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let old = object.status.clone().unwrap_or_default();
    let mut status = StatusBuilder::new(&old, now, generation);

    let checked = spec::validate_name(&name)
        .and_then(|()| object.spec.validate())
        .map_err(|e| e.to_string())
        .and_then(|()| readable_here(&object.spec));
    let expires_at = match checked {
        Ok(()) => {
            object.spec.ttl.as_deref().map(spec::parse_ttl).transpose().ok().flatten().map(|ttl| {
                created_at
                    + jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX)
            })
        }
        Err(message) => {
            write_status(ctx, api, object, status.degraded("InvalidSpec", &message)).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(at) = expires_at.filter(|at| *at <= now) {
        // The timer may have been set before spec.ttl moved (vc extend): the object as
        // stored decides.
        match lifecycle::stored_expiry(api, object).await? {
            Some(later) if later > now => {
                return Ok(Action::requeue(
                    Duration::try_from(later.duration_since(now)).unwrap_or(Duration::ZERO),
                ));
            }
            _ => {}
        }
        (ctx.log)("info", &id, &format!("expired at {at}; deleting"));
        return match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
            Err(e) => Err(ReconcileError::Api(format!("deleting expired {id}: {e}"))),
        };
    }
    status.new.expires_at = expires_at.map(|t| t.to_string());
    status.new.kubeconfig_secret = Some(engine::kubeconfig_secret_name(&name));

    let sets: Api<StatefulSet> = Api::namespaced(host.client.clone(), &namespace);
    let existing = sets
        .get_opt(&name)
        .await
        .map_err(|e| host.explain(&format!("reading StatefulSet {namespace}/{name}"), e))?;
    if let Some(sts) =
        existing.as_ref().filter(|sts| !owned_by(sts, object) && !adoptable(sts, object))
    {
        let by =
            if host::record_from(sts).is_some() { "a virtual cluster" } else { "a StatefulSet" };
        let message = format!(
            "{by} named {name:?} that this VirtualCluster does not own already runs in namespace {namespace:?}; adopt it with: vc adopt {name} -n {namespace}, or pick another name"
        );
        write_status(ctx, api, object, status.degraded("NotOwned", &message)).await?;
        return Ok(Action::requeue(BLOCKED_RECHECK));
    }
    let up_to_date = existing.is_some() && old.observed_generation == generation;
    let record = if up_to_date {
        existing.as_ref().and_then(host::record_from)
    } else {
        // The engine runs one virtual cluster per namespace.
        if let Some((other, _)) =
            host.clusters_in(&namespace).await?.into_iter().find(|(other, _)| *other != name)
        {
            let message = format!(
                "namespace {namespace:?} already holds virtual cluster {other:?}; the engine runs one virtual cluster per namespace: put this VirtualCluster in a namespace of its own"
            );
            write_status(ctx, api, object, status.degraded("NamespaceTaken", &message)).await?;
            return Ok(Action::requeue(BLOCKED_RECHECK));
        }
        let stopped = existing.as_ref().and_then(host::record_from).is_some_and(|r| r.is_paused());
        match render_and_apply(object, &namespace, created_at, stopped, host).await {
            Ok(version) => {
                (ctx.log)("info", &id, &format!("applied generation {}", generation.unwrap_or(0)));
                status.new.observed_generation = generation;
                status.new.kubernetes_version = Some(version);
                status
                    .new
                    .timings
                    .entry("applying".into())
                    .or_insert(since(created_at, ctx.clock.now()));
            }
            Err(Failure::Spec(message)) => {
                write_status(ctx, api, object, status.degraded("InvalidSpec", &message)).await?;
                return Ok(Action::await_change());
            }
            Err(Failure::Host(e)) => {
                let message = e.to_string();
                write_status(ctx, api, object, status.degraded("ApplyFailed", &message)).await?;
                return Err(e.into());
            }
        }
        // Just applied: the StatefulSet's own watch event brings its readiness.
        None
    };

    // Pause, resume and idle sleep act on the control plane as it was before any apply.
    let lifecycle = match existing.as_ref().and_then(host::record_from) {
        Some(before) => Some(lifecycle::drive(api, object, &before, ctx).await?),
        None => None,
    };
    let ready = record.as_ref().is_some_and(|r| r.ready_replicas > 0)
        && lifecycle != Some(Lifecycle::Resumed);
    if let Some(version) = record.as_ref().and_then(|r| r.kubernetes_version.clone()) {
        status.new.kubernetes_version = Some(version);
    }
    let paused = matches!(lifecycle, Some(Lifecycle::Paused { .. }));
    if ready && !paused && provisioning_due(object, &old) {
        let version = status.new.kubernetes_version.clone().unwrap_or_default();
        match provision(host, object, &namespace, &version).await {
            Ok(applied) => {
                let objects = if applied == 1 { "object" } else { "objects" };
                (ctx.log)("info", &id, &format!("applied {applied} {objects} inside"));
                status.new.provisioned_generation = generation;
                status.new.provisioned_digest = Some(inside_digest(&object.spec));
                status.new.timings.entry("provisioned".into()).or_insert(since(created_at, now));
            }
            Err(message) => {
                write_status(ctx, api, object, status.degraded("ProvisionFailed", &message))
                    .await?;
                return Err(ReconcileError::Api(format!("provisioning {id}: {message}")));
            }
        }
    }
    if let Some(Lifecycle::Paused { reason, message, .. }) = &lifecycle {
        status.new.phase = Some(PHASE_PAUSED.to_string());
        status.condition("Ready", false, reason, message);
        status.condition("Progressing", false, reason, "");
    } else if ready {
        status.new.phase = Some(PHASE_RUNNING.to_string());
        status.new.timings.entry("ready".into()).or_insert(since(created_at, now));
        status.condition("Ready", true, "ControlPlaneReady", "the virtual API server is ready");
        status.condition("Progressing", false, "ControlPlaneReady", "");
    } else {
        status.new.phase = Some(PHASE_STARTING.to_string());
        status.condition("Ready", false, "Starting", "the control plane is starting");
        status.condition(
            "Progressing",
            true,
            "Applied",
            "host objects applied; waiting for the control plane",
        );
    }
    if let Some(applied) = status.new.provisioned_generation.filter(|_| has_inside(&object.spec)) {
        status.condition(
            "Provisioned",
            true,
            "Applied",
            &format!("spec.manifests and spec.charts applied inside for generation {applied}"),
        );
    }
    status.condition("Degraded", false, "AsExpected", "");
    write_status(ctx, api, object, status.new).await?;
    let expiry =
        expires_at.map(|at| Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO));
    let due = lifecycle.as_ref().and_then(|l| l.next(now));
    Ok(match expiry.into_iter().chain(due).min() {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Whether this generation's manifests and charts still have to be applied inside.
fn provisioning_due(object: &VirtualCluster, old: &VirtualClusterStatus) -> bool {
    has_inside(&object.spec)
        && old.provisioned_digest.as_deref() != Some(inside_digest(&object.spec).as_str())
}

/// SHA-256 (hex) of the spec's manifests and charts.
fn inside_digest(spec: &spec::VirtualClusterSpec) -> String {
    use sha2::Digest as _;
    let text = serde_json::to_string(&(&spec.manifests, &spec.charts)).unwrap_or_default();
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn has_inside(spec: &spec::VirtualClusterSpec) -> bool {
    !spec.manifests.is_empty() || !spec.charts.is_empty()
}

enum Failure {
    Spec(String),
    Host(HostError),
}

/// Renders the object's spec into its namespace as `vc create --namespace` would (no
/// namespace of its own, so every object can carry an owner reference to the VirtualCluster)
/// and applies it. Returns the Kubernetes version.
async fn render_and_apply(
    object: &VirtualCluster,
    namespace: &str,
    created_at: jiff::Timestamp,
    stopped: bool,
    host: &Host,
) -> Result<String, Failure> {
    let mut spec = object.spec.clone();
    let isolation = &spec.isolation;
    let (facts, service_ip) = futures::try_join!(
        host.network_facts(isolation.enabled, isolation.enabled && isolation.allow_internet),
        host.first_service_ip()
    )
    .map_err(Failure::Host)?;
    // Without the endpoints the policies let the control plane reach any API port, as for
    // vc create (which warns the same).
    let _ = host::pin_isolation(&mut spec, &facts);
    let placement = Placement {
        name: object.name_any(),
        namespace: namespace.to_string(),
        own_namespace: false,
        created_at,
        host_minor: facts.minor,
    };
    let mut rendered =
        engine::render(&spec, &placement).map_err(|e| Failure::Spec(e.to_string()))?;
    // The engine's certificates, made here as `vc create` makes them so the engine's start
    // skips it; created only when absent, so a re-apply keeps the keys the cluster runs on.
    if let Some(service_ip) = service_ip {
        let target = engine::pki::target_for(&spec, &placement, service_ip)
            .map_err(|e| Failure::Spec(e.to_string()))?;
        let seed = host::pki_seed().map_err(|e| Failure::Host(HostError::Failed(e.to_string())))?;
        let secret = engine::pki::render_certs_secret(&target, &seed)
            .map_err(|e| Failure::Host(HostError::Failed(e.to_string())))?;
        rendered.add_certs(secret);
    }
    let owner = owner_reference(object);
    for item in &mut rendered.objects {
        item.metadata_mut().owner_references = Some(vec![owner.clone()]);
    }
    if stopped {
        // A re-apply of a paused cluster (a spec change, vc extend) keeps it stopped.
        lifecycle::keep_stopped(&mut rendered.objects);
    }
    // The operator owns every field it applies: force takes over a field another manager
    // changed, as `vc create --upsert` does.
    host.apply_all(&rendered.objects, true).await.map_err(Failure::Host)?;
    Ok(rendered.kubernetes_version)
}

/// Runs vc's delete path for the object's cluster (what garbage collection cannot reach:
/// the control plane's volume claim and what the engine synced), unless the cluster there
/// is not this object's.
async fn cleanup(
    api: &Api<VirtualCluster>,
    object: &VirtualCluster,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let host = &ctx.host;
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    let sets: Api<StatefulSet> = Api::namespaced(host.client.clone(), &namespace);
    let existing = sets
        .get_opt(&name)
        .await
        .map_err(|e| host.explain(&format!("reading StatefulSet {namespace}/{name}"), e))?;
    if existing.as_ref().is_some_and(|sts| !owned_by(sts, object)) {
        (ctx.log)(
            "info",
            &key(object),
            "deleted; the cluster of that name there is not its own and stays",
        );
        return Ok(Action::await_change());
    }
    let mut status = object.status.clone().unwrap_or_default();
    if status.phase.as_deref() != Some(PHASE_DELETING) {
        status.phase = Some(PHASE_DELETING.to_string());
        write_status(ctx, api, object, status).await?;
    }
    let record = existing
        .as_ref()
        .and_then(host::record_from)
        .unwrap_or_else(|| ClusterRecord::placeholder(&name, &namespace));
    host.delete_cluster(&record, false).await?;
    ctx.metrics.set_phase(&key(object), None);
    (ctx.log)("info", &key(object), "deleted its host objects");
    Ok(Action::await_change())
}

/// The operator reads manifests and charts from the network or the object itself, never from
/// its own file system: a local path (meant for the machine that ran `vc create`) is refused.
fn readable_here(spec: &spec::VirtualClusterSpec) -> Result<(), String> {
    if let Some((i, source)) =
        spec.manifests.iter().enumerate().find(|(_, m)| crate::provision::is_local(m))
    {
        return Err(format!(
            "spec.manifests[{i}] ({source:?}) is a path on some machine, which the operator cannot read; give an http(s) URL or the YAML itself, or apply local files with vc create --apply"
        ));
    }
    if let Some((i, chart)) = spec.charts.iter().enumerate().find(|(_, c)| c.path.is_some()) {
        return Err(format!(
            "spec.charts[{i}] ({}) is a local chart, which the operator cannot read; give repo and name (an https or oci:// repository), or install it with vc create --chart",
            chart.label()
        ));
    }
    if let Some((i, _)) = spec.charts.iter().enumerate().find(|(_, c)| !c.values_files.is_empty()) {
        return Err(format!(
            "spec.charts[{i}].valuesFiles names local files, which the operator cannot read; put the values in spec.charts[{i}].values"
        ));
    }
    Ok(())
}

/// How long provisioning waits for the engine's admin kubeconfig once the pod is Ready.
const PROVISION_WAIT: Duration = Duration::from_secs(60);

/// Applies the spec's manifests, then its charts, inside the running cluster, as `vc create`
/// does after ready (server-side apply, field manager `vc`), through a port-forward of the
/// operator's own. Returns how many objects were applied, or a message naming what failed.
async fn provision(
    host: &Host,
    object: &VirtualCluster,
    namespace: &str,
    kubernetes_version: &str,
) -> Result<usize, String> {
    let spec = &object.spec;
    let mut manifests = crate::provision::load(&spec.manifests).await.map_err(|e| e.to_string())?;
    let charted = crate::chart::load_all(&spec.charts, kubernetes_version)
        .await
        .map_err(|e| e.to_string())?;
    manifests.extend(charted);
    let target = crate::connection::Target::new(host, namespace, &object.name_any());
    let admin = crate::connection::ready_admin_kubeconfig(host, &target, PROVISION_WAIT)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let (forward, client) = crate::connection::virtual_client(host, &target, &admin)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let applied =
        crate::provision::apply(&client, &manifests, |_| {}).await.map_err(|e| e.to_string());
    drop(forward);
    applied
}

#[cfg(test)]
mod tests {
    use super::readable_here;
    use crate::spec::{ChartSpec, VirtualClusterSpec};

    #[test]
    fn the_operator_reads_urls_inline_yaml_and_chart_repositories_only() {
        let mut spec = VirtualClusterSpec {
            manifests: vec![
                "https://example.test/app.yaml".into(),
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n".into(),
            ],
            ..Default::default()
        };
        spec.charts.push(ChartSpec {
            repo: Some("oci://registry.example.test/charts".into()),
            name: Some("web".into()),
            ..Default::default()
        });
        assert_eq!(readable_here(&spec), Ok(()));
        let mut local = spec.clone();
        local.manifests.push("./k8s".into());
        assert!(readable_here(&local).unwrap_err().starts_with(r#"spec.manifests[2] ("./k8s")"#));
        let mut local = spec.clone();
        local.charts.push(ChartSpec { path: Some("charts/web".into()), ..Default::default() });
        assert!(readable_here(&local).unwrap_err().starts_with("spec.charts[1] (charts/web)"));
        let mut local = spec;
        local.charts[0].values_files.push("web-values.yaml".into());
        assert!(readable_here(&local).unwrap_err().contains("spec.charts[0].values"));
    }
}
