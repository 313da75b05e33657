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

/// Options and a client for a forwarder whose host is `fk`, through a kubeconfig file in `dir`.
async fn fake_host_forwarder(
    fk: &fakekube::FakeKube,
    dir: &std::path::Path,
    gone_after: Duration,
) -> (ForwarderOptions, Client) {
    let kubeconfig = dir.join("config");
    fk.write_kubeconfig(&kubeconfig, "fake-host").unwrap();
    let port = pick_port(None, None).unwrap();
    let mut opts = forwarder_options(dir, port, gone_after);
    opts.kubeconfig = Some(kubeconfig);
    opts.host_context = "fake-host".into();
    let client = forwarder::host_client(&opts).await.unwrap();
    (opts, client)
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
    let (opts, client) = fake_host_forwarder(&fk, dir.path(), Duration::from_millis(500)).await;
    let port = opts.local_port;
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

fn spawn_options(dir: &std::path::Path, script: &std::path::Path) -> SpawnOptions {
    SpawnOptions {
        kubeconfig: None,
        host_context: "fake".into(),
        host_server: "http://127.0.0.1:1".into(),
        namespace: NS.into(),
        name: "dev".into(),
        local_port: None,
        ready_timeout: Duration::from_secs(10),
        program: Some(script.to_path_buf()),
        state_dir: Some(dir.join("state")),
    }
}

fn write_script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A lock file serialises concurrent starts: the second waits until the first is released; a
/// lock left by a dead process or older than a minute is taken over.
#[tokio::test]
async fn the_forward_lock_is_exclusive_and_stale_locks_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ForwardStore::at(dir.path());
    let key = ForwardKey::new("h", NS, "dev");
    let first = store.lock(&key, Duration::from_secs(1)).await.unwrap();
    let err = store.lock(&key, Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(err, ForwardError::Io { action: "lock", .. }), "{err}");
    let waiting = {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move { store.lock(&key, Duration::from_secs(5)).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    drop(first);
    waiting.await.unwrap().unwrap();
    assert!(!store.lock_path(&key).exists(), "the lock file is removed on drop");

    // Held by a process that has exited: taken over at once.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(store.lock_path(&key), format!("{gone_pid} 12345\n")).unwrap();
    drop(store.lock(&key, Duration::from_millis(200)).await.unwrap());

    // Unreadable holder but older than a minute: taken over.
    std::fs::write(store.lock_path(&key), "").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(store.lock_path(&key))
        .unwrap()
        .set_modified(old)
        .unwrap();
    drop(store.lock(&key, Duration::from_millis(200)).await.unwrap());
}

/// A forwarder that finds a live state file of another process steps aside instead of
/// overwriting it.
#[tokio::test]
async fn forwarder_does_not_overwrite_a_live_state_file() {
    let pf = PortForwards::new();
    pf.set_target(NS, POD, CONTROL_PLANE_PORT, echo_server().await);
    let client = fake(&pf).await;
    let dir = tempfile::tempdir().unwrap();
    let port = pick_port(None, None).unwrap();
    let opts = forwarder_options(dir.path(), port, Duration::from_secs(3600));
    let store = ForwardStore::at(dir.path());
    let mut other = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let live = ForwardState {
        pid: other.id(),
        port: 1,
        host_context: "fake".into(),
        host_server: opts.host_server.clone(),
        namespace: NS.into(),
        name: "dev".into(),
        started: jiff::Timestamp::now(),
        pid_start_time: state_start_time(other.id()),
    };
    store.write(&live).unwrap();
    let run = run_forwarder_with_client(client, opts.clone(), std::future::pending());
    let exit = tokio::time::timeout(Duration::from_secs(10), run).await.unwrap().unwrap();
    assert_eq!(exit, ForwarderExit::Superseded { pid: other.id() });
    assert_eq!(store.read(&opts.key()).unwrap(), Some(live));
    let _ = other.kill();
    let _ = other.wait();
}

fn state_start_time(pid: u32) -> String {
    super::state::process_start_time(pid).unwrap()
}

/// 401/403 from the host end start-up at once instead of being retried until the timeout.
#[tokio::test]
async fn forwarder_start_up_ends_at_once_on_a_permanent_error() {
    let fk = fakekube::FakeKube::start_async().await;
    fk.put(statefulset("dev")).unwrap();
    fk.set_port_forward_target(NS, POD, CONTROL_PLANE_PORT, echo_server().await);
    fk.fail(None, "portforward", 403);
    let dir = tempfile::tempdir().unwrap();
    let (opts, client) = fake_host_forwarder(&fk, dir.path(), Duration::from_secs(3600)).await;
    let run = run_forwarder_with_client(client, opts.clone(), std::future::pending());
    let err = tokio::time::timeout(Duration::from_secs(3), run)
        .await
        .expect("a 403 must not be retried")
        .unwrap_err();
    assert_eq!(err.exit(), crate::error::Exit::Unreachable, "{err}");
    assert_eq!(ForwardStore::at(dir.path()).read(&opts.key()).unwrap(), None);
}

/// Dropping `spawn_background` (Ctrl-C) before the forwarder is ready kills the child.
#[tokio::test]
async fn dropping_spawn_background_kills_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake-vc");
    let pid_file = dir.path().join("pid");
    write_script(&script, &format!("echo $$ > {}\nexec sleep 30", pid_file.display()));
    let opts = spawn_options(dir.path(), &script);
    let spawned = tokio::time::timeout(Duration::from_millis(500), spawn_background(&opts)).await;
    assert!(spawned.is_err(), "still waiting for readiness");
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_eq!(super::state::process_start_time(pid), None, "child {pid} still running");
    // The lock went with it: the next start is not blocked.
    let store = ForwardStore::at(dir.path().join("state"));
    assert!(!store.lock_path(&opts.key()).exists());
}

/// Exit code 5 from the child is a host error; exit 6 on an auto-picked port is retried once
/// on a new port.
#[tokio::test]
async fn spawn_background_maps_child_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake-vc");
    let count = dir.path().join("count");
    let opts = spawn_options(dir.path(), &script);
    write_script(&script, "echo 'cannot reach the host: 401' >&2\nexit 5");
    let err = spawn_background(&opts).await.unwrap_err();
    assert!(matches!(err, ForwardError::Host { .. }), "{err}");
    assert_eq!(err.exit(), crate::error::Exit::Unreachable);

    write_script(&script, &format!("echo \"$8 $9\" >> {}\nexit 6", count.display()));
    let err = spawn_background(&opts).await.unwrap_err();
    assert!(matches!(err, ForwardError::PortInUse { .. }), "{err}");
    let runs = std::fs::read_to_string(&count).unwrap();
    assert_eq!(runs.lines().count(), 2, "{runs}");

    // With --local-port, no second try.
    std::fs::remove_file(&count).unwrap();
    let mut fixed = opts.clone();
    fixed.local_port = Some(pick_port(None, None).unwrap());
    let err = spawn_background(&fixed).await.unwrap_err();
    assert!(matches!(err, ForwardError::PortInUse { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1);
}

/// A connection closed before sending anything (a liveness check) opens no upstream stream.
#[tokio::test]
async fn a_connection_that_sends_nothing_opens_no_stream() {
    let pf = PortForwards::new();
    pf.set_target(NS, POD, CONTROL_PLANE_PORT, echo_server().await);
    let client = fake(&pf).await;
    let forward =
        Forward::start(client, PodTarget::new(NS, POD, CONTROL_PLANE_PORT), 0).await.unwrap();
    let port = forward.local_port();
    for _ in 0..3 {
        assert!(super::state::port_answers(port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pf.opened(), 0);
    assert_eq!(round_trip(port, b"hello").await.unwrap(), b"hello");
    assert_eq!(pf.opened(), 1);
}

/// A host that accepts the connection but never answers the upgrade: the local connection is
/// closed once the connect timeout has passed.
#[tokio::test]
async fn opening_a_stream_gives_up_at_the_connect_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let listener = bind_local(0).unwrap();
    let options =
        ForwardOptions { connect_timeout: Duration::from_millis(300), ..Default::default() };
    let forward =
        Forward::from_listener(client.clone(), PodTarget::new(NS, POD, 1), listener, options)
            .unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", forward.local_port())).await.unwrap();
    conn.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest))
        .await
        .expect("the connection is closed at the connect timeout")
        .ok();

    let err = tokio::time::timeout(
        Duration::from_secs(5),
        super::transport::probe(
            &client,
            &PodTarget::new(NS, POD, 1),
            Duration::from_millis(10),
            Duration::from_millis(300),
        ),
    )
    .await
    .expect("the probe gives up at its timeout")
    .unwrap_err();
    assert!(matches!(err, ForwardError::StreamTimeout { .. }), "{err}");
    assert_eq!(err.exit(), crate::error::Exit::Timeout);
}

/// The forwarder gives up when the host stays unreachable for the host limit.
#[tokio::test]
async fn forwarder_exits_when_the_host_stays_unreachable() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client =
        Client::try_from(kube::Config::new(format!("http://{closed}").parse().unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = pick_port(None, None).unwrap();
    let opts = forwarder_options(dir.path(), port, Duration::from_secs(3600));
    let log = super::state::Log::none();
    let run =
        forwarder::serve(client, opts, std::future::pending(), log, Duration::from_millis(300));
    let exit = tokio::time::timeout(Duration::from_secs(10), run).await.unwrap().unwrap();
    assert_eq!(exit, ForwarderExit::HostGone);
}

/// One unmasked server frame (binary, final, payload under 126 bytes).
fn pod_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x82, u8::try_from(payload.len()).unwrap()];
    frame.extend_from_slice(payload);
    frame
}

