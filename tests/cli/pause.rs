//! Pause / resume, expiry and gc as real processes against the fake API server: the upstream
//! CLI's annotations both ways, the forward back on its port, extend, gc over a mix of
//! clusters (dry run, the 403 fallback, two racing), and idle sleep with an injected clock.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::connect::{Env, assert_lists_virtual_namespaces};
use crate::support::{Run, Sandbox, Vc, fake_host as host};
use crate::tls::VirtualApi;

fn vc(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut args = args.to_vec();
    if args.first() == Some(&"create") {
        args.push("--no-connect");
    }
    Vc::new(sandbox).args(args).run()
}

/// vc with its clock moved `ahead` from now (`VC_NOW`).
fn vc_at(sandbox: &Sandbox, ahead: Duration, args: &[&str]) -> Run {
    Vc::new(sandbox).args(args).env("VC_NOW", later(ahead).to_string()).run()
}

fn later(ahead: Duration) -> Timestamp {
    Timestamp::now() + SignedDuration::try_from(ahead).unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

fn annotations(fake: &fakekube::FakeKube, ns: &str, name: &str) -> Value {
    fake.get("statefulsets", ns, name).expect("the StatefulSet")["metadata"]["annotations"].clone()
}

/// A pod the engine synced out of the virtual cluster.
fn synced_pod(ns: &str, cluster: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"vcluster.loft.sh/managed-by": cluster, "vcluster.loft.sh/namespace": "default"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    })
}

/// A control plane as the upstream vcluster CLI leaves it: no vc labels or record.
fn upstream_statefulset(ns: &str, name: &str, replicas: i64, annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations,
                     "labels": {"app": "vcluster", "release": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "vcluster", "release": name}},
                 "serviceName": format!("{name}-headless"),
                 "template": {"metadata": {"labels": {"app": "vcluster", "release": name}},
                              "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}}}
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    wait_within(Duration::from_secs(10), what, done);
}

