//! Lifecycle scenarios: `vc create`, `list`, `describe` and `delete` as real processes against
//! the fake API server, including the ways a create can go wrong.

use std::time::Duration;

use fakekube::{FakeKube, PodBehaviour};
use serde_json::{Value, json};

use crate::support::{Run, Sandbox, Vc, fake_host as host};

/// Runs vc; a `create` here does not connect (connecting is covered in `connect.rs`).
fn vc(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut args = args.to_vec();
    if args.first() == Some(&"create") {
        args.push("--no-connect");
    }
    Vc::new(sandbox).args(args).run()
}

/// Starts vc in the background, with the sandbox's environment and piped output.
fn spawn_vc(sandbox: &Sandbox, args: &[&str]) -> std::process::Child {
    std::process::Command::new(crate::support::VC)
        .args(args)
        .env("KUBECONFIG", sandbox.kubeconfig())
        .env("HOME", sandbox.home())
        .env("XDG_STATE_HOME", sandbox.state())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start vc")
}

/// Polls `done` for up to five seconds.
fn wait_for(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_list_describe_delete() {
    let (fake, sandbox) = host();
    let created = vc(&sandbox, &["create", "dev", "--label", "team=web"]);
    created.code(0);
    assert!(created.stdout.is_empty(), "progress goes to stderr: {}", created.stdout);
    for phase in ["applying", "scheduled", "initialized", "apiserver", "ready"] {
        assert!(created.stderr.contains(phase), "phase {phase} shown: {}", created.stderr);
    }
    assert!(created.stderr.contains("virtual cluster \"dev\" is ready"), "{}", created.stderr);

    // What landed on the host: a namespace of its own, the record, isolation and quota.
    let ns = fake.get("namespaces", "", "vc-dev").expect("namespace vc-dev");
    assert_eq!(ns["metadata"]["labels"]["app.kubernetes.io/managed-by"], "vc");
    let sts = fake.get("statefulsets", "vc-dev", "dev").expect("StatefulSet dev");
    assert_eq!(
        sts["spec"]["selector"]["matchLabels"],
        json!({"app": "vcluster", "release": "dev"})
    );
    assert_eq!(sts["metadata"]["labels"]["team"], "web");
    let record: Value =
        serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap())
            .unwrap();
    assert_eq!(record["labels"]["team"], "web");
    assert!(fake.count("networkpolicies", Some("vc-dev")) >= 1);
    assert_eq!(fake.count("resourcequotas", Some("vc-dev")), 1);
    assert_eq!(fake.count("limitranges", Some("vc-dev")), 1);
    assert_eq!(fake.count("clusterroles", None), 0, "no ClusterRole by default");
    let managed = sts["metadata"]["managedFields"].as_array().unwrap();
    assert!(managed.iter().any(|m| m["manager"] == "vc" && m["operation"] == "Apply"));

    let listed = vc(&sandbox, &["list"]);
    listed.code(0);
    insta::assert_snapshot!("list-one", listed.transcript(&sandbox));

    let json = vc(&sandbox, &["list", "-o", "json"]).json();
    assert_eq!(json[0]["name"], "dev");
    assert_eq!(json[0]["status"], "Running");
    assert_eq!(json[0]["madeBy"], "vc");
    let names = vc(&sandbox, &["ls", "-o", "name", "-l", "team=web"]);
    assert_eq!(names.stdout, "dev\n");
    let none = vc(&sandbox, &["ls", "-o", "name", "-l", "team=db"]);
    assert_eq!(none.stdout, "");

    let described = vc(&sandbox, &["describe", "dev", "-o", "json"]);
    described.code(0);
    let d = described.json();
    assert_eq!(d["status"], "Running");
    assert_eq!(d["spec"]["labels"]["team"], "web");
    let kinds: Vec<&str> =
        d["objects"].as_array().unwrap().iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in ["StatefulSet", "Pod", "Service", "PersistentVolumeClaim", "NetworkPolicy"] {
        assert!(kinds.contains(&kind), "{kind} described: {kinds:?}");
    }
    assert!(d["quota"].as_array().is_some_and(|q| !q.is_empty()));

    let again = vc(&sandbox, &["create", "dev"]);
    again.code(6);
    assert!(again.stderr.contains("--upsert"), "{}", again.stderr);
    vc(&sandbox, &["create", "dev", "--upsert", "-q"]).code(0);

    let deleted = vc(&sandbox, &["delete", "dev", "--yes"]);
    deleted.code(0);
    assert!(fake.get("namespaces", "", "vc-dev").is_none(), "namespace gone after delete");
    assert!(fake.list("persistentvolumeclaims", None).is_empty(), "PVC gone with it");
    vc(&sandbox, &["describe", "dev"]).code(3);
    let empty = vc(&sandbox, &["list", "-o", "json"]);
    assert_eq!(empty.json(), json!([]));
}

