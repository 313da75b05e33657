//! `vc create` through the operator: makes the namespace as the direct path would, creates the
//! VirtualCluster object with the spec the flags built, waits on its status (with the same
//! phases), then applies manifests and connects as the direct path does. Applies no host
//! object of the cluster itself.

use std::cell::RefCell;
use std::time::Duration;

use tokio::time::Instant;

use super::{Made, check_existing, connect, exposed_by, provision_inside, report};
use crate::cli::{CreateArgs, OutputFormat};
use crate::commands::Invocation;
use crate::engine::{self, HostObject, Placement};
use crate::error::{CliError, Exit};
use crate::host::{ClusterRecord, Host, HostError};
use crate::operator::VirtualCluster;
use crate::operator::client::{self, Presence};
use crate::operator::reconcile::PHASE_RUNNING;
use crate::output::{Printer, Progress, human_duration};
use crate::spec::VirtualClusterSpec;

/// How often the VirtualCluster's status is read while waiting.
const POLL: Duration = Duration::from_millis(250);

/// What the direct path already worked out: the spec, where it goes, the local rendering
/// (which validated it and holds the namespace object) and the manifests.
pub(super) struct Request<'a> {
    pub spec: &'a VirtualClusterSpec,
    pub placement: &'a Placement,
    pub rendered: &'a engine::Rendered,
    pub manifests: &'a [crate::provision::Manifest],
    pub deadline: Instant,
}

/// Why the CLI applies the objects itself, for `-v` and for `--operator`'s refusal.
pub(super) fn why_direct(presence: &Presence) -> String {
    match presence {
        Presence::NoCrd => {
            "the VirtualCluster resource (CRD virtualclusters.vc.dev) is not installed".into()
        }
        Presence::NoOperator(why) => format!("no operator holds the Lease ({why})"),
        Presence::Operator { identity } => format!("the operator {identity:?} holds the Lease"),
    }
}

/// The spec the VirtualCluster carries: the one the flags built, with what only this process
/// can do taken out (manifests and charts are read here, and applied by vc once the cluster is ready) and
/// the quota made explicit, since the operator renders every cluster as for a namespace it
/// did not make (in `vc-NAME`, the direct path sets a quota unless `--no-quota`).
fn object_spec(spec: &VirtualClusterSpec, own_namespace: bool) -> VirtualClusterSpec {
    let mut spec = spec.clone();
    spec.manifests.clear();
    spec.charts.clear();
    if own_namespace {
        spec.quota.enabled.get_or_insert(true);
    }
    spec
}

fn object_for(request: &Request<'_>) -> VirtualCluster {
    let placement = request.placement;
    VirtualCluster::new(
        &placement.namespace,
        &placement.name,
        object_spec(request.spec, placement.own_namespace),
    )
}

/// The namespace object of the local rendering, when vc makes the namespace.
fn namespace_object(rendered: &engine::Rendered) -> Option<&HostObject> {
    rendered.objects.iter().find(|o| matches!(o, HostObject::Namespace(_)))
}

/// `--dry-run --operator`: the Namespace (when vc would make it) and the VirtualCluster, as
/// one `v1` `List`; nothing is contacted.
pub(super) fn dry_run(
    printer: &Printer,
    spec: &VirtualClusterSpec,
    placement: &Placement,
    rendered: &engine::Rendered,
) -> anyhow::Result<()> {
    let namespace: Vec<HostObject> = namespace_object(rendered).into_iter().cloned().collect();
    let mut list = engine::as_list(&namespace);
    let object = VirtualCluster::new(
        &placement.namespace,
        &placement.name,
        object_spec(spec, placement.own_namespace),
    );
    list.items.push(serde_json::to_value(&object)?);
    match printer.format {
        OutputFormat::Json => printer.structured_value(&list),
        _ => {
            printer.data(&crate::output::to_yaml(&list)?);
            Ok(())
        }
    }
}

enum Stop {
    Host(HostError),
    /// The operator refused the spec (`InvalidSpec`).
    Spec(String),
    /// The operator cannot place it (`NotOwned`, `NamespaceTaken`).
    Conflict(String),
    Gone,
    TimedOut,
    Provision(anyhow::Error),
    Connect(anyhow::Error),
    Interrupted,
}

impl From<HostError> for Stop {
    fn from(e: HostError) -> Self {
        Stop::Host(e)
    }
}

