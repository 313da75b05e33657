//! End-to-end scenarios against a real host cluster. They run only when `VC_E2E_KUBECONFIG`
//! names a kubeconfig for a disposable host; otherwise the suite prints that it skipped.
//! Every scenario removes what it created, even when a step fails. They need `kubectl`.
//!
//! `isolation_matrix` runs probe pods from `VC_E2E_PROBE_IMAGE` (default `busybox:1.36`; the
//! image needs `sh`, a busybox-style `nc` (`-l -p PORT`, `-w SECS`) and `nslookup`): point it
//! at a copy in a reachable registry on hosts that cannot pull from Docker Hub. It skips, saying
//! so, on hosts whose CNI does not enforce NetworkPolicies.
//!
//! `doctor_probes_and_cleans_up` runs `vc doctor` (its network probe uses the same probe image)
//! cluster-wide and with `-n`, and checks that no object labelled `vc.dev/doctor` is left.
//!
//! `namespace_admin` runs vc as a ServiceAccount bound only to the built-in `admin` ClusterRole
//! in one namespace, before and after `vc rbac`; it needs `kubectl create token` (Kubernetes
//! 1.24 or later) and a host kubeconfig whose cluster entry works with a bearer token.

use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const VC: &str = env!("CARGO_BIN_EXE_vc");

/// `VC_E2E_KUBECONFIG`, when set.
fn configured_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("VC_E2E_KUBECONFIG").filter(|path| !path.is_empty()).map(PathBuf::from)
}

/// Writes past the test harness's capture, so a skip is visible in every run.
fn report_skip(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// The host kubeconfig, or `None` after printing why the suite skips.
fn host_kubeconfig() -> Option<PathBuf> {
    let kubeconfig = configured_kubeconfig();
    if kubeconfig.is_none() {
        report_skip(
            "e2e: skipped: set VC_E2E_KUBECONFIG to the kubeconfig of a disposable host cluster to run it",
        );
    }
    kubeconfig
}

/// One line with the phase timings of a create, from its JSON result or its progress lines,
/// so start-up time can be followed from run to run.
fn print_timings(args: &[&str], output: &Output) {
    let name = args.get(1).copied().unwrap_or_default();
    let from_json = serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .ok()
        .and_then(|v| v.get("timings").cloned())
        .filter(serde_json::Value::is_object)
        .map(|t| t.to_string());
    let timings = from_json.unwrap_or_else(|| {
        // Plain progress lines: "<timestamp> <phase> <seconds>s".
        let stderr = String::from_utf8_lossy(&output.stderr);
        let phases: Vec<String> = stderr
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace().skip(1);
                let phase = words.next()?;
                let seconds = words.next()?.strip_suffix('s')?.parse::<f64>().ok()?;
                Some(format!("{phase} {seconds:.1}s"))
            })
            .collect();
        phases.join(", ")
    });
    if !timings.is_empty() {
        eprintln!("e2e timings: create {name}: {timings}");
    }
}

fn log_command(program: &str, args: &[&str], output: &Output) {
    eprintln!(
        "$ {program} {}\n{}{}exit: {:?}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        output.status.code()
    );
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
        self.vc_as(&self.kubeconfig, args)
    }

    /// Runs `vc` with extra environment variables.
    fn vc_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let output = Command::new(VC)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("XDG_STATE_HOME", self.state.path())
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .output()
            .expect("run vc");
        log_command("vc", args, &output);
        if args.first() == Some(&"create") {
            print_timings(args, &output);
        }
        output
    }

    /// Runs `vc` with `input` (a file) on its stdin.
    fn vc_with_stdin_file(&self, args: &[&str], input: &Path) -> Output {
        let file = std::fs::File::open(input).expect("open the input file");
        let output = Command::new(VC)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("XDG_STATE_HOME", self.state.path())
            .env("NO_COLOR", "1")
            .stdin(file)
            .output()
            .expect("run vc");
        log_command("vc", args, &output);
        output
    }

    /// Runs `vc` as whoever `kubeconfig` names, with the same private state directory.
    fn vc_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let output = Command::new(VC)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            // HOME stays the user's: exec credential plugins (EKS, GKE) read their login there.
            .env("XDG_STATE_HOME", self.state.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run vc");
        log_command("vc", args, &output);
        if args.first() == Some(&"create") {
            print_timings(args, &output);
        }
        output
    }

    /// Runs kubectl against the host, through the copy of the host kubeconfig.
    fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_as(&self.kubeconfig, args, None)
    }

    /// Runs kubectl against the host as cluster admin, writing `input` to its stdin.
    fn kubectl_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        kubectl_as(&self.kubeconfig, args, Some(input))
    }
}

/// Runs kubectl as whoever `kubeconfig` names, with `input` on stdin (else none).
fn kubectl_as(kubeconfig: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    let output = run_kubectl(kubeconfig, args, input);
    log_command("kubectl", args, &output);
    output
}

/// Runs kubectl as cluster admin and logs it without its stdout, which holds credentials.
fn kubectl_secret(e2e: &E2e, args: &[&str]) -> Output {
    let output = run_kubectl(&e2e.kubeconfig, args, None);
    let shown = Output { stdout: b"(stdout withheld: it holds credentials)\n".to_vec(), ..output };
    log_command("kubectl", args, &shown);
    Output { stdout: output.stdout, ..shown }
}

fn run_kubectl(kubeconfig: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl must be installed for the e2e suite");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // Dropping stdin at the end of this block closes it, so kubectl sees the end.
        stdin.write_all(input).expect("write kubectl's stdin");
    }
    child.wait_with_output().expect("wait for kubectl")
}

/// Deletes the named cluster when dropped, so a failed assertion leaves nothing behind.
/// With `namespace`, deletes it there (`-n`), else wherever `vc` finds it.
struct Cleanup<'a> {
    e2e: &'a E2e,
    name: String,
    namespace: Option<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let mut args = vec!["delete", &self.name, "--yes", "--ignore-not-found", "--timeout", "5m"];
        if let Some(namespace) = &self.namespace {
            args.extend(["-n", namespace]);
        }
        self.e2e.vc(&args);
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

/// The engine started from the certificate Secret `vc` wrote: the Secret is `vc`'s, has every
/// file, and the engine's `/data/pki/ca.crt` is the Secret's. A host that tells `vc` neither
/// its `kubernetes` Service nor its ServiceCIDR leaves the certificates to the engine.
fn check_engine_kept_vcs_certificates(e2e: &E2e, host: &str, name: &str, namespace: &str) {
    let secret_name = format!("{name}-certs");
    let args = ["--context", host, "get", "secret", &secret_name, "-n", namespace, "-o", "json"];
    let got = kubectl_secret(e2e, &args);
    assert_eq!(got.status.code(), Some(0), "the engine's certificate Secret exists");
    let secret = json(&got);
    if secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] != "vc" {
        report_skip("the host told vc no service address: the engine made its own certificates");
        return;
    }
    let data = secret["data"].as_object().expect("data");
    assert_eq!(data.len(), 29, "every file the engine stores");
    let ca = base64::engine::general_purpose::STANDARD
        .decode(data["ca.crt"].as_str().expect("base64"))
        .expect("base64");
    let pod = format!("{name}-0");
    let exec = ["--context", host, "exec", "-n", namespace, &pod, "-c", "syncer", "--"];
    let on_disk = e2e.kubectl(&[&exec[..], &["cat", "/data/pki/ca.crt"]].concat());
    assert_eq!(on_disk.status.code(), Some(0), "read the engine's CA");
    assert_eq!(on_disk.stdout, ca, "the engine runs with the CA vc made");
}

#[test]
fn create_list_describe_delete() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    assert!(kubeconfig.exists(), "VC_E2E_KUBECONFIG {} does not exist", kubeconfig.display());
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let current = e2e.kubectl(&["config", "current-context"]);
    let host_context = String::from_utf8_lossy(&current.stdout).trim().to_string();

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
    for phase in ["applying", "scheduled", "initialized", "apiserver", "ready"] {
        assert!(result["timings"][phase].is_number(), "no timing for {phase}: {result}");
    }

    let namespace = result["namespace"].as_str().expect("the namespace").to_string();
    check_engine_kept_vcs_certificates(&e2e, &host_context, &name, &namespace);

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
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
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

#[test]
fn ephemeral_cluster_runs_a_workload_without_a_claim() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e-eph");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let created =
        e2e.vc(&["create", &name, "--ephemeral", "--no-switch", "-o", "json", "--timeout", "5m"]);
    assert_eq!(created.status.code(), Some(0), "create failed");
    let result = json(&created);
    for phase in ["applying", "scheduled", "initialized", "apiserver", "ready", "connected"] {
        assert!(result["timings"][phase].is_number(), "no timing for {phase}: {result}");
    }
    let namespace = format!("vc-{name}");
    let claims = e2e.kubectl(&["get", "pvc", "-n", &namespace, "-o", "name"]);
    assert!(claims.status.success());
    assert!(
        claims.stdout.is_empty(),
        "no volume claim: {}",
        String::from_utf8_lossy(&claims.stdout)
    );

    // The context create wrote works at once, and the controller manager (one identity, see
    // docs/engine.md) makes ReplicaSets and pods that the engine syncs to the host.
    let context = result["context"].as_str().expect("a context").to_string();
    let kubectl = |args: &[&str]| {
        let output = Command::new("kubectl")
            .arg("--context")
            .arg(&context)
            .args(args)
            .env("KUBECONFIG", &e2e.kubeconfig)
            .output()
            .expect("kubectl must be installed for the e2e suite");
        log_command("kubectl", args, &output);
        output
    };
    let deployed = kubectl(&["create", "deployment", "web", "--image=registry.k8s.io/pause:3.10"]);
    assert!(deployed.status.success(), "kubectl create through the new context failed");
    let available =
        kubectl(&["wait", "deployment/web", "--for=condition=Available", "--timeout=180s"]);
    assert!(available.status.success(), "the workload did not become available");
    let accounts =
        kubectl(&["get", "serviceaccount", "default", "-n", "kube-system", "-o", "name"]);
    assert!(accounts.status.success(), "service accounts are made");
    let disconnected = e2e.vc(&["disconnect", &name]);
    assert_eq!(disconnected.status.code(), Some(0));
}

/// `--expose nodeport` with placement: the context create writes points at the node's address
/// and the Service's node port, with no forward; kubectl works through it from this machine;
/// the engine puts the placement on every pod it syncs to the host. A host whose node
/// addresses are not reachable from here (a remote cloud cluster) fails the connect with exit
/// 5 or 4, and the scenario says so instead of failing.
#[test]
fn exposed_nodeport_and_placement() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e-np");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let created = e2e.vc(&[
        "create",
        &name,
        "--expose",
        "nodeport",
        "--node-selector",
        "kubernetes.io/os=linux",
        "--toleration",
        "e2e.vc.dev/dedicated=ci:NoSchedule",
        "--no-switch",
        "-o",
        "json",
        "--timeout",
        "5m",
    ]);
    if matches!(created.status.code(), Some(4 | 5))
        && String::from_utf8_lossy(&created.stderr).contains("the exposed endpoint")
    {
        report_skip("the node address of --expose nodeport is not reachable from this machine");
        return;
    }
    assert_eq!(created.status.code(), Some(0), "create failed");
    let result = json(&created);
    assert!(result["timings"]["exposed"].is_number(), "an exposed phase: {result}");
    let server = result["server"].as_str().expect("a server").to_string();
    assert!(!server.starts_with("https://127.0.0.1"), "not a local forward: {server}");
    let namespace = format!("vc-{name}");
    let node_port = e2e.kubectl(&[
        "get",
        "service",
        &name,
        "-n",
        &namespace,
        "-o",
        "jsonpath={.spec.ports[?(@.name==\"https\")].nodePort}",
    ]);
    let node_port = String::from_utf8_lossy(&node_port.stdout).trim().to_string();
    assert!(server.ends_with(&format!(":{node_port}")), "{server} uses node port {node_port}");
    let forwards = e2e.state.path().join("vc").join("forwards");
    let forward_files = std::fs::read_dir(&forwards).map(|d| d.count()).unwrap_or(0);
    assert_eq!(forward_files, 0, "no forward was started");

    let context = result["context"].as_str().expect("a context").to_string();
    let kubectl = |args: &[&str]| {
        let output = Command::new("kubectl")
            .arg("--context")
            .arg(&context)
            .args(args)
            .env("KUBECONFIG", &e2e.kubeconfig)
            .output()
            .expect("kubectl must be installed for the e2e suite");
        log_command("kubectl", args, &output);
        output
    };
    let ran = kubectl(&["run", "placed", "--image=registry.k8s.io/pause:3.10", "--restart=Never"]);
    assert!(ran.status.success(), "kubectl through the exposed address failed");
    // The synced pod on the host carries what the engine enforces.
    let selector = format!("vcluster.loft.sh/managed-by={name}");
    let mut spec = serde_json::Value::Null;
    let synced = eventually(Duration::from_secs(60), || {
        let pods = e2e.kubectl(&["get", "pods", "-n", &namespace, "-l", &selector, "-o", "json"]);
        let list: serde_json::Value = serde_json::from_slice(&pods.stdout).unwrap_or_default();
        let found = list["items"].as_array().into_iter().flatten().find(|p| {
            p["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("placed-x-default"))
        });
        if let Some(pod) = found {
            spec = pod["spec"].clone();
        }
        found.is_some()
    });
    assert!(synced, "the pod was synced to the host");
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"], "linux", "{spec}");
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    assert!(
        tolerations.iter().any(|t| t["key"] == "e2e.vc.dev/dedicated"
            && t["value"] == "ci"
            && t["effect"] == "NoSchedule"),
        "enforced toleration: {tolerations:?}"
    );
    let control_plane = e2e.kubectl(&[
        "get",
        "pod",
        &format!("{name}-0"),
        "-n",
        &namespace,
        "-o",
        "jsonpath={.spec.nodeSelector}",
    ]);
    assert!(String::from_utf8_lossy(&control_plane.stdout).contains("kubernetes.io/os"));
    let disconnected = e2e.vc(&["disconnect", &name]);
    assert_eq!(disconnected.status.code(), Some(0));
}

