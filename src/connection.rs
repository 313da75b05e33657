//! Connecting to a virtual cluster: wait for it, read the engine's admin kubeconfig, start the
//! background forwarder and merge a context into the user's kubeconfig, and the reverse.
//! Shared by `create`, `connect`, `disconnect` and `delete`; prints nothing.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::CliError;
use crate::forward::{self, ForwardKey, SpawnOptions};
use crate::host::{Host, HostError, ReadyEvent};
use crate::kubeconfig::{
    self, EntryOutcome, Kubeconfig, KubeconfigPaths, RemovedOutcome, VirtualClusterEntry,
    VirtualClusterRef, VirtualClusterSelector,
};

/// Which virtual cluster, reached through which host.
#[derive(Clone, Debug)]
pub struct Target {
    /// The name users know it by (kubeconfig entries `vc-<name>`, messages).
    pub name: String,
    /// The name of its objects on the host: differs from `name` for a cluster claimed from a
    /// pool.
    pub host_name: String,
    pub namespace: String,
    pub host_context: String,
    pub host_server: String,
}

impl Target {
    pub fn new(host: &Host, namespace: &str, name: &str) -> Self {
        Self {
            name: name.to_string(),
            host_name: name.to_string(),
            namespace: namespace.to_string(),
            host_context: host.context.clone(),
            host_server: host.server.clone(),
        }
    }

    /// The target of a cluster found on the host, claimed from a pool or not.
    pub fn of(host: &Host, record: &crate::host::ClusterRecord) -> Self {
        Self {
            host_name: record.host_name.clone(),
            ..Self::new(host, &record.namespace, &record.name)
        }
    }

    pub fn forward_key(&self) -> ForwardKey {
        ForwardKey::new(&self.host_server, &self.namespace, &self.host_name)
    }

    pub fn cluster_ref(&self) -> VirtualClusterRef {
        VirtualClusterRef {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            host_context: self.host_context.clone(),
            host_server: self.host_server.clone(),
        }
    }

    /// The name vc gives the context of a standalone kubeconfig.
    pub fn context_name(&self) -> String {
        format!("vc-{}", self.name)
    }
}

/// Waits (up to `timeout`) until the cluster is ready (control-plane pod Ready, kubeconfig
/// Secret present) and returns the engine's admin kubeconfig. A ready cluster answers at once.
pub async fn ready_admin_kubeconfig(
    host: &Host,
    target: &Target,
    timeout: Duration,
) -> anyhow::Result<Kubeconfig> {
    let wait = host.wait_ready(&target.namespace, &target.host_name, |_: ReadyEvent| {});
    if tokio::time::timeout(timeout, wait).await.is_err() {
        let why = host.diagnose(&target.namespace, &target.host_name).await;
        return Err(CliError::timeout(format!(
            "virtual cluster {:?} is still starting after {}: {why}",
            target.name,
            crate::output::human_duration(timeout)
        ))
        .into());
    }
    let text =
        host.admin_kubeconfig(&target.namespace, &target.host_name).await?.ok_or_else(|| {
            HostError::NotFound(format!(
                "the kubeconfig Secret of virtual cluster {:?} disappeared",
                target.name
            ))
        })?;
    Ok(kubeconfig::parse_admin_kubeconfig(&text)?)
}

