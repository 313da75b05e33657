//! Which kubeconfig files vc reads and writes, resolved the way kubectl resolves them.
//! Pure path logic plus `stat` calls; it never reads or writes a kubeconfig's contents.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::KubeconfigError;

/// How long a writer waits for another process's `<file>.lock` before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of the process environment that decide where kubeconfig files are.
/// Tests build one by hand so they never look at the real `KUBECONFIG` or `HOME`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeconfigEnv {
    /// The raw value of `KUBECONFIG`, if set.
    pub kubeconfig: Option<OsString>,
    /// The user's home directory (`HOME` on unix).
    pub home: Option<PathBuf>,
}

impl KubeconfigEnv {
    /// Reads `KUBECONFIG` and the home directory of the running process.
    pub fn from_process() -> Self {
        Self { kubeconfig: std::env::var_os("KUBECONFIG"), home: dirs::home_dir() }
    }
}

/// Where the kubeconfig came from, which decides how new entries are routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathSource {
    /// `--kubeconfig PATH`: exactly one file, read and written.
    Explicit,
    /// Every file listed in `KUBECONFIG`.
    EnvVar,
    /// `~/.kube/config`.
    Home,
}

/// The resolved list of kubeconfig files in loading precedence order (kubectl's `PathOptions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeconfigPaths {
    source: PathSource,
    precedence: Vec<PathBuf>,
    lock_timeout: Duration,
}

impl KubeconfigPaths {
    /// Resolves the files from `--kubeconfig` and the process environment.
    ///
    /// # Errors
    /// [`KubeconfigError::NoHome`] when neither a path nor `KUBECONFIG` is given and the home
    /// directory is unknown.
    pub fn resolve(explicit: Option<&Path>) -> Result<Self, KubeconfigError> {
        Self::resolve_with(explicit, &KubeconfigEnv::from_process())
    }

    /// Resolves the files from `--kubeconfig` and an explicit environment.
    ///
    /// `KUBECONFIG` is split with the platform separator (`:` on unix); empty entries are
    /// skipped and repeated entries are kept once, in first-seen order. An empty or all-empty
    /// `KUBECONFIG` counts as unset, as in kubectl.
    ///
    /// # Errors
    /// [`KubeconfigError::NoHome`] when the home directory is needed but unknown.
    pub fn resolve_with(
        explicit: Option<&Path>,
        env: &KubeconfigEnv,
    ) -> Result<Self, KubeconfigError> {
        if let Some(path) = explicit.filter(|p| !p.as_os_str().is_empty()) {
            return Ok(Self::new(PathSource::Explicit, vec![path.to_path_buf()]));
        }
        if let Some(value) = env.kubeconfig.as_ref() {
            let mut files: Vec<PathBuf> = Vec::new();
            for path in std::env::split_paths(value) {
                if !path.as_os_str().is_empty() && !files.contains(&path) {
                    files.push(path);
                }
            }
            if !files.is_empty() {
                return Ok(Self::new(PathSource::EnvVar, files));
            }
        }
        let home = env.home.as_ref().ok_or(KubeconfigError::NoHome)?;
        Ok(Self::new(PathSource::Home, vec![home.join(".kube").join("config")]))
    }

    /// One explicit file, as `--kubeconfig PATH` gives.
    pub fn explicit(path: impl Into<PathBuf>) -> Self {
        Self::new(PathSource::Explicit, vec![path.into()])
    }

    fn new(source: PathSource, precedence: Vec<PathBuf>) -> Self {
        Self { source, precedence, lock_timeout: DEFAULT_LOCK_TIMEOUT }
    }

    /// Sets how long writers wait for a held lock (10 s by default).
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The files in loading order: the first file to define a name wins.
    pub fn precedence(&self) -> &[PathBuf] {
        &self.precedence
    }

    /// Where the list came from.
    pub fn source(&self) -> PathSource {
        self.source
    }

    /// How long writers wait for a held lock.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// The file that receives new entries and a new current-context (kubectl's
    /// `GetDefaultFilename`): the explicit file; the only `KUBECONFIG` file; else the first
    /// `KUBECONFIG` file that exists, else the last one listed; else `~/.kube/config`.
    pub fn default_file(&self) -> &Path {
        match self.precedence.as_slice() {
            [only] => only,
            files => files
                .iter()
                .find(|p| p.exists())
                .or_else(|| files.last())
                .map_or_else(|| Path::new(""), PathBuf::as_path),
        }
    }

    /// The list joined for messages: `a, b`.
    pub(crate) fn describe(&self) -> String {
        self.precedence.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}