/// An ingress controller that passes TLS through: a pod anywhere on the host running with
/// `--enable-ssl-passthrough` (ingress-nginx's switch), and the address its Ingresses get.
fn passthrough_controller(e2e: &E2e) -> bool {
    let pods = e2e.kubectl(&["get", "pods", "-A", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&pods.stdout).unwrap_or_default();
    list["items"].as_array().into_iter().flatten().any(|pod| {
        pod["spec"]["containers"].as_array().into_iter().flatten().any(|c| {
            c["args"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a.as_str().is_some_and(|a| a.starts_with("--enable-ssl-passthrough")))
        })
    })
}

/// `--expose ingress=HOST`: the Ingress the chart renders (TLS passthrough annotations, the
/// host's rule to the Service's https port) is accepted by the real API server; the engine
/// serves a certificate for HOST (kubectl verifies it through a forward with
/// `--tls-server-name HOST`, and refuses another name); `vc kubeconfig` and `describe` name
/// `https://HOST`. Where the host runs an ingress controller with TLS passthrough, kubectl
/// also reaches the API through the controller's published address; the host name's DNS is
/// the user's, so it is given to kubectl as the TLS server name. A host without such a
/// controller is said to be one, and the rest still runs.
#[test]
fn exposed_ingress() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let served = e2e.kubectl(&["api-resources", "--api-group=networking.k8s.io", "-o", "name"]);
    if !String::from_utf8_lossy(&served.stdout).lines().any(|l| l.starts_with("ingresses.")) {
        report_skip("e2e: exposed_ingress skipped: the host serves no networking.k8s.io Ingress");
        return;
    }
    let controller = passthrough_controller(&e2e);
    if !controller {
        report_skip(
            "e2e: exposed_ingress: the host runs no ingress controller with --enable-ssl-passthrough; checking the Ingress and the certificate only, not the path through a controller",
        );
    }
    let name = unique("e2e-ing");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    // `.invalid` never resolves (RFC 2606): the check below cannot depend on DNS.
    let host = format!("{name}.vc-e2e.invalid");
    let expose = format!("ingress={host}");
    let created = e2e.vc(&[
        "create",
        &name,
        "--expose",
        &expose,
        "--no-connect",
        "-o",
        "json",
        "--timeout",
        "5m",
    ]);
    assert_eq!(created.status.code(), Some(0), "create failed");
    let namespace = format!("vc-{name}");

    let ingress = e2e.kubectl(&["get", "ingress", &name, "-n", &namespace, "-o", "json"]);
    assert_eq!(ingress.status.code(), Some(0), "the Ingress exists");
    let ingress = json(&ingress);
    assert_eq!(ingress["spec"]["rules"][0]["host"], host.as_str());
    let path = &ingress["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["backend"]["service"]["name"], name.as_str());
    assert_eq!(path["backend"]["service"]["port"]["name"], "https");
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/ssl-passthrough"], "true");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");

    let described = e2e.vc(&["describe", &name, "-o", "json"]);
    assert_eq!(described.status.code(), Some(0));
    assert_eq!(json(&described)["endpoint"]["type"], "Ingress");

    // The engine's serving certificate covers HOST: kubectl verifies it against the engine's
    // CA under that name through a forward, and refuses a name it does not cover.
    let connected = e2e.vc(&["connect", &name, "--forward", "--no-switch", "-o", "json"]);
    assert_eq!(connected.status.code(), Some(0), "connect --forward failed");
    let context = json(&connected)["context"].as_str().expect("a context").to_string();
    let version_as = |server_name: &str| {
        let args =
            ["--context", &context, "--tls-server-name", server_name, "get", "--raw", "/version"];
        e2e.kubectl(&args)
    };
    let verified = eventually(Duration::from_secs(30), || version_as(&host).status.success());
    assert!(verified, "the engine's certificate covers {host}");
    let other = version_as("not-in-the-certificate.vc-e2e.invalid");
    assert!(!other.status.success(), "a name the certificate lacks is refused");
    // The engine writes its kubeconfig Secret, which `vc kubeconfig` reads, soon after ready.
    let mut printed_text = String::new();
    let printed = eventually(Duration::from_secs(60), || {
        let printed = e2e.vc(&["kubeconfig", &name]);
        printed_text = String::from_utf8_lossy(&printed.stdout).to_string();
        printed.status.success()
    });
    assert!(printed, "vc kubeconfig prints a kubeconfig");
    assert!(printed_text.contains(&format!("server: https://{host}")), "{printed_text}");

    if controller {
        // The controller's published address, with HOST as the TLS server name.
        let mut address = String::new();
        let published = eventually(Duration::from_secs(60), || {
            let got = e2e.kubectl(&[
                "get", "ingress", &name, "-n", &namespace, "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}",
            ]);
            address = String::from_utf8_lossy(&got.stdout).trim().to_string();
            !address.is_empty()
        });
        assert!(published, "the ingress controller published an address");
        let server = format!("https://{address}");
        let through = e2e.kubectl(&[
            "--context",
            &context,
            "--server",
            &server,
            "--tls-server-name",
            &host,
            "get",
            "--raw",
            "/version",
        ]);
        assert!(through.status.success(), "the API answers through the ingress controller");
    }
    let disconnected = e2e.vc(&["disconnect", &name]);
    assert_eq!(disconnected.status.code(), Some(0));
}

/// Whether the host gives a Service of type LoadBalancer an address: a throw-away Service in a
/// probe namespace of its own, given `within` to get one.
fn host_serves_load_balancers(e2e: &E2e, within: Duration) -> bool {
    let namespace = unique("e2e-lbprobe");
    e2e.kubectl(&["create", "namespace", &namespace]);
    let service = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {"type": "LoadBalancer", "selector": {"app": "none"}, "ports": [{"port": 443}]},
    });
    let file = e2e.state.path().join("lb-probe.json");
    std::fs::write(&file, service.to_string()).expect("write the probe Service");
    e2e.kubectl(&["apply", "-f", &file.display().to_string()]);
    let served = eventually(within, || {
        let got = e2e.kubectl(&[
            "get", "service", "probe", "-n", &namespace, "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}",
        ]);
        !String::from_utf8_lossy(&got.stdout).trim().is_empty()
    });
    e2e.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
    served
}

/// `--expose loadbalancer`: the exposed phase waits for the Service's address, the context
/// and `vc kubeconfig` use it with no forward, and kubectl works through it with TLS verified
/// (the engine put the address in its certificate). Skips, saying so, on a host that gives
/// LoadBalancer Services no address.
#[test]
fn exposed_loadbalancer() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    if !host_serves_load_balancers(&e2e, Duration::from_secs(30)) {
        report_skip(
            "e2e: exposed_loadbalancer skipped: the host gave a LoadBalancer Service no address within 30 s (no load-balancer implementation)",
        );
        return;
    }
    let name = unique("e2e-lb");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let created = e2e.vc(&[
        "create",
        &name,
        "--expose",
        "loadbalancer",
        "--no-switch",
        "-o",
        "json",
        "--timeout",
        "5m",
    ]);
    assert_eq!(created.status.code(), Some(0), "create failed");
    let result = json(&created);
    assert!(result["timings"]["exposed"].is_number(), "an exposed phase: {result}");
    let namespace = format!("vc-{name}");
    let address = e2e.kubectl(&[
        "get",
        "service",
        &name,
        "-n",
        &namespace,
        "-o",
        "jsonpath={.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}",
    ]);
    let address = String::from_utf8_lossy(&address.stdout).trim().to_string();
    let server = result["server"].as_str().expect("a server").to_string();
    assert!(server.starts_with(&format!("https://{address}")), "{server} uses {address}");
    let forwards = e2e.state.path().join("vc").join("forwards");
    let forward_files = std::fs::read_dir(&forwards).map(|d| d.count()).unwrap_or(0);
    assert_eq!(forward_files, 0, "no forward was started");
    let context = result["context"].as_str().expect("a context").to_string();
    let listed = e2e.kubectl(&["--context", &context, "get", "namespaces", "-o", "name"]);
    assert!(listed.status.success(), "kubectl through the load balancer's address failed");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("namespace/default"));
    let mut printed_text = String::new();
    let printed = eventually(Duration::from_secs(60), || {
        let printed = e2e.vc(&["kubeconfig", &name]);
        printed_text = String::from_utf8_lossy(&printed.stdout).to_string();
        printed.status.success()
    });
    assert!(printed, "vc kubeconfig prints a kubeconfig");
    assert!(printed_text.contains(&format!("server: {server}")), "{printed_text}");
    let disconnected = e2e.vc(&["disconnect", &name]);
    assert_eq!(disconnected.status.code(), Some(0));
}

// Isolation matrix: tenant pods of cluster A, some wearing the labels of the pods vc's policies
// trust (control plane, snapshot, CoreDNS), probe what they can reach on a real host.

/// Serves "ok" on TCP 8080, one connection after another: a plain `nc -l` loop works with every
/// busybox build, `nc -lk -e` needs optional features.
const SERVE_8080: &str = "while true; do echo ok | nc -l -p 8080; done";
const SLEEP: &str = "exec sleep 3600";
/// `sleep` and `sh` as PID 1 ignore SIGTERM: without a zero grace period every pod deletion
/// (and so every cleanup) would wait 30 seconds.
const POD_OVERRIDES: &str = r#"{"apiVersion":"v1","spec":{"terminationGracePeriodSeconds":0}}"#;
/// Label of the pods in the host probe namespace; the deny-all policy selects `denied`.
const ROLE_LABEL: &str = "e2e.vc.dev/role";
/// Prefix of the lines the in-pod probe script prints, one per target.
const PROBE_MARKER: &str = "vc-probe";

fn skip_matrix(reason: &str) {
    report_skip(&format!("e2e: isolation matrix skipped: {reason}"));
}

fn probe_image() -> String {
    std::env::var("VC_E2E_PROBE_IMAGE")
        .ok()
        .filter(|image| !image.is_empty())
        .unwrap_or_else(|| "busybox:1.36".to_string())
}

/// A host namespace the test creates; deleted when dropped, so a failed step leaves nothing.
struct HostNamespace<'a> {
    e2e: &'a E2e,
    name: String,
}

impl<'a> HostNamespace<'a> {
    fn create(e2e: &'a E2e, name: String) -> Self {
        // The guard exists before the namespace does: a create that fails halfway is removed too.
        let namespace = Self { e2e, name };
        let created = e2e.kubectl(&["create", "namespace", &namespace.name]);
        assert!(created.status.success(), "cannot create host namespace {}", namespace.name);
        // Pods are refused until the ServiceAccount controller has made `default`.
        let has_account = eventually(Duration::from_secs(60), || {
            e2e.kubectl(&["get", "serviceaccount", "default", "-n", &namespace.name])
                .status
                .success()
        });
        assert!(has_account, "no default ServiceAccount in {} after 60s", namespace.name);
        namespace
    }
}

impl Drop for HostNamespace<'_> {
    fn drop(&mut self) {
        // No `expect` here: a second panic while unwinding would abort the whole test binary.
        let args = ["delete", "namespace", &self.name, "--ignore-not-found", "--timeout=3m"];
        match Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.e2e.kubeconfig)
            .args(args)
            .output()
        {
            Ok(output) => log_command("kubectl", &args, &output),
            Err(e) => eprintln!("cannot delete host namespace {}: {e}", self.name),
        }
    }
}

/// Where a kubectl command goes: the host, or a virtual cluster through `vc connect NAME --`
/// (the CI path: a private kubeconfig and forward for one command).
#[derive(Clone, Copy)]
enum Kubectl<'a> {
    Host(&'a E2e),
    Virtual(&'a E2e, &'a str),
}

impl Kubectl<'_> {
    fn run(self, args: &[&str]) -> Output {
        match self {
            Kubectl::Host(e2e) => e2e.kubectl(args),
            Kubectl::Virtual(e2e, cluster) => {
                let mut through_vc = vec!["connect", cluster, "--", "kubectl"];
                through_vc.extend_from_slice(args);
                e2e.vc(&through_vc)
            }
        }
    }

    /// Runs, and fails the test with `what` unless kubectl succeeded.
    fn run_ok(self, what: &str, args: &[&str]) -> Output {
        let output = self.run(args);
        assert!(output.status.success(), "{what} failed (the command and its output are above)");
        output
    }

    fn stdout_ok(self, what: &str, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.run_ok(what, args).stdout).trim().to_string()
    }
}

/// A pod of the probe image running `script` with `sh -c`.
struct ProbePod {
    namespace: String,
    name: String,
    labels: String,
    script: &'static str,
}

impl ProbePod {
    fn sleeper(namespace: &str, name: &str, labels: &str) -> Self {
        Self::new(namespace, name, labels, SLEEP)
    }

    fn server(namespace: &str, name: &str, labels: &str) -> Self {
        Self::new(namespace, name, labels, SERVE_8080)
    }

    fn new(namespace: &str, name: &str, labels: &str, script: &'static str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: labels.to_string(),
            script,
        }
    }

    fn start(&self, kubectl: Kubectl, image: &str) {
        kubectl.run_ok(
            &format!("starting pod {}/{}", self.namespace, self.name),
            &[
                "run",
                &self.name,
                "-n",
                &self.namespace,
                &format!("--image={image}"),
                "--restart=Never",
                &format!("--labels={}", self.labels),
                &format!("--overrides={POD_OVERRIDES}"),
                "--command",
                "--",
                "sh",
                "-c",
                self.script,
            ],
        );
    }
}