/// How often the race looks for the engine's certificate Secret: it appears a few seconds
/// after the pod starts, once the engine has generated its certificates.
const CERTS_POLL: Duration = Duration::from_millis(200);
/// How long the race waits between two `/readyz` requests through the forward: tens of ms, so
/// the cluster is seen ready within a few tens of ms of its API answering.
const READYZ_POLL: Duration = Duration::from_millis(40);
/// The forward's retries while nothing listens on the pod's port yet: short and flat, for the
/// same reason (the default backoff grows to 2 s).
const RACE_BACKOFF: Duration = Duration::from_millis(40);
/// One request through the forward: enough for a TLS handshake and an answer on a busy host.
const RACE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Races the kubelet to the virtual API server: once the engine's certificate Secret holds
/// its admin kubeconfig, opens one in-process forward to the control-plane pod's port 8443 and
/// polls `/readyz` every few tens of ms with those credentials (TLS verified against the
/// engine's CA), calls `on_api` when it answers `ok`, then asks for `/version`. Returns the
/// admin kubeconfig once both answered: proof that the credentials work through a forward.
/// Runs until it succeeds; an error (the Secret cannot be read, its kubeconfig is unusable)
/// means the race cannot be run and the caller falls back to the kubelet's readiness.
pub async fn race_ready(
    host: &Host,
    target: &Target,
    mut on_api: impl FnMut(),
) -> anyhow::Result<Kubeconfig> {
    let admin = loop {
        if let Some(text) = host.engine_admin_conf(&target.namespace, &target.host_name).await? {
            break kubeconfig::parse_admin_kubeconfig(&text)?;
        }
        tokio::time::sleep(CERTS_POLL).await;
    };
    let (forward, client) = virtual_client(host, target, &admin).await?;
    loop {
        let request = http::Request::get("/readyz").body(Vec::new())?;
        let answer = tokio::time::timeout(RACE_REQUEST_TIMEOUT, client.request_text(request)).await;
        if matches!(answer, Ok(Ok(body)) if body.trim() == "ok") {
            break;
        }
        tokio::time::sleep(READYZ_POLL).await;
    }
    on_api();
    loop {
        let answer = tokio::time::timeout(RACE_REQUEST_TIMEOUT, client.apiserver_version()).await;
        if matches!(answer, Ok(Ok(_))) {
            break;
        }
        tokio::time::sleep(READYZ_POLL).await;
    }
    drop(forward);
    Ok(admin)
}

/// A client of the virtual API server through an in-process forward to the control-plane
/// pod's port 8443 on a throwaway local port, with the admin credentials (TLS verified against
/// the engine's CA). The forward lives as long as the returned handle.
pub async fn virtual_client(
    host: &Host,
    target: &Target,
    admin: &Kubeconfig,
) -> anyhow::Result<(forward::Forward, kube::Client)> {
    let pod = forward::PodTarget::new(
        &target.namespace,
        forward::control_plane_pod(&target.host_name),
        forward::CONTROL_PLANE_PORT,
    );
    let options = forward::ForwardOptions {
        connect_timeout: RACE_REQUEST_TIMEOUT,
        initial_backoff: RACE_BACKOFF,
        max_backoff: RACE_BACKOFF,
        ..Default::default()
    };
    let listener = forward::bind_local(0)?;
    let forward = forward::Forward::from_listener(host.client.clone(), pod, listener, options)?;
    let server_url = local_url(forward.local_port());
    let config = kubeconfig::standalone_kubeconfig(admin, &target.context_name(), &server_url)?;
    let client_config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await?;
    let client = kube::Client::try_from(client_config)?;
    Ok((forward, client))
}

/// What [`connect_background`] set up, or a context at an exposed address (`port` `None`).
#[derive(Clone, Debug)]
pub struct Connected {
    /// The local forward's port; `None` for an exposed endpoint reached without one.
    pub port: Option<u16>,
    pub server_url: String,
    pub entry: EntryOutcome,
}

/// Starts (or reuses) the background forwarder and merges the context into the kubeconfig.
pub async fn connect_background(
    paths: &KubeconfigPaths,
    host_kubeconfig: Option<PathBuf>,
    target: &Target,
    admin: &Kubeconfig,
    local_port: Option<u16>,
    switch: bool,
    ready_timeout: Duration,
) -> anyhow::Result<Connected> {
    let key = target.forward_key();
    let was_running = forward::status(&key).await.ok().flatten().is_some_and(|s| s.answering);
    let port = start_forwarder(host_kubeconfig, target, local_port, ready_timeout).await?;
    let server_url = local_url(port);
    if let Err(e) = verify_server(admin, target, &server_url, ready_timeout).await {
        if !was_running {
            let _ = forward::stop(&key).await;
        }
        return Err(e);
    }
    let entry = VirtualClusterEntry::from_admin_kubeconfig(
        admin,
        target.cluster_ref(),
        &server_url,
        switch,
    );
    let entry = match entry {
        Ok(entry) => kubeconfig::upsert_virtual_cluster_async(paths, &entry).await,
        Err(e) => Err(e),
    };
    match entry {
        Ok(entry) => Ok(Connected { port: Some(port), server_url, entry }),
        Err(e) => {
            // A forward without its kubeconfig entry serves nobody: stop the forwarder this
            // call started (one that was already running stays).
            if !was_running {
                let _ = forward::stop(&key).await;
            }
            Err(e.into())
        }
    }
}

