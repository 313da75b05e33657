//! `VirtualClusterSpec`: the one model of a virtual cluster, shared by the CLI flags, the `-f`
//! values file, the record on the host and the `VirtualCluster` resource. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest virtual cluster name. The StatefulSet controller labels each pod with
/// `controller-revision-hash: <name>-<10 chars>`, and a label value is at most 63 characters.
pub const MAX_NAME_LEN: usize = 52;

/// The desired state of one virtual cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualClusterSpec {
    /// Kubernetes minor version of the virtual control plane, such as "1.33".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Image overrides (for a mirror, or an exact control-plane build).
    #[serde(default, skip_serializing_if = "ImagesSpec::is_empty")]
    pub images: ImagesSpec,
    /// Network isolation of the virtual cluster's workloads.
    #[serde(default)]
    pub isolation: IsolationSpec,
    /// ResourceQuota and LimitRange in the host namespace.
    #[serde(default)]
    pub quota: QuotaSpec,
    /// Lifetime after creation, such as "2h" or "1d"; the cluster is expired after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Idle limit, such as "30m": `vc gc` pauses the cluster after this long without a user
    /// request through vc's forwards (see docs/lifecycle.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_after: Option<String>,
    /// Labels put on the cluster's record, for `vc list -l` and `vc delete -l`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Keep the datastore on a volume claim (default true). `false` puts it on an emptyDir:
    /// a faster start for throwaway clusters, whose data is gone when the pod is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<bool>,
    /// The datastore's volume claim: size and storage class (the host's default class when
    /// unset).
    #[serde(default, skip_serializing_if = "StorageSpec::is_empty")]
    pub storage: StorageSpec,
    /// Manifests applied inside the virtual cluster once it is ready, in order, with
    /// server-side apply: each entry a file, a directory (its .yaml, .yml and .json files), an
    /// http(s) URL, or inline YAML (an entry of several lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
    /// Helm charts installed inside the virtual cluster once it is ready, after the manifests,
    /// in order: each fetched and rendered by vc (no Helm binary) before the host is contacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ChartSpec>,
    /// Where the control plane and every pod synced from inside run on the host.
    #[serde(default, skip_serializing_if = "PlacementSpec::is_empty")]
    pub placement: PlacementSpec,
    /// The datastore of the virtual control plane (default: SQLite behind kine, on the
    /// volume claim).
    #[serde(default, skip_serializing_if = "DatastoreSpec::is_default")]
    pub datastore: DatastoreSpec,
    /// The virtual API server reachable without a forward (`vc connect` then uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<ExposeSpec>,
    /// Passthrough to the engine.
    #[serde(default, skip_serializing_if = "EngineSpec::is_empty")]
    pub engine: EngineSpec,
}

impl VirtualClusterSpec {
    /// Whether the datastore lives on a volume claim that survives the pod.
    pub fn persistent(&self) -> bool {
        self.persistence != Some(false)
    }
}

/// Container images; unset fields come from the engine's image table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagesSpec {
    /// Image carrying the Kubernetes binaries (API server, controller manager, kine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,
    /// The engine's syncer image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

impl ImagesSpec {
    fn is_empty(&self) -> bool {
        self.control_plane.is_none() && self.engine.is_none()
    }
}

/// The datastore's volume claim; it cannot change once the cluster exists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSpec {
    /// Requested size, a quantity such as "10Gi" (default 5Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// StorageClass of the claim (default: the host's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
}

impl StorageSpec {
    pub fn is_empty(&self) -> bool {
        self.size.is_none() && self.class_name.is_none()
    }
}

/// Network isolation: NetworkPolicies and the DNS restriction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IsolationSpec {
    /// NetworkPolicies and no DNS for host services (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Allow workloads to reach the public internet (private ranges stay closed).
    #[serde(default)]
    pub allow_internet: bool,
    /// The host API server's endpoints ("IP:PORT"), the only addresses outside the cluster
    /// its control plane may reach. `vc create` reads them from the host's `kubernetes`
    /// Service when this is empty; left empty (the host would not tell), the control plane
    /// may reach any address on 443, 6443 and 8443.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_api: Vec<String>,
    /// Host ranges (pod and service CIDRs) kept closed to public egress besides the private
    /// and special ranges; `vc create` adds what the host tells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ranges: Vec<String>,
}

impl Default for IsolationSpec {
    fn default() -> Self {
        Self { enabled: true, allow_internet: false, host_api: Vec::new(), host_ranges: Vec::new() }
    }
}

impl IsolationSpec {
    /// The host API endpoints as socket addresses (validated by [`VirtualClusterSpec::validate`]).
    pub fn host_api_endpoints(&self) -> Vec<SocketAddr> {
        self.host_api.iter().filter_map(|e| e.parse().ok()).collect()
    }
}

/// An IP range, `ADDRESS/PREFIX` (a bare address is a single host), with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                (addr.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?))
            }
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then(|| Cidr { addr: mask(addr, prefix), prefix })
    }

    /// The range holding exactly `addr`.
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
    }

    /// Whether every address of `other` is in this range.
    pub fn contains(&self, other: &Cidr) -> bool {
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && other.prefix >= self.prefix
            && mask(other.addr, self.prefix) == self.addr
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & keep).into())
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & keep).into())
        }
    }
}

/// ResourceQuota and LimitRange.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaSpec {
    /// Whether to set them. Unset: on in a namespace of the cluster's own, off in a shared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// ResourceQuota `hard` entries, merged over the defaults (for example `limits.cpu: "8"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hard: BTreeMap<String, String>,
}

