//! Finding and listing virtual clusters by their records (the control-plane StatefulSet),
//! and the namespace facts create and delete decide on.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};

use crate::engine::{
    self, ANNOTATION_CREATED_AT, ANNOTATION_EXPIRES_AT, ANNOTATION_KUBERNETES_VERSION,
    ANNOTATION_SPEC, APP_VCLUSTER, LABEL_APP, LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_RELEASE,
    MANAGED_BY,
};
use crate::pool::{ANNOTATION_CLAIMED_AT, LABEL_CLAIMED_AS, LABEL_POOL};
use crate::spec::VirtualClusterSpec;

use super::lifecycle::{
    ANNOTATION_LAST_ACTIVITY, ANNOTATION_PAUSE_REASON, ANNOTATION_PAUSED, ANNOTATION_PAUSED_AT,
    ANNOTATION_PAUSED_DATE, ANNOTATION_PAUSED_REPLICAS, PAUSE_REASON_IDLE,
};
use super::{Host, HostError, NamespaceState, ReadyEvent, control_plane_selector, pod_progress};

/// Who made a virtual cluster found on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MadeBy {
    Vc,
    Vcluster,
    /// The operator, for a VirtualCluster object (the workload's controller owner reference).
    VirtualCluster,
}

/// The owner reference that marks a workload made by the operator for a VirtualCluster.
pub const OWNER_API_VERSION: &str = "vc.dev/v1alpha1";
pub const OWNER_KIND: &str = "VirtualCluster";

/// A virtual cluster as recorded on the host (its control-plane StatefulSet).
#[derive(Clone, Debug)]
pub struct ClusterRecord {
    /// The name users know it by: the claimant's name for a cluster claimed from a pool
    /// (`vc.dev/claimed-as`), else [`Self::host_name`].
    pub name: String,
    /// The name of its objects on the host (StatefulSet, pod `<host_name>-0`, Secrets): it
    /// stays the pool member's own name after a claim.
    pub host_name: String,
    /// The pool it was started for (`vc.dev/pool`), claimed or not.
    pub pool: Option<String>,
    /// When it was claimed from its pool (`vc.dev/claimed-at`); none while it waits in it.
    pub claimed_at: Option<Timestamp>,
    pub namespace: String,
    pub made_by: MadeBy,
    /// The VirtualCluster (in the same namespace) that owns the workload, for
    /// [`MadeBy::VirtualCluster`].
    pub virtual_cluster: Option<String>,
    pub spec: Option<VirtualClusterSpec>,
    /// Why the recorded spec could not be read, when it is there but broken.
    pub record_error: Option<String>,
    pub created_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub kubernetes_version: Option<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub labels: BTreeMap<String, String>,
    /// The workload's annotations, for the figures kept there (pool timings).
    pub annotations: BTreeMap<String, String>,
    pub uid: String,
    /// The workload's resourceVersion when it was read.
    pub resource_version: String,
    /// The StatefulSet is being deleted.
    pub deleting: bool,
    /// Which kind of workload runs the control plane.
    pub workload: Workload,
    /// Paused by `vc pause`, `vc gc` or the upstream CLI (`loft.sh/paused: "true"`).
    pub paused: bool,
    /// When it was paused (`vc.dev/paused-at`, else the upstream `loft.sh/paused-date`).
    pub paused_at: Option<Timestamp>,
    /// The replica count to restore on resume (`loft.sh/paused-replicas`).
    pub paused_replicas: Option<i32>,
    /// Why vc paused it (`user` or `idle`); none when the upstream CLI did.
    pub pause_reason: Option<String>,
    /// The last request seen through one of vc's forwards (`vc.dev/last-activity`).
    pub last_activity: Option<Timestamp>,
}

/// The kind of workload that runs a control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    StatefulSet,
    Deployment,
}

impl ClusterRecord {
    /// The datastore kind, as the record has it (`sqlite` when the spec leaves it out); `None`
    /// for a cluster without a readable record (the upstream CLI's, say).
    pub fn datastore(&self) -> Option<&'static str> {
        self.spec.as_ref().map(|s| s.datastore.kind.as_str())
    }
}

impl Host {
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

