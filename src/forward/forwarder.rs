//! The background forwarder: the detached `vc forwarder` process that keeps one stable local
//! port forwarded to a virtual cluster's control plane, the parent side that starts it and waits
//! until it answers, and the status / stop / list entry points over its state files.
//! It writes only to its own log file.

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use super::state::{
    Log, bind_local, log_tail, pick_port, port_answers, process_start_time, rotate_log,
};
use super::transport::{Activity, Forward, ForwardOptions, PodTarget, is_permanent, probe};
use super::{
    CONTROL_PLANE_PORT, ForwardError, ForwardKey, ForwardState, ForwardStatus, ForwardStore,
    StopOutcome, control_plane_pod,
};

/// How long the pod and the StatefulSet must both be missing before the forwarder gives up.
pub const DEFAULT_GONE_AFTER: Duration = Duration::from_secs(60);
/// How long the host must stay unreachable or refuse us before the forwarder gives up.
pub const HOST_GONE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How long one probe may take to open its stream and see the pod's port frames.
const PROBE_CONNECT: Duration = Duration::from_secs(30);
/// How often the forwarder checks that the virtual cluster still exists (at most).
const WATCHDOG_PERIOD: Duration = Duration::from_secs(10);
/// How long a probe stream waits for the pod to refuse the connection. Short: `vc connect`
/// then proves the whole path itself (a TLS request through the forward) before it reports
/// success, so this only has to catch a refusal that is already on its way.
const PROBE_GRACE: Duration = Duration::from_millis(50);
/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Everything the forwarder process needs; built by the hidden `vc forwarder` subcommand from
/// the arguments [`ForwarderOptions::to_args`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwarderOptions {
    /// `--kubeconfig` of the host, when the user gave one (else `KUBECONFIG` / `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The host's context, resolved by the caller: never "the current one", because `vc connect`
    /// switches the current context to the virtual cluster.
    pub host_context: String,
    /// The host API server URL as the caller's client sees it; part of the state key.
    pub host_server: String,
    pub namespace: String,
    pub name: String,
    /// The exact local port to listen on.
    pub local_port: u16,
    /// The state directory, when not the default (tests).
    pub state_dir: Option<PathBuf>,
    /// Exit once the pod and the StatefulSet have both been missing this long.
    pub gone_after: Duration,
}

impl ForwarderOptions {
    pub fn key(&self) -> ForwardKey {
        ForwardKey::new(&self.host_server, &self.namespace, &self.name)
    }

    fn store(&self) -> Result<ForwardStore, ForwardError> {
        store_at(self.state_dir.as_ref())
    }

    /// The arguments after the program name that start this forwarder:
    /// `forwarder NAME --namespace NS --context CTX --host-server URL --local-port N
    /// [--kubeconfig FILE] [--state-dir DIR] [--gone-after-secs N]`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "forwarder".into(),
            self.name.clone().into(),
            "--namespace".into(),
            self.namespace.clone().into(),
            "--context".into(),
            self.host_context.clone().into(),
            "--host-server".into(),
            self.host_server.clone().into(),
            "--local-port".into(),
            self.local_port.to_string().into(),
        ];
        if let Some(path) = &self.kubeconfig {
            args.extend(["--kubeconfig".into(), path.clone().into_os_string()]);
        }
        if let Some(dir) = &self.state_dir {
            args.extend(["--state-dir".into(), dir.clone().into_os_string()]);
        }
        if self.gone_after != DEFAULT_GONE_AFTER {
            args.extend(["--gone-after-secs".into(), self.gone_after.as_secs().to_string().into()]);
        }
        args
    }
}

fn store_at(dir: Option<&PathBuf>) -> Result<ForwardStore, ForwardError> {
    match dir {
        Some(dir) => Ok(ForwardStore::at(dir)),
        None => ForwardStore::from_env(),
    }
}

/// Why a forwarder stopped without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwarderExit {
    /// SIGTERM / SIGINT, or the caller's shutdown future.
    Asked,
    /// The pod and the StatefulSet stayed missing for `gone_after`; the state file is removed.
    ClusterGone,
    /// The host stayed unreachable or refused us for [`HOST_GONE_AFTER`].
    HostGone,
    /// Another live forwarder owns the state file; this one stepped aside before writing it
    /// (`vc forwarder` then exits 0 without becoming ready, which `spawn_background` reads as
    /// "use the live one").
    Superseded { pid: u32 },
}

