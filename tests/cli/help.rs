//! The command surface: one help snapshot per verb, so every change to it is deliberate.

use clap::CommandFactory;

use crate::support::{Sandbox, Vc};

/// Every visible command path: "", "create", ..., and nested ones as "operator run".
fn visible_commands() -> Vec<String> {
    fn walk(command: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        out.push(prefix.to_string());
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let path = format!("{prefix} {}", sub.get_name()).trim().to_string();
            walk(sub, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(&vc::cli::Cli::command(), "", &mut out);
    out
}

#[test]
fn help_of_every_verb() {
    let sandbox = Sandbox::new();
    let verbs = visible_commands();
    for verb in [
        "create",
        "list",
        "connect",
        "doctor",
        "version",
        "completions",
        "pause",
        "resume",
        "extend",
        "gc",
        "rbac",
        "snapshot",
        "restore",
        "clone",
    ] {
        assert!(verbs.iter().any(|v| v == verb), "{verb} is a visible command: {verbs:?}");
    }
    for verb in &verbs {
        let args: Vec<&str> = verb.split_whitespace().chain(["--help"]).collect();
        let run = Vc::new(&sandbox).args(&args).env("COLUMNS", "100").run();
        run.code(0);
        let name = if verb.is_empty() {
            "vc".to_string()
        } else {
            format!("vc-{}", verb.replace(' ', "-"))
        };
        insta::assert_snapshot!(format!("help-{name}"), run.stdout);
    }
}

#[test]
fn version_and_completions() {
    let sandbox = Sandbox::new();
    let short = Vc::new(&sandbox).args(["--version"]).run();
    short.code(0);
    assert_eq!(short.stdout.trim(), format!("vc {}", env!("CARGO_PKG_VERSION")));
    let version = Vc::new(&sandbox).args(["version"]).run();
    version.code(0);
    let first = version.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("vc {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{}",
        version.stdout
    );
    assert!(version.stdout.contains("engine: vcluster 0.36.1"), "{}", version.stdout);
    assert!(version.stdout.contains("default 1.36"), "{}", version.stdout);
    let json = Vc::new(&sandbox).args(["version", "-o", "json"]).run();
    json.code(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(value["version"], env!("CARGO_PKG_VERSION"));
    assert!(value["commit"].as_str().is_some_and(|c| !c.is_empty()), "{value}");
    assert_eq!(value["engine"]["release"], "0.36.1");
    assert_eq!(value["engine"]["image"], "ghcr.io/loft-sh/vcluster-oss:0.36.1");
    assert_eq!(value["kubernetes"]["default"], "1.36");
    let supported = value["kubernetes"]["supported"].as_array().expect("a list");
    assert_eq!(supported.first().map(|v| v["minor"].clone()), Some("1.30".into()));
    assert_eq!(supported.last().map(|v| v["version"].clone()), Some("v1.36.0".into()));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let run = Vc::new(&sandbox).args(["create", "dev", "--no-such-flag"]).run();
    run.code(2);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);
}