fn wait_within(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pause_removes_synced_pods_keeps_data_and_resume_brings_it_back() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "dev", "-q"]).code(0);
    for pod in ["web-x-default-x-dev", "db-x-default-x-dev"] {
        fake.put(synced_pod("vc-dev", "dev", pod)).unwrap();
    }
    // Another cluster's synced pod in the same host namespace is none of this pause's business.
    fake.put(synced_pod("vc-dev", "other", "api-x-default-x-other")).unwrap();

    let paused = vc(&sandbox, &["pause", "dev"]);
    paused.code(0);
    assert!(paused.stderr.contains("paused virtual cluster \"dev\""), "{}", paused.stderr);
    assert!(paused.stderr.contains("2 workload pods removed"), "{}", paused.stderr);
    let sts = fake.get("statefulsets", "vc-dev", "dev").unwrap();
    assert_eq!(sts["spec"]["replicas"], 0);
    let notes = &sts["metadata"]["annotations"];
    assert_eq!(notes["loft.sh/paused"], "true");
    assert_eq!(notes["loft.sh/paused-replicas"], "1");
    assert_eq!(notes["vc.dev/pause-reason"], "user");
    let date = notes["loft.sh/paused-date"].as_str().unwrap();
    assert!(date.len() == 24 && date.ends_with('Z') && date.as_bytes()[19] == b'.', "{date}");
    assert!(notes["vc.dev/paused-at"].as_str().unwrap().parse::<Timestamp>().is_ok());
    assert!(fake.get("pods", "vc-dev", "dev-0").is_none(), "control plane stopped");
    assert!(fake.get("pods", "vc-dev", "web-x-default-x-dev").is_none());
    assert!(fake.get("pods", "vc-dev", "db-x-default-x-dev").is_none());
    assert!(fake.get("pods", "vc-dev", "api-x-default-x-other").is_some());
    assert!(fake.get("persistentvolumeclaims", "vc-dev", "data-dev-0").is_some(), "data kept");

    let listed = vc(&sandbox, &["list", "-o", "json"]).json();
    assert_eq!(listed[0]["status"], "Paused");
    assert_eq!(listed[0]["connected"], false);
    assert_eq!(listed[0]["pausedAt"], notes["vc.dev/paused-at"]);
    let described = vc(&sandbox, &["describe", "dev"]);
    assert!(described.stdout.contains("Paused:"), "{}", described.stdout);
    assert!(described.stdout.contains("by vc pause"), "{}", described.stdout);

    let again = vc(&sandbox, &["pause", "dev", "-o", "json"]);
    again.code(0);
    assert_eq!(again.json()["changed"], false);
    assert_eq!(annotations(&fake, "vc-dev", "dev")["vc.dev/paused-at"], notes["vc.dev/paused-at"]);
    let text = vc(&sandbox, &["pause", "dev"]);
    assert!(text.stderr.contains("already paused"), "{}", text.stderr);

    let refused = Vc::new(&sandbox).args(["connect", "dev", "--timeout", "5s"]).run();
    refused.code(6);
    assert!(refused.stderr.contains("vc resume dev"), "{}", refused.stderr);
    let upsert = vc(&sandbox, &["create", "dev", "--upsert"]);
    upsert.code(6);
    assert!(upsert.stderr.contains("resume it first"), "{}", upsert.stderr);

    let resumed = vc(&sandbox, &["resume", "dev"]);
    resumed.code(0);
    for phase in ["applying", "scheduled", "initialized", "apiserver", "ready"] {
        assert!(resumed.stderr.contains(phase), "phase {phase} shown: {}", resumed.stderr);
    }
    assert!(resumed.stderr.contains("is ready (resumed in"), "{}", resumed.stderr);
    let sts = fake.get("statefulsets", "vc-dev", "dev").unwrap();
    assert_eq!(sts["spec"]["replicas"], 1);
    let notes = &sts["metadata"]["annotations"];
    for gone in
        ["loft.sh/paused", "loft.sh/paused-replicas", "loft.sh/paused-date", "vc.dev/paused-at"]
    {
        assert!(notes.get(gone).is_none(), "{gone} removed: {notes}");
    }
    assert!(notes["vc.dev/last-activity"].is_string(), "a resume counts as activity");
    assert_eq!(vc(&sandbox, &["list", "-o", "json"]).json()[0]["status"], "Running");

    let twice = vc(&sandbox, &["resume", "dev", "-o", "json"]);
    twice.code(0);
    let twice = twice.json();
    assert_eq!(twice["changed"], false);
    assert_eq!(twice["phase"], "Running");
    assert!(twice["timings"]["ready"].is_number(), "{twice}");

    vc(&sandbox, &["pause", "nope"]).code(3);
    vc(&sandbox, &["resume", "nope"]).code(3);
}

#[test]
fn a_cluster_paused_by_the_upstream_cli_is_resumed_and_paused_the_same_way() {
    let (fake, sandbox) = host();
    fake.put(namespace("team")).unwrap();
    fake.put(upstream_statefulset(
        "team",
        "legacy",
        0,
        json!({"loft.sh/paused": "true", "loft.sh/paused-replicas": "2", "loft.sh/paused-date": "2026-11-30T08:00:00.000Z"}),
    ))
    .unwrap();
    let listed = vc(&sandbox, &["list", "-o", "json"]).json();
    assert_eq!(listed[0]["status"], "Paused");
    assert_eq!(listed[0]["madeBy"], "vcluster");
    assert_eq!(listed[0]["pausedAt"], "2026-11-30T08:00:00Z");
    let described = vc(&sandbox, &["describe", "legacy", "-o", "json"]).json();
    assert_eq!(described["pausedBy"], "vcluster CLI");

    // Its engine writes the kubeconfig Secret once it runs.
    fake.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vc-legacy", "namespace": "team"},
                    "data": {"config": ""}}))
    .unwrap();
    vc(&sandbox, &["resume", "legacy", "-q"]).code(0);
    let sts = fake.get("statefulsets", "team", "legacy").unwrap();
    assert_eq!(sts["spec"]["replicas"], 2, "the recorded replica count is restored");
    assert!(sts["metadata"]["annotations"].get("loft.sh/paused").is_none());
    assert!(sts["metadata"]["annotations"].get("loft.sh/paused-date").is_none());

    vc(&sandbox, &["pause", "legacy", "-q"]).code(0);
    let notes = annotations(&fake, "team", "legacy");
    assert_eq!(notes["loft.sh/paused"], "true");
    assert_eq!(notes["loft.sh/paused-replicas"], "2");
    assert!(fake.get("pods", "team", "legacy-0").is_none());
    assert!(fake.get("pods", "team", "legacy-1").is_none());
}

