//! What a real host does that a lenient fake would hide: permanent failures that must end a
//! create at once, a host that accepts connections and never answers, and the namespace
//! fallback of a user who may not list every namespace.

use std::time::{Duration, Instant};

use fakekube::{PodBehaviour, PolicyRule, User, rbac};
use serde_json::json;

use crate::support::{Run, Sandbox, Vc, fake_host as host};

/// Creates `dev` without connecting; `--timeout 60s` unless `extra` sets one.
fn create(sandbox: &Sandbox, extra: &[&str]) -> (Run, Duration) {
    let mut args = vec!["create", "dev", "--no-connect"];
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "60s"]);
    }
    args.extend_from_slice(extra);
    let started = Instant::now();
    let run = Vc::new(sandbox).args(args).run();
    (run, started.elapsed())
}

#[test]
fn permanent_container_errors_end_the_wait_at_once() {
    for reason in ["InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull"] {
        let (fake, sandbox) = host();
        fake.set_behaviour(
            "dev",
            PodBehaviour::ImagePullFailure {
                reason: reason.to_string(),
                message: format!("the kubelet says {reason}"),
            },
        );
        let (run, took) = create(&sandbox, &[]);
        run.code(1);
        assert!(run.stderr.contains(reason), "{reason}: {}", run.stderr);
        assert!(took < Duration::from_secs(20), "{reason}: waited {took:?}");
    }
}

#[test]
fn image_pull_backoff_keeps_waiting_and_is_shown() {
    let (fake, sandbox) = host();
    fake.set_default_behaviour(PodBehaviour::image_pull_failure());
    let (run, _) = create(&sandbox, &["--timeout", "7s"]);
    run.code(4);
    assert!(run.stderr.contains("ImagePullBackOff"), "{}", run.stderr);
}

#[test]
fn an_engine_that_repeats_a_configuration_error_fails_fast() {
    let (fake, sandbox) = host();
    let line = "2026-12-01 10:00:00\tERROR\tsetup\tthere is already a virtual cluster in namespace team; creating multiple virtual clusters inside the same namespace is not supported";
    fake.set_behaviour(
        "dev",
        PodBehaviour::crash_loop(&["2026-12-01 09:59:59\tINFO\tstarting", line]),
    );
    let (run, took) = create(&sandbox, &[]);
    run.code(1);
    assert!(run.stderr.contains("there is already a virtual cluster"), "{}", run.stderr);
    assert!(took < Duration::from_secs(20), "waited {took:?}");
}

#[test]
fn a_crash_loop_without_an_error_line_waits_out_the_timeout() {
    let (fake, sandbox) = host();
    fake.set_behaviour(
        "dev",
        PodBehaviour::crash_loop(&["panic: runtime error: index out of range"]),
    );
    let (run, _) = create(&sandbox, &["--timeout", "3s"]);
    run.code(4);
    assert!(run.stderr.contains("CrashLoopBackOff"), "{}", run.stderr);
}

#[test]
fn a_control_plane_refused_by_the_quota_fails_fast() {
    let (_fake, sandbox) = host();
    // Less CPU than the control-plane pod requests: admission refuses the pod every time.
    let (run, took) = create(&sandbox, &["--quota", "requests.cpu=100m"]);
    run.code(1);
    assert!(run.stderr.contains("exceeded quota"), "{}", run.stderr);
    assert!(took < Duration::from_secs(20), "waited {took:?}");
}

#[test]
fn a_host_that_never_answers_ends_at_the_deadline() {
    // Accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.kubeconfig().parent().unwrap()).unwrap();
    std::fs::write(
        sandbox.kubeconfig(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mute\n  cluster:\n    server: http://{address}\ncontexts:\n- name: mute\n  context:\n    cluster: mute\n    user: mute\ncurrent-context: mute\nusers:\n- name: mute\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    for args in [
        &["create", "dev", "--no-connect", "--timeout", "3s"][..],
        &["delete", "dev", "--yes", "--timeout", "3s"],
        &["connect", "dev", "--timeout", "3s"],
    ] {
        let started = Instant::now();
        let run = Vc::new(&sandbox).args(args).run();
        let took = started.elapsed();
        run.code(5);
        assert!(run.stderr.contains(&address.to_string()), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("no answer within 3s"), "{args:?}: {}", run.stderr);
        assert!(took < Duration::from_secs(8), "{args:?} took {took:?}");
    }
}

#[test]
fn commands_find_a_cluster_in_the_contexts_namespace_without_cluster_wide_rights() {
    let (fake, sandbox) = host();
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))
        .unwrap();
    Vc::new(&sandbox).args(["create", "tenant1", "-n", "team", "--no-connect", "-q"]).run().code(0);
    // The context's namespace is team, and listing StatefulSets everywhere is forbidden.
    let config = std::fs::read_to_string(sandbox.kubeconfig()).unwrap();
    std::fs::write(
        sandbox.kubeconfig(),
        config.replace("    user: kind-host\n", "    user: kind-host\n    namespace: team\n"),
    )
    .unwrap();
    fake.forbid(Some("GET"), "/apis/apps/v1/statefulsets", "team-admin");
    let described = Vc::new(&sandbox).args(["describe", "tenant1", "-o", "json"]).run();
    described.code(0);
    assert_eq!(described.json()["namespace"], "team");

    // Where it is forbidden to look, the error says to pass -n.
    fake.forbid(Some("GET"), "/apis/apps/v1/namespaces/team/statefulsets", "team-admin");
    let refused = Vc::new(&sandbox).args(["describe", "tenant1"]).run();
    refused.code(5);
    assert!(refused.stderr.contains("-n NAMESPACE"), "{}", refused.stderr);

    fake.clear_faults();
    fake.forbid(Some("GET"), "/apis/apps/v1/statefulsets", "team-admin");
    let deleted = Vc::new(&sandbox).args(["delete", "tenant1", "--yes"]).run();
    deleted.code(0);
    assert!(fake.get("statefulsets", "team", "tenant1").is_none());
    assert!(fake.get("namespaces", "", "team").is_some(), "the user's namespace stays");
}