/// Starts (or reuses) the background forwarder; returns its local port.
pub async fn start_forwarder(
    host_kubeconfig: Option<PathBuf>,
    target: &Target,
    local_port: Option<u16>,
    ready_timeout: Duration,
) -> anyhow::Result<u16> {
    let options = SpawnOptions {
        kubeconfig: host_kubeconfig,
        host_context: target.host_context.clone(),
        host_server: target.host_server.clone(),
        namespace: target.namespace.clone(),
        name: target.host_name.clone(),
        local_port,
        // At least a few seconds: the forwarder has to start, reach the pod and answer.
        ready_timeout: ready_timeout.max(Duration::from_secs(5)),
        program: None,
        state_dir: None,
    };
    let status = forward::spawn_background(&options).await?;
    Ok(status.state.port)
}

/// Asks the virtual API server for its version through `server_url`, with the admin
/// credentials and TLS verification on: proof that the forward reaches it.
pub async fn verify_server(
    admin: &Kubeconfig,
    target: &Target,
    server_url: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    probe_server(admin, target, server_url, timeout).await.map_err(|why| {
        anyhow::Error::from(CliError::new(
            crate::error::Exit::Unreachable,
            format!(
                "the forward {server_url} does not reach the API server of virtual cluster {:?}: {why} (see: vc connect {} --logs)",
                target.name, target.name
            ),
        ))
    })
}

/// One `/version` request to `server_url` with the admin credentials, TLS verified; the
/// failure's cause in words.
async fn probe_server(
    admin: &Kubeconfig,
    target: &Target,
    server_url: &str,
    timeout: Duration,
) -> Result<(), String> {
    let config = kubeconfig::standalone_kubeconfig(admin, &target.context_name(), server_url)
        .map_err(|e| e.to_string())?;
    let options = kube::config::KubeConfigOptions::default();
    let client_config =
        kube::Config::from_custom_kubeconfig(config, &options).await.map_err(|e| e.to_string())?;
    let client = kube::Client::try_from(client_config).map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout.max(Duration::from_secs(5)), client.apiserver_version())
        .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(crate::host::root_cause(&e)),
        Err(_) => Err(format!("no answer within {}", crate::output::human_duration(timeout))),
    }
}

/// Writes the context for an address the user already exposes (`--server`), without a forward.
pub async fn connect_direct(
    paths: &KubeconfigPaths,
    target: &Target,
    admin: &Kubeconfig,
    server_url: &str,
    switch: bool,
) -> anyhow::Result<EntryOutcome> {
    let entry = VirtualClusterEntry::from_admin_kubeconfig(
        admin,
        target.cluster_ref(),
        server_url,
        switch,
    )?;
    Ok(kubeconfig::upsert_virtual_cluster_async(paths, &entry).await?)
}

/// How often the exposed endpoint is looked up and tried while it is not there yet.
const EXPOSE_POLL: Duration = Duration::from_millis(500);
/// One try of the exposed endpoint.
const EXPOSE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an Ingress may go without an address before its host is tried anyway: some
/// ingress controllers never publish one.
const INGRESS_ADDRESS_WAIT: Duration = Duration::from_secs(30);

