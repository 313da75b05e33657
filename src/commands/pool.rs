//! `vc pool create | list | describe | delete | keep`: warm pools of ready virtual clusters.
//! The definition, members and keeper live in `host::pool`; this file resolves the flags and
//! prints.

use serde::Serialize;

use crate::cli::{
    OutputFormat, PoolCommand, PoolCreateArgs, PoolDeleteArgs, PoolKeepArgs, PoolNameArgs,
};
use crate::commands::Invocation;
use crate::error::{CliError, Exit};
use crate::host::pool::{claim_seconds, ready_seconds};
use crate::host::{ClusterRecord, Host, KeeperPass, PoolRecord};
use crate::pool::{DEFAULT_POOL_NAMESPACE, PoolSpec, percentile, validate_pool_name};
use crate::spec::{self, VirtualClusterSpec};

pub async fn run(invocation: &Invocation, command: PoolCommand) -> anyhow::Result<()> {
    match command {
        PoolCommand::Create(args) => create(invocation, args).await,
        PoolCommand::List => list(invocation).await,
        PoolCommand::Describe(args) => describe(invocation, &args).await,
        PoolCommand::Delete(args) => delete(invocation, &args).await,
        PoolCommand::Keep(args) => keep(invocation, &args).await,
    }
}

/// Where pool definitions are written and read: `-n`, else `vc-pools`.
fn pool_namespace(invocation: &Invocation) -> anyhow::Result<String> {
    match &invocation.global.namespace {
        Some(ns) => {
            spec::validate_namespace(ns)?;
            Ok(ns.clone())
        }
        None => Ok(DEFAULT_POOL_NAMESPACE.to_string()),
    }
}

fn member_spec(args: &PoolCreateArgs) -> anyhow::Result<VirtualClusterSpec> {
    let mut cluster = match &args.values {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!("cannot read values file {}: {e}", path.display()))
            })?;
            serde_saphyr::from_str::<Option<VirtualClusterSpec>>(&text)
                .map_err(|e| {
                    let first = e.to_string();
                    let first = first.lines().next().unwrap_or_default().to_string();
                    CliError::usage(format!("invalid values file {}: {first}", path.display()))
                })?
                .unwrap_or_default()
        }
        None => VirtualClusterSpec::default(),
    };
    if let Some(v) = &args.kubernetes_version {
        cluster.kubernetes_version = Some(v.clone());
    }
    if let Some(ttl) = &args.ttl {
        spec::parse_ttl(ttl)?;
        cluster.ttl = Some(ttl.clone());
    }
    if args.ephemeral {
        cluster.persistence = Some(false);
    }
    if args.no_isolation {
        cluster.isolation.enabled = false;
    }
    if args.no_quota {
        cluster.quota.enabled = Some(false);
    }
    Ok(cluster)
}

async fn create(invocation: &Invocation, args: PoolCreateArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    validate_pool_name(&args.name)?;
    let namespace = pool_namespace(invocation)?;
    let pool = PoolSpec {
        size: args.size,
        max_surge: args.max_surge,
        paused: args.paused,
        cluster: member_spec(&args)?,
    };
    pool.validate()?;
    // Renders a member now, so a spec the engine cannot render is refused before anything is
    // written.
    let probe = crate::engine::Placement {
        name: crate::pool::member_name(&args.name, &[0; crate::pool::MEMBER_SUFFIX_LEN]),
        namespace: "vc-probe".into(),
        own_namespace: true,
        created_at: invocation.now()?,
        host_minor: None,
    };
    crate::engine::render(&pool.cluster, &probe)?;
    let host = invocation.host().await?;
    let now = invocation.now()?;
    host.create_pool(&namespace, &args.name, &pool, now).await?;
    let record = host.pool(&namespace, &args.name).await?;
    let mut started = Vec::new();
    if !args.no_fill {
        let pass = host.keep_pool(&record, Vec::new(), now).await;
        for failure in &pass.failed {
            printer.warn(&format!("pool {:?}: {failure}", args.name));
        }
        started = pass.started;
    }
    let status = PoolStatus::of(&record, &[]);
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&status)?,
        OutputFormat::Name => printer.data(&args.name),
        OutputFormat::Table => {
            printer.info(&format!(
                "pool {:?} created in namespace {namespace:?} on {:?}: {} member{}{}",
                args.name,
                host.context,
                pool.size,
                if pool.size == 1 { "" } else { "s" },
                if pool.paused { ", paused while they wait" } else { "" }
            ));
            if !started.is_empty() {
                printer.info(&format!("starting {}", started.join(", ")));
            }
            printer.info(
                "vc pool keep (or vc operator run) keeps it full; claim with: vc create NAME --from-pool POOL",
            );
        }
    }
    Ok(())
}