/// A Helm chart to install inside the virtual cluster: a local chart (`path`: a directory or a
/// `.tgz`), or `name` from a repository (`repo`: an `https://` chart repository or an
/// `oci://` registry path).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChartSpec {
    /// The chart's name in its repository (with `repo`); for a local chart, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An `https://` (or `http://`) chart repository, or an `oci://` registry path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// The chart version (exact); unset: the repository's newest release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A local chart: a directory holding Chart.yaml, or a packaged `.tgz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Values over the chart's values.yaml (after `valuesFiles`): maps merge, the rest
    /// replaces, `null` deletes a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Value>,
    /// Values files merged over the chart's values.yaml, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    /// `.Release.Name` (default: the chart's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// `.Release.Namespace`, where namespaced objects that name none go (default: `default`;
    /// created when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl ChartSpec {
    /// What the chart is, for messages: its path, or `repo` + `name`.
    pub fn label(&self) -> String {
        match (&self.path, &self.repo, &self.name) {
            (Some(path), _, _) => path.clone(),
            (None, Some(repo), Some(name)) if repo.starts_with("oci://") => {
                format!("{}/{name}", repo.trim_end_matches('/'))
            }
            (None, Some(repo), Some(name)) => format!("{name} from {repo}"),
            (None, _, name) => name.clone().unwrap_or_default(),
        }
    }

    fn validate(&self, index: usize) -> Result<(), SpecError> {
        let fail = |why: &str| Err(SpecError::Chart(index, why.to_string()));
        match (&self.path, &self.repo) {
            (Some(_), Some(_)) => {
                return fail("give either path (a local chart) or repo, not both");
            }
            (None, None) => {
                return fail("give path (a local chart directory or .tgz) or repo and name");
            }
            (None, Some(repo)) => {
                let scheme_ok =
                    ["https://", "http://", "oci://"].iter().any(|s| repo.starts_with(s));
                if !scheme_ok {
                    return fail(
                        "repo must be an https:// chart repository or an oci:// registry path",
                    );
                }
                if self.name.as_deref().is_none_or(str::is_empty) {
                    return fail("a chart from a repository needs its name");
                }
            }
            (Some(path), None) if path.trim().is_empty() => return fail("path is empty"),
            (Some(_), None) => {}
        }
        if let Some(release) = &self.release_name {
            let ok = release.len() <= 53
                && release.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && release.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && release
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !ok {
                return fail(&format!(
                    "releaseName {release:?} must be lowercase letters, digits, '-' and '.', at most 53 characters"
                ));
            }
        }
        if let Some(ns) = &self.namespace {
            validate_namespace(ns).map_err(|_| {
                SpecError::Chart(index, format!("namespace {ns:?} must be lowercase letters, digits and '-', at most 63 characters"))
            })?;
        }
        if self.values.as_ref().is_some_and(|v| !v.is_object() && !v.is_null()) {
            return fail("values must be a mapping");
        }
        Ok(())
    }
}

/// Raw engine configuration, deep-merged last over what `vc` derives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EngineSpec {
    /// Engine configuration keys (the engine's `config.yaml` layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Value>,
}

impl EngineSpec {
    fn is_empty(&self) -> bool {
        self.values.is_none()
    }
}

/// Host placement: applied to the control-plane pod and enforced by the engine on every pod it
/// syncs to the host, whatever the pod inside asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementSpec {
    /// Node labels every pod must match (added to each pod's own selector).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations added to every pod, in the engine's form: `KEY[=VALUE][:EFFECT]`, or `*`
    /// for every taint (for example `dedicated=ci:NoSchedule`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<String>,
    /// RuntimeClass of every pod (a sandbox such as gVisor or Kata); it must exist on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// PriorityClass of every pod; it must exist on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

impl PlacementSpec {
    pub fn is_empty(&self) -> bool {
        self == &PlacementSpec::default()
    }

    fn validate(&self) -> Result<(), SpecError> {
        for (key, value) in &self.node_selector {
            if !is_label_key(key) || !is_label_value(value) {
                return Err(SpecError::NodeSelector(format!("{key}={value}")));
            }
        }
        for toleration in &self.tolerations {
            parse_toleration(toleration)?;
        }
        for (what, name) in [
            ("runtimeClassName", &self.runtime_class_name),
            ("priorityClassName", &self.priority_class_name),
        ] {
            if let Some(name) = name
                && !is_dns_subdomain(name)
            {
                return Err(SpecError::ClassName(what, name.clone()));
            }
        }
        Ok(())
    }
}

/// The datastore of the virtual control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatastoreSpec {
    /// `sqlite` (the default: kine over SQLite under `/data`) or `etcd` (an etcd StatefulSet
    /// beside the control plane, or the external etcd at `endpoint`).
    #[serde(default)]
    pub kind: DatastoreKind,
    /// An external etcd's client URL, `https://HOST:PORT`; with it no etcd is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Secret in the cluster's host namespace holding the external etcd's client credentials
    /// under `ca.crt`, `tls.crt` and `tls.key` (the shape cert-manager writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
}

impl DatastoreSpec {
    fn is_default(&self) -> bool {
        self == &DatastoreSpec::default()
    }

    /// Whether `vc` deploys an etcd StatefulSet beside the control plane.
    pub fn deploys_etcd(&self) -> bool {
        self.kind == DatastoreKind::Etcd && self.endpoint.is_none()
    }

    /// The external etcd's endpoint and TLS Secret, when the datastore is one.
    pub fn external_etcd(&self) -> Option<(&str, &str)> {
        match (self.kind, &self.endpoint, &self.tls_secret) {
            (DatastoreKind::Etcd, Some(endpoint), Some(secret)) => {
                Some((endpoint.as_str(), secret.as_str()))
            }
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), SpecError> {
        if self.kind != DatastoreKind::Etcd {
            if self.endpoint.is_some() || self.tls_secret.is_some() {
                return Err(SpecError::DatastoreExternalKind);
            }
            return Ok(());
        }
        match (&self.endpoint, &self.tls_secret) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(SpecError::DatastoreTlsSecretMissing),
            (None, Some(_)) => Err(SpecError::DatastoreEndpointMissing),
            (Some(endpoint), Some(secret)) => {
                parse_etcd_endpoint(endpoint)?;
                if !is_dns_subdomain(secret) {
                    return Err(SpecError::DatastoreTlsSecret(secret.clone()));
                }
                Ok(())
            }
        }
    }
}

/// The host and port of an external etcd endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdEndpoint {
    pub host: String,
    pub port: u16,
}

impl EtcdEndpoint {
    /// The address when the host is an IP literal (NetworkPolicies can name only addresses).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.trim_start_matches('[').trim_end_matches(']').parse().ok()
    }
}

/// Parses an external etcd endpoint, `https://HOST:PORT` (HOST a DNS name, an IPv4 address or
/// a bracketed IPv6 address), as the engine dials it: TLS, one endpoint, no path.
pub fn parse_etcd_endpoint(text: &str) -> Result<EtcdEndpoint, SpecError> {
    let bad = |why: &str| SpecError::DatastoreEndpoint(text.to_string(), why.to_string());
    let Some(rest) = text.strip_prefix("https://") else {
        return Err(bad("it must start with https:// (the engine speaks TLS to etcd)"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains(',') || rest.contains('@') {
        return Err(bad("give one endpoint, without a path or credentials"));
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(bad("it needs a port, such as :2379"));
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("invalid port"))?;
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_subdomain(host)
    };
    if !host_ok {
        return Err(bad(&format!("{host:?} is not a host name or IP address")));
    }
    Ok(EtcdEndpoint { host: host.to_string(), port })
}

/// Which datastore the control plane keeps its state in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatastoreKind {
    #[default]
    Sqlite,
    Etcd,
}

impl DatastoreKind {
    /// The name in the spec, `list` and `describe`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatastoreKind::Sqlite => "sqlite",
            DatastoreKind::Etcd => "etcd",
        }
    }
}

