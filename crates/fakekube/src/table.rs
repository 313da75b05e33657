//! `meta.k8s.io/v1` Table rendering for `kubectl get` (columns per kind, NAME/AGE otherwise).

use serde_json::{Value, json};

use crate::registry::ResourceDef;
use crate::util;

fn column(name: &str, kind: &str, format: &str, description: &str) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": 0})
}

fn name_column() -> Value {
    column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    )
}

fn age_column() -> Value {
    column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    )
}

/// Column definitions for a resource type.
pub fn columns(def: &ResourceDef) -> Vec<Value> {
    let mut cols = vec![name_column()];
    if let Some(crd) = &def.crd {
        for c in &crd.printer_columns {
            let path = c["jsonPath"].as_str().unwrap_or_default();
            let description = c["description"].as_str().map_or_else(
                || format!("Custom resource definition column (in JSONPath format): {path}"),
                str::to_string,
            );
            cols.push(json!({
                "name": c["name"],
                "type": c["type"],
                "format": c["format"].as_str().unwrap_or_default(),
                "description": description,
                "priority": c["priority"].as_i64().unwrap_or(0),
            }));
        }
        return cols;
    }
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => {
            cols.push(column(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
            ));
            cols.push(column(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
            ));
            cols.push(column("Restarts", "string", "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."));
        }
        ("apps", "statefulsets") => {
            cols.push(column("Ready", "string", "", "Number of the pod with ready state"));
        }
        ("apps", "deployments") => {
            cols.push(column("Ready", "string", "", "Number of the pod with ready state"));
            cols.push(column("Up-to-date", "integer", "", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."));
            cols.push(column("Available", "integer", "", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."));
        }
        ("", "namespaces") => {
            cols.push(column("Status", "string", "", "The status of the namespace"))
        }
        ("", "secrets") => {
            cols.push(column("Type", "string", "", "The type of the secret"));
            cols.push(column("Data", "string", "", "The number of entries in the secret"));
        }
        ("", "configmaps") => {
            cols.push(column("Data", "string", "", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."))
        }
        ("", "services") => {
            cols.push(column("Type", "string", "", "The type of the service"));
            cols.push(column("Cluster-IP", "string", "", "The IP address of the service"));
            cols.push(column("Port(s)", "string", "", "The ports of the service"));
        }
        ("", "persistentvolumeclaims") => {
            cols.push(column("Status", "string", "", "The phase of the claim"))
        }
        _ => {}
    }
    cols.push(age_column());
    cols
}

fn pod_status(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".to_string();
    }
    for c in pod["status"]["containerStatuses"].as_array().into_iter().flatten() {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            return r.to_string();
        }
    }
    let scheduled_false = pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "False"));
    if scheduled_false {
        return "Pending".to_string();
    }
    pod["status"]["phase"].as_str().unwrap_or("Pending").to_string()
}

/// The first value a printer column's JSONPath (`.status.phase`, `.spec.items[0].name`,
/// `.status.conditions[?(@.type=="Ready")].status`, `[*]`) finds in `obj`.
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}').trim();
    let mut current = vec![obj];
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            current = current.into_iter().filter_map(|v| v.get(key)).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            current = if inner == "*" {
                current.into_iter().flat_map(|v| v.as_array().into_iter().flatten()).collect()
            } else if let Some(filter) =
                inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (key, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                let key = key.trim();
                current
                    .into_iter()
                    .flat_map(|v| v.as_array().into_iter().flatten())
                    .filter(|item| match &item[key] {
                        Value::String(s) => s == want,
                        other => want.parse::<Value>().is_ok_and(|w| w == *other),
                    })
                    .collect()
            } else {
                let i: usize = inner.trim().parse().ok()?;
                current.into_iter().filter_map(|v| v.get(i)).collect()
            };
        } else {
            return None;
        }
    }
    current.into_iter().next()
}

/// A printer-column cell as the real table convertor renders it by column type.
fn crd_cell(kind: &str, v: Option<&Value>) -> Value {
    let Some(v) = v else { return Value::Null };
    match kind {
        "integer" => match v {
            Value::Number(n) => json!(n.as_i64().unwrap_or(n.as_f64().unwrap_or(0.0) as i64)),
            _ => Value::Null,
        },
        "number" => v.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => v.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => match v.as_str() {
            Some(s) if util::parse_rfc3339(s).is_some() => json!(util::age(Some(s))),
            _ => Value::Null,
        },
        _ => match v {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

/// The cells of one row.
pub fn cells(def: &ResourceDef, obj: &Value) -> Vec<Value> {
    let name = obj["metadata"]["name"].clone();
    if let Some(crd) = &def.crd {
        let mut row = vec![name];
        for c in &crd.printer_columns {
            let path = c["jsonPath"].as_str().unwrap_or_default();
            row.push(crd_cell(c["type"].as_str().unwrap_or("string"), json_path(obj, path)));
        }
        return row;
    }
    let age = util::age(obj["metadata"]["creationTimestamp"].as_str());
    let count = |v: &Value| v.as_object().map_or(0, |m| m.len());
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let mut row = vec![name];
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => {
            let statuses =
                obj["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            row.push(json!(format!("{ready}/{total}")));
            row.push(json!(pod_status(obj)));
            row.push(json!(restarts.to_string()));
        }
        ("apps", "statefulsets") => {
            let st = &obj["status"];
            row.push(json!(format!(
                "{}/{}",
                int(&st["readyReplicas"]),
                int(&obj["spec"]["replicas"])
            )));
        }
        ("apps", "deployments") => {
            let st = &obj["status"];
            row.push(json!(format!(
                "{}/{}",
                int(&st["readyReplicas"]),
                int(&obj["spec"]["replicas"])
            )));
            row.push(json!(int(&st["updatedReplicas"])));
            row.push(json!(int(&st["availableReplicas"])));
        }
        ("", "namespaces") => row.push(obj["status"]["phase"].clone()),
        ("", "secrets") => {
            row.push(obj["type"].clone());
            row.push(json!(count(&obj["data"])));
        }
        ("", "configmaps") => {
            row.push(json!(count(&obj["data"]) + count(&obj["binaryData"])));
        }
        ("", "services") => {
            row.push(obj["spec"]["type"].clone());
            row.push(obj["spec"]["clusterIP"].clone());
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect();
            row.push(json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") }));
        }
        ("", "persistentvolumeclaims") => row.push(obj["status"]["phase"].clone()),
        _ => {}
    }
    row.push(json!(age));
    row
}

fn row(def: &ResourceDef, obj: &Value, include: &str) -> Value {
    let mut r = json!({"cells": cells(def, obj)});
    match include {
        "None" => {}
        "Object" => r["object"] = obj.clone(),
        _ => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"].clone(),
            })
        }
    }
    r
}

/// A Table of `objs`; `include` is the `includeObject` query value.
pub fn table(def: &ResourceDef, objs: &[Value], metadata: Value, include: &str) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(def),
        "rows": objs.iter().map(|o| row(def, o, include)).collect::<Vec<_>>(),
    })
}