/// A local connection pair: what the forward holds, and the client end.
async fn local_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (server, client)
}

/// The stream breaks (a cut frame) after the port frames but before the pod answered: the
/// bytes sent so far are kept for a retry instead of failing the connection.
#[tokio::test]
async fn a_stream_broken_before_the_pod_answered_is_retried_with_the_replay() {
    use super::transport::{Ended, relay};
    let (mut local, _client) = local_pair().await;
    let (ours, mut pod) = tokio::io::duplex(64 * 1024);
    let mut wire = pod_frame(&[0, 0xfb, 0x20]);
    wire.extend(pod_frame(&[1, 0xfb, 0x20]));
    // A frame header announcing 10 bytes, then the end: cut before any payload, so the pod
    // has sent nothing the local side could have seen.
    wire.extend([0x82, 10]);
    pod.write_all(&wire).await.unwrap();
    drop(pod);
    let mut replay = b"hello".to_vec();
    let ended = tokio::time::timeout(Duration::from_secs(5), relay(ours, &mut local, &mut replay))
        .await
        .unwrap()
        .expect("a broken stream before any answer is not a relay error");
    match ended {
        Ended::Refused { retry, .. } => assert!(retry),
        Ended::Done(_) => panic!("the connection was ended"),
    }
    assert_eq!(replay, b"hello");
}

