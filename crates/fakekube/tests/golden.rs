//! The fake refuses what the real server refuses, with the same codes, reasons and bodies:
//! each test repeats a request recorded against a real kube-apiserver (tests/golden/*.json)
//! and compares the whole response, normalising only fields that vary between runs.

mod common;

use std::time::Duration;

use common::{get, http, post};
use fakekube::FakeKube;
use serde_json::{Value, json};

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"key": "value"}})
}

/// Replaces run-dependent values (uids, resourceVersions, timestamps, ages) with markers.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                match k.as_str() {
                    "uid" | "resourceVersion" | "creationTimestamp" | "time" => {
                        *val = json!("<varies>")
                    }
                    _ => normalise(val),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

#[test]
fn create_with_invalid_name_is_422_invalid() {
    let fk = FakeKube::start();
    let r = post(&fk, "/api/v1/namespaces/default/configmaps", &configmap("Bad_Name"));
    assert_eq!(r.code, 422);
    assert_eq!(r.json(), golden("create-invalid-name"));
}

#[test]
fn create_existing_is_409_already_exists() {
    let fk = FakeKube::start();
    let first = post(&fk, "/api/v1/namespaces/default/configmaps", &configmap("golden-dup"));
    assert_eq!(first.code, 201);
    let r = post(&fk, "/api/v1/namespaces/default/configmaps", &configmap("golden-dup"));
    assert_eq!(r.code, 409);
    assert_eq!(r.json(), golden("create-already-exists"));
}

#[test]
fn get_missing_is_404_not_found() {
    let fk = FakeKube::start();
    let r = get(&fk, "/api/v1/namespaces/default/configmaps/missing");
    assert_eq!(r.code, 404);
    assert_eq!(r.json(), golden("get-not-found"));
    let r = get(&fk, "/api/v1/namespaces/missing");
    assert_eq!(r.code, 404);
    assert_eq!(r.json(), golden("get-namespace-not-found"));
}

#[test]
fn update_with_stale_resource_version_is_409_conflict() {
    let fk = FakeKube::start();
    let created =
        post(&fk, "/api/v1/namespaces/default/configmaps", &configmap("golden-stale")).json();
    let mut first = created.clone();
    first["data"]["key"] = json!("v2");
    let path = "/api/v1/namespaces/default/configmaps/golden-stale";
    assert_eq!(http(&fk, "PUT", path, "application/json", &first.to_string()).code, 200);
    let mut stale = created;
    stale["data"]["key"] = json!("v3");
    let r = http(&fk, "PUT", path, "application/json", &stale.to_string());
    assert_eq!(r.code, 409);
    assert_eq!(r.json(), golden("update-stale-conflict"));
}

#[test]
fn apply_without_force_is_409_with_field_manager_conflict() {
    let fk = FakeKube::start();
    let path = "/api/v1/namespaces/default/configmaps/golden-apply";
    let apply = |manager: &str, value: &str, force: bool| {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "golden-apply"}, "data": {"key": value}});
        let q = format!("{path}?fieldManager={manager}{}", if force { "&force=true" } else { "" });
        http(&fk, "PATCH", &q, "application/apply-patch+yaml", &body.to_string())
    };
    assert_eq!(apply("a", "1", false).code, 201);
    let r = apply("b", "2", false);
    assert_eq!(r.code, 409);
    assert_eq!(r.json(), golden("apply-conflict"));
    let forced = apply("b", "2", true);
    assert_eq!(forced.code, 200);
    assert_eq!(forced.json()["data"]["key"], "2");
}

#[test]
fn create_in_terminating_namespace_is_403_forbidden() {
    let fk = FakeKube::builder().termination_delay(Duration::from_secs(30)).start();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "golden-term"}});
    assert_eq!(post(&fk, "/api/v1/namespaces", &ns).code, 201);
    assert_eq!(post(&fk, "/api/v1/namespaces/golden-term/configmaps", &configmap("c1")).code, 201);
    let deleted = http(&fk, "DELETE", "/api/v1/namespaces/golden-term", "", "");
    assert_eq!(deleted.code, 200);
    assert_eq!(deleted.json()["status"]["phase"], "Terminating");
    let r = post(&fk, "/api/v1/namespaces/golden-term/configmaps", &configmap("c2"));
    assert_eq!(r.code, 403);
    assert_eq!(r.json(), golden("create-in-terminating-namespace"));
}

#[test]
fn terminating_namespace_disappears_with_its_content() {
    let fk = FakeKube::builder().termination_delay(Duration::from_millis(100)).start();
    fk.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "gone"}})).unwrap();
    fk.delete("namespaces", "", "gone").unwrap();
    assert_eq!(fk.get("namespaces", "", "gone").unwrap()["status"]["phase"], "Terminating");
    std::thread::sleep(Duration::from_millis(400));
    assert!(fk.get("namespaces", "", "gone").is_none());
    assert_eq!(fk.count("configmaps", Some("gone")), 0);
}

