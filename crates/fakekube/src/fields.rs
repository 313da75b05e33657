//! Field paths over JSON objects: the schema of associative lists, field sets in the
//! `managedFields` `FieldsV1` format, and the keyed merge that apply and strategic patches use.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One path element in `FieldsV1` spelling: `f:name` or `k:{"name":"x"}`.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Key fields of an associative list found at `field` under `parent`, or `None` when atomic.
pub fn list_keys(parent: &[String], field: &str) -> Option<&'static [&'static str]> {
    let in_container = parent.iter().any(|p| {
        matches!(p.as_str(), "f:containers" | "f:initContainers" | "f:ephemeralContainers")
    });
    Some(match field {
        "containers" | "initContainers" | "ephemeralContainers" => &["name"],
        "ports" if in_container => &["containerPort", "protocol"],
        "ports" => &["port", "protocol"],
        "env" | "volumes" | "imagePullSecrets" | "resourceClaims" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "ownerReferences" => &["uid"],
        "conditions" => &["type"],
        "hostAliases" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        _ => return None,
    })
}

/// Maps that are owned and replaced as a whole (label selectors, node selectors).
pub fn is_atomic_map(field: &str) -> bool {
    matches!(field, "selector" | "podSelector" | "namespaceSelector" | "nodeSelector")
}

/// String-keyed maps whose node itself appears (as `.`) in fields set by updates.
fn is_granular_map(field: &str) -> bool {
    matches!(
        field,
        "labels"
            | "annotations"
            | "data"
            | "binaryData"
            | "stringData"
            | "requests"
            | "limits"
            | "capacity"
            | "allocatable"
            | "hard"
            | "used"
    )
}

/// Which nodes [`leaf_set`] reports besides leaves and list items.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// What an applier sends: leaves and associative-list items.
    Apply,
    /// What an update changes: also associative lists and string maps themselves.
    Update,
}

/// The `k:{...}` element naming `item` in a list keyed by `keys` (protocol defaults to TCP).
pub fn key_element(item: &Value, keys: &[&str]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|k| {
            let v = match item.get(*k) {
                Some(v) => v.clone(),
                None if *k == "protocol" => Value::String("TCP".into()),
                None => Value::Null,
            };
            format!("{}:{}", Value::String((*k).to_string()), v)
        })
        .collect();
    format!("k:{{{}}}", parts.join(","))
}

/// Every leaf field of `obj` plus every associative-list item, skipping paths `skip` rejects.
pub fn leaf_set(obj: &Value, skip: &dyn Fn(&[String]) -> bool, kind: SetKind) -> FieldSet {
    let mut set = FieldSet::new();
    walk(obj, &mut Vec::new(), skip, kind, &mut set);
    set
}

fn walk(
    v: &Value,
    path: &mut Path,
    skip: &dyn Fn(&[String]) -> bool,
    kind: SetKind,
    out: &mut FieldSet,
) {
    let Some(map) = v.as_object() else {
        out.insert(path.clone());
        return;
    };
    if map.is_empty() && !path.is_empty() {
        out.insert(path.clone());
        return;
    }
    for (k, child) in map {
        path.push(format!("f:{k}"));
        if !skip(path) {
            match (child, list_keys(&path[..path.len() - 1], k)) {
                (Value::Array(items), Some(keys)) => {
                    if kind == SetKind::Update || items.is_empty() {
                        out.insert(path.clone());
                    }
                    for item in items {
                        path.push(key_element(item, keys));
                        out.insert(path.clone());
                        if item.as_object().is_some_and(|m| !m.is_empty()) {
                            walk(item, path, skip, kind, out);
                        }
                        path.pop();
                    }
                }
                (Value::Object(_), _) if is_atomic_map(k) => {
                    out.insert(path.clone());
                }
                (Value::Object(m), _) => {
                    if kind == SetKind::Update && is_granular_map(k) && !m.is_empty() {
                        out.insert(path.clone());
                    }
                    walk(child, path, skip, kind, out);
                }
                _ => {
                    out.insert(path.clone());
                }
            }
        }
        path.pop();
    }
}

fn find_item(items: &[Value], parent: &[String], field: &str, elem: &str) -> Option<usize> {
    let keys = list_keys(parent, field)?;
    items.iter().position(|i| key_element(i, keys) == elem)
}

