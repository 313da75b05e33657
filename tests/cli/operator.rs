//! `vc operator`: the real binary reconciling VirtualCluster objects on the fake host.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Sandbox, VC, Vc, fake_host};

pub(crate) const RESOURCE: &str = "virtualclusters.vc.dev";

/// A running `vc operator run`, stopped with SIGTERM when dropped.
pub(crate) struct Operator {
    child: Child,
}

impl Operator {
    pub(crate) fn start(sandbox: &Sandbox, identity: &str, env: &[(&str, String)]) -> Operator {
        Self::start_with(sandbox, identity, &[], env)
    }

    fn start_with(
        sandbox: &Sandbox,
        identity: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Operator {
        let mut command = Command::new(VC);
        command
            .args(["operator", "run", "--identity", identity, "--lease-duration", "3s"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", sandbox.home())
            .env("KUBECONFIG", sandbox.kubeconfig())
            .env("XDG_STATE_HOME", sandbox.state())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        Operator { child: command.spawn().expect("start vc operator run") }
    }

    /// Stops it with SIGTERM and returns its exit code and log.
    pub(crate) fn stop(mut self) -> (Option<i32>, String) {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // The pid is our own child's, not yet reaped.
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            use std::io::Read;
            let _ = stderr.read_to_string(&mut log);
        }
        let code = self.child.wait().ok().and_then(|s| s.code());
        (code, log)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn install_crd(fake: &fakekube::FakeKube, sandbox: &Sandbox) {
    let run = Vc::new(sandbox).args(["operator", "crd", "-o", "json"]).run();
    run.code(0);
    fake.put(run.json()).expect("the CRD is stored");
}

pub(crate) fn virtual_cluster(namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "vc.dev/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec,
    })
}

/// Stores VirtualCluster `namespace/name` with `spec` and waits until its phase is Running.
pub(crate) fn declare_running(fake: &fakekube::FakeKube, namespace: &str, name: &str, spec: Value) {
    fake.put(virtual_cluster(namespace, name, spec)).expect("stored");
    wait_for("Running", Duration::from_secs(30), || {
        phase(fake, namespace, name).as_deref() == Some("Running")
    });
}

pub(crate) fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn phase(fake: &fakekube::FakeKube, namespace: &str, name: &str) -> Option<String> {
    fake.get(RESOURCE, namespace, name)?["status"]["phase"].as_str().map(str::to_string)
}

pub(crate) fn condition(object: &Value, type_: &str) -> Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

pub(crate) fn writes(fake: &fakekube::FakeKube) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch" | "other"))
        .filter(|r| !r.path.contains("/leases"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn a_virtual_cluster_is_applied_becomes_ready_reapplies_and_cascades_on_delete() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    let operator = Operator::start(&sandbox, "one", &[]);
    declare_running(&fake, "team", "dev", json!({ "ttl": "2h" }));
    let object = fake.get(RESOURCE, "team", "dev").expect("the object");
    assert_eq!(condition(&object, "Ready")["status"], "True", "{object:#}");
    assert_eq!(condition(&object, "Degraded")["status"], "False");
    assert_eq!(object["status"]["kubeconfigSecret"], "vc-dev");
    assert_eq!(object["status"]["observedGeneration"], object["metadata"]["generation"]);
    assert!(object["status"]["expiresAt"].is_string(), "{object:#}");
    assert_eq!(object["metadata"]["finalizers"], json!(["vc.dev/cleanup"]));
    let sts = fake.get("statefulsets", "team", "dev").expect("the control plane");
    assert_eq!(sts["metadata"]["ownerReferences"][0]["kind"], "VirtualCluster");
    assert_eq!(sts["metadata"]["ownerReferences"][0]["uid"], object["metadata"]["uid"]);
    assert!(fake.get("services", "team", "dev").is_some());
    // The engine's certificates are made by the operator, as by `vc create`, and owned too.
    let certs = fake.get("secrets", "team", "dev-certs").expect("the certificate Secret");
    assert_eq!(certs["metadata"]["ownerReferences"][0]["uid"], object["metadata"]["uid"]);
    assert!(certs["data"]["ca.crt"].is_string(), "{certs:#}");

    // A change of metadata only (a new resourceVersion, the same generation) is reconciled
    // with reads only.
    std::thread::sleep(Duration::from_millis(500));
    fake.clear_requests();
    let mut touched = fake.get(RESOURCE, "team", "dev").expect("the object");
    touched["metadata"]["annotations"] = json!({ "note": "touched" });
    fake.put(touched).expect("stored");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        fake.requests().iter().any(|r| r.path.contains("/statefulsets/dev")),
        "the touch was reconciled"
    );
    assert_eq!(writes(&fake), Vec::<String>::new(), "no write for an unchanged spec");

    // A spec change re-applies.
    let mut changed = fake.get(RESOURCE, "team", "dev").expect("the object");
    changed["spec"]["labels"] = json!({ "tier": "gold" });
    fake.put(changed).expect("stored");
    wait_for("the re-apply", Duration::from_secs(20), || {
        fake.get("statefulsets", "team", "dev")
            .and_then(|s| s["metadata"]["annotations"]["vc.dev/spec"].as_str().map(str::to_string))
            .is_some_and(|spec| spec.contains("gold"))
    });
    let kept = fake.get("secrets", "team", "dev-certs").expect("the certificate Secret");
    assert_eq!(kept["data"], certs["data"], "a re-apply keeps the keys the cluster runs on");

    // Deleting the object runs vc's delete path, then the object goes.
    fake.delete(RESOURCE, "team", "dev").expect("deleted");
    wait_for("the cascade", Duration::from_secs(30), || {
        fake.get(RESOURCE, "team", "dev").is_none()
            && fake.get("statefulsets", "team", "dev").is_none()
            && fake.list("persistentvolumeclaims", Some("team")).is_empty()
            && fake.get("services", "team", "dev").is_none()
            && fake.get("secrets", "team", "dev-certs").is_none()
    });
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("\"level\":\"info\""), "structured log lines: {log}");
}

#[test]
fn expiry_deletes_at_the_due_time_by_the_injected_clock() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    // The operator's clock starts 3 s before the hour is over.
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600 - 3);
    let operator = Operator::start(&sandbox, "one", &[("VC_NOW", start.to_string())]);
    declare_running(&fake, "ci", "pr-1", json!({ "ttl": "1h" }));
    let applied = Instant::now();
    wait_for("the expiry", Duration::from_secs(30), || fake.get(RESOURCE, "ci", "pr-1").is_none());
    assert!(fake.get("statefulsets", "ci", "pr-1").is_none(), "the cluster went with it");
    // Not before its time: the hour ended about 3 s after the operator started.
    assert!(applied.elapsed() >= Duration::from_millis(500), "deleted too early");
    drop(operator);
}

