//! Connect scenarios: `vc connect`, `disconnect`, `kubeconfig` and create's default connect as
//! real processes, with a background forwarder reaching a TLS virtual API server through the
//! fake host's port-forward, and `kubectl` talking to it with verification on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fakekube::{FakeKube, PodBehaviour};
use serde_json::{Value, json};

use crate::support::{Run, Sandbox, VC, Vc};
use crate::tls::{Pki, VirtualApi};

/// A fake host, a sandbox whose kubeconfig points at it (context `kind-host`), and a guard:
/// dropping it disconnects everything and kills any forwarder of this test still running.
pub(crate) struct Env {
    pub(crate) fake: FakeKube,
    pub(crate) sandbox: Sandbox,
}

impl Env {
    pub(crate) fn new() -> Self {
        let fake = FakeKube::builder().ready_delay(Duration::from_millis(20)).start();
        let sandbox = Sandbox::new();
        std::fs::create_dir_all(sandbox.kubeconfig().parent().unwrap()).unwrap();
        fake.write_kubeconfig(sandbox.kubeconfig(), "kind-host").unwrap();
        Self { fake, sandbox }
    }

    pub(crate) fn vc(&self, args: &[&str]) -> Run {
        Vc::new(&self.sandbox).args(args).run()
    }

    /// `vc ARGS` as a command not yet started, with the same environment as [`Vc::run`].
    fn vc_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(VC);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.sandbox.home())
            .env("KUBECONFIG", self.sandbox.kubeconfig())
            .env("XDG_STATE_HOME", self.sandbox.state())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Creates cluster `name` without connecting, then makes its control plane `api`: the
    /// pod's port 8443 forwards to it and the engine Secret holds its admin kubeconfig.
    pub(crate) fn create(&self, name: &str, api: &VirtualApi) {
        self.vc(&["create", name, "--no-connect"]).code(0);
        self.serve(name, api);
    }

    /// Points cluster `name`'s control-plane port and engine Secret at `api`.
    pub(crate) fn serve(&self, name: &str, api: &VirtualApi) {
        let namespace = format!("vc-{name}");
        self.fake.set_port_forward_target(&namespace, &format!("{name}-0"), 8443, api.addr());
        self.fake.put(api.pki.engine_secret(&namespace, name)).expect("engine Secret");
    }

    fn kubeconfig_text(&self) -> String {
        std::fs::read_to_string(self.sandbox.kubeconfig()).expect("read kubeconfig")
    }

    pub(crate) fn kubeconfig(&self) -> Value {
        yaml(&self.kubeconfig_text())
    }

    /// Every forward state file, parsed.
    pub(crate) fn forwards(&self) -> Vec<Value> {
        let dir = self.sandbox.state().join("vc").join("forwards");
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut states: Vec<Value> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap())
            .collect();
        states.sort_by_key(|s| s["name"].as_str().unwrap_or_default().to_string());
        states
    }

    /// The one forward state file of cluster `name`.
    #[track_caller]
    pub(crate) fn forward(&self, name: &str) -> Value {
        let states: Vec<Value> =
            self.forwards().into_iter().filter(|s| s["name"] == name).collect();
        assert_eq!(states.len(), 1, "one state file for {name}: {states:?}");
        states.into_iter().next().unwrap()
    }

    pub(crate) fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        kubectl(&self.sandbox, kubeconfig, args)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.sandbox.dir.path().join(file)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.vc(&["disconnect", "--all"]);
        // If disconnect could not run (a malformed kubeconfig, say), stop what is left by pid,
        // after checking the pid is still a forwarder of this test's host.
        for state in self.forwards() {
            let Some(pid) = state["pid"].as_u64() else { continue };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("forwarder") && cmdline.contains(&self.fake.url()) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}

/// Whether any forwarder log in `dir` contains `text`.
fn log_mentions(dir: &Path, text: &str) -> bool {
    std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok).any(|entry| {
        entry.path().extension().is_some_and(|x| x == "log")
            && std::fs::read_to_string(entry.path()).is_ok_and(|log| log.contains(text))
    })
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
}

/// Runs kubectl against `kubeconfig` with the sandbox's HOME; TLS verification stays on.
fn kubectl(sandbox: &Sandbox, kubeconfig: &Path, args: &[&str]) -> Run {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--request-timeout=10s")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sandbox.home())
        .stdin(Stdio::null())
        .output()
        .expect("kubectl must be installed for these tests");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The entry `name` of a kubeconfig list (`contexts`, `clusters`, `users`).
pub(crate) fn named<'a>(config: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    config[list].as_array()?.iter().find(|e| e["name"] == name)
}

