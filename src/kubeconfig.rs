//! Kubeconfig files: resolve them as kubectl does, load each on its own, merge in memory for
//! lookups, and write back only the file that changes, atomically and under kubectl's lock.
//! This is the only module that reads or writes kubeconfig files; it never talks to a cluster.
//!
//! # Files
//!
//! [`KubeconfigPaths::resolve`] follows kubectl: `--kubeconfig PATH`, else every file in
//! `KUBECONFIG` (split on `:`, empty entries skipped, duplicates kept once), else
//! `~/.kube/config`. The environment is injectable ([`KubeconfigEnv`]) so tests never see the
//! real one.
//!
//! # Reading
//!
//! [`LoadedKubeconfigs::load`] parses every file on its own with kube's
//! [`Kubeconfig::from_yaml`]. A missing `KUBECONFIG` file is skipped; a missing `--kubeconfig`
//! file is an error; an empty file is an empty config; malformed YAML is
//! [`KubeconfigError::Malformed`] naming the file, line and column. [`LoadedKubeconfigs::merged`]
//! is kubectl's merged view (first file to define a name wins, relative paths made absolute
//! against the file that holds them), ready for `kube::Config::from_custom_kubeconfig`.
//! [`LoadedKubeconfigs::host_context`] picks the host context (`--context`, else the current
//! one; when the current one is a vc context, the host it was made from).
//!
//! # Writing
//!
//! [`upsert_virtual_cluster`] and [`remove_virtual_cluster`] run one locked transaction: lock
//! `<file>.lock` for every existing file and the default file (exclusive create, sorted order,
//! backoff up to [`KubeconfigPaths::lock_timeout`]), re-read all files, edit, write only the files
//! whose meaning changed, unlock (also on error). The `_async` variants wait for a held lock with
//! `tokio::time::sleep`, so Ctrl-C ends the wait at once; the plain ones block the thread and
//! are for callers off the runtime. Routing is kubectl's `ModifyConfig`: an edited
//! stanza stays in the file that defines it; a new stanza and a new current-context go to the
//! default file ([`KubeconfigPaths::default_file`]); clearing current-context clears it where it
//! is set. A missing `--kubeconfig` file or default file is created. A rewrite keeps every
//! stanza vc did not change as it was (including fields kube's types do not model); comments
//! and key order are not kept. Writes go to a temp file in the same directory, fsync, rename
//! over the target (the target of a symlink), keeping mode and owner (0600 for a new file; a
//! missing `~/.kube` is created). A file or directory without write permission is
//! [`KubeconfigError::ReadOnly`]; a malformed file is never written.
//!
//! # Virtual cluster entries
//!
//! A virtual cluster gets a context, cluster and user all named `vc-<name>`, or
//! `vc-<name>@<host-context>` when `vc-<name>` belongs to a cluster of the same name elsewhere
//! (another host server or namespace). The context carries a [`EXTENSION_NAME`] extension
//! ([`VirtualClusterMetadata`]: name, namespace, host context, host server and the context that
//! was current before vc switched), which [`list_virtual_cluster_entries`] and
//! [`remove_virtual_cluster`] use to find entries and restore the previous context.
//!
//! # Standalone kubeconfigs
//!
//! [`standalone_kubeconfig`] turns the engine's admin kubeconfig (Secret `vc-<name>`, key
//! `config`, server `https://localhost:8443`) into a one-context kubeconfig for another server
//! URL (TLS verification and CA data kept); [`render_kubeconfig`] prints it (`--print`) and
//! [`write_private_kubeconfig`] writes it to a private temp file (`vc connect -- CMD`).

mod entries;
mod file;
pub mod health;
mod loaded;
mod lock;
mod paths;
mod standalone;
mod transaction;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use entries::{
    Credentials, CurrentContextChange, EXTENSION_NAME, EntryOutcome, RemovedOutcome,
    VirtualClusterContext, VirtualClusterEntry, VirtualClusterMetadata, VirtualClusterRef,
    VirtualClusterSelector, list_virtual_cluster_entries, remove_virtual_cluster,
    remove_virtual_cluster_async, upsert_virtual_cluster, upsert_virtual_cluster_async,
};
pub use file::KubeconfigFile;
pub use kube::config::Kubeconfig;
pub use loaded::{HostContext, LoadedKubeconfigs};
pub use paths::{DEFAULT_LOCK_TIMEOUT, KubeconfigEnv, KubeconfigPaths, PathSource};
pub use standalone::{
    parse_admin_kubeconfig, render_kubeconfig, standalone_kubeconfig, write_private_kubeconfig,
};

/// Everything that can go wrong with kubeconfig files. Each message names the file and the
/// next step.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "cannot find the home directory to locate ~/.kube/config; set KUBECONFIG or pass --kubeconfig"
    )]
    NoHome,

    #[error("kubeconfig file {} does not exist (given with --kubeconfig)", path.display())]
    ExplicitMissing { path: PathBuf },

    #[error("cannot read kubeconfig {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `message` is the parser's, which already ends with "at line L, column C" when known.
    #[error(
        "kubeconfig {} is not a valid kubeconfig: {message}; vc left it untouched, fix or move it and retry",
        path.display()
    )]
    Malformed { path: PathBuf, line: Option<u64>, column: Option<u64>, message: String },

    #[error(
        "kubeconfig {} is read-only{}; make it writable, point --kubeconfig at a writable file, or use --print to write the kubeconfig to stdout instead",
        path.display(),
        source.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
    )]
    ReadOnly { path: PathBuf, source: Option<io::Error> },

    #[error(
        "kubeconfig lock file {} is still held after {:.1}s; if no kubectl or vc is running, delete {} and retry",
        lock.display(),
        waited.as_secs_f64(),
        lock.display()
    )]
    LockTimeout { lock: PathBuf, waited: Duration },

    #[error("cannot create kubeconfig lock file {}: {source}", lock.display())]
    Lock {
        lock: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot write kubeconfig {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot serialise kubeconfig {}: {message}; the file was not written", path.display())]
    Serialize { path: PathBuf, message: String },

    #[error("context {name:?} not found in kubeconfig {files} (see: kubectl config get-contexts)")]
    ContextNotFound { name: String, files: String },

    #[error("no current context is set in kubeconfig {files}; pass --context NAME")]
    NoCurrentContext { files: String },

    #[error(
        "context {name:?} was not made by vc (it has no {EXTENSION_NAME} extension); remove it with kubectl config delete-context"
    )]
    NotVirtualClusterContext { name: String },

    #[error("the virtual cluster's admin kubeconfig is unusable: {reason}")]
    AdminKubeconfig { reason: String },

    #[error("no free kubeconfig name for virtual cluster {name:?} on context {host_context:?}")]
    NoFreeName { name: String, host_context: String },
}