#[test]
fn a_second_cluster_in_a_namespace_and_a_failing_apply_are_degraded() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    let operator = Operator::start(&sandbox, "one", &[]);
    declare_running(&fake, "team", "first", json!({}));
    fake.put(virtual_cluster("team", "second", json!({}))).expect("stored");
    wait_for("Degraded", Duration::from_secs(20), || {
        phase(&fake, "team", "second").as_deref() == Some("Degraded")
    });
    let second = fake.get(RESOURCE, "team", "second").expect("the object");
    assert_eq!(condition(&second, "Degraded")["reason"], "NamespaceTaken", "{second:#}");
    assert!(fake.get("statefulsets", "team", "second").is_none(), "nothing applied");

    // The host refuses the control plane for a while: Degraded with the reason, then retried.
    fake.fail(Some("PATCH"), "/statefulsets/other", 500);
    fake.put(virtual_cluster("other", "other", json!({}))).expect("stored");
    wait_for("ApplyFailed", Duration::from_secs(20), || {
        fake.get(RESOURCE, "other", "other")
            .is_some_and(|o| condition(&o, "Degraded")["reason"] == "ApplyFailed")
    });
    fake.clear_faults();
    wait_for("the retry", Duration::from_secs(30), || {
        phase(&fake, "other", "other").as_deref() == Some("Running")
    });
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("reconcile failed"), "{log}");
}