/// A pool's figures, for `list` and `describe`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolStatus {
    name: String,
    namespace: String,
    size: u32,
    max_surge: u32,
    paused: bool,
    /// Unclaimed members ready to be claimed (running, or paused in a paused pool).
    ready: usize,
    /// Unclaimed members still starting.
    starting: usize,
    /// Members claimed so far that still exist.
    claims: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_seconds_p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_seconds_p95: Option<f64>,
    /// Seconds from a member's creation to ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    refill_seconds_p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refill_seconds_p95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
}

impl PoolStatus {
    fn of(pool: &PoolRecord, members: &[ClusterRecord]) -> Self {
        let pooled = || members.iter().filter(|m| m.is_pooled() && !m.deleting);
        let ready = pooled().filter(|m| m.ready_replicas >= 1 || m.paused).count();
        let starting = pooled().count() - ready;
        let claimed: Vec<&ClusterRecord> = members.iter().filter(|m| !m.is_pooled()).collect();
        let sorted = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v
        };
        let claims = sorted(claimed.iter().filter_map(|m| claim_seconds(m)).collect());
        let refills = sorted(members.iter().filter_map(ready_seconds).collect());
        Self {
            name: pool.name.clone(),
            namespace: pool.namespace.clone(),
            size: pool.spec.size,
            max_surge: pool.spec.max_surge,
            paused: pool.spec.paused,
            ready,
            starting,
            claims: claimed.len(),
            claim_seconds_p50: percentile(&claims, 50.0),
            claim_seconds_p95: percentile(&claims, 95.0),
            refill_seconds_p50: percentile(&refills, 50.0),
            refill_seconds_p95: percentile(&refills, 95.0),
            created_at: pool.created_at.map(|t| t.to_string()),
        }
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |s| format!("{s:.2}s"))
}

async fn list(invocation: &Invocation) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let namespace = invocation.global.namespace.clone();
    if let Some(ns) = &namespace {
        spec::validate_namespace(ns)?;
    }
    let host = invocation.host().await?;
    let (pools, members) = futures::try_join!(
        host.pools(namespace.as_deref(), DEFAULT_POOL_NAMESPACE),
        host.pool_members(None)
    )?;
    let statuses: Vec<PoolStatus> = pools
        .iter()
        .map(|p| {
            let mine: Vec<ClusterRecord> = members
                .iter()
                .filter(|m| m.pool.as_deref() == Some(p.name.as_str()))
                .cloned()
                .collect();
            PoolStatus::of(p, &mine)
        })
        .collect();
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&statuses)?,
        OutputFormat::Name => {
            let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
            if !names.is_empty() {
                printer.data(&names.join("\n"));
            }
        }
        OutputFormat::Table => {
            if statuses.is_empty() {
                printer.info("No pools found. Create one with: vc pool create NAME --size N");
                return Ok(());
            }
            let rows = statuses
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.namespace.clone(),
                        s.size.to_string(),
                        s.ready.to_string(),
                        s.starting.to_string(),
                        s.claims.to_string(),
                        if s.paused { "yes".into() } else { "no".into() },
                        seconds(s.claim_seconds_p50),
                    ]
                })
                .collect();
            printer.table(
                &[
                    "NAME",
                    "NAMESPACE",
                    "SIZE",
                    "READY",
                    "STARTING",
                    "CLAIMS",
                    "PAUSED",
                    "CLAIM P50",
                ],
                rows,
            );
        }
    }
    Ok(())
}

