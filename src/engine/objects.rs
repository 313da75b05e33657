//! The engine's host objects (namespace, service accounts, role, config Secret, services and the
//! control-plane StatefulSet), rendered as typed structs from the merged engine configuration
//! the way the upstream chart renders them. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    HostAlias, LocalObjectReference, Namespace, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodDNSConfig, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Secret, SecretVolumeSource, SecurityContext, Service, ServiceAccount,
    ServicePort, ServiceSpec, Toleration, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::model::{self, Config};
use super::isolation::API_PORT;
use super::{APP_VCLUSTER, EngineError, LABEL_APP, LABEL_RELEASE, common_labels};

/// Where the syncer reads its configuration.
pub const CONFIG_MOUNT_PATH: &str = "/var/lib/vcluster";
/// Key of the configuration in the Secret `vc-config-<name>`.
pub const CONFIG_KEY: &str = "config.yaml";
/// Port of the kubelet API, proxied by the syncer.
pub const KUBELET_PORT: i32 = 10250;
/// Pod template annotation carrying a digest of the configuration, so a changed configuration
/// rolls the control-plane pod (the chart's annotation name).
pub const ANNOTATION_CONFIG_HASH: &str = "vClusterConfigHash";

/// Name of the engine's configuration Secret.
pub fn config_secret_name(name: &str) -> String {
    format!("vc-config-{name}")
}

/// Name of the control plane's data PVC, made from the claim template `data` for pod 0; it
/// outlives the StatefulSet (retention policy `Retain`).
pub fn data_claim_name(name: &str) -> String {
    format!("data-{name}-0")
}

/// Name of the headless Service of the control plane.
pub fn headless_service_name(name: &str) -> String {
    format!("{name}-headless")
}

/// The selector of the control-plane pods, exactly `app: vcluster, release: <name>`.
pub fn control_plane_selector(name: &str) -> LabelSelector {
    LabelSelector { match_labels: Some(selector_labels(name)), ..Default::default() }
}

fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_APP.to_string(), APP_VCLUSTER.to_string()),
        (LABEL_RELEASE.to_string(), name.to_string()),
    ])
}

/// `vc`'s labels plus the engine's `app` and `release`, for every engine object.
pub fn engine_labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = common_labels(name);
    labels.extend(selector_labels(name));
    labels
}

/// Object metadata; empty annotations are left out.
pub fn object_meta(
    name: &str,
    namespace: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        labels: (!labels.is_empty()).then_some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..Default::default()
    }
}

/// Reads a free-form configuration subtree as a Kubernetes type.
pub fn from_config_value<T: DeserializeOwned>(value: &Value, key: &str) -> Result<T, EngineError> {
    serde_json::from_value(value.clone()).map_err(|e| EngineError::Values(format!("{key}: {e}")))
}

pub(crate) fn from_config<T: DeserializeOwned, S: serde::Serialize>(
    value: &S,
    key: &str,
) -> Result<T, EngineError> {
    let value =
        serde_json::to_value(value).map_err(|e| EngineError::Values(format!("{key}: {e}")))?;
    from_config_value(&value, key)
}

/// A non-empty free-form map or list as a Kubernetes type; `None` when absent or empty.
pub(crate) fn optional<T: DeserializeOwned, S: serde::Serialize>(
    value: Option<&S>,
    key: &str,
) -> Result<Option<T>, EngineError> {
    let Some(value) = value else { return Ok(None) };
    let json =
        serde_json::to_value(value).map_err(|e| EngineError::Values(format!("{key}: {e}")))?;
    let empty = match &json {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    if empty { Ok(None) } else { from_config_value(&json, key).map(Some) }
}

pub(crate) fn non_empty(text: Option<&String>) -> Option<String> {
    text.filter(|t| !t.is_empty()).cloned()
}

/// The chart's default volume claim: its access modes (ReadWriteOnce unless set), class and
/// size.
pub(crate) fn claim_spec(
    access_modes: Option<&Vec<String>>,
    storage_class: Option<&String>,
    size: String,
) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(
            access_modes
                .filter(|m| !m.is_empty())
                .cloned()
                .unwrap_or_else(|| vec!["ReadWriteOnce".to_string()]),
        ),
        storage_class_name: non_empty(storage_class),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Shortcuts into the parts of the configuration the host objects depend on.
pub struct View<'a> {
    pub config: &'a Config,
}

