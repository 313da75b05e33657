//! `vc create NAME --from-pool POOL`: claims a ready member of a warm pool (a
//! resourceVersion-guarded write of its record), resumes it when the pool keeps members
//! paused, and connects; or, when the pool has no ready member, hands the pool's spec back so
//! the cluster is created the usual way (`--pool-wait` waits for a member instead).

use std::time::Duration;

use tokio::time::Instant;

use crate::cli::{CreateArgs, OutputFormat};
use crate::commands::Invocation;
use crate::connection::{self, Target};
use crate::engine;
use crate::error::CliError;
use crate::host::{ClusterRecord, Host, HostError, ResumeOutcome};
use crate::output::human_duration;
use crate::pool::DEFAULT_POOL_NAMESPACE;
use crate::spec::{self, VirtualClusterSpec};

use super::CreateResult;

/// What the claim came to.
pub enum Claim {
    /// A member was claimed and reported.
    Done,
    /// The pool had no ready member: create the cluster from this spec.
    Fallback(Box<VirtualClusterSpec>),
}

/// How often `--pool-wait` looks for a member again.
const WAIT_POLL: Duration = Duration::from_millis(500);

pub async fn run(invocation: &Invocation, args: &CreateArgs, pool: &str) -> anyhow::Result<Claim> {
    let printer = &invocation.printer;
    let name = args.name.as_str();
    crate::pool::validate_pool_name(pool)?;
    if invocation.global.namespace.is_some() {
        return Err(CliError::usage(
            "--from-pool gives the cluster the namespace of the member it claims; leave out --namespace",
        )
        .into());
    }
    if let Some(ttl) = &args.ttl {
        spec::parse_ttl(ttl)?;
    }
    let started = Instant::now();
    let deadline = started + args.timeout;
    let host = invocation.host().await?;
    match host.find(name, None).await {
        Ok(other) => {
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} already exists in namespace {:?} on context {:?}; pick another name",
                other.namespace, host.context
            ))
            .into());
        }
        Err(HostError::NotFound(_) | HostError::Forbidden { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let mut waiting = false;
    let record = loop {
        let now = invocation.now()?;
        let claim = host.claim_member(pool, name, args.ttl.as_deref(), now);
        let claimed = tokio::time::timeout_at(deadline, claim)
            .await
            .map_err(|_| host.no_answer(args.timeout))??;
        if let Some(record) = claimed {
            break record;
        }
        if !args.pool_wait {
            let pools = host.pools(None, DEFAULT_POOL_NAMESPACE).await?;
            let Some(found) = pools.into_iter().find(|p| p.name == pool) else {
                return Err(CliError::not_found(format!(
                    "pool {pool:?} not found on context {:?} and it has no member to claim (see: vc pool list)",
                    host.context
                ))
                .into());
            };
            printer.info(&format!(
                "pool {pool:?} has no ready member: creating {name:?} the usual way (--pool-wait waits for a member instead)"
            ));
            return Ok(Claim::Fallback(Box::new(found.spec.cluster)));
        }
        if !waiting {
            printer.info(&format!("waiting for a ready member of pool {pool:?}"));
            waiting = true;
        }
        if Instant::now() + WAIT_POLL >= deadline {
            return Err(CliError::timeout(format!(
                "no member of pool {pool:?} became ready within {} (see: vc pool describe {pool})",
                human_duration(args.timeout)
            ))
            .into());
        }
        tokio::time::sleep(WAIT_POLL).await;
    };
    let claim_time = started.elapsed();
    printer.info(&format!(
        "claimed member {:?} of pool {pool:?} as {name:?} in {:.2}s",
        record.host_name,
        claim_time.as_secs_f64()
    ));
    let mut timings = vec![("applying", claim_time)];
    if record.paused {
        let resume_started = Instant::now();
        let now = invocation.now()?;
        let resumed = tokio::time::timeout_at(deadline, host.resume_cluster(&record, now))
            .await
            .map_err(|_| host.no_answer(args.timeout))??;
        let target = Target::of(&host, &record);
        let remaining = deadline.saturating_duration_since(Instant::now());
        if matches!(resumed, ResumeOutcome::Resumed { .. }) {
            ready_admin(&host, &target, remaining).await?;
        }
        let took = resume_started.elapsed();
        timings.push(("starting", took));
        printer.info(&format!(
            "resumed {name:?} (the pool keeps its members paused) in {:.2}s",
            took.as_secs_f64()
        ));
    }
    let connected = if args.no_connect {
        None
    } else {
        let connect_started = Instant::now();
        let target = Target::of(&host, &record);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let admin = ready_admin(&host, &target, remaining).await?;
        let (paths, _) = invocation.kubeconfigs()?;
        let connected = connection::connect_background(
            &paths,
            invocation.global.kubeconfig.clone(),
            &target,
            &admin,
            args.local_port,
            !args.no_switch,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await
        .map_err(|e| {
            e.context(format!(
                "virtual cluster {name:?} was claimed, but connecting to it failed (retry with: vc connect {name})"
            ))
        })?;
        timings.push(("connected", connect_started.elapsed()));
        Some(connected)
    };
    let total = started.elapsed();
    // The figure `vc pool describe` reports; losing it loses nothing else.
    let _ = host.record_claim_time(&record, total.as_secs_f64()).await;
    report(invocation, &record, pool, connected.as_ref(), &timings, total)?;
    Ok(Claim::Done)
}

/// The admin kubeconfig of a ready cluster: vc's own race through a forward and the kubelet's
/// view together, whichever answers first (a running member answers at once).
async fn ready_admin(
    host: &Host,
    target: &Target,
    timeout: Duration,
) -> anyhow::Result<crate::kubeconfig::Kubeconfig> {
    let race = connection::race_ready(host, target, || {});
    let watched = connection::ready_admin_kubeconfig(host, target, timeout);
    tokio::pin!(race);
    tokio::pin!(watched);
    let mut racing = true;
    loop {
        tokio::select! {
            raced = &mut race, if racing => match raced {
                Ok(admin) => return Ok(admin),
                Err(_) => racing = false,
            },
            admin = &mut watched => return admin,
        }
    }
}

fn report(
    invocation: &Invocation,
    record: &ClusterRecord,
    pool: &str,
    connected: Option<&connection::Connected>,
    timings: &[(&'static str, Duration)],
    total: Duration,
) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let name = record.name.as_str();
    let result = CreateResult {
        name: name.to_string(),
        namespace: record.namespace.clone(),
        kubernetes_version: record.kubernetes_version.clone().unwrap_or_default(),
        phase: "Running",
        kubeconfig_secret: engine::kubeconfig_secret_name(&record.host_name),
        created_at: record.created_at.map(|t| t.to_string()).unwrap_or_default(),
        expires_at: record.expires_at.map(|t| t.to_string()),
        context: connected.map(|c| c.entry.context_name.clone()),
        server: connected.map(|c| c.server_url.clone()),
        kubeconfig: connected.map(|c| c.entry.file.display().to_string()),
        timings: timings
            .iter()
            .map(|(p, d)| (*p, (d.as_secs_f64() * 1000.0).round() / 1000.0))
            .collect(),
        pool: Some(pool.to_string()),
        host_name: Some(record.host_name.clone()),
        virtual_cluster: None,
    };
    super::write_ci_outputs(printer, &result, true, timings);
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&result)?,
        OutputFormat::Name => printer.data(name),
        OutputFormat::Table => {
            printer.info(&format!(
                "virtual cluster {name:?} is ready ({:.1}s, claimed from pool {pool:?}; its host objects keep the member's name {:?} in namespace {:?})",
                total.as_secs_f64(),
                record.host_name,
                record.namespace
            ));
            if let Some(c) = connected {
                let now = if c.entry.switched { " (now the current context)" } else { "" };
                printer.info(&format!(
                    "kubectl context {}{now} reaches it through {}",
                    c.entry.context_name, c.server_url
                ));
            }
        }
    }
    Ok(())
}
