//! The `pods/{name}/exec` endpoint (WebSocket, `v5.channel.k8s.io` and `v4.channel.k8s.io`) and
//! what it runs: ordinary commands run as local processes whose working directory is the
//! container's (volumes are local directories), and the engine binary `/vcluster` of the syncer
//! image, which cannot run here, is emulated in process over a datastore stand-in (one ordered
//! key-value map per PVC mounted at `/data`) that tests read and write.
//!
//! Framing, as the kubelet's streaming server writes it: every binary message starts with its
//! channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (JSON), 4 resize; v5 adds 255
//! "close", whose second byte names the channel (0: stdin reached its end).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::server::Shared;

pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
pub const ROUTE: &str = "/api/v1/namespaces/{namespace}/pods/{name}/exec";
/// Where the engine's key-value store lives in its pod, and so which claim is the datastore.
pub const DATA_MOUNT: &str = "/data";
const CHUNK: usize = 32 * 1024;

/// One ordered key-value datastore (etcd's range order: bytewise).
pub type Datastore = BTreeMap<Vec<u8>, Vec<u8>>;

/// Sandbox directories, datastores and live exec streams. Every clone shares the same state.
#[derive(Clone)]
pub struct ExecEnv {
    inner: Arc<Inner>,
}

struct Inner {
    root: tempfile::TempDir,
    datastores: Mutex<HashMap<(String, String), Datastore>>,
    /// Bytes per second on stdout (`None`: unlimited).
    rate: Mutex<Option<u64>>,
    opened: AtomicU64,
    breaker: watch::Sender<u64>,
    /// Exit codes of the init containers run so far, by (namespace, pod, container).
    init_exits: Mutex<HashMap<(String, String, String), i32>>,
    snapshot_fault: Mutex<Option<SnapshotFault>>,
}