#[test]
fn manifests_of_a_virtual_cluster_are_applied_inside_once_and_local_paths_refused() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    // The control plane's port 8443 is a TLS stand-in, whose admin kubeconfig the engine's
    // Secret holds.
    let api = crate::tls::VirtualApi::start("inside-dev");
    fake.set_engine_secret(false);
    fake.put(api.pki.engine_secret("team", "dev")).expect("the engine's kubeconfig Secret");
    fake.set_port_forward_target("team", "dev-0", 8443, api.addr());
    let operator = Operator::start(&sandbox, "one", &[]);

    // A path means nothing to the operator: refused with what to do, nothing applied.
    fake.put(virtual_cluster("team", "dev", json!({"manifests": ["k8s/app.yaml"]})))
        .expect("stored");
    wait_for("Degraded", Duration::from_secs(20), || {
        phase(&fake, "team", "dev").as_deref() == Some("Degraded")
    });
    let object = fake.get(RESOURCE, "team", "dev").expect("the object");
    let degraded = condition(&object, "Degraded");
    assert_eq!(degraded["reason"], "InvalidSpec", "{object:#}");
    let message = degraded["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(r#"spec.manifests[0] ("k8s/app.yaml") is a path"#), "{message}");
    assert!(message.contains("vc create --apply"), "{message}");
    assert!(fake.get("statefulsets", "team", "dev").is_none(), "nothing applied");

    // Inline YAML is applied inside once the control plane is ready, then Running.
    let mut object = fake.get(RESOURCE, "team", "dev").expect("the object");
    object["spec"] = json!({"manifests": [
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seeded\n  namespace: default\ndata:\n  answer: \"42\"\n"
    ]});
    fake.put(object).expect("stored");
    wait_for("Running", Duration::from_secs(30), || {
        phase(&fake, "team", "dev").as_deref() == Some("Running")
    });
    let seeded = api.inner.get("configmaps", "default", "seeded").expect("applied inside");
    assert_eq!(seeded["data"]["answer"], "42");
    let object = fake.get(RESOURCE, "team", "dev").expect("the object");
    assert_eq!(object["status"]["provisionedGeneration"], object["metadata"]["generation"]);
    assert_eq!(condition(&object, "Provisioned")["status"], "True", "{object:#}");
    assert!(object["status"]["timings"]["provisioned"].is_number(), "{object:#}");
    // Applied once per generation: later reconciles leave the inside alone.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(api.inner.count_requests("apply", "/configmaps/seeded"), 1);
    // A new generation that leaves the manifests as they were does not apply them again.
    let manifest = |answer: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seeded\n  namespace: default\ndata:\n  answer: \"{answer}\"\n"
        )
    };
    let respec = |spec: Value| {
        let mut object = fake.get(RESOURCE, "team", "dev").expect("the object");
        object["spec"] = spec;
        let stored = fake.put(object).expect("stored");
        let generation = stored["metadata"]["generation"].clone();
        wait_for("the new generation applied", Duration::from_secs(30), || {
            fake.get(RESOURCE, "team", "dev").is_some_and(|o| {
                o["status"]["observedGeneration"] == generation && o["status"]["phase"] == "Running"
            })
        });
    };
    respec(json!({"ttl": "2h", "manifests": [manifest("42")]}));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(api.inner.count_requests("apply", "/configmaps/seeded"), 1, "not applied again");
    // Changed manifests are applied again.
    respec(json!({"ttl": "2h", "manifests": [manifest("43")]}));
    wait_for("the changed manifest inside", Duration::from_secs(30), || {
        api.inner
            .get("configmaps", "default", "seeded")
            .is_some_and(|c| c["data"]["answer"] == "43")
    });
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("applied 1 object inside"), "{log}");
}

#[test]
fn two_operators_one_leader() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    let first = Operator::start(&sandbox, "first", &[]);
    let holder = |fake: &fakekube::FakeKube| {
        fake.get("leases", "vc-system", "vc-operator")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    wait_for("the lease", Duration::from_secs(20), || holder(&fake).as_deref() == Some("first"));
    let second = Operator::start(&sandbox, "second", &[]);
    declare_running(&fake, "team", "dev", json!({}));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(holder(&fake).as_deref(), Some("first"), "renewed, not taken over");
    // The leader stops cleanly and gives the Lease up; the standby takes it.
    let (code, first_log) = first.stop();
    assert_eq!(code, Some(0), "{first_log}");
    wait_for("the takeover", Duration::from_secs(20), || {
        holder(&fake).as_deref() == Some("second")
    });
    let (code, second_log) = second.stop();
    assert_eq!(code, Some(0), "{second_log}");
    assert!(second_log.contains("another replica holds the Lease"), "{second_log}");
    assert!(!second_log.contains("team/dev"), "the standby reconciled nothing: {second_log}");
}

