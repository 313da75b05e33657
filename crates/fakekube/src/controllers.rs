//! Simulated host-side controllers: defaulting, namespaces, CRDs, StatefulSets, Deployments,
//! ReplicaSets, PVC binding, pod lifecycle (with per-cluster failure behaviours), events and
//! the virtual-cluster engine writing its kubeconfig Secret.

use serde_json::{Map, Value, json};

use crate::registry::ResourceDef;
use crate::state::{Deferred, PodBehaviour, State, WatchEvent, WriteOpts};
use crate::status::ApiError;
use crate::util;

const KCM: &str = "kube-controller-manager";
const SCHEDULER: &str = "kube-scheduler";
const KUBELET: &str = "kubelet";

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v["metadata"][field].as_str().unwrap_or_default()
}

fn def(state: &State, api_version: &str, kind: &str) -> ResourceDef {
    state.def_for(api_version, kind).expect("built-in type")
}

/// The single fake node.
pub fn node_object(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""}},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.10"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.33.4", "architecture": "amd64", "operatingSystem": "linux", "containerRuntimeVersion": "containerd://2.0.0"}
        }
    })
}

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if obj.is_null() {
        *obj = Value::Object(Map::new());
    }
    if let Some(m) = obj.as_object_mut().filter(|m| m.get(key).is_none_or(Value::is_null)) {
        m.insert(key.to_string(), value);
    }
}

/// Fills the defaults the real server adds on write (a useful subset).
pub fn default_fields(def: &ResourceDef, obj: &mut Value) {
    let name = s(obj, "name").to_string();
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "namespaces") => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            set_default(&mut obj["spec"], "finalizers", json!(["kubernetes"]));
            set_default(&mut obj["status"], "phase", json!("Active"));
        }
        ("", "secrets") => {
            set_default(obj, "type", json!("Opaque"));
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                for (k, v) in sd {
                    let text = v.as_str().unwrap_or_default();
                    obj["data"][k] = json!(util::base64(text.as_bytes()));
                }
            }
        }
        ("", "services") => {
            let spec = &mut obj["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
                let port = p["port"].clone();
                set_default(p, "targetPort", port);
            }
        }
        ("apps", "statefulsets") => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", json!(1));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            set_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        ("apps", "deployments") => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }
        ("", "limitranges") => {
            for item in obj["spec"]["limits"].as_array_mut().into_iter().flatten() {
                if item["type"] != "Container" {
                    continue;
                }
                let copy = |item: &mut Value, from: &str, to: &str| {
                    let source = item[from].as_object().cloned().unwrap_or_default();
                    if !item[to].is_object() {
                        item[to] = json!({});
                    }
                    for (k, v) in source {
                        if item[to].get(&k).is_none() {
                            item[to][k] = v;
                        }
                    }
                };
                // SetDefaults_LimitRangeItem: default <- max, defaultRequest <- default, min.
                copy(item, "max", "default");
                copy(item, "default", "defaultRequest");
                copy(item, "min", "defaultRequest");
            }
        }
        ("", "pods") => {
            let spec = &mut obj["spec"];
            set_default(spec, "restartPolicy", json!("Always"));
            set_default(spec, "dnsPolicy", json!("ClusterFirst"));
            set_default(spec, "schedulerName", json!("default-scheduler"));
            set_default(spec, "serviceAccountName", json!("default"));
            set_default(spec, "terminationGracePeriodSeconds", json!(30));
        }
        _ => {}
    }
}