/// The hidden `vc forwarder` subcommand: builds the host client from the kubeconfig, forwards
/// until SIGTERM / SIGINT or until the virtual cluster is gone. SIGHUP is ignored.
///
/// # Errors
/// [`ForwardError::PortInUse`] (exit code 6) when the port is taken; [`ForwardError::Host`] when
/// the host cannot be reached through the context; I/O errors on the state directory.
pub async fn run_forwarder(opts: ForwarderOptions) -> Result<(), ForwardError> {
    let log = Log::open(&opts.store()?.log_path(&opts.key()))?;
    let client = match host_client(&opts).await {
        Ok(client) => client,
        Err(e) => {
            log.line(&format!("cannot start: {e}"));
            return Err(e);
        }
    };
    serve(client, opts, termination(), log, HOST_GONE_AFTER).await.map(|_| ())
}

pub(super) async fn host_client(opts: &ForwarderOptions) -> Result<Client, ForwardError> {
    use crate::kubeconfig::{KubeconfigPaths, LoadedKubeconfigs};
    let host_err =
        |message: String| ForwardError::Host { context: opts.host_context.clone(), message };
    let paths = KubeconfigPaths::resolve(opts.kubeconfig.as_deref())
        .map_err(|e| host_err(e.to_string()))?;
    let loaded = LoadedKubeconfigs::load(&paths).map_err(|e| host_err(e.to_string()))?;
    let host = crate::host::Host::connect(loaded.merged(), Some(&opts.host_context))
        .await
        .map_err(|e| host_err(format!("{e:#}")))?;
    Ok(host.client)
}

/// Resolves on SIGTERM or SIGINT; SIGHUP (the terminal that started `vc connect` closing) is
/// swallowed.
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        // Without handlers the default actions still end the process on SIGTERM / SIGINT.
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {}
        }
    }
}

