//! Custom resources against their CRD's schema, over HTTP: 422 bodies for each schema rule
//! and CEL rule (as a v1.36 kube-apiserver answered the same requests), pruning with
//! `unknown field` warnings / strict refusal / the server-side apply 500, defaulting on
//! write and read, status subresource semantics, ratcheting, the scale subresource, printer
//! columns, discovery names, and CRDs refused for non-structural schemas.

#![recursion_limit = "256"]

mod common;

use common::{get, http, post};
use fakekube::FakeKube;
use serde_json::{Value, json};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const PROBES: &str = "/apis/fakecrd-probe.example.com/v1alpha1/namespaces/default/probes";

/// The CRD the real bodies were recorded with.
fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "probes.fakecrd-probe.example.com"},
        "spec": {
            "group": "fakecrd-probe.example.com", "scope": "Namespaced",
            "names": {"plural": "probes", "singular": "probe", "kind": "Probe", "shortNames": ["prb"], "categories": ["all"]},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "description": "how many"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object", "required": ["ttl"],
                            "x-kubernetes-validations": [
                                {"rule": "self.name == oldSelf.name", "message": "name is immutable"},
                                {"rule": "!has(self.note) || self.note != \"bad\""},
                            ],
                            "properties": {
                                "ttl": {"type": "string", "pattern": "^[0-9]+[smhd]$", "x-kubernetes-validations": [
                                    {"rule": "self == oldSelf", "message": "ttl is immutable", "reason": "FieldValueForbidden"}]},
                                "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                                "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0},
                                "name": {"type": "string", "minLength": 2, "maxLength": 10},
                                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                                "tags": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "string"}},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "port": {"x-kubernetes-int-or-string": true},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "note": {"type": "string", "nullable": true},
                                "enabled": {"type": "boolean"},
                                "when": {"type": "string", "format": "date-time"},
                                "nested": {"type": "object", "properties": {"a": {"type": "integer", "default": 7}}},
                            },
                        },
                        "status": {"type": "object", "properties": {
                            "phase": {"type": "string"},
                            "observedGeneration": {"type": "integer", "format": "int64"},
                        }},
                    },
                }},
            }],
        },
    })
}

fn probe(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "fakecrd-probe.example.com/v1alpha1", "kind": "Probe", "metadata": {"name": name}, "spec": spec})
}

fn fake() -> FakeKube {
    let fk = FakeKube::start();
    let r = post(&fk, CRDS, &crd());
    assert_eq!(r.code, 201, "{}", r.text());
    fk
}

fn invalid(name: &str, causes: Value) -> Value {
    let texts: Vec<String> = causes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}: {}", c["field"].as_str().unwrap(), c["message"].as_str().unwrap()))
        .collect();
    let summary =
        if texts.len() == 1 { texts[0].clone() } else { format!("[{}]", texts.join(", ")) };
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("Probe.fakecrd-probe.example.com \"{name}\" is invalid: {summary}"),
        "reason": "Invalid",
        "details": {"name": name, "group": "fakecrd-probe.example.com", "kind": "Probe", "causes": causes},
        "code": 422,
    })
}