impl<'a> View<'a> {
    pub fn control_plane(&self) -> Option<&'a model::ControlPlane> {
        self.config.control_plane.as_ref()
    }

    pub fn stateful_set(&self) -> Option<&'a model::ControlPlaneStatefulSet> {
        self.control_plane().and_then(|c| c.stateful_set.as_ref())
    }

    pub fn advanced(&self) -> Option<&'a model::ControlPlaneAdvanced> {
        self.control_plane().and_then(|c| c.advanced.as_ref())
    }

    pub fn global_annotations(&self) -> BTreeMap<String, String> {
        self.advanced()
            .and_then(|a| a.global_metadata.as_ref())
            .and_then(|g| g.annotations.clone())
            .unwrap_or_default()
    }

    pub fn k8s(&self) -> Option<&'a model::DistroK8s> {
        self.control_plane().and_then(|c| c.distro.as_ref()).and_then(|d| d.k8s.as_ref())
    }

    pub fn sync_to_host(&self) -> Option<&'a model::SyncToHost> {
        self.config.sync.as_ref().and_then(|s| s.to_host.as_ref())
    }

    pub fn replicas(&self) -> i64 {
        self.stateful_set()
            .and_then(|s| s.high_availability.as_ref())
            .and_then(|h| h.replicas)
            .unwrap_or(1)
    }
}

/// The namespace `vc-<name>`, when `vc` owns it.
pub fn render_namespace(name: &str, namespace: &str) -> Namespace {
    Namespace {
        metadata: object_meta(namespace, "", common_labels(name), BTreeMap::new()),
        ..Default::default()
    }
}

/// The engine's service account name and the workload service account name.
pub fn service_account_names(name: &str, view: &View<'_>) -> (String, String) {
    let advanced = view.advanced();
    let control =
        non_empty(advanced.and_then(|a| a.service_account.as_ref()).and_then(|s| s.name.as_ref()))
            .unwrap_or_else(|| format!("vc-{name}"));
    let workload = non_empty(
        advanced.and_then(|a| a.workload_service_account.as_ref()).and_then(|s| s.name.as_ref()),
    )
    .unwrap_or_else(|| format!("vc-workload-{name}"));
    (control, workload)
}

fn pull_secrets(secrets: Option<&Vec<model::ImagePullSecretName>>) -> Vec<LocalObjectReference> {
    secrets
        .into_iter()
        .flatten()
        .filter_map(|s| s.name.clone())
        .map(|name| LocalObjectReference { name })
        .collect()
}

/// The service accounts `vc-<name>` (the syncer's) and `vc-workload-<name>` (its pods').
pub fn render_service_accounts(
    name: &str,
    namespace: &str,
    view: &View<'_>,
) -> Vec<ServiceAccount> {
    let (control_name, workload_name) = service_account_names(name, view);
    let advanced = view.advanced();
    let global = view.global_annotations();
    let mut out = Vec::new();
    let control = advanced.and_then(|a| a.service_account.as_ref());
    if control.and_then(|c| c.enabled).unwrap_or(true) {
        let mut labels = control.and_then(|c| c.labels.clone()).unwrap_or_default();
        labels.extend(engine_labels(name));
        let mut annotations = global.clone();
        annotations.extend(control.and_then(|c| c.annotations.clone()).unwrap_or_default());
        let secrets = pull_secrets(control.and_then(|c| c.image_pull_secrets.as_ref()));
        out.push(ServiceAccount {
            metadata: object_meta(&control_name, namespace, labels, annotations),
            image_pull_secrets: (!secrets.is_empty()).then_some(secrets),
            ..Default::default()
        });
    }
    let workload = advanced.and_then(|a| a.workload_service_account.as_ref());
    if workload.and_then(|w| w.enabled).unwrap_or(true) {
        let mut labels = workload.and_then(|w| w.labels.clone()).unwrap_or_default();
        labels.extend(engine_labels(name));
        let mut annotations = global;
        annotations.extend(workload.and_then(|w| w.annotations.clone()).unwrap_or_default());
        let mut secrets = pull_secrets(control.and_then(|c| c.image_pull_secrets.as_ref()));
        secrets.extend(pull_secrets(workload.and_then(|w| w.image_pull_secrets.as_ref())));
        out.push(ServiceAccount {
            metadata: object_meta(&workload_name, namespace, labels, annotations),
            image_pull_secrets: (!secrets.is_empty()).then_some(secrets),
            ..Default::default()
        });
    }
    out
}

/// A Role rule.
pub(crate) fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

pub(crate) const ALL_VERBS: [&str; 7] =
    ["create", "delete", "patch", "update", "get", "list", "watch"];

fn enabled(switch: Option<&model::EnableSwitchWithPatches>) -> bool {
    switch.and_then(|s| s.enabled).unwrap_or(false)
}

