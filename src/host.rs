//! All I/O with the host cluster: the client, applying a rendered set, watching readiness,
//! finding and listing virtual clusters, and deleting them. Prints nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret,
    Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::engine::{
    self, ANNOTATION_CREATED_AT, ANNOTATION_EXPIRES_AT, ANNOTATION_KUBERNETES_VERSION,
    ANNOTATION_SPEC, APP_VCLUSTER, FIELD_MANAGER, HostObject, LABEL_APP, LABEL_CLUSTER,
    LABEL_MANAGED_BY, LABEL_RELEASE, MANAGED_BY,
};
use crate::error::Exit;
use crate::spec::VirtualClusterSpec;

/// Label the engine puts on every host object it syncs out of a virtual cluster.
pub const LABEL_SYNCED_BY: &str = "vcluster.loft.sh/managed-by";

/// A failure talking to the host, already phrased for the user.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "cannot reach the host API server {server} (context {context:?}): {reason}; check that the cluster is running and the context is right (kubectl --context {context} cluster-info)"
    )]
    Unreachable { server: String, context: String, reason: String },
    #[error(
        "the host API server {server} rejected the credentials of context {context:?} (401 Unauthorized): log in again or pick another context with --context"
    )]
    Unauthorized { server: String, context: String },
    #[error("forbidden on context {context:?}: {message}{hint}")]
    Forbidden { context: String, message: String, hint: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error("{what}: {message}")]
    Api { what: String, message: String },
}

impl HostError {
    pub fn exit(&self) -> Exit {
        match self {
            Self::Unreachable { .. } | Self::Unauthorized { .. } | Self::Forbidden { .. } => {
                Exit::Unreachable
            }
            Self::NotFound(_) => Exit::NotFound,
            Self::Conflict(_) => Exit::Conflict,
            Self::Ambiguous(_) => Exit::Usage,
            Self::Api { .. } => Exit::Failure,
        }
    }
}

/// A connected host cluster.
#[derive(Clone)]
pub struct Host {
    pub client: Client,
    /// Kubeconfig context name of the host.
    pub context: String,
    /// API server URL of the host.
    pub server: String,
    /// The context's namespace, else `default`.
    pub default_namespace: String,
}

/// A namespace as `create` and `delete` need to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    Absent,
    /// Reading namespaces is forbidden.
    Unknown,
    Present {
        /// The cluster `vc` created it for, from its labels.
        made_for: Option<String>,
        terminating: bool,
    },
}

/// Who made a virtual cluster found on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MadeBy {
    Vc,
    Vcluster,
}

/// A virtual cluster as recorded on the host (its control-plane StatefulSet).
#[derive(Clone, Debug)]
pub struct ClusterRecord {
    pub name: String,
    pub namespace: String,
    pub made_by: MadeBy,
    pub spec: Option<VirtualClusterSpec>,
    pub created_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub kubernetes_version: Option<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub labels: BTreeMap<String, String>,
    pub uid: String,
    /// The StatefulSet is being deleted.
    pub deleting: bool,
}

/// Progress of a virtual cluster towards ready, as seen on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadyEvent {
    /// The control-plane pod exists and is bound to a node.
    Scheduled,
    /// The pod is not scheduled yet; the scheduler's message.
    Unschedulable(String),
    /// The control-plane pod passes its readiness probe.
    PodReady,
    /// A container is waiting for a reason worth showing (image pull, crash loop).
    Waiting { reason: String, message: String },
}

