//! `vc doctor` against the fake API server: a healthy host, missing rights (the fake's RBAC),
//! no default StorageClass, an image no node can pull, a host that cannot be reached, JSON,
//! --skip-probes staying read-only, and every probe object removed afterwards.

use std::time::Duration;

use fakekube::{PolicyRule, User};
use serde_json::Value;

use crate::support::{Run, Sandbox, Vc, fake_host};

fn doctor(sandbox: &Sandbox, args: &[&str]) -> Run {
    Vc::new(sandbox).args(["doctor", "--timeout", "2s"]).args(args).run()
}

/// The line of check `name` (its status and message).
fn line<'a>(run: &'a Run, name: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(name)))
        .unwrap_or_else(|| panic!("no {name} line in\n{}", run.stdout))
}

fn json_checks(run: &Run) -> Vec<Value> {
    let value: Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    value["checks"].as_array().expect("checks").clone()
}

/// Waits until no object labelled by a doctor run is left (namespaces terminate a moment).
fn assert_probes_removed(fake: &fakekube::FakeKube) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = ["namespaces", "pods", "persistentvolumeclaims", "networkpolicies"]
            .iter()
            .flat_map(|r| fake.list(r, None))
            .filter(|o| !o["metadata"]["labels"]["vc.dev/doctor"].is_null())
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "probe objects left: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_healthy_fake_host_passes_and_the_network_probe_says_it_cannot_verify() {
    let (fake, sandbox) = fake_host();
    let run = doctor(&sandbox, &[]);
    run.code(0);
    assert!(line(&run, "host").starts_with("pass"), "{}", run.stdout);
    assert!(line(&run, "host").contains("Kubernetes v1.33.4"), "{}", run.stdout);
    assert!(line(&run, "host").contains("newer than the host, which is fine"), "{}", run.stdout);
    assert!(line(&run, "rights").starts_with("pass"), "{}", run.stdout);
    assert!(line(&run, "namespace creation").starts_with("pass"), "{}", run.stdout);
    let storage = line(&run, "storage");
    assert!(storage.starts_with("pass") && storage.contains("standard"), "{storage}");
    assert!(storage.contains("WaitForFirstConsumer") && storage.contains("bound"), "{storage}");
    assert!(line(&run, "images").starts_with("pass"), "{}", run.stdout);
    // The fake has no CNI and its pods never finish: it must not claim enforcement.
    let policies = line(&run, "network policies");
    assert!(policies.starts_with("warn") && policies.contains("could not verify"), "{policies}");
    assert!(line(&run, "kubeconfig").starts_with("pass"), "{}", run.stdout);
    assert!(line(&run, "forwards").starts_with("pass"), "{}", run.stdout);
    assert!(run.stderr.contains("probing in namespace vc-doctor-"), "{}", run.stderr);
    // The probes really ran: a claim, the image pod and the network pods were created.
    let created: Vec<String> =
        fake.requests().into_iter().filter(|r| r.verb == "create").map(|r| r.path).collect();
    for what in ["/namespaces", "/persistentvolumeclaims", "/pods"] {
        assert!(created.iter().any(|p| p.ends_with(what)), "{what} created: {created:?}");
    }
    assert_probes_removed(&fake);
}

#[test]
fn missing_rights_of_a_namespace_admin_are_named_with_the_grant() {
    let (fake, sandbox) = fake_host();
    fake.act_as(User::new("alice").allow("team", fakekube::rbac::admin_rules()));
    let run = doctor(&sandbox, &["-n", "team", "--skip-probes"]);
    run.code(1);
    let rights = line(&run, "rights");
    assert!(rights.starts_with("fail"), "{rights}");
    assert!(rights.contains("rights missing in namespace team"), "{rights}");
    assert!(rights.contains("\"pods/status\""), "{rights}");
    assert!(rights.contains("\"endpointslices\""), "{rights}");
    assert!(
        run.stdout.contains("vc rbac team --user alice | kubectl apply -f -"),
        "{}",
        run.stdout
    );
    // A namespace admin may not list StatefulSets everywhere.
    assert!(line(&run, "cluster-wide list").starts_with("warn"), "{}", run.stdout);
    assert!(!run.stdout.contains("namespace creation"), "with -n it is not needed");
    assert!(run.stderr.contains("checks failed"), "{}", run.stderr);

    // Once the grant vc rbac prints is in place, the same check passes.
    let mut rules: Vec<PolicyRule> = fakekube::rbac::admin_rules();
    let grant = Vc::new(&sandbox).args(["rbac", "team", "--user", "alice", "-o", "json"]).run();
    grant.code(0);
    let list: Value = serde_json::from_str(&grant.stdout).expect("JSON");
    let role = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == "team")
        .expect("the Role in team")
        .clone();
    rules.extend(PolicyRule::parse(&role));
    fake.act_as(User::new("alice").allow("team", rules));
    let granted = doctor(&sandbox, &["-n", "team", "--skip-probes"]);
    granted.code(0);
    assert!(line(&granted, "rights").starts_with("pass"), "{}", granted.stdout);
}

