//! `vc gc`: deletes every expired virtual cluster in scope (through the delete path) and
//! pauses every idle one, asking first on a terminal. Never touches a cluster without an
//! expiry, nor one made by another tool unless it carries vc's expiry annotation (that is
//! the only place an expiry is read from). Safe to race with another gc: a cluster someone
//! else is already deleting or pausing is reported as such.

use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{GcArgs, OutputFormat};
use crate::commands::Invocation;
use crate::connection::{self, Target};
use crate::error::{CliError, Exit};
use crate::forward::{self, ForwardStore, StopOutcome};
use crate::host::{
    ClusterRecord, Host, HostError, NamespaceState, PAUSE_REASON_IDLE, PauseOutcome,
};
use crate::output::{human_age, human_duration};

/// One cluster in `vc gc -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    name: String,
    namespace: String,
    /// Why: "expired at T" or "idle since T (limit D)".
    reason: String,
}

/// JSON result of `vc gc -o json`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GcResult {
    dry_run: bool,
    /// Deleted (or, with --dry-run, to be deleted).
    deleted: Vec<Entry>,
    /// Paused for being idle (or, with --dry-run, to be paused).
    paused: Vec<Entry>,
    /// Already being deleted or paused by someone else (another gc, delete or pause).
    gone: Vec<Entry>,
}

