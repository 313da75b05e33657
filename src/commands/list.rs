//! `vc list`: every virtual cluster in scope from a constant number of LIST calls (control
//! planes as StatefulSets and as Deployments, and their pods when one is not ready), whatever
//! their number.

use serde::Serialize;

use crate::cli::{ListArgs, OutputFormat};
use crate::commands::Invocation;
use crate::host::MadeBy;
use crate::output::human_age;

/// One row of `vc list -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListItem {
    name: String,
    namespace: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubernetes_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    /// When it was paused, while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    paused_at: Option<String>,
    made_by: MadeBy,
    /// The VirtualCluster (`namespace/name`) that owns it, for one made by the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_cluster: Option<String>,
    /// The datastore kind (`sqlite` or `etcd`), from the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    datastore: Option<&'static str>,
    /// The pool it was started for, claimed or waiting in it (status Pooled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<String>,
    /// The name of its host objects, when it differs (a cluster claimed from a pool).
    #[serde(skip_serializing_if = "Option::is_none")]
    host_name: Option<String>,
    /// A background forward is alive and answering.
    connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_port: Option<u16>,
}

pub async fn run(invocation: &Invocation, args: ListArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let namespace = invocation.global.namespace.as_deref();
    if let Some(selector) = &args.selector {
        crate::spec::validate_selector(selector)?;
    }
    if let Some(ns) = namespace {
        crate::spec::validate_namespace(ns)?;
    }
    let host = invocation.host().await?;
    let (records, scope) = host.list(namespace, args.selector.as_deref()).await?;
    if namespace.is_none()
        && let Some(ns) = &scope
    {
        printer.info(&format!(
            "listing all namespaces is forbidden on context {:?}; showing namespace {ns:?}",
            host.context
        ));
    }
    for record in &records {
        if let Some(problem) = &record.record_error {
            printer.warn(&format!(
                "virtual cluster {:?} in namespace {:?}: {problem}; listed without its record",
                record.name, record.namespace
            ));
        }
    }
    // Pods only refine Starting into Failed; without the right to list them, skip that.
    let pods = if records.iter().any(|r| r.ready_replicas < 1) {
        host.control_plane_pods(scope.as_deref()).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    // A missing or unreadable state directory means no forwards, not a failed list.
    let forwards = crate::forward::list_states().await.unwrap_or_default();
    // A paused cluster has nothing behind its forward, even when the port still answers
    // (the vcluster CLI paused it under a running forwarder).
    let forward_of = |r: &crate::host::ClusterRecord| {
        forwards
            .iter()
            .filter(|_| !r.is_paused())
            .find(|f| {
                f.answering
                    && f.state.host_server == host.server
                    && f.state.namespace == r.namespace
                    && f.state.name == r.host_name
            })
            .map(|f| f.state.port)
    };
    let now = invocation.now()?;
    let items: Vec<ListItem> = records
        .iter()
        .map(|r| ListItem {
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            status: r.status(&pods, now).as_str(),
            kubernetes_version: r.kubernetes_version.clone(),
            created_at: r.created_at.map(|t| t.to_string()),
            expires_at: r.expires_at.map(|t| t.to_string()),
            paused_at: r.paused_at.filter(|_| r.is_paused()).map(|t| t.to_string()),
            made_by: r.made_by,
            virtual_cluster: r.virtual_cluster.as_ref().map(|v| format!("{}/{v}", r.namespace)),
            datastore: r.datastore(),
            pool: r.pool.clone(),
            host_name: r.is_claimed().then(|| r.host_name.clone()),
            connected: forward_of(r).is_some(),
            local_port: forward_of(r),
        })
        .collect();
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&items)?,
        OutputFormat::Name => {
            let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
            if !names.is_empty() {
                printer.data(&names.join("\n"));
            }
        }
        OutputFormat::Table => {
            if items.is_empty() {
                printer.info("No virtual clusters found. Create one with: vc create NAME");
                return Ok(());
            }
            let rows = items
                .iter()
                .zip(&records)
                .map(|(item, record)| {
                    let mut name = item.name.clone();
                    if item.made_by == MadeBy::Vcluster {
                        name.push_str(" (vcluster)");
                    }
                    if item.made_by == MadeBy::VirtualCluster {
                        name.push_str(" (VirtualCluster)");
                    }
                    if let Some(pool) = item.pool.as_ref().filter(|_| record.is_pooled()) {
                        name.push_str(&format!(" (pool {pool})"));
                    }
                    vec![
                        name,
                        item.namespace.clone(),
                        item.status.to_string(),
                        item.kubernetes_version.clone().unwrap_or_else(|| "-".into()),
                        record.created_at.map_or("-".into(), |t| age_since(t, now)),
                        record.expires_at.map_or("-".into(), |t| {
                            if t <= now {
                                "Expired".into()
                            } else {
                                format!("in {}", age_since(now, t))
                            }
                        }),
                        item.local_port.map_or_else(|| "no".into(), |p| format!("yes (:{p})")),
                    ]
                })
                .collect();
            printer.table(
                &["NAME", "NAMESPACE", "STATUS", "KUBERNETES", "AGE", "EXPIRES", "CONNECTED"],
                rows,
            );
        }
    }
    Ok(())
}

fn age_since(earlier: jiff::Timestamp, later: jiff::Timestamp) -> String {
    let secs = later.as_second().saturating_sub(earlier.as_second()).max(0);
    human_age(std::time::Duration::from_secs(secs.unsigned_abs()))
}
