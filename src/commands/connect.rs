//! `vc connect NAME`: waits for the cluster, starts (or reuses) the background forwarder and
//! merges a context into the kubeconfig; `--print` writes a kubeconfig to stdout instead;
//! `-- CMD` runs a command against a private kubeconfig and forward; `--logs` shows the log.

use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{ConnectArgs, OutputFormat};
use crate::commands::Invocation;
use crate::connection::{self, Target};
use crate::error::CliError;
use crate::forward::{self, CONTROL_PLANE_PORT, Forward, PodTarget};
use crate::kubeconfig;
use crate::operator;

/// JSON result of `vc connect -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectResult {
    name: String,
    namespace: String,
    context: String,
    server: String,
    /// The local forward's port; absent for `--server` and for a cluster reached at its exposed address.
    #[serde(skip_serializing_if = "Option::is_none")]
    local_port: Option<u16>,
    kubeconfig: String,
    switched: bool,
}

pub async fn run(invocation: &Invocation, args: ConnectArgs) -> anyhow::Result<()> {
    crate::spec::validate_name(&args.name)?;
    if args.logs {
        return show_logs(invocation, &args.name).await;
    }
    let deadline = Instant::now() + args.timeout;
    let (paths, _) = invocation.kubeconfigs()?;
    let host = invocation.host().await?;
    let find = host.find(&args.name, invocation.global.namespace.as_deref());
    let record = tokio::time::timeout_at(deadline, find)
        .await
        .map_err(|_| host.no_answer(args.timeout))??;
    let target = Target::of(&host, &record);
    if record.is_sleeping()
        && let Some(owner) = &record.virtual_cluster
    {
        // Its operator put it to sleep and wakes it: ask through the object, then wait.
        operator::requests::require_operator(&host, owner, &record.namespace).await?;
        invocation.printer.info(&format!(
            "virtual cluster {:?} is asleep (paused by its operator after being idle); waking it through VirtualCluster {}/{owner}",
            record.name, record.namespace
        ));
        let wake = async {
            operator::requests::request_wake(&host, &record.namespace, owner).await?;
            while host.fresh_record(&record).await?.is_paused() {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Ok::<_, crate::host::HostError>(())
        };
        tokio::time::timeout_at(deadline, wake).await.map_err(|_| {
            CliError::timeout(format!(
                "VirtualCluster {}/{owner} was asked to wake, but its operator had not started the cluster after {}; check: kubectl get vcl {owner} -n {}",
                record.namespace,
                crate::output::human_duration(args.timeout),
                record.namespace
            ))
        })??;
        if let Ok(store) = forward::ForwardStore::from_env() {
            store.take_paused(&target.forward_key());
        }
    } else if record.is_sleeping() {
        // Put to sleep for being idle: a connect is the user coming back.
        invocation.printer.info(&format!(
            "virtual cluster {:?} is asleep (paused by vc gc after being idle); resuming it first",
            record.name
        ));
        let resume = host.resume_cluster(&record, invocation.now()?);
        tokio::time::timeout_at(deadline, resume)
            .await
            .map_err(|_| host.no_answer(args.timeout))??;
        if let Ok(store) = forward::ForwardStore::from_env() {
            store.take_paused(&target.forward_key());
        }
    } else if record.is_paused() {
        return Err(CliError::conflict(format!(
            "virtual cluster {:?} is paused (its control plane is scaled to zero); resume it first with: vc resume {}",
            record.name, record.name
        ))
        .into());
    }
    let admin = connection::ready_admin_kubeconfig(&host, &target, args.timeout).await?;
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let printer = &invocation.printer;
    // A cluster made with --expose is reached at its address, unless --forward asks for one.
    let exposed = record
        .spec
        .as_ref()
        .and_then(|s| s.expose.as_ref())
        .filter(|_| !args.forward && args.local_port.is_none());

    if !args.command.is_empty() {
        return run_command(&host, &target, &admin, &args.command, remaining()).await;
    }
    if args.print {
        let server = match (&args.server, exposed) {
            (Some(url), _) => url.clone(),
            (None, Some(expose)) => {
                connection::exposed_server(&host, &target, expose, &admin, remaining(), |_| {})
                    .await?
            }
            (None, None) => connection::local_url(
                connection::start_forwarder(
                    invocation.global.kubeconfig.clone(),
                    &target,
                    args.local_port,
                    remaining(),
                )
                .await?,
            ),
        };
        let config = kubeconfig::standalone_kubeconfig(&admin, &target.context_name(), &server)?;
        return match printer.format {
            OutputFormat::Json => printer.structured_value(&config),
            _ => {
                printer.data(&kubeconfig::render_kubeconfig(&config)?);
                Ok(())
            }
        };
    }
    let result = if let Some(server) = &args.server {
        // An address the user already exposes: no forward, just the context.
        connection::verify_server(&admin, &target, server, remaining()).await?;
        let entry =
            connection::connect_direct(&paths, &target, &admin, server, !args.no_switch).await?;
        ConnectResult {
            name: target.name.clone(),
            namespace: target.namespace.clone(),
            context: entry.context_name.clone(),
            server: server.clone(),
            local_port: None,
            kubeconfig: entry.file.display().to_string(),
            switched: entry.switched,
        }
    } else {
        let connected = match exposed {
            Some(expose) => {
                let server_url =
                    connection::exposed_server(&host, &target, expose, &admin, remaining(), |_| {})
                        .await?;
                let entry = connection::connect_direct(
                    &paths,
                    &target,
                    &admin,
                    &server_url,
                    !args.no_switch,
                )
                .await?;
                connection::Connected { port: None, server_url, entry }
            }
            None => {
                connection::connect_background(
                    &paths,
                    invocation.global.kubeconfig.clone(),
                    &target,
                    &admin,
                    args.local_port,
                    !args.no_switch,
                    remaining(),
                )
                .await?
            }
        };
        ConnectResult {
            name: target.name.clone(),
            namespace: target.namespace.clone(),
            context: connected.entry.context_name.clone(),
            server: connected.server_url.clone(),
            local_port: connected.port,
            kubeconfig: connected.entry.file.display().to_string(),
            switched: connected.entry.switched,
        }
    };
    let outputs = crate::ci::ClusterOutputs {
        name: result.name.clone(),
        namespace: result.namespace.clone(),
        context: Some(result.context.clone()),
        kubeconfig: Some(result.kubeconfig.clone()),
        server: Some(result.server.clone()),
    };
    if let Some(warning) = crate::ci::write_outputs(&outputs) {
        printer.warn(&warning);
    }
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&result)?,
        OutputFormat::Name => printer.data(&result.context),
        OutputFormat::Table => {
            let switched = if result.switched { "; it is now the current context" } else { "" };
            let how =
                if result.local_port.is_some() { "connected to" } else { "without a forward:" };
            printer.info(&format!(
                "{how} virtual cluster {:?}: context {} -> {} in {}{switched}",
                result.name, result.context, result.server, result.kubeconfig
            ));
        }
    }
    Ok(())
}