const SKIPPED: &str = "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Causes sorted by field then message (the real server's order follows Go map iteration).
fn sorted_causes(body: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("field"), s("reason"), s("message"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_pattern_mismatch_is_the_real_422() {
    let fk = fake();
    let r = post(&fk, PROBES, &probe("a", json!({"ttl": "2 hours"})));
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json(),
        invalid(
            "a",
            json!([{"reason": "FieldValueInvalid", "message": "Invalid value: \"2 hours\": spec.ttl in body should match '^[0-9]+[smhd]$'", "field": "spec.ttl"}])
        )
    );
    assert_eq!(fk.count("probes", Some("default")), 0);
}

#[test]
fn a_missing_required_field_blocks_the_rules_as_for_real() {
    let fk = fake();
    let r = post(&fk, PROBES, &probe("a", json!({})));
    assert_eq!(
        r.json(),
        invalid(
            "a",
            json!([
                {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.ttl"},
                {"reason": "FieldValueInvalid", "message": SKIPPED, "field": "<nil>"},
            ])
        )
    );
}

#[test]
fn every_schema_rule_is_enforced_with_the_real_causes() {
    let fk = fake();
    let r = post(
        &fk,
        PROBES,
        &probe(
            "a",
            json!({"ttl": "1h", "replicas": 9, "name": "x", "mode": "medium", "tags": ["a", "b", "c"], "ratio": 0}),
        ),
    );
    assert_eq!(r.code, 422);
    let want = |v: Value| -> Vec<(String, String, String)> {
        let mut out: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c[0].as_str().unwrap().into(),
                    c[1].as_str().unwrap().into(),
                    c[2].as_str().unwrap().into(),
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        sorted_causes(&r.json()),
        want(json!([
            [
                "spec.replicas",
                "FieldValueInvalid",
                "Invalid value: 9: spec.replicas in body should be less than or equal to 5"
            ],
            ["spec.tags", "FieldValueTooMany", "Too many: 3: must have at most 2 items"],
            [
                "spec.mode",
                "FieldValueNotSupported",
                "Unsupported value: \"medium\": supported values: \"fast\", \"slow\""
            ],
            [
                "spec.ratio",
                "FieldValueInvalid",
                "Invalid value: 0: spec.ratio in body should be greater than 0"
            ],
            [
                "spec.name",
                "FieldValueInvalid",
                "Invalid value: \"x\": spec.name in body should be at least 2 chars long"
            ],
            ["<nil>", "FieldValueInvalid", SKIPPED],
        ]))
    );
    let r = post(
        &fk,
        PROBES,
        &probe(
            "a",
            json!({"ttl": "1h", "replicas": 0, "name": "abcdefghijklmnop", "tags": [], "when": "yesterday", "port": true}),
        ),
    );
    assert_eq!(
        sorted_causes(&r.json()),
        want(json!([
            [
                "spec.when",
                "FieldValueTypeInvalid",
                "Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\""
            ],
            [
                "spec.replicas",
                "FieldValueInvalid",
                "Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
            ],
            [
                "spec.tags",
                "FieldValueInvalid",
                "Invalid value: 0: spec.tags in body should have at least 1 items"
            ],
            ["spec.name", "FieldValueTooLong", "Too long: may not be more than 10 bytes"],
            [
                "spec.port",
                "FieldValueTypeInvalid",
                "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
            ],
            ["<nil>", "FieldValueInvalid", SKIPPED],
        ]))
    );
    let r = post(
        &fk,
        PROBES,
        &probe(
            "a",
            json!({"ttl": "2h", "replicas": "three", "tags": [1], "labels": {"k": 1}, "nested": 5, "mode": 5}),
        ),
    );
    assert_eq!(
        sorted_causes(&r.json()),
        want(json!([
            [
                "spec.replicas",
                "FieldValueTypeInvalid",
                "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
            ],
            [
                "spec.tags[0]",
                "FieldValueTypeInvalid",
                "Invalid value: \"integer\": spec.tags[0] in body must be of type string: \"integer\""
            ],
            [
                "spec.labels.k",
                "FieldValueTypeInvalid",
                "Invalid value: \"integer\": spec.labels.k in body must be of type string: \"integer\""
            ],
            [
                "spec.nested",
                "FieldValueTypeInvalid",
                "Invalid value: \"integer\": spec.nested in body must be of type object: \"integer\""
            ],
            [
                "spec.mode",
                "FieldValueTypeInvalid",
                "Invalid value: \"integer\": spec.mode in body must be of type string: \"integer\""
            ],
            [
                "spec.mode",
                "FieldValueNotSupported",
                "Unsupported value: 5: supported values: \"fast\", \"slow\""
            ],
            ["<nil>", "FieldValueInvalid", SKIPPED],
        ]))
    );
    // Valid values of every kind pass: int-or-string as a string, nullable null, RFC 3339.
    let ok = probe(
        "ok",
        json!({"ttl": "30m", "replicas": 5, "ratio": 0.5, "name": "ab", "mode": "slow", "tags": ["x"],
               "labels": {"a": "b"}, "port": "http", "note": null, "enabled": true, "when": "2026-01-02T03:04:05Z"}),
    );
    let r = post(&fk, PROBES, &ok);
    assert_eq!(r.code, 201, "{}", r.text());
}

#[test]
fn unknown_fields_are_pruned_with_warnings_refused_when_strict_and_fail_apply() {
    let fk = fake();
    let body = json!({"apiVersion": "fakecrd-probe.example.com/v1alpha1", "kind": "Probe", "metadata": {"name": "a"},
        "spec": {"ttl": "2h", "bogus": 1, "nested": {"zzz": 1}, "extra": {"keep": {"deep": 1}}, "note": null, "labels": {"x": "y"}},
        "status": {"phase": "X"}, "top": 1});
    let r = post(&fk, PROBES, &body);
    assert_eq!(r.code, 201, "{}", r.text());
    assert_eq!(
        r.header_values("warning"),
        [
            "299 - \"unknown field \\\"spec.bogus\\\"\"",
            "299 - \"unknown field \\\"spec.nested.zzz\\\"\"",
            "299 - \"unknown field \\\"top\\\"\"",
        ]
    );
    let stored = r.json();
    assert_eq!(
        stored["spec"],
        json!({"extra": {"keep": {"deep": 1}}, "labels": {"x": "y"}, "mode": "fast", "nested": {"a": 7}, "note": null, "replicas": 1, "ttl": "2h"})
    );
    assert!(stored.get("top").is_none() && stored.get("status").is_none(), "{stored}");
    assert_eq!(stored["metadata"]["generation"], 1);

    let r = http(&fk, "POST", &format!("{PROBES}?fieldValidation=Strict"), "application/json", &{
        let mut b = body.clone();
        b["metadata"]["name"] = json!("b");
        b.to_string()
    });
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Probe in version \"v1alpha1\" cannot be handled as a Probe: strict decoding error: unknown field \"spec.bogus\", unknown field \"spec.nested.zzz\", unknown field \"top\"",
               "reason": "BadRequest", "code": 400})
    );
    let r = http(&fk, "POST", &format!("{PROBES}?fieldValidation=Ignore"), "application/json", &{
        let mut b = body.clone();
        b["metadata"]["name"] = json!("c");
        b.to_string()
    });
    assert_eq!(r.code, 201);
    assert!(r.header_values("warning").is_empty());

    let apply = json!({"apiVersion": "fakecrd-probe.example.com/v1alpha1", "kind": "Probe", "metadata": {"name": "ap"},
        "spec": {"ttl": "2h", "nested": {"zzz": 2}, "bogus": 1}});
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/ap?fieldManager=t"),
        "application/apply-patch+yaml",
        &apply.to_string(),
    );
    assert_eq!(r.code, 500);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "failed to create typed patch object (/ap; fakecrd-probe.example.com/v1alpha1, Kind=Probe): .spec.bogus: field not declared in schema",
               "code": 500})
    );
    let apply = json!({"apiVersion": "fakecrd-probe.example.com/v1alpha1", "kind": "Probe", "metadata": {"name": "ap"},
        "spec": {"ttl": "2h", "replicas": "x"}});
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/ap?fieldManager=t"),
        "application/apply-patch+yaml",
        &apply.to_string(),
    );
    assert_eq!(r.code, 500);
    assert_eq!(
        r.json()["message"],
        "failed to create typed patch object (/ap; fakecrd-probe.example.com/v1alpha1, Kind=Probe): .spec.replicas: expected numeric (int or float), got string"
    );
    // Preserved subtrees apply fine; status sent to the main resource is dropped.
    let apply = json!({"apiVersion": "fakecrd-probe.example.com/v1alpha1", "kind": "Probe", "metadata": {"name": "ap"},
        "spec": {"ttl": "2h", "name": "abc", "extra": {"q": {"r": 1}}}, "status": {"phase": "x"}});
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/ap?fieldManager=t"),
        "application/apply-patch+yaml",
        &apply.to_string(),
    );
    assert_eq!(r.code, 201, "{}", r.text());
    assert_eq!(
        r.json()["spec"],
        json!({"extra": {"q": {"r": 1}}, "mode": "fast", "name": "abc", "replicas": 1, "ttl": "2h"})
    );
    assert!(r.json().get("status").is_none());
    // A merge patch with an unknown field warns and drops it.
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/ap"),
        "application/merge-patch+json",
        r#"{"spec":{"bogus":1}}"#,
    );
    assert_eq!(r.code, 200);
    assert_eq!(r.header_values("warning"), ["299 - \"unknown field \\\"spec.bogus\\\"\""]);
    assert!(r.json()["spec"].get("bogus").is_none());
}

