//! `vc completions SHELL`: prints the shell's completion script. The script asks `vc` itself
//! for candidates (`VC_COMPLETE=SHELL vc -- ...`), so cluster names complete from the host.

use crate::cli::CompletionsArgs;
use crate::commands::Invocation;

pub fn run(invocation: &Invocation, args: &CompletionsArgs) -> anyhow::Result<()> {
    invocation.printer.data(&crate::complete::script(&args.shell.to_string())?);
    Ok(())
}
