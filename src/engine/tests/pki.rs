//! Tests of the pre-generated certificate Secret: every file the engine v0.36.1 expects, and
//! every certificate parsed back (names, usages, issuer chain, validity).

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

use super::super::pki::{
    CERTIFICATES, KEY_SLOTS, PkiError, PkiSeed, PkiTarget, SECRET_KEYS, etcd_extra_sans,
    render_certs_secret, render_files,
};

const NOW: &str = "2026-03-04T05:06:07Z";
/// A key made for these tests only.
const TEST_RSA_KEY: &str = include_str!("test-rsa-2048.pem");

fn target() -> PkiTarget {
    PkiTarget {
        name: "dev".to_string(),
        namespace: "vc-dev".to_string(),
        cluster_domain: "cluster.local".to_string(),
        service_ip: "10.96.0.1".parse().expect("an address"),
        extra_sans: vec!["dev.example.com".to_string(), "192.0.2.7".to_string()],
    }
}

/// Distinct ECDSA keys (quick to make), one per slot.
fn seed() -> PkiSeed {
    PkiSeed {
        keys: KEY_SLOTS
            .iter()
            .map(|_| rcgen::KeyPair::generate().expect("a key").serialize_der())
            .collect(),
        serials: (1..=CERTIFICATES as u64).map(|n| n * 0x0123_4567_89ab).collect(),
        now: NOW.parse().expect("a timestamp"),
    }
}

fn rsa_seed() -> PkiSeed {
    let der = pem::parse(TEST_RSA_KEY).expect("the test key is PEM").into_contents();
    PkiSeed { keys: vec![der; KEY_SLOTS.len()], ..seed() }
}

/// A certificate file's only certificate, as DER.
fn der_of(files: &BTreeMap<String, Vec<u8>>, key: &str) -> Vec<u8> {
    let (rest, pem) = parse_x509_pem(&files[key]).unwrap_or_else(|e| panic!("{key}: {e}"));
    assert!(rest.is_empty(), "{key} holds one certificate");
    assert_eq!(pem.label, "CERTIFICATE");
    pem.contents
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).expect("a certificate");
    assert!(rest.is_empty());
    cert
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject().iter_common_name().next().expect("a CN").as_str().expect("text").to_string()
}

fn organizations(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject().iter_organization().map(|o| o.as_str().expect("text").to_string()).collect()
}

fn sans(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Some(ext) = cert.subject_alternative_name().expect("one SAN extension at most") {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns.push(n.to_string()),
                GeneralName::IPAddress(b) => ips.push(match b.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes")),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes")),
                }),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
    }
    (dns, ips)
}

/// Extended usages as (server, client).
fn usages(cert: &X509Certificate<'_>) -> (bool, bool) {
    let eku = cert.extended_key_usage().expect("one EKU extension at most");
    eku.map(|e| (e.value.server_auth, e.value.client_auth)).unwrap_or_default()
}

/// The client certificate, key and CA of a kubeconfig the engine wrote.
fn kubeconfig_parts(text: &[u8]) -> (String, Vec<u8>, Vec<u8>, Vec<u8>) {
    let lines = String::from_utf8(text.to_vec()).expect("text");
    for key in ["certificate-authority-data", "client-certificate-data", "client-key-data"] {
        assert!(lines.contains(&format!("{key}: LS0t")), "{key} is one plain scalar:\n{lines}");
    }
    let config: serde_json::Value = serde_saphyr::from_slice(text).expect("a kubeconfig");
    let b64 = |v: &serde_json::Value| -> Vec<u8> {
        serde_json::from_value::<k8s_openapi::ByteString>(v.clone()).expect("base64").0
    };
    let cluster = &config["clusters"][0];
    assert_eq!(cluster["name"], "kubernetes");
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:6443");
    let user = &config["users"][0];
    let name = user["name"].as_str().expect("a user").to_string();
    assert_eq!(config["contexts"][0]["name"], format!("{name}@kubernetes"));
    assert_eq!(config["current-context"], format!("{name}@kubernetes"));
    assert_eq!(config["contexts"][0]["context"]["user"], name.as_str());
    (
        name,
        b64(&user["user"]["client-certificate-data"]),
        b64(&user["user"]["client-key-data"]),
        b64(&cluster["cluster"]["certificate-authority-data"]),
    )
}

