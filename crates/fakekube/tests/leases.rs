//! Leader election on `coordination.k8s.io/v1` Leases: resourceVersion-guarded takeovers and
//! renewals (409 Conflict for the loser, with the real body), create races (409
//! AlreadyExists), and telling lease traffic and watches apart in the request log.

mod common;

use common::{get, http, post};
use fakekube::FakeKube;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/vc-system/leases";

fn lease(holder: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "vc-operator"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                    "acquireTime": "2026-12-01T10:00:00.000000Z", "renewTime": "2026-12-01T10:00:00.000000Z", "leaseTransitions": 0}})
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "Operation cannot be fulfilled on leases.coordination.k8s.io \"vc-operator\": the object has been modified; please apply your changes to the latest version and try again",
           "reason": "Conflict", "details": {"name": "vc-operator", "group": "coordination.k8s.io", "kind": "leases"}, "code": 409})
}

#[test]
fn a_stale_renewal_loses_with_the_real_conflict() {
    let fk = FakeKube::start();
    fk.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vc-system"}}))
        .unwrap();
    assert_eq!(post(&fk, LEASES, &lease("a")).code, 201);
    // The second candidate's create loses the race.
    let r = post(&fk, LEASES, &lease("b"));
    assert_eq!(r.code, 409);
    assert_eq!(r.json()["reason"], "AlreadyExists");

    // Both read the same version; the first update wins, the second is 409.
    let seen = get(&fk, &format!("{LEASES}/vc-operator")).json();
    let mut renew = seen.clone();
    renew["spec"]["renewTime"] = json!("2026-12-01T10:00:05.000000Z");
    let r =
        http(&fk, "PUT", &format!("{LEASES}/vc-operator"), "application/json", &renew.to_string());
    assert_eq!(r.code, 200, "{}", r.text());
    let renewed_rv = r.json()["metadata"]["resourceVersion"].clone();
    assert_ne!(renewed_rv, seen["metadata"]["resourceVersion"]);
    let mut takeover = seen.clone();
    takeover["spec"]["holderIdentity"] = json!("b");
    takeover["spec"]["leaseTransitions"] = json!(1);
    let r = http(
        &fk,
        "PUT",
        &format!("{LEASES}/vc-operator"),
        "application/json",
        &takeover.to_string(),
    );
    assert_eq!(r.code, 409);
    assert_eq!(r.json(), conflict());
    // A merge patch carrying the stale resourceVersion is refused the same way.
    let r = http(
        &fk,
        "PATCH",
        &format!("{LEASES}/vc-operator"),
        "application/merge-patch+json",
        &json!({"metadata": {"resourceVersion": seen["metadata"]["resourceVersion"]}, "spec": {"holderIdentity": "b"}})
            .to_string(),
    );
    assert_eq!(r.json(), conflict());
    let stored = fk.get("leases", "vc-system", "vc-operator").unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], "a");
    assert_eq!(stored["metadata"]["resourceVersion"], renewed_rv);
}

#[tokio::test]
async fn two_candidates_one_leader_through_kube() {
    let fk = FakeKube::start_async().await;
    fk.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vc-system"}}))
        .unwrap();
    let api: Api<Lease> = Api::namespaced(common::client(&fk).await, "vc-system");
    let mut l: Lease = serde_json::from_value(lease("a")).unwrap();
    l.metadata.resource_version = None;
    api.create(&PostParams::default(), &l).await.unwrap();
    let a = api.get("vc-operator").await.unwrap();
    let b = a.clone();
    let mut renew = a;
    renew.spec.as_mut().unwrap().renew_time =
        Some(MicroTime("2026-12-01T10:00:10Z".parse().unwrap()));
    api.replace("vc-operator", &PostParams::default(), &renew).await.unwrap();
    let mut steal = b;
    steal.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let err = api.replace("vc-operator", &PostParams::default(), &steal).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    let stored = api.get("vc-operator").await.unwrap();
    assert_eq!(stored.spec.unwrap().holder_identity.as_deref(), Some("a"));
}

#[test]
fn the_request_log_tells_lease_renewals_and_watches_from_other_writes() {
    let fk = FakeKube::start();
    fk.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vc-system"}}))
        .unwrap();
    assert_eq!(post(&fk, LEASES, &lease("a")).code, 201);
    fk.clear_requests();
    let current = get(&fk, &format!("{LEASES}/vc-operator")).json();
    let r = http(
        &fk,
        "PUT",
        &format!("{LEASES}/vc-operator"),
        "application/json",
        &current.to_string(),
    );
    assert_eq!(r.code, 200);
    let w = get(&fk, "/api/v1/namespaces/vc-system/configmaps?watch=true&timeoutSeconds=1");
    assert_eq!(w.code, 200);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(post(&fk, "/api/v1/namespaces/vc-system/configmaps", &cm).code, 201);
    let log = fk.requests();
    let kinds: Vec<(bool, bool, bool)> =
        log.iter().map(|r| (r.is_lease(), r.is_watch(), r.is_write())).collect();
    assert_eq!(
        kinds,
        [(true, false, false), (true, false, true), (false, true, false), (false, false, true)]
    );
    let other_writes: Vec<_> = log.iter().filter(|r| r.is_write() && !r.is_lease()).collect();
    assert_eq!(other_writes.len(), 1);
    assert_eq!(other_writes[0].path, "/api/v1/namespaces/vc-system/configmaps");
}
