//! `vc pause NAME`: scales the control plane to zero with the upstream CLI's annotations,
//! removes the workload pods the engine synced, keeps the data and the kubeconfig context,
//! and stops a background forward (the resume starts it again).

use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{OutputFormat, PauseArgs};
use crate::commands::Invocation;
use crate::connection::Target;
use crate::error::CliError;
use crate::forward::{self, ForwardStore, StopOutcome};
use crate::host::{ClusterRecord, Host, PAUSE_REASON_USER, PauseOutcome};
use crate::operator::lifecycle::REASON_PAUSED_BY_SPEC;
use crate::operator::requests;
use crate::output::human_duration;

/// JSON result of `vc pause -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PauseResult {
    name: String,
    namespace: String,
    /// False when it was paused already (by vc or the vcluster CLI).
    changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    paused_at: Option<String>,
    /// Replicas the resume restores.
    #[serde(skip_serializing_if = "Option::is_none")]
    replicas: Option<i32>,
    /// Synced workload pods removed from the host.
    removed_pods: usize,
    /// Whether a background forward was stopped.
    stopped_forward: bool,
    seconds: f64,
}

pub async fn run(invocation: &Invocation, args: PauseArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    crate::spec::validate_name(&args.name)?;
    if let Some(ns) = &invocation.global.namespace {
        crate::spec::validate_namespace(ns)?;
    }
    let now = invocation.now()?;
    let host = invocation.host().await?;
    let started = Instant::now();
    let deadline = started + args.timeout;
    let find = host.find(&args.name, invocation.global.namespace.as_deref());
    let record = tokio::time::timeout_at(deadline, find)
        .await
        .map_err(|_| host.no_answer(args.timeout))??;
    let name = record.name.as_str();
    if record.deleting {
        return Err(CliError::conflict(format!(
            "virtual cluster {name:?} in namespace {:?} is being deleted; there is nothing to pause",
            record.namespace
        ))
        .into());
    }
    if record.is_ephemeral() {
        return Err(CliError::conflict(format!(
            "virtual cluster {name:?} in namespace {:?} was created with --ephemeral: its datastore is an emptyDir that a pause would delete; delete it instead (vc delete {name}), or create it without --ephemeral to be able to pause it",
            record.namespace
        ))
        .into());
    }
    let (outcome, removed) = match &record.virtual_cluster {
        // The desired state is the object's: the operator pauses it with the same host calls,
        // and vc waits until it has.
        Some(owner) => {
            let wait = pause_through_object(&host, &record, owner);
            tokio::time::timeout_at(deadline, wait).await.map_err(|_| {
                CliError::timeout(format!(
                    "VirtualCluster {}/{owner} has spec.paused set, but its operator had not finished pausing the cluster after {}; check: kubectl get vcl {owner} -n {} and the operator's log",
                    record.namespace,
                    human_duration(args.timeout),
                    record.namespace
                ))
            })??
        }
        None => {
            let pause = host.pause_cluster(&record, PAUSE_REASON_USER, now);
            let outcome = tokio::time::timeout_at(deadline, pause)
                .await
                .map_err(|_| host.no_answer(args.timeout))??;
            (outcome, None)
        }
    };
    // The forward has nothing to reach while paused; the context stays for the resume.
    let key = Target::of(&host, &record).forward_key();
    let stopped_forward = matches!(forward::stop(&key).await, Ok(StopOutcome::Stopped { .. }));
    if stopped_forward && let Err(e) = ForwardStore::from_env().and_then(|s| s.mark_paused(&key)) {
        printer.warn(&format!(
            "the forward was stopped, but vc resume will not start it again ({e}); run vc connect {name} after resuming"
        ));
    }
    // Interrupted or timed out here, the cluster is paused already; pausing again finishes it.
    let removed = match removed {
        Some(removed) => removed,
        None => match tokio::time::timeout_at(deadline, host.wait_paused(&record)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(CliError::timeout(format!(
                "virtual cluster {name:?} is paused, but its pods were still stopping after {}; check: kubectl get pods -n {} ; run vc pause {name} again to finish",
                human_duration(args.timeout),
                record.namespace
            ))
            .into());
            }
        },
    };
    let elapsed = started.elapsed();
    let (changed, paused_at, replicas) = match &outcome {
        PauseOutcome::Paused { replicas } if record.virtual_cluster.is_some() => {
            let found = host.fresh_record(&record).await?;
            (true, found.paused_at.or(Some(now)), Some(*replicas))
        }
        PauseOutcome::Paused { replicas } => (true, Some(now), Some(*replicas)),
        PauseOutcome::AlreadyPaused(found) => (false, found.paused_at, found.paused_replicas),
    };
    let result = PauseResult {
        name: name.to_string(),
        namespace: record.namespace.clone(),
        changed,
        paused_at: paused_at.map(|t| t.to_string()),
        replicas,
        removed_pods: removed,
        stopped_forward,
        seconds: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
    };
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&result)?,
        OutputFormat::Name => printer.data(name),
        OutputFormat::Table => {
            if changed {
                printer.info(&format!(
                    "paused virtual cluster {name:?} in {:.1}s: control plane scaled to 0, {removed} workload pod{} removed from the host; its data stays (resume with: vc resume {name})",
                    elapsed.as_secs_f64(),
                    if removed == 1 { "" } else { "s" }
                ));
            } else {
                let since = paused_at.map_or_else(String::new, |t| format!(" since {t}"));
                printer.info(&format!(
                    "virtual cluster {name:?} is already paused{since}; nothing to do (resume with: vc resume {name})"
                ));
            }
            if stopped_forward {
                printer.info("stopped its background forward; the kubeconfig context stays and vc resume starts the forward again");
            }
        }
    }
    Ok(())
}

/// Sets `spec.paused` on the VirtualCluster (after checking that an operator holds the Lease)
/// and waits until its operator reports it Paused and the control-plane and synced pods are
/// gone. Returns the outcome and how many synced pods went. A cluster already paused on the
/// host (asleep for being idle) still gets `spec.paused`, so it stays paused when woken.
async fn pause_through_object(
    host: &Host,
    record: &ClusterRecord,
    owner: &str,
) -> anyhow::Result<(PauseOutcome, Option<usize>)> {
    let namespace = record.namespace.as_str();
    requests::require_operator(host, owner, namespace).await?;
    let object = requests::read(host, namespace, owner).await?;
    let synced = host.synced_pod_count(record).await?;
    if !object.spec.paused {
        requests::request_pause(host, namespace, owner).await?;
    }
    requests::wait_status(host, namespace, owner, |o| {
        requests::phase_and_reason(o) == (Some("Paused"), Some(REASON_PAUSED_BY_SPEC))
    })
    .await?;
    while host.pause_leftovers(record).await? > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    if record.is_paused() {
        return Ok((
            PauseOutcome::AlreadyPaused(Box::new(host.fresh_record(record).await?)),
            Some(0),
        ));
    }
    let found = host.fresh_record(record).await?;
    let replicas = found.paused_replicas.unwrap_or(record.replicas.max(1));
    Ok((PauseOutcome::Paused { replicas }, Some(synced)))
}
