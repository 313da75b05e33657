//! kubectl's kubeconfig lock: an exclusive create of `<file>.lock` next to the file.
//! Held for a whole read-modify-write; it never touches the kubeconfig itself.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::KubeconfigError;
use super::file::{is_read_only_error, looks_read_only};

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// The lock file kubectl uses for `path`: the same path (not its symlink target) plus `.lock`.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// How a lock wait passes the time between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `tokio::time::sleep`: the task yields, so the runtime (and a `select!` on Ctrl-C around
    /// the command) keeps running, and dropping the future abandons the wait at once.
    Async,
    /// `std::thread::sleep`, for callers on a plain thread. On the async runtime it stalls the
    /// whole task, Ctrl-C included, for up to the lock timeout.
    Blocking,
}

impl Wait {
    async fn sleep(self, duration: Duration) {
        match self {
            Self::Async => tokio::time::sleep(duration).await,
            Self::Blocking => std::thread::sleep(duration),
        }
    }
}

/// Drives a future whose only suspension points are [`Wait::Blocking`] sleeps, which never
/// suspend: it completes on its first poll, on any thread, with or without a runtime.
pub(crate) fn run_blocking<T>(future: impl Future<Output = T>) -> T {
    use futures::FutureExt as _;
    // An invariant of this module, not something a user or a host can influence.
    future.now_or_never().expect("a Wait::Blocking lock transaction never suspends")
}

/// One held lock; the lock file is removed when this is dropped, on success and on error.
/// Only a lock this process created is ever removed.
#[derive(Debug)]
pub(crate) struct FileLock {
    lock: PathBuf,
}

impl FileLock {
    /// Creates `<path>.lock` exclusively, retrying with backoff until `timeout` has passed.
    pub(crate) async fn acquire(
        path: &Path,
        timeout: Duration,
        wait: Wait,
    ) -> Result<Self, KubeconfigError> {
        let lock = lock_path(path);
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty())
            && looks_read_only(dir)
        {
            return Err(KubeconfigError::ReadOnly { path: path.to_path_buf(), source: None });
        }
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(_) => return Ok(Self { lock }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let waited = started.elapsed();
                    if waited >= timeout {
                        return Err(KubeconfigError::LockTimeout { lock, waited });
                    }
                    wait.sleep(backoff.min(timeout.saturating_sub(waited))).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) if is_read_only_error(&e) => {
                    return Err(KubeconfigError::ReadOnly {
                        path: path.to_path_buf(),
                        source: Some(e),
                    });
                }
                Err(source) => return Err(KubeconfigError::Lock { lock, source }),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Nothing useful can be done if removal fails; the timeout message names the file.
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// Locks for several files, always taken in sorted order so two writers cannot deadlock.
#[derive(Debug, Default)]
pub(crate) struct LockSet {
    held: Vec<(PathBuf, FileLock)>,
}

impl LockSet {
    /// Locks `path` unless it is already held by this set.
    pub(crate) async fn add(
        &mut self,
        path: &Path,
        timeout: Duration,
        wait: Wait,
    ) -> Result<(), KubeconfigError> {
        if self.holds(path) {
            return Ok(());
        }
        let lock = FileLock::acquire(path, timeout, wait).await?;
        self.held.push((path.to_path_buf(), lock));
        Ok(())
    }

    /// Whether `path` is locked by this set.
    pub(crate) fn holds(&self, path: &Path) -> bool {
        self.held.iter().any(|(p, _)| p == path)
    }
}
