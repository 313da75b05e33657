//! The engine configuration `vc` writes: the release's defaults, deep-merged with what `vc`
//! derives from the spec, deep-merged with `spec.engine.values`, then checked through the typed
//! model so a misspelt key or a variant `vc` cannot render is refused. Pure: no I/O.

pub mod model;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::spec::{Cidr, PlacementSpec, VirtualClusterSpec};

use super::EngineError;
use super::images::{ENGINE_RELEASE, ImageRef, ResolvedImages};
use model::Config;

/// The release defaults, as data: every key and value the release's `config.yaml` starts from.
const DEFAULTS_JSON: &str = include_str!("config/defaults-v0.36.1.json");

/// Public egress stays closed to these ranges even with `allow_internet`: RFC 1918, shared
/// address space (RFC 6598, carrier NAT and some clouds' pod networks), link-local (cloud
/// metadata services), loopback, "this network", multicast and the reserved 240.0.0.0/4.
pub const PRIVATE_RANGES: [&str; 9] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// The ranges closed to public egress: [`PRIVATE_RANGES`], then the host's own ranges and its
/// API server's addresses (a managed host's API may have a public address) where the private
/// ranges do not already cover them. IPv4 only: public egress is `0.0.0.0/0`.
pub fn public_egress_except(spec: &VirtualClusterSpec) -> Vec<String> {
    let mut closed: Vec<Cidr> = PRIVATE_RANGES.iter().filter_map(|r| Cidr::parse(r)).collect();
    let host_ranges = spec.isolation.host_ranges.iter().filter_map(|r| Cidr::parse(r));
    let api = spec.isolation.host_api_endpoints().into_iter().map(|a| Cidr::host(a.ip()));
    for range in host_ranges.chain(api) {
        if range.addr.is_ipv4() && !closed.iter().any(|c| c.contains(&range)) {
            closed.push(range);
        }
    }
    closed.iter().map(Cidr::to_string).collect()
}

/// ResourceQuota `hard` defaults: a cap a 2-4 CPU laptop cluster can honour, with room for the
/// control-plane pod, CoreDNS and a handful of workloads.
pub const DEFAULT_QUOTA: [(&str, &str); 15] = [
    ("requests.cpu", "2"),
    ("requests.memory", "4Gi"),
    ("requests.storage", "20Gi"),
    ("requests.ephemeral-storage", "16Gi"),
    ("limits.cpu", "8"),
    ("limits.memory", "12Gi"),
    ("limits.ephemeral-storage", "48Gi"),
    ("services.nodeports", "0"),
    ("services.loadbalancers", "1"),
    ("count/endpoints", "40"),
    ("count/pods", "20"),
    ("count/services", "20"),
    ("count/secrets", "100"),
    ("count/configmaps", "100"),
    ("count/persistentvolumeclaims", "10"),
];

/// LimitRange per-container defaults (limits), so every pod counts against the quota.
pub const DEFAULT_LIMITS: [(&str, &str); 3] =
    [("cpu", "500m"), ("memory", "512Mi"), ("ephemeral-storage", "2Gi")];
/// LimitRange per-container default requests.
pub const DEFAULT_REQUESTS: [(&str, &str); 3] =
    [("cpu", "50m"), ("memory", "64Mi"), ("ephemeral-storage", "256Mi")];

/// Resources of the syncer container (API server, controller manager, kine and the syncer run
/// in it as processes); they fit inside [`DEFAULT_QUOTA`] with the LimitRange defaults.
pub const SYNCER_REQUESTS: [(&str, &str); 3] =
    [("cpu", "200m"), ("memory", "256Mi"), ("ephemeral-storage", "1Gi")];
/// The CPU limit is 2 because the start (API server, kine, controller manager and the syncer all
/// starting at once) is CPU-bound and was throttled under a limit of 1; the request stays
/// small, so the quota and the scheduler see the same pod as before.
pub const SYNCER_LIMITS: [(&str, &str); 3] =
    [("cpu", "2"), ("memory", "2Gi"), ("ephemeral-storage", "8Gi")];

