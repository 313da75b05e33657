//! `pods/exec` through kube-rs: local processes in the container's working directory, stdin
//! closed over v5, exit codes in the final status, the engine's snapshot and restore over the
//! datastore stand-in, and shell init containers that hold a pod in Init.

mod common;

use std::time::Duration;

use fakekube::FakeKube;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn engine_pod(name: &str, init: Option<&str>) -> serde_json::Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{name}")}}],
            "containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1",
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        },
    });
    if let Some(script) = init {
        pod["spec"]["initContainers"] = json!([{
            "name": "wait", "image": "busybox", "command": ["sh", "-c", script], "workingDir": "/data",
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }]);
    }
    pod
}

async fn running_pod(fk: &FakeKube, pods: &Api<Pod>, name: &str) {
    fk.put(engine_pod(name, None)).unwrap();
    for _ in 0..100 {
        let pod = pods.get(name).await.unwrap();
        if pod.status.and_then(|s| s.container_statuses).is_some_and(|c| c.iter().all(|c| c.ready))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("pod {name} never became ready");
}

fn options(path: &str) -> String {
    let json = format!(r#"{{"type":"container","container":{{"path":"{path}"}}}}"#);
    fakekube_base64(json.as_bytes())
}

fn fakekube_base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

#[tokio::test]
async fn a_local_command_reads_stdin_to_its_end_over_v5_and_reports_its_exit_code() {
    let fk = FakeKube::start_async().await;
    let pods: Api<Pod> = Api::namespaced(common::client(&fk).await, "default");
    running_pod(&fk, &pods, "p").await;

    let mut attached = pods
        .exec(
            "p",
            ["sh", "-c", "wc -c; exit 3"],
            &AttachParams::default().container("syncer").stdin(true),
        )
        .await
        .unwrap();
    let mut stdin = attached.stdin().unwrap();
    stdin.write_all(&[b'x'; 100_000]).await.unwrap();
    stdin.shutdown().await.unwrap();
    let mut out = String::new();
    attached.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!(out.trim(), "100000");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert!(status.message.unwrap().contains("exit code 3"));
}

#[tokio::test]
async fn exec_into_a_missing_container_is_refused_before_the_upgrade() {
    let fk = FakeKube::start_async().await;
    let pods: Api<Pod> = Api::namespaced(common::client(&fk).await, "default");
    running_pod(&fk, &pods, "p").await;
    let err = pods
        .exec("p", ["true"], &AttachParams::default().container("nope"))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("400") || format!("{err}").contains("not valid"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_engine_snapshots_to_stdout_and_restores_into_another_datastore() {
    let fk = FakeKube::start_async().await;
    let pods: Api<Pod> = Api::namespaced(common::client(&fk).await, "default");
    running_pod(&fk, &pods, "src").await;
    running_pod(&fk, &pods, "dst").await;
    fk.datastore_put("default", "data-src", b"/registry/configmaps/default/a", b"one");
    fk.datastore_put(
        "default",
        "data-src",
        b"/registry/configmaps/default/kube-root-ca.crt",
        b"ca",
    );

    let snapshot_env = format!("VCLUSTER_STORAGE_OPTIONS={}", options("/dev/stdout"));
    let mut attached = pods
        .exec(
            "src",
            ["env", &snapshot_env, "/vcluster", "snapshot"],
            &AttachParams::default().container("syncer"),
        )
        .await
        .unwrap();
    let mut archive = Vec::new();
    attached.stdout().unwrap().read_to_end(&mut archive).await.unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");
    let keys = fakekube::exec::read_engine_archive(&archive, false).unwrap();
    assert_eq!(keys, fk.datastore("default", "data-src"));

    // Restore through a file in the data volume, as an init container would.
    std::fs::write(fk.exec().claim_dir("default", "data-dst").join("in.tar.gz"), &archive).unwrap();
    let restore_env = format!("VCLUSTER_STORAGE_OPTIONS={}", options("/data/in.tar.gz"));
    let mut attached = pods
        .exec(
            "dst",
            ["env", &restore_env, "/vcluster", "restore", "--new-vcluster"],
            &AttachParams::default().container("syncer"),
        )
        .await
        .unwrap();
    let mut log = String::new();
    attached.stderr().unwrap().read_to_string(&mut log).await.unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"), "{log}");
    let restored = fk.datastore("default", "data-dst");
    assert_eq!(restored.len(), 1, "kube-root-ca.crt is left out for a new cluster: {restored:?}");
    assert_eq!(restored[b"/registry/configmaps/default/a".as_slice()], b"one");
}

#[tokio::test]
async fn a_shell_init_container_holds_the_pod_until_it_exits() {
    let fk = FakeKube::start_async().await;
    let pods: Api<Pod> = Api::namespaced(common::client(&fk).await, "default");
    fk.put(engine_pod("held", Some("until [ -e go ]; do sleep 0.05; done"))).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pod = pods.get("held").await.unwrap();
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(status.init_container_statuses.unwrap()[0].state.as_ref().unwrap().running.is_some());

    let mut attached = pods
        .exec("held", ["sh", "-c", "touch go"], &AttachParams::default().container("wait"))
        .await
        .unwrap();
    assert_eq!(attached.take_status().unwrap().await.unwrap().status.as_deref(), Some("Success"));
    for _ in 0..100 {
        let pod = pods.get("held").await.unwrap();
        if pod.status.and_then(|s| s.phase).as_deref() == Some("Running") {
            assert_eq!(fk.exec().init_exit("default", "held", "wait"), Some(0));
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the pod never left Init");
}