/// The forwarder with a ready client and an explicit shutdown (tests run it in-process).
/// Binds the port, waits until one probe stream reaches the pod, writes the state file, then
/// forwards until `shutdown` resolves or the cluster is gone.
///
/// # Errors
/// As [`run_forwarder`].
pub async fn run_forwarder_with_client(
    client: Client,
    opts: ForwarderOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<ForwarderExit, ForwardError> {
    let log = Log::open(&opts.store()?.log_path(&opts.key()))?;
    serve(client, opts, shutdown, log, HOST_GONE_AFTER).await
}

/// The forwarder proper, writing to an already open `log`.
pub(super) async fn serve(
    client: Client,
    opts: ForwarderOptions,
    shutdown: impl Future<Output = ()>,
    log: Log,
    host_gone_after: Duration,
) -> Result<ForwarderExit, ForwardError> {
    let store = opts.store()?;
    let key = opts.key();
    let pid = std::process::id();
    let target = PodTarget::new(&opts.namespace, control_plane_pod(&opts.name), CONTROL_PLANE_PORT);
    log.line(&format!(
        "forwarder pid {pid} starting: 127.0.0.1:{} -> pod {target} via context {:?} ({})",
        opts.local_port, opts.host_context, opts.host_server
    ));
    let listener = match bind_local(opts.local_port) {
        Ok(l) => l,
        Err(e) => {
            log.line(&format!("cannot start: {e}"));
            return Err(e);
        }
    };

    tokio::pin!(shutdown);
    let mut gone = GoneWatch::new(opts.gone_after, host_gone_after);

    // Ready means one stream reached the pod's port; only then does the state file appear,
    // which is what `spawn_background` waits for.
    let mut delay = Duration::from_millis(200);
    let mut last_error = String::new();
    loop {
        let attempt = tokio::select! {
            () = &mut shutdown => return finish(&log, ForwarderExit::Asked, &store, &key),
            r = probe(&client, &target, PROBE_GRACE, PROBE_CONNECT) => r,
        };
        match attempt {
            Ok(()) => break,
            Err(e) if is_permanent(&e) => {
                log.line(&format!("cannot start: {e}"));
                return Err(e);
            }
            Err(e) => {
                let text = e.to_string();
                if text != last_error {
                    log.line(&format!("not ready yet: {text}"));
                    last_error = text;
                }
            }
        }
        if let Some(exit) = gone.check(&client, &opts).await {
            return finish(&log, exit, &store, &key);
        }
        tokio::select! {
            () = &mut shutdown => return finish(&log, ForwarderExit::Asked, &store, &key),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }

    let state = ForwardState {
        pid,
        port: opts.local_port,
        host_context: opts.host_context.clone(),
        host_server: opts.host_server.clone(),
        namespace: opts.namespace.clone(),
        name: opts.name.clone(),
        started: Timestamp::now(),
        pid_start_time: process_start_time(pid).unwrap_or_default(),
    };
    let activity = std::sync::Arc::new(Activity::default());
    let options = ForwardOptions {
        log: log.clone(),
        activity: Some(activity.clone()),
        ..ForwardOptions::default()
    };
    let forward = Forward::from_listener(client.clone(), target, listener, options)?;
    // Never replace the state file of another forwarder that is still running.
    if let Some(other) = store.read(&key)?
        && other.pid != pid
        && other.is_alive()
    {
        drop(forward);
        return finish(&log, ForwarderExit::Superseded { pid: other.pid }, &store, &key);
    }
    store.write(&state)?;
    log.line(&format!("ready on 127.0.0.1:{}", forward.local_port()));

    let period = (opts.gone_after / 3).clamp(Duration::from_millis(200), WATCHDOG_PERIOD);
    let mut watchdog = tokio::time::interval(period);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut activity_check = tokio::time::interval(ACTIVITY_CHECK);
    activity_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recorder = ActivityRecorder::default();
    let exit = loop {
        tokio::select! {
            () = &mut shutdown => break ForwarderExit::Asked,
            _ = watchdog.tick() => {
                if let Some(exit) = gone.check(&client, &opts).await {
                    break exit;
                }
            }
            _ = activity_check.tick() => recorder.check(&activity, &client, &opts, &log).await,
        }
    };
    drop(forward);
    finish(&log, exit, &store, &key)
}

fn finish(
    log: &Log,
    exit: ForwarderExit,
    store: &ForwardStore,
    key: &ForwardKey,
) -> Result<ForwarderExit, ForwardError> {
    match exit {
        ForwarderExit::Asked => log.line("stopping: asked to"),
        ForwarderExit::ClusterGone => {
            log.line("stopping: the virtual cluster's pod and StatefulSet are gone");
            // Only our own state file: a newer forwarder may have replaced it.
            if store.read(key).ok().flatten().is_some_and(|s| s.pid == std::process::id()) {
                store.remove(key)?;
            }
        }
        ForwarderExit::HostGone => {
            log.line("stopping: the host has been unreachable or refusing us for too long");
        }
        ForwarderExit::Superseded { pid } => {
            log.line(&format!("stopping: forwarder pid {pid} is already running for this cluster"));
        }
    }
    Ok(exit)
}

/// How often the forwarder looks whether its connections carried requests.
const ACTIVITY_CHECK: Duration = Duration::from_secs(5);
/// How often at most it records that on the host (`vc.dev/last-activity`): the idle limits
/// are minutes or more, and every write changes the StatefulSet's resourceVersion.
const ACTIVITY_EVERY: Duration = Duration::from_secs(60);

/// Records on the host that the forward carried requests, at most every [`ACTIVITY_EVERY`].
#[derive(Default)]
struct ActivityRecorder {
    /// When it last recorded, as a monotonic instant and as Unix seconds.
    recorded: Option<(tokio::time::Instant, u64)>,
    failing: bool,
}

impl ActivityRecorder {
    async fn check(
        &mut self,
        activity: &Activity,
        client: &Client,
        opts: &ForwarderOptions,
        log: &Log,
    ) {
        let since = self.recorded.map_or(0, |(_, secs)| secs);
        if !activity.seen_after(since)
            || self.recorded.is_some_and(|(at, _)| at.elapsed() < ACTIVITY_EVERY)
        {
            return;
        }
        let now = Timestamp::now();
        match crate::host::record_activity(client, &opts.namespace, &opts.name, now).await {
            Ok(()) => {
                let secs = u64::try_from(now.as_second()).unwrap_or_default();
                self.recorded = Some((tokio::time::Instant::now(), secs));
                self.failing = false;
            }
            Err(e) => {
                // The idle limit then counts from the last record; say so once.
                if !self.failing {
                    log.line(&format!("cannot record activity on the host: {e}"));
                }
                self.failing = true;
            }
        }
    }
}

/// Tracks how long the virtual cluster has been missing, and how long the host has been
/// unreachable or refusing us.
struct GoneWatch {
    after: Duration,
    host_after: Duration,
    missing_since: Option<tokio::time::Instant>,
    host_failing_since: Option<tokio::time::Instant>,
}

impl GoneWatch {
    fn new(after: Duration, host_after: Duration) -> Self {
        Self { after, host_after, missing_since: None, host_failing_since: None }
    }

    /// Looks at the host once; says why to stop once the cluster has been missing, or the host
    /// failing, for long enough. Host errors say nothing about the cluster and reset nothing.
    async fn check(&mut self, client: &Client, opts: &ForwarderOptions) -> Option<ForwarderExit> {
        match cluster_present(client, opts).await {
            Some(true) => {
                self.missing_since = None;
                self.host_failing_since = None;
            }
            Some(false) => {
                self.host_failing_since = None;
                let since = *self.missing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= self.after {
                    return Some(ForwarderExit::ClusterGone);
                }
            }
            None => {
                let since = *self.host_failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= self.host_after {
                    return Some(ForwarderExit::HostGone);
                }
            }
        }
        None
    }
}

/// `Some(false)` when both the control-plane pod and the StatefulSet answer 404.
async fn cluster_present(client: &Client, opts: &ForwarderOptions) -> Option<bool> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &opts.namespace);
    if pods.get_opt(&control_plane_pod(&opts.name)).await.ok()?.is_some() {
        return Some(true);
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &opts.namespace);
    Some(sets.get_opt(&opts.name).await.ok()?.is_some())
}