impl Host {
    /// Builds a client for `context` (else the current one) of an already loaded kubeconfig.
    pub async fn connect(kubeconfig: Kubeconfig, context: Option<&str>) -> anyhow::Result<Host> {
        let context_name = context
            .map(str::to_string)
            .or_else(|| kubeconfig.current_context.clone())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                crate::error::CliError::usage(
                    "the kubeconfig has no current context: pass --context NAME or run kubectl config use-context NAME",
                )
            })?;
        let options =
            KubeConfigOptions { context: Some(context_name.clone()), ..Default::default() };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot use context {context_name:?}: {e}"))?;
        // A host that does not answer must not hang the command.
        config.connect_timeout = Some(Duration::from_secs(10));
        let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config)
            .map_err(|e| anyhow::anyhow!("cannot build a client for {server}: {e}"))?;
        Ok(Host { client, context: context_name, server, default_namespace })
    }

    /// Turns a kube error into a user-facing one; `what` names the object or action.
    pub fn explain(&self, what: &str, err: kube::Error) -> HostError {
        match err {
            kube::Error::Api(status) => match status.code {
                401 => HostError::Unauthorized {
                    server: self.server.clone(),
                    context: self.context.clone(),
                },
                403 => HostError::Forbidden {
                    context: self.context.clone(),
                    message: status.message.clone(),
                    hint: String::new(),
                },
                404 => HostError::NotFound(format!("{what}: {}", status.message)),
                409 => HostError::Conflict(format!("{what}: {}", status.message)),
                _ => HostError::Api { what: what.to_string(), message: status.message.clone() },
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => HostError::Unreachable {
                server: self.server.clone(),
                context: self.context.clone(),
                reason: root_cause(&err),
            },
            other => HostError::Api { what: what.to_string(), message: root_cause(&other) },
        }
    }

    /// Applies every object with server-side apply: the namespace first, the rest concurrently.
    /// `force` takes over fields another manager changed (re-applying with `--upsert`).
    pub async fn apply_all(&self, objects: &[HostObject], force: bool) -> Result<(), HostError> {
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = force;
        let (first, rest): (Vec<&HostObject>, Vec<&HostObject>) =
            objects.iter().partition(|o| matches!(o, HostObject::Namespace(_)));
        for object in first {
            self.apply_one(object, &params).await.map_err(|e| self.namespace_hint(e))?;
        }
        let results =
            futures::future::join_all(rest.into_iter().map(|o| self.apply_one(o, &params))).await;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(())
    }

    fn namespace_hint(&self, err: HostError) -> HostError {
        match err {
            HostError::Forbidden { context, message, .. } => HostError::Forbidden {
                context,
                message,
                hint: "; vc creates a namespace for each cluster unless you pass an existing one with --namespace NS".to_string(),
            },
            other => other,
        }
    }

    async fn apply_one(&self, object: &HostObject, params: &PatchParams) -> Result<(), HostError> {
        let (resource, value) = object_parts(object);
        let (name, namespace) = (object.name(), object.namespace());
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        api.patch(name, params, &Patch::Apply(&value))
            .await
            .map(|_| ())
            .map_err(|e| self.explain(&format!("applying {} {name:?}", resource.kind), e))
    }

    /// The control-plane StatefulSet of `name` in `namespace`, if there is one.
    pub async fn get_record(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ClusterRecord>, HostError> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(sts)) if is_control_plane(&sts) => Ok(record_from(&sts)),
            Ok(_) => Ok(None),
            Err(e) => Err(self.explain(&format!("reading StatefulSet {namespace}/{name}"), e)),
        }
    }

    /// Finds a virtual cluster by name: in `namespace` when given, else with one cluster-wide
    /// LIST (assuming `vc-<name>` when that LIST is forbidden).
    pub async fn find(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<ClusterRecord, HostError> {
        if let Some(ns) = namespace {
            return self.get_record(ns, name).await?.ok_or_else(|| not_found(name, Some(ns), self));
        }
        let api: Api<StatefulSet> = Api::all(self.client.clone());
        let params = ListParams::default()
            .labels(&format!("{LABEL_APP}={APP_VCLUSTER},{LABEL_RELEASE}={name}"));
        match api.list(&params).await {
            Ok(list) => {
                let mut found: Vec<ClusterRecord> =
                    list.items.iter().filter_map(record_from).filter(|r| r.name == name).collect();
                match found.len() {
                    0 => Err(not_found(name, None, self)),
                    1 => Ok(found.remove(0)),
                    _ => Err(HostError::Ambiguous(format!(
                        "{} virtual clusters are named {name:?} (in namespaces {}): pass -n NAMESPACE",
                        found.len(),
                        found.iter().map(|r| r.namespace.as_str()).collect::<Vec<_>>().join(", ")
                    ))),
                }
            }
            Err(kube::Error::Api(s)) if s.code == 403 => {
                let ns = engine::default_namespace(name);
                self.get_record(&ns, name).await?.ok_or_else(|| not_found(name, Some(&ns), self))
            }
            Err(e) => Err(self.explain("listing virtual clusters", e)),
        }
    }

    /// Lists virtual clusters (vc's and the upstream CLI's) with one LIST call, in all
    /// namespaces unless `namespace` is given (falling back to the context's namespace on 403).
    pub async fn list(
        &self,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<(Vec<ClusterRecord>, Option<String>), HostError> {
        let mut labels = format!("{LABEL_APP}={APP_VCLUSTER}");
        if let Some(sel) = selector.filter(|s| !s.trim().is_empty()) {
            labels.push(',');
            labels.push_str(sel);
        }
        let params = ListParams::default().labels(&labels);
        let (result, scope) = match namespace {
            Some(ns) => (self.list_in(Some(ns), &params).await, Some(ns.to_string())),
            None => match self.list_in(None, &params).await {
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    let ns = self.default_namespace.clone();
                    (self.list_in(Some(&ns), &params).await, Some(ns))
                }
                other => (other, None),
            },
        };
        let items = result.map_err(|e| self.explain("listing virtual clusters", e))?;
        let mut records: Vec<ClusterRecord> = items.iter().filter_map(record_from).collect();
        records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok((records, scope))
    }

    async fn list_in(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<Vec<StatefulSet>, kube::Error> {
        let api: Api<StatefulSet> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        Ok(api.list(params).await?.items)
    }

    /// Control-plane pods of all virtual clusters in scope (one LIST), for status display.
    pub async fn control_plane_pods(&self, namespace: Option<&str>) -> Result<Vec<Pod>, HostError> {
        let api: Api<Pod> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let params = ListParams::default().labels(&format!("{LABEL_APP}={APP_VCLUSTER}"));
        api.list(&params)
            .await
            .map(|l| l.items)
            .map_err(|e| self.explain("listing control-plane pods", e))
    }

    /// Watches until the control-plane pod is Ready and the engine's kubeconfig Secret
    /// exists, reporting progress through `on_event`. The caller bounds it with a timeout.
    pub async fn wait_ready(
        &self,
        namespace: &str,
        name: &str,
        mut on_event: impl FnMut(ReadyEvent),
    ) -> Result<(), HostError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let pod_config = watcher::Config::default()
            .labels(&format!("{LABEL_APP}={APP_VCLUSTER},{LABEL_RELEASE}={name}"));
        let secret_config = watcher::Config::default()
            .fields(&format!("metadata.name={}", engine::kubeconfig_secret_name(name)));
        let mut pod_events = watcher(pods, pod_config).default_backoff().boxed();
        let mut secret_events = watcher(secrets, secret_config).default_backoff().boxed();
        let (mut pod_ready, mut secret_present) = (false, false);
        let mut last_seen: Option<ReadyEvent> = None;
        let pod_name = format!("{name}-0");
        while !(pod_ready && secret_present) {
            tokio::select! {
                event = pod_events.next() => match event {
                    Some(Ok(event)) => {
                        for pod in applied(event) {
                            if pod.metadata.name.as_deref() != Some(pod_name.as_str()) {
                                continue;
                            }
                            for e in pod_progress(&pod) {
                                if last_seen.as_ref() != Some(&e) {
                                    last_seen = Some(e.clone());
                                    on_event(e.clone());
                                }
                                if e == ReadyEvent::PodReady {
                                    pod_ready = true;
                                }
                            }
                        }
                    }
                    Some(Err(e)) => self.watch_error("watching the control-plane pod", e)?,
                    None => return Err(HostError::Api { what: "watching the control-plane pod".into(), message: "the watch ended".into() }),
                },
                event = secret_events.next(), if !secret_present => match event {
                    Some(Ok(event)) => {
                        if !applied(event).is_empty() {
                            secret_present = true;
                        }
                    }
                    Some(Err(e)) => self.watch_error("watching the kubeconfig Secret", e)?,
                    None => return Err(HostError::Api { what: "watching the kubeconfig Secret".into(), message: "the watch ended".into() }),
                },
            }
        }
        Ok(())
    }

    /// A watch error: fatal when access is refused, otherwise the watcher retries.
    fn watch_error(&self, what: &str, err: watcher::Error) -> Result<(), HostError> {
        match err {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => match &e {
                kube::Error::Api(s) if s.code == 401 || s.code == 403 => Err(self.explain(what, e)),
                // Transient: the watcher backs off and restarts the watch itself.
                _ => Ok(()),
            },
            watcher::Error::WatchError(status) if status.code == 401 || status.code == 403 => {
                Err(self.explain(what, kube::Error::Api(status)))
            }
            _ => Ok(()),
        }
    }

    /// Explains why a cluster is not ready, from what the host reports.
    pub async fn diagnose(&self, namespace: &str, name: &str) -> String {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod_name = format!("{name}-0");
        let pod = match pods.get_opt(&pod_name).await {
            Ok(Some(pod)) => pod,
            Ok(None) => {
                // Usually the StatefulSet controller says why (a quota or LimitRange refusing
                // the pod, a missing ServiceAccount).
                let warnings = self.warning_events(namespace, &[name]).await;
                let why = warnings.first().map_or_else(String::new, |w| format!(": {w}"));
                return format!(
                    "no control-plane pod {pod_name} was created{why}; check the StatefulSet: kubectl -n {namespace} describe statefulset {name}"
                );
            }
            Err(e) => {
                return format!(
                    "could not read pod {namespace}/{pod_name}: {}",
                    self.explain("", e)
                );
            }
        };
        let mut reasons = Vec::new();
        for event in pod_progress(&pod) {
            match event {
                ReadyEvent::Unschedulable(msg) => {
                    reasons.push(format!("pod {pod_name} is Pending: {msg}"));
                }
                ReadyEvent::Waiting { reason, message } => {
                    let mut line = format!("pod {pod_name}: {reason}");
                    if !message.is_empty() {
                        line.push_str(&format!(": {message}"));
                    }
                    if reason == "CrashLoopBackOff" || reason == "Error" {
                        let logs = self.last_log_lines(namespace, &pod_name, 5).await;
                        if !logs.is_empty() {
                            line.push_str(&format!(
                                "; last log lines:\n    {}",
                                logs.join("\n    ")
                            ));
                        }
                    }
                    reasons.push(line);
                }
                _ => {}
            }
        }
        if reasons.is_empty() {
            for warning in self.warning_events(namespace, &[&pod_name]).await.into_iter().take(3) {
                reasons.push(warning);
            }
        }
        if reasons.is_empty() {
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            reasons.push(format!("pod {pod_name} is {phase} but not Ready yet"));
        }
        reasons.join("; ")
    }

    async fn last_log_lines(&self, namespace: &str, pod: &str, lines: i64) -> Vec<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = LogParams { tail_lines: Some(lines), ..Default::default() };
        match pods.logs(pod, &params).await {
            Ok(text) => text.lines().map(str::to_string).filter(|l| !l.is_empty()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Recent Warning events about the named objects, newest first, as "Reason: message".
    pub async fn warning_events(&self, namespace: &str, objects: &[&str]) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let Ok(list) = api.list(&ListParams::default()).await else { return Vec::new() };
        let mut events: Vec<&Event> = list
            .items
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| e.involved_object.name.as_deref().is_some_and(|n| objects.contains(&n)))
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.last_timestamp.clone().map(|t| t.0)));
        events
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.as_deref().unwrap_or("Warning"),
                    e.message.as_deref().unwrap_or_default().trim()
                )
            })
            .collect()
    }

    /// What the host says about a namespace.
    pub async fn namespace_state(&self, namespace: &str) -> Result<NamespaceState, HostError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(namespace).await {
            Ok(Some(ns)) => {
                let labels = ns.metadata.labels.unwrap_or_default();
                let made_for = (labels.get(LABEL_MANAGED_BY).map(String::as_str)
                    == Some(MANAGED_BY))
                .then(|| labels.get(LABEL_CLUSTER).cloned())
                .flatten();
                Ok(NamespaceState::Present {
                    made_for,
                    terminating: ns.metadata.deletion_timestamp.is_some()
                        || ns.status.and_then(|s| s.phase).as_deref() == Some("Terminating"),
                })
            }
            Ok(None) => Ok(NamespaceState::Absent),
            // Without rights to read namespaces, let the apply find out.
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(NamespaceState::Unknown),
            Err(e) => Err(self.explain(&format!("reading namespace {namespace}"), e)),
        }
    }

    /// Whether `vc` created `namespace` for cluster `name` and no other virtual cluster lives
    /// in it, so deleting the cluster may delete the namespace.
    pub async fn owns_namespace(&self, namespace: &str, name: &str) -> Result<bool, HostError> {
        let made_for_this = matches!(
            self.namespace_state(namespace).await?,
            NamespaceState::Present { made_for: Some(ref n), .. } if n == name
        );
        if !made_for_this {
            return Ok(false);
        }
        let others = self
            .list_in(
                Some(namespace),
                &ListParams::default().labels(&format!("{LABEL_APP}={APP_VCLUSTER}")),
            )
            .await
            .map_err(|e| self.explain(&format!("listing virtual clusters in {namespace}"), e))?;
        Ok(others.iter().filter_map(record_from).all(|r| r.name == name))
    }

    /// A StatefulSet of that name, whoever made it.
    pub async fn statefulset(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StatefulSet>, HostError> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|e| self.explain(&format!("reading StatefulSet {namespace}/{name}"), e))
    }

    /// Deletes everything `vc` created for a cluster: its namespace when `vc` created it,
    /// otherwise every object labelled for it (PVCs included) and the objects the engine synced.
    pub async fn delete_cluster(
        &self,
        record: &ClusterRecord,
        own_namespace: bool,
    ) -> Result<(), HostError> {
        let (ns, name) = (record.namespace.as_str(), record.name.as_str());
        if own_namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            return match api.delete(ns, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(self.explain(&format!("deleting namespace {ns}"), e)),
            };
        }
        let ours = format!("{LABEL_CLUSTER}={name}");
        let synced = format!("{LABEL_SYNCED_BY}={name}");
        let claims = format!("{LABEL_APP}={APP_VCLUSTER},{LABEL_RELEASE}={name}");
        let results = futures::future::join_all([
            self.delete_labelled::<StatefulSet>(ns, &ours).boxed_local(),
            self.delete_labelled::<Service>(ns, &ours).boxed_local(),
            self.delete_labelled::<Secret>(ns, &ours).boxed_local(),
            self.delete_labelled::<ServiceAccount>(ns, &ours).boxed_local(),
            self.delete_labelled::<Role>(ns, &ours).boxed_local(),
            self.delete_labelled::<RoleBinding>(ns, &ours).boxed_local(),
            self.delete_labelled::<NetworkPolicy>(ns, &ours).boxed_local(),
            self.delete_labelled::<ResourceQuota>(ns, &ours).boxed_local(),
            self.delete_labelled::<LimitRange>(ns, &ours).boxed_local(),
            self.delete_labelled::<PersistentVolumeClaim>(ns, &claims).boxed_local(),
            self.delete_labelled::<Pod>(ns, &synced).boxed_local(),
            self.delete_labelled::<Service>(ns, &synced).boxed_local(),
            self.delete_labelled::<Secret>(ns, &synced).boxed_local(),
            self.delete_labelled::<PersistentVolumeClaim>(ns, &synced).boxed_local(),
            self.delete_labelled::<ConfigMap>(ns, &synced).boxed_local(),
            self.delete_labelled::<ServiceAccount>(ns, &synced).boxed_local(),
            self.delete_named::<Secret>(ns, &engine::kubeconfig_secret_name(name)).boxed_local(),
        ])
        .await;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(())
    }

    async fn delete_labelled<K>(&self, namespace: &str, selector: &str) -> Result<(), HostError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let kind = K::kind(&());
        let list = match api.list_metadata(&ListParams::default().labels(selector)).await {
            Ok(list) => list,
            Err(e) => return Err(self.explain(&format!("listing {kind}s in {namespace}"), e)),
        };
        for item in list.items {
            let Some(name) = item.metadata.name else { continue };
            self.delete_named::<K>(namespace, &name).await?;
        }
        Ok(())
    }

    async fn delete_named<K>(&self, namespace: &str, name: &str) -> Result<(), HostError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => {
                Err(self.explain(&format!("deleting {} {namespace}/{name}", K::kind(&())), e))
            }
        }
    }

    async fn uid_of<K>(&self, api: &Api<K>, name: &str) -> Result<Option<String>, HostError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        match api.get_metadata_opt(name).await {
            Ok(found) => Ok(found.and_then(|m| m.metadata.uid)),
            Err(e) => Err(self.explain(&format!("reading {name}"), e)),
        }
    }

    /// Waits until what `delete_cluster` removed is gone (the namespace, else the StatefulSet
    /// and its PVCs). The caller bounds it with a timeout.
    pub async fn wait_deleted(
        &self,
        record: &ClusterRecord,
        own_namespace: bool,
    ) -> Result<(), HostError> {
        use kube::runtime::wait::{await_condition, conditions};
        let (ns, name) = (record.namespace.as_str(), record.name.as_str());
        let gone = |what: String| {
            move |e: kube::runtime::wait::Error| HostError::Api {
                what: what.clone(),
                message: e.to_string(),
            }
        };
        if own_namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let Some(uid) = self.uid_of(&api, ns).await? else { return Ok(()) };
            await_condition(api, ns, conditions::is_deleted::<Namespace>(&uid))
                .await
                .map_err(gone(format!("waiting for namespace {ns} to go")))?;
            return Ok(());
        }
        let sts: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        if let Some(uid) = self.uid_of(&sts, name).await? {
            await_condition(sts, name, conditions::is_deleted::<StatefulSet>(&uid))
                .await
                .map_err(gone(format!("waiting for StatefulSet {ns}/{name} to go")))?;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let selector = format!("{LABEL_APP}={APP_VCLUSTER},{LABEL_RELEASE}={name}");
        let params = watcher::Config::default().labels(&selector);
        let mut stream = watcher(claims.clone(), params).default_backoff().boxed();
        loop {
            let left = claims
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| self.explain("listing PVCs", e))?;
            if left.items.is_empty() {
                return Ok(());
            }
            // A watch error is transient (the watcher backs off and restarts); only the end of
            // the stream ends the wait.
            if let Ok(None) = stream.try_next().await {
                return Ok(());
            }
        }
    }
}

