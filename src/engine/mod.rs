//! Pure rendering: a `VirtualClusterSpec` and its placement become the host objects and the
//! engine configuration for the pinned engine release. No I/O, no clock, no client.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

use crate::spec::SpecError;

pub mod config;
pub mod etcd;
pub mod images;
pub mod isolation;
pub mod objects;
pub mod pki;
pub mod rbac;
mod render;
pub mod restore;

pub use images::{ENGINE_IMAGE, ENGINE_RELEASE, KUBERNETES_VERSIONS};
pub use render::{engine_config, render};

/// Label on every object `vc` creates.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "vc";
/// Label naming the virtual cluster an object belongs to.
pub const LABEL_CLUSTER: &str = "vc.dev/cluster";
/// Labels the engine and the upstream CLI rely on (`app: vcluster`, `release: <name>`).
pub const LABEL_APP: &str = "app";
pub const APP_VCLUSTER: &str = "vcluster";
pub const LABEL_RELEASE: &str = "release";
/// Label the engine puts on every pod it syncs into the host namespace.
pub const LABEL_MANAGED_BY_ENGINE: &str = "vcluster.loft.sh/managed-by";
/// Annotations holding the record on the control-plane workload.
pub const ANNOTATION_SPEC: &str = "vc.dev/spec";
pub const ANNOTATION_CREATED_AT: &str = "vc.dev/created-at";
pub const ANNOTATION_EXPIRES_AT: &str = "vc.dev/expires-at";
pub const ANNOTATION_KUBERNETES_VERSION: &str = "vc.dev/kubernetes-version";
/// Server-side apply field manager.
pub const FIELD_MANAGER: &str = "vc";

/// Where a virtual cluster goes, and when it was asked for (the caller reads the clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub name: String,
    pub namespace: String,
    /// Whether `vc` creates (and later deletes) the namespace.
    pub own_namespace: bool,
    pub created_at: Timestamp,
    /// The host's Kubernetes minor version, when known (some Role rules depend on it).
    pub host_minor: Option<u32>,
}

/// One host object, typed.
// A render yields about fifteen of these, once per command; boxing the larger variants would
// save little memory and make every construction and match noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum HostObject {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    Secret(Secret),
    Service(Service),
    Ingress(Ingress),
    StatefulSet(StatefulSet),
    NetworkPolicy(NetworkPolicy),
    ResourceQuota(ResourceQuota),
    LimitRange(LimitRange),
}

/// Everything `vc create` applies, in order (the namespace, when present, comes first).
#[derive(Clone, Debug)]
pub struct Rendered {
    pub objects: Vec<HostObject>,
    /// Creation time plus TTL, as recorded on the StatefulSet.
    pub expires_at: Option<Timestamp>,
    /// Resolved Kubernetes version, such as "v1.33.4".
    pub kubernetes_version: String,
    pub control_plane_image: String,
    pub engine_image: String,
}

impl Rendered {
    /// Adds the engine's certificate Secret (see [`pki`]) just before the StatefulSet, so it
    /// exists when the engine first looks for it.
    pub fn add_certs(&mut self, secret: Secret) {
        let at = self
            .objects
            .iter()
            .position(|o| matches!(o, HostObject::StatefulSet(_)))
            .unwrap_or(self.objects.len());
        self.objects.insert(at, HostObject::Secret(secret));
    }

    /// Keeps an expiry recorded on the host when it is later than the rendered one (moved by
    /// `vc extend`), so re-applying a cluster never shortens its life.
    pub fn keep_later_expiry(&mut self, recorded: Timestamp) {
        if self.expires_at.is_some_and(|rendered| rendered >= recorded) {
            return;
        }
        self.expires_at = Some(recorded);
        for object in &mut self.objects {
            if let Some(sts) = object.as_control_plane_mut() {
                sts.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(ANNOTATION_EXPIRES_AT.to_string(), recorded.to_string());
            }
        }
    }
}

/// A spec the engine cannot render.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown Kubernetes version {given:?}; known versions: {known}")]
    UnknownVersion { given: String, known: String },
    #[error("engine.values: {0}")]
    Values(String),
    /// A variant `vc` does not render or the engine refuses; the text names the key, why,
    /// and what to do instead.
    #[error("engine.values: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// Name of the engine's admin kubeconfig Secret.
pub fn kubeconfig_secret_name(name: &str) -> String {
    format!("vc-{name}")
}

/// Name of the engine's certificate Secret (`pkg/certs`: every file of `/data/pki`, written
/// once the engine has generated them, before the API server starts).
pub fn certs_secret_name(name: &str) -> String {
    format!("{name}-certs")
}

