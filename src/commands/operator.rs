//! `vc operator crd|install|run|uninstall`: prints the CRD, applies or removes the operator's
//! objects, or runs the controller in this process until SIGTERM.

use std::sync::Arc;

use crate::cli::{
    OperatorArgs, OperatorCommand, OperatorInstallArgs, OperatorRunArgs, OperatorUninstallArgs,
    OutputFormat,
};
use crate::commands::Invocation;
use crate::error::{CliError, Exit};
use crate::operator::{self, Clock, Metrics, RunOptions, install::DEFAULT_NAMESPACE};

pub async fn run(invocation: &Invocation, args: OperatorArgs) -> anyhow::Result<()> {
    match args.command {
        OperatorCommand::Crd => {
            print_objects(invocation, &serde_json::to_value(operator::resource::crd())?, false)
        }
        OperatorCommand::Install(args) => install(invocation, args).await,
        OperatorCommand::Uninstall(args) => uninstall(invocation, args).await,
        OperatorCommand::Run(args) => run_controller(invocation, args).await,
    }
}

fn print_objects(
    invocation: &Invocation,
    value: &serde_json::Value,
    _list: bool,
) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    match printer.format {
        OutputFormat::Json => printer.structured_value(value),
        _ => {
            printer.data(&crate::output::to_yaml(value)?);
            Ok(())
        }
    }
}

fn operator_namespace(invocation: &Invocation) -> anyhow::Result<String> {
    let namespace =
        invocation.global.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    crate::spec::validate_namespace(&namespace)?;
    Ok(namespace)
}

async fn install(invocation: &Invocation, args: OperatorInstallArgs) -> anyhow::Result<()> {
    let namespace = operator_namespace(invocation)?;
    let image = args.image.unwrap_or_else(operator::install::default_image);
    crate::spec::validate_image(&image)?;
    let objects = operator::install::objects(&namespace, &image);
    if args.dry_run {
        let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": objects });
        return print_objects(invocation, &list, true);
    }
    let host = invocation.host().await?;
    operator::install(&host, &objects).await?;
    invocation.printer.info(&format!(
        "installed the vc operator in namespace {namespace:?} on {:?} (image {image}); declare clusters with kubectl apply -f (kind VirtualCluster, see docs/operator.md)",
        host.context
    ));
    Ok(())
}

async fn uninstall(invocation: &Invocation, args: OperatorUninstallArgs) -> anyhow::Result<()> {
    let namespace = operator_namespace(invocation)?;
    let host = invocation.host().await?;
    let clusters = operator::existing_clusters(&host).await?;
    if !clusters.is_empty() && !args.force {
        return Err(CliError::conflict(format!(
            "{} VirtualCluster(s) exist on {:?} ({}); delete them first (kubectl delete vcl --all -A), or pass --force to delete them and their clusters",
            clusters.len(),
            host.context,
            clusters.join(", ")
        ))
        .into());
    }
    if !args.yes {
        let printer = &invocation.printer;
        if !printer.stdin_tty || !printer.stderr_tty {
            return Err(CliError::usage(
                "refusing to uninstall the operator without confirmation and there is no terminal to ask on: pass --yes",
            )
            .into());
        }
        let prompt = format!(
            "Remove the vc operator (namespace {namespace}, its RBAC and the VirtualCluster CRD)?"
        );
        let yes = dialoguer::Confirm::new().with_prompt(prompt).default(false).interact().map_err(
            |e| CliError::interrupted(format!("no answer to the confirmation prompt: {e}")),
        )?;
        if !yes {
            return Err(
                CliError::new(Exit::Failure, "uninstall cancelled; nothing was removed").into()
            );
        }
    }
    if !clusters.is_empty() {
        operator::delete_all_clusters(&host, std::time::Duration::from_secs(300)).await?;
    }
    let objects = operator::install::objects(&namespace, &operator::install::default_image());
    let removed = operator::uninstall(&host, &objects).await?;
    invocation
        .printer
        .info(&format!("removed the vc operator from {:?} ({removed} objects)", host.context));
    Ok(())
}

async fn run_controller(invocation: &Invocation, args: OperatorRunArgs) -> anyhow::Result<()> {
    let lease_namespace = match (&invocation.global.namespace, args.lease_namespace) {
        (Some(ns), _) => ns.clone(),
        (None, Some(ns)) => ns,
        (None, None) => DEFAULT_NAMESPACE.to_string(),
    };
    crate::spec::validate_namespace(&lease_namespace)?;
    let identity = args.identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        format!("{}-{}", if host.is_empty() { "vc" } else { &host }, std::process::id())
    });
    let clock = match std::env::var("VC_NOW") {
        Ok(_) => Clock::starting_at(invocation.now()?),
        Err(_) => Clock::system(),
    };
    let metrics = Arc::new(Metrics::default());
    if let Some(address) = args.metrics_address {
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            CliError::conflict(format!(
                "cannot serve metrics on {address}: {e}; pick another --metrics-address"
            ))
        })?;
        tokio::spawn(operator::metrics::serve(listener, metrics.clone()));
    }
    // In its Deployment there is no kubeconfig: the pod's service account is the identity.
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && invocation.global.kubeconfig.is_none()
        && std::env::var_os("KUBECONFIG").is_none()
        && !dirs::home_dir().is_some_and(|h| h.join(".kube").join("config").exists());
    let host = if in_pod { crate::host::Host::in_cluster()? } else { invocation.host().await? };
    operator::ensure_namespace(&host, &lease_namespace).await;
    let printer = invocation.printer.clone();
    let log: operator::Log = Arc::new(move |level: &str, object: &str, message: &str| {
        let line = serde_json::json!({
            "time": jiff::Timestamp::now().to_string(),
            "level": level,
            "object": object,
            "message": message,
        });
        printer.info(&line.to_string());
    });
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let options = RunOptions {
        lease_namespace,
        identity,
        lease_duration: args.lease_duration,
        clock,
        log,
        metrics,
        pool_interval: args.pool_interval,
    };
    operator::run(host, options, shutdown).await
}