fn not_found(name: &str, namespace: Option<&str>, host: &Host) -> HostError {
    let place = match namespace {
        Some(ns) => format!("in namespace {ns:?}"),
        None => "in any namespace".to_string(),
    };
    HostError::NotFound(format!(
        "virtual cluster {name:?} not found {place} on context {:?} (see: vc list)",
        host.context
    ))
}

/// The innermost message of an error chain ("Connection refused" rather than the wrappers).
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Objects added or changed by one watcher event.
fn applied<K>(event: watcher::Event<K>) -> Vec<K> {
    match event {
        watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => vec![obj],
        _ => Vec::new(),
    }
}

/// What a control-plane pod says about its progress.
pub fn pod_progress(pod: &Pod) -> Vec<ReadyEvent> {
    let mut out = Vec::new();
    let Some(status) = &pod.status else { return out };
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    match condition("PodScheduled") {
        Some(c) if c.status == "True" => out.push(ReadyEvent::Scheduled),
        Some(c) => out.push(ReadyEvent::Unschedulable(
            c.message.clone().or_else(|| c.reason.clone()).unwrap_or_default(),
        )),
        None => {}
    }
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in statuses {
        if let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.clone().unwrap_or_default();
            if matches!(
                reason.as_str(),
                "ErrImagePull"
                    | "ImagePullBackOff"
                    | "CrashLoopBackOff"
                    | "InvalidImageName"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
            ) {
                out.push(ReadyEvent::Waiting {
                    reason,
                    message: waiting.message.clone().unwrap_or_default(),
                });
            }
        }
    }
    if condition("Ready").is_some_and(|c| c.status == "True") {
        out.push(ReadyEvent::PodReady);
    }
    out
}

