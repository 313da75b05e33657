//! `vc create NAME`: builds the spec from the values file and flags, renders the host objects,
//! applies them in one concurrent round and watches until the cluster is ready.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{CreateArgs, OutputFormat};
use crate::commands::Session;
use crate::connection;
use crate::engine::{self, Placement};
use crate::error::CliError;
use crate::host::{self, Host, ReadyEvent};
use crate::output::Progress;
use crate::spec::{self, VirtualClusterSpec};

/// JSON result of `vc create -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateResult {
    name: String,
    namespace: String,
    kubernetes_version: String,
    phase: &'static str,
    kubeconfig_secret: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    /// The kubeconfig context, when connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<String>,
    /// The local forward's URL, when connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    /// Seconds per phase, keyed by the phase names of `output::PHASES`.
    timings: BTreeMap<&'static str, f64>,
}

/// Builds the spec: the values file first, then the flags over it.
fn build_spec(args: &CreateArgs) -> anyhow::Result<VirtualClusterSpec> {
    let mut spec = match &args.values {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!("cannot read values file {}: {e}", path.display()))
            })?;
            serde_saphyr::from_str::<Option<VirtualClusterSpec>>(&text)
                .map_err(|e| {
                    CliError::usage(format!(
                        "invalid values file {}: {}",
                        path.display(),
                        one_line(&e.to_string())
                    ))
                })?
                .unwrap_or_default()
        }
        None => VirtualClusterSpec::default(),
    };
    if let Some(v) = &args.kubernetes_version {
        spec.kubernetes_version = Some(v.clone());
    }
    if let Some(image) = &args.control_plane_image {
        spec.images.control_plane = Some(image.clone());
    }
    if let Some(image) = &args.engine_image {
        spec.images.engine = Some(image.clone());
    }
    if let Some(ttl) = &args.ttl {
        spec::parse_ttl(ttl)?;
        spec.ttl = Some(ttl.clone());
    }
    for label in &args.labels {
        let (k, v) = spec::parse_label(label)?;
        spec.labels.insert(k, v);
    }
    if args.no_isolation {
        spec.isolation.enabled = false;
    }
    if args.allow_internet {
        spec.isolation.allow_internet = true;
    }
    if args.no_quota {
        spec.quota.enabled = Some(false);
    }
    if let Some(quota) = &args.quota {
        spec.quota.hard.extend(spec::parse_quota(quota)?);
        spec.quota.enabled = Some(true);
    }
    spec.validate()?;
    Ok(spec)
}

/// The first line of a parser's message: it carries the line, column and reason; the rest is
/// a source excerpt.
fn one_line(text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

pub async fn run(session: &Session, args: CreateArgs) -> anyhow::Result<()> {
    let printer = &session.printer;
    spec::validate_name(&args.name)?;
    let spec = build_spec(&args)?;
    let (namespace, own_namespace) = match &session.global.namespace {
        Some(ns) => (ns.clone(), false),
        None => (engine::default_namespace(&args.name), true),
    };
    let mut placement = Placement {
        name: args.name.clone(),
        namespace: namespace.clone(),
        own_namespace,
        created_at: jiff::Timestamp::now(),
    };
    let rendered = engine::render(&spec, &placement)?;
    if args.dry_run {
        let list = host::as_list(&rendered.objects);
        return match printer.format {
            OutputFormat::Json => printer.structured_value(&list),
            _ => {
                printer.data(&crate::output::to_yaml(&list)?);
                Ok(())
            }
        };
    }

    let host = session.host().await?;
    let name = args.name.as_str();
    if let Some(existing) = host.get_record(&namespace, name).await? {
        if !args.upsert {
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} already exists in namespace {namespace:?} on context {:?} (apply again with --upsert, or remove it with: vc delete {name})",
                host.context
            ))
            .into());
        }
        // The record keeps its creation time across re-applies, and with it the expiry.
        if let Some(created) = existing.created_at {
            placement.created_at = created;
        }
    } else if !own_namespace && !host.namespace_exists(&namespace).await? {
        return Err(CliError::not_found(format!(
            "namespace {namespace:?} does not exist on context {:?}: create it first, or leave out --namespace to let vc create vc-{name}",
            host.context
        ))
        .into());
    }
    let rendered = engine::render(&spec, &placement)?;

    let mut progress = printer.progress(&format!(
        "creating virtual cluster {name:?} (Kubernetes {}) in namespace {namespace:?} on {:?}",
        rendered.kubernetes_version, host.context
    ));
    progress.phase("applying");
    let outcome = tokio::select! {
        result = apply_and_wait(&host, &rendered, &namespace, name, &args, &mut progress) => result,
        _ = tokio::signal::ctrl_c() => Err(Stop::Interrupted),
    };
    match outcome {
        Ok(ready) => {
            let connected = if ready && !args.no_connect {
                progress.phase("connected");
                match connect(session, &host, &namespace, name, &args).await {
                    Ok(connected) => Some(connected),
                    Err(e) => {
                        progress.abandon();
                        return Err(e.context(format!(
                            "virtual cluster {name:?} is ready, but connecting to it failed (retry with: vc connect {name})"
                        )));
                    }
                }
            } else {
                None
            };
            let timings = progress.finish();
            report(session, &rendered, &placement, ready, connected.as_ref(), &timings)
        }
        Err(Stop::Host(e)) => {
            progress.abandon();
            Err(e.into())
        }
        Err(Stop::Interrupted) => {
            progress.abandon();
            Err(CliError::interrupted(format!(
                "interrupted: what was applied of virtual cluster {name:?} stays in namespace {namespace:?}; remove it with: vc delete {name}"
            ))
            .into())
        }
        Err(Stop::TimedOut) => {
            progress.abandon();
            let why = host.diagnose(&namespace, name).await;
            let aftermath = if args.cleanup_on_failure {
                let own = host.owns_namespace(&namespace, name).await.unwrap_or(false);
                match host.get_record(&namespace, name).await {
                    Ok(Some(record)) => match host.delete_cluster(&record, own).await {
                        Ok(()) => "its objects were deleted (--cleanup-on-failure)".to_string(),
                        Err(e) => format!("deleting its objects failed: {e}"),
                    },
                    _ => "nothing was left to delete".to_string(),
                }
            } else {
                format!(
                    "its objects are left for inspection (vc describe {name}; vc delete {name})"
                )
            };
            Err(CliError::timeout(format!(
                "virtual cluster {name:?} did not become ready within {}: {why}; {aftermath}",
                humantime(args.timeout)
            ))
            .into())
        }
    }
}

