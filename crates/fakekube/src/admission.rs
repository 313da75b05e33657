//! The admission plugins of kube-apiserver that matter to vc, in their real order:
//! LimitRanger (defaults, then min/max), ServiceAccount (the pod's ServiceAccount must
//! exist), StorageObjectInUseProtection (PVC finalizer) and ResourceQuota (usage tracking,
//! `exceeded quota` / `failed quota` refusals). Also the usage computation the quota
//! controller writes into `status.used`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::quantity::Quantity;
use crate::registry::ResourceDef;
use crate::state::State;
use crate::status::ApiError;

pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

fn is_pod(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.plural == "pods"
}

fn containers(pod: &Value, key: &str) -> Vec<Value> {
    pod["spec"][key].as_array().cloned().unwrap_or_default()
}

/// The objects of a type in a namespace (by api version and kind).
fn objects(state: &State, api_version: &str, kind: &str, ns: &str) -> Vec<Value> {
    match state.def_for(api_version, kind) {
        Some(def) => state.list(&def, Some(ns)).into_iter().cloned().collect(),
        None => Vec::new(),
    }
}

/// Mutating admission: LimitRange defaults and the ServiceAccount check for pods, the
/// protection finalizer for PVCs.
pub fn mutate(
    state: &State,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if def.group.is_empty() && def.plural == "persistentvolumeclaims" {
        let finalizers = &mut obj["metadata"]["finalizers"];
        if !finalizers.is_array() {
            *finalizers = json!([]);
        }
        if let Some(f) = finalizers.as_array_mut()
            && !f.iter().any(|x| x == PVC_PROTECTION)
        {
            f.push(json!(PVC_PROTECTION));
        }
        return Ok(());
    }
    if !is_pod(def) {
        return Ok(());
    }
    apply_limit_range_defaults(state, ns, obj);
    let sa = obj["spec"]["serviceAccountName"].as_str().unwrap_or("default").to_string();
    let sa_exists =
        objects(state, "v1", "ServiceAccount", ns).iter().any(|o| o["metadata"]["name"] == sa);
    if !sa_exists {
        return Err(ApiError::forbidden(
            def,
            name,
            &format!(
                "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
            ),
        ));
    }
    Ok(())
}

/// Validating admission: LimitRange min/max for pods, then ResourceQuota for everything.
pub fn validate(
    state: &State,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    if is_pod(def) {
        let errs = limit_range_violations(state, ns, obj);
        if !errs.is_empty() {
            let msg =
                if errs.len() == 1 { errs[0].clone() } else { format!("[{}]", errs.join(", ")) };
            return Err(ApiError::forbidden(def, name, &msg));
        }
    }
    check_quota(state, def, ns, name, obj)
}

fn container_limit_ranges(state: &State, ns: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for lr in objects(state, "v1", "LimitRange", ns) {
        for item in lr["spec"]["limits"].as_array().into_iter().flatten() {
            if item["type"] == "Container" {
                out.push(item.clone());
            }
        }
    }
    out
}