/// The Role's rules: what the syncer of this configuration writes and reads on the host, and
/// no more (a namespace admin must be granted whatever `admin` lacks, so every rule counts).
/// Verbs follow the engine's code at the pinned release rather than the chart where the chart
/// grants more: the syncer updates (never patches) pod status, ephemeral containers,
/// endpoints and endpoint slices, and resizes pods in place only on hosts from 1.35 on.
/// Creating and deleting Services covers the throw-away Services it uses to find the host's
/// service CIDR.
pub fn role_rules(
    view: &View<'_>,
    host_minor: Option<u32>,
) -> Result<Vec<PolicyRule>, EngineError> {
    let rbac = view.config.rbac.as_ref().and_then(|r| r.role.as_ref());
    if let Some(overwrite) = rbac.and_then(|r| r.overwrite_rules.as_ref()).filter(|r| !r.is_empty())
    {
        return overwrite.iter().map(|r| from_config(r, "rbac.role.overwriteRules")).collect();
    }
    let mut rules = vec![
        rule(
            &[""],
            &[
                "configmaps",
                "secrets",
                "services",
                "pods",
                "pods/attach",
                "pods/portforward",
                "pods/exec",
                "persistentvolumeclaims",
            ],
            &ALL_VERBS,
        ),
        // Virtual pod conditions (readiness gates) and `kubectl debug` inside.
        rule(&[""], &["pods/status", "pods/ephemeralcontainers"], &["update"]),
        rule(
            &["apps"],
            &["statefulsets", "replicasets", "deployments"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(&[""], &["endpoints", "pods/log"], &["get", "list", "watch"]),
        rule(&[""], &["events"], &["create", "get", "list", "watch"]),
        rule(&["events.k8s.io"], &["events"], &["create", "get", "list", "watch"]),
    ];
    if host_minor.is_some_and(|minor| minor >= 35) {
        rules.push(rule(&[""], &["pods/resize"], &["patch"]));
    }
    let to_host = view.sync_to_host();
    if enabled(to_host.and_then(|t| t.endpoints.as_ref())) {
        rules.push(rule(&[""], &["endpoints"], &["create", "delete", "update"]));
    }
    if enabled(to_host.and_then(|t| t.endpoint_slices.as_ref())) {
        rules.push(rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["create", "delete", "update", "get", "list", "watch"],
        ));
    }
    let metrics = view.config.integrations.as_ref().and_then(|i| i.metrics_server.as_ref());
    if metrics.is_some_and(|m| m.enabled == Some(true) && m.pods == Some(true)) {
        rules.push(rule(&["metrics.k8s.io"], &["pods"], &["get", "list"]));
    }
    let optional_syncers: [(Option<&model::EnableSwitchWithPatches>, &str, &str); 4] = [
        (to_host.and_then(|t| t.ingresses.as_ref()), "networking.k8s.io", "ingresses"),
        (to_host.and_then(|t| t.network_policies.as_ref()), "networking.k8s.io", "networkpolicies"),
        (to_host.and_then(|t| t.service_accounts.as_ref()), "", "serviceaccounts"),
        (to_host.and_then(|t| t.pod_disruption_budgets.as_ref()), "policy", "poddisruptionbudgets"),
    ];
    for (switch, group, resource) in optional_syncers {
        if enabled(switch) {
            rules.push(rule(&[group], &[resource], &ALL_VERBS));
        }
    }
    rules.extend(integration_rules(view));
    for extra in rbac.and_then(|r| r.extra_rules.as_ref()).into_iter().flatten() {
        rules.push(from_config(extra, "rbac.role.extraRules")?);
    }
    Ok(rules)
}

/// The rules the chart's Role grants for the opt-in integrations that need no cluster-wide
/// rights (the others are refused by the configuration check): cert-manager's certificates
/// and issuers, and Gateway API reference grants switched on explicitly.
fn integration_rules(view: &View<'_>) -> Vec<PolicyRule> {
    let mut rules = Vec::new();
    let cert_manager = view.config.integrations.as_ref().and_then(|i| i.cert_manager.as_ref());
    if let Some(cert_manager) = cert_manager.filter(|c| c.enabled == Some(true)) {
        let to_host = cert_manager.sync.as_ref().and_then(|s| s.to_host.as_ref());
        let on =
            |switch: Option<&model::EnableSwitch>| switch.and_then(|s| s.enabled) == Some(true);
        if on(to_host.and_then(|t| t.certificates.as_ref())) {
            rules.push(rule(&["cert-manager.io"], &["certificates"], &ALL_VERBS));
        }
        if on(to_host.and_then(|t| t.issuers.as_ref())) {
            rules.push(rule(&["cert-manager.io"], &["issuers"], &ALL_VERBS));
        }
    }
    let grants = view
        .sync_to_host()
        .and_then(|t| t.gateway_api.as_ref())
        .and_then(|g| g.reference_grants.as_ref())
        .and_then(|r| r.enabled.as_ref());
    if matches!(grants, Some(model::StrBool::Bool(true)))
        || matches!(grants, Some(model::StrBool::Word(w)) if w == "true")
    {
        rules.push(rule(&["gateway.networking.k8s.io"], &["referencegrants"], &ALL_VERBS));
    }
    rules
}

/// The Role `vc-<name>` and its RoleBinding to the syncer's service account.
pub fn render_rbac(
    name: &str,
    namespace: &str,
    view: &View<'_>,
    host_minor: Option<u32>,
) -> Result<Option<(Role, RoleBinding)>, EngineError> {
    let role_enabled = view
        .config
        .rbac
        .as_ref()
        .and_then(|r| r.role.as_ref())
        .and_then(|r| r.enabled)
        .unwrap_or(true);
    if !role_enabled {
        return Ok(None);
    }
    let role_name = format!("vc-{name}");
    let annotations = view.global_annotations();
    let role = Role {
        metadata: object_meta(&role_name, namespace, engine_labels(name), annotations.clone()),
        rules: Some(role_rules(view, host_minor)?),
    };
    let (service_account, _) = service_account_names(name, view);
    let binding = RoleBinding {
        metadata: object_meta(&role_name, namespace, engine_labels(name), annotations),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: role_name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: service_account,
            namespace: Some(namespace.to_string()),
            ..Default::default()
        }]),
    };
    Ok(Some((role, binding)))
}