/// Parses `--datastore sqlite|etcd`.
pub fn parse_datastore(text: &str) -> Result<DatastoreKind, SpecError> {
    match text.to_ascii_lowercase().as_str() {
        "sqlite" => Ok(DatastoreKind::Sqlite),
        "etcd" => Ok(DatastoreKind::Etcd),
        _ => Err(SpecError::Datastore(text.to_string())),
    }
}

/// How the virtual API server is exposed on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExposeSpec {
    /// `NodePort` (the address of the control plane's node), `LoadBalancer` (the address the
    /// host's load balancer assigns) or `Ingress` (`host`, through an ingress controller that
    /// passes TLS through).
    #[serde(rename = "type")]
    pub kind: ExposeKind,
    /// Ingress only: the DNS name clients use; the Ingress rule's host and a name in the
    /// engine's serving certificate. Pointing it at the ingress controller is the user's part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Ingress only: the port the ingress controller serves TLS on (default 443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Ingress only: the IngressClass (default: the host's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
}

impl ExposeSpec {
    /// Exposed by the cluster's Service alone (NodePort, LoadBalancer).
    pub fn service(kind: ExposeKind) -> Self {
        Self { kind, host: None, port: None, class_name: None }
    }

    /// The server URL clients use for an Ingress: `https://HOST`, or `https://HOST:PORT` for
    /// a port other than 443. `None` for the other kinds, whose address the host assigns.
    pub fn ingress_url(&self) -> Option<String> {
        let host = self.host.as_deref().filter(|_| self.kind == ExposeKind::Ingress)?;
        Some(match self.port {
            Some(port) if port != 443 => format!("https://{host}:{port}"),
            _ => format!("https://{host}"),
        })
    }

    fn validate(&self) -> Result<(), SpecError> {
        let shown = match (self.kind, &self.host, self.port) {
            (ExposeKind::Ingress, host, Some(port)) => {
                format!("ingress={}:{port}", host.as_deref().unwrap_or_default())
            }
            (ExposeKind::Ingress, host, None) => {
                format!("ingress={}", host.as_deref().unwrap_or_default())
            }
            (kind, _, _) => kind.as_str().to_ascii_lowercase(),
        };
        let bad = |why: &str| Err(SpecError::Expose(shown.clone(), why.to_string()));
        if self.kind != ExposeKind::Ingress {
            if self.host.is_some() || self.port.is_some() || self.class_name.is_some() {
                return bad("expose.host, expose.port and expose.className belong to type Ingress");
            }
            return Ok(());
        }
        let Some(host) = &self.host else {
            return bad(
                "an Ingress needs a host name: use ingress=HOST, such as ingress=dev.example.com",
            );
        };
        if host.parse::<IpAddr>().is_ok() {
            return bad(
                "an Ingress host must be a DNS name, not an IP address (use nodeport or loadbalancer to reach an address)",
            );
        }
        if host.contains('*') || !is_dns_subdomain(host) {
            return bad(
                "the host must be a lowercase DNS name without a wildcard, such as dev.example.com",
            );
        }
        if self.port == Some(0) {
            return bad("the port must be between 1 and 65535");
        }
        if let Some(class) = &self.class_name
            && !is_dns_subdomain(class)
        {
            return Err(SpecError::IngressClass(class.clone()));
        }
        Ok(())
    }
}

/// How the virtual API server is exposed: a Service type, or an Ingress in front of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExposeKind {
    NodePort,
    LoadBalancer,
    Ingress,
}

impl ExposeKind {
    /// The type of the cluster's Service (an Ingress goes through a ClusterIP Service).
    pub fn service_type(self) -> &'static str {
        match self {
            ExposeKind::NodePort => "NodePort",
            ExposeKind::LoadBalancer => "LoadBalancer",
            ExposeKind::Ingress => "ClusterIP",
        }
    }

    /// The name in `--expose`, `describe` and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ExposeKind::NodePort => "NodePort",
            ExposeKind::LoadBalancer => "LoadBalancer",
            ExposeKind::Ingress => "Ingress",
        }
    }
}

/// Parses `--expose nodeport|loadbalancer|ingress=HOST[:PORT]`; the Ingress class comes from
/// `--ingress-class`.
pub fn parse_expose(text: &str) -> Result<ExposeSpec, SpecError> {
    let lower = text.to_ascii_lowercase();
    let spec = match lower.as_str() {
        "nodeport" => ExposeSpec::service(ExposeKind::NodePort),
        "loadbalancer" => ExposeSpec::service(ExposeKind::LoadBalancer),
        "ingress" => {
            return Err(SpecError::Expose(
                text.to_string(),
                "name the host: ingress=HOST or ingress=HOST:PORT, such as ingress=dev.example.com"
                    .into(),
            ));
        }
        _ if lower.starts_with("ingress=") => {
            let address = &text["ingress=".len()..];
            let (host, port) = match address.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => {
                    let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                        SpecError::Expose(
                            text.to_string(),
                            format!("{port:?} is not a port (1-65535)"),
                        )
                    })?;
                    (host, Some(port))
                }
                _ => (address, None),
            };
            ExposeSpec {
                kind: ExposeKind::Ingress,
                host: Some(host.to_string()),
                port,
                class_name: None,
            }
        }
        _ => {
            return Err(SpecError::Expose(
                text.to_string(),
                "use nodeport, loadbalancer or ingress=HOST".into(),
            ));
        }
    };
    spec.validate().map_err(|e| match e {
        SpecError::Expose(_, why) => SpecError::Expose(text.to_string(), why),
        other => other,
    })?;
    Ok(spec)
}

/// One toleration as the Kubernetes API spells it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Toleration {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub operator: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub effect: String,
}

