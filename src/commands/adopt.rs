//! `vc adopt NAME`: hands a cluster `vc create` made over to a VirtualCluster of the same name
//! in its namespace (created with the recorded spec, marked to adopt it), and waits until the
//! operator has taken its host objects over.

use std::time::Duration;

use serde::Serialize;

use crate::cli::AdoptArgs;
use crate::commands::Invocation;
use crate::error::CliError;
use crate::host::{ClusterRecord, Host, MadeBy};
use crate::operator::VirtualCluster;
use crate::operator::client::{self, Presence};
use crate::operator::resource::{ANNOTATION_ADOPT, ANNOTATION_ADOPTED_CREATED_AT, KIND};

/// JSON result of `vc adopt -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AdoptResult {
    name: String,
    namespace: String,
    /// "namespace/name" of the VirtualCluster that now owns it.
    virtual_cluster: String,
    /// The VirtualCluster's phase once it took the cluster over.
    phase: String,
}

pub async fn run(invocation: &Invocation, args: AdoptArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let name = args.name.as_str();
    crate::spec::validate_name(name)?;
    if let Some(ns) = &invocation.global.namespace {
        crate::spec::validate_namespace(ns)?;
    }
    let host = invocation.host().await?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    let prepared = async {
        let record = host.find(name, invocation.global.namespace.as_deref()).await?;
        let presence = client::presence(&host, &record.namespace).await?;
        anyhow::Ok((record, presence))
    };
    let (record, presence) = tokio::time::timeout_at(deadline, prepared)
        .await
        .map_err(|_| host.no_answer(args.timeout))??;
    let namespace = record.namespace.clone();
    if presence == Presence::NoCrd {
        return Err(CliError::not_found(format!(
            "the VirtualCluster resource (CRD virtualclusters.vc.dev) is not installed on context {:?}; install it first: vc operator install (or kubectl apply -f deploy/crd.yaml)",
            host.context
        ))
        .into());
    }
    let spec = refuse_unadoptable(&record)?;
    if let Presence::NoOperator(why) = &presence {
        return Err(CliError::not_found(format!(
            "no operator would take virtual cluster {name:?} over on context {:?}: {why}; start one (vc operator install, or vc operator run) and adopt again",
            host.context
        ))
        .into());
    }

    let own_namespace = host.owns_namespace(&namespace, name).await?;
    let object = match client::get_cluster_object(&host, &namespace, name).await? {
        // A VirtualCluster of that name already declared (Degraded NotOwned until now): it is
        // marked, and its own spec is what the operator applies.
        Some(_) => {
            printer.info(&format!(
                "VirtualCluster {namespace}/{name} exists; marking it to adopt the cluster (its own spec is applied)"
            ));
            client::mark_for_adoption(&host, &namespace, name, record.created_at).await?
        }
        None => {
            let mut spec = spec;
            // Manifests and charts were applied when the cluster was made.
            spec.manifests.clear();
            spec.charts.clear();
            // The operator renders every cluster as for a namespace it did not make: the quota
            // the namespace vc made has is kept explicitly.
            if own_namespace {
                spec.quota.enabled.get_or_insert(true);
            }
            // The operator counts spec.ttl from the creation time: an expiry moved by vc extend
            // becomes the ttl that reaches it.
            if let (Some(created), Some(expires)) = (record.created_at, record.expires_at) {
                spec.ttl = crate::operator::lifecycle::ttl_reaching(created, expires).or(spec.ttl);
            }
            let mut object = VirtualCluster::new(&namespace, name, spec);
            let annotations = object.metadata.annotations.get_or_insert_default();
            annotations.insert(ANNOTATION_ADOPT.to_string(), "true".to_string());
            if let Some(at) = record.created_at {
                annotations.insert(ANNOTATION_ADOPTED_CREATED_AT.to_string(), at.to_string());
            }
            client::apply_cluster_object(&host, &object).await?
        }
    };
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let phase = tokio::time::timeout_at(deadline, wait_adopted(&host, &namespace, name, &uid))
        .await
        .map_err(|_| {
            CliError::timeout(format!(
                "the operator did not take virtual cluster {name:?} over within {}; the VirtualCluster {namespace}/{name} stays marked to adopt it (kubectl describe vcl {name} -n {namespace})",
                crate::output::human_duration(args.timeout)
            ))
        })??;
    let result = AdoptResult {
        name: name.to_string(),
        namespace: namespace.clone(),
        virtual_cluster: format!("{namespace}/{name}"),
        phase,
    };
    if printer.structured() {
        return printer.structured_value(&result);
    }
    let kept = if own_namespace {
        format!(
            "; the namespace {namespace:?} vc made for it stays until vc delete {name} (a namespaced object cannot own it)"
        )
    } else {
        String::new()
    };
    printer.info(&format!(
        "virtual cluster {name:?} is now the VirtualCluster {namespace}/{name}'s (change it with: kubectl edit vcl {name} -n {namespace}){kept}"
    ));
    Ok(())
}