#[test]
fn create_json_reports_phase_timings_only_on_stdout() {
    let (_fake, sandbox) = host();
    let run = vc(&sandbox, &["create", "ci", "--ttl", "2h", "-o", "json"]);
    run.code(0);
    let result = run.json();
    assert_eq!(result["name"], "ci");
    assert_eq!(result["namespace"], "vc-ci");
    assert_eq!(result["phase"], "Running");
    assert_eq!(result["kubeconfigSecret"], "vc-ci");
    assert!(result["expiresAt"].is_string());
    for phase in ["applying", "scheduled", "initialized", "apiserver", "ready"] {
        assert!(result["timings"][phase].is_number(), "timing {phase}: {result}");
    }
    let timings = result["timings"].as_object().expect("timings");
    assert_eq!(timings.len(), 5, "no connect, so no connected phase: {result}");
    let listed = vc(&sandbox, &["list", "-o", "json"]).json();
    assert_eq!(listed[0]["expiresAt"], result["expiresAt"]);
}

#[test]
fn dry_run_contacts_nothing() {
    let (fake, sandbox) = host();
    fake.clear_requests();
    let run = vc(&sandbox, &["create", "dev", "--dry-run", "-o", "json"]);
    run.code(0);
    let list = run.json();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> =
        list["items"].as_array().unwrap().iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds[0], "Namespace");
    assert!(kinds.contains(&"StatefulSet") && kinds.contains(&"NetworkPolicy"));
    assert!(fake.requests().is_empty(), "dry run sent {:?}", fake.requests());
    let yaml = vc(&sandbox, &["create", "dev", "--dry-run"]);
    yaml.code(0);
    assert!(yaml.stdout.starts_with("apiVersion: v1\nkind: List\n"), "{}", yaml.stdout);
}

#[test]
fn pending_pod_times_out_with_the_scheduling_message() {
    let (fake, sandbox) = host();
    fake.set_behaviour("slow", PodBehaviour::unschedulable());
    let run = vc(&sandbox, &["create", "slow", "--timeout", "2s"]);
    run.code(4);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: virtual cluster \"slow\" did not become ready within 2s"),
        "{last}"
    );
    assert!(last.contains("Insufficient cpu"), "{last}");
    assert!(last.contains("what was applied stays in namespace \"vc-slow\""), "{last}");
    assert!(fake.get("statefulsets", "vc-slow", "slow").is_some(), "objects kept");
}

#[test]
fn crash_loop_shows_the_last_log_lines_and_cleanup_removes_objects() {
    let (fake, sandbox) = host();
    fake.set_behaviour(
        "boom",
        PodBehaviour::crash_loop(&["starting syncer", "fatal: bad config key"]),
    );
    let run = vc(&sandbox, &["create", "boom", "--timeout", "2s", "--cleanup-on-failure"]);
    run.code(4);
    assert!(run.stderr.contains("CrashLoopBackOff"), "{}", run.stderr);
    assert!(run.stderr.contains("fatal: bad config key"), "{}", run.stderr);
    assert!(run.stderr.contains("deleted"), "{}", run.stderr);
    std::thread::sleep(Duration::from_millis(500));
    assert!(fake.get("statefulsets", "vc-boom", "boom").is_none());
}

#[test]
fn image_pull_failure_is_named() {
    let (fake, sandbox) = host();
    fake.set_behaviour("pull", PodBehaviour::image_pull_failure());
    let run = vc(&sandbox, &["create", "pull", "--timeout", "2s"]);
    run.code(4);
    assert!(run.stderr.contains("ImagePullBackOff"), "{}", run.stderr);
}

#[test]
fn forbidden_namespace_create_suggests_an_existing_namespace() {
    let (fake, sandbox) = host();
    fake.forbid(None, "/api/v1/namespaces/vc-dev", "dev-user");
    let run = vc(&sandbox, &["create", "dev"]);
    run.code(5);
    assert!(run.stderr.contains("--namespace"), "{}", run.stderr);
    assert!(run.stderr.contains("forbidden"), "{}", run.stderr);
    assert!(fake.get("statefulsets", "vc-dev", "dev").is_none(), "nothing else applied");
}

