//! Simulated host behaviours: pod readiness delay, unschedulable pods, image pull failures,
//! crash loops with logs, status subresource rules, scale, and watch filtering.

mod common;

use std::time::Duration;

use common::{get, http};
use fakekube::{FakeKube, PodBehaviour};
use serde_json::{Value, json};

fn control_plane(name: &str, ns: &str) -> Value {
    let labels = json!({"app": "vcluster", "release": name});
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}}}
    })
}

fn condition<'a>(pod: &'a Value, kind: &str) -> &'a Value {
    pod["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap()
}

fn warning_events(fk: &FakeKube, ns: &str, pod: &str) -> Vec<Value> {
    fk.list("events", Some(ns))
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == pod && e["type"] == "Warning")
        .collect()
}

#[test]
fn pods_become_ready_after_the_delay_and_the_secret_appears() {
    let fk = FakeKube::builder().ready_delay(Duration::from_millis(300)).start();
    fk.put(control_plane("slow", "vc-slow")).unwrap();
    let pod = fk.get("pods", "vc-slow", "slow-0").unwrap();
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(condition(&pod, "PodScheduled")["status"], "True");
    assert!(fk.get("secrets", "vc-slow", "vc-slow").is_none());
    std::thread::sleep(Duration::from_millis(600));
    let pod = fk.get("pods", "vc-slow", "slow-0").unwrap();
    assert_eq!(condition(&pod, "Ready")["status"], "True");
    assert_eq!(fk.get("sts", "vc-slow", "slow").unwrap()["status"]["readyReplicas"], 1);
    assert!(fk.get("secrets", "vc-slow", "vc-slow").is_some());
}

#[test]
fn unschedulable_pods_stay_pending_with_an_event() {
    let fk = FakeKube::builder().ready_delay(Duration::ZERO).start();
    fk.set_behaviour("big", PodBehaviour::unschedulable());
    fk.put(control_plane("big", "vc-big")).unwrap();
    fk.put(control_plane("ok", "vc-ok")).unwrap();
    let pod = fk.get("pods", "vc-big", "big-0").unwrap();
    assert_eq!(pod["status"]["phase"], "Pending");
    let scheduled = condition(&pod, "PodScheduled");
    assert_eq!(
        (scheduled["status"].as_str(), scheduled["reason"].as_str()),
        (Some("False"), Some("Unschedulable"))
    );
    assert!(
        scheduled["message"]
            .as_str()
            .unwrap()
            .starts_with("0/1 nodes are available: 1 Insufficient cpu.")
    );
    let events = warning_events(&fk, "vc-big", "big-0");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "FailedScheduling");
    assert!(fk.get("secrets", "vc-big", "vc-big").is_none());
    assert!(fk.get("secrets", "vc-ok", "vc-ok").is_some(), "other clusters are unaffected");
}

#[test]
fn image_pull_failures_show_in_status_and_events() {
    let fk = FakeKube::builder().ready_delay(Duration::ZERO).start();
    fk.set_default_behaviour(PodBehaviour::image_pull_failure());
    fk.put(control_plane("img", "vc-img")).unwrap();
    let pod = fk.get("pods", "vc-img", "img-0").unwrap();
    let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
    assert_eq!(waiting["reason"], "ImagePullBackOff");
    assert!(waiting["message"].as_str().unwrap().contains("ghcr.io/loft-sh/vcluster-oss:0.36.1"));
    let events = warning_events(&fk, "vc-img", "img-0");
    assert_eq!(events[0]["reason"], "Failed");
    let logs = get(&fk, "/api/v1/namespaces/vc-img/pods/img-0/log");
    assert_eq!(logs.code, 400);
    assert_eq!(
        logs.json()["message"],
        "container \"syncer\" in pod \"img-0\" is waiting to start: ImagePullBackOff"
    );
}

#[test]
fn crash_loops_have_restarts_exit_codes_and_logs() {
    let fk = FakeKube::builder().ready_delay(Duration::ZERO).start();
    fk.set_behaviour(
        "bad",
        PodBehaviour::crash_loop(&["starting", "reading config", "fatal: unknown key \"foo\""]),
    );
    fk.put(control_plane("bad", "vc-bad")).unwrap();
    let pod = fk.get("pods", "vc-bad", "bad-0").unwrap();
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert!(cs["restartCount"].as_i64().unwrap() > 0);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    let logs = get(&fk, "/api/v1/namespaces/vc-bad/pods/bad-0/log?tailLines=2");
    assert_eq!(logs.code, 200);
    assert_eq!(logs.text(), "reading config\nfatal: unknown key \"foo\"\n");
    assert_eq!(warning_events(&fk, "vc-bad", "bad-0")[0]["reason"], "BackOff");
}

#[test]
fn status_subresource_rules() {
    let fk = FakeKube::builder().controllers(false).start();
    fk.put(control_plane("s", "default")).unwrap();
    let path = "/apis/apps/v1/namespaces/default/statefulsets/s";
    let mut obj = get(&fk, path).json();
    obj["status"] = json!({"replicas": 7});
    obj["spec"]["replicas"] = json!(2);
    let updated = http(&fk, "PUT", path, "application/json", &obj.to_string()).json();
    assert_eq!(updated["spec"]["replicas"], 2);
    assert_ne!(updated["status"]["replicas"], 7, "a main-resource update ignores status");
    assert_eq!(updated["metadata"]["generation"], 2, "a spec change bumps generation");

    let patch = json!({"status": {"replicas": 7}, "spec": {"replicas": 5}});
    let status = http(
        &fk,
        "PATCH",
        &format!("{path}/status"),
        "application/merge-patch+json",
        &patch.to_string(),
    )
    .json();
    assert_eq!(status["status"]["replicas"], 7);
    assert_eq!(status["spec"]["replicas"], 2, "a status update ignores spec");
    assert_eq!(status["metadata"]["generation"], 2);
}

