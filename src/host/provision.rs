//! What a new cluster's objects need from the host and the machine beyond its spec: the
//! isolation pinned to the host's network facts, and fresh keys for the engine's certificate
//! Secret. Shared by `vc create` and the pool keeper; prints nothing.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::engine::{self, Placement, Rendered};
use crate::spec::VirtualClusterSpec;

use super::{Host, NetworkFacts};

/// Fresh keys (ECDSA P-256, which kubeadm and the engine accept; see docs/engine.md for why
/// not RSA), random serial numbers and the clock, for the engine's certificates.
pub fn pki_seed() -> anyhow::Result<engine::pki::PkiSeed> {
    use ring::rand::SecureRandom as _;
    let keys = engine::pki::KEY_SLOTS
        .iter()
        .map(|_| rcgen::KeyPair::generate().map(|key| key.serialize_der()))
        .collect::<Result<Vec<_>, _>>()?;
    let random = ring::rand::SystemRandom::new();
    let mut serials = Vec::with_capacity(engine::pki::CERTIFICATES);
    while serials.len() < engine::pki::CERTIFICATES {
        let mut bytes = [0u8; 8];
        random.fill(&mut bytes).map_err(|_| anyhow::anyhow!("no random numbers available"))?;
        // kubeadm's range: [1, 2^63).
        let serial = u64::from_be_bytes(bytes) >> 1;
        if serial != 0 && !serials.contains(&serial) {
            serials.push(serial);
        }
    }
    Ok(engine::pki::PkiSeed { keys, serials, now: jiff::Timestamp::now() })
}

/// Records what the host told about its network in the spec, so the policies pin the control
/// plane's egress to the API server's endpoints and keep the host's ranges closed (and every
/// later render of the record does the same). Values given in the values file win. Returns a
/// warning when the endpoints could not be read.
pub fn pin_isolation(spec: &mut VirtualClusterSpec, facts: &NetworkFacts) -> Option<String> {
    if !spec.isolation.enabled {
        return None;
    }
    if spec.isolation.allow_internet {
        for range in &facts.ranges {
            if !spec.isolation.host_ranges.contains(range) {
                spec.isolation.host_ranges.push(range.clone());
            }
        }
    }
    if !spec.isolation.host_api.is_empty() {
        return None;
    }
    match &facts.api_endpoints {
        Some(endpoints) => {
            spec.isolation.host_api = endpoints.iter().map(ToString::to_string).collect();
            None
        }
        None => Some(
            "cannot read the host API server's endpoints (Service kubernetes in namespace default): the control plane may reach any address on ports 443, 6443 and 8443; to pin it, set isolation.hostApi (IP:PORT) in a values file".to_string(),
        ),
    }
}

impl Host {
    /// Renders a new cluster in its own namespace `vc-<name>` the way `vc create` does (the
    /// isolation pinned to this host's network, the engine's certificates made here), with
    /// extra labels on its control-plane workload. Applies nothing.
    pub async fn render_new_cluster(
        &self,
        name: &str,
        spec: &VirtualClusterSpec,
        workload_labels: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> anyhow::Result<Rendered> {
        let mut placement = Placement {
            name: name.to_string(),
            namespace: engine::default_namespace(name),
            own_namespace: true,
            created_at: now,
            host_minor: None,
        };
        let isolation = &spec.isolation;
        let with_ranges = isolation.enabled && isolation.allow_internet;
        let (facts, service_ip) = futures::try_join!(
            self.network_facts(isolation.enabled, with_ranges),
            self.first_service_ip()
        )?;
        placement.host_minor = facts.minor;
        let mut spec = spec.clone();
        // Without the endpoints the policies allow the usual API ports, as `vc create` warns.
        let _ = pin_isolation(&mut spec, &facts);
        let mut rendered = engine::render(&spec, &placement)?;
        if let Some(service_ip) = service_ip {
            let target = engine::pki::target_for(&spec, &placement, service_ip)?;
            rendered.add_certs(engine::pki::render_certs_secret(&target, &pki_seed()?)?);
        }
        for object in &mut rendered.objects {
            if let Some(sts) = object.as_control_plane_mut() {
                let labels = sts.metadata.labels.get_or_insert_with(BTreeMap::new);
                labels.extend(workload_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(rendered)
    }
}
