//! The `VirtualCluster` custom resource (`virtualclusters.vc.dev/v1alpha1`): the object, its
//! status, and the CustomResourceDefinition generated from `VirtualClusterSpec`. Pure data: no
//! client, no clock.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::spec::{MAX_NAME_LEN, VirtualClusterSpec};

pub const GROUP: &str = "vc.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "VirtualCluster";
pub const PLURAL: &str = "virtualclusters";
pub const SHORT_NAME: &str = "vcl";
/// `virtualclusters.vc.dev`.
pub const CRD_NAME: &str = "virtualclusters.vc.dev";

/// The Kubernetes version as `vc create --kubernetes-version` takes it: `1.33`, `v1.33`,
/// `1.33.4` (which versions exist is the engine's table, checked by the reconciler).
pub const PATTERN_KUBERNETES_VERSION: &str = r"^v?1\.[0-9]{1,3}(\.[0-9]{1,3})?$";
/// A duration as `spec::parse_ttl` reads it: numbers with units s, m, h, d, w (`1h30m`).
pub const PATTERN_DURATION: &str = r"^([0-9]+[smhdw])+$";
/// A resource quantity as `spec::is_quantity` reads it (`500m`, `8Gi`, `1e3`).
pub const PATTERN_QUANTITY: &str =
    r"^([0-9]+\.?[0-9]*|\.[0-9]+)([mkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]+)?$";
/// A label value (empty, or at most 63 alphanumerics, '-', '_', '.', alphanumeric at the ends).
pub const PATTERN_LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$";

/// Finalizer that runs vc's delete path before the object goes: the control plane's volume
/// claim and what the engine synced carry no owner reference, so garbage collection alone
/// would leave them.
pub const FINALIZER: &str = "vc.dev/cleanup";

/// Annotation `"true"` on a VirtualCluster: it takes over the cluster of its name that
/// `vc create` made in its namespace (`vc adopt`). Without it, such a cluster is never
/// touched and the object is Degraded `NotOwned`.
pub const ANNOTATION_ADOPT: &str = "vc.dev/adopt";

/// The adopted cluster's creation time (RFC 3339) on its VirtualCluster, so its record and
/// its expiry keep counting from when `vc create` made it, not from the adoption.
pub const ANNOTATION_ADOPTED_CREATED_AT: &str = "vc.dev/created-at";

/// A virtual cluster declared as an object; its control plane runs in the object's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualCluster {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ClusterObjectSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<VirtualClusterStatus>,
}

/// The resource's spec: the cluster as `vc create` takes it (flattened, so a values file is a
/// valid spec as it is), plus what only the object says: whether the cluster should run.
///
/// `paused` lives here rather than in `VirtualClusterSpec` because it is not a property of
/// the cluster `vc create` makes but a desired state of the object, which a GitOps tool
/// commits and `vc pause` patches; the values file and the record on the host never carry it.
/// It dereferences to the cluster spec, so readers use `object.spec.ttl` as before.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterObjectSpec {
    #[serde(flatten)]
    pub cluster: VirtualClusterSpec,
    /// The control plane is stopped (scaled to zero, data kept) while true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// By hand rather than derived: serde's `flatten` would let unknown keys through, and the
/// cluster spec refuses them (as the values file does).
impl<'de> Deserialize<'de> for ClusterObjectSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut fields = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        let paused = match fields.remove("paused") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(paused)) => paused,
            Some(other) => {
                return Err(D::Error::custom(format!("paused must be true or false, not {other}")));
            }
        };
        let cluster =
            VirtualClusterSpec::deserialize(Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(Self { cluster, paused })
    }
}

impl From<VirtualClusterSpec> for ClusterObjectSpec {
    fn from(cluster: VirtualClusterSpec) -> Self {
        Self { cluster, paused: false }
    }
}

impl std::ops::Deref for ClusterObjectSpec {
    type Target = VirtualClusterSpec;
    fn deref(&self) -> &VirtualClusterSpec {
        &self.cluster
    }
}

impl std::ops::DerefMut for ClusterObjectSpec {
    fn deref_mut(&mut self) -> &mut VirtualClusterSpec {
        &mut self.cluster
    }
}