/// How the emulated `/vcluster snapshot` fails, for tests of what a restore does with a bad
/// source stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotFault {
    /// Writes the whole archive, then exits 1 with an error in its log.
    FailAfterWriting,
    /// Writes only the first N bytes of the archive, then exits 1 (the process died).
    CutAfter(usize),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ExecEnv {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                root: tempfile::Builder::new().prefix("fakekube-volumes-").tempdir()?,
                datastores: Mutex::default(),
                rate: Mutex::default(),
                opened: AtomicU64::new(0),
                breaker: watch::channel(0).0,
                init_exits: Mutex::default(),
                snapshot_fault: Mutex::default(),
            }),
        })
    }

    /// The local directory standing in for a PVC (created on first use).
    pub fn claim_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        let dir = self.inner.root.path().join("claims").join(namespace).join(claim);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    fn pod_dir(&self, namespace: &str, pod: &str) -> PathBuf {
        self.inner.root.path().join("pods").join(namespace).join(pod)
    }

    /// The local directory standing in for a container's own filesystem (its working
    /// directory when the pod sets none; created on first use).
    pub fn container_dir(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        let dir = self.pod_dir(namespace, pod).join("containers").join(container);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    /// A copy of the datastore on claim `namespace/claim` (empty if none was written).
    pub fn datastore(&self, namespace: &str, claim: &str) -> Datastore {
        lock(&self.inner.datastores)
            .get(&(namespace.to_owned(), claim.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Writes one key of the datastore on claim `namespace/claim`.
    pub fn datastore_put(&self, namespace: &str, claim: &str, key: &[u8], value: &[u8]) {
        lock(&self.inner.datastores)
            .entry((namespace.to_owned(), claim.to_owned()))
            .or_default()
            .insert(key.to_vec(), value.to_vec());
    }

    fn replace_datastore(&self, namespace: &str, claim: &str, data: Datastore) {
        lock(&self.inner.datastores).insert((namespace.to_owned(), claim.to_owned()), data);
    }

    /// Limits stdout of every exec to `bytes_per_second` (`None`: unlimited).
    pub fn set_rate_limit(&self, bytes_per_second: Option<u64>) {
        *lock(&self.inner.rate) = bytes_per_second;
    }

    /// Makes every later `/vcluster snapshot` fail as `fault` says (`None`: succeed).
    pub fn set_snapshot_fault(&self, fault: Option<SnapshotFault>) {
        *lock(&self.inner.snapshot_fault) = fault;
    }

    /// Breaks every open exec stream now, without a final status, as a restarting kubelet does.
    pub fn drop_all(&self) {
        self.inner.breaker.send_modify(|n| *n += 1);
    }

    /// Exec streams accepted since the start.
    pub fn opened(&self) -> u64 {
        self.inner.opened.load(Ordering::SeqCst)
    }

    /// The exit code of an init container the fake ran, once it ended.
    pub fn init_exit(&self, namespace: &str, pod: &str, container: &str) -> Option<i32> {
        lock(&self.inner.init_exits)
            .get(&(namespace.to_owned(), pod.to_owned(), container.to_owned()))
            .copied()
    }

    pub(crate) fn record_init_exit(&self, namespace: &str, pod: &str, container: &str, code: i32) {
        lock(&self.inner.init_exits)
            .insert((namespace.to_owned(), pod.to_owned(), container.to_owned()), code);
    }
}

/// What a container looks like from inside, resolved from the pod object.
#[derive(Clone, Debug)]
pub(crate) struct ContainerView {
    pub namespace: String,
    pub env: Vec<(String, String)>,
    /// Container mount path -> local directory, and the claim when it is a PVC.
    mounts: Vec<(String, PathBuf, Option<String>)>,
    rootfs: PathBuf,
    cwd: PathBuf,
}

impl ContainerView {
    pub(crate) fn resolve(env: &ExecEnv, pod: &Value, container: &str) -> Option<Self> {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let spec = ["containers", "initContainers"]
            .iter()
            .filter_map(|k| pod["spec"][k].as_array())
            .flatten()
            .find(|c| c["name"].as_str() == Some(container))?;
        let pod_dir = env.pod_dir(&namespace, pod_name);
        let volumes = pod["spec"]["volumes"].as_array().cloned().unwrap_or_default();
        let mut mounts = Vec::new();
        for m in spec["volumeMounts"].as_array().into_iter().flatten() {
            let (Some(name), Some(path)) = (m["name"].as_str(), m["mountPath"].as_str()) else {
                continue;
            };
            let volume = volumes.iter().find(|v| v["name"].as_str() == Some(name));
            let claim = volume
                .and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str())
                .map(str::to_owned);
            let dir = match &claim {
                Some(c) => env.claim_dir(&namespace, c),
                None => pod_dir.join("volumes").join(name),
            };
            let _ = std::fs::create_dir_all(&dir);
            mounts.push((path.trim_end_matches('/').to_owned(), dir, claim));
        }
        mounts.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.len()));
        let rootfs = pod_dir.join("containers").join(container);
        let _ = std::fs::create_dir_all(rootfs.join("tmp"));
        let mut view = Self {
            namespace,
            env: spec["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned()))
                })
                .collect(),
            mounts,
            rootfs: rootfs.clone(),
            cwd: rootfs,
        };
        view.cwd = view.local_path(spec["workingDir"].as_str().unwrap_or("/"));
        let _ = std::fs::create_dir_all(&view.cwd);
        Some(view)
    }

    /// The local path of a path inside the container.
    fn local_path(&self, path: &str) -> PathBuf {
        if !path.starts_with('/') {
            return self.cwd.join(path);
        }
        for (mount, dir, _) in &self.mounts {
            if path == mount {
                return dir.clone();
            }
            if let Some(rest) = path.strip_prefix(mount.as_str()).and_then(|r| r.strip_prefix('/'))
            {
                return dir.join(rest);
            }
        }
        self.rootfs.join(path.trim_start_matches('/'))
    }

    fn data_claim(&self) -> Option<&str> {
        self.mounts.iter().find(|(p, _, _)| p == DATA_MOUNT).and_then(|(_, _, c)| c.as_deref())
    }
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A started command: its streams and its exit code.
pub(crate) struct Running {
    stdin: Option<BoxWrite>,
    stdout: BoxRead,
    stderr: BoxRead,
    exit: Pin<Box<dyn Future<Output = i32> + Send>>,
}

