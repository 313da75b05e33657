//! The exposed endpoint of a virtual cluster: where its Service or Ingress is reachable from
//! outside the host, as the host reports it, and whether the host can serve an Ingress at all.
//! Reads only.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::Api;
use kube::api::ListParams;

use crate::spec::{ExposeKind, ExposeSpec};

use super::{Host, HostError};

/// Name of the API port on the cluster's Service.
const API_PORT_NAME: &str = "https";

impl Host {
    /// The URL the virtual API server is exposed at, once the host has assigned the address:
    /// the load balancer's ingress address on the Service's port, or the control-plane pod's
    /// node address (`status.hostIP`, which the engine puts in its certificate) on the node
    /// port. `None` while the address is pending. For an Ingress the URL is the spec's host
    /// (its DNS is the user's), given as soon as the Ingress exists.
    pub async fn exposed_url(
        &self,
        namespace: &str,
        name: &str,
        expose: &ExposeSpec,
    ) -> Result<Option<String>, HostError> {
        let kind = expose.kind;
        if kind == ExposeKind::Ingress {
            self.ingress(namespace, name).await?;
            return Ok(expose.ingress_url());
        }
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
            ExposeKind::Ingress => (None, None),
        };
        Ok(match (address.filter(|a| !a.is_empty()), port) {
            (Some(address), Some(port)) => Some(url_of(&address, port)),
            _ => None,
        })
    }

    async fn ingress(&self, namespace: &str, name: &str) -> Result<Ingress, HostError> {
        let ingresses: Api<Ingress> = Api::namespaced(self.client.clone(), namespace);
        ingresses
            .get_opt(name)
            .await
            .map_err(|e| self.explain("reading the cluster's Ingress", e))?
            .ok_or_else(|| {
                HostError::NotFound(format!(
                    "the Ingress {name:?} of virtual cluster {name:?} is missing in namespace {namespace:?}"
                ))
            })
    }

    /// The address the ingress controller published for the cluster's Ingress (its
    /// `status.loadBalancer`), `None` while it has published none.
    pub async fn ingress_address(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, HostError> {
        let ingress = self.ingress(namespace, name).await?;
        Ok(ingress
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .unwrap_or_default()
            .into_iter()
            .find_map(|i| i.ip.or(i.hostname))
            .filter(|a| !a.is_empty()))
    }

    /// Checks, before anything is applied, that the host serves `networking.k8s.io/v1`
    /// Ingresses (an error otherwise), and says what may keep the Ingress from being served:
    /// no IngressClass at all, the named class missing, or no default class when none is
    /// named. IngressClasses are cluster-scoped: a user who may not list them gets no warning.
    pub async fn ingress_preflight(
        &self,
        class_name: Option<&str>,
    ) -> Result<Option<String>, HostError> {
        let served = match self.client.list_api_group_resources("networking.k8s.io/v1").await {
            Ok(list) => list.resources.iter().any(|r| r.name == "ingresses"),
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => return Err(self.explain("reading the host's networking.k8s.io/v1 API", e)),
        };
        if !served {
            return Err(HostError::Failed(format!(
                "the host (context {:?}) does not serve networking.k8s.io/v1 Ingresses, so --expose ingress cannot work there; use --expose nodeport or loadbalancer",
                self.context
            )));
        }
        let classes: Api<IngressClass> = Api::all(self.client.clone());
        let list = match classes.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => return Ok(None),
            Err(e) => return Err(self.explain("listing the host's IngressClasses", e)),
        };
        Ok(ingress_class_warning(&list, class_name))
    }
}

/// Annotation marking the IngressClass used for Ingresses that name none.
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// What may keep an Ingress of `class_name` (or of no class) from being served, given the
/// host's IngressClasses.
fn ingress_class_warning(classes: &[IngressClass], class_name: Option<&str>) -> Option<String> {
    let names: Vec<&str> = classes.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
    if names.is_empty() {
        return Some(
            "the host has no IngressClass, so no ingress controller may serve the cluster's Ingress (see: kubectl get ingressclass)".to_string(),
        );
    }
    let listed = names.join(", ");
    match class_name {
        Some(class) if !names.contains(&class) => Some(format!(
            "the host has no IngressClass {class:?} (it has: {listed}); the Ingress stays unserved until one exists"
        )),
        Some(_) => None,
        None => {
            let has_default = classes.iter().any(|c| {
                c.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    == Some(&"true".to_string())
            });
            (!has_default).then(|| format!(
                "the host has no default IngressClass; name one with --ingress-class (it has: {listed})"
            ))
        }
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
    use k8s_openapi::api::networking::v1::IngressClass;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn class(name: &str, default: bool) -> IngressClass {
        let annotations = default
            .then(|| [(super::DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())].into());
        IngressClass {
            metadata: ObjectMeta { name: Some(name.into()), annotations, ..Default::default() },
            spec: None,
        }
    }

    #[test]
    fn ingress_class_warnings() {
        let warn = super::ingress_class_warning;
        assert!(warn(&[], None).unwrap().contains("has no IngressClass"));
        assert!(warn(&[], Some("nginx")).unwrap().contains("has no IngressClass"));
        let classes = [class("nginx", false), class("traefik", true)];
        assert_eq!(warn(&classes, None), None);
        assert_eq!(warn(&classes, Some("nginx")), None);
        let missing = warn(&classes, Some("haproxy")).unwrap();
        assert!(missing.contains("\"haproxy\" (it has: nginx, traefik)"), "{missing}");
        let no_default = warn(&[class("nginx", false)], None).unwrap();
        assert!(no_default.contains("no default IngressClass"), "{no_default}");
    }

    #[test]
    fn urls() {
        assert_eq!(super::url_of("172.18.0.2", 31443), "https://172.18.0.2:31443");
        assert_eq!(super::url_of("fd00::2", 443), "https://[fd00::2]:443");
        assert_eq!(super::url_of("lb.example.com", 443), "https://lb.example.com:443");
    }
}
