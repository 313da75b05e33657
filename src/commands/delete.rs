//! `vc delete NAME...`: asks first on a terminal, deletes everything vc created for each
//! cluster (its namespace, or its labelled objects and PVCs), and waits until they are gone.

use crate::cli::{DeleteArgs, OutputFormat};
use crate::commands::Session;
use crate::connection;
use crate::error::CliError;
use crate::host::{ClusterRecord, HostError, MadeBy};

pub async fn run(session: &Session, args: DeleteArgs) -> anyhow::Result<()> {
    let printer = &session.printer;
    let namespace = session.global.namespace.as_deref();
    for name in &args.names {
        crate::spec::validate_name(name)?;
    }
    let host = session.host().await?;
    let mut targets: Vec<ClusterRecord> = Vec::new();
    if args.all || args.selector.is_some() {
        let (records, _) = host.list(namespace, args.selector.as_deref()).await?;
        targets.extend(records.into_iter().filter(|r| r.made_by == MadeBy::Vc));
    } else {
        for name in &args.names {
            match host.find(name, namespace).await {
                Ok(record) => targets.push(record),
                Err(HostError::NotFound(_)) if args.ignore_not_found => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some(foreign) = targets.iter().find(|r| r.made_by != MadeBy::Vc) {
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
        confirm(session, &targets)?;
    }
    let mut deleted = Vec::new();
    for record in &targets {
        let own = host.owns_namespace(&record.namespace, &record.name).await?;
        host.delete_cluster(record, own).await?;
        if !args.no_wait {
            let wait = host.wait_deleted(record, own);
            match tokio::time::timeout(args.timeout, wait).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(CliError::timeout(format!(
                        "virtual cluster {:?} is being deleted but its objects were still there after the timeout; check: kubectl get all -n {}",
                        record.name, record.namespace
                    ))
                    .into());
                }
            }
        }
        let target = connection::Target::new(&host, &record.namespace, &record.name);
        if let Err(e) = disconnect(session, &target).await {
            printer.warn(&format!(
                "virtual cluster {:?} is deleted, but its kubeconfig entries or forward remain: {e:#} (see: vc disconnect {})",
                record.name, record.name
            ));
        }
        let what = if own {
            format!("namespace {}", record.namespace)
        } else {
            format!("its objects in namespace {}", record.namespace)
        };
        printer.info(&format!("deleted virtual cluster {:?} ({what})", record.name));
        deleted.push(record.name.clone());
    }
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&deleted)?,
        OutputFormat::Name => printer.data(&deleted.join("\n")),
        OutputFormat::Table => {}
    }
    Ok(())
}

async fn disconnect(session: &Session, target: &connection::Target) -> anyhow::Result<()> {
    let (paths, _) = session.kubeconfigs()?;
    connection::disconnect(&paths, target).await?;
    Ok(())
}

fn confirm(session: &Session, targets: &[ClusterRecord]) -> anyhow::Result<()> {
    let list: Vec<String> =
        targets.iter().map(|r| format!("{} (namespace {})", r.name, r.namespace)).collect();
    if !session.printer.stdin_tty || !session.printer.stderr_tty {
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
        return Err(CliError::interrupted("deletion cancelled; nothing was deleted").into());
    }
    Ok(())
}