/// Starts the pods and waits until all are Ready, one `kubectl wait` per namespace.
fn start_and_wait(kubectl: Kubectl, image: &str, pods: &[&ProbePod]) {
    for pod in pods {
        pod.start(kubectl, image);
    }
    let namespaces: std::collections::BTreeSet<&str> =
        pods.iter().map(|pod| pod.namespace.as_str()).collect();
    for namespace in namespaces {
        let mut args = vec!["wait", "--for=condition=Ready", "-n", namespace, "--timeout=180s"];
        let names: Vec<String> = pods
            .iter()
            .filter(|pod| pod.namespace == namespace)
            .map(|pod| format!("pod/{}", pod.name))
            .collect();
        args.extend(names.iter().map(String::as_str));
        let what = format!(
            "waiting for the probe pods in {namespace} (can the host pull VC_E2E_PROBE_IMAGE={image}?)"
        );
        kubectl.run_ok(&what, &args);
    }
}

/// Calls `done` every two seconds until it returns true or `limit` has passed.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    Open,
    Blocked,
}

/// One target probed from inside a pod: `command` exits 0 when the target answered.
struct Check {
    key: &'static str,
    command: String,
    /// Tries before the target counts as blocked. Several where "open" is expected, since a new
    /// pod's first packets can race its CNI; one elsewhere, since each blocked try waits out the
    /// timeout and more tries could only make a "blocked" cell stricter.
    tries: u32,
}

fn tcp(address: &str, port: u16) -> String {
    format!("nc -w 3 {address} {port} </dev/null")
}

fn dns_query(server: &str) -> String {
    format!("nslookup -timeout=3 kubernetes.default.svc.cluster.local {server}")
}

/// A shell script that runs every check and prints `vc-probe KEY open|blocked` for each.
/// Markers rather than exit codes: a failing `vc connect` or `kubectl exec` prints none, so a
/// broken probe shows as "no result" instead of passing for "blocked".
fn probe_script(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|check| {
            let tries: Vec<String> = (1..=check.tries.max(1)).map(|t| t.to_string()).collect();
            format!(
                "r=blocked; for t in {}; do [ $t = 1 ] || sleep 2; if {{ {}; }} >/dev/null; then r=open; break; fi; done; echo \"{PROBE_MARKER} {} $r\"",
                tries.join(" "),
                check.command,
                check.key
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_probe_output(stdout: &[u8]) -> BTreeMap<String, Reach> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix(PROBE_MARKER)?.split_whitespace();
            let key = words.next()?.to_string();
            let reach = match words.next()? {
                "open" => Reach::Open,
                "blocked" => Reach::Blocked,
                _ => return None,
            };
            Some((key, reach))
        })
        .collect()
}

/// Runs the checks inside `pod` and returns what each reached, by key.
fn probe_from(kubectl: Kubectl, pod: &ProbePod, checks: &[Check]) -> BTreeMap<String, Reach> {
    let script = probe_script(checks);
    let output = kubectl.run(&["exec", "-n", &pod.namespace, &pod.name, "--", "sh", "-c", &script]);
    parse_probe_output(&output.stdout)
}

/// Whether a deny-all-ingress policy stops the probe namespace's client from reaching the
/// server it reached a moment before. Without enforcement every "blocked" cell of the matrix
/// would fail for a reason vc cannot change, so the matrix asks this first.
fn deny_all_takes_effect(e2e: &E2e, client: &ProbePod, server: &ProbePod) -> bool {
    let host = Kubectl::Host(e2e);
    let server_ip = pod_ip(host, &server.namespace, &server.name);
    let check = [Check { key: "server", command: tcp(&server_ip, 8080), tries: 1 }];
    let reach = || probe_from(host, client, &check).get("server").copied();
    // Reachable first, else a "blocked" after the policy would only prove a broken probe.
    let reachable = eventually(Duration::from_secs(60), || reach() == Some(Reach::Open));
    assert!(
        reachable,
        "the probe client cannot reach the probe server before any policy: does \
         VC_E2E_PROBE_IMAGE provide a busybox-style `nc`?"
    );
    apply_deny_all_ingress(e2e, &server.namespace);
    // Policy controllers program their rules asynchronously.
    let mut last = None;
    let blocked = eventually(Duration::from_secs(45), || {
        last = reach();
        last == Some(Reach::Blocked)
    });
    // A probe that stopped printing results must not pass for a CNI that ignores policies.
    assert!(blocked || last.is_some(), "the probe from {} printed no result", client.name);
    blocked
}

fn apply_deny_all_ingress(e2e: &E2e, namespace: &str) {
    let policy = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": "deny-all-ingress", "namespace": namespace },
        "spec": {
            "podSelector": { "matchLabels": { ROLE_LABEL: "denied" } },
            "policyTypes": ["Ingress"]
        }
    });
    let path = e2e.state.path().join("deny-all-ingress.json");
    std::fs::write(&path, policy.to_string()).expect("write the deny-all policy");
    let file = path.to_str().expect("a UTF-8 temp path");
    Kubectl::Host(e2e).run_ok("applying the deny-all policy", &["apply", "-f", file]);
}

/// Creates the clusters side by side (each takes minutes) and fails unless all are up.
fn create_clusters(e2e: &E2e, names: &[&str]) {
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let creates: Vec<_> = names
            .iter()
            .map(|name| {
                scope.spawn(move || {
                    e2e.vc(&[
                        "create",
                        name,
                        "--no-connect",
                        "--ttl",
                        "1h",
                        "--label",
                        "suite=e2e",
                        "--timeout",
                        "5m",
                    ])
                })
            })
            .collect();
        creates.into_iter().map(|create| create.join().expect("vc create thread")).collect()
    });
    for (name, output) in names.iter().zip(&outputs) {
        assert_eq!(output.status.code(), Some(0), "vc create {name} failed");
    }
}

fn pod_ip(kubectl: Kubectl, namespace: &str, pod: &str) -> String {
    let ip = kubectl.stdout_ok(
        &format!("reading the IP of pod {namespace}/{pod}"),
        &["get", "pod", pod, "-n", namespace, "-o", "jsonpath={.status.podIP}"],
    );
    assert!(!ip.is_empty(), "pod {namespace}/{pod} has no IP");
    ip
}

/// The cluster IP of the host's DNS Service, or `None`, said, when the host runs no cluster
/// DNS (the matrix then leaves its column out).
fn host_dns_service(e2e: &E2e) -> Option<String> {
    let args =
        ["get", "service", "kube-dns", "-n", "kube-system", "-o", "jsonpath={.spec.clusterIP}"];
    let out = e2e.kubectl(&args);
    let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !ip.is_empty() {
        return Some(ip);
    }
    report_skip(
        "e2e: isolation_matrix: the host has no Service kube-system/kube-dns (no cluster DNS): the host-dns column is not probed",
    );
    None
}

fn service_ip(kubectl: Kubectl, namespace: &str, service: &str) -> String {
    let ip = kubectl.stdout_ok(
        &format!("reading the cluster IP of service {namespace}/{service}"),
        &["get", "service", service, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"],
    );
    assert!(!ip.is_empty(), "service {namespace}/{service} has no cluster IP");
    ip
}

/// The host-side IPs of cluster `cluster`'s synced pods, by host pod name.
fn synced_pod_ips(e2e: &E2e, cluster: &str) -> BTreeMap<String, String> {
    let listing = Kubectl::Host(e2e).stdout_ok(
        &format!("listing the synced pods of {cluster}"),
        &[
            "get",
            "pods",
            "-n",
            &format!("vc-{cluster}"),
            "-l",
            &format!("vcluster.loft.sh/managed-by={cluster}"),
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{" "}{.status.podIP}{"\n"}{end}"#,
        ],
    );
    listing
        .lines()
        .filter_map(|line| {
            let (name, ip) = line.split_once(' ')?;
            (!ip.trim().is_empty()).then(|| (name.to_string(), ip.trim().to_string()))
        })
        .collect()
}

/// The host IP of a pod synced out of `cluster`, by its virtual name and namespace.
fn synced_pod_ip(ips: &BTreeMap<String, String>, pod: &ProbePod, cluster: &str) -> String {
    let host_name = format!("{}-x-{}-x-{cluster}", pod.name, pod.namespace);
    ips.get(&host_name).cloned().unwrap_or_else(|| {
        panic!("no synced host pod {host_name} with an IP in vc-{cluster}; synced: {ips:?}")
    })
}

/// The host API server's endpoints (the `kubernetes` Endpoints in `default`), as IP and port.
fn host_api_endpoints(e2e: &E2e) -> Vec<(String, u16)> {
    let output = Kubectl::Host(e2e).run_ok(
        "reading the host API endpoints",
        &["get", "endpoints", "kubernetes", "-n", "default", "-o", "json"],
    );
    let endpoints = json(&output);
    let mut found = Vec::new();
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let ports = subset["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
        let https = ports.iter().find(|p| p["name"] == "https").or(ports.first());
        let port = https
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .expect("a port in the kubernetes Endpoints");
        for address in subset["addresses"].as_array().into_iter().flatten() {
            let ip = address["ip"].as_str().expect("an IP in the kubernetes Endpoints");
            found.push((ip.to_string(), port));
        }
    }
    assert!(!found.is_empty(), "the kubernetes Endpoints list no address: {endpoints}");
    found
}

/// A column of the matrix: a target, named from cluster A's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    APod,
    BPod,
    HostPod,
    HostApiEndpoints,
    HostApiService,
    HostDns,
    AApi,
    Internet,
}

impl Column {
    const ALL: [Column; 8] = [
        Column::APod,
        Column::BPod,
        Column::HostPod,
        Column::HostApiEndpoints,
        Column::HostApiService,
        Column::HostDns,
        Column::AApi,
        Column::Internet,
    ];

    fn key(self) -> &'static str {
        match self {
            Column::APod => "A-pod",
            Column::BPod => "B-pod",
            Column::HostPod => "host-pod",
            Column::HostApiEndpoints => "host-api-endpoints",
            Column::HostApiService => "host-api-service",
            Column::HostDns => "host-dns",
            Column::AApi => "A-api",
            Column::Internet => "internet",
        }
    }
}

/// The addresses the matrix probes, read from the host and from cluster A.
struct Targets {
    a_pod: String,
    b_pod: String,
    host_pod: String,
    host_api_endpoints: Vec<(String, u16)>,
    host_api_service: String,
    /// The host's cluster DNS Service, when it has one (`kube-system/kube-dns`).
    host_dns: Option<String>,
    /// The virtual `kubernetes` Service of A, by cluster IP: its name would go through A's
    /// CoreDNS Service, and `borrow-dns` wears CoreDNS's label, so it is one of that Service's
    /// endpoints too and would answer (not answer) some lookups.
    a_api: String,
}

impl Targets {
    /// Whether this host has what the column probes.
    fn probes(&self, column: Column) -> bool {
        column != Column::HostDns || self.host_dns.is_some()
    }