fn api_version() -> String {
    format!("{GROUP}/{VERSION}")
}

fn kind() -> String {
    KIND.to_string()
}

impl VirtualCluster {
    /// A new object `name` in `namespace` with `spec`.
    pub fn new(namespace: &str, name: &str, spec: VirtualClusterSpec) -> Self {
        Self {
            api_version: api_version(),
            kind: kind(),
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            spec: spec.into(),
            status: None,
        }
    }
}

impl kube::Resource for VirtualCluster {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind((): &()) -> Cow<'_, str> {
        KIND.into()
    }
    fn group((): &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version((): &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn api_version((): &()) -> Cow<'_, str> {
        Cow::Owned(api_version())
    }
    fn plural((): &()) -> Cow<'_, str> {
        PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// What the operator observed, written to the status subresource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualClusterStatus {
    /// Pending, Starting, Running, Paused, Degraded or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Ready, Progressing and Degraded, each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The control plane's Kubernetes version (the control-plane image tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// The Secret in this namespace holding the admin kubeconfig (key `config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret: Option<String>,
    /// When the cluster expires and is deleted (RFC 3339), from `spec.ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The `metadata.generation` the host objects were last applied for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The `metadata.generation` whose `manifests` and `charts` were last applied inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_generation: Option<i64>,
    /// SHA-256 of `manifests` and `charts` as last applied inside: they are applied again only
    /// when they change, not on every new generation (`spec.paused`, `spec.ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_digest: Option<String>,
    /// Seconds from the object's creation until each phase was reached (`applying`, `ready`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timings: BTreeMap<String, f64>,
}

impl VirtualClusterStatus {
    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// One condition, shaped as `metav1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Progressing or Degraded.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// A CamelCase word for programs.
    pub reason: String,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The schema of `T` as the API server takes it: inline, no `$schema`, nullable options, and
/// kube's rewrite into a structural schema (the settings kube's derive uses).
fn structural_schema<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or(Value::Null)
}

/// The spec's schema with what the Rust types cannot say: the formats `spec.rs` validates
/// (versions, durations, quantities, label values) and CEL rules for what a pattern cannot.
pub fn spec_schema() -> Value {
    let mut schema = structural_schema::<VirtualClusterSpec>();
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
    }
    let mut set = |path: &[&str], extra: Value| {
        let mut at = &mut schema;
        for key in path {
            at = &mut at["properties"][*key];
        }
        if let (Some(at), Value::Object(extra)) = (at.as_object_mut(), extra) {
            at.extend(extra);
        }
    };
    set(&["kubernetesVersion"], json!({ "pattern": PATTERN_KUBERNETES_VERSION }));
    set(&["ttl"], json!({ "pattern": PATTERN_DURATION }));
    set(&["sleepAfter"], json!({ "pattern": PATTERN_DURATION }));
    set(
        &["quota", "hard"],
        json!({ "maxProperties": 64, "additionalProperties": { "type": "string", "pattern": PATTERN_QUANTITY } }),
    );
    set(
        &["labels"],
        json!({
            // Bounds the CEL rules' cost, which the API server estimates before accepting them.
            "maxProperties": 64,
            "additionalProperties": { "type": "string", "maxLength": 63, "pattern": PATTERN_LABEL_VALUE },
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(k, !(k in ['app', 'release', 'app.kubernetes.io/managed-by']) && !k.startsWith('vc.dev/'))",
                    "message": "labels app, release, app.kubernetes.io/managed-by and vc.dev/* are set by vc itself"
                },
                {
                    "rule": "self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",
                    "message": "label keys are [prefix/]name, a DNS subdomain prefix and a name of at most 63 letters, digits, '-', '_' or '.'"
                }
            ]
        }),
    );
    // engine.values is the engine's own configuration: kept as written, checked by the
    // reconciler against the engine's typed configuration.
    set(
        &["engine", "values"],
        json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true }),
    );
    if let Some(values) = schema["properties"]["engine"]["properties"]["values"].as_object_mut() {
        values.remove("nullable");
    }
    // A chart's values are the chart's own: kept as written, checked by its templates.
    if let Some(values) =
        schema["properties"]["charts"]["items"]["properties"]["values"].as_object_mut()
    {
        values.remove("nullable");
        values.insert("type".into(), json!("object"));
        values.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    if let Some(properties) = schema["properties"].as_object_mut() {
        properties.insert(
            "paused".into(),
            json!({
                "description": "The control plane is stopped (scaled to zero, data kept) while true; vc pause and vc resume set it.",
                "type": "boolean",
            }),
        );
    }
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "x-kubernetes-validations".into(),
            json!([{
                "rule": "!has(self.sleepAfter) || !has(self.persistence) || self.persistence",
                "message": "an idle limit (sleepAfter) pauses the cluster, and an ephemeral cluster (persistence: false) loses its data when paused; drop one of the two"
            }, {
                "rule": "!has(self.paused) || !self.paused || !has(self.persistence) || self.persistence",
                "message": "an ephemeral cluster (persistence: false) loses its data when paused: delete it instead of pausing it"
            }]),
        );
    }
    schema
}