fn names(config: &Value, list: &str) -> Vec<String> {
    config[list]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The local port in a server URL `https://127.0.0.1:PORT`.
#[track_caller]
fn local_port(server: &str) -> u16 {
    server
        .strip_prefix("https://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("server is a local forward: {server}"))
}

/// Whether `pid` is a running process (a zombie has exited).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start()).unwrap_or("");
        !(state.starts_with('Z') || state.starts_with('X'))
    })
}

/// Polls `check` until it holds or `within` has passed.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Asserts that a `kubectl get ns -o name` listing came from the virtual cluster: it has the
/// marker namespace and no host namespace.
#[track_caller]
pub(crate) fn assert_lists_virtual_namespaces(run: &Run, marker: &str) {
    run.code(0);
    let listed: Vec<&str> = run.stdout.lines().collect();
    assert!(listed.contains(&format!("namespace/{marker}").as_str()), "{listed:?}");
    assert!(listed.contains(&"namespace/kube-system"), "{listed:?}");
    assert!(!listed.iter().any(|n| n.contains("vc-")), "host namespaces leaked: {listed:?}");
}

#[test]
fn connect_merges_context_and_kubectl_reaches_the_virtual_cluster() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);

    let connected = env.vc(&["connect", "dev"]);
    connected.code(0);
    assert!(connected.stdout.is_empty(), "progress goes to stderr: {}", connected.stdout);
    assert!(
        connected.stderr.contains("connected to virtual cluster \"dev\""),
        "{}",
        connected.stderr
    );

    let config = env.kubeconfig();
    assert_eq!(config["current-context"], "vc-dev");
    let context = named(&config, "contexts", "vc-dev").expect("context vc-dev");
    assert_eq!(context["context"]["cluster"], "vc-dev");
    assert_eq!(context["context"]["user"], "vc-dev");
    let extension = context["context"]["extensions"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["name"] == "vc.dev/cluster"))
        .expect("vc extension");
    assert_eq!(extension["extension"]["previousContext"], "kind-host");
    assert_eq!(extension["extension"]["hostContext"], "kind-host");
    assert_eq!(extension["extension"]["namespace"], "vc-dev");
    let cluster = named(&config, "clusters", "vc-dev").expect("cluster vc-dev");
    let server = cluster["cluster"]["server"].as_str().unwrap().to_string();
    let port = local_port(&server);
    assert!(cluster["cluster"]["insecure-skip-tls-verify"].is_null());
    assert!(cluster["cluster"]["certificate-authority-data"].is_string());
    let user = named(&config, "users", "vc-dev").expect("user vc-dev");
    assert!(user["user"]["client-certificate-data"].is_string());
    assert!(named(&config, "contexts", "kind-host").is_some(), "the host context stays");
    assert_eq!(env.forward("dev")["port"], port);

    // kubectl through the forward, verifying the certificate and presenting the client one.
    let kubeconfig = env.sandbox.kubeconfig();
    let listed = env.kubectl(&kubeconfig, &["get", "ns", "-o", "name"]);
    assert_lists_virtual_namespaces(&listed, "inside-dev");
    assert!(api.client_cert_handshakes() > 0, "kubectl authenticated with the client cert");
    assert!(api.inner.count_requests("list", "/api/v1/namespaces") > 0, "served by the inner fake");
    let table = env.kubectl(&kubeconfig, &["get", "ns"]);
    table.code(0);
    assert!(table.stdout.starts_with("NAME"), "{}", table.stdout);

    // A kube client reads the same kubeconfig.
    let names_seen = kube_list_namespaces(&kubeconfig);
    assert!(names_seen.contains(&"inside-dev".to_string()), "{names_seen:?}");

    let list = env.vc(&["list", "-o", "json"]);
    list.code(0);
    let list = list.json();
    assert_eq!(list[0]["name"], "dev");
    assert_eq!(list[0]["connected"], true);
    assert_eq!(list[0]["localPort"], port);

    // Again: harmless, same port, same forwarder, nothing to rewrite.
    let pid = env.forward("dev")["pid"].clone();
    let text = env.kubeconfig_text();
    env.vc(&["connect", "dev"]).code(0);
    assert_eq!(env.kubeconfig_text(), text);
    let again = env.kubeconfig();
    assert_eq!(named(&again, "clusters", "vc-dev").unwrap()["cluster"]["server"], server);
    assert_eq!(names(&again, "contexts"), ["kind-host", "vc-dev"]);
    assert_eq!(env.forward("dev")["pid"], pid, "the running forwarder is reused");
    let extension = &named(&again, "contexts", "vc-dev").unwrap()["context"]["extensions"][0];
    assert_eq!(extension["extension"]["previousContext"], "kind-host", "not overwritten");

    // --no-switch leaves current-context alone.
    env.vc(&["disconnect", "dev"]).code(0);
    assert_eq!(env.kubeconfig()["current-context"], "kind-host");
    let no_switch = env.vc(&["connect", "dev", "--no-switch"]);
    no_switch.code(0);
    assert!(!no_switch.stderr.contains("current context"), "{}", no_switch.stderr);
    let config = env.kubeconfig();
    assert_eq!(config["current-context"], "kind-host");
    assert!(named(&config, "contexts", "vc-dev").is_some());
    let listed = env.kubectl(&kubeconfig, &["--context", "vc-dev", "get", "ns", "-o", "name"]);
    assert_lists_virtual_namespaces(&listed, "inside-dev");

    env.vc(&["disconnect", "dev"]).code(0);
}