pub(super) async fn run(
    invocation: &Invocation,
    host: &Host,
    args: &CreateArgs,
    request: Request<'_>,
) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let placement = request.placement;
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    let deadline = request.deadline;
    let preflight = async {
        let existing = client::get_cluster_object(host, namespace, name).await?;
        if existing.is_some() && !args.upsert {
            return Err(CliError::conflict(format!(
                "VirtualCluster {namespace}/{name} already exists on context {:?} (apply again with --upsert, or remove it with: vc delete {name})",
                host.context
            ))
            .into());
        }
        check_existing(host, placement, args.upsert, request.spec, true).await?;
        anyhow::Ok(())
    };
    tokio::time::timeout_at(deadline, preflight)
        .await
        .map_err(|_| host.no_answer(args.timeout))??;

    let mut progress = printer.progress(&format!(
        "creating virtual cluster {name:?} (Kubernetes {}) through a VirtualCluster in namespace {namespace:?} on {:?}",
        request.rendered.kubernetes_version, host.context
    ));
    progress.phase("applying");
    let outcome = tokio::select! {
        result = create_wait_connect(invocation, host, args, &request, &mut progress) => result,
        _ = tokio::signal::ctrl_c() => Err(Stop::Interrupted),
    };
    match outcome {
        Ok((object, ready, connected)) => {
            let timings = progress.finish();
            let status = object.status.clone().unwrap_or_default();
            let mut rendered = request.rendered.clone();
            if let Some(version) = status.kubernetes_version {
                rendered.kubernetes_version = version;
            }
            rendered.expires_at = status.expires_at.as_deref().and_then(|t| t.parse().ok());
            let mut placement = placement.clone();
            if let Some(created) = object.metadata.creation_timestamp.as_ref() {
                placement.created_at = created.0;
            }
            let made = Made {
                rendered: &rendered,
                placement: &placement,
                virtual_cluster: Some(format!("{namespace}/{name}")),
            };
            report(invocation, &made, ready, connected.as_ref(), &timings)
        }
        Err(stop) => {
            progress.abandon();
            Err(explain_failure(host, placement, args, stop).await)
        }
    }
}

/// Makes the namespace (when it is vc's to make), applies the VirtualCluster, waits until its
/// status says Running for this generation, applies the manifests and connects.
async fn create_wait_connect(
    invocation: &Invocation,
    host: &Host,
    args: &CreateArgs,
    request: &Request<'_>,
    progress: &mut Progress,
) -> Result<(VirtualCluster, bool, Option<crate::connection::Connected>), Stop> {
    let placement = request.placement;
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    let deadline = request.deadline;
    let timed = |_| Stop::Host(host.no_answer(args.timeout));
    if let Some(object) = namespace_object(request.rendered) {
        tokio::time::timeout_at(
            deadline,
            host.apply_all(std::slice::from_ref(object), args.upsert),
        )
        .await
        .map_err(timed)??;
    }
    let applied =
        tokio::time::timeout_at(deadline, client::apply_cluster_object(host, &object_for(request)))
            .await
            .map_err(timed)??;
    if args.no_wait {
        return Ok((applied, false, None));
    }
    let generation = applied.metadata.generation;
    let progress = RefCell::new(progress);
    let mut seen = Vec::new();
    // The pod's progress drives the display (and ends the wait on what will not heal); the
    // VirtualCluster's status decides when it is ready.
    let watch = host.wait_ready(namespace, name, |event| {
        if seen.contains(&event) {
            return;
        }
        seen.push(event.clone());
        let mut progress = progress.borrow_mut();
        let (phase, note) = event.shown();
        if let Some(phase) = phase.filter(|p| *p != "ready") {
            progress.phase(phase);
        }
        if let Some(note) = note {
            progress.note(&note);
        }
    });
    let status = wait_running(host, namespace, name, generation, &progress);
    let wait = async {
        tokio::pin!(watch);
        tokio::pin!(status);
        let mut watching = true;
        loop {
            tokio::select! {
                watched = &mut watch, if watching => match watched {
                    Ok(()) => watching = false,
                    Err(e) => return Err(Stop::Host(e)),
                },
                object = &mut status => return object,
            }
        }
    };
    let object = match tokio::time::timeout_at(deadline, wait).await {
        Ok(result) => result?,
        Err(_) => return Err(Stop::TimedOut),
    };
    let progress = progress.into_inner();
    progress.phase("ready");
    let admin = if request.manifests.is_empty() {
        None
    } else {
        progress.phase("provisioning");
        let target = crate::connection::Target::new(host, namespace, name);
        let provisioned = provision_inside(host, &target, None, request.manifests, progress);
        match tokio::time::timeout_at(deadline, provisioned).await {
            Ok(result) => Some(result.map_err(Stop::Provision)?),
            Err(_) => return Err(Stop::TimedOut),
        }
    };
    if args.no_connect {
        return Ok((object, true, None));
    }
    let exposed =
        exposed_by(request.rendered, name, request.spec).filter(|_| !args.hosting.forward);
    if exposed.is_none() {
        progress.phase("connected");
    }
    match connect(invocation, host, args, deadline, admin, exposed.map(|kind| (kind, progress)))
        .await
    {
        Ok(connected) => Ok((object, true, Some(connected))),
        Err(e) => Err(Stop::Connect(e)),
    }
}

