//! The exposed endpoint of a virtual cluster: where its Service is reachable from outside the
//! host, as the host reports it. Reads only.

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;

use crate::spec::ExposeKind;

use super::{Host, HostError};

/// Name of the API port on the cluster's Service.
const API_PORT_NAME: &str = "https";

impl Host {
    /// The URL the virtual API server is exposed at, once the host has assigned the address:
    /// the load balancer's ingress address on the Service's port, or the control-plane pod's
    /// node address (`status.hostIP`, which the engine puts in its certificate) on the node
    /// port. `None` while the address is pending.
    pub async fn exposed_url(
        &self,
        namespace: &str,
        name: &str,
        kind: ExposeKind,
    ) -> Result<Option<String>, HostError> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let service = services
            .get_opt(name)
            .await
            .map_err(|e| self.explain("reading the cluster's Service", e))?
            .ok_or_else(|| {
                HostError::NotFound(format!(
                    "the Service {name:?} of virtual cluster {name:?} is missing in namespace {namespace:?}"
                ))
            })?;
        let spec = service.spec.unwrap_or_default();
        let port = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.name.as_deref() == Some(API_PORT_NAME));
        let Some(port) = port else { return Ok(None) };
        let (address, port) = match kind {
            ExposeKind::LoadBalancer => {
                let ingress = service
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|l| l.ingress)
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|i| i.ip.or(i.hostname));
                (ingress, Some(port.port))
            }
            ExposeKind::NodePort => {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                let pod = pods
                    .get_opt(&format!("{name}-0"))
                    .await
                    .map_err(|e| self.explain("reading the control-plane pod", e))?;
                let host_ip = pod.and_then(|p| p.status).and_then(|s| s.host_ip);
                (host_ip, port.node_port)
            }
        };
        Ok(match (address.filter(|a| !a.is_empty()), port) {
            (Some(address), Some(port)) => Some(url_of(&address, port)),
            _ => None,
        })
    }
}

/// `https://ADDRESS:PORT`, with an IPv6 address in brackets.
fn url_of(address: &str, port: i32) -> String {
    if address.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("https://[{address}]:{port}")
    } else {
        format!("https://{address}:{port}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls() {
        assert_eq!(super::url_of("172.18.0.2", 31443), "https://172.18.0.2:31443");
        assert_eq!(super::url_of("fd00::2", 443), "https://[fd00::2]:443");
        assert_eq!(super::url_of("lb.example.com", 443), "https://lb.example.com:443");
    }
}