/// Lists namespaces with a kube client built from `kubeconfig`'s current context.
fn kube_list_namespaces(kubeconfig: &Path) -> Vec<String> {
    use k8s_openapi::api::core::v1::Namespace;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let options = kube::config::KubeConfigOptions::default();
        let config =
            kube::Config::from_custom_kubeconfig(config, &options).await.expect("client config");
        let client = kube::Client::try_from(config).expect("client");
        let list = kube::Api::<Namespace>::all(client)
            .list(&kube::api::ListParams::default())
            .await
            .expect("list namespaces through the forward");
        list.items.into_iter().filter_map(|n| n.metadata.name).collect()
    })
}

#[test]
fn forwarder_reconnects_after_dropped_streams_and_a_recreated_pod() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    env.vc(&["connect", "dev"]).code(0);
    let state = env.forward("dev");
    let kubeconfig = env.sandbox.kubeconfig();
    assert_lists_virtual_namespaces(
        &env.kubectl(&kubeconfig, &["get", "ns", "-o", "name"]),
        "inside-dev",
    );

    let opened = env.fake.port_forwards().opened();
    env.fake.drop_port_forwards();
    let after_drop = env.kubectl(&kubeconfig, &["get", "ns", "-o", "name"]);
    assert_lists_virtual_namespaces(&after_drop, "inside-dev");
    assert!(env.fake.port_forwards().opened() > opened, "a new stream was opened");

    let uid = env.fake.get("pods", "vc-dev", "dev-0").unwrap()["metadata"]["uid"].clone();
    env.fake.remove_now("pods", "vc-dev", "dev-0").expect("pod dev-0");
    let after_restart = env.kubectl(&kubeconfig, &["get", "ns", "-o", "name"]);
    assert_lists_virtual_namespaces(&after_restart, "inside-dev");
    let pod = env.fake.get("pods", "vc-dev", "dev-0").expect("dev-0 recreated");
    assert_ne!(pod["metadata"]["uid"], uid, "the pod was recreated");

    // The pod's port refuses for a while (its container restarting): the forwarder retries the
    // connection until it answers again.
    let pod_forwards = env.fake.port_forwards();
    pod_forwards.remove_target("vc-dev", "dev-0", 8443);
    let restore = {
        let pod_forwards = pod_forwards.clone();
        let addr = api.addr();
        let logs = env.sandbox.state().join("vc").join("forwards");
        // Only once the forwarder has met the refusal (kubectl may take longer than any fixed
        // delay to start on a loaded machine), and at the latest after ten seconds.
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && !log_mentions(&logs, "connection refused; retrying")
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(200));
            pod_forwards.set_target("vc-dev", "dev-0", 8443, addr);
        })
    };
    let after_refusal = env.kubectl(&kubeconfig, &["get", "ns", "-o", "name"]);
    restore.join().unwrap();
    assert_lists_virtual_namespaces(&after_refusal, "inside-dev");
    let log = env.vc(&["connect", "dev", "--logs"]);
    log.code(0);
    assert!(log.stdout.contains("connection refused; retrying"), "retried: {}", log.stdout);

    // Same forwarder, same port throughout.
    let now = env.forward("dev");
    assert_eq!(now["pid"], state["pid"]);
    assert_eq!(now["port"], state["port"]);
    env.vc(&["disconnect", "dev"]).code(0);
}