/// Runs `command` with a private kubeconfig and an in-process forward; exits with its code.
async fn run_command(
    host: &crate::host::Host,
    target: &Target,
    admin: &kubeconfig::Kubeconfig,
    command: &[String],
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let pod = PodTarget::new(
        &target.namespace,
        forward::control_plane_pod(&target.name),
        CONTROL_PLANE_PORT,
    );
    let forward = Forward::start(host.client.clone(), pod, 0).await?;
    let config = kubeconfig::standalone_kubeconfig(
        admin,
        &target.context_name(),
        &connection::local_url(forward.local_port()),
    )?;
    connection::verify_server(admin, target, &connection::local_url(forward.local_port()), timeout)
        .await?;
    // The command is a user's request for the idle limit; best effort (the private forward
    // counts nothing itself).
    let _ = crate::host::record_activity(
        &host.client,
        &target.namespace,
        &target.name,
        jiff::Timestamp::now(),
    )
    .await;
    let path = kubeconfig::write_private_kubeconfig(&config)?;
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env("KUBECONFIG", &path)
        .spawn()
        .map_err(|e| CliError::usage(format!("cannot run {:?}: {e}", command[0])))?;
    // vc outlives the command to clean up: Ctrl-C reaches the command through the terminal;
    // SIGTERM and SIGHUP (a cancelled CI job, a closed terminal) are passed on to it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
    let status = loop {
        let name = tokio::select! {
            status = child.wait() => break status?,
            _ = term.recv() => "-TERM",
            _ = hangup.recv() => "-HUP",
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill").args([name, &pid.to_string()]).status();
        }
    };
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(1)
    });
    drop(path);
    drop(forward);
    std::process::exit(code);
}

/// Prints the background forwarder's log of every forward of that name.
async fn show_logs(invocation: &Invocation, name: &str) -> anyhow::Result<()> {
    let namespace = invocation.global.namespace.as_deref();
    let mut logs: Vec<std::path::PathBuf> = forward::list_states_alive()
        .await?
        .into_iter()
        .filter(|s| s.state.name == name && namespace.is_none_or(|ns| s.state.namespace == ns))
        .map(|s| s.log_file)
        .collect();
    if logs.is_empty() {
        // A forwarder that failed before it was ready wrote a log but no state file: find the
        // log through the cluster's key on the host.
        let host = invocation.host().await?;
        let record = host.find(name, namespace).await?;
        let key = Target::of(&host, &record).forward_key();
        logs.push(forward::ForwardStore::from_env()?.log_path(&key));
    }
    let texts: Vec<String> =
        logs.iter().filter_map(|path| std::fs::read_to_string(path).ok()).collect();
    if texts.is_empty() {
        return Err(CliError::not_found(format!(
            "virtual cluster {name:?} has no forward log yet (start a forward with: vc connect {name})"
        ))
        .into());
    }
    for text in texts {
        invocation.printer.data(&text);
    }
    Ok(())
}
