//! `vc resume NAME`: restores the replica count a pause recorded (by vc or the upstream CLI),
//! waits until ready with the same phases as create, and starts the background forward again
//! on its old port when the pause stopped one. Prints the resume time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{OutputFormat, ResumeArgs};
use crate::commands::Invocation;
use crate::connection::{self, Target};
use crate::error::CliError;
use crate::forward::ForwardStore;
use crate::host::{ResumeOutcome, Workload};
use crate::operator::requests;
use crate::output::{Progress, human_duration};

/// JSON result of `vc resume -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResumeResult {
    name: String,
    namespace: String,
    phase: &'static str,
    /// False when it was not paused.
    changed: bool,
    /// The restarted background forward's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    local_port: Option<u16>,
    /// Seconds per phase, keyed by the phase names of `output::PHASES`.
    timings: BTreeMap<&'static str, f64>,
    seconds: f64,
}

pub async fn run(invocation: &Invocation, args: ResumeArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    crate::spec::validate_name(&args.name)?;
    if let Some(ns) = &invocation.global.namespace {
        crate::spec::validate_namespace(ns)?;
    }
    let now = invocation.now()?;
    let host = invocation.host().await?;
    let deadline = Instant::now() + args.timeout;
    let find = host.find(&args.name, invocation.global.namespace.as_deref());
    let record = tokio::time::timeout_at(deadline, find)
        .await
        .map_err(|_| host.no_answer(args.timeout))??;
    if let Some(owner) = &record.virtual_cluster {
        // Checked before the progress display starts, so the refusal is the only output.
        requests::require_operator(&host, owner, &record.namespace).await?;
    }
    let (name, namespace) = (record.name.clone(), record.namespace.clone());
    if record.deleting {
        return Err(CliError::conflict(format!(
            "virtual cluster {name:?} in namespace {namespace:?} is being deleted; it cannot be resumed"
        ))
        .into());
    }
    let mut progress = printer.progress(&format!(
        "resuming virtual cluster {name:?} in namespace {namespace:?} on {:?}",
        host.context
    ));
    progress.phase("applying");
    let resume = async {
        match &record.virtual_cluster {
            Some(owner) => resume_through_object(&host, &record, owner).await,
            None => host.resume_cluster(&record, now).await,
        }
    };
    let outcome = match tokio::time::timeout_at(deadline, resume).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            progress.abandon();
            return Err(e.into());
        }
        Err(_) => {
            progress.abandon();
            return Err(match &record.virtual_cluster {
                Some(owner) => CliError::timeout(format!(
                    "VirtualCluster {namespace}/{owner} was asked to resume, but its operator had not started the cluster after {}; check: kubectl get vcl {owner} -n {namespace} and the operator's log",
                    human_duration(args.timeout)
                ))
                .into(),
                None => host.no_answer(args.timeout).into(),
            });
        }
    };
    if outcome == ResumeOutcome::NotPaused {
        progress
            .note(&format!("virtual cluster {name:?} is not paused; waiting until it is ready"));
    }
    progress.phase("scheduled");
    let waited = match record.workload {
        Workload::StatefulSet => {
            wait_ready(&host, &namespace, &record.host_name, deadline, &mut progress).await
        }
        Workload::Deployment => wait_deployment(&host, &record, deadline, &mut progress).await,
    };
    if let Err(e) = waited {
        progress.abandon();
        return Err(match e {
            Waited::Failed(e) => e.into(),
            Waited::TimedOut => {
                let diagnose = host.diagnose(&namespace, &record.host_name);
                let why = tokio::time::timeout(Duration::from_secs(5), diagnose)
                    .await
                    .unwrap_or_else(|_| "the host did not answer".into());
                CliError::timeout(format!(
                    "virtual cluster {name:?} did not become ready within {} after resuming: {why}",
                    human_duration(args.timeout)
                ))
                .into()
            }
        });
    }
    if let Some(owner) = &record.virtual_cluster {
        let running = requests::wait_status(&host, &namespace, owner, |o| {
            requests::phase_and_reason(o).0 == Some("Running")
        });
        match tokio::time::timeout_at(deadline, running).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                progress.abandon();
                return Err(e.into());
            }
            Err(_) => {
                progress.abandon();
                return Err(CliError::timeout(format!(
                    "virtual cluster {name:?} is ready, but VirtualCluster {namespace}/{owner} did not report Running within {}; check: kubectl get vcl {owner} -n {namespace}",
                    human_duration(args.timeout)
                ))
                .into());
            }
        }
    }
    let target = Target::of(&host, &record);
    let key = target.forward_key();
    let store = ForwardStore::from_env().ok();
    let restart = store.as_ref().is_some_and(|s| s.take_paused(&key));
    let previous = store.as_ref().and_then(|s| s.read(&key).ok().flatten()).map(|s| s.port);
    let mut local_port = None;
    if restart && let Some(port) = previous {
        progress.phase("connected");
        let remaining = deadline.saturating_duration_since(Instant::now());
        let kubeconfig = invocation.global.kubeconfig.clone();
        match connection::start_forwarder(kubeconfig, &target, Some(port), remaining).await {
            Ok(port) => local_port = Some(port),
            Err(e) => {
                progress.abandon();
                return Err(e.context(format!(
                    "virtual cluster {name:?} is ready, but its forward did not start again on port {port} (retry with: vc connect {name})"
                )));
            }
        }
    }
    let timings = progress.finish();
    let total: Duration = timings.iter().map(|(_, d)| *d).sum();
    let result = ResumeResult {
        name: name.clone(),
        namespace,
        phase: "Running",
        changed: matches!(outcome, ResumeOutcome::Resumed { .. }),
        local_port,
        timings: timings
            .iter()
            .map(|(p, d)| (*p, (d.as_secs_f64() * 1000.0).round() / 1000.0))
            .collect(),
        seconds: (total.as_secs_f64() * 1000.0).round() / 1000.0,
    };
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&result)?,
        OutputFormat::Name => printer.data(&name),
        OutputFormat::Table => {
            printer.info(&format!(
                "virtual cluster {name:?} is ready (resumed in {:.1}s)",
                total.as_secs_f64()
            ));
            if let Some(port) = local_port {
                printer.info(&format!(
                    "its background forward is back on {}",
                    connection::local_url(port)
                ));
            }
        }
    }
    Ok(())
}

