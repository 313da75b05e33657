//! Generated files in the tree (completions/, docs/man/, deploy/) must equal what the binary and the
//! clap definitions generate. `VC_UPDATE_GENERATED=1 cargo test --test cli generated` rewrites
//! them instead of failing.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::support::{Sandbox, Vc};

/// Completion file per shell, named as each shell looks for it.
pub const COMPLETION_FILES: [(&str, &str); 5] = [
    ("bash", "vc.bash"),
    ("zsh", "_vc"),
    ("fish", "vc.fish"),
    ("powershell", "_vc.ps1"),
    ("elvish", "vc.elv"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn updating() -> bool {
    std::env::var_os("VC_UPDATE_GENERATED").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Compares (or, when updating, writes) every expected file of `dir`; a file there that is not
/// expected is stale.
fn check_dir(dir: &Path, expected: &[(String, String)]) {
    let mut problems = Vec::new();
    if updating() {
        std::fs::create_dir_all(dir).expect("create the directory");
    }
    for (name, text) in expected {
        let path = dir.join(name);
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        if actual != *text {
            if updating() {
                std::fs::write(&path, text).expect("write a generated file");
            } else {
                problems.push(format!("{} differs from what vc generates", path.display()));
            }
        }
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !expected.iter().any(|(n, _)| *n == name) {
            if updating() {
                std::fs::remove_file(entry.path()).expect("remove a stale file");
            } else {
                problems.push(format!("{} is not generated any more", entry.path().display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nregenerate with: VC_UPDATE_GENERATED=1 cargo test --test cli generated",
        problems.join("\n")
    );
}

#[test]
fn generated_completions_match_the_binary() {
    let sandbox = Sandbox::new();
    let expected: Vec<(String, String)> = COMPLETION_FILES
        .iter()
        .map(|(shell, file)| {
            let run = Vc::new(&sandbox).args(["completions", shell]).run();
            run.code(0);
            assert!(
                run.stdout.contains("VC_COMPLETE"),
                "{shell} script calls vc back: {}",
                run.stdout
            );
            ((*file).to_string(), run.stdout)
        })
        .collect();
    check_dir(&root().join("completions"), &expected);
}

/// One page per visible command: vc.1, vc-create.1, ...
pub fn man_pages() -> Vec<(String, String)> {
    fn render(command: &clap::Command, name: &str, pages: &mut Vec<(String, String)>) {
        let page =
            command.clone().name(name.to_string().leak() as &str).bin_name(name.replace('-', " "));
        let mut text = Vec::new();
        clap_mangen::Man::new(page).render(&mut text).expect("render a man page");
        pages.push((format!("{name}.1"), String::from_utf8(text).expect("UTF-8 man page")));
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            render(sub, &format!("{name}-{}", sub.get_name()), pages);
        }
    }
    let mut command = vc::cli::Cli::command();
    command.build();
    let mut pages = Vec::new();
    render(&command, "vc", &mut pages);
    pages
}

#[test]
fn generated_man_pages_match_the_clap_definitions() {
    let pages = man_pages();
    assert!(pages.iter().any(|(name, _)| name == "vc-create.1"), "a page per verb");
    assert!(pages.iter().all(|(name, _)| name != "vc-forwarder.1"), "hidden verbs have none");
    check_dir(&root().join("docs").join("man"), &pages);
}

#[test]
fn cluster_names_complete_from_the_host() {
    let (_fake, sandbox) = crate::support::fake_host();
    Vc::new(&sandbox).args(["create", "dev", "--no-connect"]).run().code(0);
    Vc::new(&sandbox).args(["create", "web", "--no-connect"]).run().code(0);
    let complete = |line: &[&str]| {
        let run = Vc::new(&sandbox).env("VC_COMPLETE", "fish").args(["--", "vc"]).args(line).run();
        run.code(0);
        run.stdout
    };
    assert_eq!(complete(&["connect", "d"]), "dev\tvc-dev\n");
    assert_eq!(complete(&["delete", "dev", "w"]), "web\tvc-web\n");
    assert_eq!(complete(&["-n", "vc-web", "describe", ""]).lines().next(), Some("web\tvc-web"));
    assert!(complete(&["con"]).starts_with("connect\t"), "verbs complete too");
}

#[test]
fn a_mute_host_yields_no_names_quickly() {
    // Accepts connections (the kernel's backlog) and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sandbox = Sandbox::new();
    let kubeconfig = sandbox.kubeconfig();
    std::fs::create_dir_all(kubeconfig.parent().expect("parent")).expect("mkdir");
    let server = format!("http://{}", listener.local_addr().expect("addr"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: mute\nclusters:\n- name: mute\n  cluster:\n    server: {server}\ncontexts:\n- name: mute\n  context:\n    cluster: mute\n    user: mute\nusers:\n- name: mute\n  user:\n    token: t\n"
        ),
    )
    .expect("write the kubeconfig");
    let started = std::time::Instant::now();
    let run = Vc::new(&sandbox)
        .env("VC_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .args(["--", "vc", "connect", ""])
        .run();
    run.code(0);
    let took = started.elapsed();
    assert!(!run.stdout.contains("dev"), "{}", run.stdout);
    // The bound is generous; what matters is that the request is cut off, not how fast.
    assert!(took < std::time::Duration::from_secs(8), "completion took {took:?}");
    drop(listener);
}

#[test]
fn generated_deploy_manifests_match_the_binary() {
    let sandbox = Sandbox::new();
    let crd = Vc::new(&sandbox).args(["operator", "crd"]).run();
    crd.code(0);
    assert!(crd.stdout.contains("name: virtualclusters.vc.dev"), "{}", crd.stdout);
    let install = Vc::new(&sandbox).args(["operator", "install", "--dry-run"]).run();
    install.code(0);
    assert!(install.stdout.contains("kind: Deployment"), "{}", install.stdout);
    check_dir(
        &root().join("deploy"),
        &[("crd.yaml".to_string(), crd.stdout), ("install.yaml".to_string(), install.stdout)],
    );
}