/// `vc pool describe -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolDescription {
    #[serde(flatten)]
    status: PoolStatus,
    spec: VirtualClusterSpec,
    members: Vec<MemberItem>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberItem {
    /// The member's own name (its host objects').
    name: String,
    namespace: String,
    /// Ready, Starting or Paused while it waits; Claimed once claimed.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    claimed_as: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready_seconds: Option<f64>,
}

async fn describe(invocation: &Invocation, args: &PoolNameArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    validate_pool_name(&args.name)?;
    let namespace = pool_namespace(invocation)?;
    let host = invocation.host().await?;
    let (pool, members) =
        futures::try_join!(host.pool(&namespace, &args.name), host.pool_members(Some(&args.name)))?;
    let description = PoolDescription {
        status: PoolStatus::of(&pool, &members),
        spec: pool.spec.cluster.clone(),
        members: members
            .iter()
            .map(|m| MemberItem {
                name: m.host_name.clone(),
                namespace: m.namespace.clone(),
                state: if !m.is_pooled() {
                    "Claimed"
                } else if m.deleting {
                    "Deleting"
                } else if m.paused {
                    "Paused"
                } else if m.ready_replicas >= 1 {
                    "Ready"
                } else {
                    "Starting"
                },
                claimed_as: m.is_claimed().then(|| m.name.clone()),
                claim_seconds: claim_seconds(m),
                ready_seconds: ready_seconds(m),
            })
            .collect(),
    };
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&description)?,
        OutputFormat::Name => printer.data(&args.name),
        OutputFormat::Table => printer.data(&describe_text(&description)?),
    }
    Ok(())
}

fn describe_text(d: &PoolDescription) -> anyhow::Result<String> {
    let s = &d.status;
    let mut out = String::new();
    let mut field = |key: &str, value: String| out.push_str(&format!("{key:<20}{value}\n"));
    field("Name:", s.name.clone());
    field("Namespace:", s.namespace.clone());
    field("Size:", format!("{} (at most {} starting at once)", s.size, s.max_surge));
    field(
        "Paused members:",
        if s.paused { "yes (a claim resumes one)".into() } else { "no".into() },
    );
    field("Ready:", s.ready.to_string());
    field("Starting:", s.starting.to_string());
    field("Claims:", s.claims.to_string());
    field(
        "Claim time:",
        format!("p50 {}, p95 {}", seconds(s.claim_seconds_p50), seconds(s.claim_seconds_p95)),
    );
    field(
        "Refill time:",
        format!("p50 {}, p95 {}", seconds(s.refill_seconds_p50), seconds(s.refill_seconds_p95)),
    );
    out.push_str("Member spec:\n");
    for line in crate::output::to_yaml(&d.spec)?.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("Members:\n");
    if d.members.is_empty() {
        out.push_str("  none\n");
    }
    for m in &d.members {
        let claimed = m.claimed_as.as_ref().map_or_else(String::new, |n| format!(" as {n}"));
        out.push_str(&format!("  {:<28} {:<10}{claimed}\n", m.name, m.state));
    }
    Ok(out)
}