    fn command(&self, column: Column) -> String {
        match column {
            Column::APod => tcp(&self.a_pod, 8080),
            Column::BPod => tcp(&self.b_pod, 8080),
            Column::HostPod => tcp(&self.host_pod, 8080),
            // Open when any endpoint answers.
            Column::HostApiEndpoints => self
                .host_api_endpoints
                .iter()
                .map(|(ip, port)| tcp(ip, *port))
                .collect::<Vec<_>>()
                .join(" || "),
            Column::HostApiService => tcp(&self.host_api_service, 443),
            // Exits 0 only on an answer; the control row shows the host's cluster domain is
            // `cluster.local`, else every row reads "blocked" there.
            Column::HostDns => dns_query(self.host_dns.as_deref().unwrap_or_default()),
            Column::AApi => tcp(&self.a_api, 443),
            // Some hosts have no internet at all, so a tenant row can only assert "blocked".
            Column::Internet => tcp("1.1.1.1", 443),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Open,
    Blocked,
    /// Probed and shown, but either result is right.
    Either,
    NotProbed,
}

impl Expect {
    fn accepts(self, got: Option<Reach>) -> bool {
        matches!(
            (self, got),
            (Expect::NotProbed, _)
                | (Expect::Either, Some(_))
                | (Expect::Open, Some(Reach::Open))
                | (Expect::Blocked, Some(Reach::Blocked))
        )
    }
}

/// A tenant pod of A, whatever labels it borrows, reaches its own cluster and nothing else.
fn tenant_may(column: Column) -> Expect {
    match column {
        Column::APod | Column::AApi => Expect::Open,
        _ => Expect::Blocked,
    }
}

/// The control row, a pod in the host probe namespace under no policy: it shows the host
/// targets answer (so a tenant's "blocked" means the policy), and that A and B admit no one
/// from outside.
fn host_control_may(column: Column) -> Expect {
    match column {
        Column::APod | Column::BPod => Expect::Blocked,
        Column::HostPod | Column::HostApiEndpoints | Column::HostApiService | Column::HostDns => {
            Expect::Open
        }
        Column::AApi | Column::Internet => Expect::Either,
    }
}

/// B's target probing itself: shows it serves, so a tenant's "blocked" to it means the policy.
fn b_itself_may(column: Column) -> Expect {
    match column {
        Column::BPod => Expect::Open,
        _ => Expect::NotProbed,
    }
}

/// One row of the matrix: the results of one pod's probes.
struct Row {
    name: String,
    expect: fn(Column) -> Expect,
    /// Columns this host cannot probe (said when the matrix starts).
    unprobed: Vec<Column>,
    got: BTreeMap<String, Reach>,
}

impl Row {
    fn probe(
        name: &str,
        kubectl: Kubectl,
        pod: &ProbePod,
        targets: &Targets,
        expect: fn(Column) -> Expect,
    ) -> Self {
        let unprobed: Vec<Column> =
            Column::ALL.into_iter().filter(|column| !targets.probes(*column)).collect();
        let checks: Vec<Check> = Column::ALL
            .into_iter()
            .filter(|column| expect(*column) != Expect::NotProbed && !unprobed.contains(column))
            .map(|column| Check {
                key: column.key(),
                command: targets.command(column),
                tries: if expect(column) == Expect::Open { 3 } else { 1 },
            })
            .collect();
        Self { name: name.to_string(), expect, unprobed, got: probe_from(kubectl, pod, &checks) }
    }

    fn got(&self, column: Column) -> Option<Reach> {
        self.got.get(column.key()).copied()
    }

    fn expected(&self, column: Column) -> Expect {
        if self.unprobed.contains(&column) { Expect::NotProbed } else { (self.expect)(column) }
    }

    fn is_right(&self, column: Column) -> bool {
        self.expected(column).accepts(self.got(column))
    }

    fn cell(&self, column: Column) -> String {
        let shown = match (self.expected(column), self.got(column)) {
            (Expect::NotProbed, _) => "-",
            (_, None) => "?",
            (_, Some(Reach::Open)) => "open",
            (_, Some(Reach::Blocked)) => "blocked",
        };
        if self.is_right(column) { shown.to_string() } else { format!("{shown}!") }
    }

    fn wrong_cells(&self) -> Vec<String> {
        Column::ALL
            .into_iter()
            .filter(|column| !self.is_right(*column))
            .map(|column| {
                let got = self.got(column).map_or("no result".to_string(), |r| format!("{r:?}"));
                let want = self.expected(column);
                format!("{} -> {}: got {got}, want {want:?}", self.name, column.key())
            })
            .collect()
    }
}

fn render_matrix(rows: &[Row]) -> String {
    let header: Vec<String> = std::iter::once("from \\ to".to_string())
        .chain(Column::ALL.iter().map(|column| column.key().to_string()))
        .collect();
    let lines: Vec<Vec<String>> = std::iter::once(header)
        .chain(rows.iter().map(|row| {
            std::iter::once(row.name.clone())
                .chain(Column::ALL.iter().map(|column| row.cell(*column)))
                .collect()
        }))
        .collect();
    let widths: Vec<usize> = (0..=Column::ALL.len())
        .map(|i| lines.iter().map(|line| line[i].len()).max().unwrap_or(0))
        .collect();
    let mut table = String::from(
        "isolation matrix (`!` marks a wrong cell, `?` a probe that printed no result, `-` not probed):\n",
    );
    for line in &lines {
        let cells: Vec<String> =
            line.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    table
}

#[test]
fn isolation_matrix() {
    let Some(kubeconfig) = configured_kubeconfig() else {
        skip_matrix(
            "set VC_E2E_KUBECONFIG to the kubeconfig of a disposable host cluster to run it",
        );
        return;
    };
    assert!(kubeconfig.exists(), "VC_E2E_KUBECONFIG {} does not exist", kubeconfig.display());
    let e2e = E2e::new(kubeconfig);
    let image = probe_image();
    let host = Kubectl::Host(&e2e);

    // Enforcement first, before minutes go into clusters the host could not isolate anyway.
    let probe_namespace = HostNamespace::create(&e2e, unique("vc-e2e-np"));
    let ns = probe_namespace.name.as_str();
    let denied = ProbePod::server(ns, "np-denied", &format!("{ROLE_LABEL}=denied"));
    let host_server = ProbePod::server(ns, "np-server", &format!("{ROLE_LABEL}=server"));
    let client = ProbePod::sleeper(ns, "np-client", &format!("{ROLE_LABEL}=client"));
    start_and_wait(host, &image, &[&denied, &host_server, &client]);
    if !deny_all_takes_effect(&e2e, &client, &denied) {
        skip_matrix(
            "the host's CNI does not enforce NetworkPolicies (a deny-all policy let traffic through)",
        );
        return;
    }

    let a = unique("iso-a");
    let b = unique("iso-b");
    let _cleanup_a = Cleanup { e2e: &e2e, name: a.clone(), namespace: None };
    let _cleanup_b = Cleanup { e2e: &e2e, name: b.clone(), namespace: None };
    create_clusters(&e2e, &[&a, &b]);
    let in_a = Kubectl::Virtual(&e2e, &a);
    let in_b = Kubectl::Virtual(&e2e, &b);

    // Tenant pods of A: one plain, three wearing the labels of pods vc's policies trust.
    let tenants = [
        ProbePod::sleeper("default", "plain", "app=web"),
        ProbePod::sleeper("default", "borrow-cp", &format!("app=vcluster,release={a}")),
        ProbePod::sleeper("default", "borrow-snap", "app=vcluster-snapshot"),
        ProbePod::sleeper("kube-system", "borrow-dns", "k8s-app=vcluster-kube-dns"),
    ];
    let a_target = ProbePod::server("default", "target", "app=target");
    let b_target = ProbePod::server("default", "target", "app=target");
    let mut in_a_pods: Vec<&ProbePod> = tenants.iter().collect();
    in_a_pods.push(&a_target);
    start_and_wait(in_a, &image, &in_a_pods);
    start_and_wait(in_b, &image, &[&b_target]);

    let a_ips = synced_pod_ips(&e2e, &a);
    for tenant in &tenants {
        // Every tenant pod is a synced pod on the host, borrowed labels or not.
        synced_pod_ip(&a_ips, tenant, &a);
    }
    let targets = Targets {
        a_pod: synced_pod_ip(&a_ips, &a_target, &a),
        b_pod: synced_pod_ip(&synced_pod_ips(&e2e, &b), &b_target, &b),
        host_pod: pod_ip(host, ns, &host_server.name),
        host_api_endpoints: host_api_endpoints(&e2e),
        host_api_service: service_ip(host, "default", "kubernetes"),
        host_dns: host_dns_service(&e2e),
        a_api: service_ip(in_a, "default", "kubernetes"),
    };

    let mut rows: Vec<Row> = tenants
        .iter()
        .map(|pod| {
            let name = format!("A {}/{}", pod.namespace, pod.name);
            Row::probe(&name, in_a, pod, &targets, tenant_may)
        })
        .collect();
    rows.push(Row::probe("host pod (control)", host, &client, &targets, host_control_may));
    rows.push(Row::probe("B target (itself)", in_b, &b_target, &targets, b_itself_may));

    let matrix = render_matrix(&rows);
    eprintln!("{matrix}");
    let wrong: Vec<String> = rows.iter().flat_map(Row::wrong_cells).collect();
    assert!(
        wrong.is_empty(),
        "{} wrong cell(s) in the isolation matrix: {}\n{matrix}",
        wrong.len(),
        wrong.join("; ")
    );
}

// Namespace admin: a tenant bound only to the built-in `admin` ClusterRole in one namespace
// runs vc there once a cluster admin has applied `vc rbac`, and never before.

/// The kinds, besides pods, where a deleted cluster could leave something behind.
const LEFTOVER_KINDS: &str = "statefulsets,services,secrets,configmaps,serviceaccounts,roles,\
                              rolebindings,networkpolicies,persistentvolumeclaims";

/// The `kind/name` of each object of `kinds` in `namespace` that matches `selector`.
fn labelled(e2e: &E2e, namespace: &str, kinds: &str, selector: &str) -> String {
    Kubectl::Host(e2e).stdout_ok(
        &format!("listing {kinds} labelled {selector} in {namespace}"),
        &["get", kinds, "-n", namespace, "-l", selector, "-o", "name"],
    )
}

/// Writes, in the temp dir, a kubeconfig for ServiceAccount `account` of `namespace`: the
/// host's cluster entry (server, CA), a one-hour token, and `namespace` as the context's.
fn tenant_kubeconfig(e2e: &E2e, namespace: &str, account: &str) -> PathBuf {
    let token =
        kubectl_secret(e2e, &["create", "token", account, "-n", namespace, "--duration", "1h"]);
    assert!(token.status.success(), "cannot issue a token for {namespace}/{account}");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    // --flatten inlines a CA the host kubeconfig names by file.
    let view =
        kubectl_secret(e2e, &["config", "view", "--raw", "--minify", "--flatten", "-o", "json"]);
    assert!(view.status.success(), "cannot read the host kubeconfig's current cluster");
    let cluster = json(&view)["clusters"][0]["cluster"].clone();
    assert!(cluster["server"].is_string(), "the host kubeconfig's current cluster has no server");
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "host", "cluster": cluster }],
        "users": [{ "name": account, "user": { "token": token } }],
        "contexts": [{
            "name": "tenant",
            "context": { "cluster": "host", "user": account, "namespace": namespace }
        }],
        "current-context": "tenant"
    });
    let path = e2e.state.path().join("tenant-kubeconfig");
    std::fs::write(&path, config.to_string()).expect("write the tenant kubeconfig");
    path
}

#[test]
fn namespace_admin() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    assert!(kubeconfig.exists(), "VC_E2E_KUBECONFIG {} does not exist", kubeconfig.display());
    let e2e = E2e::new(kubeconfig);
    let host = Kubectl::Host(&e2e);
    let team = HostNamespace::create(&e2e, unique("vc-e2e-team"));
    let ns = team.name.as_str();
    let account = "tenant-admin";
    host.run_ok(
        "creating the tenant's ServiceAccount",
        &["create", "serviceaccount", account, "-n", ns],
    );
    host.run_ok(
        "binding the tenant to the admin ClusterRole",
        &[
            "create",
            "rolebinding",
            account,
            "--clusterrole=admin",
            &format!("--serviceaccount={ns}:{account}"),
            "-n",
            ns,
        ],
    );
    let tenant = tenant_kubeconfig(&e2e, ns, account);
    let as_tenant = |args: &[&str]| e2e.vc_as(&tenant, args);
    // Dropped before the namespace guard: the cluster goes first, as cluster admin.
    let _cleanup = Cleanup { e2e: &e2e, name: "t1".into(), namespace: Some(ns.to_string()) };

    // `admin` lacks rights the engine's Role needs: refused before any write, naming the grant.
    let refused = as_tenant(&["create", "t1", "--no-connect", "-n", ns]);
    assert_eq!(refused.status.code(), Some(5), "create without vc's Role must be refused");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("pods/status"), "the refusal names pods/status: {stderr}");
    let hint = format!("vc rbac {ns} --user");
    assert!(stderr.contains(&hint), "the refusal suggests `{hint}`: {stderr}");
    let applied =
        labelled(&e2e, ns, "statefulsets,networkpolicies,roles", "app.kubernetes.io/managed-by=vc");
    assert!(applied.is_empty(), "a refused create applied objects:\n{applied}");

    // The one-time grant, as cluster admin: `vc rbac NS --service-account NS/SA | kubectl apply -f -`.
    let grant = e2e.vc(&["rbac", ns, "--service-account", &format!("{ns}/{account}")]);
    assert_eq!(grant.status.code(), Some(0), "vc rbac failed");
    let granted = e2e.kubectl_with_input(&["apply", "-f", "-"], &grant.stdout);
    assert!(granted.status.success(), "applying the output of vc rbac failed");
    // The authorizer's caches follow new bindings within moments.
    let can = eventually(Duration::from_secs(30), || {
        kubectl_as(
            &tenant,
            &["auth", "can-i", "update", "pods", "--subresource=status", "-n", ns],
            None,
        )
        .status
        .success()
    });
    assert!(can, "the tenant still cannot update pods/status 30s after the grant");

    let created = as_tenant(&["create", "t1", "--no-connect", "-n", ns]);
    assert_eq!(created.status.code(), Some(0), "create as namespace admin after vc rbac failed");
    // Listing all namespaces is forbidden to the tenant: list falls back to the context's.
    let listed = as_tenant(&["list", "-o", "json"]);
    assert_eq!(listed.status.code(), Some(0), "list as namespace admin failed");
    let items = json(&listed);
    assert!(
        items
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["name"] == "t1" && i["namespace"] == ns)),
        "t1 in {ns} is listed: {items}"
    );
    let described = as_tenant(&["describe", "t1"]);
    assert_eq!(
        described.status.code(),
        Some(0),
        "describe without -n finds t1 in the context's namespace"
    );
    let through = as_tenant(&["connect", "t1", "--", "kubectl", "get", "ns"]);
    assert_eq!(through.status.code(), Some(0), "kubectl through vc connect as the tenant failed");
    let second = as_tenant(&["create", "t2", "-n", ns, "--no-connect"]);
    assert_eq!(second.status.code(), Some(6), "a second cluster in {ns} must be refused");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("t1"), "the refusal names the cluster already in {ns}: {stderr}");

    let deleted = as_tenant(&["delete", "t1", "--yes"]);
    assert_eq!(deleted.status.code(), Some(0), "delete without -n as the tenant failed");
    for selector in ["vc.dev/cluster=t1", "vcluster.loft.sh/managed-by=t1"] {
        let left = labelled(&e2e, ns, LEFTOVER_KINDS, selector);
        assert!(left.is_empty(), "delete left objects labelled {selector} in {ns}:\n{left}");
        // Pods may still be in their termination grace period.
        let mut pods = String::new();
        let gone = eventually(Duration::from_secs(60), || {
            pods = labelled(&e2e, ns, "pods", selector);
            pods.is_empty()
        });
        assert!(gone, "pods labelled {selector} are still in {ns} after 60s:\n{pods}");
    }
    host.run_ok(
        "the tenant's ServiceAccount outlives the cluster",
        &["get", "serviceaccount", account, "-n", ns],
    );
    let phase = host.stdout_ok(
        "the team namespace outlives the cluster",
        &["get", "namespace", ns, "-o", "jsonpath={.status.phase}"],
    );
    assert_eq!(phase, "Active", "delete must leave the namespace it did not create");
}

