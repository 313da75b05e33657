//! Field ownership: `managedFields` bookkeeping for updates and server-side apply, including
//! conflict detection, forced takeover and removal of fields a manager stopped applying.

use serde_json::{Map, Value, json};

use crate::fields::{self, FieldSet, MergeMode, Path, SetKind};
use crate::registry::ResourceDef;
use crate::status::ApiError;
use crate::util;

/// One `managedFields` entry with its decoded field set.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    set: FieldSet,
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or_default().to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
            set: fields::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_fields_v1(&e.set),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_string(), Value::Array(list));
        }
    }
}

/// Whether a path is outside field ownership for this resource and subresource.
fn skipper(def: &ResourceDef, subresource: Option<&str>) -> impl Fn(&[String]) -> bool {
    let status_split = def.has_status();
    let on_status = subresource == Some("status");
    move |p: &[String]| {
        let top = p[0].as_str();
        if matches!(top, "f:apiVersion" | "f:kind") {
            return true;
        }
        if on_status {
            return top != "f:status";
        }
        if top == "f:status" && status_split {
            return true;
        }
        if top == "f:metadata" && p.len() == 2 {
            return matches!(
                p[1].as_str(),
                "f:name"
                    | "f:namespace"
                    | "f:uid"
                    | "f:resourceVersion"
                    | "f:generation"
                    | "f:creationTimestamp"
                    | "f:deletionTimestamp"
                    | "f:deletionGracePeriodSeconds"
                    | "f:managedFields"
                    | "f:selfLink"
            );
        }
        false
    }
}

fn is_item(p: &Path) -> bool {
    p.last().is_some_and(|e| e.starts_with("k:"))
}

/// Whether `p` names a list or a map with members in `obj` (not a leaf value).
fn is_container(obj: &Value, p: &Path) -> bool {
    let field = p.last().and_then(|e| e.strip_prefix("f:")).unwrap_or_default();
    if fields::is_atomic_map(field) {
        return false;
    }
    match fields::value_at(obj, p) {
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(_)) => fields::list_keys(&p[..p.len() - 1], field).is_some(),
        _ => false,
    }
}

/// How a manager is named in conflict messages: appliers by name; updaters with their API
/// version and time.
fn describe(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if !e.subresource.is_empty() {
        s.push_str(&format!(" with subresource {:?}", e.subresource));
    }
    if e.operation == "Update" {
        if e.time.is_empty() {
            s.push_str(&format!(" using {}", e.api_version));
        } else {
            s.push_str(&format!(" using {} at {}", e.api_version, e.time));
        }
    }
    s
}

/// Records that `manager` changed `old` into `new` with a non-apply write.
pub fn track_update(
    def: &ResourceDef,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
) {
    let skip = skipper(def, subresource);
    let new_set = fields::leaf_set(new, &skip, SetKind::Update);
    let mut entries = match old {
        Some(o) => read_entries(o),
        None => read_entries(new),
    };
    for e in &mut entries {
        e.set.retain(|p| skip(p) || new_set.contains(p));
    }
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| {
            let before = old.and_then(|o| fields::value_at(o, p));
            if is_item(p) || is_container(new, p) {
                before.is_none()
            } else {
                before != fields::value_at(new, p)
            }
        })
        .cloned()
        .collect();
    if changed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    let sub = subresource.unwrap_or_default();
    for e in &mut entries {
        if !(e.manager == manager && e.operation == "Update" && e.subresource == sub) {
            e.set.retain(|p| !changed.contains(p));
        }
    }
    let now = util::now_rfc3339();
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub)
    {
        Some(e) => {
            e.set.extend(changed);
            e.time = now;
            e.api_version = def.api_version();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".to_string(),
            api_version: def.api_version(),
            time: now,
            subresource: sub.to_string(),
            set: changed,
        }),
    }
    write_entries(new, &entries);
}