/// Key of the admin kubeconfig (`kubernetes-super-admin`, `system:masters`) in the
/// certificate Secret; its server is the API server's own `https://127.0.0.1:6443`, and its
/// CA also signs the syncer's certificate on port 8443.
pub const CERTS_ADMIN_KEY: &str = "admin.conf";

/// Default host namespace of a virtual cluster.
pub fn default_namespace(name: &str) -> String {
    format!("vc-{name}")
}

/// The labels on every object of cluster `name`.
pub fn common_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_CLUSTER.to_string(), name.to_string()),
    ])
}

/// Applies `$body` to the typed object inside a [`HostObject`], whatever its kind.
macro_rules! with_object {
    ($object:expr, $inner:ident => $body:expr) => {
        match $object {
            HostObject::Namespace($inner) => $body,
            HostObject::ServiceAccount($inner) => $body,
            HostObject::Role($inner) => $body,
            HostObject::RoleBinding($inner) => $body,
            HostObject::Secret($inner) => $body,
            HostObject::Service($inner) => $body,
            HostObject::Ingress($inner) => $body,
            HostObject::StatefulSet($inner) => $body,
            HostObject::NetworkPolicy($inner) => $body,
            HostObject::ResourceQuota($inner) => $body,
            HostObject::LimitRange($inner) => $body,
        }
    };
}

fn self_is_control_plane(sts: &StatefulSet) -> bool {
    sts.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .and_then(|l| l.get(LABEL_APP))
        .is_some_and(|app| app == APP_VCLUSTER)
}

fn kind_of<T: k8s_openapi::Resource>(_: &T) -> &'static str {
    T::KIND
}

fn plural_of<T: k8s_openapi::Resource>(_: &T) -> &'static str {
    T::URL_PATH_SEGMENT
}

fn api_version_of<T: k8s_openapi::Resource>(_: &T) -> &'static str {
    T::API_VERSION
}

impl HostObject {
    /// Whether this is the control-plane StatefulSet (selector `app: vcluster`), which carries
    /// the record; the deployed etcd's StatefulSet is not.
    pub fn is_control_plane(&self) -> bool {
        matches!(self, HostObject::StatefulSet(sts) if self_is_control_plane(sts))
    }

    /// The control-plane StatefulSet, when this is it.
    pub fn as_control_plane_mut(&mut self) -> Option<&mut StatefulSet> {
        match self {
            HostObject::StatefulSet(sts) if self_is_control_plane(sts) => Some(sts),
            _ => None,
        }
    }

    /// Whether the engine owns the object once it exists: `vc` only creates it and never
    /// changes one it finds (the engine's certificate Secret, which the engine may renew).
    pub fn engine_owned(&self) -> bool {
        matches!(self, HostObject::Secret(secret)
            if secret.metadata.labels.as_ref().is_some_and(|l| l.contains_key(pki::LABEL_VCLUSTER_NAME)))
    }

    /// The object's kind, such as "StatefulSet".
    pub fn kind(&self) -> &'static str {
        with_object!(self, o => kind_of(o))
    }

    /// The object's apiVersion, such as "apps/v1".
    pub fn api_version(&self) -> &'static str {
        with_object!(self, o => api_version_of(o))
    }

    /// The object's resource name in API paths, such as "statefulsets".
    pub fn plural(&self) -> &'static str {
        with_object!(self, o => plural_of(o))
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        with_object!(self, o => o.metadata.name.as_deref().unwrap_or_default())
    }

    /// The object's namespace; `None` for the (cluster-scoped) Namespace.
    pub fn namespace(&self) -> Option<&str> {
        with_object!(self, o => o.metadata.namespace.as_deref())
    }

    /// The object's metadata, for what a caller adds (the operator's owner references).
    pub fn metadata_mut(
        &mut self,
    ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        with_object!(self, o => &mut o.metadata)
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing these typed objects cannot fail: they hold only strings, numbers, maps
        // and lists.
        with_object!(self, o => serde_json::to_value(o).unwrap_or(serde_json::Value::Null))
    }
}

/// The objects as one `v1` `List`, for `vc create --dry-run`.
pub fn as_list(objects: &[HostObject]) -> ObjectList {
    ObjectList {
        api_version: "v1",
        kind: "List",
        items: objects.iter().map(HostObject::to_json).collect(),
    }
}

/// A `v1` `List` of rendered objects, fields in the order kubectl prints them.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub items: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests;
