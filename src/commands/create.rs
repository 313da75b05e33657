//! `vc create NAME`: builds the spec from the values file and flags, renders the host objects,
//! applies them in one concurrent round and watches until the cluster is ready.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;

use crate::chart;
use crate::ci;
use crate::cli::{CreateArgs, HostingArgs, OutputFormat};
use crate::commands::Invocation;
use crate::connection;
use crate::engine::{self, Placement, rbac};
use crate::error::{CliError, Exit};
use crate::host::{self, Host, HostError, MadeBy, NamespaceState};
use crate::output::{Progress, human_duration};
use crate::provision::{self, Manifest};
use crate::snapshot::{restore, stream};
use crate::spec::{self, VirtualClusterSpec};

mod claim;
mod through_operator;

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
    /// The kubeconfig file holding the context, when connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    kubeconfig: Option<String>,
    /// Seconds per phase, keyed by the phase names of `output::PHASES`.
    timings: BTreeMap<&'static str, f64>,
    /// The pool it was claimed from (`--from-pool`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<String>,
    /// The name its host objects keep, when claimed from a pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    host_name: Option<String>,
    /// The VirtualCluster ("namespace/name") the operator made it for, when created
    /// through the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_cluster: Option<String>,
}

/// Builds the spec: the values file first, then the flags over it.
fn build_spec(
    args: &CreateArgs,
    plan: Option<&restore::Plan>,
    pool: Option<VirtualClusterSpec>,
) -> anyhow::Result<VirtualClusterSpec> {
    let mut spec = match &args.values {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!("cannot read values file {}: {e}", path.display()))
            })?;
            let mut spec = serde_saphyr::from_str::<Option<VirtualClusterSpec>>(&text)
                .map_err(|e| {
                    CliError::usage(format!(
                        "invalid values file {}: {}",
                        path.display(),
                        one_line(&e.to_string())
                    ))
                })?
                .unwrap_or_default();
            relative_to_values_file(&mut spec, path);
            spec
        }
        None if pool.is_some() => pool.unwrap_or_default(),
        None => plan.map(|p| restore_base_spec(p, &args.name)).transpose()?.unwrap_or_default(),
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
    if let Some(idle) = &args.sleep_after {
        spec.sleep_after = Some(idle.clone());
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
    if args.ephemeral {
        spec.persistence = Some(false);
    }
    if let Some(size) = &args.storage_size {
        spec.storage.size = Some(size.clone());
    }
    if let Some(class) = &args.storage_class {
        spec.storage.class_name = Some(class.clone());
    }
    if let Some(quota) = &args.quota {
        spec.quota.hard.extend(spec::parse_quota(quota)?);
        spec.quota.enabled = Some(true);
    }
    spec.manifests.extend(args.apply.iter().cloned());
    if !args.chart_values.is_empty() && args.charts.len() > 1 {
        return Err(CliError::usage(
            "--chart-values applies to one --chart; with several charts, list them under charts: in a values file (-f), each with its valuesFiles",
        )
        .into());
    }
    for chart in &args.charts {
        spec.charts.push(spec::parse_chart_flag(chart, &args.chart_values)?);
    }
    apply_hosting(&args.hosting, &mut spec)?;
    spec.validate()?;
    Ok(spec)
}

/// Manifest and chart paths in a values file are relative to the file's directory, as a user
/// reading the file expects; inline YAML and URLs stay as they are.
fn relative_to_values_file(spec: &mut VirtualClusterSpec, values_file: &std::path::Path) {
    let Some(dir) = values_file.parent() else { return };
    let absolute = |entry: &mut String| {
        let is_path = !entry.contains('\n') && !entry.contains("://");
        if is_path && std::path::Path::new(entry.as_str()).is_relative() {
            *entry = dir.join(entry.as_str()).display().to_string();
        }
    };
    spec.manifests.iter_mut().for_each(absolute);
    for chart in &mut spec.charts {
        chart.path.iter_mut().for_each(absolute);
        chart.values_files.iter_mut().for_each(absolute);
    }
}