#[test]
fn shared_namespace_gets_no_quota_unless_asked() {
    let (fake, sandbox) = host();
    let missing = vc(&sandbox, &["create", "a", "-n", "team"]);
    missing.code(3);
    assert!(missing.stderr.contains("namespace \"team\" does not exist"), "{}", missing.stderr);
    for ns in ["team", "team-quota"] {
        fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    // Unrelated things already live in the shared namespace.
    fake.put(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app-settings", "namespace": "team", "labels": {"app": "web"}},
        "data": {"k": "v"}
    }))
    .unwrap();
    fake.put(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]}
    }))
    .unwrap();
    let before: Vec<Value> = ["configmaps", "pods"]
        .iter()
        .map(|kind| {
            fake.get(kind, "team", if *kind == "pods" { "web" } else { "app-settings" }).unwrap()
        })
        .collect();
    vc(&sandbox, &["create", "a", "-n", "team", "-q"]).code(0);
    assert_eq!(fake.count("resourcequotas", Some("team")), 0);
    vc(&sandbox, &["create", "b", "-n", "team-quota", "--quota", "cpu=2,memory=4Gi", "-q"]).code(0);
    assert_eq!(fake.count("resourcequotas", Some("team-quota")), 1);

    // One virtual cluster per namespace: a second is refused before any write.
    fake.clear_requests();
    let second = vc(&sandbox, &["create", "c", "-n", "team"]);
    second.code(6);
    assert!(second.stderr.contains("already holds virtual cluster \"a\""), "{}", second.stderr);
    let writes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch" | "other"))
        .filter(|r| !r.path.contains("/selfsubjectrulesreviews"))
        .collect();
    assert!(writes.is_empty(), "nothing written: {writes:?}");

    // What the engine synced out of cluster a.
    for (kind, api_version, extra) in [
        ("Pod", "v1", json!({"spec": {"containers": [{"name": "app", "image": "nginx"}]}})),
        ("ConfigMap", "v1", json!({"data": {"k": "v"}})),
    ] {
        let mut object = json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": "app-x-default-x-a", "namespace": "team", "labels": {"vcluster.loft.sh/managed-by": "a"}}
        });
        object.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        fake.put(object).unwrap();
    }

    // Deleting the cluster leaves the namespace and everything else in it untouched.
    fake.clear_requests();
    vc(&sandbox, &["delete", "a", "--yes"]).code(0);
    let deletes: Vec<String> =
        fake.requests().into_iter().filter(|r| r.verb == "delete").map(|r| r.path).collect();
    let at = |needle: &str| {
        deletes
            .iter()
            .position(|p| p.ends_with(needle))
            .unwrap_or_else(|| panic!("{needle} deleted: {deletes:?}"))
    };
    assert!(
        at("/statefulsets/a") < at("/pods/app-x-default-x-a"),
        "control plane stopped first: {deletes:?}"
    );
    assert!(at("/statefulsets/a") < at("/configmaps/app-x-default-x-a"), "{deletes:?}");
    assert!(fake.get("pods", "team", "a-0").is_none(), "the control-plane pod is gone");
    assert!(fake.get("namespaces", "", "team").is_some());
    assert!(fake.get("statefulsets", "team", "a").is_none());
    assert!(fake.get("persistentvolumeclaims", "team", "data-a-0").is_none(), "PVC removed");
    let labelled: Vec<String> = [
        "statefulsets",
        "services",
        "secrets",
        "serviceaccounts",
        "roles",
        "rolebindings",
        "networkpolicies",
        "configmaps",
        "persistentvolumeclaims",
    ]
    .iter()
    .flat_map(|kind| fake.list(kind, Some("team")))
    .filter(|o| {
        o["metadata"]["labels"]["vc.dev/cluster"] == "a"
            || o["metadata"]["labels"]["vcluster.loft.sh/managed-by"] == "a"
    })
    .map(|o| o["metadata"]["name"].to_string())
    .collect();
    assert!(labelled.is_empty(), "left behind: {labelled:?}");
    let after: Vec<Value> = ["configmaps", "pods"]
        .iter()
        .map(|kind| {
            fake.get(kind, "team", if *kind == "pods" { "web" } else { "app-settings" })
                .expect("untouched object still there")
        })
        .collect();
    // The fake's kubelet updates the pod's status; nothing else about it may change.
    for (b, a) in before.iter().zip(&after) {
        let name = &a["metadata"]["name"];
        assert_eq!(b["metadata"]["labels"], a["metadata"]["labels"], "{name}");
        assert_eq!(b["spec"], a["spec"], "{name}");
        assert_eq!(b["data"], a["data"], "{name}");
        assert!(a["metadata"]["deletionTimestamp"].is_null(), "{name} is being deleted");
    }
    assert!(fake.get("statefulsets", "team-quota", "b").is_some());
}