/// Server-side apply of `config` by `manager` over `live` (or a fresh object).
///
/// Returns the merged object with updated `managedFields`, or a 409 Conflict listing the
/// fields other managers own with different values when `force` is off.
pub fn apply(
    def: &ResourceDef,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
) -> Result<Value, ApiError> {
    let skip = skipper(def, subresource);
    let mut config = config.clone();
    if let Some(meta) = config["metadata"].as_object_mut() {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    let config_set = fields::leaf_set(&config, &skip, SetKind::Apply);
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let mut entries = read_entries(&base);
    let sub = subresource.unwrap_or_default();
    let mine = |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == sub;

    let mut conflicts: Vec<(String, String)> = Vec::new();
    let mut conflicting: Vec<(usize, Path)> = Vec::new();
    for p in config_set.iter().filter(|p| !is_item(p) && !is_container(&config, p)) {
        for (i, e) in entries.iter().enumerate() {
            if mine(e) || e.manager == manager || !e.set.contains(p) {
                continue;
            }
            if fields::value_at(&base, p) != fields::value_at(&config, p) {
                conflicts.push((describe(e), fields::path_string(p)));
                conflicting.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApiError::apply_conflict(&conflicts));
    }
    for (i, p) in conflicting {
        entries[i].set.remove(&p);
    }

    let mut obj = base.clone();
    let previous: FieldSet =
        entries.iter().filter(|e| mine(e)).flat_map(|e| e.set.clone()).collect();
    let mut dropped: Vec<&Path> = previous.difference(&config_set).collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        let owned_elsewhere =
            entries.iter().filter(|e| !mine(e)).any(|e| e.set.iter().any(|q| q.starts_with(p)));
        if !owned_elsewhere && !config_set.iter().any(|q| q.starts_with(p)) {
            fields::remove_at(&mut obj, p);
        }
    }

    let mut patch = config.clone();
    if let Some(m) = patch.as_object_mut() {
        match subresource {
            Some("status") => m.retain(|k, _| k == "status"),
            _ if def.has_status() => {
                m.remove("status");
            }
            _ => {}
        }
        m.remove("apiVersion");
        m.remove("kind");
    }
    fields::merge(&mut obj, &patch, MergeMode::Apply);
    if obj.get("metadata").is_none() {
        obj["metadata"] = Value::Object(Map::new());
    }

    let api_version =
        config["apiVersion"].as_str().map_or_else(|| def.api_version(), str::to_string);
    let now = util::now_rfc3339();
    let same_as_before = previous == config_set;
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            if !same_as_before {
                e.time = now;
            }
            e.set = config_set;
            e.api_version = api_version;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".to_string(),
            api_version,
            time: now,
            subresource: sub.to_string(),
            set: config_set,
        }),
    }
    let obj_set = fields::leaf_set(&obj, &skip, SetKind::Update);
    for e in &mut entries {
        if !mine(e) {
            e.set.retain(|p| skip(p) || obj_set.contains(p));
        }
    }
    write_entries(&mut obj, &entries);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    fn sts() -> ResourceDef {
        registry::builtin().into_iter().find(|d| d.plural == "statefulsets").unwrap()
    }

    fn cfg(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "a", "labels": {"x": "1"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn apply_tracks_ownership_and_detects_conflicts() {
        let def = sts();
        let first = apply(&def, None, &cfg(1, "i1"), "kubectl", false, None).unwrap();
        let mf = &first["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "kubectl");
        assert_eq!(mf["operation"], "Apply");
        assert!(mf["fieldsV1"]["f:spec"]["f:replicas"].is_object());
        assert!(mf["fieldsV1"]["f:metadata"]["f:name"].is_null());

        let err = apply(&def, Some(&first), &cfg(2, "i1"), "vc", false, None).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.body["message"],
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
        );

        let same = apply(&def, Some(&first), &cfg(1, "i1"), "vc", false, None).unwrap();
        assert_eq!(same["metadata"]["managedFields"].as_array().unwrap().len(), 2);

        let forced = apply(&def, Some(&first), &cfg(3, "i1"), "vc", true, None).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let kubectl = &forced["metadata"]["managedFields"][0];
        assert!(kubectl["fieldsV1"]["f:spec"]["f:replicas"].is_null());
    }

    #[test]
    fn apply_removes_fields_no_longer_sent() {
        let def = sts();
        let first = apply(&def, None, &cfg(1, "i1"), "kubectl", false, None).unwrap();
        let mut smaller = cfg(1, "i1");
        smaller["metadata"]["labels"] = json!({});
        smaller["metadata"].as_object_mut().unwrap().remove("labels");
        let second = apply(&def, Some(&first), &smaller, "kubectl", false, None).unwrap();
        assert!(second["metadata"]["labels"].get("x").is_none());
        assert_eq!(second["spec"]["template"]["spec"]["containers"][0]["image"], "i1");
    }
}