/// The Secret `vc-config-<name>` holding the complete configuration under `config.yaml`.
pub fn render_config_secret(
    name: &str,
    namespace: &str,
    view: &View<'_>,
    config_yaml: &str,
) -> Secret {
    Secret {
        metadata: object_meta(
            &config_secret_name(name),
            namespace,
            engine_labels(name),
            view.global_annotations(),
        ),
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_string(),
            ByteString(config_yaml.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

pub(crate) fn service_port(
    name: &str,
    port: i32,
    target: i32,
    node_port: Option<i64>,
) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::Int(target)),
        node_port: node_port.filter(|p| *p != 0).and_then(|p| i32::try_from(p).ok()),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// The Service `<name>`: the virtual API on 443 and, for kubelet proxying by hostname, 10250.
pub fn render_service(
    name: &str,
    namespace: &str,
    view: &View<'_>,
) -> Result<Option<Service>, EngineError> {
    let settings = view.control_plane().and_then(|c| c.service.as_ref());
    if settings.and_then(|s| s.enabled) == Some(false) {
        return Ok(None);
    }
    let mut spec: ServiceSpec = match settings.and_then(|s| s.spec.as_ref()) {
        Some(spec) => from_config(spec, "controlPlane.service.spec")?,
        None => ServiceSpec::default(),
    };
    if spec.ports.as_ref().is_none_or(Vec::is_empty) {
        let mut ports =
            vec![service_port("https", 443, API_PORT, settings.and_then(|s| s.https_node_port))];
        let by_hostname = view
            .config
            .networking
            .as_ref()
            .and_then(|n| n.advanced.as_ref())
            .and_then(|a| a.proxy_kubelets.as_ref())
            .and_then(|p| p.by_hostname)
            .unwrap_or(false);
        if by_hostname && spec.type_.as_deref() != Some("LoadBalancer") {
            ports.push(service_port(
                "kubelet",
                KUBELET_PORT,
                API_PORT,
                settings.and_then(|s| s.kubelet_node_port),
            ));
        }
        spec.ports = Some(ports);
    }
    if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
        spec.selector = Some(selector_labels(name));
    }
    let mut labels = settings.and_then(|s| s.labels.clone()).unwrap_or_default();
    labels.extend(engine_labels(name));
    labels.insert("vcluster.loft.sh/service".to_string(), "true".to_string());
    let mut annotations = view.global_annotations();
    annotations.extend(settings.and_then(|s| s.annotations.clone()).unwrap_or_default());
    Ok(Some(Service {
        metadata: object_meta(name, namespace, labels, annotations),
        spec: Some(spec),
        ..Default::default()
    }))
}

/// The Ingress `<name>` in front of the cluster's Service, when `controlPlane.ingress.enabled`
/// is on, as the chart's `ingress.yaml` renders it: the configuration's annotations (by
/// default ingress-nginx's TLS passthrough, backend protocol HTTPS and SSL redirect) over the
/// global ones, the configured `spec`, and unless that spec brings its own rules, one rule for
/// `host` sending `/` (of `pathType`) to the Service's `https` port.
pub fn render_ingress(
    name: &str,
    namespace: &str,
    view: &View<'_>,
) -> Result<Option<Ingress>, EngineError> {
    let Some(settings) = view.control_plane().and_then(|c| c.ingress.as_ref()) else {
        return Ok(None);
    };
    if settings.enabled != Some(true) {
        return Ok(None);
    }
    let mut spec: IngressSpec = match settings.spec.as_ref() {
        Some(spec) => from_config(spec, "controlPlane.ingress.spec")?,
        None => IngressSpec::default(),
    };
    if spec.tls.as_ref().is_some_and(Vec::is_empty) {
        spec.tls = None;
    }
    if spec.rules.as_ref().is_none_or(Vec::is_empty) {
        let path_type = non_empty(settings.path_type.as_ref())
            .unwrap_or_else(|| "ImplementationSpecific".to_string());
        spec.rules = Some(vec![IngressRule {
            host: non_empty(settings.host.as_ref()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some("/".to_string()),
                    path_type,
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: name.to_string(),
                            port: Some(ServiceBackendPort {
                                name: Some("https".to_string()),
                                number: None,
                            }),
                        }),
                        resource: None,
                    },
                }],
            }),
        }]);
    }
    let mut labels = settings.labels.clone().unwrap_or_default();
    labels.extend(engine_labels(name));
    let mut annotations = view.global_annotations();
    annotations.extend(settings.annotations.clone().unwrap_or_default());
    Ok(Some(Ingress {
        metadata: object_meta(name, namespace, labels, annotations),
        spec: Some(spec),
        ..Default::default()
    }))
}