#[test]
fn delete_needs_yes_without_a_terminal_and_reports_missing_names() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "dev", "-q"]).code(0);
    let refused = vc(&sandbox, &["delete", "dev"]);
    refused.code(2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(fake.get("statefulsets", "vc-dev", "dev").is_some(), "nothing deleted");
    let missing = vc(&sandbox, &["delete", "nope", "--yes"]);
    missing.code(3);
    assert!(missing.stderr.contains("\"nope\" not found"), "{}", missing.stderr);
    vc(&sandbox, &["delete", "nope", "--yes", "--ignore-not-found"]).code(0);
}

#[test]
fn delete_by_selector_and_all() {
    let (fake, sandbox) = host();
    for (name, pr) in [("pr-1", "1"), ("pr-2", "2"), ("keep", "3")] {
        vc(&sandbox, &["create", name, "--label", &format!("pr={pr}"), "-q", "--no-wait"]).code(0);
    }
    let run = vc(&sandbox, &["delete", "-l", "pr in (1,2)", "--yes", "-o", "json"]);
    run.code(0);
    let mut deleted: Vec<String> =
        serde_json::from_str(&run.stdout).expect("JSON list of deleted names");
    deleted.sort();
    assert_eq!(deleted, ["pr-1", "pr-2"]);
    assert!(fake.get("statefulsets", "vc-keep", "keep").is_some());
    vc(&sandbox, &["delete", "--all", "--yes"]).code(0);
    assert_eq!(fake.count("statefulsets", None), 0);
}

#[test]
fn list_is_two_calls_and_shows_upstream_clusters() {
    let (fake, sandbox) = host();
    for i in 0..5 {
        vc(&sandbox, &["create", &format!("c{i}"), "-q", "--no-wait"]).code(0);
    }
    // A cluster made by the upstream vcluster CLI: labelled app=vcluster, not managed by vc.
    fake.put(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "legacy", "namespace": "team", "labels": {"app": "vcluster", "release": "legacy"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "vcluster", "release": "legacy"}},
                 "serviceName": "legacy-headless",
                 "template": {"metadata": {"labels": {"app": "vcluster", "release": "legacy"}},
                              "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}}}
    }))
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fake.clear_requests();
    let run = vc(&sandbox, &["list", "-o", "json"]);
    run.code(0);
    // Every request counts, not only LISTs: StatefulSets and Deployments, nothing else while
    // every cluster is ready.
    assert_eq!(fake.requests().len(), 2, "{:?}", fake.requests());
    let items = run.json();
    assert_eq!(items.as_array().unwrap().len(), 6);
    let legacy = items.as_array().unwrap().iter().find(|i| i["name"] == "legacy").unwrap();
    assert_eq!(legacy["madeBy"], "vcluster");
    let table = vc(&sandbox, &["list", "-n", "team"]);
    assert!(table.stdout.contains("legacy (vcluster)"), "{}", table.stdout);
    let refused = vc(&sandbox, &["delete", "legacy", "--yes"]);
    refused.code(2);
    assert!(refused.stderr.contains("vcluster delete legacy"), "{}", refused.stderr);
}

#[test]
fn ambiguous_name_needs_a_namespace() {
    let (fake, sandbox) = host();
    for ns in ["team-a", "team-b"] {
        fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
        vc(&sandbox, &["create", "dev", "-n", ns, "-q", "--no-wait"]).code(0);
    }
    let run = vc(&sandbox, &["describe", "dev"]);
    run.code(2);
    assert!(run.stderr.contains("team-a, team-b") && run.stderr.contains("-n"), "{}", run.stderr);
    vc(&sandbox, &["describe", "dev", "-n", "team-b", "-o", "name"]).code(0);
}

