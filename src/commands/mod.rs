//! One module per verb. Each turns its arguments into options, calls the layers below and
//! prints through the `Printer`. A command never imports another command.

pub mod adopt;
pub mod completions;
pub mod connect;
pub mod create;
pub mod delete;
pub mod describe;
pub mod disconnect;
pub mod doctor;
pub mod extend;
pub mod forwarder;
pub mod gc;
pub mod kubeconfig;
pub mod list;
pub mod operator;
pub mod pause;
pub mod pool;
pub mod rbac;
pub mod resume;
pub mod snapshot;
pub mod version;

use crate::cli::{Cli, Command, GlobalArgs, PoolCommand};
use crate::error::CliError;
use crate::host::Host;
use crate::kubeconfig::{KubeconfigPaths, LoadedKubeconfigs};
use crate::output::Printer;

/// What every command gets: the global flags and the printer.
pub struct Invocation {
    pub global: GlobalArgs,
    pub printer: Printer,
}

impl Invocation {
    /// Resolves the kubeconfig files the way kubectl does and reads them.
    pub fn kubeconfigs(&self) -> anyhow::Result<(KubeconfigPaths, LoadedKubeconfigs)> {
        let paths = KubeconfigPaths::resolve(self.global.kubeconfig.as_deref())?;
        let loaded = LoadedKubeconfigs::load(&paths)?;
        if loaded.files().is_empty() {
            return Err(CliError::usage(format!(
                "no kubeconfig found at {}: set KUBECONFIG or pass --kubeconfig FILE for the host cluster",
                paths.default_file().display()
            ))
            .into());
        }
        Ok((paths, loaded))
    }

    /// The current time; `VC_NOW` (RFC 3339, hidden, for tests) replaces the clock.
    pub fn now(&self) -> anyhow::Result<jiff::Timestamp> {
        match std::env::var("VC_NOW") {
            Ok(text) => text.parse().map_err(|e| {
                CliError::usage(format!("VC_NOW={text:?} is not an RFC 3339 time: {e}")).into()
            }),
            Err(_) => Ok(jiff::Timestamp::now()),
        }
    }

    /// Connects to the host cluster named by `--kubeconfig` / `--context`.
    pub async fn host(&self) -> anyhow::Result<Host> {
        let (_, loaded) = self.kubeconfigs()?;
        let context = loaded.host_context(self.global.context.as_deref())?;
        Host::connect(loaded.merged(), Some(&context.context)).await
    }
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let printer =
        Printer::new(cli.global.output, cli.global.quiet, cli.global.verbose, cli.global.no_color);
    let invocation = Invocation { global: cli.global, printer };
    match cli.command {
        // These handle Ctrl-C themselves: create says what it left behind; `connect -- CMD`
        // lets the command decide and exits with its code; the forwarder stops cleanly.
        Command::Create(args) => create::run(&invocation, *args).await,
        // Restore and clone are creates from a snapshot (an empty name: the snapshot's own).
        Command::Restore(args) => {
            let mut create = args.create.into_create(args.name.unwrap_or_default());
            create.from_snapshot = Some(args.source);
            create::run(&invocation, create).await
        }
        Command::Clone(args) => {
            let mut create = args.create.into_create(args.name);
            create.from_cluster = Some(args.source);
            create::run(&invocation, create).await
        }
        Command::Connect(args) if !args.command.is_empty() => connect::run(&invocation, args).await,
        Command::Forwarder(args) => forwarder::run(&invocation, args).await,
        // Stops on SIGTERM or Ctrl-C itself, releasing its Lease.
        Command::Operator(args) => operator::run(&invocation, args).await,
        // Removes its probe objects on Ctrl-C before it ends.
        Command::Doctor(args) => doctor::run(&invocation, args).await,
        // The keeper stops on Ctrl-C or SIGTERM between two writes.
        Command::Pool(command @ PoolCommand::Keep(_)) => pool::run(&invocation, command).await,
        command => {
            tokio::select! {
                result = run_interruptible(&invocation, command) => result,
                _ = tokio::signal::ctrl_c() => Err(CliError::interrupted(
                    "interrupted; kubeconfig files are only ever replaced whole, so none is half-written; run the command again to finish",
                ).into()),
            }
        }
    }
}

async fn run_interruptible(invocation: &Invocation, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List(args) => list::run(invocation, args).await,
        Command::Describe(args) => describe::run(invocation, args).await,
        Command::Delete(args) => delete::run(invocation, args).await,
        Command::Connect(args) => connect::run(invocation, args).await,
        Command::Disconnect(args) => disconnect::run(invocation, args).await,
        Command::Kubeconfig(args) => kubeconfig::run(invocation, args).await,
        Command::Completions(args) => completions::run(invocation, &args),
        Command::Rbac(args) => rbac::run(invocation, &args),
        Command::Pause(args) => pause::run(invocation, args).await,
        Command::Resume(args) => resume::run(invocation, args).await,
        Command::Adopt(args) => adopt::run(invocation, args).await,
        Command::Extend(args) => extend::run(invocation, args).await,
        Command::Gc(args) => gc::run(invocation, args).await,
        Command::Version => version::run(invocation),
        Command::Snapshot(args) => snapshot::run(invocation, args).await,
        Command::Pool(command) => pool::run(invocation, command).await,
        Command::Restore(_) | Command::Clone(_) => unreachable!("dispatched in run"),
        Command::Create(args) => create::run(invocation, *args).await,
        Command::Forwarder(args) => forwarder::run(invocation, args).await,
        Command::Doctor(args) => doctor::run(invocation, args).await,
        Command::Operator(args) => operator::run(invocation, args).await,
    }
}