#[test]
fn a_namespace_admin_is_told_the_missing_grant_then_creates_with_it() {
    let (fake, sandbox) = host();
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))
        .unwrap();
    fake.act_as(User::new("team-admin").allow("team", rbac::admin_rules()));
    fake.clear_requests();
    let refused = Vc::new(&sandbox).args(["create", "tenant1", "-n", "team", "--no-connect"]).run();
    refused.code(5);
    for needle in [
        "pods/status",
        "pods/ephemeralcontainers",
        "endpointslices",
        "nothing was applied",
        "vc rbac team --user",
    ] {
        assert!(refused.stderr.contains(needle), "{needle}: {}", refused.stderr);
    }
    let writes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| matches!(r.verb.as_str(), "create" | "apply" | "update" | "patch" | "delete"))
        .filter(|r| !r.path.contains("selfsubject"))
        .collect();
    assert!(writes.is_empty(), "nothing applied: {writes:?}");

    // The grant `vc rbac` prints is enough, as the host's own escalation checks judge it.
    let grant =
        Vc::new(&sandbox).args(["rbac", "team", "--user", "team-admin", "-o", "json"]).run();
    grant.code(0);
    let items = grant.json()["items"].clone();
    assert_eq!(items[0]["kind"], "Role");
    assert_eq!(items[1]["subjects"][0]["name"], "team-admin");
    let mut rules = rbac::admin_rules();
    rules.extend(PolicyRule::parse(&items[0]));
    assert_eq!(items[2]["metadata"]["namespace"], "default");
    assert_eq!(items[3]["roleRef"]["name"], items[2]["metadata"]["name"]);
    let endpoints = PolicyRule::parse(&items[2]);
    fake.act_as(User::new("team-admin").allow("team", rules.clone()));
    // Without the endpoints grant: a warning and the fallback rule.
    let created = Vc::new(&sandbox).args(["create", "tenant1", "-n", "team", "--no-connect"]).run();
    created.code(0);
    assert!(
        created.stderr.contains("cannot read the host API server's endpoints"),
        "{}",
        created.stderr
    );
    // With it, the policies are pinned to the endpoints (only the kubernetes Endpoints is
    // readable; the EndpointSlice list stays forbidden).
    fake.act_as(User::new("team-admin").allow("team", rules).allow("default", endpoints));
    let upsert = Vc::new(&sandbox)
        .args(["create", "tenant1", "-n", "team", "--no-connect", "--upsert"])
        .run();
    upsert.code(0);
    assert!(!upsert.stderr.contains("cannot read the host API"), "{}", upsert.stderr);
    let cp =
        fake.get("networkpolicies", "team", "vc-cp-tenant1").expect("the control-plane policy");
    assert!(cp.to_string().contains("172.18.0.2/32"), "{cp}");
    assert!(fake.get("rolebindings", "team", "vc-tenant1").is_some());
    assert!(fake.get("statefulsets", "team", "tenant1").is_some());
}

#[test]
fn describe_leaves_out_start_up_warnings_of_a_running_cluster() {
    let (fake, sandbox) = host();
    Vc::new(&sandbox).args(["create", "dev", "--no-connect", "-q"]).run().code(0);
    let ready =
        fake.get("pods", "vc-dev", "dev-0").expect("the control-plane pod")["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == "Ready")
            .expect("a Ready condition")["lastTransitionTime"]
            .as_str()
            .expect("a transition time")
            .to_string();
    assert!(!ready.is_empty());
    for (name, reason, when) in [
        ("early", "Unhealthy", "2020-01-01T00:00:00Z"),
        ("late", "BackOff", "2999-01-01T00:00:00Z"),
    ] {
        fake.put(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("dev-0.{name}"), "namespace": "vc-dev"},
            "involvedObject": {"kind": "Pod", "name": "dev-0", "namespace": "vc-dev"},
            "type": "Warning", "reason": reason, "message": format!("{name} warning"),
            "lastTimestamp": when
        }))
        .unwrap();
    }
    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run();
    described.code(0);
    let warnings = described.json()["warnings"].to_string();
    assert!(warnings.contains("late warning"), "{warnings}");
    assert!(!warnings.contains("early warning"), "{warnings}");
}