fn is_control_plane(sts: &StatefulSet) -> bool {
    sts.metadata.labels.as_ref().and_then(|l| l.get(LABEL_APP)).map(String::as_str)
        == Some(APP_VCLUSTER)
}

/// The record of a virtual cluster read off its StatefulSet.
pub fn record_from(sts: &StatefulSet) -> Option<ClusterRecord> {
    let meta = &sts.metadata;
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let name = labels.get(LABEL_RELEASE).cloned().or_else(|| meta.name.clone())?;
    let made_by = if labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY) {
        MadeBy::Vc
    } else {
        MadeBy::Vcluster
    };
    let time = |key: &str| annotations.get(key).and_then(|v| v.parse::<Timestamp>().ok());
    let status = sts.status.as_ref();
    Some(ClusterRecord {
        name,
        namespace: meta.namespace.clone().unwrap_or_default(),
        made_by,
        spec: annotations.get(ANNOTATION_SPEC).and_then(|s| serde_json::from_str(s).ok()),
        created_at: time(ANNOTATION_CREATED_AT)
            .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0)),
        expires_at: time(ANNOTATION_EXPIRES_AT),
        kubernetes_version: annotations.get(ANNOTATION_KUBERNETES_VERSION).cloned(),
        replicas: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready_replicas: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        labels,
        uid: meta.uid.clone().unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
    })
}