struct Expected {
    cn: &'static str,
    orgs: &'static [&'static str],
    issuer: &'static str,
    server: bool,
    client: bool,
}

const fn leaf(cn: &'static str, issuer: &'static str, server: bool, client: bool) -> Expected {
    Expected { cn, orgs: &[], issuer, server, client }
}

fn expected() -> BTreeMap<&'static str, Expected> {
    BTreeMap::from([
        ("apiserver.crt", leaf("kube-apiserver", "ca.crt", true, false)),
        (
            "apiserver-kubelet-client.crt",
            Expected {
                orgs: &["kubeadm:cluster-admins"],
                ..leaf("kube-apiserver-kubelet-client", "ca.crt", false, true)
            },
        ),
        ("front-proxy-client.crt", leaf("front-proxy-client", "front-proxy-ca.crt", false, true)),
        ("etcd-server.crt", leaf("dev", "etcd-ca.crt", true, true)),
        ("etcd-peer.crt", leaf("dev", "etcd-ca.crt", true, true)),
        (
            "etcd-healthcheck-client.crt",
            leaf("kube-etcd-healthcheck-client", "etcd-ca.crt", false, true),
        ),
        (
            "apiserver-etcd-client.crt",
            leaf("kube-apiserver-etcd-client", "etcd-ca.crt", false, true),
        ),
    ])
}

fn check_validity(cert: &X509Certificate<'_>, is_ca: bool, what: &str) {
    let now: Timestamp = NOW.parse().expect("a timestamp");
    let from = cert.validity().not_before.timestamp();
    let until = cert.validity().not_after.timestamp();
    assert_eq!(from, now.as_second() - 5 * 60, "{what}: backdated 5 minutes");
    let days = if is_ca { 365 * 10 } else { 365 };
    assert_eq!(until, now.as_second() + days * 24 * 3600, "{what}: lifetime");
}

fn check_key_usage(cert: &X509Certificate<'_>, is_ca: bool, what: &str) {
    let usage = cert.key_usage().expect("one key usage").expect("key usage present").value;
    assert!(usage.digital_signature() && usage.key_encipherment(), "{what}: {usage}");
    assert_eq!(usage.key_cert_sign(), is_ca, "{what}: {usage}");
    let basic = cert.basic_constraints().expect("one").expect("basic constraints present");
    assert_eq!(basic.value.ca, is_ca, "{what}");
}