#[test]
fn connect_with_a_command_uses_a_private_kubeconfig_and_forward() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    let before = std::fs::read(env.sandbox.kubeconfig()).unwrap();

    let listed = env.vc(&["connect", "dev", "--", "kubectl", "get", "ns", "-o", "name"]);
    assert_lists_virtual_namespaces(&listed, "inside-dev");

    let failed = env.vc(&["connect", "dev", "--", "sh", "-c", "exit 7"]);
    failed.code(7);

    let seen = env.vc(&[
        "connect",
        "dev",
        "--",
        "sh",
        "-c",
        "echo \"$KUBECONFIG\"; stat -c %a \"$KUBECONFIG\"; kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'",
    ]);
    seen.code(0);
    let lines: Vec<&str> = seen.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", seen.stdout);
    let private = Path::new(lines[0]);
    assert!(private.is_absolute(), "{}", lines[0]);
    assert_ne!(private, env.sandbox.kubeconfig());
    assert_eq!(lines[1], "600", "the private kubeconfig is readable by its owner only");
    local_port(lines[2]);
    assert!(!private.exists(), "{} is removed after the command", private.display());

    assert_eq!(std::fs::read(env.sandbox.kubeconfig()).unwrap(), before, "kubeconfig untouched");
    assert!(env.forwards().is_empty(), "no background forwarder: {:?}", env.forwards());
    let list = env.vc(&["list", "-o", "json"]).json();
    assert_eq!(list[0]["connected"], false);
}

#[test]
fn print_writes_a_self_contained_kubeconfig() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    let before = std::fs::read(env.sandbox.kubeconfig()).unwrap();

    // With --server nothing starts.
    let exposed = env.vc(&["connect", "dev", "--print", "--server", "https://dev.example.com"]);
    exposed.code(0);
    let printed = yaml(&exposed.stdout);
    assert_eq!(printed["current-context"], "vc-dev");
    assert_eq!(
        named(&printed, "clusters", "vc-dev").unwrap()["cluster"]["server"],
        "https://dev.example.com"
    );
    let by_kubeconfig = env.vc(&["kubeconfig", "dev", "--server", "https://dev.example.com:6443"]);
    by_kubeconfig.code(0);
    let printed = yaml(&by_kubeconfig.stdout);
    assert_eq!(
        named(&printed, "clusters", "vc-dev").unwrap()["cluster"]["server"],
        "https://dev.example.com:6443"
    );
    assert_eq!(names(&printed, "users"), ["vc-dev"]);
    assert!(env.forwards().is_empty(), "nothing started: {:?}", env.forwards());

    // Without it, a forward and a kubeconfig kubectl accepts on its own.
    let print = env.vc(&["connect", "dev", "--print"]);
    print.code(0);
    let printed = yaml(&print.stdout);
    let cluster = &named(&printed, "clusters", "vc-dev").unwrap()["cluster"];
    let port = local_port(cluster["server"].as_str().unwrap());
    assert!(cluster["certificate-authority-data"].is_string(), "{}", print.stdout);
    assert!(cluster["insecure-skip-tls-verify"].is_null());
    assert_eq!(env.forward("dev")["port"], port);
    let file = env.path("dev.kubeconfig");
    std::fs::write(&file, &print.stdout).unwrap();
    assert_lists_virtual_namespaces(
        &env.kubectl(&file, &["get", "ns", "-o", "name"]),
        "inside-dev",
    );
    // Verification is on: the same file with another CA is refused.
    let other_ca = STANDARD.encode(Pki::generate().ca_pem);
    let ca = cluster["certificate-authority-data"].as_str().unwrap();
    let forged = env.path("forged.kubeconfig");
    std::fs::write(&forged, print.stdout.replace(ca, &other_ca)).unwrap();
    let refused = env.kubectl(&forged, &["get", "ns", "-o", "name"]);
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("certificate"), "{}", refused.stderr);
    assert_eq!(std::fs::read(env.sandbox.kubeconfig()).unwrap(), before, "kubeconfig untouched");

    // `vc kubeconfig` without --server uses the running forward.
    let current = yaml(&env.vc(&["kubeconfig", "dev"]).code(0).stdout);
    assert_eq!(
        named(&current, "clusters", "vc-dev").unwrap()["cluster"]["server"],
        cluster["server"]
    );
    env.vc(&["disconnect", "dev"]).code(0);
}

