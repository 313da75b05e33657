//! Isolation objects: the NetworkPolicies that fence a virtual cluster's workloads and control
//! plane, and the ResourceQuota and LimitRange of its host namespace. Rendered from the merged
//! engine configuration (`policies`), which `vc` derives from the spec. Pure: no I/O.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::config::model::{Config, StrBool};
use super::etcd;
use super::objects::{from_config_value, object_meta};
use super::{APP_VCLUSTER, EngineError, LABEL_APP, LABEL_MANAGED_BY_ENGINE, LABEL_RELEASE};
use crate::spec::{Cidr, parse_etcd_endpoint};

/// The API port of the control-plane pod (the syncer's proxy).
pub const API_PORT: i32 = 8443;
/// Ports a host API server listens on: 443 (managed clusters), 6443 (kind, k3d, kubeadm) and
/// 8443 (minikube). Only used when the host's real endpoints could not be read.
pub const HOST_API_PORTS: [i32; 3] = [443, 6443, 8443];
/// Label of the engine's CoreDNS pods.
pub const LABEL_K8S_APP: &str = "k8s-app";
pub const VIRTUAL_DNS_APP: &str = "vcluster-kube-dns";
/// Label value of the engine's snapshot pods (`app: vcluster-snapshot`).
pub const SNAPSHOT_APP: &str = "vcluster-snapshot";

fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }
}

/// Pods with these labels that the engine did not sync out of a virtual cluster. The engine
/// sets `vcluster.loft.sh/managed-by` on every pod it syncs and moves a tenant's own value of
/// that key (and of `release`) to a hashed key, so no tenant pod lacks it: a policy that
/// grants more than "own cluster only" selects through this, never through labels alone.
fn not_synced(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: LABEL_MANAGED_BY_ENGINE.to_string(),
            operator: "DoesNotExist".to_string(),
            values: None,
        }]),
        ..selector(labels)
    }
}

fn pods(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer { pod_selector: Some(selector), ..Default::default() }
}

/// The cluster's synced pods (its tenant's workloads, CoreDNS among them).
fn workload_pods(name: &str) -> LabelSelector {
    selector(&[(LABEL_MANAGED_BY_ENGINE, name)])
}

/// The control-plane pod: the StatefulSet's labels, and not a synced pod.
fn control_plane_pods(name: &str) -> LabelSelector {
    not_synced(&[(LABEL_APP, APP_VCLUSTER), (LABEL_RELEASE, name)])
}

/// The deployed etcd's pods: its StatefulSet's labels, and not a synced pod.
fn etcd_pods(name: &str) -> LabelSelector {
    not_synced(&[(LABEL_APP, etcd::APP_ETCD), (LABEL_RELEASE, name)])
}

/// The control plane's egress to its datastore: the deployed etcd's client port, or the
/// external etcd's address and port (any address on that port when the endpoint is a host
/// name, which a NetworkPolicy cannot name). Nothing for SQLite, which lives in the pod.
fn datastore_egress(name: &str, config: &Config) -> Vec<NetworkPolicyEgressRule> {
    let etcd = config
        .control_plane
        .as_ref()
        .and_then(|c| c.backing_store.as_ref())
        .and_then(|b| b.etcd.as_ref());
    let external = etcd
        .and_then(|e| e.external.as_ref())
        .filter(|x| x.enabled == Some(true))
        .and_then(|x| x.endpoint.as_deref())
        .and_then(|e| parse_etcd_endpoint(e).ok());
    let mut rules = Vec::new();
    if deploys_etcd(config) {
        rules.push(egress(vec![pods(etcd_pods(name))], vec![port("TCP", etcd::CLIENT_PORT)]));
    }
    if let Some(endpoint) = external {
        let to = endpoint.ip().map(|ip| ip_block(Cidr::host(ip).to_string(), None));
        rules.push(egress(to.into_iter().collect(), vec![port("TCP", i32::from(endpoint.port))]));
    }
    rules
}

/// The engine's snapshot pods (made by the upstream CLI next to the control plane).
fn snapshot_pods() -> LabelSelector {
    not_synced(&[(LABEL_APP, SNAPSHOT_APP)])
}

fn host_dns() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(selector(&[("kubernetes.io/metadata.name", "kube-system")])),
        pod_selector: Some(selector(&[(LABEL_K8S_APP, "kube-dns")])),
        ..Default::default()
    }
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_string()),
        port: Some(IntOrString::Int(number)),
        ..Default::default()
    }
}

