//! kube-rs against the fake: CRUD, server-side apply, watcher, await_condition, 410 relist,
//! and the StatefulSet -> pod -> Ready -> engine Secret chain.

mod common;

use std::time::Duration;

use fakekube::FakeKube;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, wait::await_condition, watcher};
use serde_json::json;

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "x"}}, "data": {"k": value}}),
    )
    .unwrap()
}

#[tokio::test]
async fn crud_round_trip() {
    let fk = FakeKube::start_async().await;
    let client = common::client(&fk).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = cms.create(&PostParams::default(), &configmap("a", "1")).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("a"));
    assert!(created.metadata.uid.is_some());
    let rv1: u64 = created.metadata.resource_version.clone().unwrap().parse().unwrap();

    let got = cms.get("a").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "1");

    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "2".to_string())].into());
    let replaced = cms.replace("a", &PostParams::default(), &changed).await.unwrap();
    let rv2: u64 = replaced.metadata.resource_version.clone().unwrap().parse().unwrap();
    assert!(rv2 > rv1);

    let stale = cms.replace("a", &PostParams::default(), &changed).await.unwrap_err();
    assert!(
        matches!(stale, kube::Error::Api(ref e) if e.code == 409 && e.reason == "Conflict"),
        "{stale:?}"
    );

    let patched = cms
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"extra": "x"}})))
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap().len(), 2);

    cms.create(&PostParams::default(), &configmap("b", "1")).await.unwrap();
    let listed = cms.list(&ListParams::default().labels("app=x")).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(listed.metadata.resource_version.is_some());
    let by_name = cms.list(&ListParams::default().fields("metadata.name=b")).await.unwrap();
    assert_eq!(by_name.items.len(), 1);
    let all: Api<ConfigMap> = Api::all(client.clone());
    let everywhere = all.list(&ListParams::default().labels("app in (x,y)")).await.unwrap();
    assert_eq!(everywhere.items.len(), 2);

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let gone = cms.get("a").await.unwrap_err();
    assert!(matches!(gone, kube::Error::Api(ref e) if e.code == 404), "{gone:?}");
    assert_eq!(fk.count("configmaps", Some("default")), 2, "b and kube-root-ca.crt remain");
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_conflicts() {
    let fk = FakeKube::builder().controllers(false).start();
    let client = common::client(&fk).await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let manifest = |replicas: i32, image: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "app", "image": image}]}},
            }
        })
    };
    let created = sts
        .patch("web", &PatchParams::apply("kubectl"), &Patch::Apply(manifest(1, "nginx:1")))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let mf = created.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("kubectl"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    let conflict = sts
        .patch("web", &PatchParams::apply("vc"), &Patch::Apply(manifest(2, "nginx:1")))
        .await
        .unwrap_err();
    match conflict {
        kube::Error::Api(e) => {
            assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
            assert_eq!(
                e.message,
                "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
            );
        }
        other => panic!("{other:?}"),
    }

    let forced = sts
        .patch("web", &PatchParams::apply("vc").force(), &Patch::Apply(manifest(2, "nginx:1")))
        .await
        .unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(forced.metadata.generation, Some(2));

    let again = sts
        .patch("web", &PatchParams::apply("vc").force(), &Patch::Apply(manifest(2, "nginx:1")))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, forced.metadata.resource_version,
        "no-op apply keeps the RV"
    );

    // A keyed merge: a second manager adds a sidecar without touching the first container.
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}
    });
    let merged =
        sts.patch("web", &PatchParams::apply("other"), &Patch::Apply(sidecar)).await.unwrap();
    let containers = merged.spec.unwrap().template.spec.unwrap().containers;
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "sidecar"]);
}

#[tokio::test]
async fn statefulset_gets_ready_pod_pvc_and_engine_secret() {
    let fk = FakeKube::start_async().await;
    let client = common::client(&fk).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "vc-dev"}})).unwrap(),
        )
        .await
        .unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "vc-dev");
    let labels = json!({"app": "vcluster", "release": "dev"});
    sts.patch(
        "dev",
        &PatchParams::apply("vc"),
        &Patch::Apply(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "dev", "labels": labels},
            "spec": {"selector": {"matchLabels": labels}, "serviceName": "dev-headless",
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}]}
        })),
    )
    .await
    .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "vc-dev");
    let ready = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    tokio::time::timeout(Duration::from_secs(5), await_condition(pods.clone(), "dev-0", ready))
        .await
        .expect("pod became Ready in time")
        .unwrap();
    let pod = pods.get("dev-0").await.unwrap();
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("StatefulSet", "dev"));
    assert_eq!(pod.metadata.labels.unwrap()["release"], "dev");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "vc-dev");
    let secret = tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(secrets.clone(), "vc-dev", |s: Option<&Secret>| s.is_some()),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let config = String::from_utf8(secret.data.unwrap()["config"].0.clone()).unwrap();
    assert!(config.contains("server: https://localhost:8443"), "{config}");

    let status = sts.get_status("dev").await.unwrap().status.unwrap();
    assert_eq!(status.ready_replicas, Some(1));
    assert!(fk.get("pvc", "vc-dev", "data-dev-0").is_some());

    sts.delete("dev", &DeleteParams::background()).await.unwrap();
    // Pods terminate for the pod grace period (default 100 ms) before they go.
    assert!(
        fk.get("pods", "vc-dev", "dev-0").unwrap()["metadata"]["deletionTimestamp"].is_string()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fk.get("pods", "vc-dev", "dev-0").is_none(), "pods are garbage-collected");
    assert!(fk.get("pvc", "vc-dev", "data-dev-0").is_some(), "PVCs are retained");
}