#[test]
fn resume_starts_the_forward_again_on_the_same_port() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    env.vc(&["connect", "dev"]).code(0);
    let before = env.forward("dev");
    let port = before["port"].as_u64().unwrap();

    let paused = env.vc(&["pause", "dev"]);
    paused.code(0);
    assert!(paused.stderr.contains("stopped its background forward"), "{}", paused.stderr);
    let listed = env.vc(&["list", "-o", "json"]).json();
    assert_eq!(listed[0]["connected"], false);
    let pid = before["pid"].as_u64().unwrap();
    // Gone, or a zombie nobody reaped yet (an empty command line).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(cmdline.is_empty(), "forwarder {pid} stopped");
    let text = std::fs::read_to_string(env.sandbox.kubeconfig()).unwrap();
    assert!(text.contains("vc-dev"), "the context stays: {text}");

    let resumed = env.vc(&["resume", "dev", "-o", "json"]);
    resumed.code(0);
    let result = resumed.json();
    assert_eq!(result["localPort"].as_u64(), Some(port));
    assert!(result["timings"]["connected"].is_number(), "{result}");
    assert_eq!(env.forward("dev")["port"].as_u64(), Some(port));
    let listed = env.vc(&["list", "-o", "json"]).json();
    assert_eq!(listed[0]["connected"], true);
    assert_eq!(listed[0]["localPort"].as_u64(), Some(port));
    let kubeconfig = env.sandbox.kubeconfig();
    assert_lists_virtual_namespaces(
        &env.kubectl(&kubeconfig, &["get", "ns", "-o", "name"]),
        "inside-dev",
    );
}

#[test]
fn a_running_forward_shows_unconnected_while_the_upstream_cli_has_the_cluster_paused() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.create("dev", &api);
    env.vc(&["connect", "dev"]).code(0);
    // What `vcluster pause dev` does: the annotations and zero replicas, forwarder untouched.
    let mut sts = env.fake.get("statefulsets", "vc-dev", "dev").unwrap();
    sts["metadata"]["annotations"]["loft.sh/paused"] = json!("true");
    sts["metadata"]["annotations"]["loft.sh/paused-replicas"] = json!("1");
    sts["spec"]["replicas"] = json!(0);
    env.fake.put(sts).unwrap();
    let listed = env.vc(&["list", "-o", "json"]).json();
    assert_eq!(listed[0]["status"], "Paused");
    assert_eq!(listed[0]["connected"], false);
}

