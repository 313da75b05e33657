//! Warm pools on the host: pool definitions (ConfigMaps labelled `vc.dev/pool-definition`),
//! their members (control planes labelled `vc.dev/pool`), starting members, claiming one with
//! a resourceVersion-guarded write, and the keeper that refills pools. Prints nothing; the
//! plan of each keeper pass comes from the pure `pool` module.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};

use super::lifecycle::{
    ANNOTATION_PAUSE_REASON, ANNOTATION_PAUSED_AT, ANNOTATION_PAUSED_DATE,
    ANNOTATION_PAUSED_REPLICAS, upstream_date,
};
use super::{ANNOTATION_PAUSED, ClusterRecord, Host, HostError, record_from};
use crate::engine::{
    ANNOTATION_CREATED_AT, ANNOTATION_EXPIRES_AT, ANNOTATION_SPEC, APP_VCLUSTER, FIELD_MANAGER,
    LABEL_APP, LABEL_MANAGED_BY, MANAGED_BY,
};
use crate::pool::{
    ANNOTATION_CLAIM_SECONDS, ANNOTATION_CLAIMED_AT, ANNOTATION_READY_SECONDS, LABEL_CLAIMED_AS,
    LABEL_POOL, LABEL_POOL_DEFINITION, LABEL_POOL_NAMESPACE, MEMBER_SUFFIX_LEN, MemberState,
    POOL_SPEC_KEY, PoolSpec, member_name, refill_plan,
};

/// Why the keeper paused a member: it waits in a paused pool.
pub const PAUSE_REASON_POOL: &str = "pool";

/// A pool as defined on the host.
#[derive(Clone, Debug)]
pub struct PoolRecord {
    pub name: String,
    /// Where its definition lives (members have their own namespaces).
    pub namespace: String,
    pub spec: PoolSpec,
    pub created_at: Option<Timestamp>,
}

/// What one keeper pass did to one pool.
#[derive(Clone, Debug, Default)]
pub struct KeeperPass {
    pub pool: String,
    pub started: Vec<String>,
    pub paused: Vec<String>,
    pub removed: Vec<String>,
    /// Members first seen ready in this pass, with their seconds from creation to ready.
    pub ready: Vec<(String, f64)>,
    /// Members that could not be started or changed, and why.
    pub failed: Vec<String>,
}