/// The real server's default node-port range.
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// Allocates node ports as the real server does for Services of type NodePort and
/// LoadBalancer (unless `allocateLoadBalancerNodePorts` is false): a port asked for must be in
/// the range and free, else 422 with the real message; a port not asked for keeps the one it
/// had, or gets a free one at random.
pub fn allocate_node_ports(
    state: &State,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), crate::status::ApiError> {
    use crate::status::{ApiError, FieldError};
    if (def.group.as_str(), def.plural.as_str()) != ("", "services") {
        return Ok(());
    }
    let wants = match obj["spec"]["type"].as_str() {
        Some("NodePort") => true,
        Some("LoadBalancer") => obj["spec"]["allocateLoadBalancerNodePorts"] != false,
        _ => false,
    };
    if !wants {
        return Ok(());
    }
    let mut taken: std::collections::HashSet<i64> = state
        .list(def, None)
        .into_iter()
        .filter(|svc| !(s(svc, "namespace") == ns && s(svc, "name") == name))
        .flat_map(|svc| svc["spec"]["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["nodePort"].as_i64())
        .collect();
    let old_ports = old.and_then(|o| o["spec"]["ports"].as_array().cloned()).unwrap_or_default();
    let Some(ports) = obj["spec"]["ports"].as_array_mut() else { return Ok(()) };
    for (i, port) in ports.iter_mut().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        match port["nodePort"].as_i64().filter(|n| *n != 0) {
            Some(asked) if !NODE_PORTS.contains(&asked) => {
                let detail = "provided port is not in the valid range. The range of valid ports is 30000-32767";
                return Err(ApiError::invalid(
                    def,
                    name,
                    &[FieldError::invalid_raw(&field, asked.to_string(), detail)],
                ));
            }
            Some(asked) if taken.contains(&asked) => {
                let detail = "provided port is already allocated";
                return Err(ApiError::invalid(
                    def,
                    name,
                    &[FieldError::invalid_raw(&field, asked.to_string(), detail)],
                ));
            }
            Some(asked) => {
                taken.insert(asked);
            }
            None => {
                let kept = old_ports
                    .iter()
                    .find(|o| o["port"] == port["port"] && o["protocol"] == port["protocol"])
                    .and_then(|o| o["nodePort"].as_i64())
                    .filter(|n| !taken.contains(n));
                let fresh = kept.unwrap_or_else(|| {
                    loop {
                        let span = (NODE_PORTS.end() - NODE_PORTS.start() + 1) as u64;
                        let candidate = NODE_PORTS.start() + (util::random_u64() % span) as i64;
                        if !taken.contains(&candidate) {
                            break candidate;
                        }
                    }
                });
                taken.insert(fresh);
                port["nodePort"] = json!(fresh);
            }
        }
    }
    Ok(())
}

/// Fills what the real server allocates after recording field ownership (service IPs).
pub fn allocate_fields(def: &ResourceDef, obj: &mut Value, old: Option<&Value>) {
    if (def.group.as_str(), def.plural.as_str()) != ("", "services") {
        return;
    }
    let spec = &mut obj["spec"];
    if spec.get("clusterIP").is_none_or(Value::is_null) {
        let ip = old.map(|o| o["spec"]["clusterIP"].clone()).filter(Value::is_string);
        spec["clusterIP"] = ip.unwrap_or_else(|| {
            let r = util::random_u64();
            json!(format!("10.96.{}.{}", (r >> 8) % 250 + 1, r % 250 + 2))
        });
    }
    let ip = spec["clusterIP"].clone();
    set_default(spec, "clusterIPs", json!([ip]));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    set_default(&mut obj["status"], "loadBalancer", json!({}));
}

/// Reacts to one committed change.
pub fn on_event(state: &mut State, ev: &WatchEvent) {
    let ns = ev.namespace.clone();
    let name = s(&ev.object, "name").to_string();
    match (ev.key.as_str(), ev.kind) {
        ("apiextensions.k8s.io/customresourcedefinitions", "DELETED") => {
            state.unregister_crd(&ev.object)
        }
        ("apiextensions.k8s.io/customresourcedefinitions", _) => establish_crd(state, &ev.object),
        _ => {}
    }
    if !ns.is_empty() && ev.key != "/events" {
        maintain_quotas(state, &ns);
    }
    if ev.kind == "DELETED" && !ns.is_empty() && state.is_finalizing(&ns) {
        state.try_finish_namespace(&ns);
    }
    match (ev.key.as_str(), ev.kind) {
        ("/persistentvolumeclaims", "ADDED" | "MODIFIED") if deleting(&ev.object) => {
            release_claim_if_unused(state, &ns, &name)
        }
        ("/pods", "DELETED" | "MODIFIED") => {
            for claim in claims_of(&ev.object) {
                release_claim_if_unused(state, &ns, &claim);
            }
        }
        _ => {}
    }
    if !state.settings.controllers {
        return;
    }
    match (ev.key.as_str(), ev.kind) {
        ("/serviceaccounts", "ADDED")
        | ("/limitranges", _)
        | ("/resourcequotas", "MODIFIED" | "DELETED") => retry_workloads(state, &ns),
        _ => {}
    }
    match (ev.key.as_str(), ev.kind) {
        ("/namespaces", "ADDED") => populate_namespace(state, &name),
        ("apps/statefulsets", "ADDED" | "MODIFIED") => reconcile_statefulset(state, &ns, &name),
        ("apps/deployments", "ADDED" | "MODIFIED") => reconcile_deployment(state, &ns, &name),
        ("apps/replicasets", "ADDED" | "MODIFIED") => {
            reconcile_replicaset(state, &ns, &name);
            reconcile_owner(state, &ev.object);
        }
        ("/persistentvolumeclaims", "ADDED") => bind_claim(state, &ev.object),
        ("/services", "ADDED" | "MODIFIED") => assign_load_balancer(state, &ev.object),
        ("networking.k8s.io/ingresses", "ADDED" | "MODIFIED") => {
            publish_ingress_address(state, &ev.object);
        }
        ("/pods", "ADDED") => {
            if ev.object["status"]["phase"].is_null() {
                start_pod(state, &ev.object);
            }
            reconcile_owner(state, &ev.object);
        }
        ("/pods", "MODIFIED") => {
            reconcile_owner(state, &ev.object);
            write_engine_certs(state, &ev.object);
            write_engine_secret(state, &ev.object);
        }
        ("/pods", "DELETED") => {
            if let Some(hook) = &state.on_pod_deleted {
                hook(&ns, &name);
            }
            state.logs.remove(&(ns, name));
            reconcile_owner(state, &ev.object);
        }
        _ => {}
    }
}

/// A load-balancer controller: gives a Service of type LoadBalancer the configured address.
fn assign_load_balancer(state: &mut State, svc: &Value) {
    let Some(address) = state.settings.load_balancer_address.clone() else { return };
    let pending = svc["status"]["loadBalancer"]["ingress"].as_array().is_none_or(Vec::is_empty);
    if svc["spec"]["type"] != "LoadBalancer" || !pending {
        return;
    }
    let Some(def) = state.def_for("v1", "Service") else { return };
    let entry = if address.parse::<std::net::IpAddr>().is_ok() {
        json!({"ip": address, "ipMode": "VIP"})
    } else {
        json!({"hostname": address})
    };
    let status = json!({"loadBalancer": {"ingress": [entry]}});
    state.write_status(&def, s(svc, "namespace"), s(svc, "name"), status, "service-controller");
}

/// An ingress controller: publishes the configured address in an Ingress's status once.
fn publish_ingress_address(state: &mut State, ingress: &Value) {
    let Some(address) = state.settings.ingress_address.clone() else { return };
    let pending = ingress["status"]["loadBalancer"]["ingress"].as_array().is_none_or(Vec::is_empty);
    if !pending {
        return;
    }
    let Some(def) = state.def_for("networking.k8s.io/v1", "Ingress") else { return };
    let entry = if address.parse::<std::net::IpAddr>().is_ok() {
        json!({"ip": address})
    } else {
        json!({"hostname": address})
    };
    let status = json!({"loadBalancer": {"ingress": [entry]}});
    let (ns, name) = (s(ingress, "namespace"), s(ingress, "name"));
    state.write_status(&def, ns, name, status, "ingress-controller");
}

/// The ResourceQuota controller: `status.hard` from `spec.hard`, `status.used` from what
/// the namespace holds now.
fn maintain_quotas(state: &mut State, ns: &str) {
    let Some(quota_def) = state.def_for("v1", "ResourceQuota") else { return };
    let quotas: Vec<Value> = state.list(&quota_def, Some(ns)).into_iter().cloned().collect();
    for quota in quotas {
        let status = crate::admission::quota_status(state, &quota);
        if quota["status"] != status {
            state.write_status(
                &quota_def,
                ns,
                s(&quota, "name"),
                status,
                "kube-controller-manager",
            );
        }
    }
}

fn claims_of(pod: &Value) -> Vec<String> {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str().map(str::to_string))
        .collect()
}