/// The headless Service `<name>-headless` the StatefulSet is bound to.
pub fn render_headless_service(name: &str, namespace: &str, view: &View<'_>) -> Service {
    let settings = view.advanced().and_then(|a| a.headless_service.as_ref());
    let mut labels = settings.and_then(|s| s.labels.clone()).unwrap_or_default();
    labels.extend(engine_labels(name));
    let mut annotations = view.global_annotations();
    annotations.extend(settings.and_then(|s| s.annotations.clone()).unwrap_or_default());
    Service {
        metadata: object_meta(&headless_service_name(name), namespace, labels, annotations),
        spec: Some(ServiceSpec {
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![service_port("https", 443, API_PORT, None)]),
            cluster_ip: Some("None".to_string()),
            selector: Some(selector_labels(name)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn quantity_map(
    map: Option<&BTreeMap<String, Value>>,
    key: &str,
) -> Result<Option<BTreeMap<String, Quantity>>, EngineError> {
    let Some(map) = map.filter(|m| !m.is_empty()) else { return Ok(None) };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(EngineError::Values(format!("{key}.{k}: {other} is not a quantity")));
            }
        };
        out.insert(k.clone(), Quantity(text));
    }
    Ok(Some(out))
}

pub(crate) fn resources(
    limits: Option<&BTreeMap<String, Value>>,
    requests: Option<&BTreeMap<String, Value>>,
    key: &str,
) -> Result<Option<ResourceRequirements>, EngineError> {
    let limits = quantity_map(limits, &format!("{key}.limits"))?;
    let requests = quantity_map(requests, &format!("{key}.requests"))?;
    if limits.is_none() && requests.is_none() {
        return Ok(None);
    }
    Ok(Some(ResourceRequirements { limits, requests, ..Default::default() }))
}

fn free_form_resources(
    map: Option<&BTreeMap<String, Value>>,
    key: &str,
) -> Result<Option<ResourceRequirements>, EngineError> {
    let section = |name: &str| -> Option<BTreeMap<String, Value>> {
        map.and_then(|m| m.get(name))
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    resources(section("limits").as_ref(), section("requests").as_ref(), key)
}

pub(crate) fn field_env(name: &str, path: &str) -> EnvVar {
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

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_string(), value: Some(value.to_string()), ..Default::default() }
}

fn https_probe(
    path: &str,
    period: Option<i64>,
    timeout: Option<i64>,
    failures: Option<i64>,
    initial_delay: Option<i64>,
) -> Probe {
    let int = |v: Option<i64>| v.and_then(|v| i32::try_from(v).ok());
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(API_PORT),
            scheme: Some("HTTPS".to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: int(initial_delay),
        period_seconds: int(period),
        timeout_seconds: int(timeout),
        failure_threshold: int(failures),
        ..Default::default()
    }
}

pub(crate) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.to_string(), mount_path: path.to_string(), ..Default::default() }
}

pub(crate) fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

pub(crate) fn list<T: DeserializeOwned, S: serde::Serialize>(
    items: Option<&Vec<S>>,
    key: &str,
) -> Result<Vec<T>, EngineError> {
    items.into_iter().flatten().map(|item| from_config(item, key)).collect()
}

pub(crate) fn image_ref(image: Option<&model::Image>, default_registry: Option<&String>) -> String {
    let registry =
        non_empty(default_registry).or_else(|| non_empty(image.and_then(|i| i.registry.as_ref())));
    let repository = image.and_then(|i| i.repository.clone()).unwrap_or_default();
    let tag = image.and_then(|i| i.tag.clone()).unwrap_or_default();
    let mut reference = match registry {
        Some(registry) => format!("{registry}/{repository}"),
        None => repository,
    };
    if tag.starts_with('@') {
        reference.push_str(&tag);
    } else if !tag.is_empty() {
        reference.push(':');
        reference.push_str(&tag);
    }
    reference
}

