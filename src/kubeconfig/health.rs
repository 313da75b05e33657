//! Checks of the kubeconfig files for `vc doctor`: can each be written the way vc writes it
//! (the file in place, a temp file beside it), and is a kubectl lock file left behind. Reads
//! only; [`remove_stale_lock`] is the one change, asked for with `--fix`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lock::lock_path;

/// A lock file older than this is taken as left behind by a process that died.
pub const STALE_LOCK_AGE: Duration = Duration::from_secs(60);

/// Whether vc could write `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writability {
    Writable,
    /// The file does not exist; vc would create it (its directory can be written or made).
    WouldCreate,
    /// Why not, in a few words.
    NotWritable(String),
}

/// Checks that `path` can be opened for writing (without changing it) and that its directory
/// takes a temp file (created and removed at once), as an atomic replace needs.
pub fn writability(path: &Path) -> Writability {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let exists = path.exists();
    if exists && let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
        return Writability::NotWritable(format!("cannot open it for writing: {e}"));
    }
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
            _ => break,
        }
    }
    if let Err(e) = tempfile::NamedTempFile::new_in(existing) {
        return Writability::NotWritable(format!(
            "cannot create a file in {}: {e}",
            existing.display()
        ));
    }
    if exists { Writability::Writable } else { Writability::WouldCreate }
}

/// The lock file of `path` and its age, when one is older than [`STALE_LOCK_AGE`].
pub fn stale_lock(path: &Path) -> Option<(PathBuf, Duration)> {
    let lock = lock_path(path);
    let modified = std::fs::metadata(&lock).ok()?.modified().ok()?;
    let age = modified.elapsed().unwrap_or_default();
    (age >= STALE_LOCK_AGE).then_some((lock, age))
}

/// Removes a stale lock file found by [`stale_lock`].
///
/// # Errors
/// The I/O error of the removal.
pub fn remove_stale_lock(lock: &Path) -> std::io::Result<()> {
    std::fs::remove_file(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writability_of_files_and_directories() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("config");
        assert_eq!(writability(&file), Writability::WouldCreate);
        assert_eq!(writability(&dir.path().join("a/b/config")), Writability::WouldCreate);
        std::fs::write(&file, "kind: Config\n").expect("write");
        assert_eq!(writability(&file), Writability::Writable);
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "kind: Config\n", "unchanged");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1, "no temp file left");
    }

    #[test]
    fn a_fresh_lock_is_not_stale() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("config");
        assert_eq!(stale_lock(&file), None);
        std::fs::write(lock_path(&file), "").expect("write");
        assert_eq!(stale_lock(&file), None);
    }
}
