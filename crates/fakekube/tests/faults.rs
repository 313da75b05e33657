//! Faults on demand: refused connections, fixed error responses, delays, dropped watches,
//! and the request log tests use to count calls.

mod common;

use std::time::{Duration, Instant};

use common::get;
use fakekube::{ApiError, FakeKube, Fault, FaultAction};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

#[test]
fn refused_connections_fail_to_connect_and_recover() {
    let fk = FakeKube::start();
    assert_eq!(get(&fk, "/version").code, 200);
    fk.refuse_connections(true);
    let err = std::net::TcpStream::connect(fk.addr()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    fk.refuse_connections(false);
    assert_eq!(get(&fk, "/version").code, 200);
}

#[tokio::test]
async fn refused_connections_break_pooled_clients() {
    let fk = FakeKube::start_async().await;
    let client = common::client(&fk).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.list(&ListParams::default()).await.unwrap();
    fk.refuse_connections(true);
    assert!(
        cms.list(&ListParams::default()).await.is_err(),
        "a kept-alive connection is closed too"
    );
    fk.refuse_connections(false);
    cms.list(&ListParams::default()).await.unwrap();
}

#[test]
fn fixed_status_for_matching_requests() {
    let fk = FakeKube::start();
    fk.fail(Some("GET"), "/configmaps", 500);
    let r = get(&fk, "/api/v1/namespaces/default/configmaps");
    assert_eq!(r.code, 500);
    assert_eq!(r.json()["reason"], "InternalError");
    assert_eq!(
        get(&fk, "/api/v1/namespaces/default/secrets").code,
        200,
        "other paths are untouched"
    );
    fk.clear_faults();

    fk.add_fault(Fault {
        path_contains: "/secrets".into(),
        action: FaultAction::Respond(ApiError::unauthorized()),
        remaining: Some(1),
        ..Fault::default()
    });
    assert_eq!(get(&fk, "/api/v1/namespaces/default/secrets").code, 401);
    assert_eq!(get(&fk, "/api/v1/namespaces/default/secrets").code, 200, "the fault was used up");

    fk.fail_verb("watch", "/pods", 403);
    assert_eq!(get(&fk, "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1").code, 403);
    assert_eq!(get(&fk, "/api/v1/namespaces/default/pods/x").code, 404, "only watches fail");
    fk.clear_faults();
    fk.fail(None, "/api/v1/namespaces/default/pods", 403);
    let r = get(&fk, "/api/v1/namespaces/default/pods");
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json()["message"],
        "pods is forbidden: User \"fakekube-user\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
}

#[test]
fn slow_responses() {
    let fk = FakeKube::start();
    fk.delay(Some("GET"), "/version", Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(get(&fk, "/version").code, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn request_log_counts_calls_and_watches_can_be_dropped() {
    let fk = FakeKube::start_async().await;
    let client = common::client(&fk).await;
    let cms: Api<ConfigMap> = Api::all(client);
    fk.clear_requests();
    cms.list(&ListParams::default().labels("app=vcluster")).await.unwrap();
    assert_eq!(fk.count_requests("list", "/configmaps"), 1);
    assert_eq!(fk.requests().len(), 1);
    assert_eq!(fk.requests()[0].query, "&labelSelector=app%3Dvcluster");

    let mut stream = cms.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    assert!(matches!(stream.try_next().await.unwrap(), Some(WatchEvent::Added(_))));
    fk.drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            assert!(matches!(ev, WatchEvent::Added(_)), "{ev:?}");
        }
    })
    .await;
    assert!(end.is_ok(), "the watch stream ended");
    assert_eq!(fk.count_requests("watch", "/configmaps"), 1);
}

#[tokio::test]
async fn access_reviews_follow_injected_denials() {
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    use kube::api::PostParams;

    let fk = FakeKube::start_async().await;
    let client = common::client(&fk).await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client);
    let review = |verb: &str, resource: &str, ns: Option<&str>| -> SelfSubjectAccessReview {
        serde_json::from_value(serde_json::json!({
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": ns, "group": ""}}
        }))
        .unwrap()
    };
    let allowed = |r: SelfSubjectAccessReview| r.status.unwrap().allowed;
    let pp = PostParams::default();
    assert!(allowed(reviews.create(&pp, &review("create", "namespaces", None)).await.unwrap()));
    fk.forbid(Some("POST"), "/api/v1/namespaces$", "alice");
    assert!(!allowed(reviews.create(&pp, &review("create", "namespaces", None)).await.unwrap()));
    assert!(allowed(
        reviews.create(&pp, &review("create", "configmaps", Some("default"))).await.unwrap()
    ));
    assert!(allowed(reviews.create(&pp, &review("list", "pods", Some("default"))).await.unwrap()));
    assert_eq!(fk.count("selfsubjectaccessreviews", None), 0, "reviews are not stored");
}