/// An error-channel message after the pod answered is reported, not dropped.
#[tokio::test]
async fn an_error_after_the_pod_answered_is_reported() {
    use super::transport::{Ended, relay};
    let (mut local, mut client) = local_pair().await;
    let (ours, mut pod) = tokio::io::duplex(64 * 1024);
    let mut wire = pod_frame(&[0, 0xfb, 0x20]);
    wire.extend(pod_frame(&[1, 0xfb, 0x20]));
    wire.extend(pod_frame(b"\x00hi"));
    wire.extend(pod_frame(b"\x01connection reset by peer"));
    wire.extend([0x88, 0]);
    pod.write_all(&wire).await.unwrap();
    let mut replay = b"hello".to_vec();
    let ended = tokio::time::timeout(Duration::from_secs(5), relay(ours, &mut local, &mut replay))
        .await
        .unwrap()
        .unwrap();
    let Ended::Done(stats) = ended else { panic!("refused after an answer") };
    assert_eq!(stats.error.as_deref(), Some("connection reset by peer"));
    let mut got = [0u8; 2];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hi");
}

/// A child that exits 0 before it is ready found another live forwarder: the parent reuses it.
#[tokio::test]
async fn spawn_background_reuses_the_forwarder_that_won_the_race() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake-vc");
    let opts = spawn_options(dir.path(), &script);
    let store = ForwardStore::at(dir.path().join("state"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut other = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let live = ForwardState {
        pid: other.id(),
        port: listener.local_addr().unwrap().port(),
        host_context: "fake".into(),
        host_server: opts.host_server.clone(),
        namespace: NS.into(),
        name: "dev".into(),
        started: jiff::Timestamp::now(),
        pid_start_time: state_start_time(other.id()),
    };
    let prepared = dir.path().join("winner.json");
    std::fs::write(&prepared, serde_json::to_vec(&live).unwrap()).unwrap();
    let state_path = store.state_path(&opts.key());
    write_script(&script, &format!("cp {} {}\nexit 0", prepared.display(), state_path.display()));
    let status = spawn_background(&opts).await.unwrap();
    assert_eq!(status.state, live);
    assert!(status.alive && status.answering);
    let _ = other.kill();
    let _ = other.wait();
}

#[tokio::test]
async fn only_connections_that_carry_bytes_count_as_activity() {
    let pf = PortForwards::new();
    pf.set_target(NS, POD, CONTROL_PLANE_PORT, echo_server().await);
    let client = fake(&pf).await;
    let activity = std::sync::Arc::new(transport::Activity::default());
    let options = ForwardOptions { activity: Some(activity.clone()), ..ForwardOptions::default() };
    let listener = bind_local(0).unwrap();
    let forward = Forward::from_listener(
        client,
        PodTarget::new(NS, POD, CONTROL_PLANE_PORT),
        listener,
        options,
    )
    .unwrap();
    let port = forward.local_port();

    // A liveness check (connect, send nothing, close) is not a request.
    drop(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!activity.seen_after(0), "a bare TCP check counted as activity");

    // An open connection that sent something counts while it is open, and after it closes.
    let mut held = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    held.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    held.read_exact(&mut one).await.unwrap();
    assert!(activity.seen_after(u64::MAX), "an open connection is activity now");
    drop(held);
    assert!(activity.seen_after(0), "and it stays seen after it closed");
}
