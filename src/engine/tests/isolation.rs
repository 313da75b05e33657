//! The isolation matrix: a small NetworkPolicy evaluator (pods with labels and addresses, the
//! rendered policies, "may A reach B on port P?") judges what tenant pods, CoreDNS, the control
//! plane and the snapshot pod may reach, including tenant pods carrying every label of the
//! privileged pods. Policies are judged as enforcing CNIs do: after Service addresses are
//! translated to endpoints, and with an `ipBlock` matching pod addresses too (the stricter
//! reading for isolation: it never hides a path).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::placement;
use crate::engine::{HostObject, LABEL_MANAGED_BY_ENGINE, Placement, render};
use crate::spec::{Cidr, VirtualClusterSpec};

#[derive(Clone, Debug)]
struct Pod {
    name: &'static str,
    namespace: String,
    labels: BTreeMap<String, String>,
    ip: IpAddr,
}

/// Where a connection goes: a pod, or an address outside every pod network.
#[derive(Clone, Copy, Debug)]
enum Target<'a> {
    Pod(&'a Pod),
    Address(&'a str),
}

fn pod(name: &'static str, namespace: &str, labels: &[(&str, &str)], ip: &str) -> Pod {
    Pod {
        name,
        namespace: namespace.to_string(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ip: ip.parse().expect("a test address"),
    }
}

fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let exact = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            other => panic!("unknown selector operator {other}"),
        }
    });
    exact && expressions
}

fn namespace_labels(namespace: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("kubernetes.io/metadata.name".to_string(), namespace.to_string())])
}

fn in_block(peer: &NetworkPolicyPeer, ip: IpAddr) -> bool {
    let Some(block) = &peer.ip_block else { return false };
    let host = Cidr::host(ip);
    let cidr = Cidr::parse(&block.cidr).expect("a rendered CIDR");
    let excepted = block
        .except
        .iter()
        .flatten()
        .any(|e| Cidr::parse(e).expect("a rendered CIDR").contains(&host));
    cidr.contains(&host) && !excepted
}

fn peer_matches(peer: &NetworkPolicyPeer, policy_namespace: &str, target: Target<'_>) -> bool {
    match target {
        Target::Address(ip) => in_block(peer, ip.parse().expect("a test address")),
        Target::Pod(pod) => {
            if peer.ip_block.is_some() {
                return in_block(peer, pod.ip);
            }
            let namespace_ok = match &peer.namespace_selector {
                Some(selector) => selects(selector, &namespace_labels(&pod.namespace)),
                None => pod.namespace == policy_namespace,
            };
            let pod_ok = peer.pod_selector.as_ref().is_none_or(|s| selects(s, &pod.labels));
            namespace_ok && pod_ok
        }
    }
}

fn port_matches(ports: Option<&Vec<NetworkPolicyPort>>, protocol: &str, number: i32) -> bool {
    let Some(ports) = ports else { return true };
    ports.iter().any(|p| {
        let same_protocol = p.protocol.as_deref().unwrap_or("TCP") == protocol;
        let in_range = match &p.port {
            None => true,
            Some(IntOrString::Int(first)) => {
                (*first..=p.end_port.unwrap_or(*first)).contains(&number)
            }
            Some(IntOrString::String(name)) => panic!("named port {name} in a rendered policy"),
        };
        same_protocol && in_range
    })
}

fn has_type(policy: &NetworkPolicy, kind: &str) -> bool {
    policy
        .spec
        .as_ref()
        .and_then(|s| s.policy_types.as_ref())
        .is_some_and(|t| t.iter().any(|x| x == kind))
}

fn selecting<'a>(
    policies: &'a [NetworkPolicy],
    pod: &'a Pod,
    kind: &'a str,
) -> impl Iterator<Item = &'a NetworkPolicy> {
    policies.iter().filter(move |p| {
        p.metadata.namespace.as_deref() == Some(pod.namespace.as_str())
            && has_type(p, kind)
            && selects(
                p.spec.as_ref().and_then(|s| s.pod_selector.as_ref()).expect("a selector"),
                &pod.labels,
            )
    })
}