/// How the rendered objects expose the cluster, if they do: its Ingress (the host of its
/// first rule; port and class from the spec), else its Service's type.
fn exposed_by(
    rendered: &engine::Rendered,
    name: &str,
    spec: &VirtualClusterSpec,
) -> Option<spec::ExposeSpec> {
    let ingress = rendered.objects.iter().find_map(|object| match object {
        engine::HostObject::Ingress(ingress) if ingress.metadata.name.as_deref() == Some(name) => {
            let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
            let host = rules.and_then(|r| r.iter().find_map(|rule| rule.host.clone()))?;
            let asked = spec.expose.as_ref().filter(|e| e.kind == spec::ExposeKind::Ingress);
            Some(spec::ExposeSpec {
                kind: spec::ExposeKind::Ingress,
                host: Some(host),
                port: asked.and_then(|e| e.port),
                class_name: asked.and_then(|e| e.class_name.clone()),
            })
        }
        _ => None,
    });
    ingress.or_else(|| {
        rendered.objects.iter().find_map(|object| match object {
            engine::HostObject::Service(svc) if svc.metadata.name.as_deref() == Some(name) => {
                match svc.spec.as_ref().and_then(|s| s.type_.as_deref()) {
                    Some("NodePort") => Some(spec::ExposeSpec::service(spec::ExposeKind::NodePort)),
                    Some("LoadBalancer") => {
                        Some(spec::ExposeSpec::service(spec::ExposeKind::LoadBalancer))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
    })
}

/// The placement flags over the values file's.
fn apply_hosting(args: &HostingArgs, spec: &mut VirtualClusterSpec) -> Result<(), spec::SpecError> {
    let placement = &mut spec.placement;
    for pair in &args.node_selector {
        let (key, value) =
            pair.split_once('=').ok_or_else(|| spec::SpecError::NodeSelector(pair.clone()))?;
        placement.node_selector.insert(key.to_string(), value.to_string());
    }
    placement.tolerations.extend(args.tolerations.iter().cloned());
    if let Some(name) = &args.runtime_class {
        placement.runtime_class_name = Some(name.clone());
    }
    if let Some(name) = &args.priority_class {
        placement.priority_class_name = Some(name.clone());
    }
    if let Some(expose) = &args.expose {
        spec.expose = Some(spec::parse_expose(expose)?);
    }
    if let Some(class) = &args.ingress_class {
        match spec.expose.as_mut().filter(|e| e.kind == spec::ExposeKind::Ingress) {
            Some(expose) => expose.class_name = Some(class.clone()),
            None => return Err(spec::SpecError::IngressClassWithoutIngress),
        }
    }
    if let Some(kind) = &args.datastore {
        spec.datastore.kind = spec::parse_datastore(kind)?;
    }
    if let Some(endpoint) = &args.etcd_endpoint {
        spec.datastore.endpoint = Some(endpoint.clone());
    }
    if let Some(secret) = &args.etcd_tls_secret {
        spec.datastore.tls_secret = Some(secret.clone());
    }
    Ok(())
}

/// The first line of a parser's message: it carries the line, column and reason; the rest is
/// a source excerpt.
fn one_line(text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

pub async fn run(invocation: &Invocation, mut args: CreateArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let plan = restore_plan(invocation, &mut args).await?;
    spec::validate_name(&args.name)?;
    // A claim from a warm pool, or the pool's spec to create from when it has no member.
    let pool_spec = match &args.from_pool {
        Some(pool) => match claim::run(invocation, &args, pool).await? {
            claim::Claim::Done => return Ok(()),
            claim::Claim::Fallback(spec) => Some(*spec),
        },
        None => None,
    };
    let mut spec = build_spec(&args, plan.as_ref(), pool_spec)?;
    let (namespace, own_namespace) = match &invocation.global.namespace {
        Some(ns) => {
            spec::validate_namespace(ns)?;
            (ns.clone(), false)
        }
        None => (engine::default_namespace(&args.name), true),
    };
    let mut placement = Placement {
        name: args.name.clone(),
        namespace: namespace.clone(),
        own_namespace,
        created_at: jiff::Timestamp::now(),
        host_minor: None,
    };
    let rendered = render(&spec, &placement, plan.as_ref())?;
    // Every manifest is read and checked before the host hears of the cluster.
    let mut manifests =
        provision::load(&spec.manifests).await.map_err(|e| CliError::usage(e.to_string()))?;
    // Charts too are fetched and rendered now, for the cluster's Kubernetes version.
    let charted = chart::load_all(&spec.charts, &rendered.kubernetes_version)
        .await
        .map_err(|e| CliError::usage(e.to_string()))?;
    manifests.extend(charted);
    if !manifests.is_empty() && args.no_wait {
        return Err(CliError::usage(
            "manifests and charts (--apply, --chart, manifests:, charts:) are applied once the cluster is ready, and --no-wait returns before that; drop one of the two",
        )
        .into());
    }
    // A snapshot is streamed in and a pool member claimed by this process: those stay direct.
    let direct_only = plan.is_some() || args.from_pool.is_some();
    if args.operator && direct_only {
        return Err(CliError::usage(
            "--operator cannot restore a snapshot or claim from a pool: vc streams the snapshot (or claims the member) itself; leave out --operator",
        )
        .into());
    }
    if args.dry_run && args.operator {
        return through_operator::dry_run(printer, &spec, &placement, &rendered);
    }
    if args.dry_run {
        let list = engine::as_list(&rendered.objects);
        return match printer.format {
            OutputFormat::Json => printer.structured_value(&list),
            _ => {
                printer.data(&crate::output::to_yaml(&list)?);
                Ok(())
            }
        };
    }

    let host = invocation.host().await?;
    let name = args.name.as_str();
    // One deadline for the whole command: a host that accepts connections and never answers
    // ends it at `--timeout` too.
    let deadline = Instant::now() + args.timeout;
    if !args.direct && !direct_only {
        let presence =
            tokio::time::timeout_at(deadline, crate::operator::client::presence(&host, &namespace))
                .await
                .map_err(|_| host.no_answer(args.timeout))??;
        match presence {
            crate::operator::client::Presence::Operator { identity } => {
                printer.detail(&format!(
                    "the operator {identity:?} holds the Lease: creating a VirtualCluster (--direct applies the objects from here)"
                ));
                let request = through_operator::Request {
                    spec: &spec,
                    placement: &placement,
                    rendered: &rendered,
                    manifests: &manifests,
                    deadline,
                };
                return through_operator::run(invocation, &host, &args, request).await;
            }
            absent if args.operator => {
                return Err(CliError::not_found(format!(
                    "cannot create virtual cluster {name:?} through the operator on context {:?}: {}; start one (vc operator install, or vc operator run), or leave out --operator",
                    host.context,
                    through_operator::why_direct(&absent)
                ))
                .into());
            }
            absent => printer.detail(&format!(
                "applying the objects from here: {}",
                through_operator::why_direct(&absent)
            )),
        }
    }
    let isolation = &spec.isolation;
    let with_ranges = isolation.enabled && isolation.allow_internet;
    let facts = async { Ok(host.network_facts(isolation.enabled, with_ranges).await?) };
    let rights = async { Ok(host.rules_in(&namespace).await?) };
    let service_ip = async { Ok(host.first_service_ip().await?) };
    let etcd_secret = async {
        match spec.datastore.external_etcd() {
            Some((_, secret)) => {
                Ok(host.check_etcd_tls_secret(&namespace, secret, own_namespace).await?)
            }
            None => Ok(()),
        }
    };
    let ingress = async {
        match exposed_by(&rendered, name, &spec) {
            Some(expose) if expose.kind == spec::ExposeKind::Ingress => {
                Ok(host.ingress_preflight(expose.class_name.as_deref()).await?)
            }
            _ => Ok(None),
        }
    };
    let preflight = async {
        futures::try_join!(
            check_existing(&host, &placement, args.upsert, &spec, false),
            facts,
            rights,
            service_ip,
            etcd_secret,
            ingress
        )
    };
    let (existing, facts, held, service_ip, (), ingress_warning) =
        tokio::time::timeout_at(deadline, preflight)
            .await
            .map_err(|_| host.no_answer(args.timeout))??;
    if let Some((created, _)) = existing {
        // The record keeps its creation time across re-applies, and with it the expiry.
        placement.created_at = created;
    }
    placement.host_minor = facts.minor;
    let warning = host::pin_isolation(&mut spec, &facts);
    let mut rendered = render(&spec, &placement, plan.as_ref())?;
    if let Some((_, Some(recorded))) = existing {
        rendered.keep_later_expiry(recorded);
    }
    // The engine's certificates, made here so its start skips making them; without the
    // service address the engine makes them itself, as it always could.
    if let Some(service_ip) = service_ip {
        let target = engine::pki::target_for(&spec, &placement, service_ip)?;
        let secret = engine::pki::render_certs_secret(&target, &host::pki_seed()?)?;
        rendered.add_certs(secret);
    }
    if let Some(held) = held {
        check_rights(&host, &placement, &rendered, &held).await?;
    }
    for warning in [warning, ingress_warning].into_iter().flatten() {
        printer.warn(&warning);
    }

    let mut progress = printer.progress(&format!(
        "creating virtual cluster {name:?} (Kubernetes {}) in namespace {namespace:?} on {:?}",
        rendered.kubernetes_version, host.context
    ));
    progress.phase("applying");
    let payload =
        Payload { spec: &spec, rendered: &rendered, plan: plan.as_ref(), manifests: &manifests };
    let outcome = tokio::select! {
        result = apply_wait_connect(invocation, &host, payload, &args, deadline, &mut progress) => result,
        _ = tokio::signal::ctrl_c() => Err(Stop::Interrupted),
    };
    let stop = match outcome {
        Ok((ready, connected)) => {
            let timings = progress.finish();
            let made = Made { rendered: &rendered, placement: &placement, virtual_cluster: None };
            return report(invocation, &made, ready, connected.as_ref(), &timings);
        }
        Err(stop) => {
            progress.abandon();
            stop
        }
    };
    // A second Ctrl-C stops the diagnosis and the cleanup too.
    tokio::select! {
        error = explain_failure(&host, &placement, &args, plan.is_some(), stop) => Err(error),
        _ = tokio::signal::ctrl_c() => Err(CliError::interrupted(format!(
            "interrupted: what was applied of virtual cluster {name:?} stays in namespace {namespace:?}; remove it with: vc delete {name}"
        )).into()),
    }
}

/// Refuses, before anything is applied, a create the user's rights cannot complete: every
/// object must be appliable and every rule of the engine's Role held (RBAC lets a user grant
/// only what they hold). Names the missing rules and the one-time grant that adds them.
async fn check_rights(
    host: &Host,
    placement: &Placement,
    rendered: &engine::Rendered,
    held: &[k8s_openapi::api::rbac::v1::PolicyRule],
) -> anyhow::Result<()> {
    let missing = rbac::missing_rules(&rbac::required_rules(&rendered.objects), held);
    if missing.is_empty() {
        return Ok(());
    }
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    let user = host.user_name().await.unwrap_or_else(|| "USER".to_string());
    let rules: Vec<String> =
        missing.iter().map(|r| format!("  {}", rbac::describe_rule(r))).collect();
    Err(CliError::unreachable(format!(
        "cannot create virtual cluster {name:?} in namespace {namespace:?} on context {:?}: you lack these rights there (and RBAC lets you grant the engine only what you hold):\n{}\nnothing was applied; a cluster admin can grant them once for this namespace with: vc rbac {namespace} --user {user} | kubectl apply -f -",
        host.context,
        rules.join("\n")
    ))
    .into())
}

/// Refuses to create over something that exists, unless `--upsert` re-applies a cluster `vc`
/// made. Returns the creation time and the recorded expiry of the cluster being re-applied.
/// Through the operator (`through_operator`), the cluster being re-applied is the
/// VirtualCluster's, and one `vc create` made is refused with the way to adopt it.
async fn check_existing(
    host: &Host,
    placement: &Placement,
    upsert: bool,
    spec: &VirtualClusterSpec,
    through_operator: bool,
) -> anyhow::Result<Option<(jiff::Timestamp, Option<jiff::Timestamp>)>> {
    let persistent = spec.persistent();
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    let context = &host.context;
    match host.namespace_state(namespace).await? {
        NamespaceState::Present { terminating: true, .. } => {
            return Err(CliError::conflict(format!(
                "namespace {namespace:?} is being deleted on context {context:?}; wait until it is gone (kubectl get namespace {namespace}) and retry"
            ))
            .into());
        }
        NamespaceState::Present { made_for, .. }
            if placement.own_namespace && made_for.as_deref() != Some(name) =>
        {
            return Err(CliError::conflict(format!(
                "namespace {namespace:?} already exists on context {context:?} and was not created by vc for {name:?}; create the cluster inside it with --namespace {namespace}, or pick another name"
            ))
            .into());
        }
        NamespaceState::Absent if !placement.own_namespace => {
            return Err(CliError::not_found(format!(
                "namespace {namespace:?} does not exist on context {context:?}: create it first, or leave out --namespace to let vc create vc-{name}"
            ))
            .into());
        }
        _ => {}
    }
    if let Some(sts) = host.statefulset(namespace, name).await? {
        let Some(existing) = host::record_from(&sts).filter(|_| {
            sts.metadata.labels.as_ref().and_then(|l| l.get(engine::LABEL_APP)).map(String::as_str)
                == Some(engine::APP_VCLUSTER)
        }) else {
            return Err(CliError::conflict(format!(
                "a StatefulSet named {name:?} that is not a virtual cluster exists in namespace {namespace:?}; pick another name or namespace"
            ))
            .into());
        };
        if through_operator && existing.made_by == MadeBy::Vc {
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} in namespace {namespace:?} on context {context:?} was made by vc create, not by a VirtualCluster; hand it to one with: vc adopt {name} -n {namespace}, or re-apply it directly with: vc create {name} --direct --upsert"
            ))
            .into());
        }
        if existing.made_by == MadeBy::VirtualCluster && !through_operator {
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} in namespace {namespace:?} was made by the VirtualCluster {:?}; change it there instead: kubectl edit vcl {} -n {namespace}",
                existing.virtual_cluster.as_deref().unwrap_or(name),
                existing.virtual_cluster.as_deref().unwrap_or(name),
            ))
            .into());
        }
        if existing.made_by == MadeBy::Vcluster {
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} in namespace {namespace:?} was made by the vcluster CLI; vc does not re-apply it"
            ))
            .into());
        }
        if existing.deleting {
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} in namespace {namespace:?} is being deleted; wait for it to go and retry"
            ))
            .into());
        }
        if upsert && existing.is_paused() {
            // A re-apply would set the replicas back and leave the pause markers behind.
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} in namespace {namespace:?} is paused; resume it first (vc resume {name}), then apply again"
            ))
            .into());
        }
        if !upsert {
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} already exists in namespace {namespace:?} on context {context:?} (apply again with --upsert, or remove it with: vc delete {name})"
            ))
            .into());
        }
        // A StatefulSet's volume claim templates cannot change after it is created.
        let was_persistent = existing.spec.as_ref().is_none_or(VirtualClusterSpec::persistent);
        if was_persistent != persistent {
            let (was, fix) = if was_persistent {
                ("with a volume claim", "")
            } else {
                ("with --ephemeral (no volume claim)", " --ephemeral")
            };
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} in namespace {namespace:?} was created {was}, which cannot change on an existing cluster; apply again with the same choice (vc create {name} --upsert{fix}), or delete it and create it anew"
            ))
            .into());
        }
        // The engine refuses to start on another backing store than its first, and a new one
        // would be empty.
        let was_datastore = existing.spec.as_ref().map(|s| s.datastore.clone()).unwrap_or_default();
        if was_datastore != spec.datastore {
            let shown = |d: &spec::DatastoreSpec| match d.external_etcd() {
                Some((endpoint, _)) => format!("etcd at {endpoint}"),
                None => d.kind.as_str().to_string(),
            };
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} in namespace {namespace:?} keeps its data in {}, which cannot change on an existing cluster (asked: {}); apply again with the same datastore, or copy it into a new cluster of the other kind: vc snapshot {name} --to FILE, then vc create NEW --from-snapshot FILE --datastore KIND",
                shown(&was_datastore),
                shown(&spec.datastore)
            ))
            .into());
        }
        let was_storage = existing.spec.as_ref().map(|s| s.storage.clone()).unwrap_or_default();
        if persistent && was_storage != spec.storage {
            let shown = |s: &spec::StorageSpec| {
                format!(
                    "size {}, class {}",
                    s.size.as_deref().unwrap_or("5Gi (default)"),
                    s.class_name.as_deref().unwrap_or("the host's default")
                )
            };
            return Err(CliError::conflict(format!(
                "virtual cluster {name:?} in namespace {namespace:?} has a volume claim of {}, which cannot change on an existing cluster (asked: {}); apply again with the same --storage-size and --storage-class, or delete it and create it anew",
                shown(&was_storage),
                shown(&spec.storage)
            ))
            .into());
        }
        return Ok(existing.created_at.map(|created| (created, existing.expires_at)));
    }
    // The engine runs one virtual cluster per namespace (since v0.25 it refuses to start a
    // second one), so refuse before anything is applied.
    if let Some((other, made_by)) =
        host.clusters_in(namespace).await?.into_iter().find(|(other, _)| other != name)
    {
        let by = match made_by {
            MadeBy::Vc => "vc",
            MadeBy::Vcluster => "the vcluster CLI",
            MadeBy::VirtualCluster => "a VirtualCluster",
        };
        return Err(CliError::conflict(format!(
            "namespace {namespace:?} already holds virtual cluster {other:?} (made by {by}) on context {context:?}; the engine runs one virtual cluster per namespace: pick another namespace, or leave out --namespace to let vc create vc-{name}"
        ))
        .into());
    }
    if placement.own_namespace {
        // Names are unique across namespaces unless the user places clusters explicitly.
        match host.find(name, None).await {
            Ok(other) => {
                return Err(CliError::conflict(format!(
                    "virtual cluster {name:?} already exists in namespace {:?} on context {context:?}; pick another name, or pass --namespace to create a second one elsewhere",
                    other.namespace
                ))
                .into());
            }
            // Best effort: a user who may not look elsewhere cannot clash with what is there.
            Err(HostError::NotFound(_) | HostError::Ambiguous(_) | HostError::Forbidden { .. }) => {
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// How long a create whose API already answers waits for the kubelet to mark the pod Ready:
/// two ticks of the 1 s startup and readiness probes, and a little over.
const POD_READY_GRACE: Duration = Duration::from_secs(3);

/// How long the diagnosis of a timed-out create may take: the deadline has already passed.
const DIAGNOSE_TIMEOUT: Duration = Duration::from_secs(5);

// What the direct path and the operator's say alike of a create that stopped.

fn connect_failed(name: &str, e: anyhow::Error) -> anyhow::Error {
    e.context(format!(
        "virtual cluster {name:?} is ready, but connecting to it failed (retry with: vc connect {name})"
    ))
}

fn host_failed(name: &str, e: &HostError) -> (Exit, String) {
    (e.exit(), format!("creating virtual cluster {name:?} failed: {e}"))
}

fn provision_failed(name: &str, e: &anyhow::Error) -> (Exit, String) {
    (
        Exit::Failure,
        format!("virtual cluster {name:?} is ready, but {}", lowercase_first(&e.to_string())),
    )
}

fn interrupted(name: &str) -> (Exit, String) {
    (Exit::Interrupted, format!("interrupted while creating virtual cluster {name:?}"))
}

/// Why a create stopped, phrased for the user, after the cleanup `--cleanup-on-failure` asks for.
async fn explain_failure(
    host: &Host,
    placement: &Placement,
    args: &CreateArgs,
    restoring: bool,
    stop: Stop,
) -> anyhow::Error {
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    let (exit, what) = match stop {
        Stop::Connect(e) => return connect_failed(name, e),
        Stop::Host(e) => host_failed(name, &e),
        Stop::Provision(e) => provision_failed(name, &e),
        Stop::Restore(e) => (
            Exit::Failure,
            format!("restoring the snapshot into virtual cluster {name:?} failed: {e:#}"),
        ),
        Stop::Interrupted => interrupted(name),
        Stop::TimedOut => {
            let why = tokio::time::timeout(DIAGNOSE_TIMEOUT, host.diagnose(namespace, name))
                .await
                .unwrap_or_else(|_| {
                    "the host did not answer while vc looked for the reason".into()
                });
            (
                Exit::Timeout,
                format!(
                    "virtual cluster {name:?} did not become ready within {}: {why}",
                    human_duration(args.timeout)
                ),
            )
        }
    };
    // A failed restore removes what it made unless asked to keep it.
    let aftermath = if args.cleanup_on_failure || (restoring && !args.keep_on_failure) {
        match cleanup(host, placement).await {
            Ok(true) if restoring => {
                "its objects were deleted (--keep-on-failure keeps them)".to_string()
            }
            Ok(true) => "its objects were deleted (--cleanup-on-failure)".to_string(),
            Ok(false) => "nothing was left to delete".to_string(),
            Err(e) => format!("deleting its objects failed: {e}"),
        }
    } else {
        format!(
            "what was applied stays in namespace {namespace:?} (vc describe {name}; vc delete {name})"
        )
    };
    CliError::new(exit, format!("{what}; {aftermath}")).into()
}

/// Deletes what a failed create applied; false when nothing was there.
async fn cleanup(host: &Host, placement: &Placement) -> Result<bool, HostError> {
    let (name, namespace) = (placement.name.as_str(), placement.namespace.as_str());
    let own = host.owns_namespace(namespace, name).await?;
    match host.get_record(namespace, name).await? {
        Some(record) => host.delete_cluster(&record, own).await.map(|()| true),
        None if own => {
            // The apply stopped before the StatefulSet: the namespace holds the rest.
            let record = host::ClusterRecord::placeholder(name, namespace);
            host.delete_cluster(&record, true).await.map(|()| true)
        }
        None => Ok(false),
    }
}

/// Connects to the new cluster: background forward and kubeconfig context, with the admin
/// kubeconfig the race proved working, else the engine's kubeconfig Secret.
async fn connect(
    invocation: &Invocation,
    host: &Host,
    args: &CreateArgs,
    deadline: Instant,
    admin: Option<crate::kubeconfig::Kubeconfig>,
    exposed: Option<(spec::ExposeSpec, &mut Progress)>,
) -> anyhow::Result<connection::Connected> {
    let (paths, _) = invocation.kubeconfigs()?;
    let target = connection::Target::new(host, &namespace_of(invocation, &args.name), &args.name);
    let remaining = deadline.saturating_duration_since(Instant::now());
    let admin = match admin {
        Some(admin) => admin,
        None => connection::ready_admin_kubeconfig(host, &target, remaining).await?,
    };
    if let Some((expose, progress)) = exposed {
        progress.phase("exposed");
        let remaining = deadline.saturating_duration_since(Instant::now());
        let server_url =
            connection::exposed_server(host, &target, &expose, &admin, remaining, |url| {
                progress.note(&format!("exposed at {url}"));
            })
            .await?;
        progress.phase("connected");
        let entry =
            connection::connect_direct(&paths, &target, &admin, &server_url, !args.no_switch)
                .await?;
        return Ok(connection::Connected { port: None, server_url, entry });
    }
    connection::connect_background(
        &paths,
        invocation.global.kubeconfig.clone(),
        &target,
        &admin,
        args.local_port,
        !args.no_switch,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await
}

fn namespace_of(invocation: &Invocation, name: &str) -> String {
    invocation.global.namespace.clone().unwrap_or_else(|| engine::default_namespace(name))
}

/// What a create puts on the host and, once it is ready, inside the cluster.
struct Payload<'a> {
    spec: &'a VirtualClusterSpec,
    rendered: &'a engine::Rendered,
    plan: Option<&'a restore::Plan>,
    manifests: &'a [Manifest],
}

enum Stop {
    Host(host::HostError),
    Provision(anyhow::Error),
    Restore(anyhow::Error),
    Connect(anyhow::Error),
    TimedOut,
    Interrupted,
}

impl From<host::HostError> for Stop {
    fn from(e: host::HostError) -> Self {
        Stop::Host(e)
    }
}

/// Applies the objects, then (unless `--no-wait`) watches until ready, then (unless
/// `--no-connect`) connects. Returns whether it waited for readiness, and the connection.
async fn apply_wait_connect(
    invocation: &Invocation,
    host: &Host,
    payload: Payload<'_>,
    args: &CreateArgs,
    deadline: Instant,
    progress: &mut Progress,
) -> Result<(bool, Option<connection::Connected>), Stop> {
    let Payload { spec, rendered, plan, manifests } = payload;
    let name = args.name.as_str();
    // An exposed cluster is connected to at its address, unless --forward asks for a forward.
    let exposed = exposed_by(rendered, name, spec).filter(|_| !args.hosting.forward);
    let namespace = namespace_of(invocation, name);
    match tokio::time::timeout_at(deadline, host.apply_all(&rendered.objects, args.upsert)).await {
        Ok(result) => result?,
        Err(_) => return Err(Stop::Host(host.no_answer(args.timeout))),
    }
    if let Some(plan) = plan {
        let restored =
            restore_datastore(invocation, host, &namespace, name, plan, deadline, progress);
        match tokio::time::timeout_at(deadline, restored).await {
            Ok(result) => result.map_err(Stop::Restore)?,
            Err(_) => return Err(Stop::TimedOut),
        }
    }
    if args.no_wait {
        return Ok((false, None));
    }
    progress.phase("scheduled");
    // The kubelet's view (pod events, failures that will not heal, and the fallback: pod
    // Ready plus the engine's kubeconfig Secret) and vc's own race through a forward run
    // together; whichever proves the cluster ready first ends the wait.
    let progress = std::cell::RefCell::new(progress);
    let mut seen = Vec::new();
    let watch = host.wait_ready(&namespace, name, |event| {
        if seen.contains(&event) {
            return;
        }
        seen.push(event.clone());
        let mut progress = progress.borrow_mut();
        let (phase, note) = event.shown();
        if let Some(phase) = phase {
            progress.phase(phase);
        }
        if let Some(note) = note {
            progress.note(&note);
        }
    });
    let target = connection::Target::new(host, &namespace, name);
    let race = connection::race_ready(host, &target, || progress.borrow_mut().phase("ready"));
    let wait = async {
        tokio::pin!(watch);
        tokio::pin!(race);
        let mut racing = true;
        loop {
            tokio::select! {
                raced = &mut race, if racing => match raced {
                    Ok(admin) => {
                        // The API answers; the kubelet marks the pod Ready (what vc list and
                        // describe show) at its next probe ticks. Waiting that little while
                        // keeps them from saying Starting right after create said ready; a
                        // pod that takes longer is left to them.
                        let _ = tokio::time::timeout(POD_READY_GRACE, &mut watch).await;
                        return Ok(Some(admin));
                    }
                    // The race cannot run here (the certificate Secret cannot be read, say):
                    // the kubelet's readiness decides alone.
                    Err(_) => racing = false,
                },
                watched = &mut watch => return watched.map(|()| None),
            }
        }
    };
    let admin = match tokio::time::timeout_at(deadline, wait).await {
        Ok(result) => result?,
        Err(_) => return Err(Stop::TimedOut),
    };
    let progress = progress.into_inner();
    let admin = if manifests.is_empty() {
        admin
    } else {
        progress.phase("provisioning");
        let target = connection::Target::new(host, &namespace, name);
        let provisioned = provision_inside(host, &target, admin, manifests, progress);
        match tokio::time::timeout_at(deadline, provisioned).await {
            Ok(result) => Some(result.map_err(Stop::Provision)?),
            Err(_) => return Err(Stop::TimedOut),
        }
    };
    if args.no_connect {
        return Ok((true, None));
    }
    if exposed.is_none() {
        progress.phase("connected");
    }
    match connect(invocation, host, args, deadline, admin, exposed.map(|kind| (kind, progress)))
        .await
    {
        Ok(connected) => Ok((true, Some(connected))),
        Err(e) => Err(Stop::Connect(e)),
    }
}

/// Applies the manifests inside the ready cluster through a forward of its own; returns the
/// admin kubeconfig it used, for the connect that follows.
async fn provision_inside(
    host: &Host,
    target: &connection::Target,
    admin: Option<crate::kubeconfig::Kubeconfig>,
    manifests: &[Manifest],
    progress: &mut Progress,
) -> anyhow::Result<crate::kubeconfig::Kubeconfig> {
    let admin = match admin {
        Some(admin) => admin,
        None => connection::ready_admin_kubeconfig(host, target, Duration::from_secs(30)).await?,
    };
    let (forward, client) = connection::virtual_client(host, target, &admin).await?;
    let applied = provision::apply(&client, manifests, |_| {}).await?;
    drop(forward);
    progress
        .note(&format!("applied {applied} object{} inside", if applied == 1 { "" } else { "s" }));
    Ok(admin)
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// Renders the host objects; a cluster made from a snapshot gets the restore init container.
fn render(
    spec: &VirtualClusterSpec,
    placement: &Placement,
    plan: Option<&restore::Plan>,
) -> anyhow::Result<engine::Rendered> {
    let mut rendered = engine::render(spec, placement)?;
    if let Some(plan) = plan {
        restore::check_version_change(
            &plan.metadata.kubernetes_version,
            &rendered.kubernetes_version,
        )
        .map_err(CliError::usage)?;
        for object in &mut rendered.objects {
            if let Some(sts) = object.as_control_plane_mut() {
                engine::restore::add_restore_init_container(sts, &stream::restore_wait_script());
            }
        }
    }
    Ok(rendered)
}

/// For `--from-snapshot` (and `vc restore`), verifies the whole file before anything else; for
/// `vc clone`, finds the running source. An empty name becomes the snapshot's own.
async fn restore_plan(
    invocation: &Invocation,
    args: &mut CreateArgs,
) -> anyhow::Result<Option<restore::Plan>> {
    let refused = |e: restore::RestoreError| {
        CliError::new(Exit::Failure, format!("{e}; nothing was created"))
    };
    if args.ephemeral && (args.from_snapshot.is_some() || args.from_cluster.is_some()) {
        // The restore's done-marker lives on the data volume: on an emptyDir, a replaced pod
        // would wait for a snapshot stream that never comes.
        return Err(CliError::usage(
            "--from-snapshot cannot be combined with --ephemeral: a restored cluster keeps its datastore on a volume claim; leave out --ephemeral",
        )
        .into());
    }
    let plan = if let Some(source) = args.from_snapshot.as_ref().filter(|s| restore::is_url(s)) {
        let (metadata, trailer) = restore::verify_url(source).await.map_err(refused)?;
        let source = restore::Source::Url(source.clone());
        restore::Plan { source, metadata, verified: Some(trailer) }
    } else if args.from_snapshot.as_deref().is_some_and(restore::is_stdin) {
        let refused = |e: restore::RestoreError| match e {
            restore::RestoreError::StdinIsTerminal => CliError::usage(e.to_string()),
            e => refused(e),
        };
        let (metadata, head) = restore::read_stdin_head().await.map_err(refused)?;
        restore::Plan { source: restore::Source::Stdin { head }, metadata, verified: None }
    } else if let Some(source) = &args.from_snapshot {
        let path = std::path::PathBuf::from(source);
        let (metadata, trailer) = restore::verify_file(&path).await.map_err(refused)?;
        restore::Plan { source: restore::Source::File(path), metadata, verified: Some(trailer) }
    } else if let Some(source) = &args.from_cluster {
        spec::validate_name(source)?;
        let host = invocation.host().await?;
        let record = host.find(source, None).await?;
        let pod = crate::snapshot::running_syncer_pod(&host, &record).await?;
        let metadata = crate::snapshot::metadata_for(&record);
        restore::Plan {
            source: restore::Source::Cluster { namespace: record.namespace, pod },
            metadata,
            verified: None,
        }
    } else {
        return Ok(None);
    };
    if args.name.is_empty() {
        args.name = plan.metadata.cluster.clone();
    }
    Ok(Some(plan))
}

/// The spec a restored cluster starts from: the source's recorded spec, without the facts
/// pinned from the source's host (they are read again from this one).
fn restore_base_spec(plan: &restore::Plan, name: &str) -> anyhow::Result<VirtualClusterSpec> {
    if plan.metadata.spec.is_null() {
        return Ok(VirtualClusterSpec::default());
    }
    let mut spec: VirtualClusterSpec =
        serde_json::from_value(plan.metadata.spec.clone()).map_err(|e| {
            CliError::usage(format!("the snapshot's recorded spec cannot be read: {e}"))
        })?;
    spec.isolation.host_api.clear();
    spec.isolation.host_ranges.clear();
    // What the source's manifests made is in its datastore; they are not applied again.
    spec.manifests.clear();
    spec.charts.clear();
    // The engine's restore empties the datastore it writes to: a copy of a cluster on an
    // external etcd gets an etcd of its own, never the source's.
    if spec.datastore.external_etcd().is_some() {
        spec.datastore.endpoint = None;
        spec.datastore.tls_secret = None;
    }
    // An Ingress host names the source cluster: a copy under another name would claim it too.
    if plan.metadata.cluster != name
        && spec.expose.as_ref().is_some_and(|e| e.kind == spec::ExposeKind::Ingress)
    {
        spec.expose = None;
    }
    Ok(spec)
}

/// Waits for the new pod's restore container, streams the snapshot in and lets the engine
/// write the datastore; the API server starts after it.
async fn restore_datastore(
    invocation: &Invocation,
    host: &Host,
    namespace: &str,
    name: &str,
    plan: &restore::Plan,
    deadline: Instant,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let pod = format!("{name}-0");
    let remaining = deadline.saturating_duration_since(Instant::now());
    restore::wait_for_restore_container(&host.client, namespace, &pod, remaining).await?;
    progress.note(&format!("restoring the snapshot of {:?}", plan.metadata.cluster));
    let transfer = invocation.printer.transfer("restore");
    let counter = transfer.counter();
    let work = restore::restore(&host.client, namespace, &pod, plan, counter);
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            transfer.tick();
        }
    };
    let result = tokio::select! {
        r = work => r,
        () = ticker => unreachable!("the ticker never ends"),
    };
    match result {
        Ok(trailer) => {
            transfer.finish(&format!("{} keys", trailer.entries));
            Ok(())
        }
        Err(e) => {
            transfer.abandon();
            Err(e.into())
        }
    }
}

/// What a create made, for its report.
struct Made<'a> {
    rendered: &'a engine::Rendered,
    placement: &'a Placement,
    /// The VirtualCluster ("namespace/name") it was made through, if any.
    virtual_cluster: Option<String>,
}

fn report(
    invocation: &Invocation,
    made: &Made<'_>,
    ready: bool,
    connected: Option<&connection::Connected>,
    timings: &[(&'static str, Duration)],
) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let Made { rendered, placement, .. } = made;
    let name = placement.name.as_str();
    let expires_at = rendered.expires_at.map(|t| t.to_string());
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
        kubeconfig: connected.map(|c| c.entry.file.display().to_string()),
        timings: timings
            .iter()
            .map(|(p, d)| (*p, (d.as_secs_f64() * 1000.0).round() / 1000.0))
            .collect(),
        pool: None,
        host_name: None,
        virtual_cluster: made.virtual_cluster.clone(),
    };
    write_ci_outputs(printer, &result, ready, timings);
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

/// The GitHub step outputs and job summary line of a create or a claim (when the runner asks
/// for them); a file that cannot be written is a warning.
fn write_ci_outputs(
    printer: &crate::output::Printer,
    result: &CreateResult,
    ready: bool,
    timings: &[(&'static str, Duration)],
) {
    let outputs = ci::ClusterOutputs {
        name: result.name.clone(),
        namespace: result.namespace.clone(),
        context: result.context.clone(),
        kubeconfig: result.kubeconfig.clone(),
        server: result.server.clone(),
    };
    let summary = ci::summary_line(&outputs, &result.kubernetes_version, ready, timings);
    for warning in [ci::write_outputs(&outputs), ci::write_summary(&summary)].into_iter().flatten()
    {
        printer.warn(&warning);
    }
}