#[test]
fn defaults_apply_on_write_and_to_stored_objects_on_read() {
    let fk = fake();
    let r = post(&fk, PROBES, &probe("a", json!({"ttl": "2h", "mode": null, "enabled": null})));
    assert_eq!(r.json()["spec"], json!({"ttl": "2h", "mode": "fast", "replicas": 1}));
    // A default added to the CRD later shows on the stored object when read.
    let mut changed = fk.get("crd", "", "probes.fakecrd-probe.example.com").unwrap();
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["enabled"]["default"] = json!(false);
    let r = http(
        &fk,
        "PUT",
        &format!("{CRDS}/probes.fakecrd-probe.example.com"),
        "application/json",
        &changed.to_string(),
    );
    assert_eq!(r.code, 200, "{}", r.text());
    let r = get(&fk, &format!("{PROBES}/a"));
    assert_eq!(r.json()["spec"]["enabled"], false);
    let list = get(&fk, PROBES).json();
    assert_eq!(list["items"][0]["spec"]["enabled"], false);
}

#[test]
fn the_status_subresource_splits_spec_and_status_writes() {
    let fk = fake();
    let r = post(&fk, PROBES, &probe("n", json!({"ttl": "2h", "name": "abc"})));
    assert_eq!(r.code, 201);
    let path = format!("{PROBES}/n");
    let merge = |p: &str, body: Value| {
        http(&fk, "PATCH", p, "application/merge-patch+json", &body.to_string())
    };
    // Status and metadata through the main resource: status ignored, no generation bump.
    let r =
        merge(&path, json!({"status": {"phase": "Running"}, "metadata": {"labels": {"l": "v"}}}));
    let o = r.json();
    assert_eq!((o["metadata"]["generation"].clone(), o.get("status")), (json!(1), None));
    assert_eq!(o["metadata"]["labels"], json!({"l": "v"}));
    // A spec change bumps the generation.
    let o = merge(&path, json!({"spec": {"replicas": 2}})).json();
    assert_eq!(o["metadata"]["generation"], 2);
    // Status writes keep only status (spec and labels ignored), observedGeneration kept.
    let r = merge(
        &format!("{path}/status"),
        json!({"status": {"phase": "Running", "observedGeneration": 2, "bogus": 1}, "spec": {"replicas": 3}, "metadata": {"labels": {"z": "1"}}}),
    );
    assert_eq!(r.code, 200, "{}", r.text());
    let o = r.json();
    assert_eq!(o["status"], json!({"phase": "Running", "observedGeneration": 2}));
    assert_eq!(o["spec"]["replicas"], 2);
    assert_eq!(o["metadata"]["generation"], 2);
    assert_eq!(o["metadata"]["labels"], json!({"l": "v"}));
    let rv = o["metadata"]["resourceVersion"].clone();
    // The same status again changes nothing.
    let o = merge(&format!("{path}/status"), json!({"status": {"phase": "Running"}})).json();
    assert_eq!(o["metadata"]["resourceVersion"], rv);
    // Status is validated, with message paths relative to it.
    let r = merge(&format!("{path}/status"), json!({"status": {"phase": 5}}));
    assert_eq!(
        r.json(),
        invalid(
            "n",
            json!([
                {"reason": "FieldValueTypeInvalid", "message": "Invalid value: \"integer\": phase in body must be of type string: \"integer\"", "field": "status.phase"},
                {"reason": "FieldValueInvalid", "message": SKIPPED, "field": "<nil>"},
            ])
        )
    );
    // A PUT of the object as read is a no-op; a stale resourceVersion is 409.
    let current = get(&fk, &path).json();
    let r = http(&fk, "PUT", &path, "application/json", &current.to_string());
    assert_eq!(r.json()["metadata"]["resourceVersion"], rv);
    let mut stale = current.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["spec"]["replicas"] = json!(4);
    let r = http(&fk, "PUT", &path, "application/json", &stale.to_string());
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Operation cannot be fulfilled on probes.fakecrd-probe.example.com \"n\": the object has been modified; please apply your changes to the latest version and try again",
               "reason": "Conflict", "details": {"name": "n", "group": "fakecrd-probe.example.com", "kind": "probes"}, "code": 409})
    );
}