#[test]
fn install_applies_and_uninstall_refuses_while_clusters_exist() {
    let (fake, sandbox) = fake_host();
    Vc::new(&sandbox)
        .args(["operator", "install", "--image", "registry.example/vc:1"])
        .run()
        .code(0);
    assert!(fake.get("customresourcedefinitions", "", RESOURCE).is_some());
    let deployment = fake.get("deployments", "vc-system", "vc-operator").expect("the Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/vc:1"
    );
    assert_eq!(deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true);
    let role = fake.get("clusterroles", "", "vc-operator").expect("the ClusterRole");
    assert!(role["rules"].to_string().contains("virtualclusters/status"), "{role:#}");
    assert!(fake.get("clusterrolebindings", "", "vc-operator").is_some());
    assert!(fake.get("roles", "vc-system", "vc-operator").is_some());

    fake.put(virtual_cluster("team", "dev", json!({}))).expect("stored");
    let refused = Vc::new(&sandbox).args(["operator", "uninstall", "--yes"]).run();
    refused.code(6);
    assert!(
        refused.stderr.contains("team/dev") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert!(fake.get("deployments", "vc-system", "vc-operator").is_some(), "nothing removed");

    fake.remove_now(RESOURCE, "team", "dev");
    let unconfirmed = Vc::new(&sandbox).args(["operator", "uninstall"]).run();
    unconfirmed.code(2);
    assert!(unconfirmed.stderr.contains("--yes"), "{}", unconfirmed.stderr);
    Vc::new(&sandbox).args(["operator", "uninstall", "--yes"]).run().code(0);
    assert!(fake.get("deployments", "vc-system", "vc-operator").is_none());
    assert!(fake.get("clusterroles", "", "vc-operator").is_none());
    assert!(fake.get("customresourcedefinitions", "", RESOURCE).is_none());
}

#[test]
fn install_refuses_a_bad_image_before_contacting_the_host() {
    let sandbox = Sandbox::new();
    let run = Vc::new(&sandbox).args(["operator", "install", "--image", "Bad Image"]).run();
    run.code(2);
    assert!(run.stderr.contains("invalid image reference"), "{}", run.stderr);
}

/// One GET; retried for a few seconds while the operator's listener is not up yet.
fn http_get(address: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = std::net::TcpStream::connect(address).and_then(|mut stream| {
            write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        });
        match attempt {
            Ok(response) if response.starts_with("HTTP/1.1") => return response,
            other => assert!(Instant::now() < deadline, "GET {path}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn health_readiness_and_metrics_are_served() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let address = port.to_string();
    let operator = Operator::start_with(&sandbox, "one", &["--metrics-address", &address], &[]);
    declare_running(&fake, "team", "dev", json!({}));
    assert!(http_get(port, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(port, "/readyz").starts_with("HTTP/1.1 200"));
    let metrics = http_get(port, "/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("vc_operator_reconciles_total ") >= 1.0, "{metrics}");
    assert_eq!(value("vc_operator_reconcile_errors_total "), 0.0, "{metrics}");
    assert_eq!(value("vc_operator_clusters{phase=\"Running\"} "), 1.0, "{metrics}");
    assert_eq!(value("vc_operator_leader "), 1.0, "{metrics}");
    assert!(metrics.contains("vc_operator_reconcile_duration_seconds_bucket{le=\"+Inf\"}"));
    let (code, _) = operator.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn the_fake_refuses_bad_specs_by_the_generated_schema() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    fake.put(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "team" } }))
        .expect("the namespace");
    let create = |spec: Value| {
        let manifest = virtual_cluster("team", "dev", spec).to_string();
        let mut child = Command::new("kubectl")
            .args(["create", "-f", "-"])
            .env("KUBECONFIG", sandbox.kubeconfig())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl must be installed");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(manifest.as_bytes()).expect("write");
        }
        child.wait_with_output().expect("kubectl")
    };
    for (spec, expected) in [
        (json!({ "ttl": "2 hours" }), "spec.ttl"),
        (json!({ "kubernetesVersion": "latest" }), "spec.kubernetesVersion"),
        (json!({ "quota": { "hard": { "cpu": "lots" } } }), "spec.quota.hard.cpu"),
        (json!({ "paused": "yes" }), "spec.paused"),
        (json!({ "paused": true, "persistence": false }), "delete it instead of pausing it"),
    ] {
        let refused = create(spec.clone());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{spec} was accepted");
        assert!(stderr.contains("is invalid") && stderr.contains(expected), "{spec}: {stderr}");
    }
    assert!(fake.get(RESOURCE, "team", "dev").is_none(), "nothing stored");
    let accepted = create(json!({ "ttl": "2h", "labels": { "team": "a" } }));
    assert!(accepted.status.success(), "{}", String::from_utf8_lossy(&accepted.stderr));
}

#[test]
fn the_cli_marks_a_virtual_clusters_cluster_and_deletes_through_the_object() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    let operator = Operator::start(&sandbox, "one", &[]);
    declare_running(&fake, "team", "dev", json!({ "ttl": "2h" }));

    // Listed and described as the VirtualCluster's, from the listed StatefulSet alone.
    fake.clear_requests();
    let listed = Vc::new(&sandbox).args(["list", "-o", "json"]).run();
    listed.code(0);
    let items = listed.json();
    let item = items.as_array().and_then(|i| i.iter().find(|i| i["name"] == "dev")).cloned();
    let item = item.unwrap_or_else(|| panic!("dev listed: {items:#}"));
    assert_eq!(item["madeBy"], "virtualCluster", "{item:#}");
    assert_eq!(item["virtualCluster"], "team/dev", "{item:#}");
    assert!(
        !fake.requests().iter().any(|r| r.path.contains("virtualclusters")),
        "list reads no VirtualCluster"
    );
    let table = Vc::new(&sandbox).args(["list"]).run();
    table.code(0);
    assert!(table.stdout.contains("dev (VirtualCluster)"), "{}", table.stdout);
    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run();
    described.code(0);
    let description = described.json();
    assert_eq!(description["madeBy"], "virtualCluster", "{description:#}");
    assert_eq!(description["virtualCluster"], "team/dev", "{description:#}");
    let text = Vc::new(&sandbox).args(["describe", "dev"]).run();
    text.code(0);
    assert!(
        text.stdout
            .contains("VirtualCluster team/dev (change it with: kubectl edit vcl dev -n team)"),
        "{}",
        text.stdout
    );

    // gc leaves it to the operator, even past its expiry.
    let later = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(3)).unwrap();
    let collected = Vc::new(&sandbox)
        .args(["gc", "--yes", "-o", "json"])
        .env("VC_NOW", later.to_string())
        .run();
    collected.code(0);
    assert_eq!(collected.json()["deleted"], json!([]), "{}", collected.stdout);
    assert!(fake.get("statefulsets", "team", "dev").is_some(), "gc left it alone");

    // delete removes the VirtualCluster first; its finalizer and the owner references
    // take the rest.
    let deleted = Vc::new(&sandbox).args(["delete", "dev", "--yes"]).run();
    deleted.code(0);
    assert!(deleted.stderr.contains("through its VirtualCluster team/dev"), "{}", deleted.stderr);
    let first = writes(&fake).into_iter().find(|w| w.starts_with("DELETE"));
    assert_eq!(
        first.as_deref(),
        Some("DELETE /apis/vc.dev/v1alpha1/namespaces/team/virtualclusters/dev"),
        "the VirtualCluster is deleted before anything under it"
    );
    assert!(fake.get(RESOURCE, "team", "dev").is_none(), "the VirtualCluster is gone");
    wait_for("the owned objects", Duration::from_secs(30), || {
        fake.get("statefulsets", "team", "dev").is_none()
            && fake.get("services", "team", "dev").is_none()
            && fake.list("persistentvolumeclaims", Some("team")).is_empty()
    });
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// The operator's clock, `VC_NOW` for a process started `ahead` of now, as a function that
/// gives its reading at any later moment (it advances with the monotonic clock).
fn operator_clock(ahead: jiff::SignedDuration) -> impl Fn() -> jiff::Timestamp {
    let (start, at) = (jiff::Timestamp::now() + ahead, Instant::now());
    move || start + jiff::SignedDuration::try_from(at.elapsed()).expect("a short test")
}

