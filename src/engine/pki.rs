//! The engine's certificate Secret `<name>-certs`, rendered the way the engine v0.36.1 writes it
//! (`pkg/certs`, which drives kubeadm's `CreatePKIAssets` and kubeconfig phases), so that the
//! engine finds valid certificates at its start and downloads them instead of generating them.
//!
//! Pure: the keys, the serial numbers and the time come in from the caller. What the engine
//! would do, per file:
//!
//! - three CAs (`ca`, `front-proxy-ca`, `etcd/ca`): self-signed, CN `kubernetes`,
//!   `front-proxy-ca`, `etcd-ca` (each also its own DNS name), valid from 5 minutes before the
//!   start for 10 years, key usages digital signature, key encipherment and certificate signing;
//! - the leaf certificates: valid from 5 minutes before the start for 365 days, key usages
//!   digital signature and key encipherment, the extended usage and names below;
//! - `server-ca` and `client-ca` are copies of `ca`; the three kubeconfigs carry a client
//!   certificate of their own signed by `ca` and trust `ca`;
//! - `sa.key` and `sa.pub`, the service-account signing key pair.
//!
//! The engine keeps a Secret it finds unless a leaf certificate expires within 90 days; then it
//! renews the leaves in place with the same CAs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, SignatureAlgorithm,
};

use super::objects::object_meta;
use super::{APP_VCLUSTER, LABEL_APP, certs_secret_name, common_labels};

/// Label the engine puts on its certificate Secret, naming the virtual cluster.
pub const LABEL_VCLUSTER_NAME: &str = "vcluster-name";

/// The key slots, in the order [`PkiSeed::keys`] holds them: one per certificate (the first
/// [`CERTIFICATES`]), then the service-account key.
pub const KEY_SLOTS: [&str; 14] = [
    "ca",
    "front-proxy-ca",
    "etcd-ca",
    "apiserver",
    "apiserver-kubelet-client",
    "front-proxy-client",
    "etcd-server",
    "etcd-peer",
    "etcd-healthcheck-client",
    "apiserver-etcd-client",
    "admin",
    "controller-manager",
    "scheduler",
    "sa",
];

/// Number of certificates, each with a serial number of its own.
pub const CERTIFICATES: usize = 13;

/// Every key of the engine's Secret (`certMap` in `pkg/certs/constants.go`); `etcd/` files are
/// stored with a `-` instead of the `/`.
pub const SECRET_KEYS: [&str; 29] = [
    "admin.conf",
    "apiserver-etcd-client.crt",
    "apiserver-etcd-client.key",
    "apiserver-kubelet-client.crt",
    "apiserver-kubelet-client.key",
    "apiserver.crt",
    "apiserver.key",
    "ca.crt",
    "ca.key",
    "client-ca.crt",
    "client-ca.key",
    "controller-manager.conf",
    "etcd-ca.crt",
    "etcd-ca.key",
    "etcd-healthcheck-client.crt",
    "etcd-healthcheck-client.key",
    "etcd-peer.crt",
    "etcd-peer.key",
    "etcd-server.crt",
    "etcd-server.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "front-proxy-client.crt",
    "front-proxy-client.key",
    "sa.key",
    "sa.pub",
    "scheduler.conf",
    "server-ca.crt",
    "server-ca.key",
];

/// The API server's address inside the pod, in every kubeconfig and in its certificate.
pub const API_SERVER_URL: &str = "https://127.0.0.1:6443";

/// kubeadm backdates every certificate by this much to allow small clock jumps.
const BACKDATE: SignedDuration = SignedDuration::from_mins(5);
/// Lifetime of a CA (kubeadm's `CACertificateValidityPeriod`).
const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 365 * 10);
/// Lifetime of a leaf certificate (kubeadm's `CertificateValidityPeriod`).
const LEAF_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 365);

/// What the certificates are for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiTarget {
    /// The virtual cluster's name (the engine's node name).
    pub name: String,
    /// The host namespace.
    pub namespace: String,
    /// The virtual cluster's DNS domain (`networking.advanced.clusterDomain`).
    pub cluster_domain: String,
    /// The first address of the host's service range, the `kubernetes` Service's address.
    pub service_ip: IpAddr,
    /// `controlPlane.proxy.extraSANs`: the engine adds them to the etcd certificates.
    pub extra_sans: Vec<String>,
}

/// The random material and the clock reading, drawn by the caller.
pub struct PkiSeed {
    /// Private keys as PKCS#8 DER, one per entry of [`KEY_SLOTS`] in that order: RSA 2048 as
    /// the engine generates them (ECDSA P-256 is accepted too).
    pub keys: Vec<Vec<u8>>,
    /// Serial numbers of the certificates, in [1, 2^63), one per certificate slot.
    pub serials: Vec<u64>,
    /// The start time; every certificate is valid from 5 minutes before.
    pub now: Timestamp,
}