/// CPU limit of the init container that copies the Kubernetes binaries: the release's 100m
/// made a copy of a few hundred megabytes take seconds.
pub const INIT_CPU_LIMIT: &str = "1";

/// Probe period of the control plane's startup and readiness probes, in seconds: the kubelet
/// marks the pod Ready at the first tick after the API answers, so the release's 6 s startup
/// tick added up to 6 s to every start.
pub const PROBE_PERIOD_SECONDS: i64 = 1;
/// Startup probe failures allowed: 1800 ticks of 1 s keep the release's budget of 300 ticks of
/// 6 s (30 minutes) for a slow first start.
pub const STARTUP_FAILURE_THRESHOLD: i64 = 1800;
/// Readiness probe failures allowed before the pod is taken out of its Service: 120 ticks of
/// 1 s keep the release's 60 ticks of 2 s.
pub const READINESS_FAILURE_THRESHOLD: i64 = 120;

/// Controller-manager flags `vc` adds: every controller acts with the controller manager's
/// own admin credentials instead of a token per controller, so the engine's first wait (for
/// the default ServiceAccount) ends about a second after the controller manager starts
/// instead of five. The two flags go together: with per-controller credentials switched off
/// but the release's `controller-manager.conf` kept, controllers lack rights and no
/// ReplicaSet is ever created. See docs/engine.md for the trade-off.
pub const CONTROLLER_MANAGER_ARGS: [&str; 2] =
    ["--use-service-account-credentials=false", "--kubeconfig=/data/pki/admin.conf"];

/// The complete configuration of one virtual cluster, typed and as JSON.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub typed: Config,
    pub json: Value,
}

impl EngineConfig {
    /// The `config.yaml` text the syncer reads.
    pub fn to_yaml(&self) -> Result<String, EngineError> {
        serde_saphyr::to_string(&self.json)
            .map_err(|e| EngineError::Values(format!("cannot write the configuration: {e}")))
    }
}

/// The release defaults as JSON.
pub fn defaults() -> Value {
    // The data file is compiled in and checked by a unit test, so it always parses.
    serde_json::from_str(DEFAULTS_JSON).expect("the compiled-in engine defaults are valid JSON")
}

/// Deep merge with Helm's rules: mappings merge key by key, a `null` removes the key, anything
/// else (scalars, lists) replaces.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key)
                    && existing.is_object()
                    && value.is_object()
                {
                    deep_merge(existing, value);
                } else {
                    let mut value = value.clone();
                    strip_nulls(&mut value);
                    base.insert(key.clone(), value);
                }
            }
        }
        (base, overlay) => {
            let mut value = overlay.clone();
            strip_nulls(&mut value);
            *base = value;
        }
    }
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// A whole number of bytes from a quantity with a binary or decimal suffix (`5Gi`, `500Mi`,
/// `10G`, `1024`); `None` for the forms this does not read (fractions, exponents).
fn quantity_bytes(quantity: &str) -> Option<u128> {
    let split = quantity.find(|c: char| !c.is_ascii_digit()).unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let unit: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    number.parse::<u128>().ok()?.checked_mul(unit)
}

/// What the cluster's volume claims request together: the datastore's claim, plus the
/// control plane's own with a deployed etcd; `None` without claims or for a size this does
/// not read.
fn claims_bytes(spec: &VirtualClusterSpec) -> Option<u128> {
    if !spec.persistent() || spec.datastore.external_etcd().is_some() {
        return None;
    }
    let datastore = quantity_bytes(spec.storage.size.as_deref().unwrap_or("5Gi"))?;
    let control_plane =
        if spec.datastore.deploys_etcd() { quantity_bytes(ETCD_CONTROL_PLANE_CLAIM)? } else { 0 };
    Some(datastore + control_plane)
}