/// The value at `path`, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for (i, elem) in path.iter().enumerate() {
        if let Some(f) = elem.strip_prefix("f:") {
            cur = cur.as_object()?.get(f)?;
        } else {
            let field = path[i - 1].strip_prefix("f:")?;
            let items = cur.as_array()?;
            cur = &items[find_item(items, &path[..i - 1], field, elem)?];
        }
    }
    Some(cur)
}

/// Removes the field or list item at `path`; returns whether anything was removed.
pub fn remove_at(obj: &mut Value, path: &[String]) -> bool {
    let Some((last, parent_path)) = path.split_last() else { return false };
    let mut cur = obj;
    for (i, elem) in parent_path.iter().enumerate() {
        let next = if let Some(f) = elem.strip_prefix("f:") {
            cur.as_object_mut().and_then(|m| m.get_mut(f))
        } else {
            let field = path[i - 1].strip_prefix("f:").unwrap_or_default().to_string();
            let parent = path[..i - 1].to_vec();
            cur.as_array_mut().and_then(|items| {
                let idx = find_item(items, &parent, &field, elem)?;
                items.get_mut(idx)
            })
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        cur.as_object_mut().is_some_and(|m| m.remove(f).is_some())
    } else {
        let field = parent_path.last().and_then(|p| p.strip_prefix("f:")).unwrap_or_default();
        let parent = &parent_path[..parent_path.len().saturating_sub(1)];
        match cur.as_array_mut() {
            Some(items) => match find_item(items, parent, field, last) {
                Some(idx) => {
                    items.remove(idx);
                    true
                }
                None => false,
            },
            None => false,
        }
    }
}

/// Encodes a field set as a `fieldsV1` object.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for elem in path {
            node = node
                .entry(elem.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("fieldsV1 nodes are objects");
        }
    }
    for path in set {
        let mut node = &mut root;
        for elem in path {
            node = node.get_mut(elem).and_then(Value::as_object_mut).expect("inserted above");
        }
        if !node.is_empty() && !node.contains_key(".") {
            node.insert(".".to_string(), Value::Object(Map::new()));
        }
    }
    Value::Object(root)
}

/// Decodes a `fieldsV1` object into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    decode(v, &mut Vec::new(), &mut set);
    set
}

fn decode(v: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(map) = v.as_object() else { return };
    for (k, child) in map {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        path.push(k.clone());
        if child.as_object().is_none_or(Map::is_empty) {
            out.insert(path.clone());
        } else {
            decode(child, path, out);
        }
        path.pop();
    }
}

/// `.spec.template.spec.containers[name="app"].image`, as in conflict messages.
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for elem in path {
        if let Some(f) = elem.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = elem.strip_prefix("k:") {
            let parsed: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    s
}

/// How [`merge`] treats `null` values and `$`-directives in the patch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// Server-side apply: nulls are ignored, lists merge by key.
    Apply,
    /// Strategic merge patch: nulls delete, lists merge by key, `$patch: delete` removes items.
    Strategic,
}

/// Merges `patch` into `target`, merging associative lists by key.
pub fn merge(target: &mut Value, patch: &Value, mode: MergeMode) {
    merge_at(target, patch, &mut Vec::new(), mode);
}