/// Starts `argv` in the container: the engine binary in process, anything else locally.
pub(crate) fn start(
    env: &ExecEnv,
    view: &ContainerView,
    argv: &[String],
) -> std::io::Result<Running> {
    let mut extra_env = Vec::new();
    let mut rest = argv;
    if rest.first().map(String::as_str) == Some("env") {
        rest = &rest[1..];
        while let Some((k, v)) = rest.first().and_then(|a| a.split_once('=')) {
            extra_env.push((k.to_owned(), v.to_owned()));
            rest = &rest[1..];
        }
    }
    if rest.first().map(String::as_str) == Some("/vcluster") {
        let mut all_env = view.env.clone();
        all_env.extend(extra_env);
        return Ok(start_engine(env.clone(), view.clone(), rest[1..].to_vec(), all_env));
    }
    let Some(program) = rest.first() else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut child = tokio::process::Command::new(program)
        .args(&rest[1..])
        .current_dir(&view.cwd)
        .envs(view.env.iter().cloned().chain(extra_env))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child.stdin.take().map(|s| Box::new(s) as BoxWrite);
    let stdout = Box::new(child.stdout.take().expect("piped")) as BoxRead;
    let stderr = Box::new(child.stderr.take().expect("piped")) as BoxRead;
    let exit = Box::pin(async move {
        match child.wait().await {
            Ok(status) => status.code().unwrap_or(137),
            Err(_) => 1,
        }
    });
    Ok(Running { stdin, stdout, stderr, exit })
}

/// The syncer binary's `snapshot` and `restore [--new-vcluster]` with a `container` store, as
/// the engine release v0.36.1 does them for its key-value datastores: a gzip tar, one entry
/// per key (name = key, content = value) in key order; restore replaces the datastore, and for a
/// new virtual cluster leaves out the name mappings and every `kube-root-ca.crt` ConfigMap.
fn start_engine(
    env: ExecEnv,
    view: ContainerView,
    args: Vec<String>,
    vars: Vec<(String, String)>,
) -> Running {
    let (stdin_w, mut stdin_r) = tokio::io::duplex(CHUNK * 4);
    let (mut stdout_w, stdout_r) = tokio::io::duplex(CHUNK * 4);
    let (mut stderr_w, stderr_r) = tokio::io::duplex(CHUNK);
    let (exit_tx, exit_rx) = oneshot::channel();
    tokio::spawn(async move {
        let result: Result<String, String> = async {
            let path = storage_path(&vars)?;
            let claim = view
                .data_claim()
                .ok_or("failed to create etcd client: no datastore mounted at /data")?
                .to_owned();
            match args.first().map(String::as_str) {
                Some("snapshot") => {
                    let data = env.datastore(&view.namespace, &claim);
                    let count = data.len();
                    let bytes = tokio::task::spawn_blocking(move || write_engine_archive(&data))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    let fault = *lock(&env.inner.snapshot_fault);
                    let written = match fault {
                        Some(SnapshotFault::CutAfter(n)) => &bytes[..n.min(bytes.len())],
                        _ => &bytes[..],
                    };
                    if path == "/dev/stdout" {
                        stdout_w.write_all(written).await.map_err(|e| e.to_string())?;
                        stdout_w.shutdown().await.map_err(|e| e.to_string())?;
                    } else {
                        std::fs::write(view.local_path(&path), &bytes)
                            .map_err(|e| e.to_string())?;
                    }
                    if let Some(fault) = fault {
                        return Err(format!(
                            "snapshot failed after writing {} bytes ({fault:?})",
                            written.len()
                        ));
                    }
                    Ok(format!("Successfully backed up {count} etcd keys"))
                }
                Some("restore") => {
                    let new_vcluster = args.iter().any(|a| a == "--new-vcluster");
                    let bytes = if path == "/dev/stdin" {
                        let mut all = Vec::new();
                        stdin_r.read_to_end(&mut all).await.map_err(|e| e.to_string())?;
                        all
                    } else {
                        std::fs::read(view.local_path(&path))
                            .map_err(|e| format!("failed to get snapshot: open {path}: {e}"))?
                    };
                    let data = tokio::task::spawn_blocking(move || {
                        read_engine_archive(&bytes, new_vcluster)
                    })
                    .await
                    .map_err(|e| e.to_string())??;
                    let count = data.len();
                    env.replace_datastore(&view.namespace, &claim, data);
                    Ok(format!("Successfully restored {count} etcd keys from snapshot"))
                }
                other => Err(format!("unknown command {other:?} for \"vcluster\"")),
            }
        }
        .await;
        let code = match result {
            Ok(line) => {
                let _ = stderr_w
                    .write_all(format!("{{\"level\":\"info\",\"msg\":\"{line}\"}}\n").as_bytes())
                    .await;
                0
            }
            Err(e) => {
                let _ = stderr_w
                    .write_all(format!("{{\"level\":\"error\",\"msg\":\"{e}\"}}\n").as_bytes())
                    .await;
                1
            }
        };
        drop(stdout_w);
        drop(stderr_w);
        let _ = exit_tx.send(code);
    });
    Running {
        stdin: Some(Box::new(stdin_w)),
        stdout: Box::new(stdout_r),
        stderr: Box::new(stderr_r),
        exit: Box::pin(async move { exit_rx.await.unwrap_or(1) }),
    }
}