#[test]
fn list_falls_back_to_the_current_namespace_when_cluster_wide_list_is_forbidden() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "dev", "-q"]).code(0);
    fake.forbid(Some("GET"), "/apis/apps/v1/statefulsets", "dev-user");
    let run = vc(&sandbox, &["list", "-o", "json"]);
    run.code(0);
    // The context's namespace is `default`, where no cluster lives.
    assert_eq!(run.json(), json!([]));
}

#[test]
fn unauthorized_host_is_exit_5() {
    let (fake, sandbox) = host();
    fake.fail(None, "/apis/apps/v1", 401);
    let run = vc(&sandbox, &["list"]);
    run.code(5);
    assert!(run.stderr.contains("401 Unauthorized"), "{}", run.stderr);
}

#[test]
fn interrupt_during_create_says_what_exists() {
    let (fake, sandbox) = host();
    fake.set_behaviour("stuck", PodBehaviour::NeverReady);
    let child = spawn_vc(&sandbox, &["create", "stuck", "--timeout", "1m", "--no-connect"]);
    // Wait until the objects are applied, then interrupt.
    wait_for(|| fake.get("statefulsets", "vc-stuck", "stuck").is_some());
    std::thread::sleep(Duration::from_millis(200));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted") && stderr.contains("vc delete stuck"), "{stderr}");
}

#[test]
fn delete_keeps_a_namespace_another_cluster_lives_in() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "dev", "-q"]).code(0);
    // A second control plane the engine would refuse to start, as an older tool left it.
    fake.put(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "other", "namespace": "vc-dev", "labels": {"app": "vcluster", "release": "other"}},
        "spec": {
            "serviceName": "other-headless",
            "selector": {"matchLabels": {"app": "vcluster", "release": "other"}},
            "template": {
                "metadata": {"labels": {"app": "vcluster", "release": "other"}},
                "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}
            }
        }
    }))
    .unwrap();
    let run = vc(&sandbox, &["delete", "dev", "-n", "vc-dev", "--yes"]);
    run.code(0);
    assert!(run.stderr.contains("its objects in namespace vc-dev"), "{}", run.stderr);
    assert!(fake.get("namespaces", "", "vc-dev").is_some(), "the shared namespace stays");
    assert!(fake.get("statefulsets", "vc-dev", "dev").is_none());
    assert!(fake.get("statefulsets", "vc-dev", "other").is_some(), "the neighbour stays");
}

#[test]
fn create_never_takes_over_what_it_did_not_make() {
    let (fake, sandbox) = host();
    // A namespace of that name made by someone else.
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vc-web"}}))
        .unwrap();
    let run = vc(&sandbox, &["create", "web"]);
    run.code(6);
    assert!(run.stderr.contains("--namespace vc-web"), "{}", run.stderr);
    let ns = fake.get("namespaces", "", "vc-web").unwrap();
    assert!(ns["metadata"]["labels"].get("vc.dev/cluster").is_none(), "namespace not relabelled");

    // A StatefulSet of that name that is not a virtual cluster, even with --upsert.
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))
        .unwrap();
    fake.put(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "team", "labels": {"app": "postgres"}},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "postgres"}},
                 "template": {"metadata": {"labels": {"app": "postgres"}},
                              "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}}}
    }))
    .unwrap();
    let run = vc(&sandbox, &["create", "db", "-n", "team", "--upsert"]);
    run.code(6);
    assert!(run.stderr.contains("not a virtual cluster"), "{}", run.stderr);
    let db = fake.get("statefulsets", "team", "db").unwrap();
    assert_eq!(db["metadata"]["labels"], json!({"app": "postgres"}), "left untouched");

    // The same name in another namespace, without --namespace.
    vc(&sandbox, &["create", "api", "-n", "team", "-q", "--no-wait"]).code(0);
    let run = vc(&sandbox, &["create", "api"]);
    run.code(6);
    assert!(run.stderr.contains("already exists in namespace \"team\""), "{}", run.stderr);
    assert!(fake.get("namespaces", "", "vc-api").is_none());
}

#[test]
fn connect_to_a_paused_cluster_says_so() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "nap", "-q"]).code(0);
    let mut sts = fake.get("statefulsets", "vc-nap", "nap").unwrap();
    sts["spec"]["replicas"] = json!(0);
    fake.put(sts).unwrap();
    let listed = vc(&sandbox, &["list", "-o", "json"]).json();
    assert_eq!(listed[0]["status"], "Paused");
    let run = Vc::new(&sandbox).args(["connect", "nap", "--timeout", "5s"]).run();
    run.code(6);
    assert!(run.stderr.contains("paused"), "{}", run.stderr);
}

