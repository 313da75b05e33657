//! Version, legacy discovery documents and the OpenAPI v3 index and per-group-version
//! documents kubectl reads to learn which query parameters (fieldValidation) PATCH accepts.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::registry::ResourceDef;

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.4",
        "gitCommit": "74cdb426e93bcbbf3b7b40b5d2d4d6c0df8b5bd4",
        "gitTreeState": "clean",
        "buildDate": "2025-08-12T18:05:04Z",
        "goVersion": "go1.24.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Group name -> served versions, in registration order.
fn groups(defs: &[ResourceDef]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for d in defs.iter().filter(|d| !d.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == d.group) {
            Some((_, vs)) => {
                if !vs.contains(&d.version) {
                    vs.push(d.version.clone());
                }
            }
            None => out.push((d.group.clone(), vec![d.version.clone()])),
        }
    }
    out
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0].clone()})
}

pub fn api_group_list(defs: &[ResourceDef]) -> Value {
    let groups: Vec<Value> = groups(defs).iter().map(|(g, vs)| group_entry(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(defs: &[ResourceDef], group: &str) -> Option<Value> {
    let (g, vs) = groups(defs).into_iter().find(|(g, _)| g == group)?;
    let mut entry = group_entry(&g, &vs);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

pub fn resource_list(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let matching: Vec<&ResourceDef> =
        defs.iter().filter(|d| d.group == group && d.version == version).collect();
    if matching.is_empty() {
        return None;
    }
    let resources: Vec<Value> = matching.iter().flat_map(|d| d.discovery_entries()).collect();
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// The OpenAPI v3 index: one entry per group-version.
pub fn openapi_v3_index(defs: &[ResourceDef]) -> Value {
    let mut paths = BTreeMap::new();
    for d in defs {
        let p = gv_path(&d.group, &d.version);
        let url = format!("/openapi/v3/{p}?hash={}", content_hash(&format!("{p}{}", defs.len())));
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// A 128-digit upper-case hex digest, the shape of the real index's `hash=` values.
fn content_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    (0..8u64)
        .map(|round| {
            for b in s.bytes().chain(round.to_le_bytes()) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            format!("{h:016X}")
        })
        .collect()
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

/// The OpenAPI v3 document of one group-version (`api/v1`, `apis/apps/v1`): paths with
/// their operations, parameters and group-version-kind extensions; schemas are open objects.
pub fn openapi_v3_doc(defs: &[ResourceDef], gv_path_wanted: &str) -> Option<Value> {
    let matching: Vec<&ResourceDef> =
        defs.iter().filter(|d| gv_path(&d.group, &d.version) == gv_path_wanted).collect();
    if matching.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for d in matching {
        let gvk = json!({"group": d.group, "version": d.version, "kind": d.kind});
        let schema_name = format!(
            "io.k8s.fake.{}.{}.{}",
            if d.group.is_empty() { "core" } else { &d.group },
            d.version,
            d.kind
        );
        schemas.insert(
            schema_name.clone(),
            json!({"type": "object", "x-kubernetes-group-version-kind": [gvk.clone()], "x-kubernetes-preserve-unknown-fields": true}),
        );
        let body = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}});
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}}});
        let base = format!("/{gv_path_wanted}");
        let collection = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        let write_params = vec![
            query_param(
                "dryRun",
                "When present, indicates that modifications should not be persisted.",
            ),
            query_param(
                "fieldManager",
                "fieldManager is a name associated with the actor or entity that is making these changes.",
            ),
            query_param(
                "fieldValidation",
                "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.",
            ),
        ];
        let mut patch_params = write_params.clone();
        patch_params.push(query_param("force", "Force is going to \"force\" Apply requests."));
        let op = |action: &str, params: &[Value], with_body: bool| {
            let mut o = json!({
                "operationId": format!("{action}{}", d.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": ok,
            });
            if with_body {
                o["requestBody"] = body.clone();
            }
            o
        };
        paths.insert(
            collection.clone(),
            json!({"get": op("list", &[], false), "post": op("post", &write_params, true)}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": op("get", &[], false),
                "put": op("put", &write_params, true),
                "patch": op("patch", &patch_params, true),
                "delete": op("delete", &[], false),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