#[test]
fn scale_subresource_and_patch_flavours() {
    let fk = FakeKube::builder().ready_delay(Duration::ZERO).start();
    fk.put(control_plane("p", "default")).unwrap();
    let path = "/apis/apps/v1/namespaces/default/statefulsets/p";
    let scale = get(&fk, &format!("{path}/scale")).json();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(1))
    );
    let scaled = http(
        &fk,
        "PATCH",
        &format!("{path}/scale"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":3}}"#,
    );
    assert_eq!(scaled.json()["spec"]["replicas"], 3);
    assert_eq!(fk.count("pods", Some("default")), 3);
    let paused = http(
        &fk,
        "PATCH",
        path,
        "application/json-patch+json",
        r#"[{"op":"replace","path":"/spec/replicas","value":0}]"#,
    );
    assert_eq!(paused.code, 200);
    assert_eq!(fk.count("pods", Some("default")), 0);
    assert_eq!(fk.get("sts", "default", "p").unwrap()["status"]["replicas"], 0);

    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}});
    let merged =
        http(&fk, "PATCH", path, "application/strategic-merge-patch+json", &smp.to_string()).json();
    assert_eq!(merged["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
}

#[test]
fn watch_filters_and_bookmarks() {
    let fk = FakeKube::builder()
        .bookmark_interval(Duration::from_millis(200))
        .controllers(false)
        .start();
    for (name, app) in [("a", "x"), ("b", "y")] {
        fk.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": {"app": app}}})).unwrap();
    }
    let r = get(
        &fk,
        "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=app%3Dx&allowWatchBookmarks=true&timeoutSeconds=1",
    );
    let events = r.lines();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "a");
    assert!(events[1..].iter().all(|e| e["type"] == "BOOKMARK"), "{events:?}");
    assert!(events.len() >= 3, "bookmarks every 200ms for 1s: {events:?}");

    let r = get(
        &fk,
        "/api/v1/configmaps?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3Db&timeoutSeconds=1",
    );
    let events = r.lines();
    assert_eq!(events[0]["object"]["metadata"]["name"], "b");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}

#[test]
fn filtered_watches_see_objects_enter_and_leave_the_selection() {
    let fk = FakeKube::builder().controllers(false).start();
    let cm = |app: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "default", "labels": {"app": app}}});
    fk.put(cm("other")).unwrap();
    let from = fk.resource_version();
    fk.put(cm("x")).unwrap();
    fk.put(cm("x")).unwrap();
    fk.put(cm("other")).unwrap();
    let r = get(
        &fk,
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=app%3Dx&resourceVersion={from}&timeoutSeconds=1"
        ),
    );
    let kinds: Vec<Value> = r.lines().iter().map(|e| e["type"].clone()).collect();
    assert_eq!(kinds, [json!("ADDED"), json!("DELETED")], "an unchanged re-put is no event");
}

#[test]
fn absent_images_wait_in_err_image_pull_and_other_containers_run() {
    let fk = FakeKube::start();
    fk.set_image_absent("registry.example/missing:1");
    fk.put(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"containers": [
            {"name": "gone", "image": "registry.example/missing:1"},
            {"name": "here", "image": "busybox:1.36"},
        ]},
    }))
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pod = fk.get("pods", "default", "probe").unwrap();
    assert_eq!(pod["status"]["phase"], "Pending");
    let statuses = pod["status"]["containerStatuses"].as_array().unwrap();
    let gone = &statuses[0]["state"]["waiting"];
    assert_eq!(gone["reason"], "ErrImagePull");
    assert!(gone["message"].as_str().unwrap().contains("registry.example/missing:1: not found"));
    assert!(statuses[1]["state"]["running"].is_object(), "{}", statuses[1]);
    let events = warning_events(&fk, "default", "probe");
    assert!(events.iter().any(|e| e["reason"] == "Failed"), "{events:?}");
}

#[test]
fn claims_bind_through_their_class_or_the_default_one_else_stay_pending() {
    let fk = FakeKube::start();
    let class = fk.get("storageclasses", "", "standard").unwrap();
    assert_eq!(
        class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
    let claim = |name: &str, class: Option<&str>| {
        let mut pvc = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
        });
        if let Some(c) = class {
            pvc["spec"]["storageClassName"] = json!(c);
        }
        fk.put(pvc).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        fk.get("persistentvolumeclaims", "default", name).unwrap()
    };
    let bound = claim("a", None);
    assert_eq!(bound["status"]["phase"], "Bound");
    assert_eq!(bound["spec"]["storageClassName"], "standard");
    assert_ne!(claim("b", Some("fast"))["status"]["phase"], "Bound", "no such class");
    fk.remove_now("storageclasses", "", "standard");
    assert_ne!(claim("c", None)["status"]["phase"], "Bound", "no default class");
}