/// Waits (up to `timeout`) for the exposed endpoint and proves it: the host has assigned the
/// address (`on_address` is called then), and the API answers there with the admin
/// credentials and TLS verified against the engine's CA. The engine adds a new address to its
/// serving certificate within a few seconds, so a refused handshake is tried again. An
/// Ingress is tried once its controller has published an address, or after
/// [`INGRESS_ADDRESS_WAIT`] without one; a host name that does not resolve ends the wait, as
/// its DNS is the user's to set up.
pub async fn exposed_server(
    host: &Host,
    target: &Target,
    expose: &crate::spec::ExposeSpec,
    admin: &Kubeconfig,
    timeout: Duration,
    mut on_address: impl FnMut(&str),
) -> anyhow::Result<String> {
    use crate::spec::ExposeKind;

    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let (namespace, name) = (target.namespace.as_str(), target.host_name.as_str());
    let forward =
        format!("connect through a forward instead: vc connect {} --forward", target.name);
    let mut announced = false;
    let mut last_error = None;
    let mut published = None;
    loop {
        let mut url = host.exposed_url(namespace, name, expose).await?;
        if expose.kind == ExposeKind::Ingress && published.is_none() {
            published = host.ingress_address(namespace, name).await?;
            if published.is_none() && started.elapsed() < INGRESS_ADDRESS_WAIT {
                url = None;
            }
        }
        if let Some(url) = url {
            if !announced {
                on_address(&match &published {
                    Some(address) => format!("{url} (ingress controller at {address})"),
                    None => url.clone(),
                });
                announced = true;
            }
            if expose.kind == ExposeKind::Ingress {
                resolves(expose, published.as_deref(), &forward).await?;
            }
            match probe_server(admin, target, &url, EXPOSE_REQUEST_TIMEOUT).await {
                Ok(()) => return Ok(url),
                Err(why) => last_error = Some((url, why)),
            }
        }
        if tokio::time::Instant::now() + EXPOSE_POLL >= deadline {
            let waited = crate::output::human_duration(timeout);
            return Err(match last_error {
                Some((url, why)) => CliError::unreachable(format!(
                    "the exposed endpoint {url} of virtual cluster {:?} does not answer: {why}{}; {forward}",
                    target.name,
                    if expose.kind == ExposeKind::Ingress {
                        " (the ingress controller must pass TLS through to the cluster's Service: ingress-nginx needs --enable-ssl-passthrough)"
                    } else {
                        ""
                    }
                )),
                None if expose.kind == ExposeKind::Ingress => CliError::timeout(format!(
                    "the Ingress of virtual cluster {:?} has no address after {waited} (does the host run an ingress controller{}?); {forward}",
                    target.name,
                    expose
                        .class_name
                        .as_ref()
                        .map(|c| format!(" for IngressClass {c:?}"))
                        .unwrap_or_default()
                )),
                None => CliError::timeout(format!(
                    "the {} Service of virtual cluster {:?} has no address after {waited}{}; {forward}",
                    expose.kind.service_type(),
                    target.name,
                    if expose.kind == ExposeKind::LoadBalancer {
                        " (does the host run a load-balancer controller?)"
                    } else {
                        ""
                    }
                )),
            }
            .into());
        }
        tokio::time::sleep(EXPOSE_POLL).await;
    }
}

/// Refuses an Ingress host that does not resolve, naming where it should point.
async fn resolves(
    expose: &crate::spec::ExposeSpec,
    published: Option<&str>,
    forward: &str,
) -> anyhow::Result<()> {
    let Some(name) = expose.host.as_deref() else { return Ok(()) };
    let port = expose.port.unwrap_or(443);
    if tokio::net::lookup_host((name, port)).await.is_ok_and(|mut a| a.next().is_some()) {
        return Ok(());
    }
    let point = match published {
        Some(address) => format!("point it at the ingress controller's address {address}"),
        None => "point it at the ingress controller".to_string(),
    };
    Err(CliError::unreachable(format!(
        "the Ingress host {name:?} does not resolve; {point} (its DNS is yours to set up), or {forward}"
    ))
    .into())
}

/// The URL of a local forward.
pub fn local_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// What [`disconnect`] undid.
#[derive(Clone, Debug, Default)]
pub struct Disconnected {
    pub stopped_forward: bool,
    pub removed: RemovedOutcome,
}

/// Stops the forwarder and removes the kubeconfig entries of a cluster. The forward's state
/// file stays (its port is reused on the next connect) unless `forget` is set, as for a
/// cluster that was deleted.
pub async fn disconnect(
    paths: &KubeconfigPaths,
    target: &Target,
    forget: bool,
) -> anyhow::Result<Disconnected> {
    // Both halves are attempted whatever happens to the other.
    let stopped = forward::stop(&target.forward_key()).await;
    if forget && stopped.is_ok() {
        // A state file left behind only costs a stale port suggestion.
        if let Ok(store) = forward::ForwardStore::from_env() {
            let _ = store.remove(&target.forward_key());
        }
    }
    let removed = kubeconfig::remove_virtual_cluster_async(
        paths,
        &VirtualClusterSelector::Cluster(target.cluster_ref()),
    )
    .await?;
    let stopped = stopped?;
    Ok(Disconnected {
        stopped_forward: matches!(stopped, forward::StopOutcome::Stopped { .. }),
        removed,
    })
}