/// Taint effects the API server accepts on a toleration.
const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Parses a toleration in the engine's form (`*`, `KEY`, `KEY=VALUE`, `KEY:EFFECT`,
/// `KEY=VALUE:EFFECT`), reading it as the engine reads `sync.toHost.pods.enforceTolerations`.
pub fn parse_toleration(text: &str) -> Result<Toleration, SpecError> {
    let bad = |why: &str| SpecError::Toleration(text.to_string(), why.to_string());
    if text == "*" {
        return Ok(Toleration { operator: "Exists".into(), ..Default::default() });
    }
    let (pair, effect) = match text.split_once(':') {
        Some((pair, effect)) => (pair, Some(effect)),
        None => (text, None),
    };
    let (key, value) = match pair.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (pair, None),
    };
    if value.is_some_and(|v| v.contains('=')) || effect.is_some_and(|e| e.contains(':')) {
        return Err(bad("use KEY[=VALUE][:EFFECT]"));
    }
    if !key.is_empty() && !is_label_key(key) {
        return Err(bad(&format!("{key:?} is not a valid taint key")));
    }
    if let Some(value) = value
        && !is_label_value(value)
    {
        return Err(bad(&format!("{value:?} is not a valid taint value")));
    }
    if let Some(effect) = effect
        && !TAINT_EFFECTS.contains(&effect)
    {
        return Err(bad(&format!("the effect must be one of {}", TAINT_EFFECTS.join(", "))));
    }
    // As the engine does: with an effect, a bare key tolerates any value (Exists); without
    // one, the operator is left to the API server's default (Equal).
    let operator = match (effect, value) {
        (Some(_), None) => "Exists",
        (Some(_), Some(_)) => "Equal",
        (None, _) => "",
    };
    if key.is_empty() && operator != "Exists" {
        return Err(bad("a toleration without a key must end with :EFFECT and carry no value"));
    }
    Ok(Toleration {
        key: key.to_string(),
        operator: operator.to_string(),
        value: value.unwrap_or_default().to_string(),
        effect: effect.unwrap_or_default().to_string(),
    })
}

fn default_true() -> bool {
    true
}

/// A spec or name that `vc` refuses before contacting the host.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "invalid name {name:?}: {reason} (use lowercase letters, digits and '-', starting with a letter, at most {MAX_NAME_LEN} characters)"
    )]
    Name { name: String, reason: String },
    #[error("invalid TTL {0:?}: use a number with a unit, such as 30m, 2h, 1h30m or 7d")]
    Ttl(String),
    #[error("invalid idle limit {0:?}: use a number with a unit, such as 30m, 2h or 1d")]
    SleepAfter(String),
    #[error(
        "an idle limit (--sleep-after) pauses the cluster, and an ephemeral cluster (--ephemeral) loses its data when paused; drop one of the two"
    )]
    SleepEphemeral,
    #[error(
        "invalid quota {0:?}: use RESOURCE=QUANTITY pairs separated by commas, such as cpu=4,memory=8Gi,pods=20"
    )]
    Quota(String),
    #[error(
        "invalid storage size {0:?}: use a quantity above zero, such as 10Gi or 500Mi (--storage-size, storage.size)"
    )]
    StorageSize(String),
    #[error(
        "invalid storage class {0:?}: use the name of a StorageClass of the host, such as standard (see: kubectl get storageclass)"
    )]
    StorageClass(String),
    #[error(
        "a storage size or class (--storage-size, --storage-class) shapes the volume claim, and an ephemeral cluster (--ephemeral) has none; drop one of the two"
    )]
    StorageEphemeral,
    #[error(
        "a storage size or class (--storage-size, --storage-class) shapes the datastore's volume claim, and an external etcd (--etcd-endpoint) keeps its data elsewhere; drop one of the two"
    )]
    StorageExternalEtcd,
    #[error("manifests: entry {0} is empty; give a file, a directory, a URL or inline YAML")]
    EmptyManifest(usize),
    #[error("charts: entry {0}: {1}")]
    Chart(usize, String),
    #[error("invalid label {0:?}: {1}")]
    Label(String, String),
    #[error("engine.values must be a mapping of engine configuration keys")]
    EngineValues,
    #[error(
        "invalid namespace {0:?}: use lowercase letters, digits and '-', at most 63 characters"
    )]
    Namespace(String),
    #[error("invalid label selector {0:?}: {1} (for example: pr=42, team in (a,b), !temp)")]
    Selector(String, String),
    #[error("invalid image reference {0:?}: {1}")]
    Image(String, String),
    #[error(
        "invalid isolation.hostApi entry {0:?}: use IP:PORT, such as 172.18.0.2:6443 or [fd00::1]:6443"
    )]
    HostApi(String),
    #[error("invalid isolation.hostRanges entry {0:?}: use a CIDR, such as 10.244.0.0/16")]
    HostRange(String),
    #[error(
        "invalid node selector {0:?}: use KEY=VALUE with a label key and value, such as kubernetes.io/arch=amd64"
    )]
    NodeSelector(String),
    #[error("invalid datastore {0:?}: use sqlite (the default) or etcd")]
    Datastore(String),
    #[error(
        "an etcd endpoint or TLS Secret (--etcd-endpoint, --etcd-tls-secret) needs datastore etcd (--datastore etcd)"
    )]
    DatastoreExternalKind,
    #[error(
        "an external etcd needs its client credentials: add --etcd-tls-secret NAME (datastore.tlsSecret), a Secret with ca.crt, tls.crt and tls.key"
    )]
    DatastoreTlsSecretMissing,
    #[error(
        "an etcd TLS Secret is only used with an external etcd: add --etcd-endpoint https://HOST:2379 (datastore.endpoint), or drop the Secret to deploy etcd beside the control plane"
    )]
    DatastoreEndpointMissing,
    #[error("invalid etcd endpoint {0:?}: {1} (for example: https://etcd.example.com:2379)")]
    DatastoreEndpoint(String, String),
    #[error(
        "invalid etcd TLS Secret name {0:?}: use the name of a Secret in the cluster's namespace (lowercase letters, digits, '-' and '.')"
    )]
    DatastoreTlsSecret(String),
    #[error("invalid --expose {0:?}: {1}")]
    Expose(String, String),
    #[error(
        "invalid toleration {0:?}: {1} (for example: dedicated=ci:NoSchedule, or * for every taint)"
    )]
    Toleration(String, String),
    #[error(
        "invalid placement.{0} {1:?}: use the name of an object on the host (lowercase letters, digits, '-' and '.')"
    )]
    ClassName(&'static str, String),
    #[error(
        "invalid IngressClass {0:?} (--ingress-class, expose.className): use the name of an IngressClass of the host (see: kubectl get ingressclass)"
    )]
    IngressClass(String),
    #[error(
        "--ingress-class names the class of the Ingress that --expose ingress=HOST makes; add --expose ingress=HOST, or drop --ingress-class"
    )]
    IngressClassWithoutIngress,
}

/// Label keys `vc` and the engine set themselves; a user label may not override them.
const RESERVED_LABEL_KEYS: [&str; 3] = ["app", "release", "app.kubernetes.io/managed-by"];