/// Host pods in `namespace` matching `selector`, by name (terminating ones included).
fn host_pods(e2e: &E2e, namespace: &str, selector: &str) -> Vec<String> {
    let out = e2e.kubectl(&["get", "pods", "-n", namespace, "-l", selector, "-o", "name"]);
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn pause_resume_and_gc() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e-nap");
    let namespace = format!("vc-{name}");
    // gc runs with a selector naming only this run's clusters: the host may be shared.
    let run_label = format!("e2e-run={name}");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let created = e2e.vc(&[
        "create",
        &name,
        "--no-connect",
        "--ttl",
        "1h",
        "-l",
        &run_label,
        "--timeout",
        "5m",
    ]);
    assert_eq!(created.status.code(), Some(0), "create failed");

    // A workload and some data inside.
    let image = probe_image();
    let inside = |args: &[&str]| {
        let mut all = vec!["connect", name.as_str(), "--", "kubectl"];
        all.extend_from_slice(args);
        e2e.vc(&all)
    };
    let deployed = inside(&[
        "create",
        "deployment",
        "web",
        &format!("--image={image}"),
        "--",
        "sleep",
        "3600",
    ]);
    assert_eq!(deployed.status.code(), Some(0), "deploying the workload failed");
    let kept = inside(&["create", "configmap", "kept", "--from-literal=answer=42"]);
    assert_eq!(kept.status.code(), Some(0));
    let available =
        inside(&["wait", "deployment/web", "--for=condition=Available", "--timeout=180s"]);
    assert_eq!(available.status.code(), Some(0), "the workload did not become available");
    let synced = format!("vcluster.loft.sh/managed-by={name}");
    assert!(!host_pods(&e2e, &namespace, &synced).is_empty(), "the workload's pod is synced");

    let started = Instant::now();
    let paused = e2e.vc(&["pause", &name, "-o", "json"]);
    let pause_time = started.elapsed();
    assert_eq!(paused.status.code(), Some(0), "pause failed");
    assert!(json(&paused)["removedPods"].as_u64().unwrap_or(0) >= 1, "synced pods removed");
    assert!(host_pods(&e2e, &namespace, &synced).is_empty(), "no workload pod left on the host");
    let control_plane = format!("app=vcluster,release={name}");
    assert!(host_pods(&e2e, &namespace, &control_plane).is_empty(), "control plane stopped");
    let claim = e2e.kubectl(&["get", "pvc", "-n", &namespace, &format!("data-{name}-0")]);
    assert_eq!(claim.status.code(), Some(0), "the data volume claim stays");
    let annotation = e2e.kubectl(&[
        "get",
        "statefulset",
        &name,
        "-n",
        &namespace,
        "-o",
        "jsonpath={.metadata.annotations.loft\\.sh/paused}",
    ]);
    assert_eq!(String::from_utf8_lossy(&annotation.stdout), "true", "the upstream CLI's marker");
    let listed = json(&e2e.vc(&["list", "-l", &run_label, "-o", "json"]));
    assert_eq!(listed[0]["status"], "Paused");
    assert_eq!(e2e.vc(&["pause", &name]).status.code(), Some(0), "pausing again is a no-op");

    let started = Instant::now();
    let resumed = e2e.vc(&["resume", &name, "-o", "json", "--timeout", "5m"]);
    let resume_time = started.elapsed();
    assert_eq!(resumed.status.code(), Some(0), "resume failed");
    assert!(
        eventually(Duration::from_secs(180), || !host_pods(&e2e, &namespace, &synced).is_empty()),
        "the workload's pod is back on the host"
    );
    let back = inside(&["wait", "deployment/web", "--for=condition=Available", "--timeout=180s"]);
    assert_eq!(back.status.code(), Some(0), "the workload is available again");
    let data = inside(&["get", "configmap", "kept", "-o", "jsonpath={.data.answer}"]);
    assert!(String::from_utf8_lossy(&data.stdout).contains("42"), "the data survived the pause");
    eprintln!(
        "e2e: pause took {:.1}s; resume until ready {:.1}s (vc: {}s)",
        pause_time.as_secs_f64(),
        resume_time.as_secs_f64(),
        json(&resumed)["seconds"]
    );

    // What `vcluster pause` does at v0.36.1 (one merge patch, then deleting the synced pods),
    // done with kubectl: vc sees the cluster Paused and resumes it.
    let upstream = serde_json::json!({
        "metadata": {"annotations": {
            "loft.sh/paused": "true",
            "loft.sh/paused-replicas": "1",
            "loft.sh/paused-date": "2026-01-01T00:00:00.000Z",
        }},
        "spec": {"replicas": 0},
    })
    .to_string();
    let patched = e2e.kubectl(&[
        "patch",
        "statefulset",
        &name,
        "-n",
        &namespace,
        "--type",
        "merge",
        "-p",
        &upstream,
    ]);
    assert_eq!(patched.status.code(), Some(0));
    assert!(
        eventually(Duration::from_secs(120), || host_pods(&e2e, &namespace, &control_plane)
            .is_empty()),
        "the control plane stopped"
    );
    let removed = e2e.kubectl(&["delete", "pods", "-n", &namespace, "-l", &synced, "--wait=false"]);
    assert_eq!(removed.status.code(), Some(0));
    let listed = json(&e2e.vc(&["list", "-l", &run_label, "-o", "json"]));
    assert_eq!(listed[0]["status"], "Paused");
    assert_eq!(listed[0]["pausedAt"], "2026-01-01T00:00:00Z");
    let resumed = e2e.vc(&["resume", &name, "--timeout", "5m"]);
    assert_eq!(resumed.status.code(), Some(0), "vc resumes what the upstream CLI paused");
    let annotations = e2e.kubectl(&[
        "get",
        "statefulset",
        &name,
        "-n",
        &namespace,
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(!String::from_utf8_lossy(&annotations.stdout).contains("loft.sh/paused"));

    // gc: nothing is expired now; two hours on (the clock moved through VC_NOW) it is.
    let now = e2e.vc(&["gc", "-l", &run_label, "-o", "json"]);
    assert_eq!(now.status.code(), Some(0));
    assert_eq!(json(&now)["deleted"], serde_json::json!([]));
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    let gc = Command::new(VC)
        .args(["gc", "--yes", "-l", &run_label, "-o", "json", "--timeout", "5m"])
        .env("KUBECONFIG", &e2e.kubeconfig)
        .env("XDG_STATE_HOME", e2e.state.path())
        .env("VC_NOW", &later)
        .output()
        .expect("run vc gc");
    log_command("vc", &["gc", "--yes", "-l", &run_label], &gc);
    assert_eq!(gc.status.code(), Some(0), "gc failed");
    assert_eq!(json(&gc)["deleted"][0]["name"], name.as_str());
    let gone = e2e.kubectl(&["get", "namespace", &namespace]);
    assert_ne!(gone.status.code(), Some(0), "the expired cluster's namespace is gone");
}

/// Runs `vc` with its clock moved by `VC_NOW`.
fn vc_at(e2e: &E2e, now: &str, args: &[&str]) -> Output {
    let output = Command::new(VC)
        .args(args)
        .env("KUBECONFIG", &e2e.kubeconfig)
        .env("XDG_STATE_HOME", e2e.state.path())
        .env("NO_COLOR", "1")
        .env("VC_NOW", now)
        .output()
        .expect("run vc");
    log_command(&format!("VC_NOW={now} vc"), args, &output);
    output
}

#[test]
fn idle_sleep_and_wake_on_connect() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e-idle");
    let namespace = format!("vc-{name}");
    let run_label = format!("e2e-run={name}");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let created = e2e.vc(&[
        "create",
        &name,
        "--no-connect",
        "--sleep-after",
        "30m",
        "-l",
        &run_label,
        "--timeout",
        "5m",
    ]);
    assert_eq!(created.status.code(), Some(0), "create failed");
    let in_minutes =
        |m: i64| (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(m)).to_string();

    let early = vc_at(&e2e, &in_minutes(10), &["gc", "-l", &run_label, "-o", "json"]);
    assert_eq!(early.status.code(), Some(0));
    assert_eq!(json(&early)["paused"], serde_json::json!([]), "not idle for long enough yet");
    let slept = vc_at(&e2e, &in_minutes(31), &["gc", "--yes", "-l", &run_label, "-o", "json"]);
    assert_eq!(slept.status.code(), Some(0), "gc failed");
    assert_eq!(json(&slept)["paused"][0]["name"], name.as_str());
    let reason = e2e.kubectl(&[
        "get",
        "statefulset",
        &name,
        "-n",
        &namespace,
        "-o",
        "jsonpath={.metadata.annotations.vc\\.dev/pause-reason}",
    ]);
    assert_eq!(String::from_utf8_lossy(&reason.stdout), "idle");

    // The user comes back: connect resumes it first, then the forward records the requests.
    let started = Instant::now();
    let woken = e2e.vc(&["connect", &name, "--no-switch", "-o", "json", "--timeout", "5m"]);
    assert_eq!(woken.status.code(), Some(0), "connect to a sleeping cluster failed");
    assert!(String::from_utf8_lossy(&woken.stderr).contains("resuming it first"));
    eprintln!("e2e: connect woke the cluster in {:.1}s", started.elapsed().as_secs_f64());
    let context = json(&woken)["context"].as_str().expect("context name").to_string();
    let activity = || {
        let out = e2e.kubectl(&[
            "get",
            "statefulset",
            &name,
            "-n",
            &namespace,
            "-o",
            "jsonpath={.metadata.annotations.vc\\.dev/last-activity}",
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let resumed_at = activity();
    let listed = Command::new("kubectl")
        .args(["--context", &context, "get", "namespaces", "-o", "name"])
        .env("KUBECONFIG", &e2e.kubeconfig)
        .output()
        .expect("kubectl must be installed for the e2e suite");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("namespace/default"));
    // The forwarder records activity at most once a minute, and its first record may already
    // hold connect's own wait for the API through it: the kubectl request shows within that
    // minute and one activity check (5 s) more.
    assert!(
        eventually(Duration::from_secs(75), || activity() != resumed_at),
        "the forwarder records requests as activity"
    );
    assert_eq!(e2e.vc(&["disconnect", &name]).status.code(), Some(0));
}

/// `vc doctor` on a real host: the host, rights and storage pass, the engine images are on a
/// node (or their pull error is named), the network probe gives a verdict, and no probe object
/// is left. `--skip-probes` creates nothing. With `-n NS` it probes in that namespace.
#[test]
fn doctor_probes_and_cleans_up() {
    let Some(original) = host_kubeconfig() else { return };
    let e2e = E2e::new(original);
    let image = probe_image();
    let leftovers = |e2e: &E2e| {
        let out = e2e.kubectl(&[
            "get",
            "namespaces,pods,pvc,networkpolicies",
            "-A",
            "-l",
            "vc.dev/doctor",
            "-o",
            "name",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = leftovers(&e2e);

    let output = e2e.vc(&["doctor", "-o", "json", "--probe-image", &image]);
    let report = json(&output);
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map(|c| c["status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no {name} check in {report}"))
    };
    assert_eq!(status("host"), "pass");
    assert_eq!(status("rights"), "pass", "the e2e kubeconfig is a cluster admin");
    assert_ne!(status("storage"), "skip");
    assert_ne!(status("images"), "skip");
    let policies = status("network policies");
    assert!(policies == "pass" || policies == "warn", "{report}");
    if policies == "warn" {
        report_skip(
            "e2e: doctor: this host's CNI does not enforce NetworkPolicies (or the probe image is missing)",
        );
    }
    let failed = report["checks"].as_array().into_iter().flatten().any(|c| c["status"] == "fail");
    assert_eq!(output.status.code(), Some(if failed { 1 } else { 0 }), "{report}");
    assert_eq!(report["ok"], !failed);

    // Probes in a namespace the user names; the namespace itself stays.
    let namespace = unique("vc-e2e-doctor");
    e2e.kubectl(&["create", "namespace", &namespace]);
    let in_ns = e2e.vc(&["doctor", "-n", &namespace, "--probe-image", &image, "--timeout", "90s"]);
    let text = String::from_utf8_lossy(&in_ns.stdout).to_string();
    let _ = e2e.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
    assert!(text.contains(&format!("in namespace {namespace}")), "{text}");
    assert!(!text.contains("namespace creation"), "{text}");

    let read_only = e2e.vc(&["doctor", "--skip-probes"]);
    assert!(
        !String::from_utf8_lossy(&read_only.stderr).contains("probing"),
        "read-only run probes nothing"
    );
    assert!(
        eventually(Duration::from_secs(60), || leftovers(&e2e) == before),
        "probe objects left: {}",
        leftovers(&e2e)
    );
}

/// The control-plane image of a Kubernetes minor in vc's version table, and whether the host's
/// node already holds it (images cannot always be pulled on a disposable host).
fn host_has_image(e2e: &E2e, image: &str) -> bool {
    let nodes =
        e2e.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].status.images[*].names[*]}"]);
    String::from_utf8_lossy(&nodes.stdout).split_whitespace().any(|n| n == image)
}

/// Snapshot a cluster holding a ConfigMap and a Deployment, restore it as a new cluster (same
/// ConfigMap UID, the Deployment's pods running on the host), restore it again from stdin,
/// clone it, and clone onto the next
/// Kubernetes minor when the host holds both control-plane images.
#[test]
fn snapshot_restore_clone() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let source = unique("e2e-snap");
    let restored = format!("{source}-r");
    let cloned = format!("{source}-c");
    let piped = format!("{source}-p");
    let _cleanups = [&source, &restored, &cloned, &piped].map(|name| Cleanup {
        e2e: &e2e,
        name: name.clone(),
        namespace: None,
    });
    let created = e2e.vc(&["create", &source, "--no-connect", "--timeout", "5m"]);
    assert_eq!(created.status.code(), Some(0), "create failed");
    let seeded = e2e.vc(&[
        "connect", &source, "--", "sh", "-c",
        "kubectl create configmap seed --from-literal=answer=42 && kubectl create deployment web --image=registry.k8s.io/pause:3.10",
    ]);
    assert_eq!(seeded.status.code(), Some(0), "seeding failed");
    let uid_of = |cluster: &str| seed_uid(&e2e, cluster);
    let uid = uid_of(&source);
    assert!(!uid.is_empty());

    let file = e2e.state.path().join("seed.vcsnap");
    let file_arg = file.display().to_string();
    let taken = e2e.vc(&["snapshot", &source, "--to", &file_arg, "-o", "json"]);
    assert_eq!(taken.status.code(), Some(0), "snapshot failed");
    assert!(json(&taken)["entries"].as_u64().unwrap_or_default() > 10);

    let restore =
        e2e.vc(&["restore", &file_arg, "--name", &restored, "--no-connect", "--timeout", "5m"]);
    assert_eq!(restore.status.code(), Some(0), "restore failed");
    assert_eq!(uid_of(&restored), uid, "the restored ConfigMap keeps its UID");
    let available = e2e.vc(&[
        "connect",
        &restored,
        "--",
        "kubectl",
        "wait",
        "deployment/web",
        "--for=condition=Available",
        "--timeout=180s",
    ]);
    assert_eq!(available.status.code(), Some(0), "the restored Deployment's pods do not run");
    let synced = e2e.kubectl(&[
        "get",
        "pods",
        "-n",
        &format!("vc-{restored}"),
        "-l",
        &format!("vcluster.loft.sh/managed-by={restored}"),
        "-o",
        "name",
    ]);
    assert!(
        String::from_utf8_lossy(&synced.stdout).contains("web-"),
        "the Deployment's pod runs on the host"
    );
    // A new identity: the restored cluster's certificates are its own.
    let ca = |cluster: &str| {
        let out = kubectl_secret(
            &e2e,
            &[
                "get",
                "secret",
                "-n",
                &format!("vc-{cluster}"),
                &format!("vc-{cluster}"),
                "-o",
                "jsonpath={.data.certificate-authority}",
            ],
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_ne!(ca(&source), ca(&restored), "the restored cluster has its own CA");

    // The same file read once from stdin.
    let from_stdin = e2e.vc_with_stdin_file(
        &["restore", "-", "--name", &piped, "--no-connect", "--timeout", "5m"],
        &file,
    );
    assert_eq!(from_stdin.status.code(), Some(0), "restore from stdin failed");
    assert_eq!(uid_of(&piped), uid, "the ConfigMap restored from stdin keeps its UID");

    let clone = e2e.vc(&["clone", &source, &cloned, "--no-connect", "--timeout", "5m"]);
    assert_eq!(clone.status.code(), Some(0), "clone failed");
    assert_eq!(uid_of(&cloned), uid);

    let (older, newer) =
        ("ghcr.io/loft-sh/kubernetes:v1.35.0", "ghcr.io/loft-sh/kubernetes:v1.36.0");
    if host_has_image(&e2e, older) && host_has_image(&e2e, newer) {
        let old_source = format!("{source}-o");
        let upgraded = format!("{source}-u");
        let _more = [&old_source, &upgraded].map(|name| Cleanup {
            e2e: &e2e,
            name: name.clone(),
            namespace: None,
        });
        let made = e2e.vc(&[
            "create",
            &old_source,
            "--kubernetes-version",
            "1.35",
            "--no-connect",
            "--timeout",
            "5m",
        ]);
        assert_eq!(made.status.code(), Some(0));
        let seeded = e2e.vc(&[
            "connect",
            &old_source,
            "--",
            "kubectl",
            "create",
            "configmap",
            "seed",
            "--from-literal=a=b",
        ]);
        assert_eq!(seeded.status.code(), Some(0));
        let old_uid = uid_of(&old_source);
        let up = e2e.vc(&[
            "clone",
            &old_source,
            &upgraded,
            "--kubernetes-version",
            "1.36",
            "--no-connect",
            "--timeout",
            "5m",
        ]);
        assert_eq!(up.status.code(), Some(0), "clone onto the next minor failed");
        assert_eq!(uid_of(&upgraded), old_uid);
        let version = e2e.vc(&["connect", &upgraded, "--", "kubectl", "version", "-o", "json"]);
        assert!(String::from_utf8_lossy(&version.stdout).contains("\"minor\": \"36\""));
    } else {
        report_skip(&format!(
            "e2e: snapshot_restore_clone: clone onto a newer minor skipped: the host's node holds not both {older} and {newer} (no image pulls assumed)"
        ));
    }
}

/// Manifests applied at creation (`--apply`): a namespace, a CustomResourceDefinition and its
/// resource, and a Deployment of the probe image that becomes Available inside; the volume
/// claim gets the size and class asked for; the GitHub step outputs name a working kubeconfig.
#[test]
fn create_applies_manifests_sizes_the_claim_and_writes_ci_outputs() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e-prov");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let class = e2e.kubectl(&[
        "get",
        "storageclass",
        "-o",
        r#"jsonpath={.items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")].metadata.name}"#,
    ]);
    let class = String::from_utf8_lossy(&class.stdout).trim().to_string();
    if class.is_empty() {
        report_skip("e2e: provisioning skipped: the host has no default StorageClass to name");
        return;
    }
    let dir = e2e.state.path().join("stack");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(
        dir.join("1-app.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n      - name: web\n        image: {}\n        command: [sh, -c, 'exec sleep 3600']\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: shop\nspec:\n  size: 3\n",
            probe_image()
        ),
    )
    .expect("write app.yaml");
    std::fs::write(
        dir.join("2-base.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
    )
    .expect("write base.yaml");
    let outputs = e2e.state.path().join("github-output");
    let summary = e2e.state.path().join("github-summary");
    let args = [
        "create",
        &name,
        "--apply",
        dir.to_str().expect("a UTF-8 path"),
        "--storage-size",
        "1Gi",
        "--storage-class",
        &class,
        "--no-switch",
        "-o",
        "json",
        "--timeout",
        "5m",
    ];
    let created = Command::new(VC)
        .args(args)
        .env("KUBECONFIG", &e2e.kubeconfig)
        .env("XDG_STATE_HOME", e2e.state.path())
        .env("NO_COLOR", "1")
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .expect("run vc");
    log_command("vc", &args, &created);
    print_timings(&args, &created);
    assert_eq!(created.status.code(), Some(0), "create failed");
    let result = json(&created);
    assert!(result["timings"]["provisioning"].is_number(), "{result}");

    // The claim as asked.
    let namespace = format!("vc-{name}");
    let claim = e2e.kubectl(&[
        "get",
        "pvc",
        &format!("data-{name}-0"),
        "-n",
        &namespace,
        "-o",
        "jsonpath={.spec.resources.requests.storage} {.spec.storageClassName}",
    ]);
    assert_eq!(String::from_utf8_lossy(&claim.stdout), format!("1Gi {class}"));

    // The step outputs point at a kubeconfig and context that reach the cluster.
    let written = std::fs::read_to_string(&outputs).expect("GITHUB_OUTPUT written");
    let values: BTreeMap<&str, &str> = written.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(values.get("name"), Some(&name.as_str()), "{written}");
    assert_eq!(values.get("context").copied(), result["context"].as_str(), "{written}");
    let line = std::fs::read_to_string(&summary).expect("GITHUB_STEP_SUMMARY written");
    assert!(line.contains("provisioning "), "{line}");
    let inside = |args: &[&str]| {
        let output = Command::new("kubectl")
            .arg("--context")
            .arg(values["context"])
            .args(args)
            .env("KUBECONFIG", values["kubeconfig"])
            .output()
            .expect("kubectl must be installed for the e2e suite");
        log_command("kubectl", args, &output);
        output
    };
    let available = inside(&[
        "wait",
        "deployment/web",
        "-n",
        "shop",
        "--for=condition=Available",
        "--timeout=180s",
    ]);
    assert!(available.status.success(), "the applied Deployment did not become Available");
    let widget =
        inside(&["get", "widgets.example.com", "w", "-n", "shop", "-o", "jsonpath={.spec.size}"]);
    assert_eq!(String::from_utf8_lossy(&widget.stdout), "3", "the custom resource was applied");
    let managers = inside(&[
        "get",
        "deployment",
        "web",
        "-n",
        "shop",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(String::from_utf8_lossy(&managers.stdout).split(' ').any(|m| m == "vc"));
    let disconnected = e2e.vc(&["disconnect", &name]);
    assert_eq!(disconnected.status.code(), Some(0));
}

/// Deletes a pool and its unclaimed members when dropped.
struct PoolCleanup<'a> {
    e2e: &'a E2e,
    pool: String,
}

impl Drop for PoolCleanup<'_> {
    fn drop(&mut self) {
        self.e2e.vc(&["pool", "delete", &self.pool, "--yes"]);
    }
}

/// The figures of one pool from `vc pool list -o json`.
fn pool_figures(e2e: &E2e, pool: &str) -> serde_json::Value {
    let listed = e2e.vc(&["pool", "list", "-o", "json"]);
    assert_eq!(listed.status.code(), Some(0), "vc pool list failed");
    json(&listed)
        .as_array()
        .and_then(|pools| pools.iter().find(|p| p["name"] == pool).cloned())
        .unwrap_or_default()
}

#[test]
fn warm_pool_of_two_serves_two_claims_at_once() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let pool = unique("e2e-pool");
    let _pool_cleanup = PoolCleanup { e2e: &e2e, pool: pool.clone() };
    let created = e2e.vc(&["pool", "create", &pool, "--size", "2", "--max-surge", "2"]);
    assert_eq!(created.status.code(), Some(0), "vc pool create failed");
    let started = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(300), || pool_figures(&e2e, &pool)["ready"] == 2),
        "the pool's two members did not become ready"
    );
    println!(
        "e2e pool: two members ready {:.1} s after vc pool create",
        started.elapsed().as_secs_f64()
    );

    let names = [unique("e2e-claim-a"), unique("e2e-claim-b")];
    let _cleanups: Vec<Cleanup> =
        names.iter().map(|n| Cleanup { e2e: &e2e, name: n.clone(), namespace: None }).collect();
    let mut contexts = Vec::new();
    for name in &names {
        let claim_started = std::time::Instant::now();
        let claimed = e2e.vc(&["create", name, "--from-pool", &pool, "--no-switch", "-o", "json"]);
        let took = claim_started.elapsed();
        assert_eq!(claimed.status.code(), Some(0), "the claim of {name} failed");
        let result = json(&claimed);
        assert!(result["hostName"].is_string(), "{name} was claimed, not created: {result}");
        println!(
            "e2e pool: vc create {name} --from-pool took {:.2} s, claim to working context (target 3 s; member {})",
            took.as_secs_f64(),
            result["hostName"]
        );
        contexts.push(result["context"].as_str().expect("a context").to_string());
    }
    // Both usable at once, through their own forwards.
    for context in &contexts {
        let listed = Command::new("kubectl")
            .args(["--context", context, "get", "namespaces", "-o", "name"])
            .env("KUBECONFIG", &e2e.kubeconfig)
            .output()
            .expect("kubectl must be installed for the e2e suite");
        assert!(
            String::from_utf8_lossy(&listed.stdout).contains("namespace/kube-system"),
            "kubectl through {context}: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
    let described = e2e.vc(&["describe", &names[0]]);
    assert!(String::from_utf8_lossy(&described.stdout).contains("keep the member's name"));

    // Refill: one keeper pass starts two replacements; the next records their refill time.
    let refill_started = std::time::Instant::now();
    assert_eq!(e2e.vc(&["pool", "keep", "--once"]).status.code(), Some(0));
    assert!(
        eventually(Duration::from_secs(300), || pool_figures(&e2e, &pool)["ready"] == 2),
        "the pool was not refilled"
    );
    e2e.vc(&["pool", "keep", "--once"]);
    let figures = pool_figures(&e2e, &pool);
    println!(
        "e2e pool: refilled 2 members in {:.1} s; refill time per member p50 {} s; claim p50 {} s",
        refill_started.elapsed().as_secs_f64(),
        figures["refillSecondsP50"],
        figures["claimSecondsP50"]
    );
    for name in &names {
        e2e.vc(&["disconnect", name]);
    }
}

/// `vc operator run` in the background against the host, stopped with SIGTERM when dropped.
/// Images cannot be built on every host this suite runs on, so the operator runs from here
/// rather than as the Deployment `vc operator install` applies (the same code either way).
struct BackgroundOperator {
    child: std::process::Child,
}

impl BackgroundOperator {
    /// `vc operator run` with its Lease in `lease_namespace`, named after it.
    fn start(e2e: &E2e, lease_namespace: &str) -> Self {
        let child = Command::new(VC)
            .args(["operator", "run", "-n", lease_namespace, "--identity", lease_namespace])
            .env("KUBECONFIG", &e2e.kubeconfig)
            .env("XDG_STATE_HOME", e2e.state.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start vc operator run");
        BackgroundOperator { child }
    }
}

impl Drop for BackgroundOperator {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

/// Removes a namespace holding VirtualClusters: their objects first (so the operator's
/// finalizer runs while it still runs), any finalizer left over, then the namespace.
struct NamespaceCleanup<'a> {
    e2e: &'a E2e,
    namespace: String,
}

impl Drop for NamespaceCleanup<'_> {
    fn drop(&mut self) {
        let ns = self.namespace.as_str();
        run_kubectl(
            &self.e2e.kubeconfig,
            &["delete", "vcl", "--all", "-n", ns, "--timeout=180s"],
            None,
        );
        let left = self.e2e.kubectl(&["get", "vcl", "-n", ns, "-o", "name"]);
        for object in String::from_utf8_lossy(&left.stdout).lines() {
            let patch = r#"{"metadata":{"finalizers":null}}"#;
            self.e2e.kubectl(&["patch", object, "-n", ns, "--type=merge", "-p", patch]);
        }
        self.e2e.kubectl(&["delete", "namespace", ns, "--wait=false", "--ignore-not-found"]);
    }
}

fn virtual_cluster_manifest(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "{{\"apiVersion\":\"vc.dev/v1alpha1\",\"kind\":\"VirtualCluster\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{namespace}\"}},\"spec\":{spec}}}"
    )
}