/// Reads the VirtualCluster until its status is Running for `generation`; a Degraded reason
/// the operator will not get past by retrying ends the wait.
async fn wait_running(
    host: &Host,
    namespace: &str,
    name: &str,
    generation: Option<i64>,
    progress: &RefCell<&mut Progress>,
) -> Result<VirtualCluster, Stop> {
    let mut noted = String::new();
    loop {
        let Some(object) = client::get_cluster_object(host, namespace, name).await? else {
            return Err(Stop::Gone);
        };
        let status = object.status.clone().unwrap_or_default();
        let current =
            status.observed_generation.is_some() && status.observed_generation >= generation;
        if let Some(degraded) = status.condition("Degraded").filter(|c| c.status == "True") {
            match degraded.reason.as_str() {
                "InvalidSpec" => return Err(Stop::Spec(degraded.message.clone())),
                "NotOwned" | "NamespaceTaken" => {
                    return Err(Stop::Conflict(degraded.message.clone()));
                }
                // ApplyFailed and the like are retried by the operator: say so once.
                reason => {
                    let line = format!("the operator reports {reason}: {}", degraded.message);
                    if line != noted {
                        progress.borrow().note(&line);
                        noted = line;
                    }
                }
            }
        }
        if current {
            progress.borrow_mut().phase("scheduled");
            if status.phase.as_deref() == Some(PHASE_RUNNING) {
                return Ok(object);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn explain_failure(
    host: &Host,
    placement: &Placement,
    args: &CreateArgs,
    stop: Stop,
) -> anyhow::Error {
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    let (exit, what) = match stop {
        Stop::Connect(e) => return super::connect_failed(name, e),
        Stop::Host(e) => super::host_failed(name, &e),
        Stop::Spec(message) => (Exit::Usage, message),
        Stop::Conflict(message) => (
            Exit::Conflict,
            format!("the operator cannot place virtual cluster {name:?}: {message}"),
        ),
        Stop::Gone => (
            Exit::Failure,
            format!(
                "the VirtualCluster {namespace}/{name} was deleted while vc waited for it to become ready"
            ),
        ),
        Stop::Provision(e) => super::provision_failed(name, &e),
        Stop::Interrupted => super::interrupted(name),
        Stop::TimedOut => {
            let diagnosis = async {
                let why = host.diagnose(namespace, name).await;
                let status = client::get_cluster_object(host, namespace, name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|o| o.status)
                    .map(|s| {
                        let phase = s.phase.clone().unwrap_or_else(|| "not yet reconciled".into());
                        let degraded = s
                            .condition("Degraded")
                            .filter(|c| c.status == "True")
                            .map(|c| format!(", {}: {}", c.reason, c.message))
                            .unwrap_or_default();
                        format!("; the VirtualCluster is {phase}{degraded}")
                    })
                    .unwrap_or_default();
                format!("{why}{status}")
            };
            let why =
                tokio::time::timeout(super::DIAGNOSE_TIMEOUT, diagnosis).await.unwrap_or_else(
                    |_| "the host did not answer while vc looked for the reason".into(),
                );
            (
                Exit::Timeout,
                format!(
                    "virtual cluster {name:?} did not become ready within {}: {why}",
                    human_duration(args.timeout)
                ),
            )
        }
    };
    let aftermath = if args.cleanup_on_failure {
        match cleanup(host, placement).await {
            Ok(()) => "its VirtualCluster was deleted (--cleanup-on-failure)".to_string(),
            Err(e) => format!("deleting its VirtualCluster failed: {e}"),
        }
    } else {
        format!(
            "the VirtualCluster {namespace}/{name} stays (kubectl describe vcl {name} -n {namespace}; vc delete {name})"
        )
    };
    CliError::new(exit, format!("{what}; {aftermath}")).into()
}

/// Deletes the VirtualCluster (its operator removes what it applied) and the namespace vc made
/// for it.
async fn cleanup(host: &Host, placement: &Placement) -> Result<(), HostError> {
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    crate::operator::delete_cluster_object(host, namespace, name).await?;
    if placement.own_namespace && host.owns_namespace(namespace, name).await? {
        host.delete_cluster(&ClusterRecord::placeholder(name, namespace), true).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objects_spec_leaves_manifests_to_vc_and_states_the_quota_of_its_own_namespace() {
        let mut spec = VirtualClusterSpec::default();
        spec.manifests.push("k8s/app.yaml".into());
        spec.charts
            .push(crate::spec::ChartSpec { path: Some("charts/web".into()), ..Default::default() });
        let own = object_spec(&spec, true);
        assert!(own.manifests.is_empty());
        assert!(own.charts.is_empty(), "vc installs the charts itself");
        assert_eq!(own.quota.enabled, Some(true), "vc create sets a quota in vc-NAME");
        assert_eq!(object_spec(&spec, false).quota.enabled, None, "none in a shared namespace");
        spec.quota.enabled = Some(false);
        assert_eq!(object_spec(&spec, true).quota.enabled, Some(false), "--no-quota stays");
    }

    #[test]
    fn why_direct_names_the_missing_piece() {
        assert!(why_direct(&Presence::NoCrd).contains("CRD virtualclusters.vc.dev"));
        let stale = Presence::NoOperator("the Lease vc-system/vc-operator has no holder".into());
        assert!(why_direct(&stale).contains("no operator holds the Lease (the Lease"));
    }
}
