//! `vc describe NAME`: the record, the host objects and their state, recent warnings, quota
//! usage, and how to connect.

use serde::Serialize;

use crate::cli::{DescribeArgs, OutputFormat};
use crate::commands::Invocation;
use crate::host::{MadeBy, ObjectState, PAUSE_REASON_IDLE, QuotaUsage};
use crate::spec::{ExposeKind, ExposeSpec, PlacementSpec, VirtualClusterSpec};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    name: String,
    namespace: String,
    status: &'static str,
    made_by: MadeBy,
    /// The VirtualCluster (`namespace/name`) that owns it, for one made by the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_cluster: Option<String>,
    /// The pool it was started for, claimed or waiting in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<String>,
    /// The name its host objects keep after a claim from a pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    host_name: Option<String>,
    /// When it was claimed from its pool (its TTL counts from then).
    #[serde(skip_serializing_if = "Option::is_none")]
    claimed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubernetes_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    /// When it was paused, while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    paused_at: Option<String>,
    /// Who paused it: "vc pause", "vc gc (idle)", "vcluster CLI", or for a VirtualCluster's
    /// cluster "spec.paused" or "operator (idle)".
    #[serde(skip_serializing_if = "Option::is_none")]
    paused_by: Option<&'static str>,
    /// The idle limit (`vc create --sleep-after`).
    #[serde(skip_serializing_if = "Option::is_none")]
    sleep_after: Option<String>,
    /// The last request seen through a vc forward, or the last resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_activity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<VirtualClusterSpec>,
    /// What the control plane may reach outside the cluster, from the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    host_api_egress: Option<String>,
    /// The datastore kind (`sqlite` or `etcd`), from the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    datastore: Option<&'static str>,
    /// Where the API server is exposed (`vc create --expose`): the URL `vc connect` uses, and
    /// how the host serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<Endpoint>,
    /// The placement the control plane carries and the engine enforces on every synced pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    enforced: Option<PlacementSpec>,
    objects: Vec<ObjectState>,
    quota: Vec<QuotaUsage>,
    warnings: Vec<String>,
    connect: String,
}

/// The exposed endpoint, as `describe` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    /// `NodePort`, `LoadBalancer` or `Ingress`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The server URL; absent while the host has assigned no address.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// Ingress only: the address its controller published, absent while it has published none.
    #[serde(skip_serializing_if = "Option::is_none")]
    ingress_address: Option<String>,
    /// Ingress only: its IngressClass, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    ingress_class: Option<String>,
}

/// Looks up the exposed endpoint; what the host will not tell is left out, never an error.
async fn endpoint(
    host: &crate::host::Host,
    namespace: &str,
    name: &str,
    expose: &ExposeSpec,
) -> Endpoint {
    let url = host.exposed_url(namespace, name, expose).await.ok().flatten();
    let ingress_address = if expose.kind == ExposeKind::Ingress {
        host.ingress_address(namespace, name).await.ok().flatten()
    } else {
        None
    };
    Endpoint {
        kind: expose.kind.as_str(),
        url,
        ingress_address,
        ingress_class: expose.class_name.clone(),
    }
}

pub async fn run(invocation: &Invocation, args: DescribeArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let now = invocation.now()?;
    let host = invocation.host().await?;
    let record = host.find(&args.name, invocation.global.namespace.as_deref()).await?;
    let (objects, quota, pods) = host.cluster_objects(&record).await?;
    let name = record.host_name.as_str();
    let (pod, claim, headless) =
        (format!("{name}-0"), format!("data-{name}-0"), format!("{name}-headless"));
    // A running cluster's warnings from before its control plane became ready are start-up
    // noise (probes failing while it started, a claim binding).
    let ready_since = pods
        .iter()
        .filter(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
        .flat_map(|p| p.status.iter().flat_map(|s| s.conditions.iter().flatten()))
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
    let warnings = host
        .warning_events_since(&record.namespace, &[name, &pod, &claim, &headless], ready_since)
        .await;
    let endpoint = match record.spec.as_ref().and_then(|s| s.expose.as_ref()) {
        Some(expose) => Some(endpoint(&host, &record.namespace, name, expose).await),
        None => None,
    };
    let description = Description {
        name: record.name.clone(),
        namespace: record.namespace.clone(),
        status: record.status(&pods, now).as_str(),
        made_by: record.made_by,
        virtual_cluster: record
            .virtual_cluster
            .as_ref()
            .map(|v| format!("{}/{v}", record.namespace)),
        pool: record.pool.clone(),
        host_name: record.is_claimed().then(|| record.host_name.clone()),
        claimed_at: record.claimed_at.map(|t| t.to_string()),
        kubernetes_version: record.kubernetes_version.clone(),
        created_at: record.created_at.map(|t| t.to_string()),
        expires_at: record.expires_at.map(|t| t.to_string()),
        paused_at: record.paused_at.filter(|_| record.is_paused()).map(|t| t.to_string()),
        paused_by: record.is_paused().then_some(match record.pause_reason.as_deref() {
            Some(PAUSE_REASON_IDLE) if record.virtual_cluster.is_some() => "operator (idle)",
            Some(PAUSE_REASON_IDLE) => "vc gc (idle)",
            Some(_) if record.virtual_cluster.is_some() => "spec.paused",
            Some(_) => "vc pause",
            None if record.paused => "vcluster CLI",
            None => "scaled to zero by hand",
        }),
        sleep_after: record.spec.as_ref().and_then(|s| s.sleep_after.clone()),
        last_activity: record.last_activity.map(|t| t.to_string()),
        spec: record.spec.clone(),
        host_api_egress: record.spec.as_ref().and_then(host_api_egress),
        datastore: record.datastore(),
        endpoint,
        enforced: record.spec.as_ref().map(|s| s.placement.clone()).filter(|p| !p.is_empty()),
        objects,
        quota,
        warnings: warnings.into_iter().take(10).collect(),
        connect: format!("vc connect {}", record.name),
    };
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&description),
        OutputFormat::Name => {
            printer.data(&description.name);
            Ok(())
        }
        OutputFormat::Table => {
            printer.data(&render_text(&description)?);
            Ok(())
        }
    }
}

