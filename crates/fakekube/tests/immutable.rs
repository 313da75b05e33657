//! Immutable fields: StatefulSet spec outside the mutable set, a Service's cluster IP and
//! a Secret's type are refused on update, patch and apply with the real 422 bodies.

mod common;

use common::{http, post};
use fakekube::FakeKube;
use serde_json::json;

const STS: &str = "/apis/apps/v1/namespaces/default/statefulsets";

fn sts() -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "postgres:16"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
    })
}

#[test]
fn statefulset_spec_outside_the_mutable_fields_is_422() {
    let fk = FakeKube::start();
    assert_eq!(post(&fk, STS, &sts()).code, 201);
    let patch = |body: serde_json::Value| {
        http(&fk, "PATCH", &format!("{STS}/db"), "application/merge-patch+json", &body.to_string())
    };
    let r = patch(json!({"spec": {"serviceName": "other"}}));
    assert_eq!(r.code, 422);
    let msg = "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("StatefulSet.apps \"db\" is invalid: spec: {msg}"), "reason": "Invalid",
               "details": {"name": "db", "group": "apps", "kind": "StatefulSet", "causes": [{"reason": "FieldValueForbidden", "message": msg, "field": "spec"}]},
               "code": 422})
    );
    // Mutable fields change freely.
    let r = patch(
        json!({"spec": {"replicas": 3, "revisionHistoryLimit": 2, "minReadySeconds": 5, "updateStrategy": {"type": "OnDelete"},
                                  "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
                                  "template": {"spec": {"containers": [{"name": "c", "image": "postgres:17"}]}}}}),
    );
    assert_eq!(r.code, 200, "{}", r.text());
    // Apply changing the claim templates, and PUT changing podManagementPolicy, are refused.
    let mut applied = sts();
    applied["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
        json!("5Gi");
    let r = http(
        &fk,
        "PATCH",
        &format!("{STS}/db?fieldManager=t&force=true"),
        "application/apply-patch+yaml",
        &applied.to_string(),
    );
    assert_eq!(r.code, 422, "{}", r.text());
    let mut current = fk.get("sts", "default", "db").unwrap();
    current["spec"]["podManagementPolicy"] = json!("Parallel");
    let r = http(&fk, "PUT", &format!("{STS}/db"), "application/json", &current.to_string());
    assert_eq!(r.code, 422);
    assert_eq!(
        fk.get("sts", "default", "db").unwrap()["spec"]["podManagementPolicy"],
        "OrderedReady"
    );
}

#[test]
fn service_cluster_ip_and_secret_type_are_immutable() {
    let fk = FakeKube::start();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.7.7", "ports": [{"port": 80}]}});
    assert_eq!(post(&fk, "/api/v1/namespaces/default/services", &svc).code, 201);
    let r = http(
        &fk,
        "PATCH",
        "/api/v1/namespaces/default/services/web",
        "application/merge-patch+json",
        &json!({"spec": {"clusterIP": "10.96.5.5", "clusterIPs": ["10.96.5.5"]}}).to_string(),
    );
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json()["message"],
        "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.96.5.5\"}: may not change once set"
    );
    assert_eq!(r.json()["details"]["causes"][0]["field"], "spec.clusterIPs[0]");
    let ok = http(
        &fk,
        "PATCH",
        "/api/v1/namespaces/default/services/web",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"a": "b"}}}).to_string(),
    );
    assert_eq!(ok.code, 200);

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "stringData": {"k": "v"}});
    assert_eq!(post(&fk, "/api/v1/namespaces/default/secrets", &secret).code, 201);
    let r = http(
        &fk,
        "PATCH",
        "/api/v1/namespaces/default/secrets/s",
        "application/merge-patch+json",
        &json!({"type": "kubernetes.io/tls"}).to_string(),
    );
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json()["details"],
        json!({"name": "s", "kind": "Secret", "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: \"kubernetes.io/tls\": field is immutable", "field": "type"}]})
    );
    assert_eq!(
        r.json()["message"],
        "Secret \"s\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable"
    );
}
