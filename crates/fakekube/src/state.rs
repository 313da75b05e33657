//! The object store: one generic code path for every resource type, keyed by type, namespace
//! and name, with a global resourceVersion counter, a bounded watch-event history and the
//! write verbs (create, update, patch, apply, delete). Controllers react to its events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::admission;
use crate::apply;
use crate::controllers;
use crate::fields::{self, MergeMode};
use crate::registry::{self, ResourceDef};
use crate::status::{ApiError, FieldError};
use crate::util;
use crate::validation;

/// Prunes, defaults and validates a custom resource of a CRD with a schema, as the
/// apiextensions-apiserver does on writes: the whole object on main-resource writes, only
/// `.status` on status-subresource writes. Returns the validation errors.
fn custom_resource(
    def: &ResourceDef,
    obj: &mut Value,
    old: Option<&Value>,
    sub: Option<&str>,
) -> Vec<FieldError> {
    let Some(crd) = &def.crd else { return Vec::new() };
    let Some(schema) = &crd.schema else { return Vec::new() };
    crate::schema::prune(schema, obj);
    crate::schema::apply_defaults(schema, obj);
    match sub {
        Some("status") => crate::schema::validate_status_write(crd, obj, old),
        Some(_) => Vec::new(),
        None => crate::schema::validate_object_write(crd, obj, old),
    }
}

/// One change, as sent to watchers.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub key: String,
    pub namespace: String,
    pub kind: &'static str,
    pub object: Value,
    /// The object before a MODIFIED change (so filtered watches can send ADDED / DELETED when
    /// an object starts or stops matching).
    pub previous: Option<Value>,
}

/// How simulated pods behave.
#[derive(Clone, Debug, PartialEq)]
pub enum PodBehaviour {
    /// Scheduled, then Running and Ready after the ready delay.
    Ready,
    /// Scheduled and Running but never Ready.
    NeverReady,
    /// Pending with `PodScheduled=False`, reason Unschedulable, and a FailedScheduling event.
    Unschedulable { message: String },
    /// Containers waiting with the given reason (`ErrImagePull` / `ImagePullBackOff`) and a
    /// Warning `Failed` event.
    ImagePullFailure { reason: String, message: String },
    /// Containers in CrashLoopBackOff with restarts, last exit code and these log lines.
    CrashLoop { exit_code: i64, logs: Vec<String> },
}

impl PodBehaviour {
    pub fn unschedulable() -> Self {
        PodBehaviour::Unschedulable {
            message: "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.".to_string(),
        }
    }

    pub fn image_pull_failure() -> Self {
        PodBehaviour::ImagePullFailure {
            reason: "ImagePullBackOff".to_string(),
            message: "rpc error: code = NotFound desc = failed to pull and unpack image: not found"
                .to_string(),
        }
    }

    pub fn crash_loop(logs: &[&str]) -> Self {
        PodBehaviour::CrashLoop { exit_code: 1, logs: logs.iter().map(|s| s.to_string()).collect() }
    }
}

/// Behaviour knobs shared by the store and the simulated controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Time from pod creation to Ready (zero: in the same write).
    pub ready_delay: Duration,
    /// How long a deleted namespace stays Terminating.
    pub termination_delay: Duration,
    /// How long a deleted pod stays Terminating (its grace period as the fake plays it).
    pub pod_grace: Duration,
    /// Number of watch events kept for resuming watches; older resourceVersions get 410.
    pub history_limit: usize,
    /// Whether workload, pod and engine controllers run.
    pub controllers: bool,
    /// Pod behaviour for all clusters without their own.
    pub default_behaviour: PodBehaviour,
    /// Pod behaviour by virtual-cluster name (pod label `release` or
    /// `vcluster.loft.sh/managed-by`).
    pub behaviours: HashMap<String, PodBehaviour>,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Server written into the engine kubeconfig Secret.
    pub engine_server: String,
    /// Whether the engine's kubeconfig Secret appears when the control plane is Ready.
    pub engine_secret: bool,
    /// The admin kubeconfig the engine's certificate Secret `<name>-certs` holds; the Secret
    /// appears once the control-plane pod is Running (before it is Ready), as the engine
    /// writes it before starting the API server. None: no such Secret (default).
    pub engine_admin_conf: Option<String>,
    /// Images no node has and none can pull: containers using them wait in ErrImagePull.
    pub absent_images: std::collections::HashSet<String>,
    /// The node's address, the `hostIP` of every pod.
    pub node_address: String,
    /// The address a load-balancer controller gives every Service of type LoadBalancer
    /// (an IP, or else a hostname); None: none runs, and such Services stay pending.
    pub load_balancer_address: Option<String>,
    /// The address an ingress controller publishes in the status of every Ingress (an IP,
    /// or else a hostname); None: none runs, and Ingresses get no address.
    pub ingress_address: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ready_delay: Duration::from_millis(50),
            termination_delay: Duration::from_millis(200),
            pod_grace: Duration::from_millis(100),
            history_limit: 10_000,
            controllers: true,
            default_behaviour: PodBehaviour::Ready,
            behaviours: HashMap::new(),
            bookmark_interval: Duration::from_secs(5),
            engine_server: "https://localhost:8443".to_string(),
            engine_secret: true,
            engine_admin_conf: None,
            absent_images: Default::default(),
            node_address: "10.0.0.10".to_string(),
            load_balancer_address: None,
            ingress_address: None,
        }
    }
}