fn merge_at(target: &mut Value, patch: &Value, path: &mut Path, mode: MergeMode) {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, pv) in pmap {
        if k.starts_with('$') {
            continue;
        }
        let tmap = target.as_object_mut().expect("made an object above");
        if pv.is_null() {
            if mode == MergeMode::Strategic {
                tmap.remove(k);
            }
            continue;
        }
        path.push(format!("f:{k}"));
        match (pv, list_keys(&path[..path.len() - 1], k)) {
            (Value::Array(items), Some(keys)) => {
                let existing = tmap.entry(k.clone()).or_insert_with(|| Value::Array(Vec::new()));
                if !existing.is_array() {
                    *existing = Value::Array(Vec::new());
                }
                let list = existing.as_array_mut().expect("made an array above");
                for item in items {
                    let key = key_element(item, keys);
                    let pos = list.iter().position(|i| key_element(i, keys) == key);
                    if mode == MergeMode::Strategic && item["$patch"] == "delete" {
                        if let Some(p) = pos {
                            list.remove(p);
                        }
                        continue;
                    }
                    path.push(key.clone());
                    match pos {
                        Some(p) => merge_at(&mut list[p], item, path, mode),
                        None => {
                            let mut fresh = Value::Object(Map::new());
                            merge_at(&mut fresh, item, path, mode);
                            list.push(fresh);
                        }
                    }
                    path.pop();
                }
            }
            (Value::Object(_), _) if !is_atomic_map(k) => {
                let child = tmap.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
                merge_at(child, pv, path, mode);
            }
            _ => {
                tmap.insert(k.clone(), strip_directives(pv));
            }
        }
        path.pop();
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let tmap = target.as_object_mut().expect("made an object above");
    for (k, v) in pmap {
        if v.is_null() {
            tmap.remove(k);
        } else {
            merge_patch(tmap.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn pointer_parts(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p.strip_prefix('/').ok_or_else(|| format!("invalid JSON pointer: {p}"))?;
    Ok(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect())
}

fn pointer_parent<'a>(doc: &'a mut Value, parts: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for part in parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(part),
            Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: /{}", parts.join("/")))?;
    }
    Ok(cur)
}

fn pointer_add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let parts = pointer_parts(path)?;
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match pointer_parent(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" { a.len() } else { last.parse().map_err(|_| "bad index")? };
            if idx > a.len() {
                return Err(format!("index out of range: {path}"));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(format!("doc is missing path: {path}")),
    }
}

fn pointer_remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let parts = pointer_parts(path)?;
    let (last, parent) = parts.split_last().ok_or("cannot remove the root")?;
    let missing = || format!("doc is missing path: {path}");
    match pointer_parent(doc, parent)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let idx: usize = last.parse().map_err(|_| missing())?;
            if idx < a.len() { Ok(a.remove(idx)) } else { Err(missing()) }
        }
        _ => Err(missing()),
    }
}

/// RFC 6902 JSON patch.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("missing path")?;
        match op["op"].as_str() {
            Some("add") => pointer_add(doc, path, op["value"].clone())?,
            Some("remove") => {
                pointer_remove(doc, path)?;
            }
            Some("replace") => {
                pointer_remove(doc, path)?;
                pointer_add(doc, path, op["value"].clone())?;
            }
            Some("test") => {
                // As the API server's json-patch library: a missing member tests equal to null
                // (kube-runtime's finalizer helper tests `/metadata/finalizers` against null).
                let found = doc.pointer(path).unwrap_or(&Value::Null);
                if found != &op["value"] {
                    return Err(format!("testing value {path} failed"));
                }
            }
            Some("move") => {
                let from = op["from"].as_str().ok_or("missing from")?;
                let v = pointer_remove(doc, from)?;
                pointer_add(doc, path, v)?;
            }
            Some("copy") => {
                let from = op["from"].as_str().ok_or("missing from")?;
                let v = doc.pointer(from).cloned().ok_or("missing from path")?;
                pointer_add(doc, path, v)?;
            }
            other => return Err(format!("Unexpected kind: {}", other.unwrap_or_default())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn none(_: &[String]) -> bool {
        false
    }

    #[test]
    fn fields_v1_round_trips_with_list_items() {
        let obj = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "x", "ports": [{"containerPort": 80}]}
        ]}}}});
        let set = leaf_set(&obj, &none, SetKind::Apply);
        let v1 = to_fields_v1(&set);
        let c = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:image"], json!({}));
        assert!(c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"].is_object());
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn keyed_merge_and_paths() {
        let mut live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}], "args": [1, 2]}});
        let cfg = json!({"spec": {"containers": [{"name": "b", "image": "3"}], "args": [3]}});
        merge(&mut live, &cfg, MergeMode::Apply);
        assert_eq!(live["spec"]["containers"][0]["image"], "1");
        assert_eq!(live["spec"]["containers"][1]["image"], "3");
        assert_eq!(live["spec"]["args"], json!([3]));
        let path: Path = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"b\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(value_at(&live, &path), Some(&json!("3")));
        assert_eq!(path_string(&path), ".spec.containers[name=\"b\"].image");
        assert!(remove_at(&mut live, &path[..3]));
        assert_eq!(live["spec"]["containers"].as_array().unwrap().len(), 1);
    }
}