    /// The engine's Deployment variant of cluster `name` in `namespace`, if there is one.
    async fn deployment_record(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ClusterRecord>, HostError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(d))
                if d.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_APP))
                    .map(String::as_str)
                    == Some(APP_VCLUSTER) =>
            {
                Ok(record_from_deployment(&d))
            }
            Ok(_) => Ok(None),
            // Reading Deployments may be refused where StatefulSets are not: then it is not found.
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
            Err(e) => Err(self.explain(&format!("reading Deployment {namespace}/{name}"), e)),
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
            if let Some(record) = self.get_record(ns, name).await? {
                return Ok(record);
            }
            if let Some(record) = self.deployment_record(ns, name).await? {
                return Ok(record);
            }
            return self
                .claimed_as(Some(ns), name)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| not_found(name, Some(ns), self));
        }
        let api: Api<StatefulSet> = Api::all(self.client.clone());
        let params = ListParams::default().labels(&control_plane_selector(name));
        match api.list(&params).await {
            Ok(list) => {
                let mut found: Vec<ClusterRecord> =
                    list.items.iter().filter_map(record_from).filter(|r| r.name == name).collect();
                // Only when no StatefulSet matches: a second LIST for the engine's
                // Deployment variant, so the common case stays one request.
                if found.is_empty() {
                    // Beside it, the clusters claimed from a pool under this name (their
                    // host objects keep the member's name).
                    let deployments: Api<Deployment> = Api::all(self.client.clone());
                    let (listed, claimed) =
                        futures::join!(deployments.list(&params), self.claimed_as(None, name));
                    let listed = match listed {
                        Ok(listed) => listed.items,
                        // Not being able to look there leaves it not found.
                        Err(kube::Error::Api(s)) if s.code == 403 => Vec::new(),
                        Err(e) => return Err(self.explain("listing virtual clusters", e)),
                    };
                    found.extend(listed.iter().filter_map(record_from_deployment));
                    found.extend(claimed?);
                    found.retain(|r| r.name == name);
                }
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
            // Without the cluster-wide LIST, look where `list` looks (the context's namespace),
            // then where `create` puts a cluster by default.
            Err(kube::Error::Api(s)) if s.code == 403 => {
                let mut places = vec![self.default_namespace.clone()];
                let own = engine::default_namespace(name);
                if !places.contains(&own) {
                    places.push(own);
                }
                for ns in &places {
                    match self.get_record(ns, name).await {
                        Ok(Some(record)) => return Ok(record),
                        Ok(None) => {}
                        Err(HostError::Forbidden { context, message, .. }) => {
                            return Err(HostError::Forbidden {
                                context,
                                message,
                                hint: format!(
                                    "; listing clusters in every namespace is forbidden too: pass the cluster's namespace with -n NAMESPACE (looked in {})",
                                    places.join(", ")
                                ),
                            });
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(HostError::NotFound(format!(
                    "virtual cluster {name:?} not found in namespaces {} on context {:?} (listing every namespace is forbidden; pass -n NAMESPACE)",
                    places.join(", "),
                    self.context
                )))
            }
            Err(e) => Err(self.explain("listing virtual clusters", e)),
        }
    }

    /// The clusters claimed from a pool as `name` (one LIST; a refusal finds none).
    async fn claimed_as(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Vec<ClusterRecord>, HostError> {
        let params = ListParams::default()
            .labels(&format!("{LABEL_APP}={APP_VCLUSTER},{LABEL_CLAIMED_AS}={name}"));
        match self.list_in(namespace, &params).await {
            Ok(sets) => Ok(sets.iter().filter_map(record_from).collect()),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(Vec::new()),
            Err(e) => Err(self.explain("listing claimed virtual clusters", e)),
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
            Some(ns) => (self.workloads_in(Some(ns), &params).await, Some(ns.to_string())),
            None => match self.workloads_in(None, &params).await {
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    let ns = self.default_namespace.clone();
                    (self.workloads_in(Some(&ns), &params).await, Some(ns))
                }
                other => (other, None),
            },
        };
        let mut records = result.map_err(|e| self.explain("listing virtual clusters", e))?;
        records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok((records, scope))
    }

    /// Control planes as StatefulSets and as Deployments, with one LIST each (concurrent).
    async fn workloads_in(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<Vec<ClusterRecord>, kube::Error> {
        let deployments: Api<Deployment> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        // Both finish, so the number of requests does not depend on which answers first.
        let (sets, deployments) =
            futures::join!(self.list_in(namespace, params), deployments.list(params));
        let (sets, deployments) = (sets?, deployments?);
        let mut records: Vec<ClusterRecord> = sets.iter().filter_map(record_from).collect();
        records.extend(deployments.items.iter().filter_map(record_from_deployment));
        Ok(records)
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
        Ok(self.clusters_in(namespace).await?.iter().all(|(other, _)| other == name))
    }

    /// The virtual clusters in a namespace, by name and maker: control-plane StatefulSets and
    /// the Deployments the engine's external-etcd variant runs (both labelled `app=vcluster`,
    /// named by `release`, as the engine itself looks for them).
    pub async fn clusters_in(&self, namespace: &str) -> Result<Vec<(String, MadeBy)>, HostError> {
        let params = ListParams::default().labels(&format!("{LABEL_APP}={APP_VCLUSTER}"));
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let (sets, deployments) =
            futures::join!(self.list_in(Some(namespace), &params), deployments.list(&params));
        let what = format!("listing virtual clusters in namespace {namespace}");
        let mut found: Vec<(String, MadeBy)> = sets
            .map_err(|e| self.explain(&what, e))?
            .iter()
            .filter_map(record_from)
            .map(|r| (r.host_name, r.made_by))
            .collect();
        for deployment in deployments.map_err(|e| self.explain(&what, e))?.items {
            let labels = deployment.metadata.labels.unwrap_or_default();
            if let Some(release) = labels.get(LABEL_RELEASE) {
                found.push((release.clone(), made_by(&labels)));
            }
        }
        Ok(found)
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

fn is_control_plane(sts: &StatefulSet) -> bool {
    sts.metadata.labels.as_ref().and_then(|l| l.get(LABEL_APP)).map(String::as_str)
        == Some(APP_VCLUSTER)
}

/// Who made a workload, from its labels.
fn made_by(labels: &BTreeMap<String, String>) -> MadeBy {
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY) {
        MadeBy::Vc
    } else {
        MadeBy::Vcluster
    }
}

/// The record of a virtual cluster read off its StatefulSet.
pub fn record_from(sts: &StatefulSet) -> Option<ClusterRecord> {
    let status = sts.status.as_ref();
    record_of(
        &sts.metadata,
        Workload::StatefulSet,
        sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        status.and_then(|s| s.ready_replicas).unwrap_or(0),
    )
}

/// The record of a virtual cluster whose control plane runs as a Deployment (the engine's
/// external-etcd variant, made by the upstream CLI).
pub fn record_from_deployment(deployment: &Deployment) -> Option<ClusterRecord> {
    let status = deployment.status.as_ref();
    record_of(
        &deployment.metadata,
        Workload::Deployment,
        deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        status.and_then(|s| s.ready_replicas).unwrap_or(0),
    )
}

fn record_of(
    meta: &ObjectMeta,
    workload: Workload,
    replicas: i32,
    ready_replicas: i32,
) -> Option<ClusterRecord> {
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let host_name = labels.get(LABEL_RELEASE).cloned().or_else(|| meta.name.clone())?;
    let name = labels.get(LABEL_CLAIMED_AS).cloned().unwrap_or_else(|| host_name.clone());
    let virtual_cluster = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == OWNER_KIND && o.api_version == OWNER_API_VERSION)
        .map(|o| o.name.clone());
    let made_by = if virtual_cluster.is_some() { MadeBy::VirtualCluster } else { made_by(&labels) };
    let time = |key: &str| annotations.get(key).and_then(|v| v.parse::<Timestamp>().ok());
    let (spec, record_error) = match annotations.get(ANNOTATION_SPEC) {
        None => (None, None),
        Some(text) => match serde_json::from_str::<VirtualClusterSpec>(text) {
            Ok(spec) => (Some(spec), None),
            Err(e) => (None, Some(format!("annotation {ANNOTATION_SPEC} does not parse: {e}"))),
        },
    };
    Some(ClusterRecord {
        name,
        host_name,
        pool: labels.get(LABEL_POOL).cloned(),
        claimed_at: time(ANNOTATION_CLAIMED_AT),
        namespace: meta.namespace.clone().unwrap_or_default(),
        made_by,
        virtual_cluster,
        spec,
        record_error,
        created_at: time(ANNOTATION_CREATED_AT)
            .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0)),
        expires_at: time(ANNOTATION_EXPIRES_AT),
        kubernetes_version: annotations.get(ANNOTATION_KUBERNETES_VERSION).cloned(),
        replicas,
        ready_replicas,
        labels,
        annotations: annotations.clone(),
        uid: meta.uid.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
        workload,
        paused: annotations.get(ANNOTATION_PAUSED).map(String::as_str) == Some("true"),
        paused_at: time(ANNOTATION_PAUSED_AT).or_else(|| time(ANNOTATION_PAUSED_DATE)),
        paused_replicas: annotations.get(ANNOTATION_PAUSED_REPLICAS).and_then(|v| v.parse().ok()),
        pause_reason: annotations.get(ANNOTATION_PAUSE_REASON).cloned(),
        last_activity: time(ANNOTATION_LAST_ACTIVITY),
    })
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
    /// A pool member waiting to be claimed (running or paused).
    Pooled,
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
            Self::Pooled => "Pooled",
        }
    }
}