/// Key material that cannot make the Secret.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("expected {expected} {what}, got {got}")]
    Count { what: &'static str, expected: usize, got: usize },
    #[error("the {slot} key is neither an RSA nor an ECDSA P-256 PKCS#8 key")]
    Key { slot: &'static str },
    #[error("serial number of the {slot} certificate is out of range")]
    Serial { slot: &'static str },
    #[error("the {slot} certificate: {source}")]
    Certificate { slot: &'static str, source: rcgen::Error },
    #[error("the start time is out of range")]
    Time,
}

/// One certificate the engine writes.
struct Profile {
    slot: usize,
    file: &'static str,
    common_name: String,
    organization: Option<&'static str>,
    /// Index of the issuing CA's slot; `None` for a CA.
    issuer: Option<usize>,
    usages: &'static [ExtendedKeyUsagePurpose],
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

const SERVER: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ServerAuth];
const CLIENT: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ClientAuth];
const SERVER_CLIENT: &[ExtendedKeyUsagePurpose] =
    &[ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];

const CA: usize = 0;
const FRONT_PROXY_CA: usize = 1;
const ETCD_CA: usize = 2;
const ADMIN: usize = 10;
const SERVICE_ACCOUNT: usize = 13;

/// The names `GetEtcdExtraSANs` (`pkg/certs/ensure.go`) adds to the etcd server and peer
/// certificates outside standalone mode.
pub fn etcd_extra_sans(target: &PkiTarget) -> Vec<String> {
    let (name, namespace, domain) = (&target.name, &target.namespace, &target.cluster_domain);
    let etcd = format!("{name}-etcd");
    let mut sans = vec![
        "localhost".to_string(),
        etcd.clone(),
        format!("{etcd}-headless"),
        format!("{etcd}.{namespace}"),
        format!("{etcd}.{namespace}.svc"),
    ];
    for service in [name, &etcd] {
        sans.push(format!("*.{service}-headless"));
        sans.push(format!("*.{service}-headless.{namespace}"));
        sans.push(format!("*.{service}-headless.{namespace}.svc"));
        sans.push(format!("*.{service}-headless.{namespace}.svc.{domain}"));
    }
    for i in 0..5 {
        for service in [name, &etcd] {
            let host = format!("{service}-{i}");
            sans.push(format!("{host}.{service}-headless"));
            sans.push(format!("{host}.{service}-headless.{namespace}"));
            sans.push(host);
        }
    }
    sans.extend(target.extra_sans.iter().cloned());
    sans
}

/// Splits SANs the way kubeadm does: addresses, then DNS names; kubeadm drops what is neither
/// (the engine's own names always qualify), sorts and deduplicates the names and deduplicates
/// the addresses keeping their order.
fn alt_names(
    dns: Vec<String>,
    mut ips: Vec<IpAddr>,
    extra: &[String],
) -> (Vec<String>, Vec<IpAddr>) {
    let mut names = dns;
    for san in extra {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) if dns_name_or_wildcard(san) => names.push(san.clone()),
            Err(_) => {}
        }
    }
    names.sort();
    names.dedup();
    let mut seen = Vec::new();
    ips.retain(|ip| {
        let fresh = !seen.contains(ip);
        seen.push(*ip);
        fresh
    });
    (names, ips)
}