impl Host {
    /// Pool definitions, in every namespace (or `namespace`), with one LIST; a cluster-wide
    /// LIST that is forbidden falls back to `fallback`.
    pub async fn pools(
        &self,
        namespace: Option<&str>,
        fallback: &str,
    ) -> Result<Vec<PoolRecord>, HostError> {
        let params = ListParams::default().labels(LABEL_POOL_DEFINITION);
        let listed = match namespace {
            Some(ns) => Api::<ConfigMap>::namespaced(self.client.clone(), ns).list(&params).await,
            None => match Api::<ConfigMap>::all(self.client.clone()).list(&params).await {
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    Api::<ConfigMap>::namespaced(self.client.clone(), fallback).list(&params).await
                }
                other => other,
            },
        };
        let mut pools: Vec<PoolRecord> = listed
            .map_err(|e| self.explain("listing pools", e))?
            .items
            .iter()
            .filter_map(pool_from)
            .collect();
        pools.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(pools)
    }

    /// The pool `name`, defined in `namespace`.
    pub async fn pool(&self, namespace: &str, name: &str) -> Result<PoolRecord, HostError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let found = api
            .get_opt(&definition_name(name))
            .await
            .map_err(|e| self.explain(&format!("reading pool {name:?}"), e))?;
        found.as_ref().and_then(pool_from).ok_or_else(|| {
            HostError::NotFound(format!(
                "pool {name:?} not found in namespace {namespace:?} on context {:?} (see: vc pool list)",
                self.context
            ))
        })
    }

    /// Writes a new pool definition (creating its namespace when missing); an existing pool of
    /// that name is a conflict.
    pub async fn create_pool(
        &self,
        namespace: &str,
        name: &str,
        pool: &PoolSpec,
        now: Timestamp,
    ) -> Result<(), HostError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_string()),
                labels: Some(BTreeMap::from([
                    (LABEL_MANAGED_BY.into(), MANAGED_BY.into()),
                    (LABEL_POOL_NAMESPACE.into(), "true".into()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            // There already, or not ours to create: the ConfigMap's create tells.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
            Err(e) => return Err(self.explain(&format!("creating namespace {namespace}"), e)),
        }
        let text = serde_json::to_string(pool).map_err(|e| HostError::Api {
            what: format!("recording pool {name:?}"),
            message: e.to_string(),
        })?;
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(definition_name(name)),
                namespace: Some(namespace.to_string()),
                labels: Some(BTreeMap::from([
                    (LABEL_MANAGED_BY.into(), MANAGED_BY.into()),
                    (LABEL_POOL_DEFINITION.into(), name.to_string()),
                ])),
                annotations: Some(BTreeMap::from([(
                    ANNOTATION_CREATED_AT.into(),
                    now.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(POOL_SPEC_KEY.to_string(), text)])),
            ..Default::default()
        };
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        match api.create(&PostParams::default(), &map).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(HostError::Conflict(format!(
                "pool {name:?} already exists in namespace {namespace:?} on context {:?} (remove it with: vc pool delete {name})",
                self.context
            ))),
            Err(e) => Err(self.explain(&format!("creating pool {name:?}"), e)),
        }
    }

    /// Removes a pool's definition (its members are removed by the caller), and the namespace
    /// `vc pool create` made for definitions once it holds no other pool.
    pub async fn delete_pool_definition(&self, pool: &PoolRecord) -> Result<(), HostError> {
        let ns = pool.namespace.as_str();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        match api.delete(&definition_name(&pool.name), &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(self.explain(&format!("deleting pool {:?}", pool.name), e)),
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let made_for_pools = match namespaces.get_opt(ns).await {
            Ok(found) => found.is_some_and(|n| {
                let labels = n.metadata.labels.unwrap_or_default();
                labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
                    && labels.get(LABEL_POOL_NAMESPACE).map(String::as_str) == Some("true")
            }),
            // Not ours to look at: leave it.
            Err(_) => false,
        };
        if !made_for_pools {
            return Ok(());
        }
        // Other ConfigMaps there are the host's own (CA bundles the control plane publishes
        // in every namespace); another pool keeps it.
        let still_used = api
            .list(&ListParams::default().labels(LABEL_POOL_DEFINITION))
            .await
            .map_or(true, |l| !l.items.is_empty());
        if still_used {
            return Ok(());
        }
        match namespaces.delete(ns, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(self.explain(&format!("deleting namespace {ns}"), e)),
        }
    }

    /// The members of `pool` (every pool's when `None`), claimed or not, with one LIST.
    pub async fn pool_members(&self, pool: Option<&str>) -> Result<Vec<ClusterRecord>, HostError> {
        let selector = match pool {
            Some(pool) => format!("{LABEL_APP}={APP_VCLUSTER},{LABEL_POOL}={pool}"),
            None => format!("{LABEL_APP}={APP_VCLUSTER},{LABEL_POOL}"),
        };
        let api: Api<StatefulSet> = Api::all(self.client.clone());
        let listed = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.explain("listing pool members", e))?;
        Ok(listed.items.iter().filter_map(record_from).collect())
    }

    /// Starts one new member of `pool` (rendered and applied as `vc create` does, without
    /// waiting); returns its name. A member has no expiry until it is claimed.
    pub async fn start_member(
        &self,
        pool: &PoolRecord,
        now: Timestamp,
    ) -> Result<String, HostError> {
        let name = member_name(&pool.name, &random_suffix()?);
        let labels = BTreeMap::from([(LABEL_POOL.to_string(), pool.name.clone())]);
        let mut rendered =
            self.render_new_cluster(&name, &pool.spec.cluster, &labels, now).await.map_err(
                |e| HostError::Failed(format!("rendering a member of pool {:?}: {e:#}", pool.name)),
            )?;
        // The recorded spec keeps the pool's TTL; the expiry is set by the claim.
        rendered.expires_at = None;
        for object in &mut rendered.objects {
            if let Some(sts) = object.as_control_plane_mut()
                && let Some(annotations) = sts.metadata.annotations.as_mut()
            {
                annotations.remove(ANNOTATION_EXPIRES_AT);
            }
        }
        self.apply_all(&rendered.objects, false).await?;
        Ok(name)
    }

    /// Claims one unclaimed, warm member of `pool` for `claimant`: one merge patch carrying the
    /// resourceVersion it read, so of two claimants writing the same member one gets a 409 and
    /// moves on to the next. The member keeps its host objects and takes `claimant` as its
    /// name in vc's records; its creation time and expiry count from `now` (`ttl` replaces the
    /// pool's). `None` when no member could be claimed.
    pub async fn claim_member(
        &self,
        pool: &str,
        claimant: &str,
        ttl: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<ClusterRecord>, HostError> {
        let members = self.pool_members(Some(pool)).await?;
        let mut candidates: Vec<&ClusterRecord> = members
            .iter()
            .filter(|m| m.is_pooled() && !m.deleting && (m.ready_replicas >= 1 || m.paused))
            .collect();
        // Running members first; each claimant starts at another place in the list, so that
        // concurrent claimants mostly write different members.
        candidates.sort_by_key(|m| (m.paused, m.host_name.clone()));
        let running = candidates.iter().filter(|m| !m.paused).count();
        let offset = usize::from(random_suffix()?[0]);
        if running > 0 {
            candidates[..running].rotate_left(offset % running);
        }
        let paused = candidates.len() - running;
        if paused > 0 {
            candidates[running..].rotate_left(offset % paused);
        }
        for member in candidates {
            let mut cluster = member.spec.clone().unwrap_or_default();
            if let Some(ttl) = ttl {
                cluster.ttl = Some(ttl.to_string());
            }
            let expires_at = match cluster.ttl_duration() {
                Some(ttl) => Some(now.checked_add(ttl).map_err(|_| {
                    HostError::Failed(format!("TTL {:?} is too long", cluster.ttl))
                })?),
                None => None,
            };
            let spec_json = serde_json::to_string(&cluster).map_err(|e| HostError::Api {
                what: "recording the claim".into(),
                message: e.to_string(),
            })?;
            let patch = json!({
                "metadata": {
                    "resourceVersion": member.resource_version,
                    "labels": {LABEL_CLAIMED_AS: claimant},
                    "annotations": {
                        ANNOTATION_CLAIMED_AT: now.to_string(),
                        ANNOTATION_CREATED_AT: now.to_string(),
                        ANNOTATION_EXPIRES_AT: expires_at.map_or(Value::Null, |t| Value::String(t.to_string())),
                        ANNOTATION_SPEC: spec_json,
                    },
                },
            });
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &member.namespace);
            match api.patch(&member.host_name, &manager(), &Patch::Merge(&patch)).await {
                Ok(sts) => return Ok(record_from(&sts)),
                // Another claimant was first, or the member went away.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
                Err(e) => {
                    return Err(self.explain(&format!("claiming a member of pool {pool:?}"), e));
                }
            }
        }
        Ok(None)
    }

    /// Records on a claimed member how long its claim took.
    pub async fn record_claim_time(
        &self,
        record: &ClusterRecord,
        seconds: f64,
    ) -> Result<(), HostError> {
        let patch = json!({"metadata": {"annotations": {ANNOTATION_CLAIM_SECONDS: format!("{seconds:.3}")}}});
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &record.namespace);
        api.patch(&record.host_name, &manager(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| self.explain(&format!("recording the claim of {:?}", record.name), e))
    }

    /// One pass of the keeper over every pool: two LISTs (pools, members), then the starts,
    /// pauses and removals each pool's plan asks for, concurrently.
    pub async fn keep_pools_once(
        &self,
        fallback_namespace: &str,
        now: Timestamp,
    ) -> Result<Vec<KeeperPass>, HostError> {
        let (pools, members) =
            futures::try_join!(self.pools(None, fallback_namespace), self.pool_members(None))?;
        let passes = pools.iter().map(|pool| {
            let mine: Vec<&ClusterRecord> =
                members.iter().filter(|m| m.pool.as_deref() == Some(pool.name.as_str())).collect();
            self.keep_pool(pool, mine, now)
        });
        Ok(futures::future::join_all(passes).await)
    }

    /// One keeper pass over one pool, given its members as listed.
    pub async fn keep_pool(
        &self,
        pool: &PoolRecord,
        members: Vec<&ClusterRecord>,
        now: Timestamp,
    ) -> KeeperPass {
        let mut pass = KeeperPass { pool: pool.name.clone(), ..Default::default() };
        let states: Vec<MemberState> = members
            .iter()
            .map(|m| MemberState {
                name: m.host_name.clone(),
                ready: m.ready_replicas >= 1 && !m.paused,
                paused: m.paused,
                claimed: !m.is_pooled(),
                deleting: m.deleting,
            })
            .collect();
        let plan = refill_plan(&pool.spec, &states);
        let by_name = |name: &str| members.iter().find(|m| m.host_name == name).copied();

        // Refill time: first seen ready, from the member's creation.
        for member in members.iter().filter(|m| {
            m.is_pooled() && m.ready_replicas >= 1 && !m.paused && !has_ready_seconds(m)
        }) {
            let seconds = member
                .created_at
                .map_or(0.0, |t| (now.as_millisecond() - t.as_millisecond()) as f64 / 1000.0);
            let patch = json!({"metadata": {"annotations": {ANNOTATION_READY_SECONDS: format!("{seconds:.3}")}}});
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &member.namespace);
            if api.patch(&member.host_name, &manager(), &Patch::Merge(&patch)).await.is_ok() {
                pass.ready.push((member.host_name.clone(), seconds));
            }
        }

        let starts = (0..plan.start).map(|_| self.start_member(pool, now));
        let pauses = plan.pause.iter().filter_map(|n| by_name(n)).map(|member| async move {
            (member.host_name.clone(), self.pause_member(member, now).await)
        });
        let removals = plan.remove.iter().filter_map(|n| by_name(n)).map(|member| async move {
            (member.host_name.clone(), self.remove_member(member).await)
        });
        let (started, paused, removed) = futures::join!(
            futures::future::join_all(starts),
            futures::future::join_all(pauses),
            futures::future::join_all(removals)
        );
        for result in started {
            match result {
                Ok(name) => pass.started.push(name),
                Err(e) => pass.failed.push(format!("starting a member: {e}")),
            }
        }
        for (name, result) in paused {
            match result {
                Ok(true) => pass.paused.push(name),
                Ok(false) => {}
                Err(e) => pass.failed.push(format!("pausing {name}: {e}")),
            }
        }
        for (name, result) in removed {
            match result {
                Ok(true) => pass.removed.push(name),
                Ok(false) => {}
                Err(e) => pass.failed.push(format!("removing {name}: {e}")),
            }
        }
        pass
    }

    /// Removes an unclaimed member: its control plane first, with the resourceVersion it was
    /// listed at as a precondition (a member claimed since is left alone, and a claim after
    /// this finds it gone), so the next pass no longer counts it while its namespace
    /// finalizes; then the namespace. False when it was claimed meanwhile.
    pub async fn remove_member(&self, member: &ClusterRecord) -> Result<bool, HostError> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &member.namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(member.resource_version.clone()),
                uid: None,
            }),
            ..Default::default()
        };
        match api.delete(&member.host_name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(false),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(
                    self.explain(&format!("removing pool member {:?}", member.host_name), e)
                );
            }
        }
        let own = self.owns_namespace(&member.namespace, &member.host_name).await?;
        self.delete_cluster(member, own).await.map(|()| true)
    }

    /// Pauses a member waiting in a paused pool, as `vc pause` does, unless it was claimed
    /// meanwhile: the write carries the resourceVersion of the read that saw it unclaimed, so
    /// it cannot pause a cluster a claimant has just taken. False when it left it alone.
    async fn pause_member(
        &self,
        member: &ClusterRecord,
        now: Timestamp,
    ) -> Result<bool, HostError> {
        let fresh = self.fresh_record(member).await?;
        if !fresh.is_pooled() || fresh.paused {
            return Ok(false);
        }
        let replicas = fresh.replicas.max(1);
        let patch = json!({
            "metadata": {
                "resourceVersion": fresh.resource_version,
                "annotations": {
                    ANNOTATION_PAUSED: "true",
                    ANNOTATION_PAUSED_REPLICAS: replicas.to_string(),
                    ANNOTATION_PAUSED_DATE: upstream_date(now),
                    ANNOTATION_PAUSED_AT: now.to_string(),
                    ANNOTATION_PAUSE_REASON: PAUSE_REASON_POOL,
                },
            },
            "spec": {"replicas": 0},
        });
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &fresh.namespace);
        match api.patch(&fresh.host_name, &manager(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(false),
            Err(e) => Err(self.explain(&format!("pausing pool member {:?}", fresh.host_name), e)),
        }
    }
}

