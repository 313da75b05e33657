//! All I/O with the host cluster: the client and its errors here; applying a rendered set,
//! finding and listing records, readiness, deletion and describe in the submodules. Prints
//! nothing.

mod apply;
mod delete;
mod describe;
pub mod doctor;
mod expose;
mod lifecycle;
mod network;
pub mod pool;
mod provision;
mod ready;
mod records;

pub use describe::{ObjectState, QuotaUsage};
pub use lifecycle::{
    ANNOTATION_LAST_ACTIVITY, ANNOTATION_PAUSED, PAUSE_REASON_IDLE, PAUSE_REASON_USER,
    PauseOutcome, ResumeOutcome, record_activity,
};
pub use network::NetworkFacts;
pub use pool::{KeeperPass, PoolRecord, run_pool_keeper};
pub use provision::{pin_isolation, pki_seed};
pub use ready::{ReadyEvent, pod_progress};
pub use records::{ClusterRecord, ClusterStatus, MadeBy, Workload, record_from};

use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::engine;
use crate::error::Exit;

/// Label the engine puts on every host object it syncs out of a virtual cluster.
pub const LABEL_SYNCED_BY: &str = "vcluster.loft.sh/managed-by";

/// A failure talking to the host, already phrased for the user.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "cannot reach the host API server {server} (context {context:?}): {reason}; check that the cluster is running and the context is right (kubectl --context {context} cluster-info)"
    )]
    Unreachable { server: String, context: String, reason: String },
    #[error(
        "the host API server {server} rejected the credentials of context {context:?} (401 Unauthorized): log in again or pick another context with --context"
    )]
    Unauthorized { server: String, context: String },
    #[error("forbidden on context {context:?}: {message}{hint}")]
    Forbidden { context: String, message: String, hint: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error("{what}: {message}")]
    Api { what: String, message: String },
    /// Something that will not get better by waiting (an invalid image, a refused pod).
    #[error("{0}")]
    Failed(String),
}

impl HostError {
    pub fn exit(&self) -> Exit {
        match self {
            Self::Unreachable { .. } | Self::Unauthorized { .. } | Self::Forbidden { .. } => {
                Exit::Unreachable
            }
            Self::NotFound(_) => Exit::NotFound,
            Self::Conflict(_) => Exit::Conflict,
            Self::Ambiguous(_) => Exit::Usage,
            Self::Api { .. } | Self::Failed(_) => Exit::Failure,
        }
    }
}

/// A connected host cluster.
#[derive(Clone)]
pub struct Host {
    pub client: Client,
    /// Kubeconfig context name of the host.
    pub context: String,
    /// API server URL of the host.
    pub server: String,
    /// The context's namespace, else `default`.
    pub default_namespace: String,
}

/// A namespace as `create` and `delete` need to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    Absent,
    /// Reading namespaces is forbidden.
    Unknown,
    Present {
        /// The cluster `vc` created it for, from its labels.
        made_for: Option<String>,
        terminating: bool,
    },
}