/// Connects to the new cluster: background forward and kubeconfig context.
async fn connect(
    session: &Session,
    host: &Host,
    namespace: &str,
    name: &str,
    args: &CreateArgs,
) -> anyhow::Result<connection::Connected> {
    let (paths, _) = session.kubeconfigs()?;
    let target = connection::Target::new(host, namespace, name);
    let admin = connection::ready_admin_kubeconfig(host, &target, args.timeout).await?;
    connection::connect_background(
        &paths,
        session.global.kubeconfig.clone(),
        &target,
        &admin,
        args.local_port,
        !args.no_switch,
    )
    .await
}

enum Stop {
    Host(host::HostError),
    TimedOut,
    Interrupted,
}

impl From<host::HostError> for Stop {
    fn from(e: host::HostError) -> Self {
        Stop::Host(e)
    }
}

/// Applies the objects, then (unless `--no-wait`) watches until ready. Returns whether it
/// waited for readiness.
async fn apply_and_wait(
    host: &Host,
    rendered: &engine::Rendered,
    namespace: &str,
    name: &str,
    args: &CreateArgs,
    progress: &mut Progress,
) -> Result<bool, Stop> {
    host.apply_all(&rendered.objects).await?;
    if args.no_wait {
        return Ok(false);
    }
    progress.phase("scheduled");
    let wait = host.wait_ready(namespace, name, |event| match event {
        ReadyEvent::Scheduled => progress.phase("starting"),
        ReadyEvent::PodReady => progress.phase("ready"),
        ReadyEvent::Unschedulable(msg) => progress.note(&format!("not scheduled yet: {msg}")),
        ReadyEvent::Waiting { reason, message } => {
            progress.note(&format!("{reason}: {message}"));
        }
    });
    match tokio::time::timeout(args.timeout, wait).await {
        Ok(result) => result.map(|()| true).map_err(Stop::Host),
        Err(_) => Err(Stop::TimedOut),
    }
}

fn report(
    session: &Session,
    rendered: &engine::Rendered,
    placement: &Placement,
    ready: bool,
    connected: Option<&connection::Connected>,
    timings: &[(&'static str, Duration)],
) -> anyhow::Result<()> {
    let printer = &session.printer;
    let name = placement.name.as_str();
    let expires_at = rendered_expiry(rendered);
    let result = CreateResult {
        name: name.to_string(),
        namespace: placement.namespace.clone(),
        kubernetes_version: rendered.kubernetes_version.clone(),
        phase: if ready { "Running" } else { "Starting" },
        kubeconfig_secret: engine::kubeconfig_secret_name(name),
        created_at: placement.created_at.to_string(),
        expires_at,
        context: connected.map(|c| c.entry.context_name.clone()),
        server: connected.map(|c| c.server_url.clone()),
        timings: timings
            .iter()
            .map(|(p, d)| (*p, (d.as_secs_f64() * 1000.0).round() / 1000.0))
            .collect(),
    };
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&result)?,
        OutputFormat::Name => printer.data(name),
        OutputFormat::Table => {
            let total: Duration = timings.iter().map(|(_, d)| *d).sum();
            if ready {
                printer.info(&format!(
                    "virtual cluster {name:?} is ready ({:.1}s)",
                    total.as_secs_f64()
                ));
            } else {
                printer.info(&format!(
                    "virtual cluster {name:?} applied; it is starting (see: vc list)"
                ));
            }
            if let Some(c) = connected {
                let now = if c.entry.switched { " (now the current context)" } else { "" };
                printer.info(&format!(
                    "kubectl context {}{now} reaches it through {}",
                    c.entry.context_name, c.server_url
                ));
            }
            if printer.stderr_tty {
                if connected.is_none() {
                    printer.info(&format!("  connect: vc connect {name}"));
                } else {
                    printer.info("  try:     kubectl get namespaces");
                }
                printer.info(&format!("  delete:  vc delete {name}"));
            }
        }
    }
    Ok(())
}

/// The expiry recorded on the rendered StatefulSet, if any.
fn rendered_expiry(rendered: &engine::Rendered) -> Option<String> {
    rendered.objects.iter().find_map(|o| match o {
        engine::HostObject::StatefulSet(sts) => sts
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(engine::ANNOTATION_EXPIRES_AT))
            .cloned(),
        _ => None,
    })
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) && s >= 3600 {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) && s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