/// The engine's control plane requests 200m CPU (and its CoreDNS 20m). When `count` of them do
/// not fit in the CPU the host's nodes have left unrequested, the spec asks each for a share
/// that fits, and says so: the scenario measures starting clusters together, not the host's size.
fn fitting_spec(e2e: &E2e, count: usize) -> String {
    fn millis(text: &str) -> u64 {
        match text.strip_suffix('m') {
            Some(m) => m.parse().unwrap_or(0),
            None => text.parse::<f64>().map(|c| (c * 1000.0) as u64).unwrap_or(0),
        }
    }
    let read = |args: &[&str]| String::from_utf8_lossy(&e2e.kubectl(args).stdout).to_string();
    let allocatable: u64 =
        read(&["get", "nodes", "-o", "jsonpath={.items[*].status.allocatable.cpu}"])
            .split_whitespace()
            .map(millis)
            .sum();
    let requested: u64 = read(&[
        "get",
        "pods",
        "-A",
        "--field-selector=status.phase!=Succeeded,status.phase!=Failed",
        "-o",
        "jsonpath={.items[*].spec.containers[*].resources.requests.cpu}",
    ])
    .split_whitespace()
    .map(millis)
    .sum();
    let free = allocatable.saturating_sub(requested);
    // Four fifths of what is free, shared by each control plane and its CoreDNS.
    let share = (free * 4 / 5 / count.max(1) as u64).saturating_sub(20);
    if share >= 200 {
        return r#"{"ttl":"1h"}"#.to_string();
    }
    let cpu = share.max(10);
    eprintln!(
        "e2e: the host has {free}m CPU unrequested, room for {} control planes at the engine's 200m; each of the {count} requests {cpu}m instead",
        free / 220
    );
    format!(
        r#"{{"ttl":"1h","engine":{{"values":{{"controlPlane":{{"statefulSet":{{"resources":{{"requests":{{"cpu":"{cpu}m"}}}}}}}}}}}}}}"#
    )
}

