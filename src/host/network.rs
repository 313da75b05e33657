//! What the host tells about its network, for the isolation policies: the API server's real
//! endpoints, its pod and service ranges, its Kubernetes version, and the user's own rights. Every lookup is
//! best-effort: a namespace admin may read none of it, and the caller says what that means.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{Api, ListParams, PostParams};

use super::{Host, HostError};

/// The host API server's endpoints, when the host tells them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    /// Endpoints of the `kubernetes` Service in `default`; `None` when they could not be read.
    pub api_endpoints: Option<Vec<SocketAddr>>,
    /// Node pod ranges and service ranges, where readable.
    pub ranges: Vec<String>,
    /// The host's Kubernetes minor version.
    pub minor: Option<u32>,
}

/// Whether an error only means "the host will not tell": not allowed, or not served.
fn unanswered(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if (403..=405).contains(&s.code))
}

impl Host {
    /// Reads the network facts concurrently: the endpoints only for the isolation policies,
    /// the ranges only when public egress needs them, the version always. Fails only on what
    /// is more than a refusal (the host is unreachable, say).
    pub async fn network_facts(
        &self,
        with_endpoints: bool,
        with_ranges: bool,
    ) -> Result<NetworkFacts, HostError> {
        let (api_endpoints, ranges, minor) = futures::try_join!(
            async { if with_endpoints { self.api_endpoints().await } else { Ok(None) } },
            async { if with_ranges { self.host_ranges().await } else { Ok(Vec::new()) } },
            self.kubernetes_minor(),
        )?;
        Ok(NetworkFacts { api_endpoints, ranges, minor })
    }

    /// The endpoints of the `kubernetes` Service: its EndpointSlices, else its Endpoints.
    async fn api_endpoints(&self) -> Result<Option<Vec<SocketAddr>>, HostError> {
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), "default");
        let params = ListParams::default().labels("kubernetes.io/service-name=kubernetes");
        match slices.list(&params).await {
            Ok(list) => {
                let found = endpoints_of_slices(&list.items);
                if !found.is_empty() {
                    return Ok(Some(found));
                }
            }
            Err(e) if unanswered(&e) => {}
            Err(e) => return Err(self.explain("reading the kubernetes Service's endpoints", e)),
        }
        let endpoints: Api<Endpoints> = Api::namespaced(self.client.clone(), "default");
        match endpoints.get_opt("kubernetes").await {
            Ok(found) => {
                let found = found.map(|e| endpoints_of(&e)).unwrap_or_default();
                Ok((!found.is_empty()).then_some(found))
            }
            Err(e) if unanswered(&e) => Ok(None),
            Err(e) => Err(self.explain("reading the kubernetes Service's endpoints", e)),
        }
    }

    /// Node pod ranges and the cluster's service ranges (ServiceCIDR, Kubernetes 1.33 on).
    async fn host_ranges(&self) -> Result<Vec<String>, HostError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let cidrs: Api<ServiceCIDR> = Api::all(self.client.clone());
        let all = ListParams::default();
        let (nodes, cidrs) = futures::join!(nodes.list(&all), cidrs.list(&all));
        let mut ranges = Vec::new();
        for result in [
            nodes.map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|n| n.spec)
                    .flat_map(|s| s.pod_cidrs.unwrap_or_default().into_iter().chain(s.pod_cidr))
                    .collect::<Vec<_>>()
            }),
            cidrs.map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|c| c.spec)
                    .flat_map(|s| s.cidrs.unwrap_or_default())
                    .collect::<Vec<_>>()
            }),
        ] {
            match result {
                Ok(found) => ranges.extend(found),
                Err(e) if unanswered(&e) => {}
                Err(e) => return Err(self.explain("reading the host's pod and service ranges", e)),
            }
        }
        ranges.retain(|r| crate::spec::Cidr::parse(r).is_some() && r.contains('/'));
        ranges.sort();
        ranges.dedup();
        Ok(ranges)
    }

    /// The first address of the host's service range, which the engine puts in its API
    /// server certificate: the `kubernetes` Service's address in `default`, else the first
    /// address of the primary ServiceCIDR (`kubernetes`, Kubernetes 1.33 on). `None` when the
    /// host tells neither.
    pub async fn first_service_ip(&self) -> Result<Option<IpAddr>, HostError> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), "default");
        match services.get_opt("kubernetes").await {
            Ok(Some(service)) => {
                let ip = service.spec.and_then(|s| s.cluster_ip).and_then(|ip| ip.parse().ok());
                if ip.is_some() {
                    return Ok(ip);
                }
            }
            Ok(None) => {}
            Err(e) if unanswered(&e) => {}
            Err(e) => return Err(self.explain("reading the kubernetes Service", e)),
        }
        let cidrs: Api<ServiceCIDR> = Api::all(self.client.clone());
        match cidrs.get_opt("kubernetes").await {
            Ok(found) => Ok(found
                .and_then(|c| c.spec)
                .and_then(|s| s.cidrs)
                .and_then(|cidrs| cidrs.first().and_then(|c| first_address(c)))),
            Err(e) if unanswered(&e) => Ok(None),
            Err(e) => Err(self.explain("reading the host's service range", e)),
        }
    }

    /// The host's Kubernetes minor version from `/version` ("33", or "33+" on some hosts).
    async fn kubernetes_minor(&self) -> Result<Option<u32>, HostError> {
        match self.client.apiserver_version().await {
            Ok(info) => {
                let digits: String = info.minor.chars().take_while(char::is_ascii_digit).collect();
                Ok(digits.parse().ok())
            }
            Err(e) if unanswered(&e) => Ok(None),
            Err(e) => Err(self.explain("reading the host's version", e)),
        }
    }
}

