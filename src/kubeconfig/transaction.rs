//! One locked read-modify-write over all kubeconfig files of a [`KubeconfigPaths`].
//! It owns the locking and the final writes; what to change is decided by its callers.

use std::path::PathBuf;

use super::file::{KubeconfigFile, ensure_parent_dir, write_atomic};
use super::lock::{LockSet, Wait};
use super::{KubeconfigError, KubeconfigPaths};

/// All files, re-read after the locks are held. Dropping it releases the locks.
pub(crate) struct Transaction {
    /// Every file of the precedence list, missing ones as empty configs.
    pub(crate) files: Vec<KubeconfigFile>,
    /// Index into `files` of the file that takes new stanzas.
    pub(crate) default_index: usize,
    _locks: LockSet,
}

impl Transaction {
    /// Locks (sorted, kubectl's order) every existing file and the default file, then reads
    /// them all. A lock that cannot be created because its directory is read-only is skipped
    /// for files vc will only read; writing such a file later fails with `ReadOnly`. `wait`
    /// says how to wait for a lock someone else holds.
    pub(crate) async fn begin(
        paths: &KubeconfigPaths,
        wait: Wait,
    ) -> Result<Self, KubeconfigError> {
        let mut locks = LockSet::default();
        let default = lock_all(paths, &mut locks, wait).await?;
        // Another writer may have created a file while we waited; the default can then move.
        let default = match paths.default_file() {
            now if now != default => {
                ensure_parent_dir(now)?;
                locks.add(now, paths.lock_timeout(), wait).await?;
                now.to_path_buf()
            }
            _ => default,
        };
        let files = paths
            .precedence()
            .iter()
            .map(|p| KubeconfigFile::read(p))
            .collect::<Result<Vec<_>, _>>()?;
        let default_index = paths.precedence().iter().position(|p| *p == default).unwrap_or(0);
        Ok(Self { files, default_index, _locks: locks })
    }

    /// Writes every file whose meaning changed; returns their paths. All files are rendered
    /// (and checked to read back) before the first one is written.
    pub(crate) fn commit(self) -> Result<Vec<PathBuf>, KubeconfigError> {
        let mut rendered = Vec::new();
        for file in &self.files {
            if file.is_changed()? {
                rendered.push((file.path(), file.render()?));
            }
        }
        let mut written = Vec::new();
        for (path, text) in rendered {
            write_atomic(path, text.as_bytes())?;
            written.push(path.to_path_buf());
        }
        Ok(written)
    }
}

async fn lock_all(
    paths: &KubeconfigPaths,
    locks: &mut LockSet,
    wait: Wait,
) -> Result<PathBuf, KubeconfigError> {
    let default = paths.default_file().to_path_buf();
    ensure_parent_dir(&default)?;
    let mut targets: Vec<&PathBuf> =
        paths.precedence().iter().filter(|p| **p == default || p.exists()).collect();
    targets.sort();
    for path in targets {
        match locks.add(path, paths.lock_timeout(), wait).await {
            Err(KubeconfigError::ReadOnly { .. }) if *path != default => {}
            other => other?,
        }
    }
    Ok(default)
}