impl ClusterRecord {
    /// A record for a cluster whose StatefulSet was never applied, for cleaning up the rest.
    pub fn placeholder(name: &str, namespace: &str) -> Self {
        Self {
            name: name.to_string(),
            host_name: name.to_string(),
            pool: None,
            claimed_at: None,
            namespace: namespace.to_string(),
            made_by: MadeBy::Vc,
            virtual_cluster: None,
            spec: None,
            record_error: None,
            created_at: None,
            expires_at: None,
            kubernetes_version: None,
            replicas: 0,
            ready_replicas: 0,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            uid: String::new(),
            resource_version: String::new(),
            deleting: false,
            workload: Workload::StatefulSet,
            paused: false,
            paused_at: None,
            paused_replicas: None,
            pause_reason: None,
            last_activity: None,
        }
    }

    /// A pool member nobody has claimed yet.
    pub fn is_pooled(&self) -> bool {
        self.pool.is_some()
            && self.claimed_at.is_none()
            && !self.labels.contains_key(LABEL_CLAIMED_AS)
    }

    /// Claimed from a pool: its host objects keep the member's name.
    pub fn is_claimed(&self) -> bool {
        self.name != self.host_name
    }

    /// Paused by a tool, or scaled to zero by hand.
    pub fn is_paused(&self) -> bool {
        self.paused || self.replicas == 0
    }

