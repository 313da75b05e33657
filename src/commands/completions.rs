//! `vc completions SHELL`: prints a completion script generated from the clap definition.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::commands::Invocation;

pub fn run(invocation: &Invocation, args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "vc", &mut script);
    invocation.printer.data(&String::from_utf8_lossy(&script));
    Ok(())
}
