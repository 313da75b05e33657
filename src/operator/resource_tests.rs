//! The generated CRD: its schema is structural, its patterns agree with `spec.rs`'s parsers,
//! and the object round-trips.

use serde_json::Value;

use super::*;
use crate::spec;

fn matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).expect("a valid pattern").is_match(text)
}

#[test]
fn duration_pattern_agrees_with_the_ttl_parser() {
    for text in
        ["30m", "2h", "1h30m", "7d", "1w", "90s", "0m", "", "2", "h", "1.5h", "2 h", "-1h", "1y"]
    {
        // A zero duration is the parser's own refusal, beyond what a pattern says.
        let parsed = spec::parse_ttl(text).is_ok() || text == "0m";
        assert_eq!(matches(PATTERN_DURATION, text), parsed, "{text:?}");
    }
}

#[test]
fn quantity_pattern_agrees_with_the_quantity_parser() {
    for text in [
        "1", "500m", "8Gi", "1.5", ".5", "1.", "1e3", "2E-2", "4k", "", ".", "1..2", "8GB", "Gi",
        "1.5.2", "-1",
    ] {
        assert_eq!(matches(PATTERN_QUANTITY, text), spec::is_quantity(text), "{text:?}");
    }
}

#[test]
fn version_pattern_takes_what_the_version_table_looks_up() {
    for (minor, tag) in crate::engine::KUBERNETES_VERSIONS {
        assert!(matches(PATTERN_KUBERNETES_VERSION, minor), "{minor}");
        assert!(matches(PATTERN_KUBERNETES_VERSION, tag), "{tag}");
    }
    for bad in ["latest", "1", "2.0", "1.33-rc", "v1.33.4.1", ""] {
        assert!(!matches(PATTERN_KUBERNETES_VERSION, bad), "{bad}");
    }
}

#[test]
fn label_value_pattern_agrees_with_the_label_parser() {
    let long = "a".repeat(64);
    for value in ["", "a", "pr-42", "a.b_c", "-a", "a-", &long, "a b"] {
        let parsed = spec::parse_label(&format!("team={value}")).is_ok();
        assert_eq!(matches(PATTERN_LABEL_VALUE, value), parsed, "{value:?}");
    }
}

/// Walks a schema and lists what the API server would refuse as not structural: a node
/// without a type (unless it preserves unknown fields), `additionalProperties` beside
/// `properties`, references, and `anyOf`/`oneOf` that are not plain value checks.
fn structural_problems(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        problems.push(format!("{path}: not an object"));
        return;
    };
    let preserves = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !node.contains_key("type") && !preserves {
        problems.push(format!("{path}: no type"));
    }
    for key in ["$ref", "$schema", "definitions", "$defs", "oneOf", "anyOf", "allOf"] {
        if node.contains_key(key) {
            problems.push(format!("{path}: has {key}"));
        }
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        problems.push(format!("{path}: properties and additionalProperties"));
    }
    for (name, child) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
        structural_problems(child, &format!("{path}.{name}"), problems);
    }
    if let Some(items) = node.get("items") {
        structural_problems(items, &format!("{path}[]"), problems);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        structural_problems(values, &format!("{path}.*"), problems);
    }
}

#[test]
fn the_schema_is_structural() {
    let crd = serde_json::to_value(crd()).expect("serializable");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert_eq!(schema["properties"]["spec"]["properties"]["ttl"]["pattern"], PATTERN_DURATION);
    let mut problems = Vec::new();
    structural_problems(schema, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_crd_names_and_columns() {
    let crd = crd();
    assert_eq!(crd.metadata.name.as_deref(), Some(CRD_NAME));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["vcl".to_string()]));
    let version = &crd.spec.versions[0];
    let columns: Vec<&str> =
        version.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["Status", "Kubernetes", "Age", "Expires"]);
    assert!(version.subresources.as_ref().is_some_and(|s| s.status.is_some()));
}

#[test]
fn an_object_round_trips_with_its_status() {
    let text = r#"{"apiVersion":"vc.dev/v1alpha1","kind":"VirtualCluster",
        "metadata":{"name":"dev","namespace":"team"},
        "spec":{"kubernetesVersion":"1.33","ttl":"2h"},
        "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","reason":"ControlPlaneReady","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let object: VirtualCluster = serde_json::from_str(text).expect("parses");
    assert_eq!(object.spec.ttl.as_deref(), Some("2h"));
    let status = object.status.clone().expect("a status");
    assert_eq!(status.condition("Ready").map(|c| c.reason.as_str()), Some("ControlPlaneReady"));
    let again: VirtualCluster =
        serde_json::from_value(serde_json::to_value(&object).expect("serializes")).expect("parses");
    assert_eq!(again, object);
}