/// The ResourceQuota `hard` entries: the defaults (with room for the exposed Service's node
/// ports: the API port and the kubelet port of a NodePort, the API port of a LoadBalancer, and
/// for the cluster's own volume claims when they ask for more than the default storage) with
/// the spec's entries over them.
pub fn quota_hard(spec: &VirtualClusterSpec) -> BTreeMap<String, String> {
    let mut hard: BTreeMap<String, String> =
        DEFAULT_QUOTA.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let node_ports = match spec.expose.as_ref().map(|e| e.kind) {
        Some(crate::spec::ExposeKind::NodePort) => Some("2"),
        Some(crate::spec::ExposeKind::LoadBalancer) => Some("1"),
        Some(crate::spec::ExposeKind::Ingress) | None => None,
    };
    if let Some(node_ports) = node_ports {
        hard.insert("services.nodeports".to_string(), node_ports.to_string());
    }
    let default_storage = hard.get("requests.storage").and_then(|q| quantity_bytes(q));
    if let (Some(claims), Some(default)) = (claims_bytes(spec), default_storage)
        && claims > default
    {
        let gib = 1u128 << 30;
        let room =
            if claims % gib == 0 { format!("{}Gi", claims / gib) } else { claims.to_string() };
        hard.insert("requests.storage".to_string(), room);
    }
    hard.extend(spec.quota.hard.iter().map(|(k, v)| (k.clone(), v.clone())));
    hard
}

fn string_map(entries: &[(&str, &str)]) -> BTreeMap<String, Value> {
    entries.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect()
}

fn image(reference: &str) -> model::Image {
    let parsed = ImageRef::parse(reference);
    model::Image {
        registry: Some(parsed.registry),
        repository: Some(parsed.repository),
        tag: Some(parsed.tag),
    }
}