/// The API resource and JSON body of a rendered object, for one generic apply path.
fn object_parts(object: &HostObject) -> (ApiResource, serde_json::Value) {
    let api_version = object.api_version();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, object.kind());
    (ApiResource::from_gvk(&gvk), object.to_json())
}

/// Status shown by `vc list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ClusterStatus {
    Running,
    Starting,
    Paused,
    Failed,
    Expired,
    Deleting,
}

impl ClusterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Starting => "Starting",
            Self::Paused => "Paused",
            Self::Failed => "Failed",
            Self::Expired => "Expired",
            Self::Deleting => "Deleting",
        }
    }
}

impl ClusterRecord {
    /// A record for a cluster whose StatefulSet was never applied, for cleaning up the rest.
    pub fn placeholder(name: &str, namespace: &str) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            made_by: MadeBy::Vc,
            spec: None,
            created_at: None,
            expires_at: None,
            kubernetes_version: None,
            replicas: 0,
            ready_replicas: 0,
            labels: BTreeMap::new(),
            uid: String::new(),
            deleting: false,
        }
    }

    /// The status from the workload's replicas, its control-plane pod and the clock.
    pub fn status(&self, pods: &[Pod], now: Timestamp) -> ClusterStatus {
        if self.deleting {
            return ClusterStatus::Deleting;
        }
        if self.expires_at.is_some_and(|t| t <= now) {
            return ClusterStatus::Expired;
        }
        if self.replicas == 0 {
            return ClusterStatus::Paused;
        }
        if self.ready_replicas >= 1 {
            return ClusterStatus::Running;
        }
        let pod_name = format!("{}-0", self.name);
        let failing = pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(self.namespace.as_str()))
            .filter(|p| p.metadata.name.as_deref() == Some(pod_name.as_str()))
            .flat_map(pod_progress)
            .any(|e| matches!(e, ReadyEvent::Waiting { .. }));
        if failing { ClusterStatus::Failed } else { ClusterStatus::Starting }
    }
}