/// Whether `from` may open a connection to `to` on `protocol`/`port`.
fn allowed(
    policies: &[NetworkPolicy],
    from: &Pod,
    to: Target<'_>,
    protocol: &str,
    port: i32,
) -> bool {
    let mut egress_policies = selecting(policies, from, "Egress").peekable();
    let egress_ok = egress_policies.peek().is_none()
        || egress_policies.any(|p| {
            let namespace = p.metadata.namespace.as_deref().unwrap_or_default();
            p.spec.as_ref().and_then(|s| s.egress.as_ref()).into_iter().flatten().any(|rule| {
                let peers_ok = rule
                    .to
                    .as_ref()
                    .is_none_or(|peers| peers.iter().any(|peer| peer_matches(peer, namespace, to)));
                peers_ok && port_matches(rule.ports.as_ref(), protocol, port)
            })
        });
    let Target::Pod(target) = to else { return egress_ok };
    let mut ingress_policies = selecting(policies, target, "Ingress").peekable();
    let ingress_ok = ingress_policies.peek().is_none()
        || ingress_policies.any(|p| {
            let namespace = p.metadata.namespace.as_deref().unwrap_or_default();
            p.spec.as_ref().and_then(|s| s.ingress.as_ref()).into_iter().flatten().any(|rule| {
                let peers_ok = rule.from.as_ref().is_none_or(|peers| {
                    peers.iter().any(|peer| peer_matches(peer, namespace, Target::Pod(from)))
                });
                peers_ok && port_matches(rule.ports.as_ref(), protocol, port)
            })
        });
    egress_ok && ingress_ok
}

const HOST_API: &str = "172.18.0.2";
const HOST_API_PORT: i32 = 6443;

fn cluster_placement(name: &str) -> Placement {
    Placement { name: name.to_string(), namespace: format!("vc-{name}"), ..placement(true) }
}

