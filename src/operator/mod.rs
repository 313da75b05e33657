//! The controller behind declarative mode: reconciles `VirtualCluster` objects with the same
//! spec, engine rendering and host calls as `vc create`. Talks to the cluster; prints nothing
//! itself (log lines go through the caller's [`Log`]).

pub mod client;
pub mod install;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod reconcile;
pub mod requests;
pub mod resource;

pub use metrics::Metrics;
pub use resource::{VirtualCluster, VirtualClusterStatus};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use kube::runtime::{Controller, watcher};

use crate::engine::{LABEL_MANAGED_BY, MANAGED_BY};
use crate::host::Host;

/// Where log lines go: level, object ("namespace/name" or "operator") and message.
pub type Log = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

/// The operator's clock: the system clock, or (for tests) a given start time that then
/// advances with the monotonic clock, so timers still fire.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Option<(jiff::Timestamp, std::time::Instant)>,
}

impl Clock {
    pub fn system() -> Self {
        Self { start: None }
    }

    pub fn starting_at(at: jiff::Timestamp) -> Self {
        Self { start: Some((at, std::time::Instant::now())) }
    }

    pub fn now(&self) -> jiff::Timestamp {
        match self.start {
            None => jiff::Timestamp::now(),
            Some((at, since)) => {
                let elapsed = jiff::SignedDuration::try_from(since.elapsed()).unwrap_or_default();
                at.checked_add(elapsed).unwrap_or(at)
            }
        }
    }
}

/// How `vc operator run` runs.
pub struct RunOptions {
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// This replica's name in the Lease (the pod name in-cluster).
    pub identity: String,
    pub lease_duration: Duration,
    pub clock: Clock,
    pub log: Log,
    pub metrics: Arc<Metrics>,
    /// How often the leader checks the warm pools.
    pub pool_interval: Duration,
}

/// Waits for the Lease, then reconciles until `shutdown` completes (or the Lease is lost,
/// which is an error: a restarted replica competes again). Releases the Lease on the way out.
pub async fn run(
    host: Host,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let log = options.log.clone();
    // Without the CRD there is nothing to reconcile, and the controller's watch would only
    // retry: refuse to start, as a missing prerequisite.
    let probe: Api<VirtualCluster> = Api::all(host.client.clone());
    if let Err(kube::Error::Api(status)) =
        probe.list_metadata(&kube::api::ListParams::default().limit(1)).await
        && status.code == 404
    {
        return Err(crate::error::CliError::not_found(format!(
            "the VirtualCluster resource (CRD virtualclusters.vc.dev) is not installed on context {:?}; install it first: vc operator install (or kubectl apply -f deploy/crd.yaml)",
            host.context
        ))
        .into());
    }
    let lock = leader::LeaseLock::new(
        host.client.clone(),
        &options.lease_namespace,
        &options.identity,
        options.lease_duration,
    );
    let renew_every = options.lease_duration / 3;
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let mut waiting_logged = false;
    loop {
        let acquired = lock.try_acquire().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot take the Lease {}/{} on context {:?}: {e}",
                options.lease_namespace,
                leader::LEASE_NAME,
                host.context
            )
        })?;
        if acquired {
            break;
        }
        if !waiting_logged {
            log(
                "info",
                "operator",
                &format!(
                    "waiting: another replica holds the Lease {}/{}",
                    options.lease_namespace,
                    leader::LEASE_NAME
                ),
            );
            waiting_logged = true;
        }
        tokio::select! {
            () = tokio::time::sleep(renew_every) => {}
            () = shutdown.clone() => return Ok(()),
        }
    }
    log(
        "info",
        "operator",
        &format!(
            "leading as {:?}; reconciling VirtualClusters on context {:?}",
            options.identity, host.context
        ),
    );
    options.metrics.leading.store(true, Ordering::Relaxed);

    let ctx = Arc::new(reconcile::Context::new(
        host.clone(),
        options.clock,
        log.clone(),
        options.metrics.clone(),
    ));
    let clusters: Api<VirtualCluster> = Api::all(host.client.clone());
    let sets: Api<StatefulSet> = Api::all(host.client.clone());
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                _ = lost_rx => {}
            }
        }
    };
    let controller = Controller::new(clusters, watcher::Config::default())
        .owns(sets, watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")))
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|_| async {});
    // The leader also keeps every warm pool full (docs/pool.md), with the same clock, for as
    // long as it leads: the task is aborted below, however leading ends.
    let keeper = {
        let (host, clock, log) = (host.clone(), options.clock, log.clone());
        let interval = options.pool_interval;
        tokio::spawn(async move {
            crate::host::run_pool_keeper(
                &host,
                crate::pool::DEFAULT_POOL_NAMESPACE,
                interval,
                move || clock.now(),
                std::future::pending::<()>(),
                move |result| match result {
                    Ok(passes) => passes.iter().for_each(|pass| log_pool_pass(&log, pass)),
                    Err(e) => log("warn", "pool", &format!("a pass over the pools failed: {e}")),
                },
            )
            .await;
        })
    };
    let renew = async {
        loop {
            tokio::time::sleep(renew_every).await;
            match lock.try_acquire().await {
                Ok(true) => {}
                Ok(false) => return "another replica took the Lease".to_string(),
                // A transient failure is logged and tried again at the next period.
                Err(e) => log("warn", "operator", &format!("renewing the Lease failed: {e}")),
            }
        }
    };
    tokio::pin!(controller);
    let lost = tokio::select! {
        () = &mut controller => None,
        why = renew => Some(why),
    };
    options.metrics.leading.store(false, Ordering::Relaxed);
    keeper.abort();
    if let Some(why) = lost {
        let _ = lost_tx.send(());
        controller.await;
        return Err(anyhow::anyhow!("stopped reconciling: {why}"));
    }
    drop(lost_tx);
    if let Err(e) = lock.release().await {
        log("warn", "operator", &format!("releasing the Lease failed: {e}"));
    }
    log("info", "operator", "stopped");
    Ok(())
}