/// Keeps every pool full until `shutdown` resolves: a pass every `interval`, each reported to
/// `report`. The one entry point for `vc pool keep` and the operator; `clock` gives the time
/// (injectable for tests). A pass that fails (the host did not answer) is reported and the
/// next one tries again.
///
/// Pool definitions are watched: while none is defined the keeper makes no request beyond that
/// watch and runs its next pass when one appears, instead of listing every `interval`. If the
/// watch fails (no right to watch ConfigMaps in every namespace, say), it falls back to the
/// interval until the watch has listed again.
pub async fn run_pool_keeper(
    host: &Host,
    fallback_namespace: &str,
    interval: Duration,
    clock: impl Fn() -> Timestamp,
    shutdown: impl Future<Output = ()>,
    mut report: impl FnMut(Result<Vec<KeeperPass>, HostError>),
) {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};

    tokio::pin!(shutdown);
    let definitions = watcher(
        Api::<ConfigMap>::all(host.client.clone()),
        watcher::Config::default().labels(LABEL_POOL_DEFINITION),
    )
    .default_backoff();
    tokio::pin!(definitions);
    let mut gate = DefinitionGate::default();
    loop {
        let pass = host.keep_pools_once(fallback_namespace, clock());
        let none_defined = tokio::select! {
            result = pass => {
                let none = matches!(&result, Ok(passes) if passes.is_empty());
                report(result);
                none
            }
            () = &mut shutdown => return,
        };
        let sleep = tokio::time::sleep(interval);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep, if !(none_defined && gate.watching) => break,
                event = definitions.next(), if !gate.ended => {
                    let event = event.map(|e| e.as_ref().map(definition_event).map_err(|_| ()));
                    if gate.wakes(event, none_defined) {
                        break;
                    }
                }
                () = &mut shutdown => return,
            }
        }
    }
}