/// `vc ARGS` with `VC_OPERATOR_NAMESPACE` naming where the operator's Lease is.
fn vc_with_operator_namespace(e2e: &E2e, lease_namespace: &str, args: &[&str]) -> Output {
    let output = Command::new(VC)
        .args(args)
        .env("KUBECONFIG", &e2e.kubeconfig)
        .env("XDG_STATE_HOME", e2e.state.path())
        .env("VC_OPERATOR_NAMESPACE", lease_namespace)
        .env("NO_COLOR", "1")
        .output()
        .expect("run vc");
    log_command("vc", args, &output);
    output
}

fn vcl_phase(e2e: &E2e, namespace: &str, name: &str) -> String {
    let got = e2e.kubectl(&["get", "vcl", name, "-n", namespace, "-o", "jsonpath={.status.phase}"]);
    String::from_utf8_lossy(&got.stdout).trim().to_string()
}

#[test]
fn operator_reconciles_virtual_clusters_applied_with_kubectl() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let had_crd = install_crd(&e2e);
    // Declared first, so dropped last: after every VirtualCluster went, even on failure.
    let _crd = CrdCleanup { e2e: &e2e, remove: !had_crd };

    // Bad specs are refused at admission by the schema.
    for spec in [
        r#"{"ttl":"2 hours"}"#,
        r#"{"kubernetesVersion":"latest"}"#,
        r#"{"quota":{"hard":{"cpu":"lots"}}}"#,
        r#"{"labels":{"app":"x"}}"#,
        r#"{"sleepAfter":"30m","persistence":false}"#,
    ] {
        let manifest = virtual_cluster_manifest("default", "e2e-refused", spec);
        let refused = run_kubectl(
            &e2e.kubeconfig,
            &["create", "--dry-run=server", "-f", "-"],
            Some(manifest.as_bytes()),
        );
        assert!(!refused.status.success(), "{spec} was accepted");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("is invalid"), "{spec}");
    }

    let lease_namespace = unique("e2e-oplease");
    let _operator = BackgroundOperator::start(&e2e, &lease_namespace);
    let _lease_cleanup = NamespaceCleanup { e2e: &e2e, namespace: lease_namespace.clone() };

    // One cluster: apply, Ready, connect, delete.
    let namespace = unique("e2e-vcl");
    let _cleanup = NamespaceCleanup { e2e: &e2e, namespace: namespace.clone() };
    assert!(e2e.kubectl(&["create", "namespace", &namespace]).status.success());
    // With a manifest inline: the operator applies it inside once the control plane is ready.
    let spec = serde_json::json!({
        "ttl": "1h",
        "manifests": ["apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seeded\n  namespace: default\ndata:\n  answer: \"42\"\n"],
    });
    let manifest = virtual_cluster_manifest(&namespace, "dev", &spec.to_string());
    let started = std::time::Instant::now();
    let created = run_kubectl(&e2e.kubeconfig, &["apply", "-f", "-"], Some(manifest.as_bytes()));
    assert!(created.status.success());
    let ready =
        eventually(Duration::from_secs(300), || vcl_phase(&e2e, &namespace, "dev") == "Running");
    assert!(ready, "the VirtualCluster did not become Running");
    eprintln!("e2e: VirtualCluster Running in {:.1}s", started.elapsed().as_secs_f64());
    let listed =
        e2e.vc(&["connect", "dev", "-n", &namespace, "--", "kubectl", "get", "namespaces"]);
    assert_eq!(listed.status.code(), Some(0), "connect to the operator's cluster");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("kube-system"));
    let seeded = e2e.vc(&[
        "connect",
        "dev",
        "-n",
        &namespace,
        "--",
        "kubectl",
        "get",
        "configmap",
        "seeded",
        "-o",
        "jsonpath={.data.answer}",
    ]);
    assert_eq!(String::from_utf8_lossy(&seeded.stdout).trim(), "42", "the manifest applied inside");
    let provisioned = e2e.kubectl(&[
        "get",
        "vcl",
        "dev",
        "-n",
        &namespace,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Provisioned\")].status}",
    ]);
    assert_eq!(String::from_utf8_lossy(&provisioned.stdout).trim(), "True");
    // The CLI tells it apart from a CLI-made cluster and leaves its lifecycle to the object.
    let clusters = e2e.vc(&["list", "-n", &namespace, "-o", "json"]);
    assert_eq!(clusters.status.code(), Some(0));
    let clusters = json(&clusters);
    let dev = clusters.as_array().and_then(|c| c.iter().find(|c| c["name"] == "dev"));
    assert_eq!(dev.map(|c| c["madeBy"].clone()), Some("virtualCluster".into()), "{clusters}");
    // Pause and resume through the object: vc sets spec.paused, the operator acts on the host
    // with the upstream CLI's annotations, vc waits on the status.
    let vc_lease = |args: &[&str]| vc_with_operator_namespace(&e2e, &lease_namespace, args);
    let paused = vc_lease(&["pause", "dev", "-n", &namespace, "-o", "json"]);
    assert_eq!(paused.status.code(), Some(0), "pause through the VirtualCluster");
    eprintln!("e2e: vc pause through the VirtualCluster took {}s", json(&paused)["seconds"]);
    let field = |kind: &str, path: &str| {
        let got =
            e2e.kubectl(&["get", kind, "dev", "-n", &namespace, "-o", &format!("jsonpath={path}")]);
        String::from_utf8_lossy(&got.stdout).trim().to_string()
    };
    assert_eq!(field("vcl", "{.spec.paused}"), "true");
    assert_eq!(vcl_phase(&e2e, &namespace, "dev"), "Paused");
    assert_eq!(field("vcl", "{.status.conditions[?(@.type==\"Ready\")].reason}"), "PausedBySpec");
    assert_eq!(field("statefulset", "{.spec.replicas}"), "0");
    assert_eq!(field("statefulset", "{.metadata.annotations.loft\\.sh/paused}"), "true");
    let resumed = vc_lease(&["resume", "dev", "-n", &namespace, "-o", "json"]);
    assert_eq!(resumed.status.code(), Some(0), "resume through the VirtualCluster");
    eprintln!(
        "e2e: vc resume through the VirtualCluster: ready after {}s",
        json(&resumed)["seconds"]
    );
    assert_eq!(vcl_phase(&e2e, &namespace, "dev"), "Running");
    assert_eq!(field("vcl", "{.spec.paused}"), "", "spec.paused cleared");
    let again = e2e.vc(&["connect", "dev", "-n", &namespace, "--", "kubectl", "get", "namespaces"]);
    assert_eq!(again.status.code(), Some(0), "the resumed cluster answers");
    // extend rewrites spec.ttl from the object's creation; the operator reports the expiry.
    let extended = vc_lease(&["extend", "dev", "-n", &namespace, "--ttl", "3h", "-o", "json"]);
    assert_eq!(extended.status.code(), Some(0), "extend through the VirtualCluster");
    let expires = json(&extended)["expiresAt"].as_str().unwrap_or_default().to_string();
    assert_eq!(field("vcl", "{.status.expiresAt}"), expires);
    assert_ne!(field("vcl", "{.spec.ttl}"), "1h", "spec.ttl rewritten");
    let deleted = e2e.kubectl(&["delete", "vcl", "dev", "-n", &namespace, "--timeout=300s"]);
    assert!(deleted.status.success(), "the finalizer ran and let the object go");
    let left = e2e.kubectl(&["get", "statefulsets,pvc,services", "-n", &namespace, "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "everything went with it");

    // Several at once (VC_E2E_OPERATOR_CLUSTERS, default 5: a 2-core host shared with others
    // holds about that many control planes starting together).
    let count: usize =
        std::env::var("VC_E2E_OPERATOR_CLUSTERS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let spec = fitting_spec(&e2e, count);
    let namespaces: Vec<String> = (0..count).map(|i| unique(&format!("e2e-vcl{i}"))).collect();
    let _cleanups: Vec<NamespaceCleanup> =
        namespaces.iter().map(|ns| NamespaceCleanup { e2e: &e2e, namespace: ns.clone() }).collect();
    let mut manifests = String::new();
    for ns in &namespaces {
        assert!(e2e.kubectl(&["create", "namespace", ns]).status.success());
        manifests.push_str(&virtual_cluster_manifest(ns, "c", &spec));
        manifests.push('\n');
    }
    let started = std::time::Instant::now();
    let applied = run_kubectl(&e2e.kubeconfig, &["apply", "-f", "-"], Some(manifests.as_bytes()));
    assert!(applied.status.success());
    let all_ready = eventually(Duration::from_secs(600), || {
        namespaces.iter().all(|ns| vcl_phase(&e2e, ns, "c") == "Running")
    });
    eprintln!(
        "e2e: {count} VirtualClusters applied at once: all Running={all_ready} after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(all_ready, "not every VirtualCluster became Running");
    drop(_cleanups);
}

/// Removes the VirtualCluster CRD a scenario installed, when the host did not have it before.
struct CrdCleanup<'a> {
    e2e: &'a E2e,
    remove: bool,
}

impl Drop for CrdCleanup<'_> {
    fn drop(&mut self) {
        if self.remove {
            self.e2e.kubectl(&["delete", "crd", "virtualclusters.vc.dev", "--wait=false"]);
        }
    }
}

/// Applies the generated CRD and waits until it is served; true when it was there before.
fn install_crd(e2e: &E2e) -> bool {
    let crd = e2e.vc(&["operator", "crd"]);
    assert_eq!(crd.status.code(), Some(0));
    // A CRD an earlier scenario is still removing is not the host's own: wait until it went.
    let deleting = jsonpath(
        e2e,
        &["get", "crd", "virtualclusters.vc.dev", "--ignore-not-found"],
        "{.metadata.deletionTimestamp}",
    );
    if !deleting.is_empty() {
        let args = ["wait", "--for=delete", "crd/virtualclusters.vc.dev", "--timeout=120s"];
        assert!(e2e.kubectl(&args).status.success(), "the CRD being deleted did not go");
    }
    let had_crd = e2e.kubectl(&["get", "crd", "virtualclusters.vc.dev"]).status.success();
    let applied = run_kubectl(&e2e.kubeconfig, &["apply", "-f", "-"], Some(&crd.stdout));
    assert!(applied.status.success(), "the real API server accepts the generated CRD");
    let established = e2e.kubectl(&[
        "wait",
        "crd/virtualclusters.vc.dev",
        "--for=condition=Established",
        "--timeout=60s",
    ]);
    assert!(established.status.success());
    had_crd
}

fn jsonpath(e2e: &E2e, args: &[&str], path: &str) -> String {
    let mut args = args.to_vec();
    let path = format!("jsonpath={path}");
    args.extend(["-o", &path]);
    String::from_utf8_lossy(&e2e.kubectl(&args).stdout).trim().to_string()
}

#[test]
fn create_through_the_operator_and_adopt() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let had_crd = install_crd(&e2e);
    // Declared first, so dropped last: after every VirtualCluster went, even on failure.
    let _crd = CrdCleanup { e2e: &e2e, remove: !had_crd };
    let lease_namespace = unique("e2e-oplease");
    let _operator = BackgroundOperator::start(&e2e, &lease_namespace);
    let _lease_cleanup = NamespaceCleanup { e2e: &e2e, namespace: lease_namespace.clone() };
    let env = [("VC_OPERATOR_NAMESPACE", lease_namespace.as_str())];
    let leading = eventually(Duration::from_secs(60), || {
        jsonpath(
            &e2e,
            &["get", "lease", "vc-operator", "-n", &lease_namespace],
            "{.spec.holderIdentity}",
        ) == lease_namespace
    });
    assert!(leading, "the operator took its Lease");

    // vc create through the operator: a VirtualCluster, Running, connectable; vc delete takes
    // the namespace vc made along.
    let name = unique("e2e-opc");
    let namespace = format!("vc-{name}");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let created = e2e.vc_env(&["create", &name, "--ttl", "1h", "--no-connect", "-o", "json"], &env);
    assert_eq!(created.status.code(), Some(0), "create through the operator");
    let result = json(&created);
    assert_eq!(result["virtualCluster"], format!("{namespace}/{name}").as_str(), "{result}");
    assert_eq!(result["phase"], "Running", "{result}");
    assert_eq!(vcl_phase(&e2e, &namespace, &name), "Running");
    let owner = jsonpath(
        &e2e,
        &["get", "statefulset", &name, "-n", &namespace],
        "{.metadata.ownerReferences[0].kind}",
    );
    assert_eq!(owner, "VirtualCluster", "the operator applied the control plane");
    let listed = e2e.vc(&["connect", &name, "--", "kubectl", "get", "namespaces"]);
    assert_eq!(listed.status.code(), Some(0), "connect to a cluster made through the operator");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("kube-system"));
    let deleted = e2e.vc(&["delete", &name, "--yes", "--timeout", "5m"]);
    assert_eq!(deleted.status.code(), Some(0), "delete through the VirtualCluster");
    let gone = e2e.kubectl(&["get", "namespace", &namespace]);
    assert!(!gone.status.success(), "the namespace vc made went with it");

    // vc adopt: a cluster made directly becomes the VirtualCluster's, and goes with it.
    let name = unique("e2e-opa");
    let namespace = format!("vc-{name}");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let _namespace_cleanup = NamespaceCleanup { e2e: &e2e, namespace: namespace.clone() };
    let created = e2e.vc_env(&["create", &name, "--direct", "--ttl", "1h", "--no-connect"], &env);
    assert_eq!(created.status.code(), Some(0), "create --direct beside the operator");
    let owner = |e2e: &E2e| {
        jsonpath(
            e2e,
            &["get", "statefulset", &name, "-n", &namespace],
            "{.metadata.ownerReferences[0].kind}",
        )
    };
    assert_eq!(owner(&e2e), "", "--direct makes a cluster no VirtualCluster owns");
    let started = std::time::Instant::now();
    let adopted = e2e.vc_env(&["adopt", &name, "-o", "json"], &env);
    assert_eq!(adopted.status.code(), Some(0), "adopt");
    eprintln!("e2e: adopted in {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(owner(&e2e), "VirtualCluster");
    let running =
        eventually(Duration::from_secs(300), || vcl_phase(&e2e, &namespace, &name) == "Running");
    assert!(running, "the adopting VirtualCluster became Running");
    let clusters = json(&e2e.vc(&["list", "-n", &namespace, "-o", "json"]));
    assert_eq!(clusters[0]["madeBy"], "virtualCluster", "{clusters}");
    let again = e2e.vc_env(&["adopt", &name], &env);
    assert_eq!(again.status.code(), Some(6), "adopted once only");
    let deleted = e2e.kubectl(&["delete", "vcl", &name, "-n", &namespace, "--timeout=300s"]);
    assert!(deleted.status.success(), "the finalizer ran and let the object go");
    let left = e2e.kubectl(&["get", "statefulsets,pvc,services", "-n", &namespace, "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "everything went with it");
    drop(_namespace_cleanup);
}

/// The etcd image the deployed etcd runs (the engine release's default).
const ETCD_IMAGE: &str = "registry.k8s.io/etcd:3.6.8-0";

/// Whether the host's cluster DNS answers for Service `service` in `namespace`, asked from a
/// throw-away pod of the probe image there (the engine dials its deployed etcd by name).
fn cluster_dns_resolves(e2e: &E2e, namespace: &str, service: &str) -> bool {
    let pod = "vc-e2e-dns-probe";
    let fqdn = format!("{service}.{namespace}.svc.cluster.local");
    let ip = e2e.kubectl(&[
        "get",
        "service",
        "-n",
        namespace,
        service,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let ip = String::from_utf8_lossy(&ip.stdout).trim().to_string();
    let image = format!("--image={}", probe_image());
    let script = format!("nslookup -timeout=3 {fqdn} || true");
    e2e.kubectl(&[
        "run",
        pod,
        "-n",
        namespace,
        &image,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let done = eventually(Duration::from_secs(90), || {
        let phase =
            e2e.kubectl(&["get", "pod", "-n", namespace, pod, "-o", "jsonpath={.status.phase}"]);
        matches!(String::from_utf8_lossy(&phase.stdout).trim(), "Succeeded" | "Failed")
    });
    let log = e2e.kubectl(&["logs", "-n", namespace, pod]);
    e2e.kubectl(&["delete", "pod", "-n", namespace, pod, "--wait=false"]);
    done && !ip.is_empty() && String::from_utf8_lossy(&log.stdout).contains(&ip)
}

/// `--datastore etcd`: the etcd StatefulSet beside the control plane becomes ready, the
/// cluster serves a ConfigMap from it, keeps it across a pause, and a snapshot of it restores
/// into a new etcd cluster with the same ConfigMap. Skips, saying so, when the host's node
/// does not hold the etcd image (no pulls assumed). On a host whose cluster DNS does not
/// answer for Services, it says so and maps the etcd Service's name in the control-plane pod
/// (`engine.values` hostAliases) to check the rest; the restore is then skipped, since the
/// copy would need a mapping of its own.
#[test]
fn etcd_datastore_cluster_is_usable_and_restores() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    if !host_has_image(&e2e, ETCD_IMAGE) {
        report_skip(&format!(
            "e2e: etcd_datastore_cluster_is_usable_and_restores skipped: the host's node does not hold {ETCD_IMAGE}"
        ));
        return;
    }
    let source = unique("e2e-etcd");
    let restored = format!("{source}-r");
    let _cleanups =
        [&source, &restored].map(|name| Cleanup { e2e: &e2e, name: name.clone(), namespace: None });
    let created = e2e.vc(&["create", &source, "--datastore", "etcd", "--no-connect", "--no-wait"]);
    assert_eq!(created.status.code(), Some(0), "create failed");
    let namespace = format!("vc-{source}");
    let etcd_service = format!("{source}-etcd");
    let dns = cluster_dns_resolves(&e2e, &namespace, &etcd_service);
    if !dns {
        report_skip(&format!(
            "e2e: etcd_datastore_cluster_is_usable_and_restores: the host's cluster DNS does not answer for Services; mapping {etcd_service} in the control-plane pod instead"
        ));
        let ip = e2e.kubectl(&[
            "get",
            "service",
            "-n",
            &namespace,
            &etcd_service,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ]);
        let ip = String::from_utf8_lossy(&ip.stdout).trim().to_string();
        let values = e2e.state.path().join("etcd-alias.yaml");
        std::fs::write(
            &values,
            format!(
                "datastore:\n  kind: etcd\nengine:\n  values:\n    controlPlane:\n      statefulSet:\n        hostAliases:\n          - ip: \"{ip}\"\n            hostnames: [\"{etcd_service}\"]\n"
            ),
        )
        .expect("write the values file");
        let values = values.display().to_string();
        let upsert =
            e2e.vc(&["create", &source, "--upsert", "-f", &values, "--no-connect", "--no-wait"]);
        assert_eq!(upsert.status.code(), Some(0), "upsert with the mapping failed");
    }
    let seeded = e2e.vc(&[
        "connect",
        &source,
        "--timeout",
        "5m",
        "--",
        "kubectl",
        "create",
        "configmap",
        "seed",
        "--from-literal=answer=42",
    ]);
    assert_eq!(seeded.status.code(), Some(0), "the cluster did not serve a ConfigMap");
    let ready = e2e.kubectl(&[
        "get",
        "statefulset",
        "-n",
        &namespace,
        &etcd_service,
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(String::from_utf8_lossy(&ready.stdout).trim(), "1", "etcd is ready");
    let described = e2e.vc(&["describe", &source, "-o", "json"]);
    assert_eq!(json(&described)["datastore"], "etcd");
    let uid_of = |cluster: &str| seed_uid(&e2e, cluster);
    let uid = uid_of(&source);
    assert!(!uid.is_empty());

    // The data lives in etcd: a pause stops both, a resume brings both back with it.
    assert_eq!(e2e.vc(&["pause", &source]).status.code(), Some(0), "pause failed");
    let replicas = e2e.kubectl(&[
        "get",
        "statefulset",
        "-n",
        &namespace,
        &etcd_service,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(String::from_utf8_lossy(&replicas.stdout).trim(), "0", "etcd paused");
    let resumed = e2e.vc(&["resume", &source, "--timeout", "5m"]);
    assert_eq!(resumed.status.code(), Some(0), "resume failed");
    assert_eq!(uid_of(&source), uid, "the ConfigMap survives the pause");

    let file = e2e.state.path().join("etcd.vcsnap");
    let file_arg = file.display().to_string();
    let taken = e2e.vc(&["snapshot", &source, "--to", &file_arg, "-o", "json"]);
    assert_eq!(taken.status.code(), Some(0), "snapshot of an etcd cluster failed");
    assert!(json(&taken)["entries"].as_u64().unwrap_or_default() > 10);
    if !dns {
        report_skip(
            "e2e: etcd_datastore_cluster_is_usable_and_restores: restore skipped: without Service DNS the copy's control plane cannot find its etcd",
        );
        return;
    }
    let restore =
        e2e.vc(&["restore", &file_arg, "--name", &restored, "--no-connect", "--timeout", "5m"]);
    assert_eq!(restore.status.code(), Some(0), "restore into an etcd cluster failed");
    let etcd = e2e.kubectl(&[
        "get",
        "statefulset",
        "-n",
        &format!("vc-{restored}"),
        &format!("{restored}-etcd"),
        "-o",
        "name",
    ]);
    assert!(etcd.status.success(), "the restored cluster has its own etcd");
    assert_eq!(uid_of(&restored), uid, "the restored ConfigMap keeps its UID");
}

/// A Helm chart installed at creation (`--chart`, rendered by vc): the fixture chart with the
/// probe image through its values, in a release namespace vc creates inside; its Deployment
/// becomes Available and its pre-install hook and CRD are there, its test Pod is not.
#[test]
fn create_installs_a_chart_whose_deployment_becomes_available() {
    let Some(kubeconfig) = host_kubeconfig() else { return };
    let e2e = E2e::new(kubeconfig);
    let name = unique("e2e-chart");
    let _cleanup = Cleanup { e2e: &e2e, name: name.clone(), namespace: None };
    let image = probe_image();
    let (repository, tag) = match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (image.clone(), "latest".to_string()),
    };
    let values = e2e.state.path().join("web-values.yaml");
    std::fs::write(
        &values,
        format!(
            "image:\n  repository: {repository}\n  tag: {tag:?}\ncommand: [sh, -c, 'exec sleep 3600']\nlivenessProbe: null\nreadinessProbe: null\n"
        ),
    )
    .expect("write the chart values");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/charts/web");
    let spec = e2e.state.path().join("values.yaml");
    std::fs::write(
        &spec,
        format!(
            "charts:\n- path: {}\n  releaseName: shop\n  namespace: store\n  valuesFiles: [{}]\n",
            chart.display(),
            values.display()
        ),
    )
    .expect("write the values file");
    let created = e2e.vc(&[
        "create",
        &name,
        "-f",
        spec.to_str().expect("a UTF-8 path"),
        "--no-connect",
        "-o",
        "json",
        "--timeout",
        "5m",
    ]);
    assert_eq!(created.status.code(), Some(0), "create failed");
    assert!(json(&created)["timings"]["provisioning"].is_number());
    let inside = |args: &[&str]| {
        let mut full = vec!["connect", name.as_str(), "--", "kubectl"];
        full.extend_from_slice(args);
        e2e.vc(&full)
    };
    let available = inside(&[
        "wait",
        "deployment/shop-web",
        "-n",
        "store",
        "--for=condition=Available",
        "--timeout=180s",
    ]);
    assert!(available.status.success(), "the chart's Deployment did not become Available");
    let hook = inside(&["get", "configmap", "shop-web-setup", "-n", "store", "-o", "name"]);
    assert!(hook.status.success(), "the pre-install hook was not applied");
    let crd = inside(&["get", "crd", "gadgets.web.example.test", "-o", "name"]);
    assert!(crd.status.success(), "the chart's CRD was not applied");
    let test_pod = inside(&["get", "pod", "shop-web-test-connection", "-n", "store", "-o", "name"]);
    assert!(!test_pod.status.success(), "the chart's test Pod must not be installed");
}

/// The UID of the ConfigMap `seed` in the default namespace of virtual cluster `cluster`.
fn seed_uid(e2e: &E2e, cluster: &str) -> String {
    let out = e2e.vc(&[
        "connect",
        cluster,
        "--",
        "kubectl",
        "get",
        "configmap",
        "seed",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_eq!(out.status.code(), Some(0), "reading the ConfigMap of {cluster} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