fn statefulset(fake: &fakekube::FakeKube, namespace: &str, name: &str) -> Value {
    fake.get("statefulsets", namespace, name).expect("the control plane")
}

/// A pod the engine synced out of the virtual cluster `cluster`.
fn synced_pod(namespace: &str, cluster: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"vcluster.loft.sh/managed-by": cluster, "vcluster.loft.sh/namespace": "default"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    })
}

#[test]
fn pause_and_resume_of_a_virtual_clusters_cluster_go_through_the_object() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    let operator = Operator::start(&sandbox, "one", &[]);
    declare_running(&fake, "team", "dev", json!({}));
    fake.put(synced_pod("team", "dev", "web-x-default-x-dev")).expect("a synced pod");

    fake.clear_requests();
    let paused = Vc::new(&sandbox).args(["pause", "dev"]).run();
    paused.code(0);
    assert!(
        paused.stderr.contains("paused virtual cluster \"dev\"")
            && paused.stderr.contains("1 workload pod removed"),
        "{}",
        paused.stderr
    );
    let object_patch = "PATCH /apis/vc.dev/v1alpha1/namespaces/team/virtualclusters/dev";
    let sts_patch = "PATCH /apis/apps/v1/namespaces/team/statefulsets/dev";
    let log = writes(&fake);
    let first = |what: &str| log.iter().position(|w| w == what);
    assert!(first(object_patch).is_some(), "the object is patched: {log:#?}");
    assert!(first(object_patch) < first(sts_patch), "object first, then its operator: {log:#?}");
    let object = fake.get(RESOURCE, "team", "dev").expect("the object");
    assert_eq!(object["spec"]["paused"], true, "{object:#}");
    assert_eq!(object["status"]["phase"], "Paused", "{object:#}");
    assert_eq!(condition(&object, "Ready")["reason"], "PausedBySpec", "{object:#}");
    let sts = statefulset(&fake, "team", "dev");
    assert_eq!(sts["spec"]["replicas"], 0);
    let notes = &sts["metadata"]["annotations"];
    assert_eq!(notes["loft.sh/paused"], "true", "the upstream CLI's marker: {notes:#}");
    assert_eq!(notes["loft.sh/paused-replicas"], "1");
    assert_eq!(notes["vc.dev/pause-reason"], "user");
    assert!(fake.get("pods", "team", "web-x-default-x-dev").is_none(), "synced pod removed");
    assert!(fake.get("pods", "team", "dev-0").is_none(), "control plane stopped");
    let listed = Vc::new(&sandbox).args(["list", "-o", "json"]).run().json();
    assert_eq!(listed[0]["status"], "Paused", "{listed:#}");
    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run().json();
    assert_eq!(described["pausedBy"], "spec.paused", "{described:#}");
    let again = Vc::new(&sandbox).args(["pause", "dev", "-o", "json"]).run();
    again.code(0);
    assert_eq!(again.json()["changed"], false, "{}", again.stdout);

    // A spec change while paused re-applies without starting the control plane.
    let mut changed = fake.get(RESOURCE, "team", "dev").expect("the object");
    changed["spec"]["labels"] = json!({ "tier": "gold" });
    fake.put(changed).expect("stored");
    wait_for("the re-apply", Duration::from_secs(20), || {
        statefulset(&fake, "team", "dev")["metadata"]["annotations"]["vc.dev/spec"]
            .as_str()
            .is_some_and(|spec| spec.contains("gold"))
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(statefulset(&fake, "team", "dev")["spec"]["replicas"], 0, "still paused");

    fake.clear_requests();
    let resumed = Vc::new(&sandbox).args(["resume", "dev"]).run();
    resumed.code(0);
    assert!(resumed.stderr.contains("is ready (resumed in"), "{}", resumed.stderr);
    assert!(writes(&fake).iter().any(|w| w == object_patch), "{:#?}", writes(&fake));
    let object = fake.get(RESOURCE, "team", "dev").expect("the object");
    assert!(object["spec"].get("paused").is_none(), "spec.paused cleared: {object:#}");
    assert_eq!(object["status"]["phase"], "Running", "{object:#}");
    let sts = statefulset(&fake, "team", "dev");
    assert_eq!(sts["spec"]["replicas"], 1);
    let notes = &sts["metadata"]["annotations"];
    for gone in ["loft.sh/paused", "loft.sh/paused-replicas", "vc.dev/paused-at"] {
        assert!(notes.get(gone).is_none(), "{gone} removed: {notes:#}");
    }

    // Without an operator holding the Lease, vc says so and writes nothing.
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
    fake.clear_requests();
    for args in [vec!["pause", "dev"], vec!["resume", "dev"], vec!["extend", "dev", "--ttl", "1h"]]
    {
        let refused = Vc::new(&sandbox).args(&args).run();
        refused.code(1);
        assert!(
            refused.stderr.contains("no operator holds the Lease vc-system/vc-operator")
                && refused.stderr.contains("kubectl edit vcl dev -n team"),
            "{args:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(writes(&fake), Vec::<String>::new(), "a refusal writes nothing");
}

#[test]
fn extend_moves_the_operators_timer_through_the_object() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    // The operator's clock starts 4 s before the hour is over.
    let clock = operator_clock(jiff::SignedDuration::from_secs(3600 - 4));
    let operator = Operator::start(&sandbox, "one", &[("VC_NOW", clock().to_string())]);
    let started = Instant::now();
    declare_running(&fake, "ci", "pr-1", json!({ "ttl": "1h" }));
    let old = fake.get(RESOURCE, "ci", "pr-1").expect("the object")["status"]["expiresAt"].clone();
    // 12 s after the operator started, by its clock.
    let until = clock() + jiff::SignedDuration::from_secs(12)
        - jiff::SignedDuration::try_from(started.elapsed()).expect("short");
    let extended = Vc::new(&sandbox)
        .args(["extend", "pr-1", "--until", &until.to_string(), "-o", "json"])
        .env("VC_NOW", clock().to_string())
        .run();
    extended.code(0);
    let result = extended.json();
    assert_eq!(result["previousExpiresAt"], old, "{result:#}");
    let object = fake.get(RESOURCE, "ci", "pr-1").expect("the object");
    assert_eq!(object["status"]["expiresAt"], result["expiresAt"], "{object:#}");
    let new: jiff::Timestamp =
        result["expiresAt"].as_str().expect("a time").parse().expect("RFC 3339");
    assert!(new >= until && new.duration_since(until).as_secs() < 2, "{new} for {until}");
    let ttl = object["spec"]["ttl"].as_str().expect("a ttl");
    assert!(ttl.starts_with("1h") && ttl != "1h", "spec.ttl rewritten from creation: {ttl}");
    assert_eq!(
        statefulset(&fake, "ci", "pr-1")["metadata"]["annotations"]["vc.dev/expires-at"],
        result["expiresAt"],
        "the record follows"
    );

    // The old expiry passes (4 s in) and the cluster stays; it goes at the new one (12 s in).
    while started.elapsed() < Duration::from_secs(8) {
        assert!(fake.get(RESOURCE, "ci", "pr-1").is_some(), "deleted at the old expiry");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for("the new expiry", Duration::from_secs(30), || {
        fake.get(RESOURCE, "ci", "pr-1").is_none()
    });
    assert!(started.elapsed() >= Duration::from_secs(11), "deleted early: {:?}", started.elapsed());
    assert!(fake.get("statefulsets", "ci", "pr-1").is_none(), "the cluster went with it");
    drop(operator);
}

#[test]
fn an_idle_virtual_cluster_sleeps_at_its_due_time_and_connect_wakes_it() {
    let env = crate::connect::Env::new();
    let (fake, sandbox) = (&env.fake, &env.sandbox);
    install_crd(fake, sandbox);
    // Its 30 minutes without a request end 5 s after the operator starts, by its clock.
    let clock = operator_clock(jiff::SignedDuration::from_secs(30 * 60 - 5));
    let operator = Operator::start(sandbox, "one", &[("VC_NOW", clock().to_string())]);
    let started = Instant::now();
    fake.put(virtual_cluster("team", "dev", json!({ "sleepAfter": "30m" }))).expect("stored");
    fake.put(virtual_cluster("busy", "busy", json!({}))).expect("stored");
    wait_for("Running", Duration::from_secs(30), || {
        phase(fake, "team", "dev").as_deref() == Some("Running")
            && phase(fake, "busy", "busy").as_deref() == Some("Running")
    });
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(phase(fake, "team", "dev").as_deref(), Some("Running"), "asleep too early");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for("the sleep", Duration::from_secs(20), || {
        phase(fake, "team", "dev").as_deref() == Some("Paused")
    });
    assert!(started.elapsed() >= Duration::from_secs(4), "asleep early: {:?}", started.elapsed());
    let object = fake.get(RESOURCE, "team", "dev").expect("the object");
    assert_eq!(condition(&object, "Ready")["reason"], "Idle", "{object:#}");
    assert!(object["spec"].get("paused").is_none(), "the desired state is unchanged");
    let sts = statefulset(fake, "team", "dev");
    assert_eq!(sts["spec"]["replicas"], 0);
    assert_eq!(sts["metadata"]["annotations"]["vc.dev/pause-reason"], "idle");
    assert_eq!(phase(fake, "busy", "busy").as_deref(), Some("Running"), "no limit, no sleep");
    let described = Vc::new(sandbox).args(["describe", "dev", "-o", "json"]).run().json();
    assert_eq!(described["pausedBy"], "operator (idle)", "{described:#}");
    // gc leaves it to the operator.
    let collected = Vc::new(sandbox).args(["gc", "--yes", "-o", "json"]).run();
    collected.code(0);
    assert_eq!(collected.json()["paused"], json!([]), "{}", collected.stdout);

    // A connect wakes it through the object, then connects as for any cluster.
    let api = crate::tls::VirtualApi::start("inside-dev");
    fake.set_port_forward_target("team", "dev-0", 8443, api.addr());
    fake.put(api.pki.engine_secret("team", "dev")).expect("engine Secret");
    fake.clear_requests();
    let woken = Vc::new(sandbox).args(["connect", "dev", "--no-switch"]).run();
    woken.code(0);
    assert!(woken.stderr.contains("waking it through VirtualCluster team/dev"), "{}", woken.stderr);
    let log = writes(fake);
    let object_patch = "PATCH /apis/vc.dev/v1alpha1/namespaces/team/virtualclusters/dev";
    assert_eq!(
        log.iter().find(|w| w.contains("/team/")).map(String::as_str),
        Some(object_patch),
        "the object is asked first: {log:#?}"
    );
    let sts = statefulset(fake, "team", "dev");
    assert_eq!(sts["spec"]["replicas"], 1);
    assert!(sts["metadata"]["annotations"].get("loft.sh/paused").is_none());
    wait_for("Running again", Duration::from_secs(20), || {
        phase(fake, "team", "dev").as_deref() == Some("Running")
            && fake
                .get(RESOURCE, "team", "dev")
                .is_some_and(|o| o["metadata"]["annotations"].get("vc.dev/wake").is_none())
    });
    Vc::new(sandbox).args(["disconnect", "dev"]).run().code(0);
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("woken on request"), "{log}");
}

#[test]
fn resume_through_the_object_restarts_the_forward_the_pause_stopped() {
    let env = crate::connect::Env::new();
    let (fake, sandbox) = (&env.fake, &env.sandbox);
    install_crd(fake, sandbox);
    let operator = Operator::start(sandbox, "one", &[]);
    fake.put(virtual_cluster("team", "dev", json!({}))).expect("stored");
    wait_for("Running", Duration::from_secs(30), || {
        phase(fake, "team", "dev").as_deref() == Some("Running")
    });
    let api = crate::tls::VirtualApi::start("inside-dev");
    fake.set_port_forward_target("team", "dev-0", 8443, api.addr());
    fake.put(api.pki.engine_secret("team", "dev")).expect("engine Secret");
    let connected = Vc::new(sandbox).args(["connect", "dev", "--no-switch", "-o", "json"]).run();
    connected.code(0);
    let port = connected.json()["localPort"].as_u64().expect("a local port");

    let paused = Vc::new(sandbox).args(["pause", "dev"]).run();
    paused.code(0);
    assert!(paused.stderr.contains("stopped its background forward"), "{}", paused.stderr);
    let resumed = Vc::new(sandbox).args(["resume", "dev", "-o", "json"]).run();
    resumed.code(0);
    let result = resumed.json();
    assert_eq!(result["changed"], true, "{result:#}");
    assert_eq!(result["localPort"].as_u64(), Some(port), "the same port: {result:#}");
    for phase in ["applying", "scheduled", "ready", "connected"] {
        assert!(result["timings"][phase].is_number(), "{phase}: {result:#}");
    }
    let listed = Vc::new(sandbox).args(["list", "-o", "json"]).run().json();
    assert_eq!(listed[0]["connected"], true, "{listed:#}");
    Vc::new(sandbox).args(["disconnect", "dev"]).run().code(0);
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn pausing_a_sleeping_virtual_cluster_keeps_it_paused_until_resumed() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    let clock = operator_clock(jiff::SignedDuration::from_secs(30 * 60 - 2));
    let operator = Operator::start(&sandbox, "one", &[("VC_NOW", clock().to_string())]);
    fake.put(virtual_cluster("team", "dev", json!({ "sleepAfter": "30m" }))).expect("stored");
    wait_for("the sleep", Duration::from_secs(30), || {
        fake.get(RESOURCE, "team", "dev").is_some_and(|o| {
            o["status"]["phase"] == "Paused" && condition(&o, "Ready")["reason"] == "Idle"
        })
    });
    let paused = Vc::new(&sandbox).args(["pause", "dev", "-o", "json"]).run();
    paused.code(0);
    assert_eq!(paused.json()["changed"], false, "it was asleep already: {}", paused.stdout);
    let object = fake.get(RESOURCE, "team", "dev").expect("the object");
    assert_eq!(object["spec"]["paused"], true);
    assert_eq!(condition(&object, "Ready")["reason"], "PausedBySpec", "{object:#}");
    let notes = statefulset(&fake, "team", "dev")["metadata"]["annotations"].clone();
    assert_eq!(notes["vc.dev/pause-reason"], "user", "no longer asleep: {notes:#}");
    // Paused on purpose now: connect does not wake it.
    let refused = Vc::new(&sandbox).args(["connect", "dev", "--timeout", "5s"]).run();
    refused.code(6);
    assert!(refused.stderr.contains("vc resume dev"), "{}", refused.stderr);
    let resumed = Vc::new(&sandbox).args(["resume", "dev", "-q"]).run();
    resumed.code(0);
    assert_eq!(phase(&fake, "team", "dev").as_deref(), Some("Running"));
    assert_eq!(statefulset(&fake, "team", "dev")["spec"]["replicas"], 1);
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
}