fn apply_limit_range_defaults(state: &State, ns: &str, pod: &mut Value) {
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    for item in container_limit_ranges(state, ns) {
        for (k, v) in item["defaultRequest"].as_object().into_iter().flatten() {
            requests.insert(k.clone(), v.clone());
        }
        for (k, v) in item["default"].as_object().into_iter().flatten() {
            limits.insert(k.clone(), v.clone());
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes: Vec<String> = Vec::new();
    for (key, prefix) in [("containers", "container"), ("initContainers", "init container")] {
        let Some(list) = pod["spec"][key].as_array_mut() else { continue };
        for c in list {
            let cname = c["name"].as_str().unwrap_or_default().to_string();
            let mut set = |field: &str, defaults: &serde_json::Map<String, Value>| {
                let mut added: Vec<String> = Vec::new();
                let res = &mut c["resources"][field];
                if !res.is_object() {
                    *res = json!({});
                }
                for (k, v) in defaults {
                    if res.get(k).is_none() {
                        res[k] = v.clone();
                        added.push(k.clone());
                    }
                }
                added.sort();
                added
            };
            let req = set("requests", &requests);
            let lim = set("limits", &limits);
            if c["resources"]["requests"].as_object().is_some_and(|m| m.is_empty()) {
                c["resources"].as_object_mut().map(|m| m.remove("requests"));
            }
            if c["resources"]["limits"].as_object().is_some_and(|m| m.is_empty()) {
                c["resources"].as_object_mut().map(|m| m.remove("limits"));
            }
            if !req.is_empty() {
                notes.push(format!("{} request for {prefix} {cname}", req.join(", ")));
            }
            if !lim.is_empty() {
                notes.push(format!("{} limit for {prefix} {cname}", lim.join(", ")));
            }
        }
    }
    if !notes.is_empty() {
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = json!({});
        }
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

fn q(v: &Value) -> Option<Quantity> {
    Quantity::from_json(v)
}

fn limit_range_violations(state: &State, ns: &str, pod: &Value) -> Vec<String> {
    let mut errs: Vec<String> = Vec::new();
    for item in container_limit_ranges(state, ns) {
        for c in
            containers(pod, "containers").iter().chain(containers(pod, "initContainers").iter())
        {
            let req = &c["resources"]["requests"];
            let lim = &c["resources"]["limits"];
            let mut mins: Vec<(&String, &Value)> =
                item["min"].as_object().into_iter().flatten().collect();
            mins.sort_by_key(|(k, _)| *k);
            for (k, v) in mins {
                let Some(enforced) = q(v) else { continue };
                let msg = match (req.get(k).and_then(q), lim.get(k).and_then(q)) {
                    (None, _) => format!(
                        "minimum {k} usage per Container is {enforced}.  No request is specified"
                    ),
                    (Some(r), _) if r < enforced => {
                        format!("minimum {k} usage per Container is {enforced}, but request is {r}")
                    }
                    (_, Some(l)) if l < enforced => {
                        format!("minimum {k} usage per Container is {enforced}, but limit is {l}")
                    }
                    _ => continue,
                };
                errs.push(msg);
            }
            let mut maxes: Vec<(&String, &Value)> =
                item["max"].as_object().into_iter().flatten().collect();
            maxes.sort_by_key(|(k, _)| *k);
            for (k, v) in maxes {
                let Some(enforced) = q(v) else { continue };
                let msg = match (req.get(k).and_then(q), lim.get(k).and_then(q)) {
                    (_, None) => format!(
                        "maximum {k} usage per Container is {enforced}.  No limit is specified"
                    ),
                    (_, Some(l)) if l > enforced => {
                        format!("maximum {k} usage per Container is {enforced}, but limit is {l}")
                    }
                    (Some(r), _) if r > enforced => {
                        format!("maximum {k} usage per Container is {enforced}, but request is {r}")
                    }
                    _ => continue,
                };
                errs.push(msg);
            }
        }
    }
    let mut seen = BTreeSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    errs
}

// ----- ResourceQuota -----

type Usage = BTreeMap<String, Quantity>;

fn add(u: &mut Usage, key: &str, v: Quantity) {
    let e = u.entry(key.to_string()).or_insert_with(Quantity::zero);
    *e = e.add(&v);
}

const COMPUTE: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// Pod requests or limits: containers summed, at least the largest init container.
fn pod_resources(pod: &Value, field: &str) -> BTreeMap<String, Quantity> {
    let mut sum: BTreeMap<String, Quantity> = BTreeMap::new();
    for c in containers(pod, "containers") {
        for (k, v) in c["resources"][field].as_object().into_iter().flatten() {
            if let Some(x) = q(v) {
                let e = sum.entry(k.clone()).or_insert_with(Quantity::zero);
                *e = e.add(&x);
            }
        }
    }
    for c in containers(pod, "initContainers") {
        for (k, v) in c["resources"][field].as_object().into_iter().flatten() {
            if let Some(x) = q(v) {
                let e = sum.entry(k.clone()).or_insert_with(Quantity::zero);
                *e = e.max(x);
            }
        }
    }
    sum
}

fn pod_is_terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// What one object consumes, under every quota resource name it can count against.
pub fn usage(def: &ResourceDef, obj: &Value) -> Usage {
    let mut u = Usage::new();
    add(&mut u, &format!("count/{}", def.group_resource()), Quantity::from_int(1));
    if !def.group.is_empty() {
        return u;
    }
    match def.plural.as_str() {
        "pods" => {
            if pod_is_terminal(obj) {
                return u;
            }
            add(&mut u, "pods", Quantity::from_int(1));
            for (k, v) in pod_resources(obj, "requests") {
                add(&mut u, &format!("requests.{k}"), v);
                if COMPUTE.contains(&k.as_str()) || k.starts_with("hugepages-") {
                    add(&mut u, &k, v);
                }
            }
            for (k, v) in pod_resources(obj, "limits") {
                if COMPUTE.contains(&k.as_str()) || k.starts_with("hugepages-") {
                    add(&mut u, &format!("limits.{k}"), v);
                }
            }
        }
        "services" => {
            add(&mut u, "services", Quantity::from_int(1));
            let ports = obj["spec"]["ports"].as_array().map_or(0, Vec::len) as i64;
            let (node_ports, lbs) = match obj["spec"]["type"].as_str() {
                Some("NodePort") => (ports, 0),
                Some("LoadBalancer") => {
                    let explicit = obj["spec"]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["nodePort"].as_i64().is_some_and(|n| n != 0))
                        .count() as i64;
                    let n = if obj["spec"]["allocateLoadBalancerNodePorts"] == false {
                        explicit
                    } else {
                        ports
                    };
                    (n, 1)
                }
                _ => (0, 0),
            };
            add(&mut u, "services.nodeports", Quantity::from_int(node_ports));
            add(&mut u, "services.loadbalancers", Quantity::from_int(lbs));
        }
        "persistentvolumeclaims" => {
            add(&mut u, "persistentvolumeclaims", Quantity::from_int(1));
            let storage =
                q(&obj["spec"]["resources"]["requests"]["storage"]).unwrap_or_else(Quantity::zero);
            add(&mut u, "requests.storage", storage);
            if let Some(sc) = obj["spec"]["storageClassName"].as_str().filter(|s| !s.is_empty()) {
                add(
                    &mut u,
                    &format!("{sc}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                    Quantity::from_int(1),
                );
                add(&mut u, &format!("{sc}.storageclass.storage.k8s.io/requests.storage"), storage);
            }
        }
        "secrets" | "configmaps" | "resourcequotas" | "replicationcontrollers" => {
            add(&mut u, &def.plural, Quantity::from_int(1));
        }
        _ => {}
    }
    u
}

/// Whether objects of `def` can count against quota resource `key`.
fn counts_against(def: &ResourceDef, key: &str) -> bool {
    if key == format!("count/{}", def.group_resource()) {
        return true;
    }
    if !def.group.is_empty() {
        return false;
    }
    match def.plural.as_str() {
        "pods" => {
            key == "pods"
                || COMPUTE.contains(&key)
                || key.starts_with("hugepages-")
                || key.starts_with("requests.") && key != "requests.storage"
                || key.starts_with("limits.")
        }
        "services" => matches!(key, "services" | "services.nodeports" | "services.loadbalancers"),
        "persistentvolumeclaims" => {
            key == "persistentvolumeclaims"
                || key == "requests.storage"
                || key.contains(".storageclass.storage.k8s.io/")
        }
        p => {
            key == p
                && matches!(
                    p,
                    "secrets" | "configmaps" | "resourcequotas" | "replicationcontrollers"
                )
        }
    }
}

fn hard_of(quota: &Value) -> BTreeMap<String, Quantity> {
    quota["spec"]["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| q(v).map(|x| (k.clone(), x)))
        .collect()
}

/// Current usage in `ns` of every resource `hard` names.
fn namespace_usage(state: &State, ns: &str, keys: &[String]) -> Usage {
    let mut used: Usage = keys.iter().map(|k| (k.clone(), Quantity::zero())).collect();
    let mut seen = BTreeSet::new();
    for def in state.defs.iter().filter(|d| d.namespaced && !d.create_only) {
        if !seen.insert(def.store_key()) || !keys.iter().any(|k| counts_against(def, k)) {
            continue;
        }
        for obj in state.list(def, Some(ns)) {
            for (k, v) in usage(def, obj) {
                if let Some(e) = used.get_mut(&k) {
                    *e = e.add(&v);
                }
            }
        }
    }
    used
}

/// The `status` the quota controller writes: `hard` as in spec, `used` now.
pub fn quota_status(state: &State, quota: &Value) -> Value {
    let hard = hard_of(quota);
    let keys: Vec<String> = hard.keys().cloned().collect();
    let used =
        namespace_usage(state, quota["metadata"]["namespace"].as_str().unwrap_or_default(), &keys);
    let hard_json: serde_json::Map<String, Value> =
        hard.iter().map(|(k, v)| (k.clone(), json!(v.canonical()))).collect();
    let used_json: serde_json::Map<String, Value> =
        used.iter().map(|(k, v)| (k.clone(), json!(v.canonical()))).collect();
    json!({"hard": hard_json, "used": used_json})
}

fn pretty(items: &[(&String, Quantity)]) -> String {
    items.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

const VALIDATION_SET: [&str; 6] =
    ["cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];

/// `podEvaluator.Constraints`: every container must state what the quota constrains.
fn pod_constraints(pod: &Value, restricted: &[String]) -> Result<(), String> {
    let required: BTreeSet<&str> =
        restricted.iter().map(String::as_str).filter(|k| VALIDATION_SET.contains(k)).collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in containers(pod, "containers").iter().chain(containers(pod, "initContainers").iter()) {
        let mut have = BTreeSet::new();
        for r in ["cpu", "memory"] {
            if !c["resources"]["requests"][r].is_null() {
                have.insert(r.to_string());
                have.insert(format!("requests.{r}"));
            }
            if !c["resources"]["limits"][r].is_null() {
                have.insert(format!("limits.{r}"));
            }
        }
        for r in &required {
            if !have.contains(*r) {
                missing
                    .entry(r)
                    .or_default()
                    .insert(c["name"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!("{r} for: {}", names.iter().cloned().collect::<Vec<_>>().join(","))
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

fn check_quota(
    state: &State,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    let mut quotas = objects(state, "v1", "ResourceQuota", ns);
    quotas.sort_by(|a, b| a["metadata"]["name"].as_str().cmp(&b["metadata"]["name"].as_str()));
    let delta = usage(def, obj);
    let mut interesting = Vec::new();
    for quota in &quotas {
        let qname = quota["metadata"]["name"].as_str().unwrap_or_default();
        let hard = hard_of(quota);
        let restricted: Vec<String> =
            hard.keys().filter(|k| counts_against(def, k)).cloned().collect();
        if restricted.is_empty() {
            continue;
        }
        if is_pod(def)
            && let Err(e) = pod_constraints(obj, &restricted)
        {
            return Err(ApiError::forbidden(def, name, &format!("failed quota: {qname}: {e}")));
        }
        interesting.push((quota, hard, restricted));
    }
    for (quota, hard, restricted) in interesting {
        let qname = quota["metadata"]["name"].as_str().unwrap_or_default();
        let used = namespace_usage(state, ns, &restricted);
        let mut exceeded = Vec::new();
        for k in &restricted {
            let Some(requested) = delta.get(k) else { continue };
            let now = used.get(k).copied().unwrap_or_else(Quantity::zero);
            if now.add(requested) > hard[k] {
                exceeded.push(k);
            }
        }
        if !exceeded.is_empty() {
            let pick = |m: &BTreeMap<String, Quantity>| -> Vec<(&String, Quantity)> {
                exceeded
                    .iter()
                    .map(|k| (*k, m.get(*k).copied().unwrap_or_else(Quantity::zero)))
                    .collect()
            };
            return Err(ApiError::forbidden(
                def,
                name,
                &format!(
                    "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                    pretty(&pick(&delta)),
                    pretty(&pick(&used)),
                    pretty(&pick(&hard))
                ),
            ));
        }
    }
    Ok(())
}

/// Rewrites the quantities of objects the real server decodes as typed (container
/// resources, quota `spec.hard`, LimitRange limits, PVC requests) in canonical form.
/// `Err` is the 400 decoding error for a malformed quantity.
pub fn canonicalize(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    if !def.group.is_empty() {
        return Ok(());
    }
    let mut result = Ok(());
    let mut fix = |v: Option<&mut Value>| {
        if let Some(v) = v
            && let Err(e) = crate::quantity::canonicalize_map(v)
        {
            result = Err(e);
        }
    };
    match def.plural.as_str() {
        "pods" => {
            for key in ["containers", "initContainers"] {
                let list = obj.get_mut("spec").and_then(|s| s.get_mut(key));
                for c in list.and_then(Value::as_array_mut).into_iter().flatten() {
                    fix(c.pointer_mut("/resources/requests"));
                    fix(c.pointer_mut("/resources/limits"));
                }
            }
        }
        "resourcequotas" => fix(obj.pointer_mut("/spec/hard")),
        "limitranges" => {
            let list = obj.pointer_mut("/spec/limits").and_then(Value::as_array_mut);
            for item in list.into_iter().flatten() {
                for f in ["default", "defaultRequest", "max", "min", "maxLimitRequestRatio"] {
                    fix(item.get_mut(f));
                }
            }
        }
        "persistentvolumeclaims" => {
            fix(obj.pointer_mut("/spec/resources/requests"));
            fix(obj.pointer_mut("/spec/resources/limits"));
        }
        _ => return Ok(()),
    }
    result.map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"v1\" cannot be handled as a {}: {e}",
            def.kind, def.kind
        ))
    })
}