#[test]
fn disconnect_stops_the_forwarder_and_restores_the_kubeconfig() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    let original = env.kubeconfig();

    env.vc(&["connect", "dev"]).code(0);
    let first_port = env.forward("dev")["port"].clone();
    let pid = env.forward("dev")["pid"].as_u64().unwrap();
    assert!(running(pid));

    let disconnected = env.vc(&["disconnect", "dev"]);
    disconnected.code(0);
    assert!(
        disconnected.stderr.contains("current context is kind-host again"),
        "{}",
        disconnected.stderr
    );
    assert!(eventually(Duration::from_secs(2), || !running(pid)), "forwarder {pid} still runs");
    assert!(env.forwards().iter().all(|s| !running(s["pid"].as_u64().unwrap())));
    let config = env.kubeconfig();
    assert_eq!(config["current-context"], "kind-host");
    for list in ["contexts", "clusters", "users"] {
        assert!(named(&config, list, "vc-dev").is_none(), "{list} entry removed");
    }
    assert_eq!(config, original, "the kubeconfig means what it did before connect");
    let list = env.vc(&["list", "-o", "json"]).json();
    assert_eq!(list[0]["connected"], false);

    let again = env.vc(&["disconnect", "dev"]);
    again.code(0);
    assert!(again.stderr.contains("not connected"), "{}", again.stderr);

    // The state file of a stopped forwarder only keeps its port: the next connect reuses it.
    env.vc(&["connect", "dev"]).code(0);
    let state = env.forward("dev");
    assert_eq!(state["port"], first_port, "same port as before");
    let pid = state["pid"].as_u64().unwrap();
    assert!(running(pid));

    // delete after connect also disconnects.
    let deleted = env.vc(&["delete", "dev", "--yes"]);
    deleted.code(0);
    assert!(eventually(Duration::from_secs(2), || !running(pid)), "forwarder {pid} still runs");
    assert!(env.forwards().iter().all(|s| !running(s["pid"].as_u64().unwrap())));
    let config = env.kubeconfig();
    assert_eq!(config["current-context"], "kind-host");
    assert_eq!(names(&config, "contexts"), ["kind-host"]);
    assert_eq!(names(&config, "clusters"), ["kind-host"]);
    assert_eq!(names(&config, "users"), ["kind-host"]);
}

#[test]
fn connect_refuses_a_local_port_in_use() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    let before = std::fs::read(env.sandbox.kubeconfig()).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();

    let refused = env.vc(&["connect", "dev", "--local-port", &port]);
    refused.code(6);
    assert!(refused.stderr.contains(&port), "names the port: {}", refused.stderr);
    assert!(refused.stderr.contains("--local-port"), "{}", refused.stderr);
    assert_eq!(std::fs::read(env.sandbox.kubeconfig()).unwrap(), before);
    assert!(env.forwards().is_empty(), "{:?}", env.forwards());
}