/// What `vc connect` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnOptions {
    pub kubeconfig: Option<PathBuf>,
    /// The resolved host context (see [`ForwarderOptions::host_context`]).
    pub host_context: String,
    pub host_server: String,
    pub namespace: String,
    pub name: String,
    /// `--local-port`: must be free (else [`ForwardError::PortInUse`]); without it the previous
    /// port of this cluster is reused when free.
    pub local_port: Option<u16>,
    /// How long to wait for the forwarder to answer.
    pub ready_timeout: Duration,
    /// The program to start; the running executable when `None`.
    pub program: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

impl SpawnOptions {
    pub fn key(&self) -> ForwardKey {
        ForwardKey::new(&self.host_server, &self.namespace, &self.name)
    }
}

/// Starts the background forwarder for a cluster (or finds the one already answering) and
/// waits until it is ready: it has bound its port, reached the pod once and written its state
/// file, and its port accepts connections. The child runs in its own process group with stdio
/// on its log file, so closing the terminal or Ctrl-C in it does not stop it. Concurrent calls
/// for one cluster are serialised by a lock file, so only one forwarder is started. If this
/// future is dropped before the forwarder is ready, the child is killed.
///
/// # Errors
/// [`ForwardError::PortInUse`] for a taken `--local-port`; [`ForwardError::NotReady`] after
/// `ready_timeout` (the child is killed); [`ForwardError::Host`] when the child cannot reach or
/// is refused by the host; [`ForwardError::ForwarderExited`] with the end of its log when it
/// stops early for another reason.
pub async fn spawn_background(opts: &SpawnOptions) -> Result<ForwardStatus, ForwardError> {
    let store = store_at(opts.state_dir.as_ref())?;
    let key = opts.key();
    let _lock = store.lock(&key, opts.ready_timeout * 2 + STOP_GRACE).await?;
    let previous = store.read(&key).ok().flatten();
    if let Some(prev) = &previous
        && prev.is_alive()
    {
        let same_port = opts.local_port.is_none_or(|p| p == prev.port);
        if same_port && let Some(status) = store.status(&key).await?.filter(|s| s.answering) {
            return Ok(status);
        }
        // Wrong port or not answering: replace it (stop frees its port for reuse).
        store.stop(&key, STOP_GRACE).await?;
    }
    let program = match &opts.program {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|source| ForwardError::Spawn { program: "vc".into(), source })?,
    };
    let log_path = store.log_path(&key);
    std::fs::create_dir_all(store.dir()).map_err(|source| ForwardError::Io {
        action: "create directory",
        path: store.dir().to_path_buf(),
        source,
    })?;
    rotate_log(&log_path);

    let mut port = pick_port(opts.local_port, previous.as_ref().map(|s| s.port))?;
    let mut repicked = false;
    loop {
        match start_and_wait(opts, &store, &program, port).await {
            // An auto-picked port taken between picking and binding: pick again, once.
            Err(ForwardError::PortInUse { .. }) if opts.local_port.is_none() && !repicked => {
                repicked = true;
                port = pick_port(None, None)?;
            }
            other => return other,
        }
    }
}

/// Kills and reaps the child on drop unless it became the ready forwarder.
struct ChildGuard(Option<std::process::Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("child present until disarmed")
    }

    /// The forwarder is ready: leave it running.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts one forwarder on `port` and waits until it is ready or exits.