/// What `vc` sets on top of the release defaults for this spec.
pub fn derived(
    spec: &VirtualClusterSpec,
    own_namespace: bool,
    images: &ResolvedImages,
) -> Result<Value, EngineError> {
    use model::*;

    let isolation = spec.isolation.enabled;
    let quota = spec.quota_enabled(own_namespace);
    let derived = Config {
        control_plane: Some(ControlPlane {
            distro: Some(Distro {
                k8s: Some(DistroK8s {
                    image: Some(image(&images.control_plane)),
                    controller_manager: Some(DistroContainerEnabled {
                        extra_args: Some(
                            CONTROLLER_MANAGER_ARGS.iter().map(ToString::to_string).collect(),
                        ),
                        ..Default::default()
                    }),
                    resources: Some(BTreeMap::from([(
                        "limits".to_string(),
                        Value::Object(string_map(&[("cpu", INIT_CPU_LIMIT)]).into_iter().collect()),
                    )])),
                    ..Default::default()
                }),
            }),
            stateful_set: Some(ControlPlaneStatefulSet {
                image: Some(image(&images.engine)),
                resources: Some(Resources {
                    limits: Some(string_map(&SYNCER_LIMITS)),
                    requests: Some(string_map(&SYNCER_REQUESTS)),
                }),
                probes: Some(ControlPlaneProbes {
                    readiness_probe: Some(ReadinessProbe {
                        period_seconds: Some(PROBE_PERIOD_SECONDS),
                        failure_threshold: Some(READINESS_FAILURE_THRESHOLD),
                        ..Default::default()
                    }),
                    startup_probe: Some(StartupProbe {
                        period_seconds: Some(PROBE_PERIOD_SECONDS),
                        failure_threshold: Some(STARTUP_FAILURE_THRESHOLD),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                persistence: volume_claim(spec),
                ..Default::default()
            }),
            ..Default::default()
        }),
        networking: Some(Networking {
            advanced: Some(NetworkingAdvanced {
                // With isolation the virtual CoreDNS answers cluster.local itself and never
                // falls through to the host's cluster DNS, so host services do not resolve
                // inside; without it, names it does not know go to the host's DNS.
                fallback_host_cluster: Some(!isolation),
                ..Default::default()
            }),
            ..Default::default()
        }),
        policies: Some(Policies {
            network_policy: Some(NetworkPolicy {
                enabled: Some(isolation),
                workload: Some(NetworkPolicyWorkload {
                    public_egress: Some(NetworkPolicyWorkloadPublicEgress {
                        enabled: Some(spec.isolation.allow_internet),
                        cidr: Some("0.0.0.0/0".to_string()),
                        except: Some(public_egress_except(spec)),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            resource_quota: Some(ResourceQuota {
                enabled: Some(StrBool::Bool(quota)),
                quota: Some(
                    quota_hard(spec).into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
                ),
                ..Default::default()
            }),
            limit_range: Some(LimitRange {
                enabled: Some(StrBool::Bool(quota)),
                default: Some(string_map(&DEFAULT_LIMITS)),
                default_request: Some(string_map(&DEFAULT_REQUESTS)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        // vc is not the upstream CLI; it does not opt its users into the engine's telemetry.
        telemetry: Some(Telemetry { enabled: Some(false), ..Default::default() }),
        ..Default::default()
    };
    let to_value = |config: &Config| {
        serde_json::to_value(config)
            .map_err(|e| EngineError::Values(format!("cannot build the configuration: {e}")))
    };
    let mut value = to_value(&derived)?;
    if let Some(expose) = &spec.expose {
        deep_merge(&mut value, &to_value(&exposed(expose))?);
    }
    if !spec.placement.is_empty() {
        deep_merge(&mut value, &to_value(&placement(&spec.placement))?);
    }
    if let Some(store) = backing_store(spec) {
        deep_merge(&mut value, &to_value(&store)?);
    }
    Ok(value)
}

/// Resources of the deployed etcd container: the release's requests, plus limits so it
/// counts against the quota the way `vc` means (the LimitRange's defaults would cap it at
/// 512Mi, below what an etcd under load uses).
pub const ETCD_REQUESTS: [(&str, &str); 3] =
    [("cpu", "20m"), ("memory", "150Mi"), ("ephemeral-storage", "64Mi")];
pub const ETCD_LIMITS: [(&str, &str); 3] =
    [("cpu", "1"), ("memory", "1Gi"), ("ephemeral-storage", "1Gi")];

/// Size of the control plane's own volume claim when etcd holds the data: only the
/// certificates (and a restore's marker) live on it.
pub const ETCD_CONTROL_PLANE_CLAIM: &str = "1Gi";

/// The backing store for an etcd datastore: the deployed etcd (its claim shaped by the
/// spec's storage, an emptyDir with `--ephemeral`, placed like the control plane, locked
/// down: no privilege escalation, no capabilities, a read-only root filesystem and the
/// runtime's seccomp profile), or the external endpoint with its client Secret's files.
fn backing_store(spec: &VirtualClusterSpec) -> Option<Config> {
    use model::*;

    let datastore = &spec.datastore;
    let etcd = if let Some((endpoint, _)) = datastore.external_etcd() {
        let file = |key: &str| Some(format!("{}/{key}", super::etcd::EXTERNAL_TLS_DIR));
        Etcd {
            external: Some(EtcdExternal {
                enabled: Some(true),
                endpoint: Some(endpoint.to_string()),
                tls: Some(EtcdExternalTLS {
                    ca_file: file("ca.crt"),
                    cert_file: file("tls.crt"),
                    key_file: file("tls.key"),
                }),
            }),
            ..Default::default()
        }
    } else if datastore.deploys_etcd() {
        let placement = self::placement(&spec.placement);
        let scheduling =
            placement.control_plane.and_then(|c| c.stateful_set).and_then(|s| s.scheduling);
        let object = |value: Value| -> BTreeMap<String, Value> {
            value.as_object().map(|m| m.clone().into_iter().collect()).unwrap_or_default()
        };
        Etcd {
            deploy: Some(EtcdDeploy {
                enabled: Some(true),
                stateful_set: Some(EtcdDeployStatefulSet {
                    resources: Some(Resources {
                        limits: Some(string_map(&ETCD_LIMITS)),
                        requests: Some(string_map(&ETCD_REQUESTS)),
                    }),
                    security: Some(ControlPlaneSecurity {
                        pod_security_context: Some(object(serde_json::json!({
                            "seccompProfile": {"type": "RuntimeDefault"},
                        }))),
                        container_security_context: Some(object(serde_json::json!({
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": true,
                            "runAsUser": 0,
                            "runAsGroup": 0,
                        }))),
                    }),
                    persistence: Some(ExternalEtcdPersistence {
                        volume_claim: Some(ExternalEtcdPersistenceVolumeClaim {
                            enabled: (!spec.persistent()).then_some(false),
                            size: spec.storage.size.clone(),
                            storage_class: spec.storage.class_name.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    scheduling,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    } else {
        return None;
    };
    Some(Config {
        control_plane: Some(ControlPlane {
            backing_store: Some(BackingStore { etcd: Some(etcd), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The exposed endpoint. The engine puts the address in its serving certificate itself: the
/// Service's load-balancer ingress, the control-plane pod's host IPs for a NodePort, and
/// `controlPlane.ingress.host` (`pkg/server/cert`), which is also the rule of the Ingress the
/// chart renders from `controlPlane.ingress` (with TLS passed through to the syncer, as its
/// default annotations ask of ingress-nginx). The class goes where the chart reads it, in
/// `controlPlane.ingress.spec.ingressClassName`.
pub fn exposed(expose: &crate::spec::ExposeSpec) -> Config {
    use model::*;

    let control_plane = match expose.kind {
        crate::spec::ExposeKind::Ingress => ControlPlane {
            ingress: Some(ControlPlaneIngress {
                enabled: Some(true),
                host: expose.host.clone(),
                spec: expose.class_name.as_ref().map(|class| {
                    BTreeMap::from([("ingressClassName".to_string(), Value::String(class.clone()))])
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        kind => ControlPlane {
            service: Some(ControlPlaneService {
                spec: Some(BTreeMap::from([(
                    "type".to_string(),
                    Value::String(kind.service_type().to_string()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    Config { control_plane: Some(control_plane), ..Default::default() }
}

/// Placement, twice: on the control-plane pod (`controlPlane.statefulSet`), and as the
/// engine's enforcement on every pod it syncs to the host (`sync.toHost.pods` sets the
/// tolerations, runtime class and priority class; `sync.fromHost.nodes.selector.labels` is the
/// node selector the pod syncer adds, also while node syncing stays off).
pub fn placement(placement: &PlacementSpec) -> Config {
    use model::*;

    let some_string = |name: &Option<String>| name.clone().filter(|n| !n.is_empty());
    let selector = (!placement.node_selector.is_empty()).then(|| placement.node_selector.clone());
    let tolerations = (!placement.tolerations.is_empty()).then_some(&placement.tolerations);
    let control_plane_tolerations = tolerations.map(|list| {
        list.iter()
            .filter_map(|t| crate::spec::parse_toleration(t).ok())
            .filter_map(|t| match serde_json::to_value(t) {
                Ok(Value::Object(map)) => Some(map.into_iter().collect()),
                _ => None,
            })
            .collect()
    });
    Config {
        control_plane: Some(ControlPlane {
            stateful_set: Some(ControlPlaneStatefulSet {
                scheduling: Some(ControlPlaneScheduling {
                    node_selector: selector.as_ref().map(|s| {
                        s.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
                    }),
                    tolerations: control_plane_tolerations,
                    priority_class_name: some_string(&placement.priority_class_name),
                    ..Default::default()
                }),
                runtime_class_name: some_string(&placement.runtime_class_name),
                ..Default::default()
            }),
            ..Default::default()
        }),
        sync: Some(SyncSection {
            to_host: Some(SyncToHost {
                pods: Some(SyncPods {
                    enforce_tolerations: tolerations.cloned(),
                    runtime_class_name: some_string(&placement.runtime_class_name),
                    priority_class_name: some_string(&placement.priority_class_name),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            from_host: selector.map(|labels| SyncFromHost {
                nodes: Some(SyncNodes {
                    selector: Some(SyncNodeSelector { labels: Some(labels), ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// The volume claim's size and class from the spec, where it sets them (`engine.values`, merged
/// later, still wins).
/// With an etcd datastore the spec's storage shapes etcd's claim instead, and the control
/// plane's own claim is a small one of the same class.
fn volume_claim(spec: &VirtualClusterSpec) -> Option<model::ControlPlanePersistence> {
    let storage = &spec.storage;
    let etcd = spec.datastore.kind == crate::spec::DatastoreKind::Etcd;
    (!storage.is_empty() || (etcd && spec.persistent())).then(|| model::ControlPlanePersistence {
        volume_claim: Some(model::VolumeClaim {
            size: if etcd {
                Some(ETCD_CONTROL_PLANE_CLAIM.to_string())
            } else {
                storage.size.clone()
            },
            storage_class: storage.class_name.clone(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Parses a merged configuration through the typed model, naming the first bad key.
pub fn parse(merged: &Value) -> Result<Config, EngineError> {
    serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde names an unknown key as "unknown field `key`, expected one of ..." and the
        // path already ends with the key; the list of every valid key is too long to help.
        if message.starts_with("unknown field `") {
            return EngineError::Values(format!(
                "unknown key {path} for engine release {ENGINE_RELEASE}"
            ));
        }
        if path == "." {
            EngineError::Values(message)
        } else {
            EngineError::Values(format!("{path}: {message}"))
        }
    })
}

/// Builds the complete configuration: defaults, then what `vc` derives, then the passthrough.
pub fn build(
    spec: &VirtualClusterSpec,
    own_namespace: bool,
    images: &ResolvedImages,
) -> Result<EngineConfig, EngineError> {
    let mut merged = defaults();
    deep_merge(&mut merged, &derived(spec, own_namespace, images)?);
    if let Some(values) = &spec.engine.values {
        if !values.is_object() {
            return Err(EngineError::Values(
                "must be a mapping of engine configuration keys".to_string(),
            ));
        }
        deep_merge(&mut merged, values);
    }
    let typed = parse(&merged)?;
    check_supported(&merged)?;
    check_backing_store(spec, &merged)?;
    let ingress_asked =
        spec.expose.as_ref().is_some_and(|e| e.kind == crate::spec::ExposeKind::Ingress);
    if is_set(at(&merged, "controlPlane.ingress.enabled")) && !ingress_asked {
        // The Ingress is `vc`'s to render only with the host it then connects through.
        return Err(EngineError::Unsupported(
            "controlPlane.ingress.enabled: expose the cluster with --expose ingress=HOST (expose: {type: Ingress, host: HOST}) instead, so that vc renders the Ingress and connects through it".to_string(),
        ));
    }
    Ok(EngineConfig { typed, json: merged })
}

/// The backing store is the spec's `datastore` (recorded, shown by `list` and `describe`,
/// read by snapshots): `engine.values` may tune the deployed etcd but not choose another
/// store, and one store only is on.
fn check_backing_store(spec: &VirtualClusterSpec, config: &Value) -> Result<(), EngineError> {
    let on = |path: &str| is_set(at(config, path));
    let stores = [
        ("controlPlane.backingStore.etcd.deploy.enabled", spec.datastore.deploys_etcd()),
        (
            "controlPlane.backingStore.etcd.external.enabled",
            spec.datastore.external_etcd().is_some(),
        ),
        ("controlPlane.backingStore.database.embedded.enabled", false),
    ];
    for (path, wanted) in stores {
        if on(path) && !wanted {
            return Err(EngineError::Unsupported(format!(
                "{path} chooses the backing store, which vc sets from the datastore: use datastore \
                 kind etcd (--datastore etcd, with --etcd-endpoint for an external one) or sqlite, \
                 and remove the key"
            )));
        }
        if !on(path) && wanted {
            return Err(EngineError::Unsupported(format!(
                "{path} cannot be switched off while the datastore is etcd: remove the key"
            )));
        }
    }
    if spec.datastore.deploys_etcd() {
        let statefulset = "controlPlane.backingStore.etcd.deploy.statefulSet.enabled";
        if at(config, statefulset).is_some_and(|v| v == &Value::Bool(false) || v == "false") {
            return Err(EngineError::Unsupported(format!(
                "{statefulset}=false leaves the deployed etcd without members: remove it, or use \
                 an external etcd (--etcd-endpoint)"
            )));
        }
        let replicas = at(
            config,
            "controlPlane.backingStore.etcd.deploy.statefulSet.highAvailability.replicas",
        )
        .and_then(Value::as_i64)
        .unwrap_or(1);
        if !(1..=5).contains(&replicas) {
            return Err(EngineError::Unsupported(format!(
                "controlPlane.backingStore.etcd.deploy.statefulSet.highAvailability.replicas={replicas}: \
                 the engine's etcd certificates name members 0 to 4; use 1, 3 or 5"
            )));
        }
    }
    Ok(())
}

/// The value at a dotted path of a configuration.
fn at<'a>(config: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(config, |value, key| value.get(key))
}

/// Whether a value switches something on: `true`, `"true"`, or a non-empty list, mapping or
/// string (a list of webhooks, a map of custom resources, raw manifests).
fn is_set(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            s.eq_ignore_ascii_case("true") || !matches!(s.as_str(), "" | "false" | "auto")
        }
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::Null) | None => false,
    }
}

/// Switches that only the commercial engine accepts; the open-source syncer refuses to start.
const COMMERCIAL: &[&str] = &[
    "controlPlane.backingStore.etcd.embedded.enabled",
    "controlPlane.backingStore.database.external.enabled",
    "controlPlane.coredns.embedded",
    "controlPlane.hostPathMapper.central",
    "networking.resolveDNS",
    "policies.centralAdmission.validatingWebhooks",
    "policies.centralAdmission.mutatingWebhooks",
    "experimental.denyProxyRequests",
    "sync.toHost.customResources",
    "sync.fromHost.customResources",
    "sync.toHost.namespaces.enabled",
    "sync.toHost.pods.hybridScheduling.enabled",
    "sync.toHost.resourceClaims.enabled",
    "sync.toHost.resourceClaimTemplates.enabled",
    "sync.fromHost.deviceClasses.enabled",
    "privateNodes.enabled",
    "sleep",
    "snapshots",
    "deletion",
    "platform",
];

/// Switches with which the chart renders host objects `vc` does not render, or renders the
/// control plane as a different workload.
const OTHER_OBJECTS: &[(&str, &str)] = &[
    ("controlPlane.tlsRoute.enabled", "a TLSRoute for the control plane"),
    ("controlPlane.serviceMonitor.enabled", "a ServiceMonitor"),
    ("controlPlane.advanced.podDisruptionBudget.enabled", "a PodDisruptionBudget"),
    ("controlPlane.advanced.kubeVip.enabled", "kube-vip"),
    ("controlPlane.standalone.enabled", "standalone mode (no host cluster)"),
    ("experimental.deploy.host.manifests", "raw host manifests"),
    ("experimental.deploy.host.manifestsTemplate", "raw host manifests"),
    ("experimental.nodeMonitors", "node ServiceMonitors"),
    ("plugins", "plugins (extra containers in the control-plane pod)"),
    ("plugin", "plugins (extra containers in the control-plane pod)"),
];

/// Switches with which the chart gives the syncer a ClusterRole; `vc` never renders one.
const CLUSTER_ROLE: &[&str] = &[
    "rbac.clusterRole.overwriteRules",
    "rbac.clusterRole.extraRules",
    "networking.replicateServices.fromHost",
    "pro",
    "sync.toHost.storageClasses.enabled",
    "sync.toHost.persistentVolumes.enabled",
    "sync.toHost.priorityClasses.enabled",
    "sync.fromHost.priorityClasses.enabled",
    "sync.fromHost.ingressClasses.enabled",
    "sync.fromHost.runtimeClasses.enabled",
    "sync.fromHost.storageClasses.enabled",
    "sync.fromHost.csiNodes.enabled",
    "sync.fromHost.csiDrivers.enabled",
    "sync.fromHost.csiStorageCapacities.enabled",
    "sync.fromHost.nodes.enabled",
    "sync.fromHost.configMaps.enabled",
    "sync.fromHost.secrets.enabled",
    "sync.fromHost.gatewayClasses.enabled",
    "sync.fromHost.gateways.enabled",
    "sync.toHost.gatewayApi.enabled",
    "sync.toHost.gatewayApi.gateways.enabled",
    "sync.toHost.gatewayApi.httpRoutes.enabled",
    "sync.toHost.gatewayApi.tlsRoutes.enabled",
    "sync.toHost.gatewayApi.backendTLSPolicies.enabled",
    "controlPlane.distro.k8s.scheduler.enabled",
    "controlPlane.advanced.virtualScheduler.enabled",
    "integrations.kubeVirt.enabled",
    "integrations.externalSecrets.enabled",
    "integrations.istio.enabled",
];

/// Refuses configurations whose host objects `vc` does not render, and the features the
/// open-source engine refuses to start with.
pub fn check_supported(config: &Value) -> Result<(), EngineError> {
    let unsupported = |text: String| Err(EngineError::Unsupported(text));
    for path in COMMERCIAL {
        if is_set(at(config, path)) {
            return unsupported(format!(
                "{path} is a feature of the commercial engine, which vc does not deploy; the \
                 open-source engine (vcluster-oss) refuses to start with it: remove it"
            ));
        }
    }
    for (path, what) in OTHER_OBJECTS {
        if is_set(at(config, path)) {
            return unsupported(format!(
                "{path} needs {what}, which vc does not render: remove it, or deploy such a cluster with the upstream chart"
            ));
        }
    }
    let no_claim = at(config, "controlPlane.statefulSet.persistence.volumeClaim.enabled")
        .is_some_and(|v| v == &Value::Bool(false) || v == "false");
    let data_volume = is_set(at(config, "controlPlane.statefulSet.persistence.dataVolume"));
    if no_claim || data_volume {
        let key = if no_claim {
            "controlPlane.statefulSet.persistence.volumeClaim.enabled=false"
        } else {
            "controlPlane.statefulSet.persistence.dataVolume"
        };
        return unsupported(format!(
            "{key} is not supported by vc (the chart then renders a Deployment with another data \
             volume); for a cluster without a volume claim use vc create --ephemeral (persistence: \
             false in a values file), which keeps the datastore on an emptyDir"
        ));
    }
    let replicas = at(config, "controlPlane.statefulSet.highAvailability.replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if replicas != 1 {
        return unsupported(format!(
            "controlPlane.statefulSet.highAvailability.replicas={replicas} is not supported by \
             vc: the embedded database runs exactly one replica; leave it at 1"
        ));
    }
    let cluster_role = at(config, "rbac.clusterRole.enabled");
    if cluster_role.is_some_and(|v| v == &Value::Bool(true) || v == "true") {
        return unsupported(
            "rbac.clusterRole.enabled=true is not supported: vc gives the engine no ClusterRole; \
             remove it"
                .to_string(),
        );
    }
    let metrics = is_set(at(config, "integrations.metricsServer.enabled"))
        && is_set(at(config, "integrations.metricsServer.nodes"));
    let cluster_issuers = is_set(at(config, "integrations.certManager.enabled"))
        && is_set(at(config, "integrations.certManager.sync.fromHost.clusterIssuers.enabled"));
    let trigger = CLUSTER_ROLE
        .iter()
        .find(|path| is_set(at(config, path)))
        .map(|path| path.to_string())
        .or_else(|| metrics.then(|| "integrations.metricsServer.nodes".to_string()))
        .or_else(|| {
            cluster_issuers.then(|| {
                "integrations.certManager.sync.fromHost.clusterIssuers.enabled".to_string()
            })
        });
    // `rbac.clusterRole.enabled: false` does not make these work: the engine would then fail
    // with "forbidden" at run time, so they are refused whatever that switch says.
    if let Some(path) = trigger {
        return unsupported(format!(
            "{path} needs cluster-wide rights on the host (a ClusterRole), which vc never grants; switch it off in engine.values"
        ));
    }
    Ok(())
}