pub async fn run(invocation: &Invocation, args: GcArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let namespace = invocation.global.namespace.as_deref();
    if let Some(selector) = &args.selector {
        crate::spec::validate_selector(selector)?;
    }
    if let Some(ns) = namespace {
        crate::spec::validate_namespace(ns)?;
    }
    let now = invocation.now()?;
    let host = invocation.host().await?;
    let deadline = Instant::now() + args.timeout;
    let list = tokio::time::timeout_at(deadline, host.list(namespace, args.selector.as_deref()));
    let (records, scope) = list.await.map_err(|_| host.no_answer(args.timeout))??;
    if namespace.is_none()
        && let Some(ns) = &scope
    {
        printer.info(&format!(
            "listing all namespaces is forbidden on context {:?}; collecting in namespace {ns:?} only",
            host.context
        ));
    }
    // A VirtualCluster's cluster is its operator's to expire and put to sleep.
    let records: Vec<ClusterRecord> =
        records.into_iter().filter(|r| r.made_by != crate::host::MadeBy::VirtualCluster).collect();
    let expired: Vec<&ClusterRecord> =
        records.iter().filter(|r| !r.deleting && r.expires_at.is_some_and(|t| t <= now)).collect();
    let idle: Vec<&ClusterRecord> = records
        .iter()
        .filter(|r| !r.deleting && !r.is_paused() && !expired.iter().any(|e| same(e, r)))
        .filter(|r| r.idle_expired(now))
        .collect();
    let mut result = GcResult {
        dry_run: args.dry_run,
        deleted: expired.iter().map(|r| entry(r, expiry_reason(r, now))).collect(),
        paused: idle.iter().map(|r| entry(r, idle_reason(r, now))).collect(),
        gone: Vec::new(),
    };
    if expired.is_empty() && idle.is_empty() {
        if printer.structured() {
            printer.structured_value(&result)?;
        } else {
            printer.info("No expired or idle virtual clusters.");
        }
        return Ok(());
    }
    if args.dry_run {
        return report(invocation, &result);
    }
    if !args.yes {
        confirm(invocation, &result)?;
    }
    result.deleted.clear();
    result.paused.clear();

    // Delete every expired cluster first, then wait for all of them under one deadline.
    let mut started = Vec::new();
    for record in &expired {
        let attempt = tokio::time::timeout_at(deadline, start_delete(&host, record));
        match attempt.await.map_err(|_| host.no_answer(args.timeout))?? {
            Some(own) => {
                forget_connection(invocation, &host, record).await;
                started.push((*record, own));
            }
            None => result.gone.push(entry(record, "already being deleted".into())),
        }
    }
    let waits = started.iter().map(|(record, own)| host.wait_deleted(record, *own));
    match tokio::time::timeout_at(deadline, futures::future::join_all(waits)).await {
        Ok(results) => {
            for result in results {
                result?;
            }
        }
        Err(_) => {
            let names: Vec<&str> = started.iter().map(|(r, _)| r.name.as_str()).collect();
            return Err(CliError::timeout(format!(
                "expired virtual clusters {} still being deleted after {}; deletion continues on the host (run vc gc again to check)",
                names.join(", "),
                human_duration(args.timeout)
            ))
            .into());
        }
    }
    for (record, _) in &started {
        result.deleted.push(entry(record, expiry_reason(record, now)));
    }

    for record in &idle {
        let pause =
            tokio::time::timeout_at(deadline, host.pause_cluster(record, PAUSE_REASON_IDLE, now));
        match pause.await.map_err(|_| host.no_answer(args.timeout))? {
            Ok(PauseOutcome::Paused { .. }) => {}
            Ok(PauseOutcome::AlreadyPaused(_)) => {
                result.gone.push(entry(record, "already paused".into()));
                continue;
            }
            Err(HostError::NotFound(_)) => {
                result.gone.push(entry(record, "already gone".into()));
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let key = Target::of(&host, record).forward_key();
        if matches!(forward::stop(&key).await, Ok(StopOutcome::Stopped { .. })) {
            let _ = ForwardStore::from_env().and_then(|s| s.mark_paused(&key));
        }
        match tokio::time::timeout_at(deadline, host.wait_paused(record)).await {
            Ok(done) => {
                done?;
            }
            Err(_) => {
                return Err(CliError::timeout(format!(
                    "virtual cluster {:?} is paused, but its pods were still stopping after {}; run vc gc again to finish",
                    record.name,
                    human_duration(args.timeout)
                ))
                .into());
            }
        }
        result.paused.push(entry(record, idle_reason(record, now)));
    }
    report(invocation, &result)
}

/// Starts deleting one expired cluster; `None` when someone else already is (or did).
/// Returns whether its namespace goes with it.
async fn start_delete(host: &Host, record: &ClusterRecord) -> Result<Option<bool>, HostError> {
    match host.fresh_record(record).await {
        Ok(fresh) if fresh.deleting || fresh.uid != record.uid => return Ok(None),
        Ok(_) => {}
        Err(HostError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    }
    if let NamespaceState::Present { terminating: true, .. } =
        host.namespace_state(&record.namespace).await?
    {
        return Ok(None);
    }
    let own = host.owns_namespace(&record.namespace, &record.host_name).await?;
    Ok(host.start_delete(record, own).await?.then_some(own))
}

/// Removes the kubeconfig entries and the forward of a deleted cluster; only warns.
async fn forget_connection(invocation: &Invocation, host: &Host, record: &ClusterRecord) {
    let target = Target::of(host, record);
    let result = match invocation.kubeconfigs() {
        Ok((paths, _)) => connection::disconnect(&paths, &target, true).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        invocation.printer.warn(&format!(
            "virtual cluster {:?} is being deleted, but its kubeconfig entries or forward remain: {e:#} (see: vc disconnect {})",
            record.name, record.name
        ));
    }
}

fn same(a: &ClusterRecord, b: &ClusterRecord) -> bool {
    a.name == b.name && a.namespace == b.namespace
}

fn entry(record: &ClusterRecord, reason: String) -> Entry {
    Entry { name: record.name.clone(), namespace: record.namespace.clone(), reason }
}

fn ago(then: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let secs = now.as_second().saturating_sub(then.as_second()).max(0);
    human_age(std::time::Duration::from_secs(secs.unsigned_abs()))
}

fn expiry_reason(record: &ClusterRecord, now: jiff::Timestamp) -> String {
    record
        .expires_at
        .map_or_else(|| "expired".to_string(), |t| format!("expired at {t}, {} ago", ago(t, now)))
}

fn idle_reason(record: &ClusterRecord, now: jiff::Timestamp) -> String {
    let limit = record.spec.as_ref().and_then(|s| s.sleep_after.clone()).unwrap_or_default();
    record.active_at().map_or_else(
        || format!("idle (limit {limit})"),
        |t| format!("idle since {t}, {} (limit {limit})", ago(t, now)),
    )
}

fn report(invocation: &Invocation, result: &GcResult) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(result),
        OutputFormat::Name => {
            let names: Vec<&str> =
                result.deleted.iter().chain(&result.paused).map(|e| e.name.as_str()).collect();
            if !names.is_empty() {
                printer.data(&names.join("\n"));
            }
            Ok(())
        }
        OutputFormat::Table => {
            let (delete, pause) = if result.dry_run {
                ("would delete", "would pause")
            } else {
                ("deleted", "paused")
            };
            for e in &result.deleted {
                printer.info(&format!(
                    "{delete} virtual cluster {:?} in namespace {:?} ({})",
                    e.name, e.namespace, e.reason
                ));
            }
            for e in &result.paused {
                printer.info(&format!(
                    "{pause} virtual cluster {:?} in namespace {:?} ({}; resume with: vc resume {})",
                    e.name, e.namespace, e.reason, e.name
                ));
            }
            for e in &result.gone {
                printer.info(&format!(
                    "virtual cluster {:?} in namespace {:?} was {} by someone else; nothing to do",
                    e.name, e.namespace, e.reason
                ));
            }
            Ok(())
        }
    }
}

fn confirm(invocation: &Invocation, result: &GcResult) -> anyhow::Result<()> {
    let describe = |entries: &[Entry]| {
        entries
            .iter()
            .map(|e| format!("{} (namespace {})", e.name, e.namespace))
            .collect::<Vec<_>>()
    };
    let (delete, pause) = (describe(&result.deleted), describe(&result.paused));
    let mut what = Vec::new();
    if !delete.is_empty() {
        what.push(format!("delete expired {}", delete.join(", ")));
    }
    if !pause.is_empty() {
        what.push(format!("pause idle {}", pause.join(", ")));
    }
    let what = what.join(" and ");
    if !invocation.printer.stdin_tty || !invocation.printer.stderr_tty {
        return Err(CliError::usage(format!(
            "refusing to {what} without confirmation and there is no terminal to ask on: pass --yes (or look first with --dry-run)"
        ))
        .into());
    }
    let mut prompt = what;
    if let Some(first) = prompt.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!("{prompt}?"))
        .default(false)
        .interact()
        .map_err(|e| CliError::interrupted(format!("no answer to the confirmation prompt: {e}")))?;
    if !yes {
        return Err(CliError::new(Exit::Failure, "gc cancelled; nothing was changed").into());
    }
    Ok(())
}
