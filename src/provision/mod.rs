//! Manifests put inside a virtual cluster once it is ready: the spec's sources (files,
//! directories, URLs, inline YAML) loaded into objects and checked before anything reaches the
//! host, put in apply order, then applied one by one with server-side apply (field manager
//! `vc`) through a client of the virtual API server. Never talks to the host.

mod apply;
mod load;

pub use apply::apply;
pub use load::{is_local, load, parse};

/// One object to apply, with where it came from (for error messages).
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// `app.yaml`, `https://example.com/x.yaml` or `inline manifest 1`, plus the document
    /// number when the source holds several.
    pub source: String,
    pub object: serde_json::Value,
    /// Where a namespaced object that names no namespace goes, when not `default` (a chart's
    /// release namespace).
    pub default_namespace: Option<String>,
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str().filter(|ns| !ns.is_empty())
    }

    /// `ConfigMap "app"` or `Deployment "web" in namespace "shop"`, for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {:?} in namespace {ns:?}", self.kind(), self.name()),
            None => format!("{} {:?}", self.kind(), self.name()),
        }
    }

    fn is_namespace(&self) -> bool {
        self.kind() == "Namespace" && self.api_version() == "v1"
    }

    fn is_crd(&self) -> bool {
        self.kind() == "CustomResourceDefinition"
            && self.api_version().starts_with("apiextensions.k8s.io/")
    }
}

/// Why the manifests could not be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot read manifest {from}: {reason}")]
    Read { from: String, reason: String },
    #[error("manifest {from} is not valid YAML: {reason}")]
    Parse { from: String, reason: String },
    #[error("manifest {from} is not a Kubernetes object: {reason}")]
    NotAnObject { from: String, reason: String },
    #[error("applying {object} (from {from}) failed: {reason}")]
    Apply { object: String, from: String, reason: String },
    #[error(
        "applying {object} (from {from}) failed: the virtual cluster serves no kind {kind:?} in {api_version:?}; apply its CustomResourceDefinition first (it may be in the same manifests)"
    )]
    NotServed { object: String, from: String, kind: String, api_version: String },
    #[error("CustomResourceDefinition {name:?} (from {from}) did not become Established: {reason}")]
    NotEstablished { name: String, from: String, reason: String },
}

/// The apply order: Namespaces first, then CustomResourceDefinitions (so the objects that live
/// in them, and the custom resources they define, come after), then everything else as given.
pub fn ordered(manifests: &[Manifest]) -> Vec<&Manifest> {
    let rank = |m: &Manifest| {
        if m.is_namespace() {
            0
        } else if m.is_crd() {
            1
        } else {
            2
        }
    };
    let mut out: Vec<&Manifest> = manifests.iter().collect();
    out.sort_by_key(|m| rank(m));
    out
}

#[cfg(test)]
mod tests;
