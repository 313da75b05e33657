//! Deletion as the real server and controllers play it: pods terminate for a grace period,
//! PVCs in use are protected by their finalizer, namespaces finish when their content has.

mod common;

use std::time::Duration;

use common::{http, post};
use fakekube::FakeKube;
use serde_json::{Value, json};

fn pod(name: &str, claim: Option<&str>) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let Some(c) = claim {
        p["spec"]["volumes"] = json!([{"name": "data", "persistentVolumeClaim": {"claimName": c}}]);
    }
    p
}

fn pvc(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

#[test]
fn deleted_pods_terminate_for_the_grace_period() {
    let fk = FakeKube::builder()
        .pod_grace(Duration::from_millis(300))
        .ready_delay(Duration::ZERO)
        .start();
    assert_eq!(post(&fk, "/api/v1/namespaces/default/pods", &pod("p", None)).code, 201);
    let r = http(&fk, "DELETE", "/api/v1/namespaces/default/pods/p", "", "");
    assert_eq!(r.code, 200);
    let body = r.json();
    assert!(body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(body["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(fk.get("pods", "default", "p").is_some(), "Terminating");
    // Deleting again changes nothing; gracePeriodSeconds=0 removes at once.
    assert_eq!(http(&fk, "DELETE", "/api/v1/namespaces/default/pods/p", "", "").code, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert!(fk.get("pods", "default", "p").is_none());

    assert_eq!(post(&fk, "/api/v1/namespaces/default/pods", &pod("q", None)).code, 201);
    let r = http(&fk, "DELETE", "/api/v1/namespaces/default/pods/q?gracePeriodSeconds=0", "", "");
    assert_eq!(r.code, 200);
    assert!(fk.get("pods", "default", "q").is_none());
    assert_eq!(post(&fk, "/api/v1/namespaces/default/pods", &pod("r", None)).code, 201);
    let opts = json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0});
    http(&fk, "DELETE", "/api/v1/namespaces/default/pods/r", "application/json", &opts.to_string());
    assert!(fk.get("pods", "default", "r").is_none());

    fk.set_pod_grace(Duration::ZERO);
    assert_eq!(post(&fk, "/api/v1/namespaces/default/pods", &pod("s", None)).code, 201);
    fk.delete("pods", "default", "s").unwrap();
    assert!(fk.get("pods", "default", "s").is_none());
}

#[test]
fn unscheduled_pods_go_at_once() {
    let fk = FakeKube::builder().pod_grace(Duration::from_secs(5)).start();
    fk.set_default_behaviour(fakekube::PodBehaviour::unschedulable());
    assert_eq!(post(&fk, "/api/v1/namespaces/default/pods", &pod("p", None)).code, 201);
    fk.delete("pods", "default", "p").unwrap();
    assert!(fk.get("pods", "default", "p").is_none());
}

#[test]
fn pvc_in_use_stays_terminating_until_its_pod_is_gone() {
    let fk = FakeKube::builder()
        .pod_grace(Duration::from_millis(200))
        .ready_delay(Duration::ZERO)
        .start();
    let created = post(&fk, "/api/v1/namespaces/default/persistentvolumeclaims", &pvc("data"));
    assert_eq!(created.json()["metadata"]["finalizers"], json!(["kubernetes.io/pvc-protection"]));
    assert_eq!(post(&fk, "/api/v1/namespaces/default/pods", &pod("user", Some("data"))).code, 201);
    assert_eq!(
        http(&fk, "DELETE", "/api/v1/namespaces/default/persistentvolumeclaims/data", "", "").code,
        200
    );
    let claim = fk.get("pvc", "default", "data").expect("protected while mounted");
    assert!(claim["metadata"]["deletionTimestamp"].is_string());
    fk.delete("pods", "default", "user").unwrap();
    assert!(fk.get("pvc", "default", "data").is_some(), "the pod is still terminating");
    std::thread::sleep(Duration::from_millis(400));
    assert!(fk.get("pods", "default", "user").is_none());
    assert!(fk.get("pvc", "default", "data").is_none(), "released once no pod uses it");
    // An unused claim goes at once.
    post(&fk, "/api/v1/namespaces/default/persistentvolumeclaims", &pvc("spare"));
    fk.delete("pvc", "default", "spare").unwrap();
    assert!(fk.get("pvc", "default", "spare").is_none());
}

#[test]
fn namespaces_finish_after_their_pods_and_claims() {
    let fk = FakeKube::builder()
        .termination_delay(Duration::from_millis(50))
        .pod_grace(Duration::from_millis(400))
        .ready_delay(Duration::ZERO)
        .start();
    fk.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})).unwrap();
    post(&fk, "/api/v1/namespaces/team/persistentvolumeclaims", &pvc("data"));
    assert_eq!(post(&fk, "/api/v1/namespaces/team/pods", &pod("db", Some("data"))).code, 201);
    fk.delete("namespaces", "", "team").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let ns = fk.get("namespaces", "", "team").expect("still terminating");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(fk.get("pods", "team", "db").unwrap()["metadata"]["deletionTimestamp"].is_string());
    assert!(fk.get("pvc", "team", "data").unwrap()["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(fk.count("configmaps", Some("team")), 0, "the rest of the content is gone");
    std::thread::sleep(Duration::from_millis(500));
    assert!(fk.get("pods", "team", "db").is_none());
    assert!(fk.get("pvc", "team", "data").is_none());
    assert!(fk.get("namespaces", "", "team").is_none());
}