fn dns_ports(number: i32) -> Vec<NetworkPolicyPort> {
    vec![port("UDP", number), port("TCP", number)]
}

fn egress(to: Vec<NetworkPolicyPeer>, ports: Vec<NetworkPolicyPort>) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: (!to.is_empty()).then_some(to),
        ports: (!ports.is_empty()).then_some(ports),
    }
}

fn ingress(
    from: Vec<NetworkPolicyPeer>,
    ports: Vec<NetworkPolicyPort>,
) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from: (!from.is_empty()).then_some(from),
        ports: (!ports.is_empty()).then_some(ports),
    }
}

fn ip_block(cidr: String, except: Option<Vec<String>>) -> NetworkPolicyPeer {
    NetworkPolicyPeer { ip_block: Some(IPBlock { cidr, except }), ..Default::default() }
}

/// Egress to the host API server: its endpoints, each address as a single-host block with
/// its own port (policy controllers judge traffic after the `kubernetes` Service's address is
/// translated to an endpoint). Without known endpoints: any address on the usual API ports.
fn host_api(endpoints: &[SocketAddr]) -> Vec<NetworkPolicyEgressRule> {
    if endpoints.is_empty() {
        return vec![egress(vec![], HOST_API_PORTS.iter().map(|p| port("TCP", *p)).collect())];
    }
    let by_port: BTreeMap<u16, Vec<String>> =
        endpoints.iter().fold(BTreeMap::new(), |mut acc, endpoint| {
            let block = Cidr::host(endpoint.ip()).to_string();
            let blocks: &mut Vec<String> = acc.entry(endpoint.port()).or_default();
            if !blocks.contains(&block) {
                blocks.push(block);
            }
            acc
        });
    by_port
        .into_iter()
        .map(|(number, blocks)| {
            egress(
                blocks.into_iter().map(|b| ip_block(b, None)).collect(),
                vec![port("TCP", i32::from(number))],
            )
        })
        .collect()
}

fn policy(
    name: String,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    pod_selector: LabelSelector,
    egress: Vec<NetworkPolicyEgressRule>,
    ingress: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: object_meta(&name, namespace, labels.clone(), BTreeMap::new()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pod_selector),
            policy_types: Some(vec!["Egress".to_string(), "Ingress".to_string()]),
            egress: Some(egress),
            ingress: Some(ingress),
        }),
    }
}

/// Extra rules from the configuration (`policies.networkPolicy.*.ingress|egress`), converted
/// from the configuration model to the Kubernetes types.
fn extra_rules<T: serde::Serialize, U: serde::de::DeserializeOwned>(
    rules: Option<&Vec<T>>,
    key: &str,
) -> Result<Vec<U>, EngineError> {
    rules
        .into_iter()
        .flatten()
        .map(|rule| {
            let value = serde_json::to_value(rule)
                .map_err(|e| EngineError::Values(format!("{key}: {e}")))?;
            from_config_value(&value, key)
        })
        .collect()
}