/// Where the control-plane image keeps the Kubernetes binaries.
const IMAGE_BINARIES: &str = "/kubernetes";

/// The init container's command and arguments: the chart copies the image's whole binaries
/// directory; `vc` leaves out what this configuration never runs: the scheduler (a quarter of
/// the image, started only with the virtual scheduler, which `vc` refuses since it needs a
/// ClusterRole) and Helm (run only to deploy `experimental.deploy.vcluster.helm` charts), and
/// a disabled API server or controller manager. Everything else is copied, so a datastore or
/// helper the image ships beside the binaries keeps working. A configuration that replaces a
/// component's command may run anything, so it gets the chart's copy.
pub fn binaries_copy_command(view: &View<'_>) -> (Vec<String>, Vec<String>) {
    let k8s = view.k8s();
    let components = [
        (k8s.and_then(|k| k.api_server.as_ref()), "kube-apiserver"),
        (k8s.and_then(|k| k.controller_manager.as_ref()), "kube-controller-manager"),
        (k8s.and_then(|k| k.scheduler.as_ref()), "kube-scheduler"),
    ];
    let custom_command = components
        .iter()
        .any(|(c, _)| c.and_then(|c| c.command.as_ref()).is_some_and(|c| !c.is_empty()));
    if custom_command {
        return (
            vec!["cp".to_string()],
            vec!["-r".to_string(), format!("{IMAGE_BINARIES}/."), "/binaries/".to_string()],
        );
    }
    let helm = view
        .config
        .experimental
        .as_ref()
        .and_then(|e| e.deploy.as_ref())
        .and_then(|d| d.vcluster.as_ref())
        .and_then(|v| v.helm.as_ref())
        .is_some_and(|h| !h.is_empty());
    let mut skipped: Vec<&str> = components
        .iter()
        .filter(|(c, name)| {
            let default = *name != "kube-scheduler";
            !c.and_then(|c| c.enabled).unwrap_or(default)
        })
        .map(|(_, name)| *name)
        .collect();
    if !helm {
        skipped.push("helm");
    }
    if skipped.is_empty() {
        return (
            vec!["cp".to_string()],
            vec!["-r".to_string(), format!("{IMAGE_BINARIES}/."), "/binaries/".to_string()],
        );
    }
    let script = format!(
        "set -e; for f in {IMAGE_BINARIES}/*; do case \"${{f##*/}}\" in {}) ;; *) cp -r \"$f\" /binaries/ ;; esac; done",
        skipped.join("|")
    );
    (vec!["sh".to_string()], vec!["-c".to_string(), script])
}

/// The record and identity of the StatefulSet, computed by the caller.
pub struct Record {
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub config_hash: String,
}