#[test]
fn cel_rules_refuse_with_the_real_messages() {
    let fk = fake();
    assert_eq!(post(&fk, PROBES, &probe("n", json!({"ttl": "2h", "name": "abc"}))).code, 201);
    assert_eq!(post(&fk, PROBES, &probe("m", json!({"ttl": "2h"}))).code, 201);
    let merge = |name: &str, body: Value| {
        http(
            &fk,
            "PATCH",
            &format!("{PROBES}/{name}"),
            "application/merge-patch+json",
            &body.to_string(),
        )
    };
    let r = merge("n", json!({"spec": {"name": "xyz"}}));
    assert_eq!(
        r.json(),
        invalid(
            "n",
            json!([{"reason": "FieldValueInvalid", "message": "Invalid value: name is immutable", "field": "spec"}])
        )
    );
    let r = merge("n", json!({"spec": {"note": "bad", "ttl": "3h"}}));
    assert_eq!(
        r.json(),
        invalid(
            "n",
            json!([
                {"reason": "FieldValueInvalid", "message": "Invalid value: failed rule: !has(self.note) || self.note != \"bad\"", "field": "spec"},
                {"reason": "FieldValueForbidden", "message": "Forbidden: ttl is immutable", "field": "spec.ttl"},
            ])
        )
    );
    // oldSelf has no name: the rule's evaluation error is reported as for real.
    let r = merge("m", json!({"spec": {"name": "abc"}}));
    assert_eq!(
        r.json(),
        invalid(
            "m",
            json!([{"reason": "FieldValueInvalid", "message": "Invalid value: \"object\": no such key: name evaluating rule: name is immutable", "field": "spec"}])
        )
    );
    // Schema errors of a blocking kind keep the rules from running.
    let r = merge("n", json!({"spec": {"name": "xyz", "mode": "bad"}}));
    assert_eq!(
        r.json()["message"],
        "Probe.fakecrd-probe.example.com \"n\" is invalid: [spec.mode: Unsupported value: \"bad\": supported values: \"fast\", \"slow\", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );
    assert_eq!(merge("n", json!({"spec": {"replicas": 3}})).code, 200);
}

fn crd_with_schema(schema: Value) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "things.fakecrd-probe.example.com"},
           "spec": {"group": "fakecrd-probe.example.com", "scope": "Namespaced", "names": {"plural": "things", "kind": "Thing"},
                    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]}})
}