/// The NetworkPolicies of cluster `name`, when `policies.networkPolicy.enabled` is on.
/// `host_api` holds the host API server's endpoints (empty when unknown).
///
/// Who can match which policy (docs/security.md has the whole argument):
/// - `vc-work-<name>` selects every synced pod, so a tenant matches it: it grants only the
///   cluster's own pods and API port, plus public addresses with `allowInternet`.
/// - `vc-cp-<name>`, `vc-snapshot-<name>` and `vc-etcd-<name>` select pods without the engine's managed-by label,
///   which no synced pod lacks: a tenant cannot match them, whatever labels it sets.
/// - The virtual CoreDNS is a synced pod like any other and gets no policy of its own: it
///   answers `cluster.local` itself, and what it may reach beyond, a tenant may reach too.
pub fn network_policies(
    name: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    config: &Config,
    host_api_endpoints: &[SocketAddr],
) -> Result<Vec<NetworkPolicy>, EngineError> {
    let Some(settings) = config.policies.as_ref().and_then(|p| p.network_policy.as_ref()) else {
        return Ok(Vec::new());
    };
    if settings.enabled != Some(true) {
        return Ok(Vec::new());
    }
    let workload = settings.workload.as_ref();
    let control = settings.control_plane.as_ref();

    // Workloads: their own pods (CoreDNS included) and their API server, nothing else.
    let mut workload_egress = vec![
        egress(vec![pods(control_plane_pods(name))], vec![port("TCP", API_PORT)]),
        egress(vec![pods(workload_pods(name))], vec![]),
    ];
    if let Some(public) = workload.and_then(|w| w.public_egress.as_ref())
        && public.enabled == Some(true)
    {
        let cidr = public.cidr.clone().unwrap_or_else(|| "0.0.0.0/0".to_string());
        let except = public.except.clone().filter(|e| !e.is_empty());
        workload_egress.push(egress(vec![ip_block(cidr, except)], vec![]));
    }
    workload_egress.extend(extra_rules::<_, NetworkPolicyEgressRule>(
        workload.and_then(|w| w.egress.as_ref()),
        "policies.networkPolicy.workload.egress",
    )?);
    let mut workload_ingress = vec![
        ingress(vec![pods(control_plane_pods(name))], vec![]),
        ingress(vec![pods(workload_pods(name))], vec![]),
    ];
    workload_ingress.extend(extra_rules::<_, NetworkPolicyIngressRule>(
        workload.and_then(|w| w.ingress.as_ref()),
        "policies.networkPolicy.workload.ingress",
    )?);

    // Control plane: serves its API port, reaches the host API server's endpoints, host DNS,
    // its peers and its workloads (webhooks and API services a tenant runs).
    let mut control_egress = vec![egress(vec![host_dns()], dns_ports(53))];
    control_egress.extend(host_api(host_api_endpoints));
    control_egress.push(egress(vec![pods(control_plane_pods(name))], vec![]));
    control_egress.push(egress(vec![pods(workload_pods(name))], vec![]));
    control_egress.extend(datastore_egress(name, config));
    control_egress.extend(extra_rules::<_, NetworkPolicyEgressRule>(
        control.and_then(|c| c.egress.as_ref()),
        "policies.networkPolicy.controlPlane.egress",
    )?);
    let mut control_ingress = vec![
        ingress(vec![], vec![port("TCP", API_PORT)]),
        ingress(vec![pods(control_plane_pods(name))], vec![]),
        ingress(vec![pods(snapshot_pods())], vec![]),
    ];
    control_ingress.extend(extra_rules::<_, NetworkPolicyIngressRule>(
        control.and_then(|c| c.ingress.as_ref()),
        "policies.networkPolicy.controlPlane.ingress",
    )?);

    // The engine's snapshot pods reach only the control plane, host DNS and the host API.
    let mut snapshot_egress = vec![
        egress(vec![pods(control_plane_pods(name))], vec![]),
        egress(vec![host_dns()], dns_ports(53)),
    ];
    snapshot_egress.extend(host_api(host_api_endpoints));

    let mut policies = vec![
        policy(
            format!("vc-work-{name}"),
            namespace,
            labels,
            workload_pods(name),
            workload_egress,
            workload_ingress,
        ),
        policy(
            format!("vc-cp-{name}"),
            namespace,
            labels,
            control_plane_pods(name),
            control_egress,
            control_ingress,
        ),
        policy(
            format!("vc-snapshot-{name}"),
            namespace,
            labels,
            snapshot_pods(),
            snapshot_egress,
            vec![],
        ),
    ];
    if deploys_etcd(config) {
        // The deployed etcd: clients are the control plane (the engine's restore runs there
        // too), peers are its own members; it reaches only its peers and the host DNS (it
        // resolves its members' names at start).
        let client_ports = vec![port("TCP", etcd::CLIENT_PORT)];
        let peer_ports = vec![port("TCP", etcd::CLIENT_PORT), port("TCP", etcd::PEER_PORT)];
        policies.push(policy(
            format!("vc-etcd-{name}"),
            namespace,
            labels,
            etcd_pods(name),
            vec![
                egress(vec![host_dns()], dns_ports(53)),
                egress(vec![pods(etcd_pods(name))], peer_ports.clone()),
            ],
            vec![
                ingress(vec![pods(control_plane_pods(name))], client_ports),
                ingress(vec![pods(etcd_pods(name))], peer_ports),
            ],
        ));
    }
    Ok(policies)
}

