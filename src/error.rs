//! Typed errors the CLI branches on, and the one place that maps an error chain to an exit code.
//! Library layers return their own `thiserror` enums; this file only classifies them.

use std::fmt;

/// Documented exit codes (README and `vc --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failure = 1,
    Usage = 2,
    NotFound = 3,
    Timeout = 4,
    Unreachable = 5,
    Conflict = 6,
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error whose exit code is decided where it is raised.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self { exit, message: message.into() }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Exit::NotFound, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(Exit::Timeout, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Exit::Conflict, message)
    }
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(Exit::Unreachable, message)
    }
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(Exit::Interrupted, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The exit code for an error chain: the first link that decides it wins.
pub fn exit_code(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return e.exit;
        }
        if cause.downcast_ref::<crate::spec::SpecError>().is_some()
            || cause.downcast_ref::<crate::engine::EngineError>().is_some()
            || cause.downcast_ref::<crate::pool::PoolError>().is_some()
        {
            return Exit::Usage;
        }
        if let Some(e) = cause.downcast_ref::<crate::kubeconfig::KubeconfigError>() {
            return kubeconfig_exit(e);
        }
        if let Some(e) = cause.downcast_ref::<crate::forward::ForwardError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::host::HostError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<kube::Error>() {
            return kube_exit(e);
        }
    }
    Exit::Failure
}

/// Exit code of a kubeconfig error: naming a file or context that is not there is a usage
/// error; a file that cannot be read, parsed, locked or written is a failure.
fn kubeconfig_exit(e: &crate::kubeconfig::KubeconfigError) -> Exit {
    use crate::kubeconfig::KubeconfigError as K;
    match e {
        K::NoHome
        | K::ExplicitMissing { .. }
        | K::ContextNotFound { .. }
        | K::NoCurrentContext { .. } => Exit::Usage,
        _ => Exit::Failure,
    }
}

/// Exit code of a kube client error.
pub fn kube_exit(e: &kube::Error) -> Exit {
    match e {
        kube::Error::Api(status) => match status.code {
            401 | 403 => Exit::Unreachable,
            404 => Exit::NotFound,
            409 => Exit::Conflict,
            _ => Exit::Failure,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::Auth(_) => {
            Exit::Unreachable
        }
        _ => Exit::Failure,
    }
}