/// Work a controller asked to run later.
#[derive(Clone, Debug)]
pub enum Deferred {
    PodReady {
        namespace: String,
        name: String,
        uid: String,
    },
    FinalizeNamespace {
        name: String,
        uid: String,
    },
    /// A deleted pod's grace period is over.
    RemovePod {
        namespace: String,
        name: String,
        uid: String,
    },
}

type Spawner = Box<dyn Fn(Duration, Deferred) + Send>;
type PodHook = Box<dyn Fn(&str, &str) + Send>;

/// Options of one write.
#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    pub subresource: Option<String>,
    /// Keep `status` from the body on create (state access from tests).
    pub keep_status: bool,
    /// The requesting user when `act_as` is on (RBAC escalation checks).
    pub user: Option<Arc<crate::rbac::User>>,
    /// Skip admission plugins (state access from tests).
    pub skip_admission: bool,
}

/// Patch flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply { force: bool },
}

/// Options of one delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    pub orphan: bool,
    pub dry_run: bool,
    pub precondition_rv: Option<String>,
    pub precondition_uid: Option<String>,
    /// `gracePeriodSeconds` of the DeleteOptions (pods; 0 removes at once).
    pub grace_period_seconds: Option<i64>,
}

pub struct State {
    pub defs: Vec<ResourceDef>,
    objects: HashMap<String, BTreeMap<(String, String), Value>>,
    rv: u64,
    history: VecDeque<Arc<WatchEvent>>,
    floor: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    pending: VecDeque<Arc<WatchEvent>>,
    deferred_now: VecDeque<Deferred>,
    draining: bool,
    spawner: Option<Spawner>,
    /// Called with (namespace, name) when a pod is deleted.
    pub on_pod_deleted: Option<PodHook>,
    /// Called with a pod whose shell init containers must run (see exec.rs).
    pub on_init_containers: Option<Box<dyn Fn(Value) + Send>>,
    pub settings: Settings,
    pub logs: HashMap<(String, String), Vec<String>>,
    /// Uids of deleted pods still in their grace period.
    terminating_pods: std::collections::HashSet<String>,
    /// Namespaces (name, uid) whose content is being removed.
    finalizing: std::collections::HashSet<(String, String)>,
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"].as_object_mut().expect("made an object above")
}