impl Host {
    /// Builds a client for `context` (else the current one) of an already loaded kubeconfig.
    pub async fn connect(kubeconfig: Kubeconfig, context: Option<&str>) -> anyhow::Result<Host> {
        let context_name = context
            .map(str::to_string)
            .or_else(|| kubeconfig.current_context.clone())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                crate::error::CliError::usage(
                    "the kubeconfig has no current context: pass --context NAME or run kubectl config use-context NAME",
                )
            })?;
        /// The one place that recognises rustls refusing an X.509 v1 certificate (no v3
        /// extensions, as a bare `openssl x509 -req` makes; kubectl accepts it). webpki reports
        /// it as `UnsupportedCertVersion` under "invalid peer certificate" even when the
        /// certificate is our own client certificate, which is what building the client parses.
        fn v1_certificate(user: &str, context: &str, cause: &str) -> Option<String> {
            cause.contains("UnsupportedCertVersion").then(|| {
                format!(
                    "the client certificate of kubeconfig user {user:?} (context {context:?}) is an X.509 v1 certificate, which vc's TLS stack (rustls) does not accept (kubectl does); re-issue it with v3 extensions, e.g. openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -out client.crt -extfile <(printf \"basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\nextendedKeyUsage=clientAuth\"), and put it in the kubeconfig (rustls: {cause})"
                )
            })
        }

        let user = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone())
            .unwrap_or_default();
        let options =
            KubeConfigOptions { context: Some(context_name.clone()), ..Default::default() };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot use context {context_name:?}: {e}"))?;
        // A host that does not answer must not hang the command.
        config.connect_timeout = Some(Duration::from_secs(10));
        let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let default_namespace = config.default_namespace.clone();
        let built = if crate::http_log::bodies_enabled() {
            kube::client::ClientBuilder::try_from(config)
                .map(|b| b.with_layer(&crate::http_log::BodyLogLayer).build())
        } else {
            Client::try_from(config)
        };
        let client =
            built.map_err(|e| match v1_certificate(&user, &context_name, &root_cause(&e)) {
                Some(message) => anyhow::anyhow!(message),
                None => anyhow::anyhow!("cannot build a client for {server}: {e}"),
            })?;
        Ok(Host { client, context: context_name, server, default_namespace })
    }

    /// Builds a client from the pod's service account (`vc operator run` in its Deployment).
    pub fn in_cluster() -> anyhow::Result<Host> {
        let config = kube::Config::incluster()
            .map_err(|e| anyhow::anyhow!("cannot use the pod's service account: {e}"))?;
        let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config)
            .map_err(|e| anyhow::anyhow!("cannot build a client for {server}: {e}"))?;
        Ok(Host { client, context: "in-cluster".to_string(), server, default_namespace })
    }

    /// The error for a host that did not answer before the command's deadline.
    pub fn no_answer(&self, timeout: Duration) -> HostError {
        HostError::Unreachable {
            server: self.server.clone(),
            context: self.context.clone(),
            reason: format!(
                "no answer within {} (--timeout)",
                crate::output::human_duration(timeout)
            ),
        }
    }

    /// Turns a kube error into a user-facing one; `what` names the object or action.
    pub fn explain(&self, what: &str, err: kube::Error) -> HostError {
        match err {
            kube::Error::Api(status) => match status.code {
                401 => HostError::Unauthorized {
                    server: self.server.clone(),
                    context: self.context.clone(),
                },
                403 => HostError::Forbidden {
                    context: self.context.clone(),
                    // The object and action, as the host's message names only the resource.
                    message: if what.is_empty() {
                        status.message.clone()
                    } else {
                        format!("{what}: {}", status.message)
                    },
                    hint: String::new(),
                },
                404 => HostError::NotFound(format!("{what}: {}", status.message)),
                409 => HostError::Conflict(format!("{what}: {}", status.message)),
                _ => HostError::Api { what: what.to_string(), message: status.message.clone() },
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                let cause = root_cause(&err);
                let reason = if cause.contains("UnsupportedCertVersion") {
                    format!(
                        "its certificate (or the CA that signed it) is an X.509 v1 certificate, which vc's TLS stack (rustls) does not accept (kubectl does); re-issue it with v3 extensions (rustls: {cause})"
                    )
                } else {
                    cause
                };
                HostError::Unreachable {
                    server: self.server.clone(),
                    context: self.context.clone(),
                    reason,
                }
            }
            other => HostError::Api { what: what.to_string(), message: root_cause(&other) },
        }
    }
}

/// The label selector of cluster `name`'s control plane (its workload, pods and volume claims),
/// as `app=vcluster,release=<name>`: the StatefulSet's selector, which the upstream CLI uses too.
pub fn control_plane_selector(name: &str) -> String {
    format!("{}={},{}={name}", engine::LABEL_APP, engine::APP_VCLUSTER, engine::LABEL_RELEASE)
}

/// The innermost message of an error chain ("Connection refused" rather than the wrappers).
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