fn check_all(files: &BTreeMap<String, Vec<u8>>) {
    let keys: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(keys, SECRET_KEYS, "exactly the engine's files");
    assert!(files.values().all(|v| !v.is_empty()), "the engine refuses an empty file");

    let cas: BTreeMap<&str, Vec<u8>> = ["ca.crt", "front-proxy-ca.crt", "etcd-ca.crt"]
        .into_iter()
        .map(|k| (k, der_of(files, k)))
        .collect();
    for (file, cn) in [
        ("ca.crt", "kubernetes"),
        ("front-proxy-ca.crt", "front-proxy-ca"),
        ("etcd-ca.crt", "etcd-ca"),
    ] {
        let ca = parse(&cas[file]);
        assert_eq!(common_name(&ca), cn);
        assert_eq!(ca.subject(), ca.issuer(), "{file} is self-signed");
        ca.verify_signature(None).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(sans(&ca), (vec![cn.to_string()], vec![]), "kubeadm names a CA by its CN");
        check_validity(&ca, true, file);
        check_key_usage(&ca, true, file);
    }
    for copy in ["server-ca", "client-ca"] {
        assert_eq!(files[&format!("{copy}.crt")], files["ca.crt"]);
        assert_eq!(files[&format!("{copy}.key")], files["ca.key"]);
    }

    let mut serials = Vec::new();
    for (file, want) in expected() {
        let der = der_of(files, file);
        let cert = parse(&der);
        let issuer = parse(&cas[want.issuer]);
        assert_eq!(common_name(&cert), want.cn, "{file}");
        assert_eq!(organizations(&cert), want.orgs, "{file}");
        assert_eq!(cert.issuer(), issuer.subject(), "{file} names its CA");
        cert.verify_signature(Some(issuer.public_key()))
            .unwrap_or_else(|e| panic!("{file} is signed by {}: {e}", want.issuer));
        assert_eq!(usages(&cert), (want.server, want.client), "{file}");
        check_validity(&cert, false, file);
        check_key_usage(&cert, false, file);
        let key = file.replace(".crt", ".key");
        assert!(files[&key].starts_with(b"-----BEGIN PRIVATE KEY-----"), "{key}");
        serials.push(cert.raw_serial().to_vec());
    }

    let (dns, ips) = sans(&parse(&der_of(files, "apiserver.crt")));
    assert_eq!(
        dns,
        [
            "dev",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"
        ]
    );
    let service: IpAddr = "10.96.0.1".parse().expect("an address");
    assert_eq!(ips, [service, "127.0.0.1".parse().expect("an address")]);
    for file in ["etcd-server.crt", "etcd-peer.crt"] {
        let (dns, ips) = sans(&parse(&der_of(files, file)));
        let mut want: Vec<String> = etcd_extra_sans(&target())
            .into_iter()
            .filter(|s| s.parse::<IpAddr>().is_err())
            .chain(["dev".to_string(), "localhost".to_string()])
            .collect();
        want.sort();
        want.dedup();
        assert_eq!(dns, want, "{file}");
        assert!(dns.contains(&"*.dev-headless.vc-dev.svc.cluster.local".to_string()));
        assert!(dns.contains(&"dev-0.dev-headless.vc-dev".to_string()));
        assert!(dns.contains(&"dev.example.com".to_string()));
        let want_ips: Vec<IpAddr> = ["127.0.0.1", "::1", "192.0.2.7"]
            .iter()
            .map(|s| s.parse().expect("an address"))
            .collect();
        assert_eq!(ips, want_ips, "{file}");
    }

    for (file, user, orgs) in [
        ("admin.conf", "kubernetes-super-admin", &["system:masters"][..]),
        ("controller-manager.conf", "system:kube-controller-manager", &[][..]),
        ("scheduler.conf", "system:kube-scheduler", &[][..]),
    ] {
        let (name, cert_pem, key_pem, ca_pem) = kubeconfig_parts(&files[file]);
        assert_eq!(name, user, "{file}");
        assert_eq!(ca_pem, files["ca.crt"], "{file} trusts ca.crt");
        assert!(key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----"), "{file}");
        let (_, pem) = parse_x509_pem(&cert_pem).expect("a PEM certificate");
        let cert = parse(&pem.contents);
        assert_eq!(common_name(&cert), user, "{file}");
        assert_eq!(organizations(&cert), orgs, "{file}");
        cert.verify_signature(Some(parse(&cas["ca.crt"]).public_key()))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(usages(&cert), (false, true), "{file}");
        check_validity(&cert, false, file);
        serials.push(cert.raw_serial().to_vec());
    }
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), CERTIFICATES - 3, "every leaf has its own serial number");

    let sa_key = pem::parse(&files["sa.key"]).expect("sa.key is PEM");
    let sa_pub = pem::parse(&files["sa.pub"]).expect("sa.pub is PEM");
    assert_eq!((sa_key.tag(), sa_pub.tag()), ("PRIVATE KEY", "PUBLIC KEY"));
    let (_, spki) =
        <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(
            sa_pub.contents(),
        )
        .expect("sa.pub is a public key");
    let pair = rcgen::KeyPair::try_from(sa_key.contents()).expect("sa.key is a key");
    assert_eq!(spki.raw, rcgen::PublicKeyData::subject_public_key_info(&pair), "a pair");
}