#[test]
fn bad_selector_is_refused_before_any_request() {
    let (fake, sandbox) = host();
    fake.clear_requests();
    let run = vc(&sandbox, &["list", "-l", "team in a"]);
    run.code(2);
    assert!(run.stderr.contains("invalid label selector"), "{}", run.stderr);
    assert!(fake.requests().is_empty(), "sent {:?}", fake.requests());
}

#[test]
fn create_rides_out_failed_and_dropped_watches() {
    let fake = FakeKube::builder().ready_delay(Duration::from_millis(1500)).start();
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.kubeconfig().parent().unwrap()).unwrap();
    fake.write_kubeconfig(sandbox.kubeconfig(), "kind-host").unwrap();
    // The first two watch requests fail with 500 and every apply is slow.
    fake.add_fault(fakekube::Fault {
        verb: Some("watch".into()),
        path_contains: "/namespaces/vc-dev/".into(),
        action: fakekube::FaultAction::Respond(fakekube::ApiError::internal("etcd leader changed")),
        remaining: Some(2),
        ..Default::default()
    });
    fake.delay(Some("PATCH"), "/namespaces/vc-dev", Duration::from_millis(200));
    let child =
        spawn_vc(&sandbox, &["create", "dev", "--timeout", "30s", "--no-connect", "-o", "json"]);
    // While it waits for readiness, every open watch is cut.
    wait_for(|| fake.get("pods", "vc-dev", "dev-0").is_some());
    std::thread::sleep(Duration::from_millis(300));
    fake.drop_watches();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON result");
    assert_eq!(result["phase"], "Running");
    let watches = fake.requests().iter().filter(|r| r.verb == "watch").count();
    assert!(watches >= 3, "the watches were restarted: {watches}");
}

#[test]
fn list_calls_stay_constant_with_starting_clusters_deployments_and_the_403_fallback() {
    let (fake, sandbox) = host();
    fake.set_behaviour("slow", PodBehaviour::NeverReady);
    for name in ["slow", "c1", "c2"] {
        vc(&sandbox, &["create", name, "-q", "--no-wait"]).code(0);
    }
    // The engine's external-etcd variant runs the control plane as a Deployment.
    fake.put(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ext", "namespace": "default", "labels": {"app": "vcluster", "release": "ext"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "vcluster", "release": "ext"}},
                 "template": {"metadata": {"labels": {"app": "vcluster", "release": "ext"}},
                              "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}}}
    }))
    .unwrap();
    // A record that does not parse is a warning, not a silently missing cluster.
    let mut broken = fake.get("statefulsets", "vc-c2", "c2").unwrap();
    broken["metadata"]["annotations"]["vc.dev/spec"] = json!("{not json");
    fake.put(broken).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    fake.clear_requests();
    let run = vc(&sandbox, &["list", "-o", "json"]);
    run.code(0);
    // StatefulSets, Deployments, and the pods because "slow" is still starting.
    assert_eq!(fake.requests().len(), 3, "{:?}", fake.requests());
    let listed = run.json();
    let names: Vec<&str> =
        listed.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ext", "c1", "c2", "slow"]);
    assert!(run.stderr.contains("vc.dev/spec does not parse"), "{}", run.stderr);

    // Without cluster-wide rights: the context's namespace, with the same number of calls
    // however many clusters there are.
    fake.forbid(Some("GET"), "/apis/apps/v1/statefulsets", "team-admin");
    fake.forbid(Some("GET"), "/apis/apps/v1/deployments", "team-admin");
    fake.clear_requests();
    let run = vc(&sandbox, &["list", "-o", "json"]);
    run.code(0);
    assert!(run.stderr.contains("showing namespace \"default\""), "{}", run.stderr);
    assert_eq!(run.json().as_array().unwrap().len(), 1, "ext only");
    assert_eq!(fake.requests().len(), 4, "{:?}", fake.requests());
}