/// What a watch event on the pool definitions is, for [`DefinitionGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefinitionEvent {
    /// A relist begins.
    Init,
    /// An object of the relist.
    Listed,
    /// The relist is complete.
    ListDone,
    /// A definition was added, changed or removed.
    Changed,
}

fn definition_event(event: &kube::runtime::watcher::Event<ConfigMap>) -> DefinitionEvent {
    use kube::runtime::watcher::Event;
    match event {
        Event::Init => DefinitionEvent::Init,
        Event::InitApply(_) => DefinitionEvent::Listed,
        Event::InitDone => DefinitionEvent::ListDone,
        Event::Apply(_) | Event::Delete(_) => DefinitionEvent::Changed,
    }
}

/// The keeper's view of its watch on pool definitions: whether the watch is current (so that
/// with no pool defined the keeper may wait on it alone), and which events call for a pass.
#[derive(Debug, Default)]
struct DefinitionGate {
    /// The watch has listed and is current.
    watching: bool,
    /// The relist in progress has seen a definition.
    listed_one: bool,
    /// The stream ended (it does not, with a backoff; guarded all the same).
    ended: bool,
}

impl DefinitionGate {
    /// Takes in one item of the watch (`None` when it ended, `Some(Err(()))` for a failed
    /// watch) and says whether the keeper should run a pass now.
    fn wakes(&mut self, item: Option<Result<DefinitionEvent, ()>>, none_defined: bool) -> bool {
        match item {
            None => {
                self.ended = true;
                self.watching = false;
                false
            }
            // A failed watch: the interval takes over until it has listed again.
            Some(Err(())) => {
                self.watching = false;
                false
            }
            Some(Ok(DefinitionEvent::Init)) => {
                self.listed_one = false;
                false
            }
            Some(Ok(DefinitionEvent::Listed)) => {
                self.listed_one = true;
                false
            }
            Some(Ok(DefinitionEvent::ListDone)) => {
                self.watching = true;
                // A relist that found a definition while none was known: a pass now.
                none_defined && self.listed_one
            }
            Some(Ok(DefinitionEvent::Changed)) => true,
        }
    }
}

