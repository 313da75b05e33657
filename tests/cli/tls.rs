//! A stand-in for a virtual cluster's API server: a test CA with server and client
//! certificates, and a TLS listener that proxies plaintext to a second fake API server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fakekube::FakeKube;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

/// The engine's certificates, made fresh for each test: a CA, a server certificate for
/// `localhost` and `127.0.0.1` (as the real engine's), and an admin client certificate.
pub struct Pki {
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Pki {
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(DnType::CommonName, "vc test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        server_params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).expect("server cert");

        let client_key = KeyPair::generate().expect("client key");
        let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        client_params.distinguished_name.push(DnType::CommonName, "admin");
        client_params.distinguished_name.push(DnType::OrganizationName, "system:masters");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).expect("client cert");

        Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            server_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// The engine's admin kubeconfig: server `https://localhost:8443`, this CA, the client
    /// certificate.
    pub fn admin_kubeconfig(&self) -> String {
        let b64 = |s: &str| STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: my-vcluster\n  cluster:\n    server: https://localhost:8443\n    certificate-authority-data: {}\ncontexts:\n- name: my-vcluster\n  context:\n    cluster: my-vcluster\n    user: my-vcluster\ncurrent-context: my-vcluster\nusers:\n- name: my-vcluster\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\npreferences: {{}}\n",
            b64(&self.ca_pem),
            b64(&self.client_cert_pem),
            b64(&self.client_key_pem),
        )
    }

    /// The `admin.conf` of the engine's certificate Secret: the API server's own address
    /// inside the pod, the super-admin user, this CA and the client certificate.
    pub fn admin_conf(&self) -> String {
        let b64 = |s: &str| STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-super-admin\n  name: kubernetes-super-admin@kubernetes\ncurrent-context: kubernetes-super-admin@kubernetes\nkind: Config\nusers:\n- name: kubernetes-super-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&self.ca_pem),
            b64(&self.client_cert_pem),
            b64(&self.client_key_pem),
        )
    }

    /// The engine's Secret `vc-<name>` in `namespace` holding [`Pki::admin_kubeconfig`].
    pub fn engine_secret(&self, namespace: &str, name: &str) -> Value {
        let b64 = |s: &str| STANDARD.encode(s.as_bytes());
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("vc-{name}"), "namespace": namespace},
            "type": "Opaque",
            "data": {
                "config": b64(&self.admin_kubeconfig()),
                "certificate-authority": b64(&self.ca_pem),
                "client-certificate": b64(&self.client_cert_pem),
                "client-key": b64(&self.client_key_pem),
            },
        })
    }

    fn server_config(&self) -> ServerConfig {
        let provider = Arc::new(crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("CA into root store");
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .expect("client verifier");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server_der.clone()], key)
            .expect("server certificate")
    }
}

/// The virtual cluster's API server: TLS with the [`Pki`]'s server certificate on a loopback
/// port, each connection proxied in plaintext to `inner`, a fake of its own. Dropping it
/// stops both.
pub struct VirtualApi {
    pub inner: FakeKube,
    pub pki: Pki,
    addr: SocketAddr,
    client_certs: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl VirtualApi {
    /// Starts it with a namespace `marker` in `inner`, so a listing shows which cluster answered.
    pub fn start(marker: &str) -> Self {
        Self::start_at(marker, "127.0.0.1:0")
    }

    /// Starts it listening on `address` (a node port, say).
    pub fn start_at(marker: &str, address: &str) -> Self {
        let inner = FakeKube::builder().start();
        inner
            .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": marker}}))
            .expect("marker namespace");
        let pki = Pki::generate();
        let acceptor = TlsAcceptor::from(Arc::new(pki.server_config()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime.block_on(TcpListener::bind(address)).expect("bind the TLS listener");
        let addr = listener.local_addr().expect("listener address");
        let upstream = inner.addr();
        let client_certs = Arc::new(AtomicUsize::new(0));
        let counter = client_certs.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else { return };
                    if tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty()) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    let Ok(mut plain) = TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self { inner, pki, addr, client_certs, runtime: Some(runtime) }
    }

    /// Where the TLS listener is: the port-forward target of the control-plane pod.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many TLS handshakes presented a client certificate (the CA verified it).
    pub fn client_cert_handshakes(&self) -> usize {
        self.client_certs.load(Ordering::SeqCst)
    }
}

impl Drop for VirtualApi {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
