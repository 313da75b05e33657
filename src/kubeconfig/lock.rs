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

/// One held lock; the lock file is removed when this is dropped, on success and on error.
#[derive(Debug)]
pub(crate) struct FileLock {
    lock: PathBuf,
}

impl FileLock {
    /// Creates `<path>.lock` exclusively, retrying with backoff until `timeout` has passed.
    pub(crate) fn acquire(path: &Path, timeout: Duration) -> Result<Self, KubeconfigError> {
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
                    std::thread::sleep(backoff.min(timeout.saturating_sub(waited)));
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
    pub(crate) fn add(&mut self, path: &Path, timeout: Duration) -> Result<(), KubeconfigError> {
        if self.holds(path) {
            return Ok(());
        }
        let lock = FileLock::acquire(path, timeout)?;
        self.held.push((path.to_path_buf(), lock));
        Ok(())
    }

    /// Whether `path` is locked by this set.
    pub(crate) fn holds(&self, path: &Path) -> bool {
        self.held.iter().any(|(p, _)| p == path)
    }
}