/// Label keys and values checked as the real server does.
fn validate_labels(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(labels) = meta(obj)["labels"].as_object() else { return errs };
    let name_ok = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
    };
    for (k, v) in labels {
        let name = k.rsplit_once('/').map_or(k.as_str(), |(_, n)| n);
        if !name_ok(name) {
            errs.push(FieldError::invalid("metadata.labels", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
        }
        let value = v.as_str().unwrap_or_default();
        if value.len() > 63 {
            errs.push(FieldError::invalid(
                "metadata.labels",
                value,
                "must be no more than 63 characters",
            ));
        }
        if !value.is_empty() && !name_ok(&value[..value.len().min(63)]) {
            errs.push(FieldError::invalid("metadata.labels", value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
        }
    }
    errs
}

/// The `kubernetes` Endpoints and EndpointSlice for API server addresses (ip, port).
fn api_endpoint_objects(endpoints: &[(String, u16)]) -> (Value, Value) {
    let mut subsets: Vec<Value> = Vec::new();
    for (ip, port) in endpoints {
        match subsets.iter_mut().find(|s| s["ports"][0]["port"] == *port) {
            Some(s) => {
                if let Some(a) = s["addresses"].as_array_mut() {
                    a.push(json!({"ip": ip}));
                }
            }
            None => subsets.push(json!({
                "addresses": [{"ip": ip}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            })),
        }
    }
    let ep = json!({
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": subsets,
    });
    let port = endpoints.first().map_or(6443, |(_, p)| *p);
    let ipv6 = endpoints.first().is_some_and(|(ip, _)| ip.contains(':'));
    let addrs: Vec<Value> = endpoints
        .iter()
        .filter(|(_, p)| *p == port)
        .map(|(ip, _)| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    let slice = json!({
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if ipv6 { "IPv6" } else { "IPv4" },
        "endpoints": addrs,
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    (ep, slice)
}

/// Everything but `resourceVersion` and managed-field timestamps, to detect no-op writes.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
            for e in mf {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    o
}

impl State {
    pub fn new(settings: Settings) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        let mut s = State {
            defs: registry::builtin(),
            objects: HashMap::new(),
            rv: 0,
            history: VecDeque::new(),
            floor: 0,
            tx,
            pending: VecDeque::new(),
            deferred_now: VecDeque::new(),
            draining: false,
            spawner: None,
            on_pod_deleted: None,
            on_init_containers: None,
            settings,
            logs: HashMap::new(),
            terminating_pods: Default::default(),
            finalizing: Default::default(),
        };
        s.seed();
        s
    }

    fn seed(&mut self) {
        let opts = WriteOpts { manager: "kube-apiserver".into(), ..Default::default() };
        let ns = self.def_for("v1", "Namespace").expect("built in");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = self.create(&ns, "", json!({"metadata": {"name": name}}), &opts);
        }
        let node = self.def_for("v1", "Node").expect("built in");
        let keep = WriteOpts { keep_status: true, ..opts.clone() };
        let _ = self.create(&node, "", controllers::node_object("fake-node"), &keep);
        let svc = self.def_for("v1", "Service").expect("built in");
        let _ = self.create(
            &svc,
            "default",
            json!({
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            }),
            &opts,
        );
        let ep = self.def_for("v1", "Endpoints").expect("built in");
        let (ep_obj, slice_obj) = api_endpoint_objects(&[("172.18.0.2".to_string(), 6443)]);
        let _ = self.create(&ep, "default", ep_obj, &opts);
        let slice = self.def_for("discovery.k8s.io/v1", "EndpointSlice").expect("built in");
        let _ = self.create(&slice, "default", slice_obj, &opts);
        // As on kind: one default class, binding when a pod uses the claim.
        let class = self.def_for("storage.k8s.io/v1", "StorageClass").expect("built in");
        let _ = self.create(
            &class,
            "",
            json!({
                "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "rancher.io/local-path",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
            }),
            &opts,
        );
        let cidr = self.def_for("networking.k8s.io/v1", "ServiceCIDR").expect("built in");
        let _ = self.create(
            &cidr,
            "",
            json!({
                "metadata": {"name": "kubernetes", "finalizers": ["networking.k8s.io/service-cidr-finalizer"]},
                "spec": {"cidrs": ["10.96.0.0/12"]},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "", "message": "Kubernetes Service CIDR is ready", "lastTransitionTime": util::now_rfc3339()}]},
            }),
            &keep,
        );
    }

    /// Points the `kubernetes` Endpoints and EndpointSlice in `default` at these addresses.
    pub fn set_api_endpoints(&mut self, endpoints: &[(String, u16)]) {
        let (ep_obj, slice_obj) = api_endpoint_objects(endpoints);
        for (api_version, kind, mut obj) in
            [("v1", "Endpoints", ep_obj), ("discovery.k8s.io/v1", "EndpointSlice", slice_obj)]
        {
            let Some(def) = self.def_for(api_version, kind) else { continue };
            let opts = WriteOpts { manager: "kube-apiserver".into(), ..Default::default() };
            match self.get(&def, "default", "kubernetes").cloned() {
                Some(old) => {
                    obj["metadata"] = old["metadata"].clone();
                    let _ = self.finish_update(&def, &old, obj, &opts, false);
                }
                None => {
                    let _ = self.create(&def, "default", obj, &opts);
                }
            }
        }
        self.drain();
    }

    pub fn set_spawner(&mut self, spawner: Spawner) {
        self.spawner = Some(spawner);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Events after `rv`, or `Err(oldest available - 1)` when they are no longer kept.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<WatchEvent>>, u64> {
        if rv < self.floor {
            return Err(self.floor);
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Forgets the event history so that any older resourceVersion gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.floor = self.rv;
    }

    pub fn find_def(&self, group: &str, version: &str, plural: &str) -> Option<ResourceDef> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    pub fn def_for(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.defs.iter().find(|d| d.api_version() == api_version && d.kind == kind).cloned()
    }

    /// Resolves a kubectl-style name: plural, singular, kind, short name, optionally `.group`.
    pub fn resolve(&self, name: &str) -> Option<ResourceDef> {
        let lower = name.to_lowercase();
        let matches = |d: &ResourceDef, n: &str| {
            d.plural == n
                || d.singular == n
                || d.kind.to_lowercase() == n
                || d.short_names.iter().any(|s| s == n)
        };
        self.defs
            .iter()
            .find(|d| {
                matches(d, &lower)
                    && (d.group.is_empty()
                        || !self.defs.iter().any(|o| o.group.is_empty() && matches(o, &lower)))
            })
            .or_else(|| {
                let (n, g) = lower.split_once('.')?;
                self.defs.iter().find(|d| d.group == g && matches(d, n))
            })
            .cloned()
    }

    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<&Value> {
        let ns = if def.namespaced { ns } else { "" };
        self.objects.get(&def.store_key())?.get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a type, in one namespace or all, sorted by namespace and name.
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> Vec<&Value> {
        let Some(map) = self.objects.get(&def.store_key()) else { return Vec::new() };
        match ns.filter(|_| def.namespaced) {
            Some(ns) => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v)
                .collect(),
            None => map.values().collect(),
        }
    }

    pub fn count(&self, def: &ResourceDef, ns: Option<&str>) -> usize {
        self.list(def, ns).len()
    }

    /// Every stored object in a namespace, with its type.
    pub fn objects_in_namespace(&self, ns: &str) -> Vec<(ResourceDef, Value)> {
        let mut out = Vec::new();
        for def in self.defs.iter().filter(|d| d.namespaced) {
            for obj in self.list(def, Some(ns)) {
                out.push((def.clone(), obj.clone()));
            }
        }
        out.sort_by_key(|(d, o)| (d.store_key(), meta_str(o, "name").to_string()));
        out.dedup_by(|a, b| {
            a.0.store_key() == b.0.store_key() && meta_str(&a.1, "name") == meta_str(&b.1, "name")
        });
        out
    }

    /// All objects whose `ownerReferences` name `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<(ResourceDef, Value)> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for def in &self.defs {
            if !seen.insert(def.store_key()) {
                continue;
            }
            for obj in self.list(def, None) {
                let owned = meta(obj)["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid));
                if owned {
                    out.push((def.clone(), obj.clone()));
                }
            }
        }
        out
    }

    fn namespace_phase(&self, ns: &str) -> Option<String> {
        let def = self.defs.iter().find(|d| d.group.is_empty() && d.plural == "namespaces")?;
        let obj = self.get(def, "", ns)?;
        Some(obj["status"]["phase"].as_str().unwrap_or("Active").to_string())
    }

    fn commit(&mut self, def: &ResourceDef, mut obj: Value, kind: &'static str) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let ns =
            if def.namespaced { meta_str(&obj, "namespace").to_string() } else { String::new() };
        let name = meta_str(&obj, "name").to_string();
        let map = self.objects.entry(def.store_key()).or_default();
        let previous = if kind == "DELETED" {
            map.remove(&(ns.clone(), name));
            None
        } else {
            map.insert((ns.clone(), name), obj.clone()).filter(|_| kind == "MODIFIED")
        };
        let ev = Arc::new(WatchEvent {
            rv: self.rv,
            key: def.store_key(),
            namespace: ns,
            kind,
            object: obj.clone(),
            previous,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > self.settings.history_limit.max(1) {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
        let _ = self.tx.send(ev.clone());
        self.pending.push_back(ev);
        obj
    }

    /// Schedules controller work after `delay` (immediately when zero or without a runtime).
    pub fn schedule(&mut self, delay: Duration, work: Deferred) {
        match &self.spawner {
            Some(spawn) if !delay.is_zero() => spawn(delay, work),
            _ => self.deferred_now.push_back(work),
        }
    }

    /// Runs deferred work now (called by the timer tasks).
    pub fn run_deferred(&mut self, work: Deferred) {
        self.deferred_now.push_back(work);
        self.drain();
    }

    /// Lets the controllers react to every pending event until nothing changes.
    fn drain(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        loop {
            if let Some(work) = self.deferred_now.pop_front() {
                controllers::run_deferred(self, work);
                continue;
            }
            let Some(ev) = self.pending.pop_front() else { break };
            controllers::on_event(self, &ev);
        }
        self.draining = false;
    }

    /// Creates an object (POST).
    pub fn create(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request must be an object"));
        }
        let body_ns = meta_str(&obj, "namespace").to_string();
        if def.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta_mut(&mut obj).insert("namespace".into(), json!(ns));
        } else {
            meta_mut(&mut obj).remove("namespace");
        }
        let mut name = meta_str(&obj, "name").to_string();
        let admission_name =
            if name.is_empty() { meta_str(&obj, "generateName").to_string() } else { name.clone() };
        if name.is_empty() {
            let generate = meta_str(&obj, "generateName").to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    "",
                    &[FieldError::required("metadata.name", "name or generateName is required")],
                ));
            }
            name = format!("{generate}{}", util::random_suffix(5));
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        let mut errs = util::validate_name(def.name_rule, &name);
        errs.extend(validate_labels(&obj));
        if !errs.is_empty() {
            return Err(ApiError::invalid(def, &name, &errs));
        }
        if def.namespaced {
            match self.namespace_phase(ns).as_deref() {
                None => return Err(ApiError::namespace_not_found(ns)),
                Some("Terminating") => return Err(ApiError::namespace_terminating(def, &name, ns)),
                _ => {}
            }
        }
        if let Some(user) = &opts.user {
            self.check_escalation(def, ns, &name, &obj, None, user)?;
        }
        if self.get(def, ns, &name).is_some() {
            return Err(ApiError::already_exists(def, &name));
        }
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(util::uuid()));
            m.insert("creationTimestamp".into(), json!(util::now_rfc3339()));
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            if def.tracks_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if let Some(m) = obj.as_object_mut().filter(|_| def.has_status() && !opts.keep_status) {
            m.remove("status");
        }
        controllers::default_fields(def, &mut obj);
        admission::canonicalize(def, &mut obj)?;
        if !opts.skip_admission {
            admission::mutate(self, def, ns, &admission_name, &mut obj)?;
        }
        let mut errs = validation::validate(def, &obj, None);
        errs.extend(custom_resource(def, &mut obj, None, None));
        if !errs.is_empty() {
            return Err(ApiError::invalid(def, &name, &errs));
        }
        if !opts.skip_admission {
            admission::validate(self, def, ns, &admission_name, &obj)?;
        }
        let managed_by_apply = meta(&obj)["managedFields"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["operation"] == "Apply"));
        if !managed_by_apply {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            apply::track_update(def, None, &mut obj, &opts.manager, None);
        }
        controllers::allocate_node_ports(self, def, ns, &name, &mut obj, None)?;
        controllers::allocate_fields(def, &mut obj, None);
        if opts.dry_run {
            return Ok(obj);
        }
        let out = self.commit(def, obj, "ADDED");
        self.drain();
        Ok(out)
    }

    /// Replaces an object or its status (PUT).
    pub fn update(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let Some(old) = self.get(def, ns, name).cloned() else {
            return Err(ApiError::not_found(def, name));
        };
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = meta_str(&body, "resourceVersion");
        if !body_rv.is_empty() && body_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(def, name));
        }
        self.finish_update(def, &old, body, opts, false)
    }

    fn finish_update(
        &mut self,
        def: &ResourceDef,
        old: &Value,
        body: Value,
        opts: &WriteOpts,
        managed_by_apply: bool,
    ) -> Result<Value, ApiError> {
        let name = meta_str(old, "name").to_string();
        let sub = opts.subresource.as_deref();
        if let (Some(user), None) = (&opts.user, sub) {
            let ns = meta_str(old, "namespace").to_string();
            self.check_escalation(def, &ns, &name, &body, Some(old), user)?;
        }
        let mut new = match sub {
            Some("status") => {
                let mut n = old.clone();
                n["status"] = body["status"].clone();
                if managed_by_apply {
                    n["metadata"]["managedFields"] = body["metadata"]["managedFields"].clone();
                }
                n
            }
            _ => {
                let mut n = body;
                if def.has_status() {
                    match old.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(m) = n.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                n
            }
        };
        new["apiVersion"] = json!(def.api_version());
        new["kind"] = json!(def.kind);
        {
            let old_meta = old["metadata"].clone();
            let m = meta_mut(&mut new);
            for key in
                ["uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "generation"]
            {
                match old_meta.get(key) {
                    Some(v) => m.insert(key.into(), v.clone()),
                    None => m.remove(key),
                };
            }
            let keep_old = !managed_by_apply && m.get("managedFields").is_none_or(Value::is_null);
            if let Some(mf) = old_meta.get("managedFields").filter(|_| keep_old) {
                m.insert("managedFields".into(), mf.clone());
            }
        }
        if sub.is_none() {
            controllers::default_fields(def, &mut new);
            admission::canonicalize(def, &mut new)?;
        }
        let mut errs = validate_labels(&new);
        if sub.is_none() {
            errs.extend(validation::validate(def, &new, Some(old)));
        }
        errs.extend(custom_resource(def, &mut new, Some(old), sub));
        if !errs.is_empty() {
            return Err(ApiError::invalid(def, &name, &errs));
        }
        if !managed_by_apply {
            apply::track_update(def, Some(old), &mut new, &opts.manager, sub);
        }
        if sub.is_none() {
            let ns = meta_str(old, "namespace").to_string();
            controllers::allocate_node_ports(self, def, &ns, &name, &mut new, Some(old))?;
            controllers::allocate_fields(def, &mut new, Some(old));
        }
        if def.tracks_generation && sub.is_none() {
            let spec_changed = if def.from_crd {
                // Without a status subresource, status is ordinary content and bumps it.
                let strip = |o: &Value| {
                    let mut o = o.clone();
                    if let Some(m) = o.as_object_mut() {
                        m.remove("metadata");
                        if def.has_status() {
                            m.remove("status");
                        }
                    }
                    o
                };
                strip(old) != strip(&new)
            } else {
                old.get("spec") != new.get("spec")
            };
            if spec_changed {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                meta_mut(&mut new).insert("generation".into(), json!(g));
            }
        }
        if comparable(old) == comparable(&new) || opts.dry_run {
            return Ok(if opts.dry_run { new } else { old.clone() });
        }
        let finalized = meta(&new)["deletionTimestamp"].is_string()
            && meta(&new)["finalizers"].as_array().is_none_or(Vec::is_empty)
            && def.plural != "namespaces"
            && !self.terminating_pods.contains(meta_str(&new, "uid"));
        let out = if finalized {
            let out = self.commit(def, new, "DELETED");
            self.collect_garbage(&out, false);
            out
        } else {
            self.commit(def, new, "MODIFIED")
        };
        self.drain();
        Ok(out)
    }

    /// Patches an object or its status; apply patches create missing objects.
    /// Returns the object and whether it was created.
    pub fn patch(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<(Value, bool), ApiError> {
        let existing = self.get(def, ns, name).cloned();
        if let PatchKind::Apply { force } = kind {
            let body_name = meta_str(body, "name");
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let sub = opts.subresource.as_deref();
            if let Some(schema) = def.crd.as_ref().and_then(|c| c.schema.as_ref())
                && let Some(why) = crate::schema::apply_type_error(schema, body)
            {
                return Err(ApiError::typed_patch(def, body, &why));
            }
            let mut merged = apply::apply(def, existing.as_ref(), body, &opts.manager, force, sub)?;
            return match existing {
                None => {
                    if sub.is_some() {
                        return Err(ApiError::not_found(def, name));
                    }
                    meta_mut(&mut merged).insert("name".into(), json!(name));
                    let out = self.create(def, ns, merged, opts)?;
                    Ok((out, true))
                }
                Some(old) => {
                    let rv = meta_str(body, "resourceVersion");
                    if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
                        return Err(ApiError::stale(def, name));
                    }
                    let out = self.finish_update(def, &old, merged, opts, true)?;
                    Ok((out, false))
                }
            };
        }
        let Some(old) = existing else { return Err(ApiError::not_found(def, name)) };
        let mut new = old.clone();
        match kind {
            PatchKind::Merge => fields::merge_patch(&mut new, body),
            PatchKind::Strategic => fields::merge(&mut new, body, MergeMode::Strategic),
            PatchKind::Json => fields::json_patch(&mut new, body)
                .map_err(|e| ApiError::new(422, "Invalid", e, None))?,
            PatchKind::Apply { .. } => unreachable!("handled above"),
        }
        let rv = meta_str(&new, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(def, name));
        }
        if meta_str(&new, "name") != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let out = self.finish_update(def, &old, new, opts, false)?;
        Ok((out, false))
    }

    /// Deletes an object; namespaces and objects with finalizers only get marked.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let Some(old) = self.get(def, ns, name).cloned() else {
            return Err(ApiError::not_found(def, name));
        };
        if let Some(rv) = &opts.precondition_rv {
            let have = meta_str(&old, "resourceVersion");
            if rv != have {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{}\": Precondition failed: ResourceVersion in precondition: {}, ResourceVersion in object meta: {}",
                        def.group_resource(),
                        name,
                        rv,
                        have
                    ),
                    Some(json!({"name": name, "kind": def.plural})),
                ));
            }
        }
        if let Some(uid) = &opts.precondition_uid {
            let have = meta_str(&old, "uid");
            if uid != have {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{}\": Precondition failed: UID in precondition: {}, UID in object meta: {}",
                        def.group_resource(),
                        name,
                        uid,
                        have
                    ),
                    Some(json!({"name": name, "kind": def.plural})),
                ));
            }
        }
        // The real namespace registry refuses a second delete while the namespace finalizes.
        if def.plural == "namespaces" && meta(&old)["deletionTimestamp"].is_string() {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on namespaces \"{name}\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system."
                ),
                Some(json!({"name": name, "kind": "namespaces"})),
            ));
        }
        if opts.dry_run {
            return Ok(old);
        }
        if def.group.is_empty() && def.plural == "namespaces" {
            if old["status"]["phase"] == "Terminating" {
                return Ok(old);
            }
            let mut new = old.clone();
            meta_mut(&mut new).insert("deletionTimestamp".into(), json!(util::now_rfc3339()));
            new["status"]["phase"] = json!("Terminating");
            let uid = meta_str(&new, "uid").to_string();
            let out = self.commit(def, new, "MODIFIED");
            let delay = self.settings.termination_delay;
            self.schedule(delay, Deferred::FinalizeNamespace { name: name.to_string(), uid });
            self.drain();
            return Ok(out);
        }
        let has_finalizers = meta(&old)["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if def.group.is_empty() && def.plural == "pods" {
            return Ok(self.delete_pod(def, old, opts, has_finalizers));
        }
        if has_finalizers {
            if meta(&old)["deletionTimestamp"].is_string() {
                return Ok(old);
            }
            let mut new = old.clone();
            meta_mut(&mut new).insert("deletionTimestamp".into(), json!(util::now_rfc3339()));
            meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(0));
            let out = self.commit(def, new, "MODIFIED");
            self.drain();
            return Ok(out);
        }
        let out = self.commit(def, old, "DELETED");
        self.collect_garbage(&out, opts.orphan);
        self.drain();
        Ok(out)
    }

    /// RBAC escalation prevention for Role / ClusterRole / (Cluster)RoleBinding writes by a
    /// non-privileged user, as `pkg/registry/rbac/*/policybased` does.
    fn check_escalation(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        obj: &Value,
        old: Option<&Value>,
        user: &crate::rbac::User,
    ) -> Result<(), ApiError> {
        use crate::rbac::{Attributes, PolicyRule};
        const RBAC: &str = "rbac.authorization.k8s.io";
        if def.group != RBAC || user.groups.iter().any(|g| g == "system:masters") {
            return Ok(());
        }
        let ns = if def.namespaced { ns } else { "" };
        let attrs = |verb: &str, resource: &str, n: Option<&str>| Attributes {
            verb: verb.to_string(),
            group: RBAC.to_string(),
            resource: resource.to_string(),
            name: n.map(str::to_string),
            namespace: ns.to_string(),
            ..Default::default()
        };
        match def.plural.as_str() {
            "roles" | "clusterroles" => {
                if old.is_some_and(|o| o["rules"] == obj["rules"]) {
                    return Ok(());
                }
                let request_name = old.map(|_| name);
                if user.can(&attrs("escalate", &def.plural, request_name)) {
                    return Ok(());
                }
                let rules = PolicyRule::parse(&obj["rules"]);
                user.confirm_no_escalation(ns, &rules)
                    .map_err(|msg| ApiError::forbidden(def, name, &msg))
            }
            "rolebindings" | "clusterrolebindings" => {
                if old.is_some_and(|o| {
                    o["roleRef"] == obj["roleRef"] && o["subjects"] == obj["subjects"]
                }) {
                    return Ok(());
                }
                let role_ref = &obj["roleRef"];
                let ref_name = role_ref["name"].as_str().unwrap_or_default();
                let (role_def, role_ns) = match role_ref["kind"].as_str() {
                    Some("ClusterRole") => {
                        (self.def_for("rbac.authorization.k8s.io/v1", "ClusterRole"), "")
                    }
                    _ => (self.def_for("rbac.authorization.k8s.io/v1", "Role"), ns),
                };
                let Some(role_def) = role_def else { return Ok(()) };
                if user.can(&attrs("bind", &role_def.plural, Some(ref_name))) {
                    return Ok(());
                }
                if role_ref["kind"] != "Role" && role_ref["kind"] != "ClusterRole" {
                    return Err(ApiError::internal(&format!(
                        "unsupported role reference kind: {}",
                        role_ref["kind"]
                    )));
                }
                let role = self
                    .get(&role_def, role_ns, ref_name)
                    .ok_or_else(|| ApiError::not_found(&role_def, ref_name))?;
                let rules = PolicyRule::parse(&role["rules"]);
                user.confirm_no_escalation(ns, &rules)
                    .map_err(|msg| ApiError::forbidden(def, name, &msg))
            }
            _ => Ok(()),
        }
    }

    /// Graceful pod deletion: `deletionTimestamp` + `deletionGracePeriodSeconds` are set and
    /// the pod stays Terminating for `settings.pod_grace`; grace 0 (asked for, unscheduled
    /// or terminated pods, or a zero `pod_grace`) removes it at once.
    fn delete_pod(
        &mut self,
        def: &ResourceDef,
        old: Value,
        opts: &DeleteOpts,
        has_finalizers: bool,
    ) -> Value {
        let uid = meta_str(&old, "uid").to_string();
        let terminal = matches!(old["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
        let unscheduled = old["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
        let grace = opts
            .grace_period_seconds
            .unwrap_or_else(|| old["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30));
        let immediate = grace <= 0 || terminal || unscheduled || self.settings.pod_grace.is_zero();
        let deleting = meta(&old)["deletionTimestamp"].is_string();
        if !immediate && deleting {
            return old;
        }
        if immediate {
            self.terminating_pods.remove(&uid);
            if has_finalizers {
                let mut new = old.clone();
                if !deleting {
                    meta_mut(&mut new)
                        .insert("deletionTimestamp".into(), json!(util::now_rfc3339()));
                }
                meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(0));
                let out = self.commit(def, new, "MODIFIED");
                self.drain();
                return out;
            }
            let out = self.commit(def, old, "DELETED");
            self.collect_garbage(&out, opts.orphan);
            self.drain();
            return out;
        }
        let mut new = old.clone();
        meta_mut(&mut new)
            .insert("deletionTimestamp".into(), json!(util::rfc3339(util::now_secs() + grace)));
        meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(grace));
        self.terminating_pods.insert(uid.clone());
        let out = self.commit(def, new, "MODIFIED");
        let namespace = meta_str(&out, "namespace").to_string();
        let name = meta_str(&out, "name").to_string();
        let delay = self.settings.pod_grace;
        self.schedule(delay, Deferred::RemovePod { namespace, name, uid });
        self.drain();
        out
    }

    /// The end of a deleted pod's grace period: it goes unless finalizers hold it.
    pub fn remove_terminated_pod(&mut self, ns: &str, name: &str, uid: &str) {
        if !self.terminating_pods.remove(uid) {
            return;
        }
        let Some(def) = self.def_for("v1", "Pod") else { return };
        let Some(pod) = self.get(&def, ns, name).cloned() else { return };
        if meta_str(&pod, "uid") != uid
            || meta(&pod)["finalizers"].as_array().is_some_and(|f| !f.is_empty())
        {
            return;
        }
        let out = self.commit(&def, pod, "DELETED");
        self.collect_garbage(&out, false);
        self.drain();
    }

    /// Deletes (or orphans) everything owned by `owner`.
    fn collect_garbage(&mut self, owner: &Value, orphan: bool) {
        let uid = meta_str(owner, "uid").to_string();
        for (def, dep) in self.dependents(&uid) {
            if orphan {
                let mut new = dep.clone();
                if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                }
                self.commit(&def, new, "MODIFIED");
            } else {
                let ns = meta_str(&dep, "namespace").to_string();
                let name = meta_str(&dep, "name").to_string();
                let _ = self.delete(&def, &ns, &name, &DeleteOpts::default());
            }
        }
    }

    /// Removes an object immediately (no finalizers, no namespace termination, but with
    /// garbage collection of its dependents).
    pub fn remove_now(&mut self, def: &ResourceDef, ns: &str, name: &str) -> Option<Value> {
        let old = self.get(def, ns, name).cloned()?;
        let out = self.commit(def, old, "DELETED");
        self.collect_garbage(&out, false);
        self.drain();
        Some(out)
    }

    /// Replaces the status of an object as a controller does (no preconditions).
    pub fn write_status(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        status: Value,
        manager: &str,
    ) -> Option<Value> {
        let old = self.get(def, ns, name).cloned()?;
        let mut body = old.clone();
        body["status"] = status;
        let opts = WriteOpts {
            manager: manager.to_string(),
            subresource: Some("status".into()),
            ..Default::default()
        };
        self.finish_update(def, &old, body, &opts, false).ok()
    }

    /// Replaces an object's spec and metadata as a controller does (no preconditions).
    pub fn write_object(&mut self, def: &ResourceDef, obj: Value, manager: &str) -> Option<Value> {
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let old = self.get(def, &ns, &name).cloned()?;
        let opts = WriteOpts { manager: manager.to_string(), ..Default::default() };
        self.finish_update(def, &old, obj, &opts, false).ok()
    }

    /// The namespace controller: deletes every object in a terminating namespace (pods
    /// with their grace period, finalizers honoured); the namespace goes once it is empty
    /// and only the `kubernetes` finalizer is left.
    pub fn finalize_namespace(&mut self, name: &str, uid: &str) {
        let Some(ns_def) = self.def_for("v1", "Namespace") else { return };
        let Some(ns_obj) = self.get(&ns_def, "", name).cloned() else { return };
        if meta_str(&ns_obj, "uid") != uid {
            return;
        }
        self.finalizing.insert((name.to_string(), uid.to_string()));
        for (def, obj) in self.objects_in_namespace(name) {
            if meta(&obj)["deletionTimestamp"].is_string() {
                continue;
            }
            let _ = self.delete(&def, name, meta_str(&obj, "name"), &DeleteOpts::default());
        }
        self.try_finish_namespace(name);
    }

    /// Removes a terminating namespace whose content is gone.
    pub fn try_finish_namespace(&mut self, name: &str) {
        let Some(key) = self.finalizing.iter().find(|(n, _)| n == name).cloned() else { return };
        let Some(ns_def) = self.def_for("v1", "Namespace") else { return };
        let Some(ns_obj) = self.get(&ns_def, "", name).cloned() else {
            self.finalizing.remove(&key);
            return;
        };
        if meta_str(&ns_obj, "uid") != key.1 || !self.objects_in_namespace(name).is_empty() {
            return;
        }
        let others = ns_obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x != "kubernetes"))
            || meta(&ns_obj)["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if others {
            return;
        }
        self.finalizing.remove(&key);
        self.logs.retain(|(ns, _), _| ns != name);
        self.commit(&ns_def, ns_obj, "DELETED");
        self.drain();
    }

    pub fn is_finalizing(&self, name: &str) -> bool {
        self.finalizing.iter().any(|(n, _)| n == name)
    }

    /// Registers the resource types of a CustomResourceDefinition (replacing older ones).
    pub fn register_crd(&mut self, crd: &Value) {
        let new = registry::from_crd(crd);
        let Some(first) = new.first() else { return };
        let key = first.store_key();
        self.defs.retain(|d| d.store_key() != key);
        self.defs.extend(new);
    }

    pub fn unregister_crd(&mut self, crd: &Value) {
        let Some(first) = registry::from_crd(crd).into_iter().next() else { return };
        let key = first.store_key();
        let objs: Vec<Value> = self.list(&first, None).into_iter().cloned().collect();
        for o in objs {
            self.commit(&first, o, "DELETED");
        }
        self.defs.retain(|d| d.store_key() != key);
        self.objects.remove(&key);
    }
}