#[test]
fn non_structural_crds_are_refused_with_the_real_body() {
    let fk = FakeKube::start();
    let r = post(
        &fk,
        CRDS,
        &crd_with_schema(
            json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
        ),
    );
    assert_eq!(r.code, 422);
    let field = "spec.validation.openAPIV3Schema.properties[spec].type";
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("CustomResourceDefinition.apiextensions.k8s.io \"things.fakecrd-probe.example.com\" is invalid: {field}: Required value: must not be empty for specified object fields"),
               "reason": "Invalid",
               "details": {"name": "things.fakecrd-probe.example.com", "group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition",
                           "causes": [{"reason": "FieldValueRequired", "message": "Required value: must not be empty for specified object fields", "field": field}]},
               "code": 422})
    );
    for (schema, message) in [
        (
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}}),
            "spec.validation.openAPIV3Schema.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
        ),
        (
            json!({"type": "object", "properties": {"spec": {"type": "thing"}}}),
            "spec.validation.openAPIV3Schema.properties[spec].type: Unsupported value: \"thing\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"",
        ),
        (
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}),
            "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
        ),
        (Value::Null, "spec.versions[0].schema.openAPIV3Schema: Required value"),
    ] {
        let r = post(&fk, CRDS, &crd_with_schema(schema));
        assert_eq!(r.code, 422);
        assert_eq!(
            r.json()["message"],
            format!(
                "CustomResourceDefinition.apiextensions.k8s.io \"things.fakecrd-probe.example.com\" is invalid: {message}"
            )
        );
    }
    assert_eq!(get(&fk, "/apis/fakecrd-probe.example.com/v1/things").code, 404);
}

#[test]
fn printer_columns_short_names_and_categories_are_served() {
    let fk = fake();
    assert_eq!(post(&fk, PROBES, &probe("a", json!({"ttl": "2h", "name": "abc"}))).code, 201);
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/a/status"),
        "application/merge-patch+json",
        r#"{"status":{"phase":"Running"}}"#,
    );
    assert_eq!(r.code, 200);
    assert_eq!(post(&fk, PROBES, &probe("b", json!({"ttl": "2h", "replicas": 3}))).code, 201);
    let table = |path: &str| {
        common::get_accept(
            &fk,
            path,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .json()
    };
    let t = table(PROBES);
    let cols: Vec<(Value, Value, Value)> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].clone(), c["type"].clone(), c["description"].clone()))
        .collect();
    assert_eq!(
        cols[1..],
        [
            (
                json!("Phase"),
                json!("string"),
                json!("Custom resource definition column (in JSONPath format): .status.phase")
            ),
            (json!("Replicas"), json!("integer"), json!("how many")),
            (
                json!("Age"),
                json!("date"),
                json!(
                    "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp"
                )
            ),
        ]
    );
    let rows: Vec<Value> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!(r["cells"].as_array().unwrap()[..3]))
        .collect();
    assert_eq!(rows, [json!(["a", "Running", 1]), json!(["b", null, 3])]);
    let discovery = get(&fk, "/apis/fakecrd-probe.example.com/v1alpha1").json();
    assert_eq!(discovery["resources"][0]["shortNames"], json!(["prb"]));
    assert_eq!(discovery["resources"][0]["categories"], json!(["all"]));
    assert_eq!(discovery["resources"][1]["name"], "probes/status");
    assert!(fk.get("prb", "default", "a").is_some());
}