/// Where the control plane's egress to the host API goes, as the policies have it.
fn host_api_egress(spec: &VirtualClusterSpec) -> Option<String> {
    if !spec.isolation.enabled {
        return None;
    }
    Some(if spec.isolation.host_api.is_empty() {
        "any address on ports 443, 6443, 8443 (the host's API endpoints could not be read at create time)".to_string()
    } else {
        spec.isolation.host_api.join(", ")
    })
}

fn render_text(d: &Description) -> anyhow::Result<String> {
    let mut out = String::new();
    let field = |out: &mut String, key: &str, value: &str| {
        out.push_str(&format!("{key:<20}{value}\n"));
    };
    field(&mut out, "Name:", &d.name);
    field(&mut out, "Namespace:", &d.namespace);
    field(&mut out, "Status:", d.status);
    let made_by = match (d.made_by, &d.virtual_cluster) {
        (MadeBy::Vc, _) => "vc".to_string(),
        (MadeBy::Vcluster, _) => "vcluster CLI".to_string(),
        (MadeBy::VirtualCluster, owner) => {
            let owner = owner.as_deref().unwrap_or(&d.name);
            let (namespace, name) = owner.split_once('/').unwrap_or((&d.namespace, owner));
            format!(
                "VirtualCluster {owner} (change it with: kubectl edit vcl {name} -n {namespace})"
            )
        }
    };
    field(&mut out, "Made by:", &made_by);
    if let Some(pool) = &d.pool {
        let how = match (&d.host_name, &d.claimed_at) {
            (Some(host), Some(at)) => format!(
                "claimed from pool {pool} at {at}; its host objects keep the member's name {host}"
            ),
            (Some(host), None) => {
                format!("claimed from pool {pool}; its host objects keep the member's name {host}")
            }
            _ => format!("member of pool {pool}, waiting to be claimed"),
        };
        field(&mut out, "Pool:", &how);
    }
    field(&mut out, "Kubernetes:", d.kubernetes_version.as_deref().unwrap_or("-"));
    field(&mut out, "Created:", d.created_at.as_deref().unwrap_or("-"));
    field(&mut out, "Expires:", d.expires_at.as_deref().unwrap_or("never"));
    if let Some(by) = d.paused_by {
        let since = d.paused_at.as_deref().map_or_else(String::new, |t| format!("since {t} "));
        field(&mut out, "Paused:", &format!("{since}by {by} (resume with: vc resume {})", d.name));
    }
    if let Some(limit) = &d.sleep_after {
        let seen =
            d.last_activity.as_deref().map_or_else(String::new, |t| format!("; last activity {t}"));
        field(&mut out, "Sleeps after:", &format!("{limit} idle{seen}"));
    }
    if let Some(datastore) = d.datastore {
        let external = d.spec.as_ref().and_then(|s| s.datastore.external_etcd());
        match external {
            Some((endpoint, secret)) => field(
                &mut out,
                "Datastore:",
                &format!("{datastore} at {endpoint} (client Secret {secret})"),
            ),
            None => field(&mut out, "Datastore:", datastore),
        }
    }
    if let Some(endpoint) = &d.endpoint {
        let url = endpoint.url.as_deref().unwrap_or("no address assigned yet");
        let how = match (endpoint.kind, &endpoint.ingress_address) {
            ("Ingress", Some(address)) => format!("Ingress, controller at {address}"),
            ("Ingress", None) => "Ingress, no controller address published yet".to_string(),
            (kind, _) => kind.to_string(),
        };
        let class =
            endpoint.ingress_class.as_ref().map(|c| format!(", class {c}")).unwrap_or_default();
        field(&mut out, "Endpoint:", &format!("{url} ({how}{class})"));
    }
    if let Some(egress) = &d.host_api_egress {
        field(&mut out, "Host API egress:", egress);
    }
    if let Some(placement) = &d.enforced {
        out.push_str("Enforced on every pod:\n");
        let join = |items: Vec<String>| items.join(", ");
        for (key, value) in [
            (
                "node selector",
                join(placement.node_selector.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            ),
            ("tolerations", join(placement.tolerations.clone())),
            ("runtime class", placement.runtime_class_name.clone().unwrap_or_default()),
            ("priority class", placement.priority_class_name.clone().unwrap_or_default()),
        ] {
            if !value.is_empty() {
                out.push_str(&format!("  {:<18}{value}\n", format!("{key}:")));
            }
        }
    }
    if let Some(spec) = &d.spec {
        out.push_str("Spec:\n");
        for line in crate::output::to_yaml(spec)?.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str("Host objects:\n");
    for o in &d.objects {
        out.push_str(&format!("  {:<22} {:<28} {}\n", o.kind, o.name, o.state));
    }
    if !d.quota.is_empty() {
        out.push_str("Quota (used / hard):\n");
        for q in &d.quota {
            out.push_str(&format!("  {:<28} {} / {}\n", q.resource, q.used, q.hard));
        }
    }
    if d.warnings.is_empty() {
        out.push_str("Warnings:           none\n");
    } else {
        out.push_str("Warnings:\n");
        for w in &d.warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    field(&mut out, "Connect:", &d.connect);
    Ok(out)
}