/// One log line per change the pool keeper made.
fn log_pool_pass(log: &Log, pass: &crate::host::KeeperPass) {
    let pool = &pass.pool;
    for (what, members) in
        [("starting", &pass.started), ("paused", &pass.paused), ("removed", &pass.removed)]
    {
        if !members.is_empty() {
            log("info", "pool", &format!("pool {pool:?}: {what} {}", members.join(", ")));
        }
    }
    for (member, seconds) in &pass.ready {
        log("info", "pool", &format!("pool {pool:?}: {member} ready in {seconds:.1}s"));
    }
    for failure in &pass.failed {
        log("warn", "pool", &format!("pool {pool:?}: {failure}"));
    }
}

/// The API resource of an install object, from its `apiVersion` and `kind`; the second value
/// tells whether it is namespaced.
fn install_resource(object: &serde_json::Value) -> (kube::api::ApiResource, bool) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let plural = format!("{}s", kind.to_ascii_lowercase());
    let namespaced = object["metadata"]["namespace"].is_string();
    (kube::api::ApiResource::from_gvk_with_plural(&gvk, &plural), namespaced)
}

/// Applies the install objects in order with server-side apply.
pub async fn install(
    host: &Host,
    objects: &[serde_json::Value],
) -> Result<(), crate::host::HostError> {
    let params = kube::api::PatchParams::apply(crate::engine::FIELD_MANAGER).force();
    for object in objects {
        let (resource, namespaced) = install_resource(object);
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<kube::api::DynamicObject> = if namespaced {
            Api::namespaced_with(
                host.client.clone(),
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                &resource,
            )
        } else {
            Api::all_with(host.client.clone(), &resource)
        };
        api.patch(name, &params, &kube::api::Patch::Apply(object))
            .await
            .map_err(|e| host.explain(&format!("applying {} {name:?}", resource.kind), e))?;
    }
    Ok(())
}

/// Every VirtualCluster on the host as "namespace/name"; none when the CRD is not installed.
pub async fn existing_clusters(host: &Host) -> Result<Vec<String>, crate::host::HostError> {
    let api: Api<VirtualCluster> = Api::all(host.client.clone());
    match api.list(&kube::api::ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default()
                )
            })
            .collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(host.explain("listing VirtualClusters", e)),
    }
}

/// Deletes the VirtualCluster `namespace/name` (the operator's finalizer then removes its
/// cluster); false when it was already gone.
pub async fn delete_cluster_object(
    host: &Host,
    namespace: &str,
    name: &str,
) -> Result<bool, crate::host::HostError> {
    let api: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
    match api.delete(name, &kube::api::DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(host.explain(&format!("deleting VirtualCluster {namespace}/{name}"), e)),
    }
}

/// Waits until the VirtualCluster `namespace/name` is gone (its finalizer done).
pub async fn wait_cluster_object_gone(
    host: &Host,
    namespace: &str,
    name: &str,
) -> Result<(), crate::host::HostError> {
    let api: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
    loop {
        match api.get_opt(name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => {
                return Err(host.explain(&format!("reading VirtualCluster {namespace}/{name}"), e));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes every VirtualCluster and waits (up to `timeout`) until the operator's finalizer
/// has removed their clusters.
pub async fn delete_all_clusters(
    host: &Host,
    timeout: Duration,
) -> Result<(), crate::host::HostError> {
    let api: Api<VirtualCluster> = Api::all(host.client.clone());
    for id in existing_clusters(host).await? {
        let (namespace, name) = id.split_once('/').unwrap_or_default();
        let namespaced: Api<VirtualCluster> = Api::namespaced(host.client.clone(), namespace);
        match namespaced.delete(name, &kube::api::DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(host.explain(&format!("deleting VirtualCluster {id}"), e)),
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left =
            api.list(&kube::api::ListParams::default()).await.map(|l| l.items.len()).or_else(
                |e| match e {
                    kube::Error::Api(s) if s.code == 404 => Ok(0),
                    e => Err(host.explain("listing VirtualClusters", e)),
                },
            )?;
        if left == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(crate::host::HostError::Failed(format!(
                "{left} VirtualCluster(s) still wait for the operator's cleanup; is vc operator run running? (kubectl get vcl -A)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes the install objects, last first; absent ones are skipped.
pub async fn uninstall(
    host: &Host,
    objects: &[serde_json::Value],
) -> Result<usize, crate::host::HostError> {
    let mut removed = 0;
    for object in objects.iter().rev() {
        let (resource, namespaced) = install_resource(object);
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<kube::api::DynamicObject> = if namespaced {
            Api::namespaced_with(
                host.client.clone(),
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                &resource,
            )
        } else {
            Api::all_with(host.client.clone(), &resource)
        };
        match api.delete(name, &kube::api::DeleteParams::background()).await {
            Ok(_) => removed += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(host.explain(&format!("deleting {} {name:?}", resource.kind), e)),
        }
    }
    Ok(removed)
}

/// The Lease's namespace, made when it is missing (running from a laptop before an install);
/// a refusal is left for the Lease itself to report.
pub async fn ensure_namespace(host: &Host, namespace: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(host.client.clone());
    if let Ok(None) = api.get_opt(namespace).await {
        let object = Namespace {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(namespace.to_string()),
                labels: Some(std::collections::BTreeMap::from([(
                    LABEL_MANAGED_BY.to_string(),
                    MANAGED_BY.to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        let _ = api.create(&kube::api::PostParams::default(), &object).await;
    }
}
