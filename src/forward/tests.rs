//! Forward transport and forwarder tests against fakekube's port-forward endpoint, bridged to
//! local echo servers. No real cluster.

use std::net::SocketAddr;
use std::time::Duration;

use fakekube::portforward::{PortForwards, serve_standalone};
use kube::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::forwarder::ForwarderExit;
use super::*;

const NS: &str = "vc-dev";
const POD: &str = "dev-0";

/// A TCP echo server on loopback; it runs until the test's runtime ends.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo_loop(listener));
    addr
}

async fn echo_loop(listener: TcpListener) {
    while let Ok((mut conn, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (mut r, mut w) = conn.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

async fn fake(pf: &PortForwards) -> Client {
    let url = serve_standalone(pf.clone()).await.unwrap();
    Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

async fn round_trip(port: u16, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut r, mut w) = conn.split();
    let mut back = vec![0u8; payload.len()];
    let (written, read) = tokio::join!(w.write_all(payload), r.read_exact(&mut back));
    written?;
    read?;
    Ok(back)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn bytes_flow_and_new_connections_work_after_streams_drop() {
    let pf = PortForwards::new();
    pf.set_target(NS, POD, CONTROL_PLANE_PORT, echo_server().await);
    let client = fake(&pf).await;
    let forward =
        Forward::start(client, PodTarget::new(NS, POD, CONTROL_PLANE_PORT), 0).await.unwrap();
    let port = forward.local_port();

    let payload = pattern(3 * 1024 * 1024 + 17);
    assert_eq!(round_trip(port, &payload).await.unwrap(), payload);
    assert_eq!(round_trip(port, b"ping").await.unwrap(), b"ping");

    // A connection open while every stream breaks is closed; the next one works on the same port.
    let mut held = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    held.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    held.read_exact(&mut one).await.unwrap();
    pf.drop_all();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), held.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the broken stream did not close the local connection");
    assert_eq!(round_trip(port, &payload).await.unwrap(), payload);
    assert_eq!(forward.local_port(), port);
    assert!(pf.opened() >= 4, "one stream per connection, got {}", pf.opened());
}

#[tokio::test]
async fn a_connection_waits_while_the_pod_is_missing_or_refusing() {
    let pf = PortForwards::new();
    let client = fake(&pf).await;
    let forward =
        Forward::start(client, PodTarget::new(NS, POD, CONTROL_PLANE_PORT), 0).await.unwrap();
    let port = forward.local_port();

    // Pod missing (404 before the upgrade): the connection waits and retries.
    let pending = tokio::spawn(round_trip(port, b"hello from a waiting client"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    pf.set_target(NS, POD, CONTROL_PLANE_PORT, echo_server().await);
    let back = tokio::time::timeout(Duration::from_secs(10), pending).await.unwrap().unwrap();
    assert_eq!(back.unwrap(), b"hello from a waiting client");

    // The pod exists but nothing listens yet (its server restarting): the bytes already sent
    // are replayed on the next stream once it listens.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    pf.set_target(NS, POD, CONTROL_PLANE_PORT, addr);
    let pending = tokio::spawn(round_trip(port, b"replayed"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    tokio::spawn(echo_loop(TcpListener::bind(addr).await.unwrap()));
    let back = tokio::time::timeout(Duration::from_secs(10), pending).await.unwrap().unwrap();
    assert_eq!(back.unwrap(), b"replayed");
}

#[tokio::test]
async fn a_requested_port_in_use_is_a_typed_error() {
    let pf = PortForwards::new();
    let client = fake(&pf).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Forward::start(client, PodTarget::new(NS, POD, 1), port).await.unwrap_err();
    assert!(matches!(err, ForwardError::PortInUse { port: p } if p == port), "{err}");
    assert_eq!(err.exit(), crate::error::Exit::Conflict);
}

fn forwarder_options(dir: &std::path::Path, port: u16, gone_after: Duration) -> ForwarderOptions {
    ForwarderOptions {
        kubeconfig: None,
        host_context: "fake".into(),
        host_server: "http://127.0.0.1:1".into(),
        namespace: NS.into(),
        name: "dev".into(),
        local_port: port,
        state_dir: Some(dir.to_path_buf()),
        gone_after,
    }
}

#[tokio::test]
async fn forwarder_records_its_state_serves_and_stops_when_asked() {
    let pf = PortForwards::new();
    pf.set_target(NS, POD, CONTROL_PLANE_PORT, echo_server().await);
    let client = fake(&pf).await;
    let dir = tempfile::tempdir().unwrap();
    let port = pick_port(None, None).unwrap();
    // The standalone endpoint answers 404 for the pod object itself: a long grace keeps the
    // forwarder from deciding the cluster is gone.
    let opts = forwarder_options(dir.path(), port, Duration::from_secs(3600));
    let key = opts.key();
    let store = ForwardStore::at(dir.path());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(run_forwarder_with_client(client, opts, async {
        let _ = stop_rx.await;
    }));

    let mut status = None;
    for _ in 0..100 {
        status = store.status(&key).await.unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("state file written once ready");
    assert_eq!(status.state.pid, std::process::id());
    assert_eq!(status.state.port, port);
    assert_eq!(status.state.host_context, "fake");
    assert!(status.alive && status.answering);
    assert_eq!(store.list_statuses().await.unwrap().len(), 1);
    assert_eq!(round_trip(port, b"through the forwarder").await.unwrap(), b"through the forwarder");

    stop_tx.send(()).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), run).await.unwrap().unwrap().unwrap();
    assert_eq!(exit, ForwarderExit::Asked);
    // The state file stays so the next forwarder reuses the port; the listener is gone.
    assert_eq!(store.read(&key).unwrap().map(|s| s.port), Some(port));
    assert_eq!(pick_port(None, Some(port)).unwrap(), port);
    let log = std::fs::read_to_string(store.log_path(&key)).unwrap();
    assert!(log.contains("ready on 127.0.0.1:") && log.contains("stopping: asked to"), "{log}");
}

#[tokio::test]
async fn forwarder_exits_when_the_cluster_is_gone() {
    let pf = PortForwards::new();
    let client = fake(&pf).await;
    let dir = tempfile::tempdir().unwrap();
    let port = pick_port(None, None).unwrap();
    let opts = forwarder_options(dir.path(), port, Duration::ZERO);
    let run = run_forwarder_with_client(client, opts, std::future::pending());
    let exit = tokio::time::timeout(Duration::from_secs(10), run).await.unwrap().unwrap();
    assert_eq!(exit, ForwarderExit::ClusterGone);
}

fn statefulset(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "vcluster", "release": name}},
        "spec": {
            "replicas": 1,
            "serviceName": format!("{name}-headless"),
            "selector": {"matchLabels": {"app": "vcluster", "release": name}},
            "template": {
                "metadata": {"labels": {"app": "vcluster", "release": name}},
                "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}
            }
        }
    })
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Through the whole fake: the client comes from a kubeconfig file, the pod restarts under the
/// StatefulSet (streams break, the gap answers 404) and the forwarder carries on on the same
/// port, then exits once the StatefulSet and the pod are gone.
#[tokio::test]
async fn forwarder_survives_a_pod_restart_and_exits_when_the_cluster_is_deleted() {
    let fk = fakekube::FakeKube::start_async().await;
    fk.put(statefulset("dev")).unwrap();
    fk.set_port_forward_target(NS, POD, CONTROL_PLANE_PORT, echo_server().await);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    fk.write_kubeconfig(&kubeconfig, "fake-host").unwrap();

    let port = pick_port(None, None).unwrap();
    let mut opts = forwarder_options(dir.path(), port, Duration::from_millis(500));
    opts.kubeconfig = Some(kubeconfig);
    opts.host_context = "fake-host".into();
    let client = forwarder::host_client(&opts).await.unwrap();
    let store = ForwardStore::at(dir.path());
    let key = opts.key();
    let run = tokio::spawn(run_forwarder_with_client(client, opts, std::future::pending()));
    wait_for("the state file", || async { store.status(&key).await.unwrap().is_some() }).await;
    assert_eq!(round_trip(port, b"before").await.unwrap(), b"before");

    let mut held = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    held.write_all(b"x").await.unwrap();
    held.read_exact(&mut [0u8; 1]).await.unwrap();
    fk.delete("pods", NS, POD).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), held.read_to_end(&mut rest))
        .await
        .expect("the restarted pod's stream closes the local connection")
        .ok();
    assert_eq!(round_trip(port, b"after the restart").await.unwrap(), b"after the restart");

    fk.remove_now("statefulsets", NS, "dev");
    fk.remove_now("pods", NS, POD);
    let exit = tokio::time::timeout(Duration::from_secs(10), run).await.unwrap().unwrap().unwrap();
    assert_eq!(exit, ForwarderExit::ClusterGone);
    assert_eq!(store.read(&key).unwrap(), None);
}

/// `spawn_background` reports a child that stops early with the end of its log, and maps exit
/// code 6 (what `vc forwarder` returns for a port in use) to the typed error.
#[tokio::test]
async fn spawn_background_reports_an_early_exit() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake-vc");
    let mut opts = SpawnOptions {
        kubeconfig: None,
        host_context: "fake".into(),
        host_server: "http://127.0.0.1:1".into(),
        namespace: NS.into(),
        name: "dev".into(),
        local_port: None,
        ready_timeout: Duration::from_secs(10),
        program: Some(script.clone()),
        state_dir: Some(dir.path().join("state")),
    };
    for (code, port_in_use) in [(3, false), (6, true)] {
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"cannot start: $1 $2\" >&2\nexit {code}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = spawn_background(&opts).await.unwrap_err();
        match err {
            ForwardError::PortInUse { .. } => assert!(port_in_use),
            ForwardError::ForwarderExited { ref tail, .. } => {
                assert!(!port_in_use);
                assert!(tail.contains("cannot start: forwarder dev"), "{tail}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    opts.ready_timeout = Duration::from_millis(300);
    std::fs::write(&script, "#!/bin/sh\nsleep 30\n").unwrap();
    let err = spawn_background(&opts).await.unwrap_err();
    assert!(matches!(err, ForwardError::NotReady { .. }), "{err}");
    assert_eq!(err.exit(), crate::error::Exit::Timeout);
}