#[test]
fn extend_moves_the_expiry_from_now() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "ci", "--ttl", "1h", "-q"]).code(0);
    let now = later(Duration::ZERO);
    let run = Vc::new(&sandbox)
        .args(["extend", "ci", "--ttl", "3h", "-o", "json"])
        .env("VC_NOW", now.to_string())
        .run();
    run.code(0);
    let expected = (now + SignedDuration::from_hours(3)).to_string();
    assert_eq!(run.json()["expiresAt"], expected.as_str());
    assert_eq!(annotations(&fake, "vc-ci", "ci")["vc.dev/expires-at"], expected.as_str());

    vc(&sandbox, &["extend", "ci", "--until", "2030-01-01T00:00:00Z", "-q"]).code(0);
    assert_eq!(annotations(&fake, "vc-ci", "ci")["vc.dev/expires-at"], "2030-01-01T00:00:00Z");
    // Re-applying the cluster keeps the later, extended expiry.
    vc(&sandbox, &["create", "ci", "--ttl", "1h", "--upsert", "-q"]).code(0);
    assert_eq!(annotations(&fake, "vc-ci", "ci")["vc.dev/expires-at"], "2030-01-01T00:00:00Z");
    let listed = vc(&sandbox, &["list"]);
    assert!(listed.stdout.contains("in "), "countdown: {}", listed.stdout);

    let past = vc(&sandbox, &["extend", "ci", "--until", "2020-01-01T00:00:00Z"]);
    past.code(2);
    assert!(past.stderr.contains("not in the future"), "{}", past.stderr);
    vc(&sandbox, &["extend", "ci", "--until", "tomorrow"]).code(2);
    vc(&sandbox, &["extend", "ci", "--ttl", "soon"]).code(2);
    vc(&sandbox, &["extend", "ci"]).code(2);
    vc(&sandbox, &["extend", "nope", "--ttl", "1h"]).code(3);
    assert_eq!(annotations(&fake, "vc-ci", "ci")["vc.dev/expires-at"], "2030-01-01T00:00:00Z");
}

#[test]
fn gc_deletes_only_expired_clusters_it_may_delete() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "old", "--ttl", "1h", "-q"]).code(0);
    vc(&sandbox, &["create", "live", "--ttl", "5h", "-q"]).code(0);
    vc(&sandbox, &["create", "forever", "-q"]).code(0);
    fake.put(namespace("team")).unwrap();
    fake.put(upstream_statefulset("team", "foreign", 1, json!({}))).unwrap();
    fake.put(namespace("shared")).unwrap();
    let expired_at = later(HOUR).to_string();
    fake.put(upstream_statefulset("shared", "tagged", 1, json!({"vc.dev/expires-at": expired_at})))
        .unwrap();
    let ahead = 2 * HOUR;

    // In two hours "old" and "tagged" are expired; "Expired" shows in the list.
    let listed = vc_at(&sandbox, ahead, &["list"]);
    assert!(listed.stdout.contains("Expired"), "{}", listed.stdout);

    let dry = vc_at(&sandbox, ahead, &["gc", "--dry-run", "-o", "json"]);
    dry.code(0);
    let plan = dry.json();
    let names = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&plan["deleted"]), ["tagged", "old"], "by namespace, then name");
    assert_eq!(plan["dryRun"], true);
    assert!(fake.get("statefulsets", "vc-old", "old").is_some(), "a dry run deletes nothing");
    let dry_text = vc_at(&sandbox, ahead, &["gc", "--dry-run"]);
    assert!(
        dry_text.stderr.contains("would delete virtual cluster \"old\""),
        "{}",
        dry_text.stderr
    );

    let unasked = vc_at(&sandbox, ahead, &["gc"]);
    unasked.code(2);
    assert!(unasked.stderr.contains("--yes"), "{}", unasked.stderr);
    assert!(fake.get("statefulsets", "vc-old", "old").is_some());

    let run = vc_at(&sandbox, ahead, &["gc", "--yes"]);
    run.code(0);
    assert!(run.stderr.contains("deleted virtual cluster \"old\""), "{}", run.stderr);
    assert!(run.stderr.contains("deleted virtual cluster \"tagged\""), "{}", run.stderr);
    assert!(fake.get("namespaces", "", "vc-old").is_none(), "its namespace went with it");
    assert!(fake.get("statefulsets", "shared", "tagged").is_none());
    assert!(fake.get("namespaces", "", "shared").is_some(), "a namespace vc did not make stays");
    for (ns, name) in [("vc-live", "live"), ("vc-forever", "forever"), ("team", "foreign")] {
        assert!(fake.get("statefulsets", ns, name).is_some(), "{name} kept");
    }

    let nothing = vc_at(&sandbox, ahead, &["gc"]);
    nothing.code(0);
    assert!(nothing.stderr.contains("No expired or idle"), "{}", nothing.stderr);
    // A day later "live" is expired too; the clusters without an expiry still never are.
    let day = vc_at(&sandbox, 24 * HOUR, &["gc", "--yes", "-o", "json"]);
    day.code(0);
    assert_eq!(names(&day.json()["deleted"]), ["live"]);
    assert!(fake.get("statefulsets", "vc-forever", "forever").is_some());
    assert!(fake.get("statefulsets", "team", "foreign").is_some());
}