#[test]
fn server_side_apply_of_status_keeps_spec_and_generation() {
    let fk = fake();
    assert_eq!(post(&fk, PROBES, &probe("u", json!({"ttl": "2h"}))).code, 201);
    assert_eq!(post(&fk, PROBES, &probe("s", json!({"ttl": "2h", "name": "abc"}))).code, 201);
    // The CEL rules run over the whole object on status writes too: `u` has no spec.name,
    // so its spec rule fails even though only status is written.
    let status_of = |name: &str| {
        json!({"apiVersion": "fakecrd-probe.example.com/v1alpha1", "kind": "Probe", "metadata": {"name": name},
               "status": {"phase": "Ready", "observedGeneration": 1}})
    };
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/u/status?fieldManager=vc-operator&force=true"),
        "application/apply-patch+yaml",
        &status_of("u").to_string(),
    );
    assert_eq!(
        r.json(),
        invalid(
            "u",
            json!([{"reason": "FieldValueInvalid", "message": "Invalid value: \"object\": no such key: name evaluating rule: name is immutable", "field": "spec"}])
        )
    );
    let status = json!({"apiVersion": "fakecrd-probe.example.com/v1alpha1", "kind": "Probe", "metadata": {"name": "s"},
                        "status": {"phase": "Ready", "observedGeneration": 1}});
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/s/status?fieldManager=vc-operator&force=true"),
        "application/apply-patch+yaml",
        &status.to_string(),
    );
    assert_eq!(r.code, 200, "{}", r.text());
    let o = r.json();
    assert_eq!(o["status"], json!({"phase": "Ready", "observedGeneration": 1}));
    assert_eq!(o["spec"], json!({"ttl": "2h", "name": "abc", "mode": "fast", "replicas": 1}));
    assert_eq!(o["metadata"]["generation"], 1);
    let managers: Vec<(Value, Value)> = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["manager"].clone(), m["subresource"].clone()))
        .collect();
    assert!(managers.contains(&(json!("vc-operator"), json!("status"))), "{managers:?}");
    // The same apply again is a no-op.
    let rv = o["metadata"]["resourceVersion"].clone();
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/s/status?fieldManager=vc-operator&force=true"),
        "application/apply-patch+yaml",
        &status.to_string(),
    );
    assert_eq!(r.json()["metadata"]["resourceVersion"], rv);
    // An invalid status apply is refused with the status-relative message.
    let mut bad = status.clone();
    bad["status"]["observedGeneration"] = json!("one");
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/s/status?fieldManager=vc-operator&force=true"),
        "application/apply-patch+yaml",
        &bad.to_string(),
    );
    assert_eq!(r.code, 500, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "failed to create typed patch object (/s; fakecrd-probe.example.com/v1alpha1, Kind=Probe): .status.observedGeneration: expected numeric (int or float), got string"
    );
}

#[test]
fn the_scale_subresource_follows_the_crd_paths() {
    let fk = FakeKube::start();
    let mut with_scale = crd();
    with_scale["spec"]["versions"][0]["subresources"]["scale"] = json!({"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.observedGeneration"});
    assert_eq!(post(&fk, CRDS, &with_scale).code, 201);
    assert_eq!(
        post(&fk, PROBES, &probe("n", json!({"ttl": "2h", "name": "abc", "replicas": 2}))).code,
        201
    );
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/n/status"),
        "application/merge-patch+json",
        r#"{"status":{"observedGeneration":2}}"#,
    );
    assert_eq!(r.code, 200, "{}", r.text());
    let scale = get(&fk, &format!("{PROBES}/n/scale")).json();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"], json!({"replicas": 2}));
    assert_eq!(scale["status"], json!({"replicas": 2}), "no selector without labelSelectorPath");
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/n/scale"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":4}}"#,
    );
    assert_eq!(r.json()["spec"], json!({"replicas": 4}));
    let o = fk.get("probes", "default", "n").unwrap();
    assert_eq!(
        (o["spec"]["replicas"].clone(), o["metadata"]["generation"].clone()),
        (json!(4), json!(2))
    );
    // The schema still applies to writes through /scale.
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/n/scale"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":9}}"#,
    );
    assert_eq!(
        r.json(),
        invalid(
            "n",
            json!([{"reason": "FieldValueInvalid", "message": "Invalid value: 9: spec.replicas in body should be less than or equal to 5", "field": "spec.replicas"}])
        )
    );
}