/// The PVC protection controller: a deleted claim keeps its `kubernetes.io/pvc-protection`
/// finalizer while a pod that is not terminated mounts it.
fn release_claim_if_unused(state: &mut State, ns: &str, claim: &str) {
    let pvc_def = def(state, "v1", "PersistentVolumeClaim");
    let Some(pvc) = state.get(&pvc_def, ns, claim).cloned() else { return };
    let protected = pvc["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == crate::admission::PVC_PROTECTION));
    if !deleting(&pvc) || !protected {
        return;
    }
    let pod_def = def(state, "v1", "Pod");
    let in_use = state.list(&pod_def, Some(ns)).into_iter().any(|p| {
        !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
            && claims_of(p).iter().any(|c| c == claim)
    });
    if in_use {
        return;
    }
    let mut obj = pvc.clone();
    if let Some(f) = obj["metadata"]["finalizers"].as_array_mut() {
        f.retain(|x| x != crate::admission::PVC_PROTECTION);
    }
    state.write_object(&pvc_def, obj, KCM);
}

/// Controllers retry failed pod creations; the fake retries when what refused them may have
/// changed (a ServiceAccount appeared, a LimitRange or quota changed).
fn retry_workloads(state: &mut State, ns: &str) {
    for (api_version, kind) in [("apps/v1", "StatefulSet"), ("apps/v1", "ReplicaSet")] {
        let d = def(state, api_version, kind);
        let names: Vec<String> =
            state.list(&d, Some(ns)).into_iter().map(|o| s(o, "name").to_string()).collect();
        for name in names {
            if kind == "StatefulSet" {
                reconcile_statefulset(state, ns, &name);
            } else {
                reconcile_replicaset(state, ns, &name);
            }
        }
    }
}

/// Runs work scheduled earlier.
pub fn run_deferred(state: &mut State, work: Deferred) {
    match work {
        Deferred::FinalizeNamespace { name, uid } => state.finalize_namespace(&name, &uid),
        Deferred::RemovePod { namespace, name, uid } => {
            state.remove_terminated_pod(&namespace, &name, &uid)
        }
        Deferred::PodReady { namespace, name, uid } => {
            mark_pod_ready(state, &namespace, &name, &uid)
        }
    }
}

fn establish_crd(state: &mut State, crd: &Value) {
    state.register_crd(crd);
    let conditions = crd["status"]["conditions"].as_array();
    if conditions.is_some_and(|c| c.iter().any(|c| c["type"] == "Established")) {
        return;
    }
    let now = util::now_rfc3339();
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    let status = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": storage,
    });
    let crd_def = def(state, "apiextensions.k8s.io/v1", "CustomResourceDefinition");
    state.write_status(&crd_def, "", s(crd, "name"), status, "kube-apiserver");
}

fn populate_namespace(state: &mut State, ns: &str) {
    let opts = WriteOpts { manager: KCM.into(), ..Default::default() };
    let sa = def(state, "v1", "ServiceAccount");
    let _ = state.create(&sa, ns, json!({"metadata": {"name": "default"}}), &opts);
    let cm = def(state, "v1", "ConfigMap");
    let ca = json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": FAKE_CA_PEM}});
    let _ = state.create(&cm, ns, ca, &opts);
}

const FAKE_CA_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBfakekubeCA\n-----END CERTIFICATE-----\n";

fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": s(owner, "name"),
        "uid": s(owner, "uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn controller_of(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true)
}

fn owned_by<'a>(state: &'a State, def: &ResourceDef, ns: &str, uid: &str) -> Vec<&'a Value> {
    state
        .list(def, Some(ns))
        .into_iter()
        .filter(|o| controller_of(o).is_some_and(|r| r["uid"] == uid))
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

fn template_hash(template: &Value) -> String {
    util::short_hash(&template.to_string())
}

fn reconcile_owner(state: &mut State, obj: &Value) {
    let Some(owner) = controller_of(obj).cloned() else { return };
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let name = owner["name"].as_str().unwrap_or_default().to_string();
    match owner["kind"].as_str() {
        Some("StatefulSet") => reconcile_statefulset(state, &ns, &name),
        Some("ReplicaSet") => reconcile_replicaset(state, &ns, &name),
        Some("Deployment") => reconcile_deployment(state, &ns, &name),
        _ => {}
    }
}

