//! Entry point: parse the arguments before starting the runtime, run the command, and map the
//! outcome to an exit code in one place. Prints the error chain once, as one message.

use clap::Parser;

use vc::cli::Cli;
use vc::error::{Exit, exit_code};

fn main() {
    vc::complete::answer_if_requested();
    let cli = Cli::parse();
    vc::http_log::install(if cli.global.quiet { 0 } else { cli.global.verbose });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(Exit::Failure.code());
        }
    };
    let result = runtime.block_on(vc::commands::run(cli));
    // Background tasks (watches, forwards) must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(()) => {}
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(exit_code(&err).code());
        }
    }
}