/// The whole object's schema: the spec, the status, and a name short enough for the engine.
fn object_schema() -> Value {
    let mut status = structural_schema::<VirtualClusterStatus>();
    if let Some(object) = status.as_object_mut() {
        object.remove("title");
    }
    json!({
        "description": "A virtual Kubernetes cluster whose control plane runs in this namespace.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": { "type": "object" },
            "spec": spec_schema(),
            "status": status,
        },
        "x-kubernetes-validations": [{
            "rule": format!("self.metadata.name.size() <= {MAX_NAME_LEN} && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"),
            "message": format!("the name must be lowercase letters, digits and '-', starting with a letter, at most {MAX_NAME_LEN} characters (the engine's pod labels limit it)"),
        }],
    })
}

fn column(
    name: &str,
    type_: &str,
    path: &str,
    description: &str,
) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.to_string(),
        type_: type_.to_string(),
        json_path: path.to_string(),
        description: Some(description.to_string()),
        ..CustomResourceColumnDefinition::default()
    }
}

/// The CustomResourceDefinition `virtualclusters.vc.dev`.
pub fn crd() -> CustomResourceDefinition {
    // The schema is built from typed parts above; it always has the shape JSONSchemaProps takes.
    let schema: Option<JSONSchemaProps> = serde_json::from_value(object_schema()).ok();
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(CRD_NAME.to_string()),
            labels: Some(BTreeMap::from([(
                crate::engine::LABEL_MANAGED_BY.to_string(),
                crate::engine::MANAGED_BY.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.to_string(),
            names: CustomResourceDefinitionNames {
                kind: KIND.to_string(),
                list_kind: Some(format!("{KIND}List")),
                plural: PLURAL.to_string(),
                singular: Some("virtualcluster".to_string()),
                short_names: Some(vec![SHORT_NAME.to_string()]),
                categories: Some(vec!["all".to_string()]),
            },
            scope: "Namespaced".to_string(),
            versions: vec![CustomResourceDefinitionVersion {
                name: VERSION.to_string(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation { open_api_v3_schema: schema }),
                subresources: Some(CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(json!({}))),
                    scale: None,
                }),
                additional_printer_columns: Some(vec![
                    column(
                        "Status",
                        "string",
                        ".status.phase",
                        "Pending, Starting, Running, Paused, Degraded or Deleting",
                    ),
                    column(
                        "Kubernetes",
                        "string",
                        ".status.kubernetesVersion",
                        "Kubernetes version of the control plane",
                    ),
                    column("Age", "date", ".metadata.creationTimestamp", "Time since creation"),
                    column(
                        "Expires",
                        "date",
                        ".status.expiresAt",
                        "When the cluster is deleted (spec.ttl)",
                    ),
                ]),
                ..CustomResourceDefinitionVersion::default()
            }],
            ..CustomResourceDefinitionSpec::default()
        },
        status: None,
    }
}

#[cfg(test)]
#[path = "resource_tests.rs"]
mod tests;