/// The control-plane StatefulSet `<name>`: an init container copying the Kubernetes binaries
/// into `/binaries`, the syncer container, and the `data` volume claim (an emptyDir `data`
/// instead when `persistent` is false).
pub fn render_statefulset(
    name: &str,
    namespace: &str,
    view: &View<'_>,
    record: Record,
    persistent: bool,
) -> Result<StatefulSet, EngineError> {
    let sts = view.stateful_set();
    let k8s = view.k8s();
    let default_registry = view.advanced().and_then(|a| a.default_image_registry.as_ref());
    let key = "controlPlane.statefulSet";

    let mut labels = sts.and_then(|s| s.labels.clone()).unwrap_or_default();
    labels.extend(record.labels);
    labels.extend(engine_labels(name));
    let mut annotations = sts.and_then(|s| s.annotations.clone()).unwrap_or_default();
    annotations.extend(view.global_annotations());
    annotations.extend(record.annotations);

    let pods = sts.and_then(|s| s.pods.as_ref());
    let mut pod_labels = pods.and_then(|p| p.labels.clone()).unwrap_or_default();
    pod_labels.extend(engine_labels(name));
    let mut pod_annotations =
        BTreeMap::from([(ANNOTATION_CONFIG_HASH.to_string(), record.config_hash)]);
    pod_annotations.extend(pods.and_then(|p| p.annotations.clone()).unwrap_or_default());

    let persistence = sts.and_then(|s| s.persistence.as_ref());
    let claim = persistence.and_then(|p| p.volume_claim.as_ref());

    let (service_account, _) = service_account_names(name, view);
    let mut volumes: Vec<Volume> = list(
        persistence.and_then(|p| p.binaries_volume.as_ref()),
        "controlPlane.statefulSet.persistence.binariesVolume",
    )?;
    if volumes.is_empty() {
        volumes.push(empty_dir("binaries"));
    }
    let mut all_volumes = vec![empty_dir("helm-cache")];
    all_volumes.append(&mut volumes);
    all_volumes.push(empty_dir("tmp"));
    all_volumes.push(empty_dir("certs"));
    if !persistent {
        all_volumes.push(empty_dir("data"));
    }
    all_volumes.push(Volume {
        name: "vcluster-config".to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(config_secret_name(name)),
            ..Default::default()
        }),
        ..Default::default()
    });
    all_volumes.extend(list::<Volume, _>(
        persistence.and_then(|p| p.add_volumes.as_ref()),
        "controlPlane.statefulSet.persistence.addVolumes",
    )?);

    let mut claim_templates: Vec<PersistentVolumeClaim> = list(
        persistence.and_then(|p| p.volume_claim_templates.as_ref()),
        "controlPlane.statefulSet.persistence.volumeClaimTemplates",
    )?;
    if !persistent && !claim_templates.is_empty() {
        return Err(EngineError::Values(
            "controlPlane.statefulSet.persistence.volumeClaimTemplates cannot be combined with \
             persistence: false (--ephemeral): leave out one of them"
                .to_string(),
        ));
    }
    if persistent && claim_templates.is_empty() {
        let size = claim.and_then(|c| c.size.clone()).unwrap_or_else(|| "5Gi".to_string());
        claim_templates.push(PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some("data".to_string()), ..Default::default() },
            spec: Some(claim_spec(
                claim.and_then(|c| c.access_modes.as_ref()),
                claim.and_then(|c| c.storage_class.as_ref()),
                size,
            )),
            ..Default::default()
        });
    }

    let (copy_command, copy_args) = binaries_copy_command(view);
    let init_container = Container {
        name: "kubernetes".to_string(),
        image: Some(image_ref(k8s.and_then(|k| k.image.as_ref()), default_registry)),
        command: Some(copy_command),
        args: Some(copy_args),
        image_pull_policy: non_empty(k8s.and_then(|k| k.image_pull_policy.as_ref())),
        volume_mounts: Some(vec![mount("binaries", "/binaries")]),
        security_context: optional(
            k8s.and_then(|k| k.security_context.as_ref()),
            "controlPlane.distro.k8s.securityContext",
        )?,
        resources: free_form_resources(
            k8s.and_then(|k| k.resources.as_ref()),
            "controlPlane.distro.k8s.resources",
        )?,
        ..Default::default()
    };
    let mut init_containers = vec![init_container];
    init_containers.extend(list::<Container, _>(
        sts.and_then(|s| s.init_containers.as_ref()),
        "controlPlane.statefulSet.initContainers",
    )?);

    let mut env = vec![env_var("VCLUSTER_NAME", name)];
    if let Some(logging) = &view.config.logging {
        env.push(env_var(
            "LOFT_LOG_ENCODING",
            logging.encoding.as_deref().filter(|e| !e.is_empty()).unwrap_or("console"),
        ));
    }
    env.push(field_env("POD_NAME", "metadata.name"));
    env.push(field_env("POD_IP", "status.podIP"));
    env.push(field_env("NODE_NAME", "spec.nodeName"));
    env.push(field_env("NODE_IP", "status.hostIP"));
    for (items, key) in [
        (sts.and_then(|s| s.env.as_ref()), "controlPlane.statefulSet.env"),
        (k8s.and_then(|k| k.env.as_ref()), "controlPlane.distro.k8s.env"),
    ] {
        for item in items.into_iter().flatten() {
            env.push(from_config(item, key)?);
        }
    }

    let probes = sts.and_then(|s| s.probes.as_ref());
    let liveness = probes.and_then(|p| p.liveness_probe.as_ref());
    let readiness = probes.and_then(|p| p.readiness_probe.as_ref());
    let startup = probes.and_then(|p| p.startup_probe.as_ref());

    let mut mounts = vec![
        mount("data", "/data"),
        mount("binaries", "/binaries"),
        mount("certs", "/pki"),
        mount("helm-cache", "/.cache/helm"),
        mount("vcluster-config", CONFIG_MOUNT_PATH),
        mount("tmp", "/tmp"),
    ];
    mounts.extend(list::<VolumeMount, _>(
        persistence.and_then(|p| p.add_volume_mounts.as_ref()),
        "controlPlane.statefulSet.persistence.addVolumeMounts",
    )?);

    let security = sts.and_then(|s| s.security.as_ref());
    let statefulset_resources = sts.and_then(|s| s.resources.as_ref());
    let syncer = Container {
        name: "syncer".to_string(),
        image: Some(image_ref(sts.and_then(|s| s.image.as_ref()), default_registry)),
        image_pull_policy: non_empty(sts.and_then(|s| s.image_pull_policy.as_ref())),
        working_dir: non_empty(sts.and_then(|s| s.working_dir.as_ref())),
        command: sts.and_then(|s| s.command.clone()).filter(|c| !c.is_empty()),
        args: sts.and_then(|s| s.args.clone()).filter(|a| !a.is_empty()),
        ports: Some(vec![ContainerPort {
            name: Some("https".to_string()),
            container_port: API_PORT,
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        liveness_probe: liveness.filter(|p| p.enabled != Some(false)).map(|p| {
            https_probe(
                "/healthz",
                p.period_seconds,
                p.timeout_seconds,
                p.failure_threshold,
                p.initial_delay_seconds,
            )
        }),
        readiness_probe: readiness.filter(|p| p.enabled != Some(false)).map(|p| {
            https_probe("/readyz", p.period_seconds, p.timeout_seconds, p.failure_threshold, None)
        }),
        startup_probe: startup.filter(|p| p.enabled != Some(false)).map(|p| {
            https_probe("/readyz", p.period_seconds, p.timeout_seconds, p.failure_threshold, None)
        }),
        security_context: optional::<SecurityContext, _>(
            security.and_then(|s| s.container_security_context.as_ref()),
            "controlPlane.statefulSet.security.containerSecurityContext",
        )?,
        resources: resources(
            statefulset_resources.and_then(|r| r.limits.as_ref()),
            statefulset_resources.and_then(|r| r.requests.as_ref()),
            "controlPlane.statefulSet.resources",
        )?,
        env: Some(env),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let mut containers = vec![syncer];
    containers.extend(list::<Container, _>(
        sts.and_then(|s| s.sidecar_containers.as_ref()),
        "controlPlane.statefulSet.sidecarContainers",
    )?);

    let scheduling = sts.and_then(|s| s.scheduling.as_ref());
    let pod_spec = PodSpec {
        host_aliases: optional::<Vec<HostAlias>, _>(
            sts.and_then(|s| s.host_aliases.as_ref()),
            "controlPlane.statefulSet.hostAliases",
        )?,
        runtime_class_name: non_empty(sts.and_then(|s| s.runtime_class_name.as_ref())),
        termination_grace_period_seconds: Some(15),
        priority_class_name: non_empty(scheduling.and_then(|s| s.priority_class_name.as_ref())),
        security_context: optional::<PodSecurityContext, _>(
            security.and_then(|s| s.pod_security_context.as_ref()),
            "controlPlane.statefulSet.security.podSecurityContext",
        )?,
        node_selector: optional(
            scheduling.and_then(|s| s.node_selector.as_ref()),
            "controlPlane.statefulSet.scheduling.nodeSelector",
        )?,
        affinity: optional::<Affinity, _>(
            scheduling.and_then(|s| s.affinity.as_ref()),
            "controlPlane.statefulSet.scheduling.affinity",
        )?,
        topology_spread_constraints: optional::<Vec<TopologySpreadConstraint>, _>(
            scheduling.and_then(|s| s.topology_spread_constraints.as_ref()),
            "controlPlane.statefulSet.scheduling.topologySpreadConstraints",
        )?,
        tolerations: optional::<Vec<Toleration>, _>(
            scheduling.and_then(|s| s.tolerations.as_ref()),
            "controlPlane.statefulSet.scheduling.tolerations",
        )?,
        dns_policy: non_empty(sts.and_then(|s| s.dns_policy.as_ref())),
        dns_config: optional::<PodDNSConfig, _>(
            sts.and_then(|s| s.dns_config.as_ref()),
            "controlPlane.statefulSet.dnsConfig",
        )?,
        service_account_name: Some(service_account),
        volumes: Some(all_volumes),
        init_containers: Some(init_containers),
        enable_service_links: Some(sts.and_then(|s| s.enable_service_links).unwrap_or(true)),
        containers,
        ..Default::default()
    };

    let replicas = i32::try_from(view.replicas()).map_err(|_| {
        EngineError::Values(format!("{key}.highAvailability.replicas is out of range"))
    })?;
    Ok(StatefulSet {
        metadata: object_meta(name, namespace, labels, annotations),
        spec: Some(StatefulSetSpec {
            selector: control_plane_selector(name),
            persistent_volume_claim_retention_policy: persistent.then(|| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(
                        claim
                            .and_then(|c| c.retention_policy.clone())
                            .filter(|p| !p.is_empty())
                            .unwrap_or_else(|| "Retain".to_string()),
                    ),
                    ..Default::default()
                }
            }),
            service_name: Some(headless_service_name(name)),
            pod_management_policy: Some(
                non_empty(scheduling.and_then(|s| s.pod_management_policy.as_ref()))
                    .unwrap_or_else(|| "Parallel".to_string()),
            ),
            volume_claim_templates: (!claim_templates.is_empty()).then_some(claim_templates),
            replicas: Some(replicas),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A stable 64-bit FNV-1a digest, hex-encoded: the same configuration always gives the same
/// value on every platform and Rust version.
pub fn digest(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
