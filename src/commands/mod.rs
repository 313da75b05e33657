//! One module per verb. Each turns its arguments into options, calls the layers below and
//! prints through the `Printer`. A command never imports another command.

pub mod completions;
pub mod create;
pub mod delete;
pub mod describe;
pub mod list;

use std::path::Path;

use kube::config::Kubeconfig;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::CliError;
use crate::host::Host;
use crate::output::Printer;

/// What every command gets: the global flags and the printer.
pub struct Session {
    pub global: GlobalArgs,
    pub printer: Printer,
}

impl Session {
    /// Connects to the host cluster named by `--kubeconfig` / `--context`.
    pub async fn host(&self) -> anyhow::Result<Host> {
        let kubeconfig = load_host_kubeconfig(self.global.kubeconfig.as_deref())?;
        Host::connect(kubeconfig, self.global.context.as_deref()).await
    }
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let printer =
        Printer::new(cli.global.output, cli.global.quiet, cli.global.verbose, cli.global.no_color);
    let session = Session { global: cli.global, printer };
    match cli.command {
        Command::Create(args) => create::run(&session, args).await,
        Command::List(args) => list::run(&session, args).await,
        Command::Describe(args) => describe::run(&session, args).await,
        Command::Delete(args) => delete::run(&session, args).await,
        Command::Completions(args) => completions::run(&session, &args),
        Command::Version => {
            session.printer.data(&format!("vc {}", env!("CARGO_PKG_VERSION")));
            Ok(())
        }
    }
}

/// Reads the host kubeconfig the way kubectl resolves it.
fn load_host_kubeconfig(explicit: Option<&Path>) -> anyhow::Result<Kubeconfig> {
    let loaded = match explicit {
        Some(path) => {
            if !path.exists() {
                return Err(CliError::usage(format!(
                    "kubeconfig {} does not exist: pass an existing file with --kubeconfig",
                    path.display()
                ))
                .into());
            }
            Kubeconfig::read_from(path)
        }
        None => Kubeconfig::read(),
    };
    loaded.map_err(|e| {
        let text = e.to_string();
        if text.contains("No such file") || text.contains("not found") {
            CliError::usage(
                "no kubeconfig found: set KUBECONFIG or pass --kubeconfig FILE for the host cluster",
            )
            .into()
        } else {
            anyhow::anyhow!("cannot read the kubeconfig: {e}")
        }
    })
}
