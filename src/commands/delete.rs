//! `vc delete NAME...`: asks first on a terminal, deletes everything vc created for each
//! cluster (its namespace, or its labelled objects and PVCs), and waits until they are gone.

use crate::cli::{DeleteArgs, OutputFormat};
use crate::commands::Invocation;
use crate::connection;
use crate::error::{CliError, Exit};
use crate::host::{ClusterRecord, Host, HostError, MadeBy};

pub async fn run(invocation: &Invocation, args: DeleteArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    let namespace = invocation.global.namespace.as_deref();
    for name in &args.names {
        crate::spec::validate_name(name)?;
    }
    if let Some(selector) = &args.selector {
        crate::spec::validate_selector(selector)?;
    }
    if let Some(ns) = namespace {
        crate::spec::validate_namespace(ns)?;
    }
    let host = invocation.host().await?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut targets: Vec<ClusterRecord> = Vec::new();
    if args.all || args.selector.is_some() {
        let (records, _) = host.list(namespace, args.selector.as_deref()).await?;
        targets.extend(records.into_iter().filter(|r| r.made_by != MadeBy::Vcluster));
    } else {
        for name in &args.names {
            let find = tokio::time::timeout_at(deadline, host.find(name, namespace));
            match find.await.map_err(|_| host.no_answer(args.timeout))? {
                Ok(record) => targets.push(record),
                // A VirtualCluster whose control plane is not there (yet) goes as the object.
                Err(HostError::NotFound(message)) => {
                    let found = crate::operator::client::namespaces_of_cluster_object(
                        &host, name, namespace,
                    )
                    .await?;
                    match found.as_slice() {
                        [one] => {
                            let mut record = ClusterRecord::placeholder(name, one);
                            record.made_by = MadeBy::VirtualCluster;
                            record.virtual_cluster = Some(name.clone());
                            targets.push(record);
                        }
                        [] if args.ignore_not_found => {}
                        [] => return Err(HostError::NotFound(message).into()),
                        many => {
                            return Err(CliError::usage(format!(
                                "VirtualCluster {name:?} exists in namespaces {}; pick one with -n",
                                many.join(", ")
                            ))
                            .into());
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some(foreign) = targets.iter().find(|r| r.made_by == MadeBy::Vcluster) {
        return Err(CliError::usage(format!(
            "virtual cluster {:?} in namespace {:?} was made by the vcluster CLI; delete it with: vcluster delete {} -n {}",
            foreign.name, foreign.namespace, foreign.name, foreign.namespace
        ))
        .into());
    }
    if targets.is_empty() {
        if printer.structured() {
            printer.structured_value(&Vec::<String>::new())?;
        } else {
            printer.info("No virtual clusters to delete.");
        }
        return Ok(());
    }
    if !args.yes {
        confirm(invocation, &targets)?;
    }
    // Delete every target first, then wait for all of them under one timeout.
    let mut started = Vec::new();
    for record in &targets {
        // A VirtualCluster's cluster goes with the object: the operator's finalizer removes it.
        if let Some(owner) = &record.virtual_cluster {
            // The namespace `vc create` made for it goes too, once the object is gone: a
            // namespaced object cannot own it. One vc did not make stays.
            let own = host.owns_namespace(&record.namespace, &record.host_name).await?;
            crate::operator::delete_cluster_object(&host, &record.namespace, owner).await?;
            if own && args.no_wait {
                host.delete_cluster(record, true).await?;
            }
            disconnect_deleted(invocation, &host, record).await;
            started.push((record, own));
            continue;
        }
        let own = host.owns_namespace(&record.namespace, &record.host_name).await?;
        // In a shared namespace this waits for the control plane to stop: one deadline.
        match tokio::time::timeout_at(deadline, host.delete_cluster(record, own)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(CliError::timeout(format!(
                    "virtual cluster {:?} did not stop within {}; deletion continues on the host; check: kubectl get statefulset,pods -n {} -l release={}",
                    record.name,
                    crate::output::human_duration(args.timeout),
                    record.namespace,
                    record.name
                ))
                .into());
            }
        }
        disconnect_deleted(invocation, &host, record).await;
        started.push((record, own));
    }
    let mut stuck = Vec::new();
    if !args.no_wait {
        let waits = started.iter().map(|(record, own)| async {
            match &record.virtual_cluster {
                Some(owner) => {
                    crate::operator::wait_cluster_object_gone(&host, &record.namespace, owner)
                        .await?;
                    if *own {
                        host.delete_cluster(record, true).await?;
                        host.wait_deleted(record, true).await?;
                    }
                    Ok(())
                }
                None => host.wait_deleted(record, *own).await,
            }
        });
        let all = futures::future::join_all(waits);
        match tokio::time::timeout_at(deadline, all).await {
            Ok(results) => {
                for result in results {
                    result?;
                }
            }
            Err(_) => {
                stuck = started
                    .iter()
                    .map(|(r, own)| (r.name.clone(), r.namespace.clone(), *own))
                    .collect()
            }
        }
    }
    let mut deleted = Vec::new();
    for (record, own) in &started {
        if stuck.iter().any(|(n, ns, _)| *n == record.name && *ns == record.namespace) {
            continue;
        }
        let what = if let Some(owner) = &record.virtual_cluster {
            let namespace =
                if *own { format!(", and namespace {}", record.namespace) } else { String::new() };
            format!(
                "through its VirtualCluster {}/{owner}, whose finalizer removes its objects{namespace}",
                record.namespace
            )
        } else if *own {
            format!("namespace {}", record.namespace)
        } else {
            format!("its objects in namespace {}", record.namespace)
        };
        let verb = if args.no_wait { "deleting" } else { "deleted" };
        printer.info(&format!("{verb} virtual cluster {:?} ({what})", record.name));
        deleted.push(record.name.clone());
    }
    if let Some((name, namespace, own)) = stuck.first() {
        let owned = started.iter().find(|(r, _)| r.name == *name && r.namespace == *namespace);
        let check = if let Some(owner) = owned.and_then(|(r, _)| r.virtual_cluster.as_ref()) {
            format!(
                "kubectl get vcl {owner} -n {namespace} -o yaml (is vc operator run running? its finalizer removes the cluster)"
            )
        } else if *own {
            format!(
                "kubectl get namespace {namespace} -o yaml (its status conditions say what blocks it)"
            )
        } else {
            format!("kubectl get statefulset,pvc -n {namespace} -l release={name}")
        };
        let names: Vec<&str> = stuck.iter().map(|(n, _, _)| n.as_str()).collect();
        return Err(CliError::timeout(format!(
            "virtual cluster{} {} still being deleted after {}; deletion continues on the host; check: {check}",
            if names.len() > 1 { "s" } else { "" },
            names.join(", "),
            crate::output::human_duration(args.timeout)
        ))
        .into());
    }
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&deleted)?,
        OutputFormat::Name => printer.data(&deleted.join("\n")),
        OutputFormat::Table => {}
    }
    Ok(())
}

async fn disconnect(invocation: &Invocation, target: &connection::Target) -> anyhow::Result<()> {
    let (paths, _) = invocation.kubeconfigs()?;
    connection::disconnect(&paths, target, true).await?;
    Ok(())
}

fn confirm(invocation: &Invocation, targets: &[ClusterRecord]) -> anyhow::Result<()> {
    let list: Vec<String> =
        targets.iter().map(|r| format!("{} (namespace {})", r.name, r.namespace)).collect();
    if !invocation.printer.stdin_tty || !invocation.printer.stderr_tty {
        return Err(CliError::usage(format!(
            "refusing to delete {} without confirmation and there is no terminal to ask on: pass --yes",
            list.join(", ")
        ))
        .into());
    }
    let prompt = format!(
        "Delete virtual cluster{} {}?",
        if list.len() > 1 { "s" } else { "" },
        list.join(", ")
    );
    let yes =
        dialoguer::Confirm::new().with_prompt(prompt).default(false).interact().map_err(|e| {
            CliError::interrupted(format!("no answer to the confirmation prompt: {e}"))
        })?;
    if !yes {
        return Err(CliError::new(Exit::Failure, "deletion cancelled; nothing was deleted").into());
    }
    Ok(())
}

/// Removes a deleted cluster's kubeconfig entries and forward; what remains is a warning.
async fn disconnect_deleted(invocation: &Invocation, host: &Host, record: &ClusterRecord) {
    let target = connection::Target::of(host, record);
    if let Err(e) = disconnect(invocation, &target).await {
        invocation.printer.warn(&format!(
            "virtual cluster {:?} is being deleted, but its kubeconfig entries or forward remain: {e:#} (see: vc disconnect {})",
            record.name, record.name
        ));
    }
}
