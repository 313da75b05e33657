//! What `vc operator install` applies and `deploy/` holds: the CRD, the operator's
//! ServiceAccount, its least rights (one ClusterRole, rule by rule in docs/operator.md, and a
//! Role for its Lease) and a Deployment running `vc operator run`. Pure: no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::engine::rbac::{self, Grantee};
use crate::engine::{LABEL_MANAGED_BY, MANAGED_BY};

/// Name of the operator's ServiceAccount, ClusterRole, bindings and Deployment.
pub const NAME: &str = "vc-operator";
/// The default namespace of the operator.
pub const DEFAULT_NAMESPACE: &str = "vc-system";
/// Port of `/healthz`, `/readyz` and `/metrics`.
pub const METRICS_PORT: u16 = 8080;

/// The default image: this release of vc (see Dockerfile).
pub fn default_image() -> String {
    format!("ghcr.io/vc-dev/vc:{}", env!("CARGO_PKG_VERSION"))
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| Some(items.iter().map(|s| (*s).to_string()).collect());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| (*s).to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// The operator's cluster-wide rules: its own resource, and what `vc` itself needs in a
/// cluster's namespace (its objects, the engine's Role's every rule, which RBAC lets it
/// grant only if it holds them, and reading the host API server's endpoints), since a
/// VirtualCluster may live in any namespace.
pub fn cluster_rules() -> Vec<PolicyRule> {
    let mut rules = vec![
        // Watch every VirtualCluster, add and remove the finalizer, delete expired ones.
        rule(
            &[super::resource::GROUP],
            &[super::resource::PLURAL],
            &["get", "list", "watch", "patch", "update", "delete"],
        ),
        // Report what it observed.
        rule(&[super::resource::GROUP], &["virtualclusters/status"], &["get", "patch", "update"]),
        // The warm pools' members each get a namespace `vc-<member>` of their own, and the
        // pool definitions their `vc-pools` (docs/pool.md); removed members take theirs along.
        rule(&[""], &["namespaces"], &["get", "list", "create", "patch", "delete"]),
    ];
    let grant = rbac::grant("default", &Grantee::User(String::new()));
    rules.extend(grant.role.rules.unwrap_or_default());
    // The Endpoints role is limited to `kubernetes` in `default`; the same rule here.
    for mut extra in grant.endpoints_role.rules.unwrap_or_default() {
        extra.resource_names = None;
        rules.push(extra);
    }
    rules
}

/// The rules of the Role in the operator's namespace: its Lease only.
pub fn lease_rules() -> Vec<PolicyRule> {
    vec![rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"])]
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        ("app.kubernetes.io/name".to_string(), NAME.to_string()),
    ])
}

fn subject(namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_string(),
        name: NAME.to_string(),
        namespace: Some(namespace.to_string()),
        api_group: None,
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(i32::from(METRICS_PORT)),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    }
}

/// The Deployment: two replicas (one leads), non-root, read-only root, no capabilities.
fn deployment(namespace: &str, image: &str) -> Deployment {
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_string(), NAME.to_string())]);
    let quantity = |s: &str| Quantity(s.to_string());
    let container = Container {
        name: "operator".to_string(),
        image: Some(image.to_string()),
        args: Some(
            ["operator", "run", "--metrics-address", &format!("0.0.0.0:{METRICS_PORT}")]
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
        ),
        env: Some(vec![
            field_env("VC_OPERATOR_NAMESPACE", "metadata.namespace"),
            field_env("VC_OPERATOR_IDENTITY", "metadata.name"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_string()),
            container_port: i32::from(METRICS_PORT),
            ..Default::default()
        }]),
        liveness_probe: Some(probe("/healthz")),
        readiness_probe: Some(probe("/readyz")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), quantity("50m")),
                ("memory".to_string(), quantity("64Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_string(), quantity("256Mi"))])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), add: None }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Deployment {
        metadata: meta(NAME, Some(namespace)),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector { match_labels: Some(selector), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels()), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.to_string()),
                    // Time to release the Lease on SIGTERM.
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Every object of an install in `namespace` running `image`, in apply order.
pub fn objects(namespace: &str, image: &str) -> Vec<Value> {
    let to_json = |value: Result<Value, serde_json::Error>| value.unwrap_or(Value::Null);
    let role_ref = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".to_string(),
        kind: kind.to_string(),
        name: NAME.to_string(),
    };
    vec![
        to_json(serde_json::to_value(super::resource::crd())),
        to_json(serde_json::to_value(Namespace {
            metadata: meta(namespace, None),
            ..Default::default()
        })),
        to_json(serde_json::to_value(ServiceAccount {
            metadata: meta(NAME, Some(namespace)),
            ..Default::default()
        })),
        to_json(serde_json::to_value(ClusterRole {
            metadata: meta(NAME, None),
            rules: Some(cluster_rules()),
            aggregation_rule: None,
        })),
        to_json(serde_json::to_value(ClusterRoleBinding {
            metadata: meta(NAME, None),
            role_ref: role_ref("ClusterRole"),
            subjects: Some(vec![subject(namespace)]),
        })),
        to_json(serde_json::to_value(Role {
            metadata: meta(NAME, Some(namespace)),
            rules: Some(lease_rules()),
        })),
        to_json(serde_json::to_value(RoleBinding {
            metadata: meta(NAME, Some(namespace)),
            role_ref: role_ref("Role"),
            subjects: Some(vec![subject(namespace)]),
        })),
        to_json(serde_json::to_value(deployment(namespace, image))),
    ]
}