fn storage_path(vars: &[(String, String)]) -> Result<String, String> {
    let encoded = vars
        .iter()
        .rev()
        .find(|(k, _)| k == "VCLUSTER_STORAGE_OPTIONS")
        .map(|(_, v)| v.as_str())
        .ok_or("failed to create store: no VCLUSTER_STORAGE_OPTIONS")?;
    let decoded = crate::util::base64_decode(encoded)
        .ok_or("failed to decode storage options from env: illegal base64 data")?;
    let options: Value = serde_json::from_slice(&decoded)
        .map_err(|e| format!("failed to parse options from environment: {e}"))?;
    if options["type"].as_str() != Some("container") {
        return Err(format!(
            "this fake engine only emulates the container store, not {}",
            options["type"]
        ));
    }
    options["container"]["path"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "couldn't find path for url".to_owned())
}

/// The engine's key-value archive: gzip (level 3) over tar, each key in a PAX `path` record.
pub fn write_engine_archive(data: &Datastore) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(3));
    let mut tar = tar::Builder::new(gz);
    for (key, value) in data {
        tar.append_pax_extensions([("path", key.as_slice())])?;
        let mut header = tar::Header::new_ustar();
        let short = b"key";
        header.as_old_mut().name[..short.len()].copy_from_slice(short);
        header.set_size(value.len() as u64);
        header.set_mode(0o666);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, value.as_slice())?;
    }
    tar.into_inner()?.finish()
}