/// A CRD in the shape kube's `CustomResource` derive writes (schemars, OpenAPI 3 flavour:
/// `nullable`, integer formats with float minimums, titles, descriptions, a root
/// `required`, preserved free-form values, int-or-string with `anyOf`).
fn derived_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "virtualclusters.vc.dev"},
        "spec": {"group": "vc.dev", "scope": "Namespaced",
            "names": {"categories": [], "kind": "VirtualCluster", "plural": "virtualclusters", "shortNames": ["vcl"], "singular": "virtualcluster"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Kubernetes", "type": "string", "jsonPath": ".status.kubernetesVersion"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "description": "Auto-generated derived type for VirtualClusterSpec via `CustomResource`",
                    "title": "VirtualCluster", "type": "object", "required": ["spec"],
                    "properties": {
                        "spec": {"type": "object", "properties": {
                            "kubernetesVersion": {"description": "Minor version, e.g. 1.33.", "nullable": true, "type": "string", "pattern": "^1\\.[0-9]+$"},
                            "ttl": {"nullable": true, "type": "string", "pattern": "^([0-9]+(s|m|h|d))+$"},
                            "replicas": {"format": "uint32", "minimum": 0.0, "type": "integer", "default": 1},
                            "port": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true, "nullable": true},
                            "labels": {"additionalProperties": {"type": "string"}, "default": {}, "type": "object"},
                            "isolation": {"enum": ["Strict", "Off"], "type": "string", "default": "Strict"},
                            "engine": {"nullable": true, "type": "object", "properties": {
                                "values": {"nullable": true, "type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                        }},
                        "status": {"nullable": true, "type": "object", "properties": {
                            "phase": {"nullable": true, "type": "string"},
                            "kubernetesVersion": {"nullable": true, "type": "string"},
                            "observedGeneration": {"format": "int64", "nullable": true, "type": "integer"},
                            "conditions": {"type": "array", "items": {"type": "object", "required": ["status", "type"], "properties": {
                                "type": {"type": "string"}, "status": {"type": "string"}, "reason": {"nullable": true, "type": "string"}}}},
                        }},
                    },
                }},
            }],
        },
    })
}