#[test]
fn watch_from_expired_resource_version_is_410_gone() {
    let fk = FakeKube::builder().event_history(5).start();
    for i in 0..10 {
        post(&fk, "/api/v1/namespaces/default/configmaps", &configmap(&format!("c{i}")));
    }
    let r = get(
        &fk,
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1&timeoutSeconds=1",
    );
    assert_eq!(r.code, 200);
    let lines = r.lines();
    assert_eq!(lines.len(), 1, "one ERROR event, then the stream ends: {lines:?}");
    let mut event = lines[0].clone();
    let mut want = golden("watch-gone");
    for v in [&mut event, &mut want] {
        let msg = v["object"]["message"].as_str().unwrap().to_string();
        let (head, _) = msg.split_once(" (").unwrap();
        v["object"]["message"] = json!(format!("{head} (<oldest>)"));
    }
    assert_eq!(event, want);
}

#[test]
fn rbac_and_authentication_failures_use_real_bodies() {
    let fk = FakeKube::start();
    fk.forbid(Some("POST"), "/api/v1/namespaces", "alice");
    let r = post(&fk, "/api/v1/namespaces", &json!({"metadata": {"name": "x"}}));
    assert_eq!(r.code, 403);
    assert_eq!(r.json(), golden("forbidden-create-namespace"));
    fk.clear_faults();
    fk.fail(None, "/api", 401);
    let r = get(&fk, "/api/v1/namespaces");
    assert_eq!(r.code, 401);
    assert_eq!(r.json(), golden("unauthorized"));
}

#[test]
fn apply_records_field_ownership_like_the_real_server() {
    let fk = FakeKube::builder().controllers(false).start();
    let body = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "golden-sts", "labels": {"app": "golden"}},
        "spec": {
            "replicas": 2, "serviceName": "golden", "selector": {"matchLabels": {"app": "golden"}},
            "template": {"metadata": {"labels": {"app": "golden"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 80}]},
                {"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "infinity"]},
            ]}},
        },
    });
    let r = http(
        &fk,
        "PATCH",
        "/apis/apps/v1/namespaces/default/statefulsets/golden-sts?fieldManager=kubectl",
        "application/apply-patch+yaml",
        &body.to_string(),
    );
    assert_eq!(r.code, 201);
    let mut got = r.json()["metadata"]["managedFields"].clone();
    let mut want = golden("apply-statefulset-response")["metadata"]["managedFields"].clone();
    normalise(&mut got);
    normalise(&mut want);
    assert_eq!(got, want);
}

#[test]
fn table_output_matches_kubectl_get() {
    let fk = FakeKube::start();
    for name in ["golden-apply", "golden-dup", "golden-stale"] {
        post(&fk, "/api/v1/namespaces/default/configmaps", &configmap(name));
    }
    fk.remove_now("configmaps", "default", "kube-root-ca.crt");
    let mut stream = std::net::TcpStream::connect(fk.addr()).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let mut got: Value = serde_json::from_str(body).unwrap();
    let mut want = golden("table-configmaps");
    for t in [&mut got, &mut want] {
        normalise(t);
        for row in t["rows"].as_array_mut().unwrap() {
            row["cells"][2] = json!("<age>");
            row["object"]["metadata"]["managedFields"] = json!("<managers differ>");
        }
    }
    assert_eq!(got, want);
}

#[test]
fn discovery_documents_have_the_real_shape() {
    let fk = FakeKube::start();
    let mut api = get(&fk, "/api").json();
    api["serverAddressByClientCIDRs"][0]["serverAddress"] = json!("127.0.0.1:6443");
    assert_eq!(api, golden("api"));

    let real = golden("apis");
    let ours = get(&fk, "/apis").json();
    assert_eq!((&ours["kind"], &ours["apiVersion"]), (&real["kind"], &real["apiVersion"]));
    for group in ours["groups"].as_array().unwrap() {
        let twin = real["groups"].as_array().unwrap().iter().find(|g| g["name"] == group["name"]);
        assert_eq!(Some(group), twin, "group {} differs from the real server's", group["name"]);
    }

    let version = get(&fk, "/version").json();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&version), keys(&golden("version")));
    assert_eq!((&version["major"], &version["minor"]), (&json!("1"), &json!("33")));
    assert!(version["gitVersion"].as_str().unwrap().starts_with("v1.33."));
}

#[test]
fn created_service_has_real_defaults_and_field_ownership() {
    let fk = FakeKube::start();
    let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "abc"}, "spec": {"ports": [{"port": 80}]}});
    let r = http(
        &fk,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        &body.to_string(),
    );
    assert_eq!(r.code, 201);
    let mut got = r.json();
    let mut want = golden("create-invalid-service-name");
    want["metadata"]["name"] = json!("abc");
    want["metadata"]["managedFields"][0]["manager"] = json!("rawtest");
    for v in [&mut got, &mut want] {
        normalise(v);
        v["spec"]["clusterIP"] = json!("<allocated>");
        v["spec"]["clusterIPs"] = json!(["<allocated>"]);
    }
    assert_eq!(got, want);
}

#[test]
fn openapi_v3_index_has_the_real_shape() {
    let fk = FakeKube::start();
    let ours = get(&fk, "/openapi/v3").json();
    let real = golden("openapi-v3-root");
    for (key, entry) in ours["paths"].as_object().unwrap() {
        assert!(real["paths"].get(key).is_some(), "{key} is not served by the real server");
        let url = entry["serverRelativeURL"].as_str().unwrap();
        let (path, hash) = url.split_once("?hash=").unwrap();
        assert_eq!(path, format!("/openapi/v3/{key}"));
        assert_eq!(hash.len(), 128, "{hash}");
        assert!(hash.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)), "{hash}");
    }
}
