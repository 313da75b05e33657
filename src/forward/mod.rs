//! Port-forward to a virtual cluster's control plane through the host API: the transport, the
//! in-process [`Forward`], the detached background forwarder and its state and log files.
//! It never prints to stdout and never touches kubeconfig files beyond asking the `kubeconfig`
//! module to load them for the forwarder's host client.
//!
//! - [`transport`]: one WebSocket port-forward stream per accepted local connection, with our own
//!   framing ([`ws`]) and retries with backoff while the pod or the stream is away.
//! - [`state`]: `vc/forwards/<key>.json` and `.log` under the state directory; port selection;
//!   pid checks.
//! - [`forwarder`]: `run_forwarder` (the hidden `vc forwarder` subcommand), `spawn_background`,
//!   `status`, `stop`, `list_states`.

mod forwarder;
mod state;
mod transport;
mod ws;

use std::io;
use std::path::PathBuf;

pub use forwarder::{
    DEFAULT_GONE_AFTER, ForwarderExit, ForwarderOptions, HOST_GONE_AFTER, SpawnOptions,
    list_states, list_states_alive, run_forwarder, run_forwarder_with_client, spawn_background,
    status, stop,
};
pub use state::{
    ForwardKey, ForwardState, ForwardStatus, ForwardStore, StopOutcome, bind_local, pick_port,
};
pub use transport::{Forward, ForwardOptions, PodTarget};

use crate::error::Exit;

/// The virtual cluster's API port inside the control-plane pod.
pub const CONTROL_PLANE_PORT: u16 = 8443;

/// The control-plane pod of a virtual cluster: the StatefulSet's first replica.
pub fn control_plane_pod(name: &str) -> String {
    format!("{name}-0")
}

/// What went wrong with a forward; callers branch on the variant, [`ForwardError::exit`] maps it.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("local port {port} is already in use on 127.0.0.1 (choose another with --local-port)")]
    PortInUse { port: u16 },

    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: io::Error },

    #[error("cannot open a port-forward to pod {target}: {source}")]
    Stream {
        target: String,
        #[source]
        source: kube::Error,
    },

    #[error("no port-forward to pod {target} within {}s", after.as_secs_f64())]
    StreamTimeout { target: String, after: std::time::Duration },

    #[error("pod {target} did not accept the forwarded connection: {message}")]
    Refused { target: String, message: String },

    #[error("port-forward to pod {target} broke: {source}")]
    Relay {
        target: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "no state directory: neither $XDG_STATE_HOME, ~/.local/state nor a local data directory is known"
    )]
    NoStateDir,

    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },

    #[error("forward state file {} is not valid JSON: {source} (delete it to start over)", path.display())]
    StateFile { path: PathBuf, source: serde_json::Error },

    #[error("cannot reach the host through context {context:?}: {message}")]
    Host { context: String, message: String },

    #[error("cannot start the forwarder {}: {source}", program.display())]
    Spawn { program: PathBuf, source: io::Error },

    #[error(
        "the forwarder for {cluster} exited before it was ready ({status}); the end of its log {}:\n{tail}",
        log.display()
    )]
    ForwarderExited { cluster: String, status: String, log: PathBuf, tail: String },

    #[error(
        "the forwarder for {cluster} was not ready after {}s (see its log {})",
        timeout.as_secs(),
        log.display()
    )]
    NotReady { cluster: String, timeout: std::time::Duration, log: PathBuf },

    #[error("cannot signal forwarder pid {pid}: {source}")]
    Signal { pid: u32, source: io::Error },
}

impl ForwardError {
    /// The documented exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            Self::PortInUse { .. } => Exit::Conflict,
            Self::NotReady { .. } | Self::StreamTimeout { .. } => Exit::Timeout,
            Self::Stream { source, .. } => crate::error::kube_exit(source),
            Self::Host { .. } => Exit::Unreachable,
            _ => Exit::Failure,
        }
    }
}

#[cfg(test)]
mod tests;