fn policies_of(spec: &VirtualClusterSpec, name: &str) -> Vec<NetworkPolicy> {
    render(spec, &cluster_placement(name))
        .expect("renders")
        .objects
        .into_iter()
        .filter_map(|o| match o {
            HostObject::NetworkPolicy(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn pinned(allow_internet: bool) -> VirtualClusterSpec {
    let mut spec = VirtualClusterSpec::default();
    spec.isolation.allow_internet = allow_internet;
    spec.isolation.host_api = vec![format!("{HOST_API}:{HOST_API_PORT}")];
    spec
}

/// The pods of a host running clusters `a` (the tenant's) and `b`, with the labels they carry
/// on the host after the engine's label translation.
struct World {
    policies: Vec<NetworkPolicy>,
    tenants: Vec<Pod>,
    own_workload: Pod,
    own_dns: Pod,
    own_control_plane: Pod,
    snapshot: Pod,
    other_workload: Pod,
    other_control_plane: Pod,
    host_pod_same_namespace: Pod,
    host_pod_elsewhere: Pod,
    host_dns: Pod,
}

fn world(spec_a: &VirtualClusterSpec) -> World {
    let mut policies = policies_of(spec_a, "a");
    policies.extend(policies_of(&pinned(false), "b"));
    let synced = |name, extra: &[(&'static str, &'static str)], ip| {
        let mut labels =
            vec![(LABEL_MANAGED_BY_ENGINE, "a"), ("vcluster.loft.sh/namespace", "default")];
        labels.extend_from_slice(extra);
        pod(name, "vc-a", &labels, ip)
    };
    let control_plane_labels = |release| {
        vec![
            ("app", "vcluster"),
            ("release", release),
            ("vc.dev/cluster", release),
            ("app.kubernetes.io/managed-by", "vc"),
        ]
    };
    World {
        policies,
        tenants: vec![
            synced("plain tenant pod", &[("app", "web")], "10.244.0.20"),
            // A real engine moves a tenant's `release` to a hashed key; assume the worst.
            synced(
                "tenant pod with the control plane's and CoreDNS's labels",
                &[
                    ("app", "vcluster"),
                    ("release", "a"),
                    ("k8s-app", "vcluster-kube-dns"),
                    ("vc.dev/cluster", "a"),
                ],
                "10.244.0.21",
            ),
            synced(
                "tenant pod with the snapshot pod's label",
                &[("app", "vcluster-snapshot")],
                "10.244.0.22",
            ),
            pod(
                "tenant pod in kube-system with CoreDNS's labels",
                "vc-a",
                &[
                    (LABEL_MANAGED_BY_ENGINE, "a"),
                    ("vcluster.loft.sh/namespace", "kube-system"),
                    ("k8s-app", "vcluster-kube-dns"),
                ],
                "10.244.0.23",
            ),
        ],
        own_workload: synced("own workload", &[("app", "db")], "10.244.0.30"),
        own_dns: pod(
            "own CoreDNS",
            "vc-a",
            &[
                (LABEL_MANAGED_BY_ENGINE, "a"),
                ("vcluster.loft.sh/namespace", "kube-system"),
                ("k8s-app", "vcluster-kube-dns"),
            ],
            "10.244.0.31",
        ),
        own_control_plane: pod(
            "own control plane",
            "vc-a",
            &control_plane_labels("a"),
            "10.244.0.10",
        ),
        snapshot: pod("snapshot pod", "vc-a", &[("app", "vcluster-snapshot")], "10.244.0.12"),
        other_workload: pod(
            "other cluster's workload",
            "vc-b",
            &[(LABEL_MANAGED_BY_ENGINE, "b"), ("app", "web")],
            "10.244.1.20",
        ),
        other_control_plane: pod(
            "other cluster's control plane",
            "vc-b",
            &control_plane_labels("b"),
            "10.244.1.10",
        ),
        host_pod_same_namespace: pod(
            "host pod in the same namespace",
            "vc-a",
            &[("app", "web")],
            "10.244.0.40",
        ),
        host_pod_elsewhere: pod("host pod in default", "default", &[("app", "web")], "10.244.2.40"),
        host_dns: pod("host DNS", "kube-system", &[("k8s-app", "kube-dns")], "10.244.3.2"),
    }
}

/// Asserts each (target, protocol, port, expected) for a source pod, naming every wrong cell.
fn check(policies: &[NetworkPolicy], from: &Pod, cells: &[(Target<'_>, &str, i32, bool)]) {
    let wrong: Vec<String> = cells
        .iter()
        .filter(|(to, protocol, port, expected)| {
            allowed(policies, from, *to, protocol, *port) != *expected
        })
        .map(|(to, protocol, port, expected)| {
            let target = match to {
                Target::Pod(p) => p.name.to_string(),
                Target::Address(a) => a.to_string(),
            };
            let verdict =
                if *expected { "blocked, expected allowed" } else { "allowed, expected blocked" };
            format!("{} -> {target} {port}/{protocol}: {verdict}", from.name)
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_policy_that_reaches_beyond_the_cluster_selects_pods_a_tenant_can_make() {
    for allow_internet in [false, true] {
        for policy in policies_of(&pinned(allow_internet), "a") {
            let name = policy.metadata.name.clone().unwrap_or_default();
            let spec = policy.spec.expect("a spec");
            let selector = spec.pod_selector.expect("a selector");
            let excludes_synced = selector
                .match_expressions
                .iter()
                .flatten()
                .any(|e| e.key == LABEL_MANAGED_BY_ENGINE && e.operator == "DoesNotExist");
            let tenant_matchable =
                selector.match_labels.iter().flatten().any(|(k, _)| k == LABEL_MANAGED_BY_ENGINE);
            assert!(excludes_synced ^ tenant_matchable, "{name}: selects by labels a tenant sets");
            if tenant_matchable {
                // Whatever a tenant-matchable policy grants stays in the cluster, but for
                // public addresses with allowInternet.
                for rule in spec.egress.iter().flatten() {
                    for peer in rule.to.iter().flatten() {
                        assert!(
                            peer.namespace_selector.is_none(),
                            "{name}: egress to another namespace"
                        );
                        if let Some(block) = &peer.ip_block {
                            assert!(
                                allow_internet,
                                "{name}: an address block without allowInternet"
                            );
                            assert_eq!(block.cidr, "0.0.0.0/0", "{name}");
                        }
                    }
                    assert!(rule.to.is_some(), "{name}: egress to any address");
                }
            }
        }
    }
}

#[test]
fn tenant_pods_reach_their_own_cluster_only_whatever_their_labels() {
    let w = world(&pinned(false));
    for tenant in &w.tenants {
        check(
            &w.policies,
            tenant,
            &[
                (Target::Pod(&w.own_workload), "TCP", 5432, true),
                (Target::Pod(&w.own_dns), "UDP", 1053, true),
                (Target::Pod(&w.own_control_plane), "TCP", 8443, true),
                (Target::Pod(&w.own_control_plane), "TCP", 10250, false),
                (Target::Pod(&w.snapshot), "TCP", 80, false),
                (Target::Pod(&w.other_workload), "TCP", 80, false),
                (Target::Pod(&w.other_control_plane), "TCP", 8443, false),
                (Target::Pod(&w.host_pod_same_namespace), "TCP", 80, false),
                (Target::Pod(&w.host_pod_elsewhere), "TCP", 80, false),
                (Target::Pod(&w.host_dns), "UDP", 53, false),
                (Target::Pod(&w.host_dns), "TCP", 53, false),
                (Target::Address(HOST_API), "TCP", HOST_API_PORT, false),
                (Target::Address("1.1.1.1"), "TCP", 443, false),
                (Target::Address("8.8.8.8"), "UDP", 53, false),
                (Target::Address("169.254.169.254"), "TCP", 80, false),
            ],
        );
    }
}

#[test]
fn with_internet_tenants_reach_public_addresses_only() {
    let mut spec = pinned(true);
    spec.isolation.host_ranges = vec!["52.10.0.0/16".to_string()];
    let w = world(&spec);
    for tenant in w.tenants.iter().chain([&w.own_dns]) {
        check(
            &w.policies,
            tenant,
            &[
                (Target::Address("1.1.1.1"), "TCP", 443, true),
                (Target::Address("8.8.8.8"), "UDP", 53, true),
                (Target::Address(HOST_API), "TCP", HOST_API_PORT, false),
                (Target::Address("10.96.0.1"), "TCP", 443, false),
                (Target::Address("192.168.1.1"), "TCP", 80, false),
                (Target::Address("100.64.0.1"), "TCP", 80, false),
                (Target::Address("169.254.169.254"), "TCP", 80, false),
                (Target::Address("240.0.0.1"), "TCP", 80, false),
                (Target::Address("52.10.3.4"), "TCP", 80, false),
                (Target::Pod(&w.host_dns), "UDP", 53, false),
                (Target::Pod(&w.other_workload), "TCP", 80, false),
                (Target::Pod(&w.host_pod_elsewhere), "TCP", 80, false),
            ],
        );
    }
}

#[test]
fn a_public_host_api_address_stays_closed_to_tenants() {
    let mut spec = pinned(true);
    spec.isolation.host_api = vec!["35.1.2.3:443".to_string()];
    let w = world(&spec);
    check(&w.policies, &w.tenants[0], &[(Target::Address("35.1.2.3"), "TCP", 443, false)]);
    check(&w.policies, &w.own_control_plane, &[(Target::Address("35.1.2.3"), "TCP", 443, true)]);
}

#[test]
fn coredns_gets_what_workloads_get() {
    let w = world(&pinned(false));
    check(
        &w.policies,
        &w.own_dns,
        &[
            (Target::Pod(&w.own_control_plane), "TCP", 8443, true),
            (Target::Address("8.8.8.8"), "UDP", 53, false),
            (Target::Address("10.0.0.10"), "UDP", 53, false),
            (Target::Pod(&w.host_dns), "UDP", 53, false),
        ],
    );
}

#[test]
fn the_control_plane_reaches_the_host_api_endpoints_only() {
    let w = world(&pinned(false));
    check(
        &w.policies,
        &w.own_control_plane,
        &[
            (Target::Address(HOST_API), "TCP", HOST_API_PORT, true),
            (Target::Address(HOST_API), "TCP", 443, false),
            (Target::Address("172.18.0.3"), "TCP", HOST_API_PORT, false),
            (Target::Address("1.1.1.1"), "TCP", 443, false),
            (Target::Address("1.1.1.1"), "TCP", 8443, false),
            (Target::Pod(&w.host_dns), "UDP", 53, true),
            (Target::Pod(&w.own_workload), "TCP", 9443, true),
            (Target::Pod(&w.other_workload), "TCP", 80, false),
            (Target::Pod(&w.host_pod_elsewhere), "TCP", 80, false),
        ],
    );
    check(
        &w.policies,
        &w.snapshot,
        &[
            (Target::Pod(&w.own_control_plane), "TCP", 8443, true),
            (Target::Address(HOST_API), "TCP", HOST_API_PORT, true),
            (Target::Address("1.1.1.1"), "TCP", 443, false),
        ],
    );
    // Nothing outside the cluster reaches its workloads, nor anything but the API port of its
    // control plane.
    for outsider in [&w.other_workload, &w.other_control_plane, &w.host_pod_elsewhere] {
        check(
            &w.policies,
            outsider,
            &[
                (Target::Pod(&w.own_workload), "TCP", 80, false),
                (Target::Pod(&w.own_control_plane), "TCP", 10250, false),
            ],
        );
    }
}

#[test]
fn without_known_endpoints_the_control_plane_falls_back_to_the_api_ports() {
    let mut spec = VirtualClusterSpec::default();
    spec.isolation.allow_internet = false;
    let w = world(&spec);
    check(
        &w.policies,
        &w.own_control_plane,
        &[
            (Target::Address(HOST_API), "TCP", 6443, true),
            (Target::Address("1.1.1.1"), "TCP", 443, true),
            (Target::Address("1.1.1.1"), "TCP", 80, false),
        ],
    );
    check(&w.policies, &w.tenants[1], &[(Target::Address("1.1.1.1"), "TCP", 443, false)]);
}

#[test]
fn endpoints_on_several_ports_keep_their_own_port() {
    let mut spec = VirtualClusterSpec::default();
    spec.isolation.host_api = vec![
        "172.18.0.2:6443".to_string(),
        "172.18.0.3:16443".to_string(),
        "[fd00::2]:6443".to_string(),
    ];
    let w = world(&spec);
    check(
        &w.policies,
        &w.own_control_plane,
        &[
            (Target::Address("172.18.0.2"), "TCP", 6443, true),
            (Target::Address("172.18.0.3"), "TCP", 16443, true),
            (Target::Address("172.18.0.3"), "TCP", 6443, false),
            (Target::Address("fd00::2"), "TCP", 6443, true),
            (Target::Address("fd00::3"), "TCP", 6443, false),
            (Target::Address("172.18.0.2"), "TCP", 443, false),
        ],
    );
}
