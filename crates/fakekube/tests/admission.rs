//! Admission on create, as kube-apiserver runs it: ServiceAccount existence, LimitRange
//! defaults and bounds, ResourceQuota usage and refusals — with the real 403 bodies, for
//! requests and for pods the simulated controllers create.

mod common;

use std::time::Duration;

use common::{http, post};
use fakekube::FakeKube;
use serde_json::{Value, json};

fn namespace(fk: &FakeKube, ns: &str) {
    fk.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).unwrap();
}

fn pod(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}})
}

fn sts(name: &str, ns: &str, sa: Option<&str>, resources: Value) -> Value {
    let labels = json!({"app": name});
    let mut spec =
        json!({"containers": [{"name": "c", "image": "busybox", "resources": resources}]});
    if let Some(sa) = sa {
        spec["serviceAccountName"] = json!(sa);
    }
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": spec}},
    })
}

fn forbidden(name: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Forbidden",
        "details": {"name": name, "kind": "pods"}, "code": 403,
    })
}

fn events(fk: &FakeKube, ns: &str, involved: &str, reason: &str) -> Vec<Value> {
    fk.list("events", Some(ns))
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == involved && e["reason"] == reason)
        .collect()
}

#[test]
fn pod_with_missing_service_account_is_403() {
    let fk = FakeKube::start();
    namespace(&fk, "team");
    let mut body = pod("p", json!([{"name": "c", "image": "busybox"}]));
    body["spec"]["serviceAccountName"] = json!("robot");
    let r = post(&fk, "/api/v1/namespaces/team/pods", &body);
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json(),
        forbidden(
            "p",
            "pods \"p\" is forbidden: error looking up service account team/robot: serviceaccount \"robot\" not found"
        )
    );
    // The default ServiceAccount exists in every namespace.
    let ok = post(
        &fk,
        "/api/v1/namespaces/team/pods",
        &pod("q", json!([{"name": "c", "image": "busybox"}])),
    );
    assert_eq!(ok.code, 201, "{}", ok.text());
}

#[test]
fn statefulset_waits_for_its_service_account() {
    let fk = FakeKube::builder().ready_delay(Duration::ZERO).start();
    namespace(&fk, "team");
    fk.put(sts("web", "team", Some("vc-web"), json!({}))).unwrap();
    assert!(fk.get("pods", "team", "web-0").is_none());
    let failed = events(&fk, "team", "web", "FailedCreate");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["type"], "Warning");
    assert_eq!(failed[0]["involvedObject"]["kind"], "StatefulSet");
    assert_eq!(
        failed[0]["message"],
        "create Pod web-0 in StatefulSet web failed error: pods \"web-0\" is forbidden: error looking up service account team/vc-web: serviceaccount \"vc-web\" not found"
    );
    fk.put(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "vc-web", "namespace": "team"}}))
        .unwrap();
    let pod = fk.get("pods", "team", "web-0").expect("pod created once the ServiceAccount exists");
    assert_eq!(pod["spec"]["serviceAccountName"], "vc-web");
    assert_eq!(fk.get("sts", "team", "web").unwrap()["status"]["readyReplicas"], 1);
}

#[test]
fn replicaset_reports_failed_creates_with_the_generated_name_prefix() {
    let fk = FakeKube::start();
    namespace(&fk, "team");
    let labels = json!({"app": "api"});
    fk.put(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "api-1", "namespace": "team"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"serviceAccountName": "api", "containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    assert_eq!(fk.count("pods", Some("team")), 0);
    let failed = events(&fk, "team", "api-1", "FailedCreate");
    assert_eq!(
        failed[0]["message"],
        "Error creating: pods \"api-1-\" is forbidden: error looking up service account team/api: serviceaccount \"api\" not found"
    );
    fk.put(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "team"}})).unwrap();
    assert_eq!(fk.count("pods", Some("team")), 2);
}

fn limit_range(ns: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "namespace": ns},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]},
    })
}