#[test]
fn gc_falls_back_to_the_current_namespace_when_listing_everywhere_is_forbidden() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "here", "-n", "default", "--ttl", "1h", "-q"]).code(0);
    vc(&sandbox, &["create", "there", "--ttl", "1h", "-q"]).code(0);
    fake.forbid(Some("GET"), "/apis/apps/v1/statefulsets", "ci-user");
    fake.forbid(Some("GET"), "/apis/apps/v1/deployments", "ci-user");
    let run = vc_at(&sandbox, 2 * HOUR, &["gc", "--yes", "-o", "json"]);
    run.code(0);
    assert!(run.stderr.contains("collecting in namespace \"default\" only"), "{}", run.stderr);
    let result = run.json();
    assert_eq!(result["deleted"][0]["name"], "here");
    assert_eq!(result["deleted"].as_array().unwrap().len(), 1);
    assert!(fake.get("statefulsets", "default", "here").is_none());
    assert!(fake.get("statefulsets", "vc-there", "there").is_some(), "out of reach, untouched");
}

#[test]
fn two_gcs_racing_on_one_cluster_both_succeed_and_one_deletes() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "ci", "--ttl", "1h", "-q"]).code(0);
    // Both see the cluster before either deletes it.
    fake.delay(Some("DELETE"), "/api/v1/namespaces/vc-ci", Duration::from_millis(300));
    let now = later(2 * HOUR).to_string();
    let spawn = || {
        std::process::Command::new(crate::support::VC)
            .args(["gc", "--yes", "-o", "json"])
            .env("KUBECONFIG", sandbox.kubeconfig())
            .env("HOME", sandbox.home())
            .env("XDG_STATE_HOME", sandbox.state())
            .env("VC_NOW", &now)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start vc gc")
    };
    let (a, b) = (spawn(), spawn());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let mut deleted = 0;
    let mut gone = 0;
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let result: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        deleted += result["deleted"].as_array().unwrap().len();
        gone += result["gone"].as_array().unwrap().len();
    }
    assert_eq!((deleted, gone), (1, 1), "{outputs:?}");
    assert!(fake.get("namespaces", "", "vc-ci").is_none());
}