#[tokio::test]
async fn watcher_sees_changes_and_relists_after_410() {
    let fk = FakeKube::start_async().await;
    let client = common::client(&fk).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let mut stream =
        watcher(cms.clone(), watcher::Config::default().labels("app=x")).applied_objects().boxed();
    let waiter = tokio::spawn(async move {
        let first = stream.try_next().await;
        (first, stream)
    });
    while fk.count_requests("watch", "/configmaps") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cms.create(&PostParams::default(), &configmap("w1", "1")).await.unwrap();
    let (first, mut stream) =
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    assert_eq!(first.unwrap().unwrap().metadata.name.as_deref(), Some("w1"));
    assert_eq!(fk.count_requests("list", "/configmaps"), 1);

    // Move the RV on, forget history and end the stream: the watcher re-watches from w1's
    // RV, gets 410 Gone and relists.
    fk.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated", "namespace": "default"}}))
        .unwrap();
    fk.compact();
    fk.drop_watches();
    cms.create(&PostParams::default(), &configmap("w2", "1")).await.unwrap();
    let mut seen = Vec::new();
    while !seen.contains(&"w2".to_string()) {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await.unwrap();
        if let Ok(Some(cm)) = next {
            seen.push(cm.metadata.name.unwrap());
        }
    }
    assert_eq!(
        fk.count_requests("list", "/configmaps"),
        2,
        "the watcher relisted: {:?}",
        fk.requests()
    );

    // A raw watch from an expired RV gets an ERROR event with 410 Gone.
    let mut raw = cms.watch(&WatchParams::default().timeout(2), "1").await.unwrap().boxed();
    match raw.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn deployment_gets_replicaset_and_pods() {
    let fk = FakeKube::builder().ready_delay(Duration::ZERO).start();
    fk.put(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    assert_eq!(fk.count("replicasets", Some("default")), 1);
    assert_eq!(fk.count("pods", Some("default")), 2);
    let status = &fk.get("deployments", "default", "d").unwrap()["status"];
    assert_eq!(status["readyReplicas"], 2);
    fk.delete("deployments", "default", "d").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the pods' grace period
    assert_eq!(fk.count("pods", Some("default")), 0);
    assert_eq!(fk.count("replicasets", Some("default")), 0);
}

#[tokio::test]
async fn custom_resources_are_served_once_their_crd_exists() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    use kube::discovery::Discovery;

    let fk = FakeKube::start_async().await;
    let client = common::client(&fk).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "virtualclusters.vc.dev"},
        "spec": {
            "group": "vc.dev", "scope": "Namespaced",
            "names": {"plural": "virtualclusters", "singular": "virtualcluster", "kind": "VirtualCluster", "shortNames": ["vcl"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    crds.patch("virtualclusters.vc.dev", &PatchParams::apply("vc"), &Patch::Apply(crd))
        .await
        .unwrap();
    let established = |c: Option<&CustomResourceDefinition>| {
        c.and_then(|c| c.status.as_ref()?.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(crds.clone(), "virtualclusters.vc.dev", established),
    )
    .await
    .unwrap()
    .unwrap();

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let gvk = GroupVersionKind::gvk("vc.dev", "v1alpha1", "VirtualCluster");
    let (ar, caps) = discovery.resolve_gvk(&gvk).expect("discovered");
    assert!(caps.supports_operation(kube::discovery::verbs::PATCH));
    let vcs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk));
    assert_eq!(ar.plural, "virtualclusters");
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "vc.dev/v1alpha1", "kind": "VirtualCluster", "metadata": {"name": "dev"}, "spec": {"kubernetesVersion": "1.33"}
    }))
    .unwrap();
    vcs.create(&PostParams::default(), &obj).await.unwrap();
    vcs.patch_status(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Ready"}})),
    )
    .await
    .unwrap();
    let got = vcs.get("dev").await.unwrap();
    assert_eq!(got.data["status"]["phase"], "Ready");
    assert_eq!(got.metadata.generation, Some(1));
    assert_eq!(vcs.list(&ListParams::default()).await.unwrap().items.len(), 1);

    crds.delete("virtualclusters.vc.dev", &DeleteParams::default()).await.unwrap();
    assert!(vcs.list(&ListParams::default()).await.is_err(), "the type is gone with its CRD");
}