#[test]
fn limit_range_defaults_are_applied_and_annotated() {
    let fk = FakeKube::start();
    namespace(&fk, "team");
    fk.put(limit_range("team")).unwrap();
    let lr = fk.get("limitranges", "team", "limits").unwrap();
    // API defaulting: defaultRequest takes the default limit where it has none.
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "100m", "memory": "256Mi"})
    );
    let mut body = pod(
        "p",
        json!([{"name": "app", "image": "busybox", "resources": {"limits": {"cpu": "1000m"}}}]),
    );
    body["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    let r = post(&fk, "/api/v1/namespaces/team/pods", &body);
    assert_eq!(r.code, 201, "{}", r.text());
    let p = r.json();
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
    );
    assert_eq!(
        p["spec"]["initContainers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container app; memory limit for container app; cpu, memory request for init container init; cpu, memory limit for init container init"
    );
}

#[test]
fn limit_range_max_is_enforced_with_the_real_message() {
    let fk = FakeKube::start();
    namespace(&fk, "team");
    fk.put(limit_range("team")).unwrap();
    let body = pod(
        "x",
        json!([{"name": "app", "image": "busybox", "resources": {"limits": {"cpu": "2"}}}]),
    );
    let r = post(&fk, "/api/v1/namespaces/team/pods", &body);
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json(),
        forbidden(
            "x",
            "pods \"x\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        )
    );
}

fn quota(ns: &str, hard: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": ns}, "spec": {"hard": hard}})
}

#[test]
fn quota_status_tracks_usage_up_and_down() {
    let fk = FakeKube::start();
    namespace(&fk, "team");
    fk.put(quota("team", json!({
        "pods": "4", "count/pods": "4", "requests.cpu": "2", "requests.memory": "1Gi", "limits.cpu": "4",
        "limits.memory": "2Gi", "count/configmaps": "5", "count/secrets": "5", "count/services": "3",
        "services.nodeports": "2", "services.loadbalancers": "1", "requests.storage": "10Gi",
        "count/persistentvolumeclaims": "3", "count/endpoints": "3", "requests.ephemeral-storage": "1Gi",
        "limits.ephemeral-storage": "2Gi", "count/deployments.apps": "2",
    })))
    .unwrap();
    let used = |fk: &FakeKube| fk.get("quota", "team", "q").unwrap()["status"]["used"].clone();
    let q = fk.get("quota", "team", "q").unwrap();
    assert_eq!(q["status"]["hard"]["requests.memory"], "1Gi");
    assert_eq!(used(&fk)["count/configmaps"], "1", "kube-root-ca.crt counts");
    assert_eq!(used(&fk)["pods"], "0");
    let resources = json!({"requests": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "100Mi"}, "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "200Mi"}});
    let mut body = pod(
        "a",
        json!([{"name": "app", "image": "busybox", "resources": resources}, {"name": "side", "image": "busybox", "resources": resources}]),
    );
    body["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox", "resources": {"requests": {"cpu": "1500m", "memory": "1Mi"}, "limits": {"cpu": "2", "memory": "1Mi"}}}]);
    assert_eq!(post(&fk, "/api/v1/namespaces/team/pods", &body).code, 201);
    let u = used(&fk);
    // containers summed (1 cpu), but the init container asks for more (1500m): max wins.
    assert_eq!(
        (
            u["pods"].as_str(),
            u["count/pods"].as_str(),
            u["requests.cpu"].as_str(),
            u["requests.memory"].as_str(),
            u["limits.cpu"].as_str(),
            u["limits.memory"].as_str()
        ),
        (Some("1"), Some("1"), Some("1500m"), Some("512Mi"), Some("2"), Some("1Gi"))
    );
    assert_eq!(
        (u["requests.ephemeral-storage"].as_str(), u["limits.ephemeral-storage"].as_str()),
        (Some("200Mi"), Some("400Mi"))
    );
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
    assert_eq!(post(&fk, "/api/v1/namespaces/team/services", &svc).code, 201);
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}});
    assert_eq!(post(&fk, "/api/v1/namespaces/team/persistentvolumeclaims", &pvc).code, 201);
    let u = used(&fk);
    assert_eq!(
        (
            u["count/services"].as_str(),
            u["services.loadbalancers"].as_str(),
            u["services.nodeports"].as_str()
        ),
        (Some("1"), Some("1"), Some("2"))
    );
    assert_eq!(
        (u["requests.storage"].as_str(), u["count/persistentvolumeclaims"].as_str()),
        (Some("5Gi"), Some("1"))
    );
    fk.remove_now("pods", "team", "a").unwrap();
    fk.remove_now("services", "team", "lb").unwrap();
    let u = used(&fk);
    assert_eq!(
        (u["pods"].as_str(), u["requests.cpu"].as_str(), u["count/services"].as_str()),
        (Some("0"), Some("0"), Some("0"))
    );
}