fn deploys_etcd(config: &Config) -> bool {
    config
        .control_plane
        .as_ref()
        .and_then(|c| c.backing_store.as_ref())
        .and_then(|b| b.etcd.as_ref())
        .and_then(|e| e.deploy.as_ref())
        .is_some_and(|d| d.enabled == Some(true))
}

/// A configuration quantity (a string, or a bare number in YAML) as a Kubernetes quantity.
fn quantity(value: &Value, key: &str) -> Result<Quantity, EngineError> {
    match value {
        Value::String(s) => Ok(Quantity(s.clone())),
        Value::Number(n) => Ok(Quantity(n.to_string())),
        other => Err(EngineError::Values(format!("{key}: {other} is not a quantity"))),
    }
}

fn quantities(
    map: Option<&BTreeMap<String, Value>>,
    key: &str,
) -> Result<Option<BTreeMap<String, Quantity>>, EngineError> {
    let Some(map) = map.filter(|m| !m.is_empty()) else { return Ok(None) };
    map.iter()
        .map(|(k, v)| Ok((k.clone(), quantity(v, &format!("{key}.{k}"))?)))
        .collect::<Result<_, _>>()
        .map(Some)
}

fn word(value: Option<&StrBool>) -> &str {
    match value {
        Some(StrBool::Bool(true)) => "true",
        Some(StrBool::Bool(false)) => "false",
        Some(StrBool::Word(w)) => w,
        None => "",
    }
}

/// Whether the quota and the limit range are rendered, with the chart's rules: either one
/// switched to `true` turns both on, unless the other one says `false`.
fn quota_switches(config: &Config) -> (bool, bool) {
    let policies = config.policies.as_ref();
    let quota =
        word(policies.and_then(|p| p.resource_quota.as_ref()).and_then(|q| q.enabled.as_ref()));
    let limits =
        word(policies.and_then(|p| p.limit_range.as_ref()).and_then(|l| l.enabled.as_ref()));
    let any_on = quota == "true" || limits == "true";
    (any_on && quota != "false", any_on && limits != "false")
}

/// The namespace's ResourceQuota `vc-<name>`, when `policies.resourceQuota` is on.
pub fn resource_quota(
    name: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    config: &Config,
) -> Result<Option<ResourceQuota>, EngineError> {
    if !quota_switches(config).0 {
        return Ok(None);
    }
    let settings = config.policies.as_ref().and_then(|p| p.resource_quota.as_ref());
    let hard = quantities(settings.and_then(|s| s.quota.as_ref()), "policies.resourceQuota.quota")?;
    let scope_selector = settings
        .and_then(|s| s.scope_selector.as_ref())
        .filter(|s| {
            s.get("matchExpressions").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
        })
        .map(|s| {
            let value = Value::Object(s.clone().into_iter().collect());
            from_config_value(&value, "policies.resourceQuota.scopeSelector")
        })
        .transpose()?;
    let scopes = settings.and_then(|s| s.scopes.clone()).filter(|s| !s.is_empty());
    Ok(Some(ResourceQuota {
        metadata: object_meta(&format!("vc-{name}"), namespace, labels.clone(), BTreeMap::new()),
        spec: Some(ResourceQuotaSpec { hard, scope_selector, scopes }),
        ..Default::default()
    }))
}

/// The namespace's LimitRange `vc-<name>`, when `policies.limitRange` is on.
pub fn limit_range(
    name: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    config: &Config,
) -> Result<Option<LimitRange>, EngineError> {
    if !quota_switches(config).1 {
        return Ok(None);
    }
    let settings = config.policies.as_ref().and_then(|p| p.limit_range.as_ref());
    let key = "policies.limitRange";
    let item = LimitRangeItem {
        type_: "Container".to_string(),
        default: quantities(settings.and_then(|s| s.default.as_ref()), &format!("{key}.default"))?,
        default_request: quantities(
            settings.and_then(|s| s.default_request.as_ref()),
            &format!("{key}.defaultRequest"),
        )?,
        min: quantities(settings.and_then(|s| s.min.as_ref()), &format!("{key}.min"))?,
        max: quantities(settings.and_then(|s| s.max.as_ref()), &format!("{key}.max"))?,
        ..Default::default()
    };
    Ok(Some(LimitRange {
        metadata: object_meta(&format!("vc-{name}"), namespace, labels.clone(), BTreeMap::new()),
        spec: Some(LimitRangeSpec { limits: vec![item] }),
    }))
}
