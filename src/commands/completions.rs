//! `vc completions SHELL`: prints a completion script generated from the clap definition.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::commands::Session;

pub fn run(session: &Session, args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "vc", &mut script);
    session.printer.data(&String::from_utf8_lossy(&script));
    Ok(())
}