/// Reads the engine's key-value archive back.
pub fn read_engine_archive(bytes: &[u8], new_vcluster: bool) -> Result<Datastore, String> {
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut archive = tar::Archive::new(gz);
    let mut data = Datastore::new();
    let entries = archive.entries().map_err(|e| format!("read etcd key/value: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("read etcd key/value: {e}"))?;
        let key = entry.path_bytes().into_owned();
        let mut value = Vec::new();
        entry.read_to_end(&mut value).map_err(|e| format!("read etcd key/value: {e}"))?;
        if new_vcluster {
            let text = String::from_utf8_lossy(&key);
            let parts: Vec<&str> = text.split('/').collect();
            if text.starts_with("/vcluster/mappings/")
                || (parts.len() == 5 && parts[2] == "configmaps" && parts[4] == "kube-root-ca.crt")
            {
                continue;
            }
        }
        data.insert(key, value);
    }
    Ok(data)
}

/// The handler; `shared` gives the pod objects.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query = parse_query(query.as_deref().unwrap_or(""));
    let command: Vec<String> =
        query.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    let flag = |k: &str| query.iter().any(|(q, v)| q == k && (v == "true" || v == "1"));
    let pod = {
        let st = shared.state();
        st.resolve("pods").and_then(|def| st.get(&def, &namespace, &name).cloned())
    };
    let Some(pod) = pod else {
        return status(StatusCode::NOT_FOUND, "NotFound", &format!("pods \"{name}\" not found"));
    };
    let containers: Vec<String> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod["spec"][k].as_array())
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let container = match query.iter().find(|(k, _)| k == "container") {
        Some((_, c)) => c.clone(),
        None if pod["spec"]["containers"].as_array().is_some_and(|c| c.len() == 1) => {
            pod["spec"]["containers"][0]["name"].as_str().unwrap_or_default().to_owned()
        }
        None => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "a container name must be specified for pod {name}, choose one of: {containers:?}"
                ),
            );
        }
    };
    if !containers.contains(&container) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("container {container} is not valid for pod {name}"),
        );
    }
    if command.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least 1 command",
        );
    }
    if !running(&pod, &container) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("unable to upgrade connection: container not found (\"{container}\")"),
        );
    }
    let Ok(upgrade) = upgrade else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "Upgrade request required");
    };
    let offered: Vec<String> =
        upgrade.requested_protocols().filter_map(|p| p.to_str().ok().map(str::to_owned)).collect();
    let protocol = if offered.iter().any(|p| p == PROTOCOL_V5) {
        PROTOCOL_V5
    } else if offered.iter().any(|p| p == PROTOCOL_V4) {
        PROTOCOL_V4
    } else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "no supported exec subprotocol offered",
        );
    };
    let env = shared.exec.clone();
    let Some(view) = ContainerView::resolve(&env, &pod, &container) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "container vanished");
    };
    let want_stdin = flag("stdin");
    upgrade.protocols([protocol]).on_upgrade(move |socket| {
        serve(env, view, command, want_stdin, protocol == PROTOCOL_V5, socket)
    })
}

/// Whether the container is running: a regular container of a Running pod, or an init
/// container whose status says running.
fn running(pod: &Value, container: &str) -> bool {
    let is_init = pod["spec"]["initContainers"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["name"].as_str() == Some(container)));
    let key = if is_init { "initContainerStatuses" } else { "containerStatuses" };
    pod["status"][key]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["name"].as_str() == Some(container) && s["state"]["running"].is_object())
}