async fn delete(invocation: &Invocation, args: &PoolDeleteArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    validate_pool_name(&args.name)?;
    let namespace = pool_namespace(invocation)?;
    let host = invocation.host().await?;
    let (pool, members) =
        futures::try_join!(host.pool(&namespace, &args.name), host.pool_members(Some(&args.name)))?;
    let unclaimed: Vec<&ClusterRecord> = members.iter().filter(|m| m.is_pooled()).collect();
    if !args.yes {
        confirm(invocation, &pool, unclaimed.len())?;
    }
    // The definition first, so a keeper running meanwhile starts no replacement.
    host.delete_pool_definition(&pool).await?;
    let removals = unclaimed.iter().map(|m| host.remove_member(m));
    let results = futures::future::join_all(removals).await;
    let mut failures = Vec::new();
    let mut removed = Vec::new();
    for (result, member) in results.iter().zip(&unclaimed) {
        match result {
            Ok(true) => removed.push(member.host_name.as_str()),
            // Claimed between the LIST and the delete: it belongs to its claimant now.
            Ok(false) => {}
            Err(e) => failures.push(format!("{}: {e}", member.host_name)),
        }
    }
    let kept = members.len() - removed.len() - failures.len();
    printer.info(&format!(
        "deleted pool {:?} and its {} unclaimed member{}{}",
        args.name,
        removed.len(),
        if removed.len() == 1 { "" } else { "s" },
        if kept > 0 { format!("; {kept} claimed cluster(s) stay") } else { String::new() }
    ));
    if printer.structured() {
        printer.structured_value(&removed)?;
    }
    if !failures.is_empty() {
        return Err(CliError::new(
            Exit::Failure,
            format!("some members could not be deleted: {}", failures.join("; ")),
        )
        .into());
    }
    Ok(())
}

fn confirm(invocation: &Invocation, pool: &PoolRecord, members: usize) -> anyhow::Result<()> {
    let what = format!("pool {:?} and its {members} unclaimed member(s)", pool.name);
    if !invocation.printer.stdin_tty || !invocation.printer.stderr_tty {
        return Err(CliError::usage(format!(
            "refusing to delete {what} without confirmation and there is no terminal to ask on: pass --yes"
        ))
        .into());
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!("Delete {what}?"))
        .default(false)
        .interact()
        .map_err(|e| CliError::interrupted(format!("no answer to the confirmation prompt: {e}")))?;
    if !yes {
        return Err(CliError::new(Exit::Failure, "deletion cancelled; nothing was deleted").into());
    }
    Ok(())
}

async fn keep(invocation: &Invocation, args: &PoolKeepArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let host = invocation.host().await?;
    let fallback = pool_namespace(invocation)?;
    if args.once {
        let now = invocation.now()?;
        let passes = host.keep_pools_once(&fallback, now).await?;
        let failed = passes.iter().any(|p| !p.failed.is_empty());
        for pass in &passes {
            print_pass(invocation, pass);
        }
        if failed {
            return Err(CliError::new(
                Exit::Failure,
                "some pool members could not be started or changed",
            )
            .into());
        }
        return Ok(());
    }
    printer.info(&format!(
        "keeping the pools on {:?} full (a pass every {}); Ctrl-C stops",
        host.context,
        crate::output::human_duration(args.interval)
    ));
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let sigterm = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = sigterm => {}
        }
    };
    run_keeper(invocation, &host, &fallback, args, shutdown).await;
    printer.info("stopped keeping the pools");
    Ok(())
}

async fn run_keeper(
    invocation: &Invocation,
    host: &Host,
    fallback: &str,
    args: &PoolKeepArgs,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let printer = &invocation.printer;
    crate::host::run_pool_keeper(
        host,
        fallback,
        args.interval,
        jiff::Timestamp::now,
        shutdown,
        |result| match result {
            Ok(passes) => passes.iter().for_each(|p| print_pass(invocation, p)),
            Err(e) => printer.warn(&format!("a pass over the pools failed: {e}; trying again")),
        },
    )
    .await;
}

fn print_pass(invocation: &Invocation, pass: &KeeperPass) {
    let printer = &invocation.printer;
    let pool = &pass.pool;
    if !pass.started.is_empty() {
        printer.info(&format!("pool {pool:?}: starting {}", pass.started.join(", ")));
    }
    for (member, seconds) in &pass.ready {
        printer.info(&format!(
            "pool {pool:?}: {member} is ready ({seconds:.1}s after it was started)"
        ));
    }
    if !pass.paused.is_empty() {
        printer.info(&format!("pool {pool:?}: paused {} while they wait", pass.paused.join(", ")));
    }
    if !pass.removed.is_empty() {
        printer
            .info(&format!("pool {pool:?}: removed {} (beyond its size)", pass.removed.join(", ")));
    }
    for failure in &pass.failed {
        printer.warn(&format!("pool {pool:?}: {failure}"));
    }
}