#[test]
fn ephemeral_cluster_has_no_volume_claim() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "tmp", "--ephemeral"]).code(0);
    let sts = fake.get("statefulsets", "vc-tmp", "tmp").expect("StatefulSet tmp");
    assert_eq!(sts["spec"].get("volumeClaimTemplates"), None, "{sts}");
    let volumes = sts["spec"]["template"]["spec"]["volumes"].as_array().expect("volumes");
    let data = volumes.iter().find(|v| v["name"] == "data").expect("a data volume");
    assert_eq!(data["emptyDir"], json!({}));
    assert!(fake.list("persistentvolumeclaims", Some("vc-tmp")).is_empty(), "no PVC");
    let record: Value =
        serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap())
            .unwrap();
    assert_eq!(record["persistence"], false);

    // The same from a values file, and a delete with no claim to remove.
    let values = sandbox.dir.path().join("values.yaml");
    std::fs::write(&values, "persistence: false\n").unwrap();
    vc(&sandbox, &["create", "tmp2", "-f", values.to_str().unwrap()]).code(0);
    let sts = fake.get("statefulsets", "vc-tmp2", "tmp2").expect("StatefulSet tmp2");
    assert_eq!(sts["spec"].get("volumeClaimTemplates"), None);
    vc(&sandbox, &["delete", "tmp", "--yes"]).code(0);
    assert!(fake.get("statefulsets", "vc-tmp", "tmp").is_none());
}

#[test]
fn upsert_cannot_switch_persistence() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "keep"]).code(0);
    let before = fake.get("statefulsets", "vc-keep", "keep").expect("StatefulSet");
    let switched = vc(&sandbox, &["create", "keep", "--upsert", "--ephemeral"]);
    switched.code(6);
    assert!(switched.stderr.contains("was created with a volume claim"), "{}", switched.stderr);
    assert_eq!(switched.stderr.lines().count(), 1, "{}", switched.stderr);
    let after = fake.get("statefulsets", "vc-keep", "keep").expect("StatefulSet");
    assert_eq!(before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"]);
    vc(&sandbox, &["create", "keep", "--upsert"]).code(0);

    vc(&sandbox, &["create", "gone", "--ephemeral"]).code(0);
    let back = vc(&sandbox, &["create", "gone", "--upsert"]);
    back.code(6);
    assert!(back.stderr.contains("--upsert --ephemeral"), "{}", back.stderr);
}

#[test]
fn storage_size_and_class_shape_the_volume_claim_and_round_trip() {
    let (fake, sandbox) = host();
    vc(&sandbox, &["create", "big", "--storage-size", "20Gi", "--storage-class", "fast-ssd"])
        .code(0);
    let sts = fake.get("statefulsets", "vc-big", "big").expect("StatefulSet big");
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "20Gi", "{sts}");
    assert_eq!(claim["storageClassName"], "fast-ssd");
    let pvc = fake.get("persistentvolumeclaims", "vc-big", "data-big-0").expect("the PVC");
    assert_eq!(pvc["spec"]["storageClassName"], "fast-ssd");
    let described = vc(&sandbox, &["describe", "big", "-o", "json"]).json();
    assert_eq!(described["spec"]["storage"], json!({"size": "20Gi", "className": "fast-ssd"}));

    // The same from a values file; a flag overrides the file.
    let values = sandbox.dir.path().join("values.yaml");
    std::fs::write(&values, "storage:\n  size: 1Gi\n  className: slow\n").unwrap();
    vc(&sandbox, &["create", "small", "-f", values.to_str().unwrap(), "--storage-size", "2Gi"])
        .code(0);
    let sts = fake.get("statefulsets", "vc-small", "small").expect("StatefulSet small");
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "2Gi");
    assert_eq!(claim["storageClassName"], "slow");
    let described = vc(&sandbox, &["describe", "small", "-o", "json"]).json();
    assert_eq!(described["spec"]["storage"], json!({"size": "2Gi", "className": "slow"}));

    // A claim template cannot change: a re-apply with another size is refused before it is sent.
    let before = fake.get("statefulsets", "vc-big", "big").expect("StatefulSet");
    let resized = vc(&sandbox, &["create", "big", "--upsert", "--storage-size", "30Gi"]);
    resized.code(6);
    assert!(resized.stderr.contains("size 20Gi, class fast-ssd"), "{}", resized.stderr);
    assert!(resized.stderr.contains("asked: size 30Gi"), "{}", resized.stderr);
    assert_eq!(resized.stderr.lines().count(), 1, "{}", resized.stderr);
    let after = fake.get("statefulsets", "vc-big", "big").expect("StatefulSet");
    assert_eq!(before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"]);
    vc(
        &sandbox,
        &["create", "big", "--upsert", "--storage-size", "20Gi", "--storage-class", "fast-ssd"],
    )
    .code(0);
}