#[test]
fn a_derived_crd_is_accepted_and_enforced() {
    let fk = FakeKube::start();
    let r = post(&fk, CRDS, &derived_crd());
    assert_eq!(r.code, 201, "{}", r.text());
    assert_eq!(r.header_values("warning"), ["299 - \"unrecognized format \\\"uint32\\\"\""]);
    const VCS: &str = "/apis/vc.dev/v1alpha1/namespaces/default/virtualclusters";
    let vc = |name: &str, spec: Value| json!({"apiVersion": "vc.dev/v1alpha1", "kind": "VirtualCluster", "metadata": {"name": name}, "spec": spec});
    let r = post(
        &fk,
        VCS,
        &vc(
            "dev",
            json!({"kubernetesVersion": "1.33", "ttl": "2h30m", "port": 8443,
        "engine": {"values": {"controlPlane": {"distro": {"k8s": {"enabled": true}}}}}}),
        ),
    );
    assert_eq!(r.code, 201, "{}", r.text());
    let o = r.json();
    assert_eq!(o["spec"]["replicas"], 1);
    assert_eq!(o["spec"]["isolation"], "Strict");
    assert_eq!(o["spec"]["labels"], json!({}));
    assert_eq!(o["spec"]["engine"]["values"]["controlPlane"]["distro"]["k8s"]["enabled"], true);

    let r = post(
        &fk,
        VCS,
        &vc("bad", json!({"kubernetesVersion": "one", "replicas": -1, "isolation": "Loose"})),
    );
    let mut causes: Vec<String> = r.json()["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}: {}", c["field"].as_str().unwrap(), c["message"].as_str().unwrap()))
        .collect();
    causes.sort();
    assert_eq!(
        causes,
        [
            "spec.isolation: Unsupported value: \"Loose\": supported values: \"Strict\", \"Off\"",
            "spec.kubernetesVersion: Invalid value: \"one\": spec.kubernetesVersion in body should match '^1\\.[0-9]+$'",
            "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
        ]
    );
    let r = post(
        &fk,
        VCS,
        &json!({"apiVersion": "vc.dev/v1alpha1", "kind": "VirtualCluster", "metadata": {"name": "nospec"}}),
    );
    assert_eq!(
        r.json()["message"],
        "VirtualCluster.vc.dev \"nospec\" is invalid: spec: Required value"
    );

    let status = json!({"status": {"phase": "Ready", "kubernetesVersion": "v1.33.4", "observedGeneration": 1,
        "conditions": [{"type": "Progressing", "status": "False"}, {"type": "Ready", "status": "True", "reason": "Running"}]}});
    let r = http(
        &fk,
        "PATCH",
        &format!("{VCS}/dev/status"),
        "application/merge-patch+json",
        &status.to_string(),
    );
    assert_eq!(r.code, 200, "{}", r.text());
    let t = common::get_accept(
        &fk,
        &format!("{VCS}/dev"),
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .json();
    let cells = t["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(cells[..4], [json!("dev"), json!("Ready"), json!("v1.33.4"), json!("True")]);
    assert!(fk.get("vcl", "default", "dev").is_some());
}

#[test]
fn updates_ratchet_over_values_a_stricter_schema_would_refuse() {
    let fk = fake();
    assert_eq!(
        post(&fk, PROBES, &probe("n", json!({"ttl": "2h", "name": "abc", "replicas": 4}))).code,
        201
    );
    let mut stricter = fk.get("crd", "", "probes.fakecrd-probe.example.com").unwrap();
    let spec =
        &mut stricter["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    spec["properties"]["replicas"]["maximum"] = json!(3);
    spec["x-kubernetes-validations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"rule": "self.replicas < 4", "message": "small"}));
    let r = http(
        &fk,
        "PUT",
        &format!("{CRDS}/probes.fakecrd-probe.example.com"),
        "application/json",
        &stricter.to_string(),
    );
    assert_eq!(r.code, 200, "{}", r.text());
    let merge = |body: Value| {
        http(
            &fk,
            "PATCH",
            &format!("{PROBES}/n"),
            "application/merge-patch+json",
            &body.to_string(),
        )
    };
    // What a v1.36 server answered: labels alone pass (spec unchanged, nothing re-checked) ...
    let r = merge(json!({"metadata": {"labels": {"q": "1"}}}));
    assert_eq!(r.code, 200, "{}", r.text());
    // ... another spec field re-runs the spec rule but not the unchanged replicas bound ...
    let r = merge(json!({"spec": {"mode": "slow"}}));
    assert_eq!(
        r.json()["message"],
        "Probe.fakecrd-probe.example.com \"n\" is invalid: spec: Invalid value: small"
    );
    // ... and touching replicas gets both.
    let r = merge(json!({"spec": {"replicas": 5}}));
    assert_eq!(
        r.json()["message"],
        "Probe.fakecrd-probe.example.com \"n\" is invalid: [spec.replicas: Invalid value: 5: spec.replicas in body should be less than or equal to 3, spec: Invalid value: small]"
    );
}

#[test]
fn rules_outside_the_cel_subset_are_accepted_and_not_enforced() {
    let fk = FakeKube::start();
    let mut c = crd();
    let rules = &mut c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"];
    rules
        .as_array_mut()
        .unwrap()
        .push(json!({"rule": "quantity(self.ttl).isGreaterThan(quantity('1'))"}));
    assert_eq!(post(&fk, CRDS, &c).code, 201);
    // The quantity rule is skipped (a real server would evaluate it); the others still run.
    assert_eq!(post(&fk, PROBES, &probe("a", json!({"ttl": "2h", "name": "abc"}))).code, 201);
    let r = http(
        &fk,
        "PATCH",
        &format!("{PROBES}/a"),
        "application/merge-patch+json",
        r#"{"spec":{"name":"xyz"}}"#,
    );
    assert_eq!(
        r.json()["message"],
        "Probe.fakecrd-probe.example.com \"a\" is invalid: spec: Invalid value: name is immutable"
    );
}