/// One host object of a virtual cluster and a word on its state, for `vc describe`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ObjectState {
    pub kind: &'static str,
    pub name: String,
    pub state: String,
}

/// Quota usage in the cluster's namespace: resource, used, hard.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuotaUsage {
    pub resource: String,
    pub used: String,
    pub hard: String,
}

impl Host {
    /// The host objects of a cluster with their state, the quota usage of its namespace, and
    /// its control-plane pods.
    pub async fn cluster_objects(
        &self,
        record: &ClusterRecord,
    ) -> Result<(Vec<ObjectState>, Vec<QuotaUsage>, Vec<Pod>), HostError> {
        let (ns, name) = (record.namespace.as_str(), record.name.as_str());
        let ours = ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}"));
        let engine_labels = ListParams::default()
            .labels(&format!("{LABEL_APP}={APP_VCLUSTER},{LABEL_RELEASE}={name}"));
        let client = &self.client;
        let fail = |what: &'static str| move |e| self.explain(what, e);
        let (sts, pods, services, claims, policies, quotas) = futures::try_join!(
            async {
                Api::<StatefulSet>::namespaced(client.clone(), ns)
                    .get_opt(name)
                    .await
                    .map_err(fail("reading the StatefulSet"))
            },
            async {
                Api::<Pod>::namespaced(client.clone(), ns)
                    .list(&engine_labels)
                    .await
                    .map_err(fail("listing pods"))
            },
            async {
                Api::<Service>::namespaced(client.clone(), ns)
                    .list(&ours)
                    .await
                    .map_err(fail("listing services"))
            },
            async {
                Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                    .list(&engine_labels)
                    .await
                    .map_err(fail("listing PVCs"))
            },
            async {
                Api::<NetworkPolicy>::namespaced(client.clone(), ns)
                    .list(&ours)
                    .await
                    .map_err(fail("listing NetworkPolicies"))
            },
            async {
                Api::<ResourceQuota>::namespaced(client.clone(), ns)
                    .list(&ours)
                    .await
                    .map_err(fail("listing ResourceQuotas"))
            },
        )?;
        let mut objects = Vec::new();
        if let Some(sts) = sts {
            let status = sts.status.unwrap_or_default();
            objects.push(ObjectState {
                kind: "StatefulSet",
                name: name.to_string(),
                state: format!(
                    "{}/{} ready",
                    status.ready_replicas.unwrap_or(0),
                    sts.spec.and_then(|s| s.replicas).unwrap_or(1)
                ),
            });
        }
        for pod in &pods.items {
            let mut state = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            for event in pod_progress(pod) {
                match event {
                    ReadyEvent::PodReady => state.push_str(", Ready"),
                    ReadyEvent::Unschedulable(m) => {
                        state.push_str(&format!(", unschedulable: {m}"))
                    }
                    ReadyEvent::Waiting { reason, .. } => state.push_str(&format!(", {reason}")),
                    ReadyEvent::Scheduled => {}
                }
            }
            objects.push(ObjectState {
                kind: "Pod",
                name: pod.metadata.name.clone().unwrap_or_default(),
                state,
            });
        }
        for svc in services.items {
            let spec = svc.spec.unwrap_or_default();
            objects.push(ObjectState {
                kind: "Service",
                name: svc.metadata.name.unwrap_or_default(),
                state: spec.cluster_ip.unwrap_or_else(|| "-".into()),
            });
        }
        for claim in claims.items {
            objects.push(ObjectState {
                kind: "PersistentVolumeClaim",
                name: claim.metadata.name.unwrap_or_default(),
                state: claim.status.and_then(|s| s.phase).unwrap_or_else(|| "Pending".into()),
            });
        }
        for policy in policies.items {
            objects.push(ObjectState {
                kind: "NetworkPolicy",
                name: policy.metadata.name.unwrap_or_default(),
                state: "active".into(),
            });
        }
        let mut usage = Vec::new();
        for quota in quotas.items {
            let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
            let used = quota.status.and_then(|s| s.used).unwrap_or_default();
            objects.push(ObjectState {
                kind: "ResourceQuota",
                name: quota.metadata.name.unwrap_or_default(),
                state: format!("{} limits", hard.len()),
            });
            for (resource, limit) in hard {
                usage.push(QuotaUsage {
                    used: used.get(&resource).map_or_else(|| "0".into(), |q| q.0.clone()),
                    resource,
                    hard: limit.0,
                });
            }
        }
        Ok((objects, usage, pods.items))
    }
}

impl Host {
    /// The engine's admin kubeconfig (Secret `vc-<name>`, key `config`), if it exists yet.
    pub async fn admin_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, HostError> {
        let secret_name = engine::kubeconfig_secret_name(name);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(&secret_name)
            .await
            .map_err(|e| self.explain(&format!("reading Secret {namespace}/{secret_name}"), e))?;
        let Some(secret) = secret else { return Ok(None) };
        let config =
            secret.data.as_ref().and_then(|d| d.get("config")).ok_or_else(|| HostError::Api {
                what: format!("Secret {namespace}/{secret_name}"),
                message: "it has no key \"config\"".into(),
            })?;
        Ok(Some(String::from_utf8_lossy(&config.0).into_owned()))
    }
}
