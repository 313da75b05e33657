//! Background forwarders' state and log files (`vc/forwards/<key>.json` and `.log` under the
//! user's state directory), local port selection, and checks that a pid is still the forwarder
//! it was recorded as before anything signals it. No cluster access.

use std::fs;
use std::io::{self, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ForwardError;
use super::transport::loopback;

/// A log file larger than this is moved aside (`.log.old`) when a forwarder starts.
const MAX_LOG_BYTES: u64 = 4 * 1024 * 1024;

/// Which forward a state file belongs to: one per host API server, namespace and cluster name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ForwardKey {
    pub host_server: String,
    pub namespace: String,
    pub name: String,
}

impl ForwardKey {
    pub fn new(
        host_server: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self { host_server: host_server.into(), namespace: namespace.into(), name: name.into() }
    }

    /// The file stem: readable name and namespace, then a hash of all three parts so two hosts
    /// never share a file. Stable across releases (FNV-1a, not the std hasher).
    pub fn id(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [&self.host_server, &self.namespace, &self.name] {
            for b in part.as_bytes().iter().chain(std::iter::once(&0u8)) {
                hash ^= u64::from(*b);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{}.{}.{hash:016x}", sanitise(&self.name), sanitise(&self.namespace))
    }
}

fn sanitise(s: &str) -> String {
    let clean: String = s
        .chars()
        .take(63)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    if clean.is_empty() { "_".to_owned() } else { clean }
}

/// What a running forwarder records about itself. JSON field names are camelCase and stable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardState {
    pub pid: u32,
    /// Local port on 127.0.0.1.
    pub port: u16,
    pub host_context: String,
    pub host_server: String,
    pub namespace: String,
    pub name: String,
    /// When the forwarder started (RFC 3339).
    pub started: Timestamp,
    /// The pid's start time as the OS reports it (Linux: field 22 of `/proc/<pid>/stat`), so a
    /// recycled pid is never mistaken for the forwarder.
    pub pid_start_time: String,
}

impl ForwardState {
    pub fn key(&self) -> ForwardKey {
        ForwardKey::new(&self.host_server, &self.namespace, &self.name)
    }

    /// Whether the recorded process is still this forwarder.
    pub fn is_alive(&self) -> bool {
        self.pid > 1 && process_start_time(self.pid).as_deref() == Some(&self.pid_start_time)
    }
}

/// A state file read back, with what is true of it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardStatus {
    pub state: ForwardState,
    /// The recorded pid is running and is the same process (its start time matches).
    pub alive: bool,
    /// Alive and its local port accepts connections.
    pub answering: bool,
    pub log_file: PathBuf,
}

/// What [`ForwardStore::stop`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// The forwarder was running and has exited.
    Stopped { pid: u32 },
    /// No state file, or its process is gone (or the pid now belongs to something else).
    NotRunning,
}

/// The directory holding the state and log files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardStore {
    dir: PathBuf,
}

impl ForwardStore {
    /// `vc/forwards` under `dirs::state_dir()` (`$XDG_STATE_HOME`, else `~/.local/state`), else
    /// under `dirs::data_local_dir()` (macOS has no state directory).
    ///
    /// # Errors
    /// [`ForwardError::NoStateDir`] when neither is known.
    pub fn from_env() -> Result<Self, ForwardError> {
        let base =
            dirs::state_dir().or_else(dirs::data_local_dir).ok_or(ForwardError::NoStateDir)?;
        Ok(Self::at(base.join("vc").join("forwards")))
    }