/// Checks a host namespace name (a DNS-1123 label).
pub fn validate_namespace(namespace: &str) -> Result<(), SpecError> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && namespace.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && namespace.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok { Ok(()) } else { Err(SpecError::Namespace(namespace.to_string())) }
}

/// Checks a label selector the way the API server parses it, so a typo is a usage error
/// before any request: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
pub fn validate_selector(selector: &str) -> Result<(), SpecError> {
    let fail = |why: &str| Err(SpecError::Selector(selector.to_string(), why.to_string()));
    let mut requirements = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return fail("unbalanced ')'"),
            ')' => depth -= 1,
            ',' if depth == 0 => {
                requirements.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return fail("unbalanced '('");
    }
    requirements.push(&selector[start..]);
    for requirement in requirements.iter().map(|r| r.trim()) {
        if requirement.is_empty() {
            return fail("empty requirement");
        }
        let key_ok = |key: &str| parse_label(&format!("{}=", key.trim())).is_ok();
        let value_ok = |value: &str| is_label_value(value.trim());
        let words: Vec<&str> = requirement.split_whitespace().collect();
        if let Some(key) = requirement.strip_prefix('!') {
            if !key_ok(key) {
                return fail(&format!("{key:?} is not a label key"));
            }
        } else if words.len() >= 2 && (words[1] == "in" || words[1] == "notin") {
            let rest =
                requirement[requirement.find(words[1]).unwrap_or(0) + words[1].len()..].trim();
            let Some(values) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
                return fail(&format!("{} needs a list in parentheses", words[1]));
            };
            if !key_ok(words[0]) || !values.split(',').all(value_ok) {
                return fail(&format!("{requirement:?} is not a valid set requirement"));
            }
        } else if let Some((key, value)) =
            ["==", "!=", "="].iter().find_map(|op| requirement.split_once(op))
        {
            if !key_ok(key) || !value_ok(value) {
                return fail(&format!("{requirement:?} is not a valid requirement"));
            }
        } else if !key_ok(requirement) {
            return fail(&format!("{requirement:?} is not a label key"));
        }
    }
    Ok(())
}

/// Checks an image reference the way the container runtime parses it (`[domain/]path[:tag]
/// [@digest]`, lowercase path), so a typo fails here instead of as `InvalidImageName` on the host.
pub fn validate_image(image: &str) -> Result<(), SpecError> {
    let fail = |why: &str| Err(SpecError::Image(image.to_string(), why.to_string()));
    if image.trim().is_empty() {
        return fail("it is empty");
    }
    if image.chars().any(char::is_whitespace) {
        return fail("it contains whitespace");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let ok = digest.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty()
                && algo.chars().all(|c| c.is_ascii_alphanumeric() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return fail("the digest must look like sha256:<hex>");
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return fail("the tag may hold letters, digits, '_', '.' and '-' (at most 128)");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first part with a dot, a port or `localhost` is a registry host, which may differ.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        parts.remove(0);
    }
    let path_ok = parts.iter().all(|p| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    });
    if !path_ok {
        return fail("the repository path must be lowercase letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Checks a virtual cluster name: a DNS-1035 label short enough for every derived object name.
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    let fail =
        |reason: &str| Err(SpecError::Name { name: name.to_string(), reason: reason.to_string() });
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail(&format!("it is {} characters long", name.len()));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return fail("it must start with a lowercase letter");
    }
    if !name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return fail("it must end with a letter or digit");
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return fail(&format!("it contains {c:?}"));
    }
    Ok(())
}

/// Parses a TTL such as `90s`, `30m`, `2h`, `1h30m` or `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, SpecError> {
    let bad = || SpecError::Ttl(text.to_string());
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut saw_unit = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        digits.clear();
        saw_unit = true;
    }
    if !digits.is_empty() || !saw_unit || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Parses `--quota cpu=4,memory=8Gi,pods=20` into ResourceQuota `hard` entries.
pub fn parse_quota(text: &str) -> Result<BTreeMap<String, String>, SpecError> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| SpecError::Quota(text.into()))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || !is_quantity(value) {
            return Err(SpecError::Quota(text.into()));
        }
        out.insert(key.to_string(), value.to_string());
    }
    if out.is_empty() {
        return Err(SpecError::Quota(text.into()));
    }
    Ok(out)
}