#[test]
fn connect_to_a_cluster_still_starting_times_out() {
    let env = Env::new();
    env.fake.set_behaviour("slow", PodBehaviour::NeverReady);
    env.vc(&["create", "slow", "--no-connect", "--no-wait"]).code(0);
    let started = Instant::now();
    let slow = env.vc(&["connect", "slow", "--timeout", "2s"]);
    slow.code(4);
    assert!(slow.stderr.contains("\"slow\" is still starting after 2s"), "{}", slow.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Ready pod, but the engine never writes its Secret.
    env.fake.set_engine_secret(false);
    env.vc(&["create", "nosecret", "--no-connect", "--no-wait"]).code(0);
    assert!(eventually(Duration::from_secs(5), || {
        env.fake.get("pods", "vc-nosecret", "nosecret-0").is_some_and(|p| {
            p["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
    }));
    let no_secret = env.vc(&["connect", "nosecret", "--timeout", "2s"]);
    no_secret.code(4);
    assert!(no_secret.stderr.contains("still starting"), "{}", no_secret.stderr);
    assert!(env.forwards().is_empty(), "{:?}", env.forwards());
    assert_eq!(env.kubeconfig()["current-context"], "kind-host");
}

#[test]
fn connect_to_a_missing_cluster_is_not_found() {
    let env = Env::new();
    let missing = env.vc(&["connect", "nope"]);
    missing.code(3);
    assert!(missing.stderr.contains("\"nope\""), "{}", missing.stderr);
    assert!(env.forwards().is_empty());
}

#[test]
fn connect_leaves_a_read_only_kubeconfig_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    let path = env.sandbox.kubeconfig();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    let before = std::fs::read(&path).unwrap();

    let refused = env.vc(&["connect", "dev"]);
    refused.code(1);
    assert!(refused.stderr.contains("read-only"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--print"), "suggests --print: {}", refused.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), before, "file unchanged");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    let left: Vec<_> =
        env.forwards().into_iter().filter(|s| running(s["pid"].as_u64().unwrap())).collect();
    assert!(left.is_empty(), "no forwarder outlives a failed connect: {left:?}");

    // What it suggests works.
    let print = env.vc(&["connect", "dev", "--print"]);
    print.code(0);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn connect_leaves_a_malformed_kubeconfig_alone() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    let path = env.sandbox.kubeconfig();
    let mut text = env.kubeconfig_text();
    text.push_str("contexts: [ {name: broken\n");
    std::fs::write(&path, &text).unwrap();

    let refused = env.vc(&["connect", "dev"]);
    refused.code(1);
    assert!(refused.stderr.contains("not a valid kubeconfig"), "{}", refused.stderr);
    assert!(refused.stderr.contains(&path.display().to_string()), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "file unchanged");
    assert!(env.forwards().is_empty(), "{:?}", env.forwards());
}

#[test]
fn concurrent_connects_both_land() {
    let env = Env::new();
    let api = VirtualApi::start("inside");
    env.create("a", &api);
    env.create("b", &api);

    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| env.vc_command(&["connect", name]).spawn().expect("start vc connect"))
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let config = env.kubeconfig();
    for list in ["contexts", "clusters", "users"] {
        let mut got = names(&config, list);
        got.sort();
        assert_eq!(got, ["kind-host", "vc-a", "vc-b"], "{list}");
    }
    let current = config["current-context"].as_str().unwrap();
    assert!(current == "vc-a" || current == "vc-b", "{current}");
    let ports: Vec<u64> = env.forwards().iter().map(|s| s["port"].as_u64().unwrap()).collect();
    assert_eq!(ports.len(), 2);
    assert_ne!(ports[0], ports[1]);
    let kubeconfig = env.sandbox.kubeconfig();
    for context in ["vc-a", "vc-b"] {
        let listed = env.kubectl(&kubeconfig, &["--context", context, "get", "ns", "-o", "name"]);
        assert_lists_virtual_namespaces(&listed, "inside");
    }

    // Whichever won, disconnecting both ends on the context they started from.
    env.vc(&["disconnect", "--all"]).code(0);
    assert_eq!(names(&env.kubeconfig(), "contexts"), ["kind-host"]);
    assert_eq!(env.kubeconfig()["current-context"], "kind-host");

    // Stacked connects undone in connect order: b recorded a as its previous context.
    env.vc(&["connect", "a"]).code(0);
    env.vc(&["connect", "b"]).code(0);
    env.vc(&["disconnect", "a"]).code(0);
    assert_eq!(env.kubeconfig()["current-context"], "vc-b");
    let disconnected = env.vc(&["disconnect", "b"]);
    disconnected.code(0);
    assert!(disconnected.stderr.contains("kind-host again"), "{}", disconnected.stderr);
    assert_eq!(env.kubeconfig()["current-context"], "kind-host");
}

#[test]
fn create_connects_by_default() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev2");
    // The engine Secret is in place before the cluster exists, so the one create reads is ours;
    // its namespace carries vc's labels for dev2, so create accepts it as its own.
    let labels =
        serde_json::json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "dev2"});
    env.fake
        .put(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": "vc-dev2", "labels": labels}}))
        .expect("namespace");
    env.serve("dev2", &api);

    let created = env.vc(&["create", "dev2"]);
    created.code(0);
    assert!(created.stderr.contains("virtual cluster \"dev2\" is ready"), "{}", created.stderr);
    let config = env.kubeconfig();
    assert_eq!(config["current-context"], "vc-dev2");
    let server = named(&config, "clusters", "vc-dev2").unwrap()["cluster"]["server"].clone();
    assert_eq!(env.forward("dev2")["port"], local_port(server.as_str().unwrap()));
    let listed = env.kubectl(&env.sandbox.kubeconfig(), &["get", "ns", "-o", "name"]);
    assert_lists_virtual_namespaces(&listed, "inside-dev2");
    env.vc(&["disconnect", "dev2"]).code(0);
    assert_eq!(env.kubeconfig()["current-context"], "kind-host");
}

#[test]
fn connect_to_an_exposed_server_writes_the_context_without_a_forward() {
    let env = Env::new();
    let api = VirtualApi::start("exposed");
    env.create("dev", &api);
    // The user exposes the virtual API server themselves (here: the stand-in's own address).
    let server = format!("https://127.0.0.1:{}", api.addr().port());
    let run = env.vc(&["connect", "dev", "--server", &server]);
    run.code(0);
    assert!(env.forwards().is_empty(), "no forward started: {:?}", env.forwards());
    let config = env.kubeconfig();
    assert_eq!(named(&config, "clusters", "vc-dev").unwrap()["cluster"]["server"], server.as_str());
    assert_eq!(config["current-context"], "vc-dev");
    assert_lists_virtual_namespaces(
        &env.kubectl(&env.sandbox.kubeconfig(), &["get", "ns", "-o", "name"]),
        "exposed",
    );
    // An address that does not answer is refused before anything is written.
    env.vc(&["disconnect", "dev"]).code(0);
    let before = std::fs::read(env.sandbox.kubeconfig()).unwrap();
    let dead = env.vc(&["connect", "dev", "--server", "https://127.0.0.1:9", "--timeout", "3s"]);
    dead.code(5);
    assert!(dead.stderr.contains("does not reach the API server"), "{}", dead.stderr);
    assert_eq!(std::fs::read(env.sandbox.kubeconfig()).unwrap(), before);
}

#[test]
fn connect_reports_a_forward_that_cannot_reach_the_api_server() {
    let env = Env::new();
    let api = VirtualApi::start("unused");
    env.create("dev", &api);
    // The control-plane pod's port leads nowhere.
    env.fake.port_forwards().remove_target("vc-dev", "dev-0", 8443);
    let before = std::fs::read(env.sandbox.kubeconfig()).unwrap();
    let run = env.vc(&["connect", "dev", "--timeout", "3s", "--", "kubectl", "get", "ns"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("error:"), "one clear error line: {}", run.stderr);
    let background = env.vc(&["connect", "dev", "--timeout", "3s"]);
    assert_ne!(background.code, Some(0), "{background:?}");
    assert_eq!(std::fs::read(env.sandbox.kubeconfig()).unwrap(), before, "nothing written");
    let listed = env.vc(&["list", "-o", "json"]).json();
    assert_eq!(listed[0]["connected"], false);
}

#[test]
fn connect_logs_show_the_forwarder_log_even_after_a_failed_start() {
    let env = Env::new();
    let api = VirtualApi::start("logs");
    env.create("dev", &api);
    env.vc(&["connect", "dev"]).code(0);
    let logs = env.vc(&["connect", "dev", "--logs"]);
    logs.code(0);
    assert!(logs.stdout.contains("ready on 127.0.0.1:"), "{}", logs.stdout);
    env.vc(&["disconnect", "dev"]).code(0);

    // A forwarder that never got ready leaves no live state, yet its log is found.
    env.vc(&["create", "lost", "--no-connect"]).code(0);
    let failed = env.vc(&["connect", "lost", "--timeout", "3s"]);
    assert_ne!(failed.code, Some(0));
    let logs = env.vc(&["connect", "lost", "--logs"]);
    logs.code(0);
    assert!(!logs.stdout.trim().is_empty(), "the failed start left a log");
    env.vc(&["connect", "missing", "--logs"]).code(3);
}

/// The engine's certificate Secret as the engine writes it, with the test PKI's admin.conf.
fn certs_secret(api: &VirtualApi, namespace: &str, name: &str) -> Value {
    let b64 = |text: &str| STANDARD.encode(text.as_bytes());
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": format!("{name}-certs"),
            "namespace": namespace,
            "labels": {"app": "vcluster", "vcluster-name": name},
        },
        "type": "Opaque",
        "data": {"admin.conf": b64(&api.pki.admin_conf()), "ca.crt": b64(&api.pki.ca_pem)},
    })
}