async fn start_and_wait(
    opts: &SpawnOptions,
    store: &ForwardStore,
    program: &PathBuf,
    port: u16,
) -> Result<ForwardStatus, ForwardError> {
    let key = opts.key();
    let forwarder = ForwarderOptions {
        kubeconfig: opts.kubeconfig.clone(),
        host_context: opts.host_context.clone(),
        host_server: opts.host_server.clone(),
        namespace: opts.namespace.clone(),
        name: opts.name.clone(),
        local_port: port,
        state_dir: opts.state_dir.clone(),
        gone_after: DEFAULT_GONE_AFTER,
    };
    let log_path = store.log_path(&key);
    let io_err = |source| ForwardError::Io { action: "open log", path: log_path.clone(), source };
    let log_file =
        std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io_err)?;
    let log_file2 = log_file.try_clone().map_err(io_err)?;
    let mut command = std::process::Command::new(program);
    command
        .args(forwarder.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(log_file2));
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .spawn()
        .map_err(|source| ForwardError::Spawn { program: program.clone(), source })?;
    let mut guard = ChildGuard(Some(child));
    let child_pid = guard.child().id();

    let cluster = format!("{}/{}", opts.namespace, opts.name);
    let deadline = tokio::time::Instant::now() + opts.ready_timeout;
    loop {
        if let Ok(Some(status)) = guard.child().try_wait() {
            guard.disarm();
            let code = status.code();
            if code == Some(crate::error::Exit::Success.code())
                && let Some(live) = store.status(&key).await?.filter(|s| s.answering)
            {
                // Another forwarder owns the state file and answers: use it.
                return Ok(live);
            }
            if code == Some(crate::error::Exit::Conflict.code()) {
                return Err(ForwardError::PortInUse { port });
            }
            let tail = log_tail(&log_path, 10);
            if code == Some(crate::error::Exit::Unreachable.code()) {
                return Err(ForwardError::Host {
                    context: opts.host_context.clone(),
                    message: format!("the forwarder gave up (see {}):\n{tail}", log_path.display()),
                });
            }
            return Err(ForwardError::ForwarderExited {
                cluster,
                status: status.to_string(),
                log: log_path.clone(),
                tail,
            });
        }
        if let Some(state) = store.read(&key).ok().flatten()
            && state.pid == child_pid
            && port_answers(state.port).await
        {
            guard.disarm();
            let log_file = store.log_path(&key);
            return Ok(ForwardStatus { state, alive: true, answering: true, log_file });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ForwardError::NotReady {
                cluster,
                timeout: opts.ready_timeout,
                log: log_path,
            });
        }
        // The child signals readiness by writing its state file; reading a small file every
        // 10 ms costs nothing and keeps the wait close to the child's own start-up time.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The forward of `key` from the default state directory, with its liveness.
///
/// # Errors
/// See [`ForwardStore::status`].
pub async fn status(key: &ForwardKey) -> Result<Option<ForwardStatus>, ForwardError> {
    ForwardStore::from_env()?.status(key).await
}

/// Stops the forwarder of `key` (SIGTERM, then SIGKILL after 5 s), checking the pid's start
/// time first.
///
/// # Errors
/// See [`ForwardStore::stop`].
pub async fn stop(key: &ForwardKey) -> Result<StopOutcome, ForwardError> {
    ForwardStore::from_env()?.stop(key, STOP_GRACE).await
}

/// Every forward in the default state directory, with its liveness.
///
/// # Errors
/// See [`ForwardStore::list_statuses`].
pub async fn list_states() -> Result<Vec<ForwardStatus>, ForwardError> {
    ForwardStore::from_env()?.list_statuses().await
}

/// Every forward in the default state directory with whether its process is alive, without
/// connecting to the local ports (`answering` equals `alive`): for callers that only need
/// `alive`, such as `disconnect --all`.
///
/// # Errors
/// See [`ForwardStore::list_statuses_with`].
pub async fn list_states_alive() -> Result<Vec<ForwardStatus>, ForwardError> {
    ForwardStore::from_env()?.list_statuses_with(false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarder_args_carry_everything_the_subcommand_needs() {
        let opts = ForwarderOptions {
            kubeconfig: Some("/k/config".into()),
            host_context: "kind-host".into(),
            host_server: "https://127.0.0.1:6443".into(),
            namespace: "vc-dev".into(),
            name: "dev".into(),
            local_port: 41234,
            state_dir: None,
            gone_after: DEFAULT_GONE_AFTER,
        };
        let args: Vec<String> =
            opts.to_args().into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            args,
            [
                "forwarder",
                "dev",
                "--namespace",
                "vc-dev",
                "--context",
                "kind-host",
                "--host-server",
                "https://127.0.0.1:6443",
                "--local-port",
                "41234",
                "--kubeconfig",
                "/k/config"
            ]
        );
    }
}