/// The engine's Deployment variant (made by the upstream CLI): ready once the Deployment
/// reports a ready replica.
async fn wait_deployment(
    host: &crate::host::Host,
    record: &crate::host::ClusterRecord,
    deadline: Instant,
    progress: &mut Progress,
) -> Result<(), Waited> {
    let poll = async {
        loop {
            let fresh = host.fresh_record(record).await.map_err(Waited::Failed)?;
            if fresh.ready_replicas >= 1 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    match tokio::time::timeout_at(deadline, poll).await {
        Ok(result) => {
            progress.phase("ready");
            result
        }
        Err(_) => Err(Waited::TimedOut),
    }
}

enum Waited {
    Failed(crate::host::HostError),
    TimedOut,
}

/// Watches the control plane to ready, showing the phases as create does.
async fn wait_ready(
    host: &crate::host::Host,
    namespace: &str,
    name: &str,
    deadline: Instant,
    progress: &mut Progress,
) -> Result<(), Waited> {
    let mut seen = Vec::new();
    let wait = host.wait_ready(namespace, name, |event| {
        if seen.contains(&event) {
            return;
        }
        seen.push(event.clone());
        let (phase, note) = event.shown();
        if let Some(phase) = phase {
            progress.phase(phase);
        }
        if let Some(note) = note {
            progress.note(&note);
        }
    });
    match tokio::time::timeout_at(deadline, wait).await {
        Ok(result) => result.map_err(Waited::Failed),
        Err(_) => Err(Waited::TimedOut),
    }
}

/// Clears `spec.paused` on the VirtualCluster and asks its operator to wake the cluster (it
/// may sleep for being idle), then waits until the operator has scaled it up again.
async fn resume_through_object(
    host: &crate::host::Host,
    record: &crate::host::ClusterRecord,
    owner: &str,
) -> Result<ResumeOutcome, crate::host::HostError> {
    requests::request_resume(host, &record.namespace, owner).await?;
    if !record.is_paused() {
        return Ok(ResumeOutcome::NotPaused);
    }
    loop {
        let fresh = host.fresh_record(record).await?;
        if !fresh.is_paused() {
            return Ok(ResumeOutcome::Resumed { replicas: fresh.replicas });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