fn endpoints_of_slices(slices: &[EndpointSlice]) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for slice in slices {
        let ports: Vec<u16> = slice
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| p.port.and_then(|n| u16::try_from(n).ok()))
            .collect();
        let ready = slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false));
        for address in ready.flat_map(|e| e.addresses.iter()) {
            let Ok(ip) = address.parse::<IpAddr>() else { continue };
            found.extend(ports.iter().map(|port| SocketAddr::new(ip, *port)));
        }
    }
    found.sort();
    found.dedup();
    found
}

fn endpoints_of(endpoints: &Endpoints) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<u16> = subset
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect();
        for address in subset.addresses.iter().flatten() {
            let Ok(ip) = address.ip.parse::<IpAddr>() else { continue };
            found.extend(ports.iter().map(|port| SocketAddr::new(ip, *port)));
        }
    }
    found.sort();
    found.dedup();
    found
}

impl Host {
    /// The rules the current user holds in `namespace`, from a SelfSubjectRulesReview;
    /// `None` when the host cannot tell (the review is refused, not served, or incomplete, as
    /// with a webhook authorizer).
    pub async fn rules_in(&self, namespace: &str) -> Result<Option<Vec<PolicyRule>>, HostError> {
        let api: Api<SelfSubjectRulesReview> = Api::all(self.client.clone());
        let review = SelfSubjectRulesReview {
            spec: SelfSubjectRulesReviewSpec { namespace: Some(namespace.to_string()) },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) => {
                let Some(status) = answer.status.filter(|s| !s.incomplete) else { return Ok(None) };
                Ok(Some(
                    status
                        .resource_rules
                        .into_iter()
                        .map(|r| PolicyRule {
                            api_groups: r.api_groups,
                            resources: r.resources,
                            resource_names: r.resource_names,
                            verbs: r.verbs,
                            non_resource_urls: None,
                        })
                        .collect(),
                ))
            }
            Err(e) if unanswered(&e) => Ok(None),
            Err(e) => Err(self.explain("reviewing your rights on the host", e)),
        }
    }

    /// The current user's name on the host (SelfSubjectReview), when it says.
    pub async fn user_name(&self) -> Option<String> {
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        let answer =
            api.create(&PostParams::default(), &SelfSubjectReview::default()).await.ok()?;
        answer.status?.user_info?.username.filter(|u| !u.is_empty())
    }
}

/// The first usable address of a range ("10.96.0.0/12" gives 10.96.0.1), as Kubernetes gives
/// its `kubernetes` Service.
fn first_address(cidr: &str) -> Option<IpAddr> {
    let (network, _) = cidr.split_once('/')?;
    Some(match network.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => IpAddr::from(u32::from(v4).checked_add(1)?.to_be_bytes()),
        IpAddr::V6(v6) => IpAddr::from(u128::from(v6).checked_add(1)?.to_be_bytes()),
    })
}

impl Host {
    /// Checks that an external etcd's client Secret exists in `namespace` with every key the
    /// control plane mounts, before anything is applied: a missing Secret or key is
    /// [`HostError::NotFound`] naming how to make it. Only the keys are read.
    pub async fn check_etcd_tls_secret(
        &self,
        namespace: &str,
        secret: &str,
        own_namespace: bool,
    ) -> Result<(), HostError> {
        use crate::engine::etcd::EXTERNAL_TLS_KEYS;
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), namespace);
        let found = if own_namespace {
            // vc creates this namespace: nothing can be in it yet.
            None
        } else {
            secrets
                .get_opt(secret)
                .await
                .map_err(|e| self.explain(&format!("reading Secret {namespace}/{secret}"), e))?
        };
        let Some(found) = found else {
            let hint = if own_namespace {
                format!(
                    "; vc creates namespace {namespace:?} itself, so put the Secret in an existing namespace and create the cluster there with --namespace NS"
                )
            } else {
                format!(
                    "; create it with: kubectl -n {namespace} create secret generic {secret} --from-file=ca.crt --from-file=tls.crt --from-file=tls.key"
                )
            };
            return Err(HostError::NotFound(format!(
                "the external etcd's client Secret {secret:?} was not found in namespace {namespace:?} on context {:?}{hint}; nothing was applied",
                self.context
            )));
        };
        let keys: Vec<&String> = found
            .data
            .iter()
            .flat_map(|d| d.keys())
            .chain(found.string_data.iter().flat_map(|d| d.keys()))
            .collect();
        let missing: Vec<&str> =
            EXTERNAL_TLS_KEYS.into_iter().filter(|k| !keys.iter().any(|have| have == k)).collect();
        if !missing.is_empty() {
            return Err(HostError::NotFound(format!(
                "the external etcd's client Secret {namespace}/{secret} lacks the keys {} (it needs {}); nothing was applied",
                missing.join(", "),
                EXTERNAL_TLS_KEYS.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::first_address;

    #[test]
    fn the_first_address_of_a_range() {
        assert_eq!(first_address("10.96.0.0/12"), Some("10.96.0.1".parse().expect("an address")));
        assert_eq!(
            first_address("fd00:10:96::/112"),
            Some("fd00:10:96::1".parse().expect("an address"))
        );
        assert_eq!(first_address("not a range"), None);
    }
}