    /// A store in exactly this directory.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state_path(&self, key: &ForwardKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.id()))
    }

    pub fn log_path(&self, key: &ForwardKey) -> PathBuf {
        self.dir.join(format!("{}.log", key.id()))
    }

    /// The marker of a forward stopped by a pause, so the resume starts it again.
    pub fn paused_path(&self, key: &ForwardKey) -> PathBuf {
        self.dir.join(format!("{}.paused", key.id()))
    }

    /// Remembers that a pause stopped the forward of `key`.
    ///
    /// # Errors
    /// [`ForwardError::Io`] naming the file.
    pub fn mark_paused(&self, key: &ForwardKey) -> Result<(), ForwardError> {
        self.ensure_dir()?;
        let path = self.paused_path(key);
        fs::write(&path, b"").map_err(|source| ForwardError::Io { action: "write", path, source })
    }

    /// Whether a pause stopped the forward of `key`; forgets it.
    pub fn take_paused(&self, key: &ForwardKey) -> bool {
        fs::remove_file(self.paused_path(key)).is_ok()
    }

    fn ensure_dir(&self) -> Result<(), ForwardError> {
        fs::create_dir_all(&self.dir).map_err(|source| ForwardError::Io {
            action: "create directory",
            path: self.dir.clone(),
            source,
        })
    }

    /// The state file of `key`, if there is one.
    ///
    /// # Errors
    /// [`ForwardError::Io`] when it cannot be read, [`ForwardError::StateFile`] when it is not ours.
    pub fn read(&self, key: &ForwardKey) -> Result<Option<ForwardState>, ForwardError> {
        read_state_file(&self.state_path(key))
    }

    /// Writes the state file atomically (temporary file in the same directory, then rename).
    ///
    /// # Errors
    /// [`ForwardError::Io`] naming the file.
    pub fn write(&self, state: &ForwardState) -> Result<(), ForwardError> {
        self.ensure_dir()?;
        let path = self.state_path(&state.key());
        let io_err = |source| ForwardError::Io { action: "write", path: path.clone(), source };
        let json = serde_json::to_vec_pretty(state)
            .map_err(|source| ForwardError::StateFile { path: path.clone(), source })?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io_err)?;
        tmp.write_all(&json).map_err(io_err)?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(&path).map_err(|e| io_err(e.error))?;
        Ok(())
    }

    /// Removes every file of `key`: the state file and the log with its rotated `.log.old`, for
    /// a forward that is gone for good (its cluster deleted). A stopped forward whose cluster
    /// remains keeps both: the state file holds its port for the next connect, and the log is
    /// what `vc connect --logs` shows after a failed connect.
    ///
    /// # Errors
    /// [`ForwardError::Io`] for anything but a missing file; the other files are still tried.
    pub fn remove(&self, key: &ForwardKey) -> Result<(), ForwardError> {
        let log = self.log_path(key);
        let mut first_error = None;
        for path in
            [self.state_path(key), self.paused_path(key), log.with_extension("log.old"), log]
        {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    first_error.get_or_insert(ForwardError::Io {
                        action: "remove",
                        path,
                        source: e,
                    });
                }
                _ => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Every readable state file; files that are not ours are skipped.
    ///
    /// # Errors
    /// [`ForwardError::Io`] when the directory exists but cannot be listed.
    pub fn list(&self) -> Result<Vec<ForwardState>, ForwardError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(ForwardError::Io { action: "list", path: self.dir.clone(), source });
            }
        };
        let mut states: Vec<ForwardState> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| read_state_file(&p).ok().flatten())
            .collect();
        states.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(states)
    }

    /// The state of `key` and whether its forwarder is alive and answering.
    ///
    /// # Errors
    /// As [`ForwardStore::read`].
    pub async fn status(&self, key: &ForwardKey) -> Result<Option<ForwardStatus>, ForwardError> {
        match self.read(key)? {
            Some(state) => Ok(Some(self.status_of(state, true).await)),
            None => Ok(None),
        }
    }

    /// Every state file with its liveness, checked concurrently.
    ///
    /// # Errors
    /// As [`ForwardStore::list`].
    pub async fn list_statuses(&self) -> Result<Vec<ForwardStatus>, ForwardError> {
        self.list_statuses_with(true).await
    }

    /// Every state file with its liveness; `check_port: false` skips connecting to the local
    /// ports (`answering` is then the same as `alive`), for callers that only need `alive`.
    ///
    /// # Errors
    /// As [`ForwardStore::list`].
    pub async fn list_statuses_with(
        &self,
        check_port: bool,
    ) -> Result<Vec<ForwardStatus>, ForwardError> {
        let states = self.list()?;
        Ok(futures::future::join_all(states.into_iter().map(|s| self.status_of(s, check_port)))
            .await)
    }

    async fn status_of(&self, state: ForwardState, check_port: bool) -> ForwardStatus {
        let alive = state.is_alive();
        let answering = alive && (!check_port || port_answers(state.port).await);
        let log_file = self.log_path(&state.key());
        ForwardStatus { state, alive, answering, log_file }
    }

    pub(crate) fn lock_path(&self, key: &ForwardKey) -> PathBuf {
        self.dir.join(format!("{}.lock", key.id()))
    }

    /// Takes the exclusive lock of `key` (a `.lock` file created with `create_new`), retrying
    /// with backoff until `timeout`. A lock older than [`STALE_LOCK`] or whose holder's process
    /// is gone is removed first. The lock is released when the guard is dropped.
    ///
    /// # Errors
    /// [`ForwardError::Io`] when the lock cannot be created, or is still held after `timeout`.
    pub(crate) async fn lock(
        &self,
        key: &ForwardKey,
        timeout: Duration,
    ) -> Result<LockGuard, ForwardError> {
        self.ensure_dir()?;
        let path = self.lock_path(key);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut delay = Duration::from_millis(10);
        loop {
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let pid = std::process::id();
                    let start = process_start_time(pid).unwrap_or_default();
                    let _ = writeln!(file, "{pid} {start}");
                    return Ok(LockGuard { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if lock_is_stale(&path) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                }
                Err(source) => return Err(ForwardError::Io { action: "lock", path, source }),
            }
            if tokio::time::Instant::now() + delay > deadline {
                return Err(ForwardError::Io {
                    action: "lock",
                    path,
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        "another vc is starting this forward",
                    ),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    /// Stops the forwarder of `key`: SIGTERM, then SIGKILL if it has not exited after
    /// `grace`. Only a process whose start time matches the state file is signalled. The
    /// state file stays, so the next forwarder reuses its port.
    ///
    /// # Errors
    /// [`ForwardError::Signal`] when the process cannot be signalled (another user's pid).
    pub async fn stop(
        &self,
        key: &ForwardKey,
        grace: Duration,
    ) -> Result<StopOutcome, ForwardError> {
        let Some(state) = self.read(key)? else { return Ok(StopOutcome::NotRunning) };
        if !state.is_alive() {
            return Ok(StopOutcome::NotRunning);
        }
        let pid = state.pid;
        send_signal(pid, libc::SIGTERM).map_err(|source| ForwardError::Signal { pid, source })?;
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if !state.is_alive() {
                return Ok(StopOutcome::Stopped { pid });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if state.is_alive() {
            send_signal(pid, libc::SIGKILL)
                .map_err(|source| ForwardError::Signal { pid, source })?;
        }
        Ok(StopOutcome::Stopped { pid })
    }
}

/// A lock file older than this is left over from a process that died holding it.
pub(crate) const STALE_LOCK: Duration = Duration::from_secs(60);

/// Whether the lock file at `path` is older than [`STALE_LOCK`] or names a process that is gone.
fn lock_is_stale(path: &Path) -> bool {
    let old = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_LOCK);
    if old {
        return true;
    }
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut parts = text.split_whitespace();
    match (parts.next().and_then(|p| p.parse::<u32>().ok()), parts.next()) {
        (Some(pid), Some(start)) => process_start_time(pid).as_deref() != Some(start),
        // Being written right now, or not ours: only age decides.
        _ => false,
    }
}

/// The held lock of one forward; dropping it removes the lock file.
#[derive(Debug)]
pub(crate) struct LockGuard {
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn read_state_file(path: &Path) -> Result<Option<ForwardState>, ForwardError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ForwardError::Io { action: "read", path: path.into(), source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ForwardError::StateFile { path: path.into(), source })
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (half a second at most).
pub(crate) async fn port_answers(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(loopback(port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// Binds 127.0.0.1:`port` (0: any free port).
///
/// # Errors
/// [`ForwardError::PortInUse`] when a requested port is taken; [`ForwardError::Bind`] otherwise.
pub fn bind_local(port: u16) -> Result<TcpListener, ForwardError> {
    TcpListener::bind(loopback(port)).map_err(|source| {
        if port != 0 && source.kind() == io::ErrorKind::AddrInUse {
            ForwardError::PortInUse { port }
        } else {
            ForwardError::Bind { port, source }
        }
    })
}

/// The local port for a forward: the `requested` one (which must be free), else the
/// `previous` one when it is free, else a free port the system picks.
///
/// # Errors
/// [`ForwardError::PortInUse`] when the requested port is taken.
pub fn pick_port(requested: Option<u16>, previous: Option<u16>) -> Result<u16, ForwardError> {
    let port_of = |l: TcpListener| l.local_addr().map(|a| a.port());
    if let Some(port) = requested.filter(|p| *p != 0) {
        bind_local(port)?;
        return Ok(port);
    }
    if let Some(port) = previous.filter(|p| *p != 0)
        && bind_local(port).is_ok()
    {
        return Ok(port);
    }
    let listener = bind_local(0)?;
    port_of(listener).map_err(|source| ForwardError::Bind { port: 0, source })
}

/// The process start time the OS reports for `pid`, as an opaque token; `None` when there is
/// no such process (a zombie counts as gone).
pub(crate) fn process_start_time(pid: u32) -> Option<String> {
    if cfg!(target_os = "linux") {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state); field 22 (start time) is at index 19.
        if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
            return None;
        }
        fields.get(19).map(|s| (*s).to_owned())
    } else {
        let out = std::process::Command::new("ps")
            .args(["-o", "lstart=", "-o", "stat=", "-p", &pid.to_string()])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || text.is_empty() || text.ends_with('Z') {
            return None;
        }
        // Keep only the start time: the status letters change while the process runs.
        Some(text.rsplit_once(' ').map_or(text.clone(), |(start, _)| start.trim().to_owned()))
    }
}

/// Sends `signal` to `pid` (never to a process group: pid 0 and 1 are refused).
#[allow(unsafe_code)] // The one FFI call of the forward layer; std has no way to send SIGTERM.
fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes two integers and reads or writes no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Timestamped lines appended to a forwarder's log file; a no-op for in-process forwards.
#[derive(Clone, Default)]
pub(crate) struct Log(Option<Arc<Mutex<fs::File>>>);

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Log(file)" } else { "Log(none)" })
    }
}

impl Log {
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// Opens `path` for appending (rotation is the starting side's job: see [`rotate_log`]).
    pub(crate) fn open(path: &Path) -> Result<Self, ForwardError> {
        let io_err = |source| ForwardError::Io { action: "open log", path: path.into(), source };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = fs::OpenOptions::new().create(true).append(true).open(path).map_err(io_err)?;
        Ok(Self(Some(Arc::new(Mutex::new(file)))))
    }

    pub(crate) fn line(&self, message: &str) {
        if let Some(file) = &self.0 {
            let mut file = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // A full disk must not stop the forward; the line is lost.
            let _ = writeln!(file, "{} {message}", Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"));
        }
    }
}

/// Moves `path` to `path.old` when it has grown past [`MAX_LOG_BYTES`].
pub(crate) fn rotate_log(path: &Path) {
    if fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let _ = fs::rename(path, path.with_extension("log.old"));
    }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pid: u32, port: u16, start: &str) -> ForwardState {
        ForwardState {
            pid,
            port,
            host_context: "kind-host".into(),
            host_server: "https://127.0.0.1:6443".into(),
            namespace: "vc-dev".into(),
            name: "dev".into(),
            started: "2025-01-02T03:04:05Z".parse().unwrap(),
            pid_start_time: start.into(),
        }
    }

    #[test]
    fn key_id_is_stable_readable_and_separates_hosts() {
        let a = ForwardKey::new("https://127.0.0.1:6443", "vc-dev", "dev");
        let b = ForwardKey::new("https://10.0.0.1:6443", "vc-dev", "dev");
        assert_eq!(a.id(), a.clone().id());
        assert!(a.id().starts_with("dev.vc-dev."), "{}", a.id());
        assert_ne!(a.id(), b.id());
        // Parts are separated before hashing: moving a character between them changes the id.
        let c = ForwardKey::new("s", "ab", "c");
        let d = ForwardKey::new("s", "a", "bc");
        assert_ne!(c.id(), d.id());
        let odd = ForwardKey::new("x", "../..", "a/b c");
        assert!(!odd.id().contains('/'), "{}", odd.id());
        // The FNV-1a output is part of the on-disk format: pin it.
        assert_eq!(ForwardKey::new("", "", "").id(), "_._.d94d12186c0f2fb7");
    }

    #[test]
    fn state_round_trips_with_camel_case_fields() {
        let dir = tempfile::tempdir().unwrap();
        let store = ForwardStore::at(dir.path().join("vc/forwards"));
        let s = state(1234, 40123, "999");
        store.write(&s).unwrap();
        let text = fs::read_to_string(store.state_path(&s.key())).unwrap();
        for field in
            ["\"pid\"", "\"hostContext\"", "\"hostServer\"", "\"pidStartTime\"", "\"started\""]
        {
            assert!(text.contains(field), "{field} missing in {text}");
        }
        assert!(text.contains("2025-01-02T03:04:05Z"));
        assert_eq!(store.read(&s.key()).unwrap(), Some(s.clone()));
        assert_eq!(store.list().unwrap(), vec![s.clone()]);
        store.remove(&s.key()).unwrap();
        store.remove(&s.key()).unwrap();
        assert_eq!(store.read(&s.key()).unwrap(), None);
    }

    #[test]
    fn remove_takes_the_log_files_and_nothing_of_other_forwards() {
        let dir = tempfile::tempdir().unwrap();
        let store = ForwardStore::at(dir.path());
        let gone = state(1, 1, "x");
        let kept = ForwardState { name: "other".into(), ..state(2, 2, "y") };
        for s in [&gone, &kept] {
            store.write(s).unwrap();
            Log::open(&store.log_path(&s.key())).unwrap().line("ready");
            fs::write(store.log_path(&s.key()).with_extension("log.old"), "older").unwrap();
        }
        store.remove(&gone.key()).unwrap();
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let id = kept.key().id();
        assert_eq!(left, [format!("{id}.json"), format!("{id}.log"), format!("{id}.log.old")]);

        // A failed start leaves a log without a state file: it goes too.
        Log::open(&store.log_path(&gone.key())).unwrap().line("cannot start");
        store.remove(&gone.key()).unwrap();
        assert!(!store.log_path(&gone.key()).exists());
    }

    #[test]
    fn list_skips_foreign_files_and_a_bad_file_is_an_error_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ForwardStore::at(dir.path());
        let s = state(1, 1, "x");
        store.write(&s).unwrap();
        fs::write(dir.path().join("junk.json"), "{").unwrap();
        fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        fs::write(store.state_path(&s.key()), "not json").unwrap();
        assert!(matches!(store.read(&s.key()), Err(ForwardError::StateFile { .. })));
        assert!(ForwardStore::at(dir.path().join("missing")).list().unwrap().is_empty());
    }

    #[test]
    fn liveness_needs_the_same_start_time() {
        let me = std::process::id();
        let start = process_start_time(me).expect("own start time");
        assert!(state(me, 1, &start).is_alive());
        assert!(!state(me, 1, "not-the-start-time").is_alive());
        assert!(!state(0, 1, &start).is_alive());
        assert!(!state(1, 1, &start).is_alive());
        assert_eq!(process_start_time(u32::MAX - 7), None);
    }

    #[tokio::test]
    async fn stop_refuses_a_recycled_pid() {
        let dir = tempfile::tempdir().unwrap();
        let store = ForwardStore::at(dir.path());
        // Our own pid with a wrong start time: must not be signalled.
        let s = state(std::process::id(), 1, "12345-not-me");
        store.write(&s).unwrap();
        let outcome = store.stop(&s.key(), Duration::from_millis(10)).await.unwrap();
        assert_eq!(outcome, StopOutcome::NotRunning);
        let status = store.status(&s.key()).await.unwrap().unwrap();
        assert!(!status.alive && !status.answering);
    }

    #[tokio::test]
    async fn stop_terminates_a_matching_process() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let start = process_start_time(pid).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = ForwardStore::at(dir.path());
        let s = state(pid, 1, &start);
        store.write(&s).unwrap();
        // Reap in the background so the exited child does not linger as a zombie.
        let waiter = std::thread::spawn(move || child.wait());
        let outcome = store.stop(&s.key(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(outcome, StopOutcome::Stopped { pid });
        assert!(!waiter.join().unwrap().unwrap().success());
    }

    #[test]
    fn port_selection() {
        let taken = bind_local(0).unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        // A requested port in use is a typed error.
        assert!(matches!(
            pick_port(Some(taken_port), None),
            Err(ForwardError::PortInUse { port }) if port == taken_port
        ));
        // The previous port is reused when free, skipped when taken.
        let free = {
            let l = bind_local(0).unwrap();
            l.local_addr().unwrap().port()
        };
        assert_eq!(pick_port(None, Some(free)).unwrap(), free);
        let other = pick_port(None, Some(taken_port)).unwrap();
        assert_ne!(other, taken_port);
        assert_ne!(other, 0);
        assert_eq!(pick_port(Some(free), Some(taken_port)).unwrap(), free);
        assert_ne!(pick_port(None, None).unwrap(), 0);
    }

    #[test]
    fn log_lines_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let log = Log::open(&path).unwrap();
        for i in 0..5 {
            log.line(&format!("line {i}"));
        }
        Log::none().line("nowhere");
        let tail = log_tail(&path, 2);
        assert!(tail.ends_with("line 4") && tail.contains("line 3") && !tail.contains("line 2"));
    }
}