/// An RFC 1123 subdomain, or one with a leading `*.`.
fn dns_name_or_wildcard(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn profiles(target: &PkiTarget) -> Vec<Profile> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let ca = |slot, file, cn: &str| Profile {
        slot,
        file,
        common_name: cn.to_string(),
        organization: None,
        issuer: None,
        usages: &[],
        dns: vec![cn.to_string()],
        ips: Vec::new(),
    };
    let leaf = |slot, file, cn: &str, issuer, usages| Profile {
        slot,
        file,
        common_name: cn.to_string(),
        organization: None,
        issuer: Some(issuer),
        usages,
        dns: Vec::new(),
        ips: Vec::new(),
    };
    let name = target.name.clone();
    let domain = &target.cluster_domain;
    let (api_dns, api_ips) = alt_names(
        vec![
            name.clone(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            format!("kubernetes.default.svc.{domain}"),
        ],
        // The first service address, the advertise address and the control-plane endpoint.
        vec![target.service_ip, loopback, loopback],
        &[],
    );
    let etcd_extra = etcd_extra_sans(target);
    let (etcd_dns, etcd_ips) = alt_names(
        vec![name.clone(), "localhost".to_string()],
        vec![loopback, loopback, IpAddr::V6(Ipv6Addr::LOCALHOST)],
        &etcd_extra,
    );
    vec![
        ca(CA, "ca", "kubernetes"),
        ca(FRONT_PROXY_CA, "front-proxy-ca", "front-proxy-ca"),
        ca(ETCD_CA, "etcd-ca", "etcd-ca"),
        Profile {
            dns: api_dns,
            ips: api_ips,
            ..leaf(3, "apiserver", "kube-apiserver", CA, SERVER)
        },
        Profile {
            organization: Some("kubeadm:cluster-admins"),
            ..leaf(4, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", CA, CLIENT)
        },
        leaf(5, "front-proxy-client", "front-proxy-client", FRONT_PROXY_CA, CLIENT),
        Profile {
            dns: etcd_dns.clone(),
            ips: etcd_ips.clone(),
            ..leaf(6, "etcd-server", &name, ETCD_CA, SERVER_CLIENT)
        },
        Profile {
            dns: etcd_dns,
            ips: etcd_ips,
            ..leaf(7, "etcd-peer", &name, ETCD_CA, SERVER_CLIENT)
        },
        leaf(8, "etcd-healthcheck-client", "kube-etcd-healthcheck-client", ETCD_CA, CLIENT),
        leaf(9, "apiserver-etcd-client", "kube-apiserver-etcd-client", ETCD_CA, CLIENT),
        Profile {
            organization: Some("system:masters"),
            ..leaf(ADMIN, "admin.conf", "kubernetes-super-admin", CA, CLIENT)
        },
        leaf(11, "controller-manager.conf", "system:kube-controller-manager", CA, CLIENT),
        leaf(12, "scheduler.conf", "system:kube-scheduler", CA, CLIENT),
    ]
}

fn key_pair(slot: usize, der: &[u8]) -> Result<KeyPair, PkiError> {
    let accepted: [&'static SignatureAlgorithm; 2] =
        [&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_ECDSA_P256_SHA256];
    KeyPair::try_from(der)
        .ok()
        .filter(|key| accepted.contains(&key.algorithm()))
        .ok_or(PkiError::Key { slot: KEY_SLOTS[slot] })
}

fn offset_time(at: Timestamp) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(at.as_second()).map_err(|_| PkiError::Time)
}

fn pem_block(tag: &str, der: Vec<u8>) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A kubeconfig as kubeadm writes it: cluster `kubernetes`, context `<user>@kubernetes`.
fn kubeconfig(user: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    use k8s_openapi::ByteString as B;
    let b64 = |text: &str| serde_json::to_value(B(text.as_bytes().to_vec())).expect("bytes");
    let context = format!("{user}@kubernetes");
    let config = serde_json::json!({
        "apiVersion": "v1",
        "clusters": [{
            "cluster": { "certificate-authority-data": b64(ca_pem), "server": API_SERVER_URL },
            "name": "kubernetes",
        }],
        "contexts": [{ "context": { "cluster": "kubernetes", "user": user }, "name": context }],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{
            "name": user,
            "user": { "client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem) },
        }],
    });
    let mut options = serde_saphyr::SerializerOptions::default();
    // Long base64 data stays one plain scalar, as kubeadm writes it.
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(&config, options).expect("a kubeconfig serializes")
}

/// Every file of the Secret, keyed as the engine stores them.
pub fn render_files(
    target: &PkiTarget,
    seed: &PkiSeed,
) -> Result<BTreeMap<String, Vec<u8>>, PkiError> {
    if seed.keys.len() != KEY_SLOTS.len() {
        return Err(PkiError::Count {
            what: "keys",
            expected: KEY_SLOTS.len(),
            got: seed.keys.len(),
        });
    }
    if seed.serials.len() != CERTIFICATES {
        return Err(PkiError::Count {
            what: "serial numbers",
            expected: CERTIFICATES,
            got: seed.serials.len(),
        });
    }
    let keys = seed
        .keys
        .iter()
        .enumerate()
        .map(|(slot, der)| key_pair(slot, der))
        .collect::<Result<Vec<_>, _>>()?;
    let not_before = offset_time(seed.now - BACKDATE)?;
    let ca_until = offset_time(seed.now + CA_VALIDITY)?;
    let leaf_until = offset_time(seed.now + LEAF_VALIDITY)?;

    let mut files = BTreeMap::new();
    let mut issuers: BTreeMap<usize, (CertificateParams, String)> = BTreeMap::new();
    let key_pem = |slot: usize| pem_block("PRIVATE KEY", seed.keys[slot].clone());
    for profile in profiles(target) {
        let serial = seed.serials[profile.slot];
        if serial == 0 || serial >= 1 << 63 {
            return Err(PkiError::Serial { slot: KEY_SLOTS[profile.slot] });
        }
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from(serial));
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(org) = profile.organization {
            params.distinguished_name.push(DnType::OrganizationName, org);
        }
        params.distinguished_name.push(DnType::CommonName, profile.common_name.as_str());
        params.not_before = not_before;
        params.not_after = if profile.issuer.is_some() { leaf_until } else { ca_until };
        params.key_usages =
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = profile.usages.to_vec();
        params.subject_alt_names = profile
            .dns
            .iter()
            .map(|name| {
                name.as_str().try_into().map(SanType::DnsName).map_err(|source| {
                    PkiError::Certificate { slot: KEY_SLOTS[profile.slot], source }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        params.subject_alt_names.extend(profile.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let key = &keys[profile.slot];
        let certificate = match profile.issuer {
            None => {
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages.push(KeyUsagePurpose::KeyCertSign);
                params.self_signed(key)
            }
            Some(issuer) => {
                params.is_ca = IsCa::ExplicitNoCa;
                params.use_authority_key_identifier_extension = true;
                let (issuer_params, _) = &issuers[&issuer];
                params.signed_by(key, &Issuer::from_params(issuer_params, &keys[issuer]))
            }
        }
        .map_err(|source| PkiError::Certificate { slot: KEY_SLOTS[profile.slot], source })?;
        let cert_pem = certificate.pem();
        if profile.file.ends_with(".conf") {
            let (_, ca_pem) = &issuers[&CA];
            let user = profile.common_name.as_str();
            files.insert(
                profile.file.to_string(),
                kubeconfig(user, ca_pem, &cert_pem, &key_pem(profile.slot)).into_bytes(),
            );
        } else {
            files.insert(format!("{}.crt", profile.file), cert_pem.clone().into_bytes());
            files.insert(format!("{}.key", profile.file), key_pem(profile.slot).into_bytes());
        }
        if profile.issuer.is_none() {
            issuers.insert(profile.slot, (params, cert_pem));
        }
    }
    for copy in ["server-ca", "client-ca"] {
        files.insert(format!("{copy}.crt"), files["ca.crt"].clone());
        files.insert(format!("{copy}.key"), files["ca.key"].clone());
    }
    let service_account = &keys[SERVICE_ACCOUNT];
    files.insert("sa.key".to_string(), key_pem(SERVICE_ACCOUNT).into_bytes());
    files.insert(
        "sa.pub".to_string(),
        pem_block("PUBLIC KEY", rcgen::PublicKeyData::subject_public_key_info(service_account))
            .into_bytes(),
    );
    Ok(files)
}

/// The Secret `<name>-certs` with every file, labelled as the engine labels it (and as `vc`
/// labels its own objects, so that deleting the cluster finds it).
pub fn render_certs_secret(target: &PkiTarget, seed: &PkiSeed) -> Result<Secret, PkiError> {
    let files = render_files(target, seed)?;
    let mut labels = common_labels(&target.name);
    labels.insert(LABEL_APP.to_string(), APP_VCLUSTER.to_string());
    labels.insert(LABEL_VCLUSTER_NAME.to_string(), target.name.clone());
    Ok(Secret {
        metadata: object_meta(
            &certs_secret_name(&target.name),
            &target.namespace,
            labels,
            BTreeMap::new(),
        ),
        type_: Some("Opaque".to_string()),
        data: Some(files.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Default::default()
    })
}

/// What the certificates of this spec and placement are for, given the first address of the
/// host's service range; the names come from the engine configuration `vc` writes.
pub fn target_for(
    spec: &crate::spec::VirtualClusterSpec,
    placement: &super::Placement,
    service_ip: IpAddr,
) -> Result<PkiTarget, super::EngineError> {
    let engine = super::engine_config(spec, placement)?;
    let config = &engine.typed;
    Ok(PkiTarget {
        name: placement.name.clone(),
        namespace: placement.namespace.clone(),
        cluster_domain: config
            .networking
            .as_ref()
            .and_then(|n| n.advanced.as_ref())
            .and_then(|a| a.cluster_domain.clone())
            .unwrap_or_else(|| "cluster.local".to_string()),
        service_ip,
        extra_sans: config
            .control_plane
            .as_ref()
            .and_then(|c| c.proxy.as_ref())
            .and_then(|p| p.extra_sans.clone())
            .unwrap_or_default(),
    })
}