    /// Put to sleep by `vc gc` for being idle (so `vc connect` may wake it).
    pub fn is_sleeping(&self) -> bool {
        self.paused && self.pause_reason.as_deref() == Some(PAUSE_REASON_IDLE)
    }

    /// When the cluster last saw a user, for the idle limit: the last request through a
    /// forward, else the last resume, else its creation.
    pub fn active_at(&self) -> Option<Timestamp> {
        self.last_activity.or(self.created_at)
    }

    /// Whether its datastore is on an emptyDir (`--ephemeral`): pausing it would lose it.
    pub fn is_ephemeral(&self) -> bool {
        self.spec.as_ref().is_some_and(|s| !s.persistent())
    }

    /// Whether it has been idle for longer than its recorded limit at `now`.
    pub fn idle_expired(&self, now: Timestamp) -> bool {
        if self.is_ephemeral() {
            return false;
        }
        let Some(limit) = self.spec.as_ref().and_then(VirtualClusterSpec::sleep_after_duration)
        else {
            return false;
        };
        let Some(since) = self.active_at() else { return false };
        let limit = i64::try_from(limit.as_secs()).unwrap_or(i64::MAX);
        now.as_second().saturating_sub(since.as_second()) >= limit
    }

    /// The status from the workload's replicas, its control-plane pod and the clock.
    pub fn status(&self, pods: &[Pod], now: Timestamp) -> ClusterStatus {
        if self.deleting {
            return ClusterStatus::Deleting;
        }
        if self.expires_at.is_some_and(|t| t <= now) {
            return ClusterStatus::Expired;
        }
        if self.is_pooled() {
            return ClusterStatus::Pooled;
        }
        if self.is_paused() {
            return ClusterStatus::Paused;
        }
        if self.ready_replicas >= 1 {
            return ClusterStatus::Running;
        }
        let pod_name = format!("{}-0", self.host_name);
        let failing = pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(self.namespace.as_str()))
            .filter(|p| p.metadata.name.as_deref() == Some(pod_name.as_str()))
            .flat_map(pod_progress)
            .any(|e| matches!(e, ReadyEvent::Waiting { .. }));
        if failing { ClusterStatus::Failed } else { ClusterStatus::Starting }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statefulset(replicas: i32, annotations: &[(&str, &str)]) -> StatefulSet {
        let annotations =
            annotations.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        let labels = BTreeMap::from([
            (LABEL_APP.to_string(), APP_VCLUSTER.to_string()),
            (LABEL_RELEASE.to_string(), "dev".to_string()),
        ]);
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("dev".into()),
                namespace: Some("vc-dev".into()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::apps::v1::StatefulSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn upstream_pause_annotations_are_read() {
        let sts = statefulset(
            0,
            &[
                (ANNOTATION_PAUSED, "true"),
                (ANNOTATION_PAUSED_REPLICAS, "3"),
                (ANNOTATION_PAUSED_DATE, "2026-11-30T08:00:00.000Z"),
            ],
        );
        let record = record_from(&sts).unwrap();
        assert!(record.paused && record.is_paused() && !record.is_sleeping());
        assert_eq!(record.paused_replicas, Some(3));
        assert_eq!(record.paused_at, Some(at("2026-11-30T08:00:00Z")));
        assert_eq!(record.status(&[], at("2026-12-01T00:00:00Z")), ClusterStatus::Paused);
    }

    #[test]
    fn paused_marker_wins_over_replicas_and_expiry_over_pause() {
        // The upstream CLI annotates before the replicas reach zero.
        let marked = record_from(&statefulset(1, &[(ANNOTATION_PAUSED, "true")])).unwrap();
        assert_eq!(marked.status(&[], at("2026-12-01T00:00:00Z")), ClusterStatus::Paused);
        let expired = record_from(&statefulset(
            0,
            &[(ANNOTATION_PAUSED, "true"), (ANNOTATION_EXPIRES_AT, "2026-11-01T00:00:00Z")],
        ))
        .unwrap();
        assert_eq!(expired.status(&[], at("2026-12-01T00:00:00Z")), ClusterStatus::Expired);
        let other = record_from(&statefulset(1, &[(ANNOTATION_PAUSED, "false")])).unwrap();
        assert!(!other.is_paused());
    }

    #[test]
    fn idle_counts_from_the_last_activity_else_the_creation() {
        let spec = r#"{"sleepAfter":"30m"}"#;
        let created = statefulset(
            1,
            &[(ANNOTATION_SPEC, spec), (ANNOTATION_CREATED_AT, "2026-12-01T10:00:00Z")],
        );
        let record = record_from(&created).unwrap();
        assert!(!record.idle_expired(at("2026-12-01T10:29:59Z")));
        assert!(record.idle_expired(at("2026-12-01T10:30:00Z")));

        let active = statefulset(
            1,
            &[
                (ANNOTATION_SPEC, spec),
                (ANNOTATION_CREATED_AT, "2026-12-01T10:00:00Z"),
                (ANNOTATION_LAST_ACTIVITY, "2026-12-01T11:00:00Z"),
            ],
        );
        let record = record_from(&active).unwrap();
        assert!(!record.idle_expired(at("2026-12-01T11:10:00Z")));
        assert!(record.idle_expired(at("2026-12-01T11:31:00Z")));

        let no_limit =
            record_from(&statefulset(1, &[(ANNOTATION_CREATED_AT, "2026-12-01T10:00:00Z")]))
                .unwrap();
        assert!(!no_limit.idle_expired(at("2030-01-01T00:00:00Z")));
    }

    #[test]
    fn a_claimed_member_goes_by_its_claimants_name_and_keeps_its_host_name() {
        let mut sts = statefulset(1, &[]);
        sts.status = Some(k8s_openapi::api::apps::v1::StatefulSetStatus {
            ready_replicas: Some(1),
            ..Default::default()
        });
        let labels = sts.metadata.labels.as_mut().unwrap();
        labels.insert(LABEL_POOL.into(), "ci".into());
        let waiting = record_from(&sts).unwrap();
        assert!(waiting.is_pooled() && !waiting.is_claimed());
        assert_eq!(waiting.status(&[], at("2026-12-01T00:00:00Z")), ClusterStatus::Pooled);

        let labels = sts.metadata.labels.as_mut().unwrap();
        labels.insert(LABEL_CLAIMED_AS.into(), "pr-7".into());
        sts.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION_CLAIMED_AT.into(), "2026-12-01T10:00:00Z".into());
        let claimed = record_from(&sts).unwrap();
        assert_eq!((claimed.name.as_str(), claimed.host_name.as_str()), ("pr-7", "dev"));
        assert!(claimed.is_claimed() && !claimed.is_pooled());
        assert_eq!(claimed.pool.as_deref(), Some("ci"));
        assert_eq!(claimed.claimed_at, Some(at("2026-12-01T10:00:00Z")));
        assert_eq!(claimed.status(&[], at("2026-12-01T11:00:00Z")), ClusterStatus::Running);
    }

    #[test]
    fn a_cluster_gc_put_to_sleep_is_sleeping() {
        let record = record_from(&statefulset(
            0,
            &[(ANNOTATION_PAUSED, "true"), (ANNOTATION_PAUSE_REASON, PAUSE_REASON_IDLE)],
        ))
        .unwrap();
        assert!(record.is_sleeping());
        let by_user = record_from(&statefulset(
            0,
            &[(ANNOTATION_PAUSED, "true"), (ANNOTATION_PAUSE_REASON, "user")],
        ))
        .unwrap();
        assert!(!by_user.is_sleeping());
    }
}