#[test]
fn every_file_the_engine_expects_with_ecdsa_keys() {
    check_all(&render_files(&target(), &seed()).expect("the files render"));
}

#[test]
fn every_file_the_engine_expects_with_the_engines_rsa_keys() {
    let files = render_files(&target(), &rsa_seed()).expect("the files render");
    check_all(&files);
    let cert = parse(&der_of(&files, "apiserver.crt")).signature_algorithm.algorithm.to_id_string();
    assert_eq!(cert, "1.2.840.113549.1.1.11", "sha256WithRSAEncryption, as Go signs with RSA");
}

#[test]
fn the_secret_is_named_and_labelled_as_the_engine_writes_it() {
    let secret = render_certs_secret(&target(), &seed()).expect("the Secret renders");
    assert_eq!(secret.metadata.name.as_deref(), Some("dev-certs"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("vc-dev"));
    let labels = secret.metadata.labels.expect("labels");
    assert_eq!(labels["app"], "vcluster");
    assert_eq!(labels["vcluster-name"], "dev");
    assert_eq!(labels["vc.dev/cluster"], "dev");
    let keys: Vec<String> = secret.data.expect("data").into_keys().collect();
    assert_eq!(keys, SECRET_KEYS);
}

#[test]
fn bad_material_is_refused() {
    let short = PkiSeed { keys: seed().keys[..3].to_vec(), ..seed() };
    assert!(matches!(
        render_files(&target(), &short),
        Err(PkiError::Count { what: "keys", expected: 14, got: 3 })
    ));
    let mut zero = seed();
    zero.serials[4] = 0;
    assert!(matches!(
        render_files(&target(), &zero),
        Err(PkiError::Serial { slot: "apiserver-kubelet-client" })
    ));
    let mut garbage = seed();
    garbage.keys[2] = vec![1, 2, 3];
    assert!(matches!(render_files(&target(), &garbage), Err(PkiError::Key { slot: "etcd-ca" })));
}

#[test]
fn snapshot_of_the_secret_without_its_random_material() {
    let secret = render_certs_secret(&target(), &seed()).expect("the Secret renders");
    let mut json = serde_json::to_value(&secret).expect("JSON");
    for value in json["data"].as_object_mut().expect("data").values_mut() {
        *value = serde_json::Value::String("(random)".to_string());
    }
    insta::assert_json_snapshot!("certs-secret", json);
}

#[test]
fn the_secret_goes_before_the_control_plane_and_is_only_created() {
    let placement = super::placement(true);
    let spec = crate::spec::VirtualClusterSpec::default();
    let mut rendered = super::render(&spec, &placement).expect("the spec renders");
    let service_ip = "10.96.0.1".parse().expect("an address");
    let target = super::super::pki::target_for(&spec, &placement, service_ip).expect("a target");
    assert_eq!(target.cluster_domain, "cluster.local", "the release's default");
    assert!(target.extra_sans.is_empty());
    assert!(rendered.objects.iter().all(|o| !o.engine_owned()), "vc applies all it renders");
    rendered.add_certs(render_certs_secret(&target, &seed()).expect("the Secret renders"));
    let kinds: Vec<(&str, &str)> = rendered.objects.iter().map(|o| (o.kind(), o.name())).collect();
    let at = kinds.iter().position(|k| *k == ("Secret", "dev-certs")).expect("added");
    assert_eq!(kinds[at + 1], ("StatefulSet", "dev"), "right before the StatefulSet: {kinds:?}");
    assert!(rendered.objects[at].engine_owned(), "created once, then the engine's");
}