/// The ConfigMap that holds pool `name`'s definition.
fn definition_name(pool: &str) -> String {
    format!("pool-{pool}")
}

fn pool_from(map: &ConfigMap) -> Option<PoolRecord> {
    let name = map.metadata.labels.as_ref()?.get(LABEL_POOL_DEFINITION)?.clone();
    let spec = serde_json::from_str(map.data.as_ref()?.get(POOL_SPEC_KEY)?).ok()?;
    Some(PoolRecord {
        name,
        namespace: map.metadata.namespace.clone().unwrap_or_default(),
        spec,
        created_at: map
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_CREATED_AT))
            .and_then(|t| t.parse().ok()),
    })
}

fn has_ready_seconds(record: &ClusterRecord) -> bool {
    ready_seconds(record).is_some()
}

/// How long a member took to become ready, as the keeper recorded it.
pub fn ready_seconds(record: &ClusterRecord) -> Option<f64> {
    record.annotations.get(ANNOTATION_READY_SECONDS).and_then(|v| v.parse().ok())
}

/// How long the claim of a member took, as its claimant recorded it.
pub fn claim_seconds(record: &ClusterRecord) -> Option<f64> {
    record.annotations.get(ANNOTATION_CLAIM_SECONDS).and_then(|v| v.parse().ok())
}