#[test]
fn idle_clusters_sleep_and_connect_wakes_them() {
    let env = Env::new();
    let api = VirtualApi::start("inside-dev");
    env.vc(&["create", "dev", "--no-connect", "--sleep-after", "30m"]).code(0);
    env.create("busy", &api);
    let at = |ahead: Duration, args: &[&str]| {
        Vc::new(&env.sandbox).args(args).env("VC_NOW", later(ahead).to_string()).run()
    };
    // "busy" (no idle limit) never sleeps; "dev" does once 30 minutes pass without a request.
    let early = at(10 * MINUTE, &["gc", "-o", "json"]);
    early.code(0);
    assert_eq!(early.json()["paused"], json!([]));
    let plan = at(31 * MINUTE, &["gc", "--dry-run", "-o", "json"]).json();
    assert_eq!(plan["paused"][0]["name"], "dev");
    assert_eq!(plan["paused"].as_array().unwrap().len(), 1);
    assert_eq!(env.fake.get("statefulsets", "vc-dev", "dev").unwrap()["spec"]["replicas"], 1);

    let slept = at(31 * MINUTE, &["gc", "--yes"]);
    slept.code(0);
    assert!(slept.stderr.contains("paused virtual cluster \"dev\""), "{}", slept.stderr);
    let notes = annotations(&env.fake, "vc-dev", "dev");
    assert_eq!(notes["loft.sh/paused"], "true");
    assert_eq!(notes["vc.dev/pause-reason"], "idle");
    let described = env.vc(&["describe", "dev", "-o", "json"]).json();
    assert_eq!(described["pausedBy"], "vc gc (idle)");
    assert_eq!(described["sleepAfter"], "30m");
    assert_eq!(env.fake.get("statefulsets", "vc-busy", "busy").unwrap()["spec"]["replicas"], 1);

    // A connect is the user coming back: it resumes the cluster first and says so.
    env.fake.set_port_forward_target("vc-dev", "dev-0", 8443, api.addr());
    env.fake.put(api.pki.engine_secret("vc-dev", "dev")).unwrap();
    let woken = env.vc(&["connect", "dev"]);
    woken.code(0);
    assert!(woken.stderr.contains("asleep"), "{}", woken.stderr);
    assert_eq!(env.fake.get("statefulsets", "vc-dev", "dev").unwrap()["spec"]["replicas"], 1);

    // Requests through the forward are recorded on the host, so the idle limit counts from them.
    // The resume recorded one before connect returned: only a later record is the forwarder's.
    let resumed = Timestamp::now();
    let kubeconfig = env.sandbox.kubeconfig();
    env.kubectl(&kubeconfig, &["get", "ns"]).code(0);
    // The forwarder looks every 5 s and writes at most once a minute: when its first write
    // (for connect's own check through it) came just before this request, the next one is due
    // a minute later.
    wait_within(Duration::from_secs(75), "the forwarder to record activity", || {
        annotations(&env.fake, "vc-dev", "dev")["vc.dev/last-activity"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t > resumed)
    });
}

#[test]
fn pause_and_resume_that_cannot_finish_time_out_with_exit_4() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "dev", "-q"]).code(0);
    // A synced pod a finalizer holds: it never goes.
    let mut stuck = synced_pod("vc-dev", "dev", "web-x-default-x-dev");
    stuck["metadata"]["finalizers"] = json!(["example.com/hold"]);
    fake.put(stuck).unwrap();
    let paused = vc(&sandbox, &["pause", "dev", "--timeout", "2s"]);
    paused.code(4);
    assert!(paused.stderr.contains("run vc pause dev again"), "{}", paused.stderr);
    assert_eq!(annotations(&fake, "vc-dev", "dev")["loft.sh/paused"], "true", "paused already");

    // Released, a second pause finishes the job without pausing twice.
    let mut pod = fake.get("pods", "vc-dev", "web-x-default-x-dev").unwrap();
    pod["metadata"]["finalizers"] = json!([]);
    fake.put(pod).unwrap();
    let again = vc(&sandbox, &["pause", "dev", "-o", "json"]);
    again.code(0);
    assert_eq!(again.json()["changed"], false);
    wait_for("the synced pod to go", || {
        fake.get("pods", "vc-dev", "web-x-default-x-dev").is_none()
    });

    fake.set_behaviour("dev", fakekube::PodBehaviour::NeverReady);
    let resumed = vc(&sandbox, &["resume", "dev", "--timeout", "2s"]);
    resumed.code(4);
    assert!(resumed.stderr.contains("did not become ready within 2s"), "{}", resumed.stderr);
    assert_eq!(fake.get("statefulsets", "vc-dev", "dev").unwrap()["spec"]["replicas"], 1);
}

#[test]
fn two_gcs_putting_one_idle_cluster_to_sleep_record_one_pause() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "dev", "--sleep-after", "30m", "-q"]).code(0);
    // Both read the StatefulSet before either writes: the second write's resourceVersion is
    // stale, so it reads again and finds the cluster paused.
    fake.delay(Some("PATCH"), "/statefulsets/dev", Duration::from_millis(300));
    let now = later(HOUR).to_string();
    let spawn = || {
        std::process::Command::new(crate::support::VC)
            .args(["gc", "--yes", "-o", "json"])
            .env("KUBECONFIG", sandbox.kubeconfig())
            .env("HOME", sandbox.home())
            .env("XDG_STATE_HOME", sandbox.state())
            .env("VC_NOW", &now)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start vc gc")
    };
    let (a, b) = (spawn(), spawn());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let (mut paused, mut gone) = (0, 0);
    for out in &outputs {
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let result: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        paused += result["paused"].as_array().unwrap().len();
        gone += result["gone"].as_array().unwrap().len();
    }
    assert_eq!((paused, gone), (1, 1), "{outputs:?}");
    let notes = annotations(&fake, "vc-dev", "dev");
    assert_eq!(notes["loft.sh/paused-replicas"], "1", "the replica count before the pause");
    assert_eq!(notes["vc.dev/pause-reason"], "idle");
}