#[test]
fn quota_refuses_creates_that_exceed_it() {
    let fk = FakeKube::start();
    namespace(&fk, "team");
    fk.put(quota("team", json!({"requests.cpu": "2", "count/configmaps": "2"}))).unwrap();
    let with_cpu = |name: &str, cpu: &str| {
        pod(
            name,
            json!([{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]),
        )
    };
    assert_eq!(post(&fk, "/api/v1/namespaces/team/pods", &with_cpu("a", "1500m")).code, 201);
    let r = post(&fk, "/api/v1/namespaces/team/pods", &with_cpu("b", "1"));
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json(),
        forbidden(
            "b",
            "pods \"b\" is forbidden: exceeded quota: q, requested: requests.cpu=1, used: requests.cpu=1500m, limited: requests.cpu=2"
        )
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}});
    assert_eq!(post(&fk, "/api/v1/namespaces/team/configmaps", &cm).code, 201);
    let cm2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}});
    let r = post(&fk, "/api/v1/namespaces/team/configmaps", &cm2);
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json()["message"],
        "configmaps \"two\" is forbidden: exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"
    );
    assert_eq!(r.json()["details"], json!({"name": "two", "kind": "configmaps"}));
    // Deleting frees the quota.
    assert_eq!(
        http(&fk, "DELETE", "/api/v1/namespaces/team/pods/a?gracePeriodSeconds=0", "", "").code,
        200
    );
    assert_eq!(post(&fk, "/api/v1/namespaces/team/pods", &with_cpu("b", "1")).code, 201);
}

#[test]
fn quota_on_cpu_and_memory_requires_every_container_to_state_them() {
    let fk = FakeKube::start();
    namespace(&fk, "team");
    fk.put(quota("team", json!({"requests.cpu": "4", "limits.memory": "4Gi"}))).unwrap();
    let mut body = pod(
        "p",
        json!([
            {"name": "b", "image": "busybox", "resources": {"requests": {"cpu": "1"}}},
            {"name": "a", "image": "busybox"},
        ]),
    );
    body["spec"]["initContainers"] =
        json!([{"name": "init", "image": "busybox", "resources": {"limits": {"memory": "1Gi"}}}]);
    let r = post(&fk, "/api/v1/namespaces/team/pods", &body);
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json()["message"],
        "pods \"p\" is forbidden: failed quota: q: must specify limits.memory for: a,b; requests.cpu for: a,init"
    );
}

#[test]
fn statefulset_pods_blocked_by_quota_appear_when_it_is_raised() {
    let fk = FakeKube::builder().ready_delay(Duration::ZERO).start();
    namespace(&fk, "team");
    fk.put(quota("team", json!({"requests.cpu": "1"}))).unwrap();
    fk.put(sts("db", "team", None, json!({"requests": {"cpu": "2"}}))).unwrap();
    assert!(fk.get("pods", "team", "db-0").is_none());
    let failed = events(&fk, "team", "db", "FailedCreate");
    assert_eq!(
        failed[0]["message"],
        "create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden: exceeded quota: q, requested: requests.cpu=2, used: requests.cpu=0, limited: requests.cpu=1"
    );
    fk.put(quota("team", json!({"requests.cpu": "4"}))).unwrap();
    assert!(fk.get("pods", "team", "db-0").is_some());
    assert_eq!(fk.get("quota", "team", "q").unwrap()["status"]["used"]["requests.cpu"], "2");
}

#[test]
fn malformed_quantities_are_400_and_valid_ones_are_canonical() {
    let fk = FakeKube::start();
    let bad = pod(
        "bad",
        json!([{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "lots"}}}]),
    );
    let r = post(&fk, "/api/v1/namespaces/default/pods", &bad);
    assert_eq!(r.code, 400);
    assert_eq!(
        r.json()["message"],
        "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    let good = pod(
        "good",
        json!([{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1000m", "memory": 1073741824}}}]),
    );
    let r = post(&fk, "/api/v1/namespaces/default/pods", &good);
    assert_eq!(
        r.json()["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "1", "memory": "1073741824"})
    );
}