async fn serve(
    env: ExecEnv,
    view: ContainerView,
    argv: Vec<String>,
    want_stdin: bool,
    v5: bool,
    socket: WebSocket,
) {
    env.inner.opened.fetch_add(1, Ordering::SeqCst);
    let mut breaker = env.inner.breaker.subscribe();
    let (mut sink, mut stream) = socket.split();
    let running = match start(&env, &view, &argv) {
        Ok(r) => r,
        Err(e) => {
            let message = format!(
                "failed to exec in container: failed to start exec: exec: \"{}\": {e}",
                argv[0]
            );
            let body = json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"});
            let _ = sink.send(channel_message(3, body.to_string().as_bytes())).await;
            let _ = sink.close().await;
            return;
        }
    };
    let Running { stdin, mut stdout, mut stderr, exit } = running;
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    let rate = *lock(&env.inner.rate);
    let out_tx = tx.clone();
    let out = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(rate) = rate.filter(|r| *r > 0) {
                tokio::time::sleep(std::time::Duration::from_secs_f64(n as f64 / rate as f64))
                    .await;
            }
            if out_tx.send(channel_message(1, &buf[..n])).await.is_err() {
                break;
            }
        }
    });
    let err_tx = tx.clone();
    let err = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match stderr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if err_tx.send(channel_message(2, &buf[..n])).await.is_err() {
                break;
            }
        }
    });
    let status_tx = tx.clone();
    let argv_text = argv.join(" ");
    let finish = tokio::spawn(async move {
        let code = exit.await;
        let _ = out.await;
        let _ = err.await;
        let body = if code == 0 {
            json!({"metadata": {}, "status": "Success"})
        } else {
            json!({
                "metadata": {}, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command [{argv_text}], exit code {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        };
        let _ = status_tx.send(channel_message(3, body.to_string().as_bytes())).await;
    });
    drop(tx);
    let mut stdin = if want_stdin { stdin } else { None };
    let mut finished = false;
    loop {
        tokio::select! {
            message = rx.recv() => match message {
                Some(m) => {
                    let last = m.clone().into_data().first() == Some(&3);
                    if sink.send(m).await.is_err() { break; }
                    if last { finished = true; break; }
                }
                None => { finished = true; break; }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Binary(data))) => match (data.first(), data.get(1)) {
                    (Some(0), _) => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(&data[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    (Some(255), Some(0)) if v5 => {
                        if let Some(mut w) = stdin.take() {
                            let _ = w.shutdown().await;
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = breaker.changed() => break,
        }
    }
    if finished {
        // A normal closure, as the API server ends a finished exec stream.
        let frame = axum::extract::ws::CloseFrame { code: 1000, reason: "".into() };
        let _ = sink.send(Message::Close(Some(frame))).await;
    } else {
        finish.abort();
    }
}

fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (crate::portforward::percent_decode(k), crate::portforward::percent_decode(v))
        })
        .collect()
}

/// Runs a pod's init container locally and records its exit; see the controller.
pub(crate) async fn run_init(
    env: ExecEnv,
    view: ContainerView,
    pod: String,
    container: String,
    argv: Vec<String>,
) -> i32 {
    let code = match start(&env, &view, &argv) {
        Ok(Running { mut stdout, mut stderr, exit, .. }) => {
            let drain = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
                let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            });
            let code = exit.await;
            let _ = drain.await;
            code
        }
        Err(_) => 127,
    };
    env.record_init_exit(&view.namespace, &pod, &container, code);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_archive_round_trips_long_and_odd_keys() {
        let mut data = Datastore::new();
        data.insert(b"/registry/configmaps/default/a".to_vec(), b"v1".to_vec());
        data.insert(format!("/registry/secrets/x/{}", "n".repeat(200)).into_bytes(), vec![0; 10]);
        data.insert(b"/registry/configmaps/x/kube-root-ca.crt".to_vec(), b"ca".to_vec());
        data.insert(b"/vcluster/mappings/m".to_vec(), b"m".to_vec());
        let bytes = write_engine_archive(&data).unwrap();
        assert_eq!(read_engine_archive(&bytes, false).unwrap(), data);
        let fresh = read_engine_archive(&bytes, true).unwrap();
        assert_eq!(fresh.len(), 2);
        assert!(!fresh.contains_key(b"/vcluster/mappings/m".as_slice()));
    }

    #[test]
    fn paths_map_to_mounts_then_the_container_root() {
        let env = ExecEnv::new().unwrap();
        let pod = json!({
            "metadata": {"namespace": "ns", "name": "p"},
            "spec": {
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-p"}}, {"name": "tmp", "emptyDir": {}}],
                "initContainers": [{"name": "i", "workingDir": "/data", "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/data/tmp"}]}],
            },
        });
        let view = ContainerView::resolve(&env, &pod, "i").unwrap();
        assert_eq!(view.local_path("/data/x"), env.claim_dir("ns", "data-p").join("x"));
        assert_eq!(view.local_path("x"), env.claim_dir("ns", "data-p").join("x"));
        assert!(view.local_path("/data/tmp/y").ends_with("volumes/tmp/y"));
        assert!(view.local_path("/etc/z").ends_with("containers/i/etc/z"));
        assert_eq!(view.data_claim(), Some("data-p"));
    }
}