#[test]
fn a_deployment_control_plane_pauses_and_resumes_with_its_etcd() {
    let (fake, sandbox) = host();
    fake.put(namespace("team")).unwrap();
    // The chart's deployed-etcd variant, made by the upstream CLI.
    fake.put(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ext", "namespace": "team", "labels": {"app": "vcluster", "release": "ext"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "vcluster", "release": "ext"}},
                 "template": {"metadata": {"labels": {"app": "vcluster", "release": "ext"}},
                              "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}}}
    }))
    .unwrap();
    let mut etcd = upstream_statefulset("team", "ext-etcd", 3, json!({}));
    let labels = json!({"app": "vcluster-etcd", "release": "ext"});
    etcd["metadata"]["labels"] = labels.clone();
    etcd["spec"]["selector"]["matchLabels"] = labels.clone();
    etcd["spec"]["template"]["metadata"]["labels"] = labels;
    fake.put(etcd).unwrap();

    vc(&sandbox, &["pause", "ext", "-n", "team", "-q"]).code(0);
    let deployment = fake.get("deployments", "team", "ext").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 0);
    assert_eq!(deployment["metadata"]["annotations"]["loft.sh/paused"], "true");
    let etcd = fake.get("statefulsets", "team", "ext-etcd").unwrap();
    assert_eq!(etcd["spec"]["replicas"], 0);
    assert_eq!(etcd["metadata"]["annotations"]["loft.sh/paused-replicas"], "3");
    assert_eq!(vc(&sandbox, &["list", "-n", "team", "-o", "json"]).json()[0]["status"], "Paused");

    let resumed = vc(&sandbox, &["resume", "ext", "-n", "team", "--timeout", "20s"]);
    resumed.code(0);
    assert!(resumed.stderr.contains("is ready"), "{}", resumed.stderr);
    assert_eq!(fake.get("deployments", "team", "ext").unwrap()["spec"]["replicas"], 1);
    let etcd = fake.get("statefulsets", "team", "ext-etcd").unwrap();
    assert_eq!(etcd["spec"]["replicas"], 3);
    assert!(etcd["metadata"]["annotations"].get("loft.sh/paused").is_none());
}

#[test]
fn an_ephemeral_cluster_is_never_paused_and_takes_no_idle_limit() {
    let (fake, sandbox) = host();
    let refused = vc(&sandbox, &["create", "tmp", "--ephemeral", "--sleep-after", "30m"]);
    refused.code(2);
    assert!(refused.stderr.contains("drop one of the two"), "{}", refused.stderr);
    assert!(fake.get("namespaces", "", "vc-tmp").is_none(), "nothing applied");

    vc(&sandbox, &["create", "tmp", "--ephemeral", "-q"]).code(0);
    let writes_before = fake.requests().iter().filter(|r| r.method != "GET").count();
    let paused = vc(&sandbox, &["pause", "tmp"]);
    paused.code(6);
    assert!(paused.stderr.contains("created with --ephemeral"), "{}", paused.stderr);
    assert!(paused.stderr.contains("vc delete tmp"), "{}", paused.stderr);
    let writes_after = fake.requests().iter().filter(|r| r.method != "GET").count();
    assert_eq!(writes_before, writes_after, "a refused pause writes nothing");
    assert_eq!(fake.get("statefulsets", "vc-tmp", "tmp").unwrap()["spec"]["replicas"], 1);
}