fn pod_from_template(
    template: &Value,
    name: &str,
    extra_labels: &Map<String, Value>,
    owner: Value,
) -> Value {
    let mut pod = json!({
        "metadata": template["metadata"].clone(),
        "spec": template["spec"].clone(),
    });
    if !pod["metadata"].is_object() {
        pod["metadata"] = json!({});
    }
    pod["metadata"]["name"] = json!(name);
    for (k, v) in extra_labels {
        pod["metadata"]["labels"][k] = v.clone();
    }
    pod["metadata"]["ownerReferences"] = json!([owner]);
    pod
}

/// The StatefulSet controller's Warning `FailedCreate` event for an object it could not create.
fn statefulset_failed_create(state: &mut State, sts: &Value, what: &str, err: &ApiError) {
    let msg = format!(
        "create {what} in StatefulSet {} failed error: {}",
        s(sts, "name"),
        err.body["message"].as_str().unwrap_or_default()
    );
    record_event(state, sts, "Warning", "FailedCreate", &msg, "statefulset-controller");
}

fn reconcile_statefulset(state: &mut State, ns: &str, name: &str) {
    let sts_def = def(state, "apps/v1", "StatefulSet");
    let Some(sts) = state.get(&sts_def, ns, name).cloned() else { return };
    if deleting(&sts) {
        return;
    }
    let pod_def = def(state, "v1", "Pod");
    let pvc_def = def(state, "v1", "PersistentVolumeClaim");
    let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let template = &sts["spec"]["template"];
    let revision = format!("{name}-{}", template_hash(template));
    let uid = s(&sts, "uid").to_string();
    let opts = WriteOpts { manager: KCM.into(), ..Default::default() };
    let claims: Vec<Value> =
        sts["spec"]["volumeClaimTemplates"].as_array().cloned().unwrap_or_default();

    let mut failed = false;
    for ordinal in 0..replicas {
        let pod_name = format!("{name}-{ordinal}");
        for claim in &claims {
            let claim_name = format!("{}-{pod_name}", s(claim, "name"));
            if state.get(&pvc_def, ns, &claim_name).is_none() {
                let mut pvc = json!({"metadata": {"name": claim_name, "labels": claim["metadata"]["labels"].clone()}, "spec": claim["spec"].clone()});
                if !pvc["metadata"]["labels"].is_object() {
                    pvc["metadata"]["labels"] = json!({});
                }
                for (k, v) in
                    sts["spec"]["selector"]["matchLabels"].as_object().into_iter().flatten()
                {
                    pvc["metadata"]["labels"][k] = v.clone();
                }
                set_default(&mut pvc["spec"], "volumeMode", json!("Filesystem"));
                if let Err(e) = state.create(&pvc_def, ns, pvc, &opts) {
                    let what = format!("Claim {claim_name} for Pod {pod_name}");
                    statefulset_failed_create(state, &sts, &what, &e);
                    failed = true;
                }
            }
        }
        if failed {
            break;
        }
        match state.get(&pod_def, ns, &pod_name).cloned() {
            Some(pod) => {
                let stale =
                    pod["metadata"]["labels"]["controller-revision-hash"] != revision.as_str();
                if stale
                    && !deleting(&pod)
                    && controller_of(&pod).is_some_and(|r| r["uid"] == uid.as_str())
                {
                    state.remove_now(&pod_def, ns, &pod_name);
                    return;
                }
            }
            None => {
                let mut labels = Map::new();
                labels.insert("controller-revision-hash".into(), json!(revision));
                labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
                labels.insert("apps.kubernetes.io/pod-index".into(), json!(ordinal.to_string()));
                let owner = owner_ref(&sts, "StatefulSet", "apps/v1");
                let mut pod = pod_from_template(template, &pod_name, &labels, owner);
                pod["spec"]["hostname"] = json!(pod_name);
                if let Some(svc) = sts["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
                    pod["spec"]["subdomain"] = json!(svc);
                }
                for claim in &claims {
                    let vol_name = s(claim, "name");
                    let exists = pod["spec"]["volumes"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|v| v["name"] == vol_name));
                    if !exists {
                        let vol = json!({"name": vol_name, "persistentVolumeClaim": {"claimName": format!("{vol_name}-{pod_name}")}});
                        match pod["spec"]["volumes"].as_array_mut() {
                            Some(v) => v.push(vol),
                            None => pod["spec"]["volumes"] = json!([vol]),
                        }
                    }
                }
                if let Err(e) = state.create(&pod_def, ns, pod, &opts) {
                    statefulset_failed_create(state, &sts, &format!("Pod {pod_name}"), &e);
                    break;
                }
            }
        }
    }
    let extra: Vec<String> = owned_by(state, &pod_def, ns, &uid)
        .into_iter()
        .filter(|p| {
            let n = s(p, "name");
            n.rsplit_once('-')
                .and_then(|(_, o)| o.parse::<i64>().ok())
                .is_none_or(|o| o >= replicas)
        })
        .map(|p| s(p, "name").to_string())
        .collect();
    for pod_name in extra {
        state.remove_now(&pod_def, ns, &pod_name);
    }

    let Some(sts) = state.get(&sts_def, ns, name).cloned() else { return };
    let pods = owned_by(state, &pod_def, ns, &uid);
    let total = pods.len() as i64;
    let ready = pods.iter().filter(|p| is_ready(p)).count() as i64;
    let current = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == revision.as_str())
        .count() as i64;
    let mut status = json!({
        "replicas": total,
        "availableReplicas": ready,
        "observedGeneration": sts["metadata"]["generation"].clone(),
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    if ready > 0 {
        status["readyReplicas"] = json!(ready);
    }
    if current > 0 {
        status["currentReplicas"] = json!(current);
        status["updatedReplicas"] = json!(current);
    }
    if sts["status"] != status {
        state.write_status(&sts_def, ns, name, status, KCM);
    }
}

fn reconcile_deployment(state: &mut State, ns: &str, name: &str) {
    let deploy_def = def(state, "apps/v1", "Deployment");
    let rs_def = def(state, "apps/v1", "ReplicaSet");
    let Some(deploy) = state.get(&deploy_def, ns, name).cloned() else { return };
    if deleting(&deploy) {
        return;
    }
    let replicas = deploy["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let hash = template_hash(&deploy["spec"]["template"]);
    let rs_name = format!("{name}-{hash}");
    let uid = s(&deploy, "uid").to_string();
    let opts = WriteOpts { manager: KCM.into(), ..Default::default() };
    let mut template = deploy["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut selector = deploy["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    match state.get(&rs_def, ns, &rs_name).cloned() {
        None => {
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(hash);
            let rs = json!({
                "metadata": {"name": rs_name, "labels": labels, "ownerReferences": [owner_ref(&deploy, "Deployment", "apps/v1")]},
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            });
            let _ = state.create(&rs_def, ns, rs, &opts);
        }
        Some(mut rs) if rs["spec"]["replicas"] != replicas => {
            rs["spec"]["replicas"] = json!(replicas);
            state.write_object(&rs_def, rs, KCM);
        }
        Some(_) => {}
    }
    let old_sets: Vec<Value> = owned_by(state, &rs_def, ns, &uid)
        .into_iter()
        .filter(|r| s(r, "name") != rs_name && r["spec"]["replicas"] != 0)
        .cloned()
        .collect();
    for mut rs in old_sets {
        rs["spec"]["replicas"] = json!(0);
        state.write_object(&rs_def, rs, KCM);
    }
    let Some(deploy) = state.get(&deploy_def, ns, name).cloned() else { return };
    let sets = owned_by(state, &rs_def, ns, &uid);
    let sum = |f: &str| sets.iter().map(|r| r["status"][f].as_i64().unwrap_or(0)).sum::<i64>();
    let (total, ready) = (sum("replicas"), sum("readyReplicas"));
    let updated = sets
        .iter()
        .find(|r| s(r, "name") == rs_name)
        .map_or(0, |r| r["status"]["replicas"].as_i64().unwrap_or(0));
    let available = ready >= replicas;
    let mut status = json!({
        "observedGeneration": deploy["metadata"]["generation"].clone(),
        "replicas": total,
        "updatedReplicas": updated,
        "conditions": [
            {"type": "Available", "status": if available { "True" } else { "False" },
             "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
             "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." }},
            {"type": "Progressing", "status": "True", "reason": if ready >= replicas { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
             "message": format!("ReplicaSet \"{rs_name}\" is progressing.")},
        ],
    });
    if ready > 0 {
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(ready);
    }
    if total > ready {
        status["unavailableReplicas"] = json!(total - ready);
    }
    let comparable = |v: &Value| {
        let mut v = v.clone();
        for c in v["conditions"].as_array_mut().into_iter().flatten() {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastTransitionTime");
                m.remove("lastUpdateTime");
            }
        }
        v
    };
    if comparable(&deploy["status"]) != status {
        let now = util::now_rfc3339();
        for c in status["conditions"].as_array_mut().into_iter().flatten() {
            c["lastTransitionTime"] = json!(now);
            c["lastUpdateTime"] = json!(now);
        }
        state.write_status(&deploy_def, ns, name, status, KCM);
    }
}

fn reconcile_replicaset(state: &mut State, ns: &str, name: &str) {
    let rs_def = def(state, "apps/v1", "ReplicaSet");
    let pod_def = def(state, "v1", "Pod");
    let Some(rs) = state.get(&rs_def, ns, name).cloned() else { return };
    if deleting(&rs) {
        return;
    }
    let replicas = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let uid = s(&rs, "uid").to_string();
    let pods: Vec<String> =
        owned_by(state, &pod_def, ns, &uid).into_iter().map(|p| s(p, "name").to_string()).collect();
    let opts = WriteOpts { manager: KCM.into(), ..Default::default() };
    for _ in (pods.len() as i64)..replicas {
        let owner = owner_ref(&rs, "ReplicaSet", "apps/v1");
        let mut pod = pod_from_template(&rs["spec"]["template"], "", &Map::new(), owner);
        if let Some(m) = pod["metadata"].as_object_mut() {
            m.remove("name");
            m.insert("generateName".into(), json!(format!("{name}-")));
        }
        if let Err(e) = state.create(&pod_def, ns, pod, &opts) {
            let msg = format!("Error creating: {}", e.body["message"].as_str().unwrap_or_default());
            record_event(state, &rs, "Warning", "FailedCreate", &msg, "replicaset-controller");
            break;
        }
    }
    for pod_name in pods.iter().skip(replicas as usize) {
        state.remove_now(&pod_def, ns, pod_name);
    }
    let Some(rs) = state.get(&rs_def, ns, name).cloned() else { return };
    let pods = owned_by(state, &pod_def, ns, &uid);
    let total = pods.len() as i64;
    let ready = pods.iter().filter(|p| is_ready(p)).count() as i64;
    let mut status = json!({"replicas": total, "fullyLabeledReplicas": total, "observedGeneration": rs["metadata"]["generation"].clone()});
    if ready > 0 {
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(ready);
    }
    if total == 0 {
        status.as_object_mut().expect("object").remove("fullyLabeledReplicas");
    }
    if rs["status"] != status {
        state.write_status(&rs_def, ns, name, status, KCM);
    }
}

fn bind_claim(state: &mut State, pvc: &Value) {
    if pvc["status"]["phase"] == "Bound" {
        return;
    }
    // A claim binds through its class, else the default one; without either it stays Pending.
    let class_def = def(state, "storage.k8s.io/v1", "StorageClass");
    let class = match pvc["spec"]["storageClassName"].as_str() {
        Some(name) => state.get(&class_def, "", name).map(|_| name.to_string()),
        None => state
            .list(&class_def, None)
            .into_iter()
            .find(|c| {
                c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                    == "true"
            })
            .and_then(|c| c["metadata"]["name"].as_str().map(str::to_string)),
    };
    let Some(class) = class else {
        return;
    };
    let pvc_def = def(state, "v1", "PersistentVolumeClaim");
    let ns = s(pvc, "namespace").to_string();
    let name = s(pvc, "name").to_string();
    let mut obj = pvc.clone();
    let volume = format!("pvc-{}", s(pvc, "uid"));
    obj["spec"]["volumeName"] = json!(volume);
    set_default(&mut obj["spec"], "storageClassName", json!(class));
    state.write_object(&pvc_def, obj, KCM);
    let status = json!({
        "phase": "Bound",
        "accessModes": pvc["spec"]["accessModes"].clone(),
        "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("1Gi")},
    });
    state.write_status(&pvc_def, &ns, &name, status, KCM);
}

/// What containerd reports for an image that no registry serves.
fn absent_image_message(image: &str) -> String {
    format!(
        "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
    )
}

fn cluster_name(pod: &Value) -> Option<&str> {
    let labels = &pod["metadata"]["labels"];
    labels["release"].as_str().or_else(|| labels["vcluster.loft.sh/managed-by"].as_str())
}

fn container_names(pod: &Value) -> Vec<(String, String)> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["image"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": util::now_rfc3339()});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// Records a core/v1 Event about `involved`.
pub fn record_event(
    state: &mut State,
    involved: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let ns = s(involved, "namespace").to_string();
    if ns.is_empty() {
        return;
    }
    let now = util::now_rfc3339();
    let ev_def = def(state, "v1", "Event");
    let same = state
        .list(&ev_def, Some(&ns))
        .into_iter()
        .find(|e| {
            e["involvedObject"]["uid"] == s(involved, "uid")
                && e["reason"] == reason
                && e["message"] == message
                && e["type"] == kind
        })
        .cloned();
    if let Some(mut e) = same {
        e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
        e["lastTimestamp"] = json!(now);
        state.write_object(&ev_def, e, component);
        return;
    }
    let event = json!({
        "metadata": {"name": format!("{}.{:016x}", s(involved, "name"), util::random_u64())},
        "involvedObject": {
            "kind": involved["kind"], "namespace": ns, "name": s(involved, "name"), "uid": s(involved, "uid"),
            "apiVersion": involved["apiVersion"], "resourceVersion": s(involved, "resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": kind,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    let opts = WriteOpts { manager: component.to_string(), ..Default::default() };
    let _ = state.create(&ev_def, &ns, event, &opts);
}

fn start_pod(state: &mut State, pod: &Value) {
    let pod_def = def(state, "v1", "Pod");
    let ns = s(pod, "namespace").to_string();
    let name = s(pod, "name").to_string();
    let uid = s(pod, "uid").to_string();
    let behaviour = cluster_name(pod)
        .and_then(|c| state.settings.behaviours.get(c))
        .unwrap_or(&state.settings.default_behaviour)
        .clone();
    let containers = container_names(pod);
    let now = util::now_rfc3339();
    if let PodBehaviour::Unschedulable { message } = &behaviour {
        let status = json!({
            "phase": "Pending",
            "conditions": [condition("PodScheduled", false, Some("Unschedulable"), Some(message))],
            "qosClass": "Burstable",
        });
        state.write_status(&pod_def, &ns, &name, status, SCHEDULER);
        record_event(state, pod, "Warning", "FailedScheduling", message, "default-scheduler");
        return;
    }
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!("fake-node");
    state.write_object(&pod_def, bound, SCHEDULER);
    let waiting = |reason: &str, message: Option<String>| {
        containers
            .iter()
            .map(|(c, image)| {
                let mut w = json!({"reason": reason});
                if let Some(m) = &message {
                    w["message"] = json!(m.replace("{image}", image).replace("{container}", c));
                }
                json!({"name": c, "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 0, "state": {"waiting": w}, "lastState": {}})
            })
            .collect::<Vec<Value>>()
    };
    let ip = format!("10.244.0.{}", util::random_u64() % 250 + 2);
    let mut status = json!({
        "phase": "Pending",
        "hostIP": state.settings.node_address,
        "hostIPs": [{"ip": state.settings.node_address}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "qosClass": "Burstable",
        "conditions": [
            condition("PodReadyToStartContainers", true, None, None),
            condition("Initialized", true, None, None),
            condition("Ready", false, Some("ContainersNotReady"), Some("containers with unready status")),
            condition("ContainersReady", false, Some("ContainersNotReady"), Some("containers with unready status")),
            condition("PodScheduled", true, None, None),
        ],
        "containerStatuses": waiting("ContainerCreating", None),
    });
    if containers.iter().any(|(_, image)| state.settings.absent_images.contains(image)) {
        let statuses: Vec<Value> = containers
            .iter()
            .map(|(c, image)| {
                let state_of = if state.settings.absent_images.contains(image) {
                    json!({"waiting": {"reason": "ErrImagePull", "message": absent_image_message(image)}})
                } else {
                    json!({"running": {"startedAt": now}})
                };
                json!({"name": c, "image": image, "imageID": "", "ready": false, "started": !state.settings.absent_images.contains(image), "restartCount": 0, "state": state_of, "lastState": {}})
            })
            .collect();
        status["containerStatuses"] = json!(statuses);
        state.write_status(&pod_def, &ns, &name, status, KUBELET);
        let absent: Vec<String> = containers
            .iter()
            .filter(|(_, image)| state.settings.absent_images.contains(image))
            .map(|(_, image)| image.clone())
            .collect();
        for image in absent {
            let msg = format!("Failed to pull image \"{image}\": {}", absent_image_message(&image));
            record_event(state, pod, "Warning", "Failed", &msg, "kubelet");
        }
        return;
    }
    match &behaviour {
        PodBehaviour::ImagePullFailure { reason, message } => {
            let per_container = if reason == "ImagePullBackOff" {
                format!("Back-off pulling image \"{{image}}\": ErrImagePull: {message}")
            } else {
                format!("failed to pull and unpack image \"{{image}}\": {message}")
            };
            status["containerStatuses"] = json!(waiting(reason, Some(per_container)));
            state.write_status(&pod_def, &ns, &name, status, KUBELET);
            for (_, image) in &containers {
                let msg = format!("Failed to pull image \"{image}\": {message}");
                record_event(state, pod, "Warning", "Failed", &msg, "kubelet");
            }
        }
        PodBehaviour::CrashLoop { exit_code, logs } => {
            status["phase"] = json!("Running");
            let statuses: Vec<Value> = containers
                .iter()
                .map(|(c, image)| json!({
                    "name": c, "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 40s restarting failed container={c} pod={name}_{ns}({uid})")}},
                    "lastState": {"terminated": {"exitCode": exit_code, "reason": "Error", "startedAt": now, "finishedAt": now, "containerID": format!("containerd://{:016x}", util::random_u64())}},
                }))
                .collect();
            status["containerStatuses"] = json!(statuses);
            state.logs.insert((ns.clone(), name.clone()), logs.clone());
            state.write_status(&pod_def, &ns, &name, status, KUBELET);
            for (c, _) in &containers {
                let msg =
                    format!("Back-off restarting failed container {c} in pod {name}_{ns}({uid})");
                record_event(state, pod, "Warning", "BackOff", &msg, "kubelet");
            }
        }
        PodBehaviour::NeverReady => {
            status["phase"] = json!("Running");
            let statuses: Vec<Value> = containers
                .iter()
                .map(|(c, image)| json!({"name": c, "image": image, "imageID": "", "ready": false, "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}, "lastState": {}}))
                .collect();
            status["containerStatuses"] = json!(statuses);
            state.write_status(&pod_def, &ns, &name, status, KUBELET);
        }
        PodBehaviour::Ready
            if !local_init_containers(pod).is_empty() && state.on_init_containers.is_some() =>
        {
            // Shell init containers run for real (see exec.rs); the pod waits in Init until
            // they have all ended.
            status["phase"] = json!("Pending");
            status["initContainerStatuses"] = json!(init_statuses(pod, None));
            state.write_status(&pod_def, &ns, &name, status, KUBELET);
            if let (Some(hook), Some(latest)) =
                (state.on_init_containers.as_ref(), state.get(&pod_def, &ns, &name))
            {
                hook(latest.clone());
            }
        }
        PodBehaviour::Ready | PodBehaviour::Unschedulable { .. } => {
            state.write_status(&pod_def, &ns, &name, status, KUBELET);
            let delay = state.settings.ready_delay;
            state.schedule(delay, Deferred::PodReady { namespace: ns, name, uid });
        }
    }
}

/// Init containers the fake runs as local processes: those whose command is a shell
/// (`sh -c ...`), except the copy of the Kubernetes binaries out of the engine's
/// control-plane image (the fake has no image contents to copy); any other init container
/// counts as done at once.
pub(crate) fn local_init_containers(pod: &Value) -> Vec<(String, Vec<String>)> {
    pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| !c["image"].as_str().is_some_and(is_control_plane_image))
        .filter_map(|c| {
            let argv: Vec<String> = c["command"]
                .as_array()?
                .iter()
                .chain(c["args"].as_array().into_iter().flatten())
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            (argv.first().map(String::as_str) == Some("sh"))
                .then(|| (c["name"].as_str().unwrap_or_default().to_owned(), argv))
        })
        .collect()
}

/// `initContainerStatuses` while `current` runs (`None`: the first local one); those before
/// it terminated with exit 0, those after it waiting. `failed` marks `current` as exited.
fn init_statuses_with(pod: &Value, current: Option<&str>, failed: Option<i32>) -> Vec<Value> {
    let local: Vec<String> = local_init_containers(pod).into_iter().map(|(n, _)| n).collect();
    let current = current.map(str::to_owned).or_else(|| local.first().cloned());
    let now = util::now_rfc3339();
    let mut seen_current = false;
    pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let image = c["image"].as_str().unwrap_or_default();
            let state = if Some(name) == current.as_deref() {
                seen_current = true;
                match failed {
                    Some(code) => json!({"terminated": {"exitCode": code, "reason": "Error", "startedAt": now, "finishedAt": now}}),
                    None => json!({"running": {"startedAt": now}}),
                }
            } else if seen_current {
                json!({"waiting": {"reason": "PodInitializing"}})
            } else {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}})
            };
            json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0,
                   "started": state["running"].is_object(), "state": state, "lastState": {}})
        })
        .collect()
}

fn init_statuses(pod: &Value, current: Option<&str>) -> Vec<Value> {
    init_statuses_with(pod, current, None)
}

/// An init container started (`code` `None`) or ended; after the last one the pod starts.
pub(crate) fn init_container_progress(
    state: &mut State,
    ns: &str,
    name: &str,
    uid: &str,
    container: &str,
    code: Option<i32>,
) {
    let pod_def = def(state, "v1", "Pod");
    let Some(pod) = state.get(&pod_def, ns, name).cloned() else { return };
    if s(&pod, "uid") != uid || deleting(&pod) {
        return;
    }
    let mut status = pod["status"].clone();
    match code {
        None => status["initContainerStatuses"] = json!(init_statuses(&pod, Some(container))),
        Some(0) => {
            let local = local_init_containers(&pod);
            let next =
                local.iter().position(|(n, _)| n == container).and_then(|i| local.get(i + 1));
            if next.is_some() {
                return;
            }
            let mut statuses = init_statuses(&pod, Some(container));
            if let Some(last) = statuses.iter_mut().find(|s| s["name"] == container) {
                last["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
                last["started"] = json!(false);
            }
            status["initContainerStatuses"] = json!(statuses);
            state.write_status(&pod_def, ns, name, status, KUBELET);
            let delay = state.settings.ready_delay;
            state.schedule(
                delay,
                Deferred::PodReady {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                },
            );
            return;
        }
        Some(failed) => {
            status["initContainerStatuses"] =
                json!(init_statuses_with(&pod, Some(container), Some(failed)));
        }
    }
    state.write_status(&pod_def, ns, name, status, KUBELET);
}

fn mark_pod_ready(state: &mut State, ns: &str, name: &str, uid: &str) {
    let pod_def = def(state, "v1", "Pod");
    let Some(pod) = state.get(&pod_def, ns, name).cloned() else { return };
    if s(&pod, "uid") != uid || deleting(&pod) {
        return;
    }
    let now = util::now_rfc3339();
    let mut status = pod["status"].clone();
    status["phase"] = json!("Running");
    status["conditions"] = json!([
        condition("PodReadyToStartContainers", true, None, None),
        condition("Initialized", true, None, None),
        condition("Ready", true, None, None),
        condition("ContainersReady", true, None, None),
        condition("PodScheduled", true, None, None),
    ]);
    let statuses: Vec<Value> = container_names(&pod)
        .iter()
        .map(|(c, image)| json!({
            "name": c, "image": image, "imageID": format!("{image}@sha256:{:016x}", util::random_u64()),
            "containerID": format!("containerd://{:016x}", util::random_u64()),
            "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}, "lastState": {},
        }))
        .collect();
    status["containerStatuses"] = json!(statuses);
    state.write_status(&pod_def, ns, name, status, KUBELET);
}

/// The kubeconfig the engine writes for a virtual cluster.
pub fn engine_kubeconfig(name: &str, server: &str) -> String {
    let ca = util::base64(b"-----BEGIN CERTIFICATE-----\nfake-ca\n-----END CERTIFICATE-----\n");
    let cert =
        util::base64(b"-----BEGIN CERTIFICATE-----\nfake-client\n-----END CERTIFICATE-----\n");
    let key =
        util::base64(b"-----BEGIN RSA PRIVATE KEY-----\nfake-key\n-----END RSA PRIVATE KEY-----\n");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: my-vcluster\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: my-vcluster\n  context:\n    cluster: my-vcluster\n    user: my-vcluster\ncurrent-context: my-vcluster\nusers:\n- name: my-vcluster\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\npreferences: {{}}\n# virtual cluster {name}\n"
    )
}

/// The engine's certificate Secret `<release>-certs`, written once the control-plane pod runs
/// (the engine generates its certificates before it starts the API server), labelled as the
/// engine labels it.
fn write_engine_certs(state: &mut State, pod: &Value) {
    let labels = &pod["metadata"]["labels"];
    let (Some("vcluster"), Some(release)) = (labels["app"].as_str(), labels["release"].as_str())
    else {
        return;
    };
    let Some(admin_conf) = state.settings.engine_admin_conf.clone() else { return };
    if pod["status"]["phase"] != "Running" {
        return;
    }
    let secret_def = def(state, "v1", "Secret");
    let ns = s(pod, "namespace").to_string();
    let secret_name = format!("{release}-certs");
    if state.get(&secret_def, &ns, &secret_name).is_some() {
        return;
    }
    let secret = json!({
        "metadata": {"name": secret_name, "labels": {"app": "vcluster", "vcluster-name": release}},
        "type": "Opaque",
        "data": {"admin.conf": util::base64(admin_conf.as_bytes())},
    });
    let opts = WriteOpts { manager: "vcluster".into(), ..Default::default() };
    let _ = state.create(&secret_def, &ns, secret, &opts);
}

fn write_engine_secret(state: &mut State, pod: &Value) {
    let labels = &pod["metadata"]["labels"];
    let (Some("vcluster"), Some(release)) = (labels["app"].as_str(), labels["release"].as_str())
    else {
        return;
    };
    if !state.settings.engine_secret || !is_ready(pod) {
        return;
    }
    let secret_def = def(state, "v1", "Secret");
    let ns = s(pod, "namespace").to_string();
    let secret_name = format!("vc-{release}");
    if state.get(&secret_def, &ns, &secret_name).is_some() {
        return;
    }
    let config = engine_kubeconfig(release, &state.settings.engine_server);
    let secret = json!({
        "metadata": {"name": secret_name, "labels": {"vcluster.loft.sh/namespace": ns}},
        "type": "Opaque",
        "data": {
            "config": util::base64(config.as_bytes()),
            "certificate-authority": util::base64(b"fake-ca"),
            "client-certificate": util::base64(b"fake-client-certificate"),
            "client-key": util::base64(b"fake-client-key"),
        },
    });
    let opts = WriteOpts { manager: "vcluster".into(), ..Default::default() };
    let _ = state.create(&secret_def, &ns, secret, &opts);
}

/// Whether an image reference names the engine's control-plane image
/// (`ghcr.io/loft-sh/kubernetes`, any registry or tag).
fn is_control_plane_image(image: &str) -> bool {
    let path = image.split('@').next().unwrap_or(image);
    let path = path.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(path, |(p, _)| p);
    path == "kubernetes" || path.ends_with("/kubernetes")
}
