//! The command surface: one help snapshot per verb, so every change to it is deliberate.

use crate::support::{Sandbox, Vc};

#[test]
fn help_of_every_verb() {
    let sandbox = Sandbox::new();
    for verb in [
        "",
        "create",
        "list",
        "describe",
        "delete",
        "connect",
        "disconnect",
        "kubeconfig",
        "completions",
        "rbac",
        "snapshot",
        "restore",
        "clone",
    ] {
        let args: Vec<&str> = verb.split_whitespace().chain(["--help"]).collect();
        let run = Vc::new(&sandbox).args(&args).env("COLUMNS", "100").run();
        run.code(0);
        let name = if verb.is_empty() { "vc".to_string() } else { format!("vc-{verb}") };
        insta::assert_snapshot!(format!("help-{name}"), run.stdout);
    }
}

#[test]
fn version_and_completions() {
    let sandbox = Sandbox::new();
    let version = Vc::new(&sandbox).args(["version"]).run();
    version.code(0);
    assert_eq!(version.stdout.trim(), format!("vc {}", env!("CARGO_PKG_VERSION")));
    for shell in ["bash", "zsh", "fish"] {
        let run = Vc::new(&sandbox).args(["completions", shell]).run();
        run.code(0);
        assert!(run.stdout.contains("create"), "{shell} completion names the verbs");
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let run = Vc::new(&sandbox).args(["create", "dev", "--no-such-flag"]).run();
    run.code(2);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);
}