#[test]
fn create_races_the_kubelet_through_the_forward() {
    // The pod runs but never becomes Ready and the engine never writes `vc-<name>`: only the
    // race (the certificate Secret, then /readyz and /version through the forward) can end
    // the wait.
    let env = Env::new();
    let api = VirtualApi::start("inside-fast");
    env.fake.set_behaviour("fast", PodBehaviour::NeverReady);
    env.fake.set_engine_secret(false);
    // The engine's certificate Secret is already there in the namespace (an earlier start of
    // the engine): vc keeps it as it is, so its admin credentials are the ones the API server knows.
    let existing = certs_secret(&api, "team-fast", "fast");
    env.fake.put(existing.clone()).expect("the namespace's certificate Secret");
    env.fake.set_port_forward_target("team-fast", "fast-0", 8443, api.addr());

    let created =
        env.vc(&["--namespace", "team-fast", "create", "fast", "-o", "json", "--timeout", "30s"]);
    created.code(0);
    let kept = env.fake.get("secrets", "team-fast", "fast-certs").expect("the certificate Secret");
    assert_eq!(kept["data"], existing["data"], "an existing certificate Secret is kept");
    let managers = kept["metadata"]["managedFields"].to_string();
    assert!(!managers.contains("\"vc\""), "vc wrote nothing into it: {managers}");
    let result: Value = serde_json::from_str(&created.stdout).expect("JSON on stdout");
    assert_eq!(result["phase"], "Running");
    let timings = result["timings"].as_object().expect("timings");
    for phase in ["applying", "scheduled", "initialized", "apiserver", "ready", "connected"] {
        assert!(timings[phase].is_number(), "timing {phase}: {result}");
    }
    let pod = env.fake.get("pods", "team-fast", "fast-0").expect("pod");
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(env.fake.get("secrets", "team-fast", "vc-fast").is_none(), "no kubeconfig Secret");
    assert!(api.client_cert_handshakes() > 0, "the admin client certificate was presented");

    // The context it wrote works with TLS verified against the engine's CA.
    let listed = env.kubectl(&env.sandbox.kubeconfig(), &["get", "namespaces", "-o", "name"]);
    listed.code(0);
    assert!(listed.stdout.contains("namespace/inside-fast"), "{}", listed.stdout);
    let config = env.kubeconfig();
    assert_eq!(config["current-context"], "vc-fast");
}