/// Whether `text` is a Kubernetes resource quantity (`4`, `500m`, `8Gi`, `1.5`, `1e3`).
pub fn is_quantity(text: &str) -> bool {
    let number_end = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return false;
    }
    const SUFFIXES: [&str; 14] =
        ["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    // A decimal exponent: e or E, an optional sign, then digits.
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else { return false };
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// Whether `text` is a quantity above zero (a volume claim of size 0 is refused by the host).
pub fn is_positive_quantity(text: &str) -> bool {
    // After leading zeros and the point, a non-zero quantity has a digit left.
    is_quantity(text)
        && text.trim_start_matches(['0', '.']).starts_with(|c: char| c.is_ascii_digit())
}

/// Parses one `--label key=value`.
/// A `--chart` argument: a local chart (a directory or `.tgz`), or
/// `oci://REGISTRY/PATH/NAME[@VERSION]`.
pub fn parse_chart_flag(text: &str, values_files: &[String]) -> Result<ChartSpec, SpecError> {
    let mut chart = ChartSpec { values_files: values_files.to_vec(), ..ChartSpec::default() };
    if let Some(reference) = text.strip_prefix("oci://") {
        let (reference, version) = match reference.rsplit_once('@') {
            Some((r, v)) => (r, Some(v.to_string())),
            None => (reference, None),
        };
        let Some((repo, name)) =
            reference.rsplit_once('/').filter(|(r, n)| !r.is_empty() && !n.is_empty())
        else {
            return Err(SpecError::Chart(
                0,
                format!("--chart {text:?}: an OCI chart is oci://REGISTRY/PATH/NAME@VERSION"),
            ));
        };
        chart.repo = Some(format!("oci://{repo}"));
        chart.name = Some(name.to_string());
        chart.version = version;
    } else {
        chart.path = Some(text.to_string());
    }
    Ok(chart)
}

pub fn parse_label(text: &str) -> Result<(String, String), SpecError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| SpecError::Label(text.into(), "use key=value".into()))?;
    if !is_label_key(key) {
        return Err(SpecError::Label(text.into(), format!("{key:?} is not a valid label key")));
    }
    if RESERVED_LABEL_KEYS.contains(&key) || key.starts_with("vc.dev/") {
        return Err(SpecError::Label(
            text.into(),
            format!("{key:?} is set by vc itself; choose another key"),
        ));
    }
    if !is_label_value(value) {
        return Err(SpecError::Label(
            text.into(),
            format!(
                "{value:?} is not a valid label value (at most 63 letters, digits, '-', '_' or '.')"
            ),
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Whether `key` is a label key: an optional DNS-subdomain prefix and `/`, then a name.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    (prefix.is_empty() || is_dns_subdomain(prefix)) && is_label_value(name) && !name.is_empty()
}

fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
}

fn is_dns_subdomain(v: &str) -> bool {
    v.len() <= 253
        && v.split('.').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

impl VirtualClusterSpec {
    /// Checks everything that can be checked without the engine's tables or the host.
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(ttl) = &self.ttl {
            parse_ttl(ttl)?;
        }
        if let Some(idle) = &self.sleep_after {
            parse_ttl(idle).map_err(|_| SpecError::SleepAfter(idle.clone()))?;
            if !self.persistent() {
                return Err(SpecError::SleepEphemeral);
            }
        }
        for (k, v) in &self.quota.hard {
            if !is_quantity(v) {
                return Err(SpecError::Quota(format!("{k}={v}")));
            }
        }
        if let Some(size) = &self.storage.size
            && !is_positive_quantity(size)
        {
            return Err(SpecError::StorageSize(size.clone()));
        }
        if let Some(class) = &self.storage.class_name
            && !is_dns_subdomain(class)
        {
            return Err(SpecError::StorageClass(class.clone()));
        }
        if !self.persistent() && !self.storage.is_empty() {
            return Err(SpecError::StorageEphemeral);
        }
        if let Some(i) = self.manifests.iter().position(|m| m.trim().is_empty()) {
            return Err(SpecError::EmptyManifest(i + 1));
        }
        for (i, chart) in self.charts.iter().enumerate() {
            chart.validate(i + 1)?;
        }
        for (k, v) in &self.labels {
            parse_label(&format!("{k}={v}"))?;
        }
        for image in [&self.images.control_plane, &self.images.engine].into_iter().flatten() {
            validate_image(image)?;
        }
        for endpoint in &self.isolation.host_api {
            if endpoint.parse::<SocketAddr>().map_or(true, |a| a.port() == 0) {
                return Err(SpecError::HostApi(endpoint.clone()));
            }
        }
        for range in &self.isolation.host_ranges {
            if !range.contains('/') || Cidr::parse(range).is_none() {
                return Err(SpecError::HostRange(range.clone()));
            }
        }
        self.placement.validate()?;
        if let Some(expose) = &self.expose {
            expose.validate()?;
        }
        self.datastore.validate()?;
        if self.datastore.external_etcd().is_some() && !self.storage.is_empty() {
            return Err(SpecError::StorageExternalEtcd);
        }
        if let Some(values) = &self.engine.values
            && !values.is_object()
        {
            return Err(SpecError::EngineValues);
        }
        Ok(())
    }

    /// Whether the quota applies, given whether the namespace is the cluster's own.
    pub fn quota_enabled(&self, own_namespace: bool) -> bool {
        self.quota.enabled.unwrap_or(own_namespace)
    }

    /// The TTL as a duration, when one is set and valid.
    pub fn ttl_duration(&self) -> Option<Duration> {
        self.ttl.as_deref().and_then(|t| parse_ttl(t).ok())
    }

    /// The idle limit as a duration, when one is set and valid.
    pub fn sleep_after_duration(&self) -> Option<Duration> {
        self.sleep_after.as_deref().and_then(|t| parse_ttl(t).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let private = Cidr::parse("10.0.0.0/8").expect("a CIDR");
        assert!(private.contains(&Cidr::parse("10.244.0.0/16").expect("a CIDR")));
        assert!(!private.contains(&Cidr::parse("11.0.0.0/16").expect("a CIDR")));
        assert!(!private.contains(&Cidr::parse("0.0.0.0/0").expect("a CIDR")));
        assert_eq!(Cidr::parse("10.1.2.3/8").expect("a CIDR").to_string(), "10.0.0.0/8");
        assert_eq!(Cidr::parse("172.18.0.2").expect("an address").to_string(), "172.18.0.2/32");
        assert_eq!(Cidr::parse("0.0.0.0/0").expect("a CIDR").to_string(), "0.0.0.0/0");
        assert_eq!(Cidr::parse("fd00::1/64").expect("a CIDR").to_string(), "fd00::/64");
        assert!(!private.contains(&Cidr::parse("fd00::/64").expect("a CIDR")));
        for bad in ["10.0.0.0/33", "10.0.0/8", "x", "fd00::/129", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn host_api_and_ranges_are_checked() {
        let mut spec = VirtualClusterSpec::default();
        spec.isolation.host_api = vec!["172.18.0.2:6443".into(), "[fd00::1]:443".into()];
        spec.isolation.host_ranges = vec!["10.244.0.0/16".into()];
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.isolation.host_api_endpoints().len(), 2);
        for bad in ["172.18.0.2", "host:6443", "172.18.0.2:0"] {
            spec.isolation.host_api = vec![bad.into()];
            assert_eq!(spec.validate(), Err(SpecError::HostApi(bad.into())));
        }
        spec.isolation.host_api.clear();
        spec.isolation.host_ranges = vec!["10.244.0.1".into()];
        assert_eq!(spec.validate(), Err(SpecError::HostRange("10.244.0.1".into())));
    }

    #[test]
    fn tolerations_parse_as_the_engine_reads_them() {
        let t = |text: &str| parse_toleration(text).expect(text);
        assert_eq!(t("*"), Toleration { operator: "Exists".into(), ..Default::default() });
        assert_eq!(
            t("dedicated=ci:NoSchedule"),
            Toleration {
                key: "dedicated".into(),
                operator: "Equal".into(),
                value: "ci".into(),
                effect: "NoSchedule".into()
            }
        );
        assert_eq!(
            t("example.com/gpu:NoExecute"),
            Toleration {
                key: "example.com/gpu".into(),
                operator: "Exists".into(),
                effect: "NoExecute".into(),
                ..Default::default()
            }
        );
        assert_eq!(
            t("spot=true"),
            Toleration { key: "spot".into(), value: "true".into(), ..Default::default() }
        );
        assert_eq!(t(":NoSchedule").operator, "Exists");
        for bad in ["a=b=c", "a:NoSchedule:x", "a:Never", "a=b c", "Bad Key", "=v", ""] {
            assert!(parse_toleration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn placement_is_checked() {
        let mut spec = VirtualClusterSpec::default();
        spec.placement.node_selector.insert("kubernetes.io/arch".into(), "amd64".into());
        spec.placement.tolerations.push("dedicated=ci:NoSchedule".into());
        spec.placement.runtime_class_name = Some("gvisor".into());
        spec.placement.priority_class_name = Some("ci-low".into());
        assert_eq!(spec.validate(), Ok(()));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["placement"]["runtimeClassName"], "gvisor");
        assert_eq!(serde_json::from_value::<VirtualClusterSpec>(json).unwrap(), spec);

        let mut bad = spec.clone();
        bad.placement.node_selector.insert("a b".into(), "x".into());
        assert_eq!(bad.validate(), Err(SpecError::NodeSelector("a b=x".into())));
        let mut bad = spec.clone();
        bad.placement.runtime_class_name = Some("G_Visor".into());
        assert_eq!(bad.validate(), Err(SpecError::ClassName("runtimeClassName", "G_Visor".into())));
        let mut bad = spec;
        bad.placement.tolerations.push("x:Sometimes".into());
        assert!(matches!(bad.validate(), Err(SpecError::Toleration(t, _)) if t == "x:Sometimes"));
    }

    #[test]
    fn expose_parses_and_round_trips() {
        assert_eq!(parse_expose("nodeport"), Ok(ExposeSpec::service(ExposeKind::NodePort)));
        assert_eq!(parse_expose("LoadBalancer"), Ok(ExposeSpec::service(ExposeKind::LoadBalancer)));
        let ingress = parse_expose("ingress=dev.example.com").unwrap();
        assert_eq!(ingress.kind, ExposeKind::Ingress);
        assert_eq!(ingress.host.as_deref(), Some("dev.example.com"));
        assert_eq!(ingress.ingress_url().as_deref(), Some("https://dev.example.com"));
        let with_port = parse_expose("ingress=localhost:30443").unwrap();
        assert_eq!((with_port.host.as_deref(), with_port.port), (Some("localhost"), Some(30443)));
        assert_eq!(with_port.ingress_url().as_deref(), Some("https://localhost:30443"));
        assert_eq!(
            parse_expose("ingress=dev.example.com:443").unwrap().ingress_url().as_deref(),
            Some("https://dev.example.com")
        );
        for bad in [
            "",
            "clusterip",
            "node-port",
            "ingress",
            "ingress=",
            "ingress=10.0.0.1",
            "ingress=fd00::1",
            "ingress=Dev.example.com",
            "ingress=*.example.com",
            "ingress=dev.example.com:0",
            "ingress=dev.example.com:https",
            "ingress=dev_1.example.com",
        ] {
            assert!(matches!(parse_expose(bad), Err(SpecError::Expose(..))), "{bad:?} accepted");
        }
        let spec: VirtualClusterSpec =
            serde_saphyr::from_str("expose:\n  type: NodePort\n").unwrap();
        assert_eq!(spec.expose, Some(ExposeSpec::service(ExposeKind::NodePort)));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["expose"], serde_json::json!({"type": "NodePort"}));

        let spec: VirtualClusterSpec = serde_saphyr::from_str(
            "expose:\n  type: Ingress\n  host: dev.example.com\n  port: 8443\n  className: nginx\n",
        )
        .unwrap();
        assert_eq!(spec.validate(), Ok(()));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json["expose"],
            serde_json::json!({"type": "Ingress", "host": "dev.example.com", "port": 8443, "className": "nginx"})
        );
        assert_eq!(serde_json::from_value::<VirtualClusterSpec>(json).unwrap(), spec);
        // A values file is checked as strictly as the flag.
        for bad in [
            "expose:\n  type: Ingress\n",
            "expose:\n  type: Ingress\n  host: 192.168.1.10\n",
            "expose:\n  type: NodePort\n  host: dev.example.com\n",
        ] {
            let spec: VirtualClusterSpec = serde_saphyr::from_str(bad).unwrap();
            assert!(matches!(spec.validate(), Err(SpecError::Expose(..))), "{bad:?} accepted");
        }
        let spec: VirtualClusterSpec = serde_saphyr::from_str(
            "expose:\n  type: Ingress\n  host: dev.example.com\n  className: Nginx Public\n",
        )
        .unwrap();
        assert_eq!(spec.validate(), Err(SpecError::IngressClass("Nginx Public".into())));
    }

    #[test]
    fn datastore_kinds() {
        assert_eq!(parse_datastore("sqlite"), Ok(DatastoreKind::Sqlite));
        assert_eq!(parse_datastore("ETCD"), Ok(DatastoreKind::Etcd));
        assert_eq!(parse_datastore("postgres"), Err(SpecError::Datastore("postgres".into())));
        let spec: VirtualClusterSpec =
            serde_saphyr::from_str("datastore:\n  kind: sqlite\n").unwrap();
        assert_eq!(spec.datastore.kind, DatastoreKind::Sqlite);
        // The default is left out of the record.
        assert!(serde_json::to_value(&spec).unwrap().get("datastore").is_none());
        let etcd: VirtualClusterSpec =
            serde_saphyr::from_str("datastore:\n  kind: etcd\n").unwrap();
        assert_eq!(etcd.validate(), Ok(()));
        assert!(etcd.datastore.deploys_etcd());
        assert_eq!(
            serde_json::to_value(&etcd).unwrap()["datastore"],
            serde_json::json!({"kind": "etcd"})
        );
        let external: VirtualClusterSpec = serde_saphyr::from_str(
            "datastore:\n  kind: etcd\n  endpoint: https://10.0.0.5:2379\n  tlsSecret: etcd-client\n",
        )
        .unwrap();
        assert_eq!(external.validate(), Ok(()));
        assert!(!external.datastore.deploys_etcd());
        assert_eq!(
            external.datastore.external_etcd(),
            Some(("https://10.0.0.5:2379", "etcd-client"))
        );
        let back: VirtualClusterSpec =
            serde_json::from_value(serde_json::to_value(&external).unwrap()).unwrap();
        assert_eq!(back, external);
        let mut bad = external.clone();
        bad.datastore.tls_secret = None;
        assert_eq!(bad.validate(), Err(SpecError::DatastoreTlsSecretMissing));
        let mut bad = external.clone();
        bad.datastore.endpoint = None;
        assert_eq!(bad.validate(), Err(SpecError::DatastoreEndpointMissing));
        let mut bad = external.clone();
        bad.datastore.kind = DatastoreKind::Sqlite;
        assert_eq!(bad.validate(), Err(SpecError::DatastoreExternalKind));
        let mut bad = external.clone();
        bad.datastore.tls_secret = Some("Etcd_Client".into());
        assert_eq!(bad.validate(), Err(SpecError::DatastoreTlsSecret("Etcd_Client".into())));
        let mut bad = external;
        bad.storage.size = Some("1Gi".into());
        assert_eq!(bad.validate(), Err(SpecError::StorageExternalEtcd));
        assert!(
            serde_saphyr::from_str::<VirtualClusterSpec>("datastore:\n  kind: mysql\n").is_err()
        );
    }

    #[test]
    fn etcd_endpoints() {
        let ok = |t: &str| parse_etcd_endpoint(t).expect(t);
        assert_eq!(
            ok("https://etcd.db.svc:2379"),
            EtcdEndpoint { host: "etcd.db.svc".into(), port: 2379 }
        );
        assert_eq!(ok("https://10.0.0.5:2379/").ip(), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(ok("https://[fd00::5]:2379").ip(), Some("fd00::5".parse().unwrap()));
        assert_eq!(ok("https://etcd:2379").ip(), None);
        for bad in [
            "http://etcd:2379",
            "etcd:2379",
            "https://etcd",
            "https://etcd:0",
            "https://etcd:99999",
            "https://etcd:2379/v3",
            "https://a:2379,https://b:2379",
            "https://Etcd_1:2379",
            "https://user@etcd:2379",
            "https://fd00::5:2379",
            "",
        ] {
            assert!(
                matches!(parse_etcd_endpoint(bad), Err(SpecError::DatastoreEndpoint(..))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn names() {
        assert!(validate_name("dev").is_ok());
        assert!(validate_name("pr-42").is_ok());
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        for bad in ["", "Dev", "1dev", "dev-", "dev_x", "dev.x", &"a".repeat(MAX_NAME_LEN + 1)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "2", "h", "2x", "0s", "-1h", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn quotas() {
        let q = parse_quota("cpu=4, memory=8Gi,pods=20,limits.cpu=500m").unwrap();
        assert_eq!(q["memory"], "8Gi");
        assert_eq!(q["limits.cpu"], "500m");
        for bad in ["", "cpu", "cpu=", "cpu=lots", "=4", "memory=8GB"] {
            assert!(parse_quota(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn quantities() {
        for ok in ["1", "0.5", "500m", "8Gi", "1e3", "2E6"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "1..2", "8GB", "1e", "x"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn selectors() {
        for ok in [
            "pr=42",
            "pr==42",
            "pr!=42",
            "team in (a,b)",
            "team notin (a, b),pr",
            "!temp",
            "a,b=c",
            "example.com/pr=1",
        ] {
            assert!(validate_selector(ok).is_ok(), "{ok:?} refused");
        }
        for bad in ["", "a b c", "=x", "team in a,b", "team in (a,b", "a,,b", "pr=4 2", "x)"] {
            assert!(validate_selector(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn namespaces_and_images() {
        assert!(validate_namespace("team-a").is_ok());
        for bad in ["", "Team", "team_a", "-a", &"a".repeat(64)] {
            assert!(validate_namespace(bad).is_err(), "{bad:?} accepted");
        }
        for ok in [
            "ghcr.io/loft-sh/vcluster-oss:0.36.1",
            "localhost:5000/mirror/kubernetes:v1.33.4",
            "registry.example.com:443/a/b_c-d.e",
            "busybox",
            "ghcr.io/loft-sh/kubernetes@sha256:0123456789abcdef0123456789abcdef",
            "ghcr.io/loft-sh/kubernetes:v1.36.0@sha256:0123456789abcdef0123456789abcdef",
        ] {
            assert!(validate_image(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "",
            "a b",
            "GHCR.io/Loft-SH/vcluster",
            "ghcr.io/loft-sh/vcluster:",
            "repo:ta$g",
            "x@sha256:zz",
            "a//b",
            "repo:-tag",
        ] {
            assert!(validate_image(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn storage_is_checked() {
        let mut spec = VirtualClusterSpec::default();
        spec.storage.size = Some("10Gi".into());
        spec.storage.class_name = Some("fast-ssd".into());
        assert_eq!(spec.validate(), Ok(()));
        for bad in ["0", "0Gi", "0.0", "ten", "10GB", ""] {
            spec.storage.size = Some(bad.into());
            assert_eq!(spec.validate(), Err(SpecError::StorageSize(bad.into())), "{bad:?}");
        }
        spec.storage.size = Some("0.5Gi".into());
        assert_eq!(spec.validate(), Ok(()));
        for bad in ["Fast", "fast_ssd", "", "-x"] {
            spec.storage.class_name = Some(bad.into());
            assert_eq!(spec.validate(), Err(SpecError::StorageClass(bad.into())), "{bad:?}");
        }
        spec.storage.class_name = None;
        spec.persistence = Some(false);
        assert_eq!(spec.validate(), Err(SpecError::StorageEphemeral));
        let yaml = "storage:\n  size: 20Gi\n  className: standard\n";
        let spec: VirtualClusterSpec = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(spec.storage.size.as_deref(), Some("20Gi"));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"storage": {"size": "20Gi", "className": "standard"}, "isolation": {"enabled": true, "allowInternet": false}, "quota": {}})
        );
        assert!(serde_saphyr::from_str::<VirtualClusterSpec>("storage:\n  class: x\n").is_err());
    }

    #[test]
    fn labels() {
        assert!(parse_label("app=foo").is_err(), "reserved key");
        assert!(parse_label("vc.dev/cluster=x").is_err(), "reserved prefix");
        assert_eq!(parse_label("team=web").unwrap(), ("team".into(), "web".into()));
        assert!(parse_label("example.com/pr=42").is_ok());
        assert!(parse_label("team").is_err());
        assert!(parse_label("team=a b").is_err());
    }

    #[test]
    fn spec_round_trips_and_refuses_unknown_keys() {
        let yaml = "kubernetesVersion: '1.33'\nisolation:\n  allowInternet: true\nquota:\n  hard:\n    cpu: '8'\nttl: 2h\n";
        let spec: VirtualClusterSpec = serde_saphyr::from_str(yaml).unwrap();
        assert!(spec.isolation.enabled);
        assert!(spec.isolation.allow_internet);
        assert_eq!(spec.quota.hard["cpu"], "8");
        let json = serde_json::to_string(&spec).unwrap();
        let back: VirtualClusterSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(spec, back);
        assert!(
            serde_saphyr::from_str::<VirtualClusterSpec>("kubernetesVersoin: '1.33'\n").is_err()
        );
    }
}