fn manager() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

fn random_suffix() -> Result<[u8; MEMBER_SUFFIX_LEN], HostError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; MEMBER_SUFFIX_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HostError::Failed("no random numbers available".into()))?;
    Ok(bytes)
}

#[cfg(test)]
mod keeper_tests {
    use super::{DefinitionEvent as E, DefinitionGate};

    #[test]
    fn with_no_pool_the_keeper_waits_on_the_watch_and_wakes_for_a_definition() {
        let mut gate = DefinitionGate::default();
        assert!(!gate.watching, "until the watch has listed, the interval runs");
        assert!(!gate.wakes(Some(Ok(E::Init)), true));
        assert!(!gate.wakes(Some(Ok(E::ListDone)), true), "an empty list: nothing to do");
        assert!(gate.watching, "now the keeper may wait on the watch alone");
        assert!(gate.wakes(Some(Ok(E::Changed)), true), "a pool was defined");
        // A failed watch hands back to the interval; a relist that finds a pool wakes it.
        assert!(!gate.wakes(Some(Err(())), true));
        assert!(!gate.watching);
        assert!(!gate.wakes(Some(Ok(E::Init)), true));
        assert!(!gate.wakes(Some(Ok(E::Listed)), true));
        assert!(gate.wakes(Some(Ok(E::ListDone)), true));
        // With pools known, a relist alone is no reason for an extra pass.
        assert!(!gate.wakes(Some(Ok(E::Init)), false));
        assert!(!gate.wakes(Some(Ok(E::Listed)), false));
        assert!(!gate.wakes(Some(Ok(E::ListDone)), false));
        assert!(!gate.wakes(None, false));
        assert!(gate.ended && !gate.watching, "an ended watch is never polled again");
    }
}