#[test]
fn a_create_that_wins_the_race_waits_briefly_for_the_kubelet_so_list_agrees() {
    // The API answers through the forward at once; the kubelet marks the pod Ready 2.5 s
    // after it starts. vc list right after create must not say Starting.
    let env = Env::new();
    let api = VirtualApi::start("inside-agree");
    env.fake.set_ready_delay(Duration::from_millis(2500));
    env.fake.put(certs_secret(&api, "team-agree", "agree")).expect("the certificate Secret");
    env.fake.set_port_forward_target("team-agree", "agree-0", 8443, api.addr());
    let created = env.vc(&[
        "--namespace",
        "team-agree",
        "create",
        "agree",
        "--no-connect",
        "-o",
        "json",
        "--timeout",
        "30s",
    ]);
    created.code(0);
    let listed = env.vc(&["--namespace", "team-agree", "list", "-o", "json"]);
    listed.code(0);
    let listed: Value = serde_json::from_str(&listed.stdout).expect("JSON on stdout");
    assert_eq!(listed[0]["status"], "Running", "{listed:#}");
}

#[test]
fn create_falls_back_to_the_kubelet_without_the_certificate_secret() {
    let env = Env::new();
    let api = VirtualApi::start("inside-slow");
    // No `<name>-certs` (an engine that keeps it elsewhere): pod Ready and `vc-<name>` decide.
    env.fake.set_port_forward_target("vc-slow", "slow-0", 8443, api.addr());
    let namespace = "vc-slow".to_string();
    let secret = api.pki.engine_secret(&namespace, "slow");
    env.fake.set_engine_secret(false);
    let created = std::thread::scope(|scope| {
        scope.spawn(|| {
            let ready = eventually(Duration::from_secs(20), || {
                env.fake.get("pods", "vc-slow", "slow-0").is_some_and(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
            });
            if ready {
                env.fake.put(secret).expect("engine Secret");
            }
        });
        env.vc(&["create", "slow", "-o", "json", "--timeout", "30s"])
    });
    created.code(0);
    assert_eq!(created.json()["phase"], "Running");
    let listed = env.kubectl(&env.sandbox.kubeconfig(), &["get", "namespaces", "-o", "name"]);
    listed.code(0);
    assert!(listed.stdout.contains("namespace/inside-slow"), "{}", listed.stdout);
}

#[test]
fn create_writes_the_engines_certificates_before_its_start() {
    let env = Env::new();
    env.vc(&["create", "pki", "--no-wait"]).code(0);
    let secret = env.fake.get("secrets", "vc-pki", "pki-certs").expect("the certificate Secret");
    assert_eq!(secret["metadata"]["labels"]["app"], "vcluster");
    assert_eq!(secret["metadata"]["labels"]["vcluster-name"], "pki");
    let data = secret["data"].as_object().expect("data");
    assert_eq!(data.len(), 29, "{:?}", data.keys().collect::<Vec<_>>());
    let pem = STANDARD.decode(data["apiserver.crt"].as_str().expect("base64")).expect("base64");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("a PEM certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).expect("a certificate");
    let sans = cert.subject_alternative_name().expect("one").expect("SANs").value;
    let ips: Vec<String> = sans
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::IPAddress(b) => {
                Some(b.iter().map(u8::to_string).collect::<Vec<_>>().join("."))
            }
            _ => None,
        })
        .collect();
    assert_eq!(ips, ["10.96.0.1", "127.0.0.1"], "the host's first service address");
    // Applied before the control plane, so the engine finds it at its first look.
    let sts = env.fake.get("statefulsets", "vc-pki", "pki").expect("the StatefulSet");
    let created = |o: &Value| o["metadata"]["creationTimestamp"].as_str().unwrap_or("").to_string();
    assert!(created(&secret) <= created(&sts));
}
