//! Faults injected by tests (fixed error responses, delays) and the request log.

use std::time::Duration;

use crate::status::ApiError;

/// One recorded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The Kubernetes verb: get, list, watch, create, update, patch, apply, delete,
    /// deletecollection, or `other` for discovery and non-resource paths.
    pub verb: String,
}

impl RequestRecord {
    /// Whether this was a request for `verb` on a path containing `path_contains`.
    pub fn is(&self, verb: &str, path_contains: &str) -> bool {
        self.verb == verb && self.path.contains(path_contains)
    }

    /// A watch (one record per watch connection, made when it opens).
    pub fn is_watch(&self) -> bool {
        self.verb == "watch"
    }

    /// A write: create, update, patch, apply, delete or deletecollection (of an object or
    /// a subresource such as `/status`).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "apply" | "delete" | "deletecollection"
        )
    }

    /// A request on `coordination.k8s.io` Leases (leader election: get, create, renewals).
    pub fn is_lease(&self) -> bool {
        self.path.starts_with("/apis/coordination.k8s.io/") && self.path.contains("/leases")
    }
}

/// What a matching fault does.
#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Answer with this error instead of handling the request.
    Respond(ApiError),
    /// Answer with the RBAC Forbidden body for this user.
    Forbid { user: String },
    /// Handle the request after this delay.
    Delay(Duration),
}

impl Default for FaultAction {
    fn default() -> Self {
        FaultAction::Respond(ApiError::internal("injected failure"))
    }
}

/// A fault: requests whose method and Kubernetes verb match (any when `None`) and whose path
/// contains `path_contains` get `action`, `remaining` times (forever when `None`). A trailing
/// `$` anchors the match at the end of the path (`/api/v1/namespaces$` matches creating a
/// namespace but not a ConfigMap inside one).
#[derive(Clone, Debug, Default)]
pub struct Fault {
    pub method: Option<String>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `apply`, `delete`, ...
    pub verb: Option<String>,
    pub path_contains: String,
    pub action: FaultAction,
    pub remaining: Option<usize>,
}

impl Fault {
    pub fn matches(&self, method: &str, verb: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.verb.as_deref().is_none_or(|v| v == verb)
            && match self.path_contains.strip_suffix('$') {
                Some(suffix) => path.ends_with(suffix),
                None => path.contains(&self.path_contains),
            }
            && self.remaining != Some(0)
    }
}

#[derive(Default)]
pub struct Faults {
    pub rules: Vec<Fault>,
    pub log: Vec<RequestRecord>,
}