/// The recorded spec of a cluster that can be adopted; refuses (exit 6) the rest.
fn refuse_unadoptable(record: &ClusterRecord) -> anyhow::Result<crate::spec::VirtualClusterSpec> {
    let (name, namespace) = (record.name.as_str(), record.namespace.as_str());
    let refuse = |why: String| -> anyhow::Error {
        CliError::conflict(format!(
            "cannot adopt virtual cluster {name:?} in namespace {namespace:?}: {why}"
        ))
        .into()
    };
    match record.made_by {
        MadeBy::VirtualCluster => {
            return Err(refuse(format!(
                "it already is the VirtualCluster {namespace}/{}'s",
                record.virtual_cluster.as_deref().unwrap_or(name)
            )));
        }
        MadeBy::Vcluster => {
            return Err(refuse(
                "it was made by the vcluster CLI; vc adopts only clusters vc create made".into(),
            ));
        }
        MadeBy::Vc => {}
    }
    if record.pool.is_some() || record.name != record.host_name {
        return Err(refuse(
            "it belongs to a warm pool (its keeper manages it); only a cluster made by vc create can be adopted".into(),
        ));
    }
    if record.deleting {
        return Err(refuse("it is being deleted".into()));
    }
    if record.is_paused() {
        // The operator's apply sets the replicas back, which would leave the pause markers.
        return Err(refuse(format!(
            "it is paused; resume it first (vc resume {name}), then adopt it"
        )));
    }
    record.spec.clone().ok_or_else(|| {
        refuse(match &record.record_error {
            Some(e) => format!("its record cannot be read ({e})"),
            None => "it carries no recorded spec".into(),
        })
    })
}

/// Waits until the control plane carries the VirtualCluster's owner reference (the operator
/// applied it) and returns the object's phase; a spec the operator refuses ends the wait.
async fn wait_adopted(
    host: &Host,
    namespace: &str,
    name: &str,
    uid: &str,
) -> anyhow::Result<String> {
    loop {
        let owned = host.statefulset(namespace, name).await?.is_some_and(|sts| {
            sts.metadata.owner_references.iter().flatten().any(|r| r.kind == KIND && r.uid == uid)
        });
        let status = client::get_cluster_object(host, namespace, name)
            .await?
            .and_then(|o| o.status)
            .unwrap_or_default();
        // NotOwned stays until the operator sees the marker, ApplyFailed until its retry
        // succeeds; only a spec it refuses will not change by waiting.
        if let Some(degraded) = status.condition("Degraded").filter(|c| c.status == "True")
            && degraded.reason == "InvalidSpec"
        {
            return Err(CliError::new(
                crate::error::Exit::Failure,
                format!(
                    "the operator did not adopt virtual cluster {name:?}: {}: {}",
                    degraded.reason, degraded.message
                ),
            )
            .into());
        }
        if owned {
            return Ok(status.phase.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