#[test]
fn no_default_storage_class_fails_with_the_fix() {
    let (fake, sandbox) = fake_host();
    fake.remove_now("storageclasses", "", "standard");
    let run = doctor(&sandbox, &["--skip-probes"]);
    run.code(1);
    let storage = line(&run, "storage");
    assert!(
        storage.starts_with("fail") && storage.contains("no default StorageClass"),
        "{storage}"
    );
    assert!(
        run.stdout.contains("storageclass.kubernetes.io/is-default-class=true"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_image_no_node_can_pull_fails_with_the_kubelet_message_and_probes_are_removed() {
    let (fake, sandbox) = fake_host();
    fake.set_image_absent("ghcr.io/loft-sh/vcluster-oss:0.36.1");
    let run = doctor(&sandbox, &["-o", "json"]);
    run.code(1);
    let checks = json_checks(&run);
    let images = checks.iter().find(|c| c["name"] == "images").expect("images check");
    assert_eq!(images["status"], "fail");
    let message = images["message"].as_str().expect("message");
    assert!(message.contains("ghcr.io/loft-sh/vcluster-oss:0.36.1: ErrImagePull"), "{message}");
    assert!(message.contains("not found"), "{message}");
    assert!(!message.contains("kubernetes:v1.36.0"), "the other image is present: {message}");
    assert!(images["hint"].as_str().is_some_and(|h| h.contains("--engine-image")), "{images}");
    assert_probes_removed(&fake);
}

#[test]
fn json_report_has_every_check_with_a_status() {
    let (_fake, sandbox) = fake_host();
    let run = doctor(&sandbox, &["-o", "json", "--skip-probes"]);
    run.code(0);
    let value: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(value["ok"], true);
    let names: Vec<&str> = value["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "host",
            "rights",
            "namespace creation",
            "cluster-wide list",
            "storage",
            "network policies",
            "images",
            "kubeconfig",
            "state directory",
            "forwards"
        ]
    );
    for c in value["checks"].as_array().expect("checks") {
        assert!(
            ["pass", "warn", "fail", "skip"].contains(&c["status"].as_str().unwrap_or("")),
            "{c}"
        );
        assert!(c["message"].as_str().is_some_and(|m| !m.is_empty()), "{c}");
    }
    assert!(run.stderr.is_empty(), "nothing but the result: {}", run.stderr);
}

#[test]
fn skip_probes_writes_nothing_to_the_host() {
    let (fake, sandbox) = fake_host();
    fake.clear_requests();
    doctor(&sandbox, &["--skip-probes"]).code(0);
    let writes: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.verb != "get" && r.verb != "list" && r.verb != "other")
        .filter(|r| !r.path.contains("selfsubject"))
        .map(|r| format!("{} {} {}", r.verb, r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[test]
fn an_unreachable_host_fails_the_host_check_and_skips_the_rest() {
    let (_fake, sandbox) = fake_host();
    // Port 1: nothing listens there, and no parallel test can take it over (a port the fake
    // gives up can be reused by another test's fake at once).
    let kubeconfig = std::fs::read_to_string(sandbox.kubeconfig()).expect("read");
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("a server line")
        .to_string();
    std::fs::write(sandbox.kubeconfig(), kubeconfig.replace(&server, "http://127.0.0.1:1"))
        .expect("write");
    let run = doctor(&sandbox, &[]);
    run.code(1);
    let host = line(&run, "host");
    assert!(
        host.starts_with("fail") && host.contains("cannot reach the host API server"),
        "{host}"
    );
    assert!(line(&run, "rights").starts_with("skip"), "{}", run.stdout);
    assert!(line(&run, "kubeconfig").starts_with("pass"), "local checks still run: {}", run.stdout);
}

#[test]
fn stale_forward_state_is_reported_and_fix_removes_it() {
    let (_fake, sandbox) = fake_host();
    let dir = sandbox.state().join("vc").join("forwards");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let state = serde_json::json!({
        "pid": 999_999_999u32, "port": 18443, "hostContext": "kind-host",
        "hostServer": "http://127.0.0.1:1", "namespace": "vc-gone", "name": "gone",
        "started": "2026-01-01T00:00:00Z", "pidStartTime": "1",
    });
    let key = vc::forward::ForwardKey::new("http://127.0.0.1:1", "vc-gone", "gone");
    let file = vc::forward::ForwardStore::at(&dir).state_path(&key);
    std::fs::write(&file, state.to_string()).expect("write");
    let run = doctor(&sandbox, &["--skip-probes"]);
    run.code(0);
    let forwards = line(&run, "forwards");
    assert!(
        forwards.starts_with("warn")
            && forwards.contains("vc-gone/gone on port 18443 (not running)"),
        "{forwards}"
    );
    let fixed = doctor(&sandbox, &["--skip-probes", "--fix"]);
    fixed.code(0);
    assert!(line(&fixed, "forwards").contains("removed stale vc-gone/gone"), "{}", fixed.stdout);
    assert!(!file.exists(), "state file removed");
    let again = doctor(&sandbox, &["--skip-probes"]);
    assert!(line(&again, "forwards").starts_with("pass"), "{}", again.stdout);
}

#[test]
fn ctrl_c_during_the_probes_still_removes_them() {
    let (fake, sandbox) = fake_host();
    // The fake's client pods never finish, so the probes wait until the signal.
    let mut child = std::process::Command::new(crate::support::VC)
        .args(["doctor", "--timeout", "5m"])
        .env("KUBECONFIG", sandbox.kubeconfig())
        .env("HOME", sandbox.home())
        .env("XDG_STATE_HOME", sandbox.state())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start vc doctor");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fake.list("pods", None).iter().all(|p| p["metadata"]["labels"]["vc.dev/doctor"].is_null())
    {
        assert!(std::time::Instant::now() < deadline, "the probes never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted; the probe objects were removed"), "{stderr}");
    assert_probes_removed(&fake);
}
