//! End-to-end scenarios against a real host cluster. They run only when `VC_E2E_KUBECONFIG`
//! names a kubeconfig for a disposable host; otherwise the suite prints that it skipped.
//! Every scenario removes what it created, even when a step fails.

use std::path::PathBuf;
use std::process::{Command, Output};

const VC: &str = env!("CARGO_BIN_EXE_vc");

/// The host kubeconfig, or `None` after printing why the suite skips.
fn host_kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("VC_E2E_KUBECONFIG") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            // Written past the test harness's capture, so the skip is visible in every run.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "e2e: skipped: set VC_E2E_KUBECONFIG to the kubeconfig of a disposable host cluster to run it"
            );
            None
        }
    }
}

/// Runs `vc` against the host with a private state directory.
struct E2e {
    kubeconfig: PathBuf,
    state: tempfile::TempDir,
}

impl E2e {
    /// Works on a copy of the host kubeconfig, so `vc connect` never edits the original.
    fn new(original: PathBuf) -> Self {
        let state = tempfile::tempdir().expect("temp dir");
        let kubeconfig = state.path().join("kubeconfig");
        std::fs::copy(&original, &kubeconfig).expect("copy VC_E2E_KUBECONFIG");
        Self { kubeconfig, state }
    }

    fn vc(&self, args: &[&str]) -> Output {
        let output = Command::new(VC)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            // HOME stays the user's: exec credential plugins (EKS, GKE) read their login there.
            .env("XDG_STATE_HOME", self.state.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run vc");
        eprintln!(
            "$ vc {}\n{}{}exit: {:?}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            output.status.code()
        );
        output
    }
}

/// Deletes the named cluster when dropped, so a failed assertion leaves nothing behind.
struct Cleanup<'a> {
    e2e: &'a E2e,
    name: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.e2e.vc(&["delete", &self.name, "--yes", "--ignore-not-found", "--timeout", "5m"]);
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{:05}", std::process::id() % 10_000, nanos % 100_000)
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn create_list_describe_delete() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    assert!(kubeconfig.exists(), "VC_E2E_KUBECONFIG {} does not exist", kubeconfig.display());
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone() };

    let created = e2e.vc(&[
        "create",
        &name,
        "--ttl",
        "1h",
        "--label",
        "suite=e2e",
        "-o",
        "json",
        "--timeout",
        "5m",
    ]);
    assert_eq!(created.status.code(), Some(0), "create failed");
    let result = json(&created);
    assert_eq!(result["name"], name.as_str());
    assert_eq!(result["phase"], "Running");
    for phase in ["applying", "scheduled", "starting", "ready"] {
        assert!(result["timings"][phase].is_number(), "no timing for {phase}: {result}");
    }

    let again = e2e.vc(&["create", &name]);
    assert_eq!(again.status.code(), Some(6), "a second create must report the conflict");

    let listed = e2e.vc(&["list", "-l", "suite=e2e", "-o", "json"]);
    assert_eq!(listed.status.code(), Some(0));
    let items = json(&listed);
    let item = items
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name.as_str()))
        .expect("the new cluster is listed");
    assert_eq!(item["status"], "Running");
    assert_eq!(item["madeBy"], "vc");

    let described = e2e.vc(&["describe", &name, "-o", "json"]);
    assert_eq!(described.status.code(), Some(0));
    let description = json(&described);
    assert!(
        description["objects"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x["kind"] == "NetworkPolicy")),
        "isolation policies are in place: {description}"
    );

    let deleted = e2e.vc(&["delete", &name, "--yes"]);
    assert_eq!(deleted.status.code(), Some(0));
    let gone = e2e.vc(&["describe", &name]);
    assert_eq!(gone.status.code(), Some(3), "the cluster is gone after delete");
}

#[test]
fn bad_input_touches_nothing() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let bad_name = e2e.vc(&["create", "Not_A_Name"]);
    assert_eq!(bad_name.status.code(), Some(2));
    let bad_version = e2e.vc(&["create", &unique("e2e"), "--kubernetes-version", "1.2"]);
    assert_eq!(bad_version.status.code(), Some(2));
    let missing = e2e.vc(&["delete", &unique("absent"), "--yes"]);
    assert_eq!(missing.status.code(), Some(3));
}

#[test]
fn connect_run_a_workload_and_disconnect() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e-conn");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone() };
    let created = e2e.vc(&["create", &name, "--no-connect", "--timeout", "5m"]);
    assert_eq!(created.status.code(), Some(0), "create failed");

    // The CI path: a private kubeconfig and forward for one command.
    let deployed = e2e.vc(&[
        "connect",
        &name,
        "--",
        "kubectl",
        "create",
        "deployment",
        "web",
        "--image=registry.k8s.io/pause:3.10",
    ]);
    assert_eq!(deployed.status.code(), Some(0), "kubectl through vc connect failed");
    let waited = e2e.vc(&[
        "connect",
        &name,
        "--",
        "kubectl",
        "wait",
        "deployment/web",
        "--for=condition=Available",
        "--timeout=180s",
    ]);
    assert_eq!(waited.status.code(), Some(0), "the workload did not become available");
    let code = e2e.vc(&["connect", &name, "--", "sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7), "connect -- CMD passes the exit code through");

    // The laptop path: background forward plus a context in a private kubeconfig copy.
    let connected = e2e.vc(&["connect", &name, "--no-switch", "-o", "json"]);
    assert_eq!(connected.status.code(), Some(0));
    let result = json(&connected);
    let context = result["context"].as_str().expect("context name").to_string();
    let listed = Command::new("kubectl")
        .args(["--context", &context, "get", "deployments", "-o", "name"])
        .env("KUBECONFIG", &e2e.kubeconfig)
        .output()
        .expect("kubectl must be installed for the e2e suite");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("deployment.apps/web"));
    let disconnected = e2e.vc(&["disconnect", &name]);
    assert_eq!(disconnected.status.code(), Some(0));
}
