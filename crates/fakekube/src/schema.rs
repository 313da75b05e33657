//! CustomResourceDefinition schemas as the real apiextensions-apiserver applies them: the
//! structural checks a CRD must pass, and for custom resources the pruning of unknown fields,
//! `default`s and OpenAPI v3 validation with kube-openapi's messages (as Kubernetes v1.36
//! words them). Pure functions over JSON values; `cel` evaluates `x-kubernetes-validations`.
//!
//! Enforced: `type` (with `nullable`, `x-kubernetes-int-or-string`), `enum`, `required`,
//! `pattern`, `minLength` / `maxLength`, `minimum` / `maximum` (and their exclusive forms),
//! `multipleOf`, `minItems` / `maxItems`, `minProperties` / `maxProperties`, `format`
//! (`date-time`, `date`, `byte`, `uuid`, `ipv4`, `ipv6`), `properties`,
//! `additionalProperties`, `items`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource` (its `apiVersion` / `kind` / `metadata` are kept).
//! Updates ratchet: errors at paths whose value did not change are dropped (and CEL rules
//! other than transition rules skip unchanged values), as on Kubernetes 1.30+.
//! Not enforced: `uniqueItems`, `allOf` / `anyOf` / `oneOf` / `not`, `x-kubernetes-list-type`
//! / `x-kubernetes-map-type` invariants, and the metadata of embedded resources.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::cel;
use crate::status::FieldError;

/// What one served version of a CustomResourceDefinition adds to its resource type.
#[derive(Debug, Default)]
pub struct CrdVersion {
    /// `schema.openAPIV3Schema`, when the version has one.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns` (the CRD default, an `Age` column, when empty).
    pub printer_columns: Vec<Value>,
    /// The `x-kubernetes-validations` rules of the schema, compiled once.
    pub rules: Arc<cel::RuleSet>,
    /// `subresources.scale` (`specReplicasPath`, `statusReplicasPath`, `labelSelectorPath`).
    pub scale: Option<Value>,
}

impl CrdVersion {
    pub fn from_version(version: &Value) -> Self {
        let schema = version["schema"]["openAPIV3Schema"]
            .as_object()
            .map(|_| version["schema"]["openAPIV3Schema"].clone());
        let mut printer_columns: Vec<Value> =
            version["additionalPrinterColumns"].as_array().cloned().unwrap_or_default();
        if printer_columns.is_empty() {
            printer_columns.push(
                json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
            );
        }
        let rules = Arc::new(schema.as_ref().map(cel::RuleSet::compile).unwrap_or_default());
        let scale = version["subresources"]["scale"].as_object().map(|m| Value::Object(m.clone()));
        CrdVersion { schema, printer_columns, rules, scale }
    }
}

/// `a.b`, or `b` when `a` is empty.
fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

// ---------------------------------------------------------------------------------------
// The CRD itself

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Structural-schema errors of a CRD (create and update), with the real field paths: a
/// schema shared by all versions is reported under `spec.validation.openAPIV3Schema` (the
/// internal form the real server validates), per-version ones under
/// `spec.versions[i].schema.openAPIV3Schema`.
pub fn check_crd(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &crd["spec"];
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let group = spec["group"].as_str().unwrap_or_default();
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let columns: Vec<&Value> = versions.iter().map(|v| &v["additionalPrinterColumns"]).collect();
    let shared_columns = columns.windows(2).all(|w| w[0] == w[1]);
    for (i, cols) in columns.iter().enumerate() {
        if shared_columns && i > 0 {
            break;
        }
        let base = if shared_columns {
            "spec.additionalPrinterColumns".to_string()
        } else {
            format!("spec.versions[{i}].additionalPrinterColumns")
        };
        for (j, c) in cols.as_array().into_iter().flatten().enumerate() {
            let kind = c["type"].as_str().unwrap_or_default();
            if !["boolean", "date", "integer", "number", "string"].contains(&kind) {
                errs.push(FieldError::invalid(
                    &format!("{base}[{j}].type"),
                    kind,
                    "must be one of boolean,date,integer,number,string",
                ));
            }
            let path = c["jsonPath"].as_str().unwrap_or_default();
            if !path.starts_with('.') {
                errs.push(FieldError::invalid(
                    &format!("{base}[{j}].JSONPath"),
                    path,
                    "must be a simple json path starting with .",
                ));
            }
        }
    }
    let schemas: Vec<&Value> = versions.iter().map(|v| &v["schema"]["openAPIV3Schema"]).collect();
    for (i, s) in schemas.iter().enumerate() {
        if !s.is_object() {
            errs.push(FieldError::required(
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "",
            ));
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    let shared = schemas.windows(2).all(|w| w[0] == w[1]);
    for (i, s) in schemas.iter().enumerate() {
        if shared && i > 0 {
            break;
        }
        let path = if shared {
            "spec.validation.openAPIV3Schema".to_string()
        } else {
            format!("spec.versions[{i}].schema.openAPIV3Schema")
        };
        match s["type"].as_str() {
            Some("object") => {}
            Some(t) => errs.push(FieldError::invalid(
                &format!("{path}.type"),
                t,
                "must be object at the root",
            )),
            None => errs.push(FieldError::required(
                &format!("{path}.type"),
                "must not be empty at the root",
            )),
        }
        if let Some(meta) = s["properties"]["metadata"].as_object() {
            let keys_ok =
                meta.keys().all(|k| matches!(k.as_str(), "type" | "properties" | "description"));
            let props_ok = meta.get("properties").is_none_or(|p| {
                p.as_object().is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName"))
            });
            let only_names = keys_ok && props_ok && meta.get("type").is_none_or(|t| t == "object");
            if !only_names {
                errs.push(FieldError::forbidden(
                    &format!("{path}.properties[metadata]"),
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
            }
        }
        check_node(s, &path, true, &mut errs);
    }
    errs
}

/// String formats the real server knows (`supportedFormats`, compared without `-` / `_`).
const STRING_FORMATS: [&str; 24] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

/// The `format`s in a CRD's schemas the real server does not know, for its
/// `unrecognized format "uint32"` warnings on CRD writes (each named once).
pub fn unrecognized_formats(crd: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    fn walk(node: &Value, out: &mut Vec<String>) {
        if let Some(f) = node["format"].as_str() {
            let known = match node["type"].as_str() {
                Some("integer") => matches!(f, "int32" | "int64"),
                Some("number") => matches!(f, "float" | "double" | "int32" | "int64"),
                _ => STRING_FORMATS.contains(&f.replace(['-', '_'], "").as_str()),
            };
            if !known && !out.iter().any(|o| o == f) {
                out.push(f.to_string());
            }
        }
        for sub in node["properties"].as_object().into_iter().flatten().map(|(_, v)| v) {
            walk(sub, out);
        }
        for key in ["items", "additionalProperties"] {
            if node[key].is_object() {
                walk(&node[key], out);
            }
        }
    }
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        walk(&v["schema"]["openAPIV3Schema"], &mut out);
    }
    out
}

fn check_node(node: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let int_or_string = is_true(&node["x-kubernetes-int-or-string"]);
    let preserve = is_true(&node["x-kubernetes-preserve-unknown-fields"]);
    match node["type"].as_str() {
        Some(t) if !TYPES.contains(&t) => {
            errs.push(FieldError::not_supported(&format!("{path}.type"), t, &TYPES));
        }
        None if !root && !int_or_string && !preserve => errs.push(FieldError::required(
            &format!("{path}.type"),
            "must not be empty for specified object fields",
        )),
        _ => {}
    }
    if node["type"] == "array" && !node["items"].is_object() {
        errs.push(FieldError::required(&format!("{path}.items"), "must be specified"));
    }
    if node["properties"].is_object() && node.get("additionalProperties").is_some() {
        errs.push(FieldError::forbidden(
            &format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if let Some(p) = node["pattern"].as_str()
        && let Err(e) = regex::Regex::new(p)
    {
        let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
        errs.push(FieldError::invalid(
            &format!("{path}.pattern"),
            p,
            format!("must be a valid regular expression, but isn't: {first}"),
        ));
    }
    if let Some(d) = node.get("default") {
        let mut derrs = Vec::new();
        validate_node(node, d, "", "", &mut derrs);
        for e in derrs {
            let field = match e.field.as_str() {
                "" => format!("{path}.default"),
                sub => format!("{path}.default.{sub}"),
            };
            errs.push(FieldError { field, ..e });
        }
    }
    for (k, sub) in node["properties"].as_object().into_iter().flatten() {
        check_node(sub, &format!("{path}.properties[{k}]"), false, errs);
    }
    if node["additionalProperties"].is_object() {
        check_node(
            &node["additionalProperties"],
            &format!("{path}.additionalProperties"),
            false,
            errs,
        );
    }
    if node["items"].is_object() {
        check_node(&node["items"], &format!("{path}.items"), false, errs);
    }
}

// ---------------------------------------------------------------------------------------
// Pruning and defaulting

/// Removes the fields `schema` does not declare from `obj` (the object's root), as the real
/// server does on every write and read; returns their paths (`spec.bogus`), which are the
/// `unknown field` warnings and strict-validation errors.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut out = Vec::new();
    prune_node(schema, obj, "", true, &mut out);
    out
}

fn prune_node(node: &Value, v: &mut Value, path: &str, root: bool, out: &mut Vec<String>) {
    let preserve = is_true(&node["x-kubernetes-preserve-unknown-fields"]);
    let embedded = root || is_true(&node["x-kubernetes-embedded-resource"]);
    match v {
        Value::Object(m) => {
            let props = node["properties"].as_object();
            let additional = &node["additionalProperties"];
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let p = child(path, &k);
                if embedded
                    && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                    && (root || !props.is_some_and(|ps| ps.contains_key(&k)))
                {
                    continue;
                }
                let sub = props
                    .and_then(|ps| ps.get(&k))
                    .or_else(|| additional.is_object().then_some(additional));
                match sub {
                    Some(sub) => {
                        if let Some(val) = m.get_mut(&k) {
                            prune_node(sub, val, &p, false, out);
                        }
                    }
                    None if preserve || is_true(additional) => {}
                    None => {
                        m.remove(&k);
                        out.push(p);
                    }
                }
            }
        }
        Value::Array(items) if node["items"].is_object() => {
            for (i, item) in items.iter_mut().enumerate() {
                prune_node(&node["items"], item, &index(path, i), false, out);
            }
        }
        _ => {}
    }
}

/// Fills in `default`s for missing fields (and for nulls in fields that are not `nullable`),
/// then drops the remaining nulls of non-nullable fields, as the real server does.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    default_node(schema, obj, true);
}

fn default_node(node: &Value, v: &mut Value, root: bool) {
    match v {
        Value::Object(m) => {
            if let Some(props) = node["properties"].as_object() {
                for (k, sub) in props {
                    if root && k == "metadata" {
                        continue;
                    }
                    let nullable = is_true(&sub["nullable"]);
                    match (m.get(k), sub.get("default")) {
                        (None, Some(d)) => {
                            m.insert(k.clone(), d.clone());
                        }
                        (Some(Value::Null), Some(d)) if !nullable => {
                            m.insert(k.clone(), d.clone());
                        }
                        (Some(Value::Null), None) if !nullable => {
                            m.remove(k);
                        }
                        _ => {}
                    }
                    if let Some(val) = m.get_mut(k) {
                        default_node(sub, val, false);
                    }
                }
            } else if node["additionalProperties"].is_object() {
                let sub = &node["additionalProperties"];
                for val in m.values_mut() {
                    default_node(sub, val, false);
                }
            }
        }
        Value::Array(items) if node["items"].is_object() => {
            for item in items.iter_mut() {
                default_node(&node["items"], item, false);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Validation

pub fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as Go's `%#v`-style field errors print it (`"x"`, `9`, `0.5`, `true`).
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => json!(s).to_string(),
        Value::Number(n) => number(n),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

fn number(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (_, Some(u), _) => u.to_string(),
        (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        (_, _, Some(f)) => f.to_string(),
        _ => n.to_string(),
    }
}

fn type_invalid(field: &str, msg: &str, actual: &str, wanted: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: "FieldValueTypeInvalid",
        value: Some(json!(actual).to_string()),
        detail: format!("{msg} in body must be of type {wanted}: {}", json!(actual)),
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Validates `v` against `node`; `field` is the error's field path, `msg` the path the
/// message names (`spec.ttl in body ...`; relative to `status` for status writes).
pub fn validate_node(node: &Value, v: &Value, field: &str, msg: &str, errs: &mut Vec<FieldError>) {
    if v.is_null() && is_true(&node["nullable"]) {
        return;
    }
    let actual = type_of(v);
    let type_ok = if is_true(&node["x-kubernetes-int-or-string"]) {
        let ok = matches!(actual, "integer" | "string");
        if !ok {
            errs.push(type_invalid(field, msg, actual, "integer,string"));
        }
        ok
    } else {
        match node["type"].as_str() {
            Some(wanted) => {
                let ok = wanted == actual || (wanted == "number" && actual == "integer");
                if !ok {
                    errs.push(type_invalid(field, msg, actual, wanted));
                }
                ok
            }
            None => true,
        }
    };
    if let Some(allowed) = node["enum"].as_array()
        && !allowed.iter().any(|a| json_eq(a, v))
    {
        let values: Vec<String> = allowed
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string))
            .collect();
        let list: Vec<String> = values.iter().map(|s| json!(s).to_string()).collect();
        errs.push(FieldError {
            field: field.to_string(),
            reason: "FieldValueNotSupported",
            value: Some(render(v)),
            detail: format!("supported values: {}", list.join(", ")),
        });
    }
    if !type_ok {
        return;
    }
    match v {
        Value::String(s) => validate_string(node, s, field, msg, errs),
        Value::Number(n) => validate_number(node, n, field, msg, errs),
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(max) = node["maxItems"].as_u64().filter(|m| count > *m) {
                errs.push(FieldError {
                    field: field.to_string(),
                    reason: "FieldValueTooMany",
                    value: None,
                    detail: format!("Too many: {count}: must have at most {max} items"),
                });
            }
            if let Some(min) = node["minItems"].as_u64().filter(|m| count < *m) {
                errs.push(FieldError::invalid_raw(
                    field,
                    count.to_string(),
                    format!("{msg} in body should have at least {min} items"),
                ));
            }
            if node["items"].is_object() {
                for (i, item) in items.iter().enumerate() {
                    validate_node(&node["items"], item, &index(field, i), &index(msg, i), errs);
                }
            }
        }
        Value::Object(m) => validate_object(node, m, field, msg, errs),
        _ => {}
    }
}

fn validate_string(node: &Value, s: &str, field: &str, msg: &str, errs: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = node["maxLength"].as_u64().filter(|m| chars > *m) {
        errs.push(FieldError {
            field: field.to_string(),
            reason: "FieldValueTooLong",
            value: None,
            detail: format!("Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(min) = node["minLength"].as_u64().filter(|m| chars < *m) {
        errs.push(FieldError::invalid(
            field,
            s,
            format!("{msg} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = node["pattern"].as_str()
        && pattern_mismatch(p, s)
    {
        errs.push(FieldError::invalid(field, s, format!("{msg} in body should match '{p}'")));
    }
    if let Some(format) = node["format"].as_str()
        && !format_ok(format, s)
    {
        errs.push(FieldError {
            field: field.to_string(),
            reason: "FieldValueTypeInvalid",
            value: Some(json!(s).to_string()),
            detail: format!("{msg} in body must be of type {format}: {}", json!(s)),
        });
    }
}

/// Whether `s` fails `pattern` (a pattern that does not compile never matches anything
/// here; the CRD check refuses such schemas). Compiled patterns are kept per thread, since
/// lists of many objects check the same few patterns over and over.
fn pattern_mismatch(pattern: &str, s: &str) -> bool {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<String, Option<regex::Regex>>> =
            std::cell::RefCell::default();
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let re = c.entry(pattern.to_string()).or_insert_with(|| regex::Regex::new(pattern).ok());
        re.as_ref().is_some_and(|re| !re.is_match(s))
    })
}

/// The formats the fake checks; any other format passes, as unknown formats do for real.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => date_time_ok(s),
        "date" => {
            let p: Vec<&str> = s.split('-').collect();
            p.len() == 3
                && p[0].len() == 4
                && p[1].len() == 2
                && p[2].len() == 2
                && p.iter().all(|x| x.bytes().all(|b| b.is_ascii_digit()))
                && (1..=12).contains(&p[1].parse::<u32>().unwrap_or(0))
                && (1..=31).contains(&p[2].parse::<u32>().unwrap_or(0))
        }
        "byte" => crate::util::base64_decode(s).is_some(),
        "uuid" => {
            let groups: Vec<&str> = s.split('-').collect();
            groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
                && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => true,
    }
}

/// RFC 3339 date-time: `2026-01-02T03:04:05Z`, optional fraction, `Z` or a `+hh:mm` offset.
fn date_time_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape || crate::util::parse_rfc3339(s).is_none() {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn validate_number(
    node: &Value,
    n: &serde_json::Number,
    field: &str,
    msg: &str,
    errs: &mut Vec<FieldError>,
) {
    let x = n.as_f64().unwrap_or_default();
    let shown = number(n);
    if let Some(min) = node["minimum"].as_number() {
        let m = min.as_f64().unwrap_or_default();
        let exclusive = is_true(&node["exclusiveMinimum"]);
        if (exclusive && x <= m) || (!exclusive && x < m) {
            let words = if exclusive { "greater than" } else { "greater than or equal to" };
            errs.push(FieldError::invalid_raw(
                field,
                &shown,
                format!("{msg} in body should be {words} {}", number(min)),
            ));
        }
    }
    if let Some(max) = node["maximum"].as_number() {
        let m = max.as_f64().unwrap_or_default();
        let exclusive = is_true(&node["exclusiveMaximum"]);
        if (exclusive && x >= m) || (!exclusive && x > m) {
            let words = if exclusive { "less than" } else { "less than or equal to" };
            errs.push(FieldError::invalid_raw(
                field,
                &shown,
                format!("{msg} in body should be {words} {}", number(max)),
            ));
        }
    }
    if let Some(step) = node["multipleOf"].as_number() {
        let s = step.as_f64().unwrap_or_default();
        if s > 0.0 && (x / s).fract().abs() > 1e-9 {
            errs.push(FieldError::invalid_raw(
                field,
                &shown,
                format!("{msg} in body should be a multiple of {}", number(step)),
            ));
        }
    }
}

fn validate_object(
    node: &Value,
    m: &Map<String, Value>,
    field: &str,
    msg: &str,
    errs: &mut Vec<FieldError>,
) {
    let count = m.len() as u64;
    if let Some(max) = node["maxProperties"].as_u64().filter(|x| count > *x) {
        errs.push(FieldError {
            field: field.to_string(),
            reason: "FieldValueTooMany",
            value: None,
            detail: format!("Too many: {count}: must have at most {max} items"),
        });
    }
    if let Some(min) = node["minProperties"].as_u64().filter(|x| count < *x) {
        errs.push(FieldError::invalid_raw(
            field,
            count.to_string(),
            format!("{msg} in body should have at least {min} properties"),
        ));
    }
    for req in node["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if !m.contains_key(req) {
            errs.push(FieldError::required(&child(field, req), ""));
        }
    }
    let root_meta = field.is_empty() && msg.is_empty();
    if let Some(props) = node["properties"].as_object() {
        for (k, sub) in props {
            if root_meta && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            if let Some(val) = m.get(k) {
                validate_node(sub, val, &child(field, k), &child(msg, k), errs);
            }
        }
    } else if node["additionalProperties"].is_object() {
        for (k, val) in m {
            let sub = &node["additionalProperties"];
            validate_node(sub, val, &child(field, k), &child(msg, k), errs);
        }
    }
}

/// Whether an error keeps the CEL rules from running (kube's `hasBlockingErr`).
fn blocking(e: &FieldError) -> bool {
    matches!(
        e.reason,
        "FieldValueNotSupported"
            | "FieldValueRequired"
            | "FieldValueTooLong"
            | "FieldValueTooMany"
            | "FieldValueTypeInvalid"
    )
}

fn rules_skipped() -> FieldError {
    FieldError {
        field: "<nil>".to_string(),
        reason: "FieldValueInvalid",
        value: Some("null".to_string()),
        detail: "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".to_string(),
    }
}

/// Validates a custom resource written to the main resource (`old` on updates): schema
/// errors first; the CEL rules run only when none of them is blocking.
pub fn validate_object_write(
    version: &CrdVersion,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let Some(schema) = &version.schema else { return Vec::new() };
    let mut errs = Vec::new();
    validate_node(schema, obj, "", "", &mut errs);
    ratchet(&mut errs, obj, old);
    finish_with_rules(version, schema, obj, old, "", errs)
}

/// The value at an error's field path (`spec.tags[0]`, `spec.labels.k`).
fn value_at<'a>(obj: &'a Value, field: &str) -> Option<&'a Value> {
    let mut v = obj;
    for seg in field.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !key.is_empty() {
            v = v.get(key)?;
        }
        for idx in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            v = v.get(idx.parse::<usize>().ok()?)?;
        }
    }
    Some(v)
}

/// Validation ratcheting (on by default since Kubernetes 1.30): on updates, schema errors
/// at a path whose value did not change are dropped, so objects stored before a schema got
/// stricter can still be written.
fn ratchet(errs: &mut Vec<FieldError>, obj: &Value, old: Option<&Value>) {
    if let Some(old) = old {
        errs.retain(|e| value_at(obj, &e.field) != value_at(old, &e.field));
    }
}
/// Validates a write to the `status` subresource: the schema checks only `.status`, with
/// messages naming paths relative to it (`phase in body ...`), but the CEL rules run over the
/// whole object, as the real status strategy does (so a spec rule can refuse a status write).
pub fn validate_status_write(
    version: &CrdVersion,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let Some(schema) = &version.schema else { return Vec::new() };
    let mut errs = Vec::new();
    let node = &schema["properties"]["status"];
    if let (Some(status), true) = (obj.get("status"), node.is_object()) {
        validate_node(node, status, "status", "", &mut errs);
    }
    ratchet(&mut errs, obj, old);
    finish_with_rules(version, schema, obj, old, "", errs)
}

fn finish_with_rules(
    version: &CrdVersion,
    node: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    mut errs: Vec<FieldError>,
) -> Vec<FieldError> {
    if version.rules.is_empty() {
        return errs;
    }
    if errs.iter().any(blocking) {
        errs.push(rules_skipped());
        return errs;
    }
    errs.extend(version.rules.check(node, v, old, path));
    errs
}

/// The first problem server-side apply's typed conversion finds in an apply body, as the
/// 500 message names it (`.spec.bogus: field not declared in schema`); `None` when there is
/// none the fake knows how to word.
pub fn apply_type_error(schema: &Value, body: &Value) -> Option<String> {
    let mut unknown = {
        let mut copy = body.clone();
        prune(schema, &mut copy)
    };
    unknown.sort();
    if let Some(first) = unknown.first() {
        return Some(format!(".{first}: field not declared in schema"));
    }
    numeric_mismatch(schema, body, "")
}

fn numeric_mismatch(node: &Value, v: &Value, path: &str) -> Option<String> {
    let numeric = matches!(node["type"].as_str(), Some("integer" | "number"))
        && !is_true(&node["x-kubernetes-int-or-string"]);
    if numeric && v.is_string() {
        return Some(format!(".{path}: expected numeric (int or float), got string"));
    }
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.into_iter().find_map(|k| {
                let sub = node["properties"].get(k).or_else(|| {
                    node["additionalProperties"].is_object().then(|| &node["additionalProperties"])
                })?;
                if path.is_empty() && k == "metadata" {
                    return None;
                }
                numeric_mismatch(sub, &m[k], &child(path, k))
            })
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| numeric_mismatch(&node["items"], item, &index(path, i))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["ttl"],
                    "properties": {
                        "ttl": {"type": "string", "pattern": "^[0-9]+[smhd]$"},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "port": {"x-kubernetes-int-or-string": true},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "note": {"type": "string", "nullable": true},
                        "nested": {"type": "object", "properties": {"a": {"type": "integer", "default": 7}}},
                    }
                },
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
            }
        })
    }

    fn errors(obj: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_node(&schema(), &obj, "", "", &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn messages_match_kube_openapi() {
        let errs = errors(
            json!({"spec": {"ttl": "2 hours", "replicas": 9, "mode": "medium", "tags": ["a", "b", "c"], "port": true, "labels": {"k": 1}}}),
        );
        for want in [
            "spec.ttl: Invalid value: \"2 hours\": spec.ttl in body should match '^[0-9]+[smhd]$'",
            "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5",
            "spec.mode: Unsupported value: \"medium\": supported values: \"fast\", \"slow\"",
            "spec.tags: Too many: 3: must have at most 2 items",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "spec.labels.k: Invalid value: \"integer\": spec.labels.k in body must be of type string: \"integer\"",
        ] {
            assert!(errs.iter().any(|e| e == want), "missing {want:?} in {errs:#?}");
        }
        assert_eq!(errs.len(), 6, "{errs:#?}");
        assert_eq!(errors(json!({"spec": {}})), vec!["spec.ttl: Required value".to_string()]);
        assert!(errors(json!({"spec": {"ttl": "2h", "note": null, "port": "http"}})).is_empty());
    }

    #[test]
    fn pruning_keeps_declared_and_preserved_fields() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "top": 1,
            "spec": {"ttl": "2h", "bogus": 1, "nested": {"zzz": 1}, "extra": {"keep": {"deep": 1}}, "labels": {"x": "y"}}});
        let mut removed = prune(&schema(), &mut obj);
        removed.sort();
        assert_eq!(removed, ["spec.bogus", "spec.nested.zzz", "top"]);
        assert_eq!(obj["spec"]["extra"], json!({"keep": {"deep": 1}}));
        assert_eq!(obj["metadata"]["name"], "a");
    }

    #[test]
    fn defaults_fill_missing_fields_and_non_nullable_nulls() {
        let mut obj = json!({"spec": {"ttl": "2h", "mode": null, "note": null, "nested": {}}});
        apply_defaults(&schema(), &mut obj);
        assert_eq!(
            obj["spec"],
            json!({"ttl": "2h", "mode": "fast", "note": null, "replicas": 1, "nested": {"a": 7}})
        );
    }

    #[test]
    fn crds_with_non_structural_schemas_are_refused() {
        let crd = |schema: Value| {
            json!({"metadata": {"name": "things.example.com"},
                   "spec": {"group": "example.com", "names": {"plural": "things"},
                            "versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}})
        };
        let full = |s: Value| check_crd(&crd(s)).iter().map(FieldError::full).collect::<Vec<_>>();
        assert_eq!(
            full(
                json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}})
            ),
            [
                "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
            ]
        );
        assert_eq!(
            full(json!({"type": "string"})),
            [
                "spec.validation.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root"
            ]
        );
        assert_eq!(
            full(
                json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "array"}}}}})
            ),
            [
                "spec.validation.openAPIV3Schema.properties[spec].properties[a].items: Required value: must be specified"
            ]
        );
        assert_eq!(
            full(
                json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}}}})
            ),
            [
                "spec.validation.openAPIV3Schema.properties[spec].properties[a].default: Invalid value: \"string\":  in body must be of type integer: \"string\""
            ]
        );
        assert!(full(schema()).is_empty());
        assert_eq!(
            full(
                json!({"type": "object", "properties": {"spec": {"type": "object", "default": {"a": "x"}, "properties": {"a": {"type": "integer"}}}}})
            ),
            [
                "spec.validation.openAPIV3Schema.properties[spec].default.a: Invalid value: \"string\": a in body must be of type integer: \"string\""
            ]
        );
        let mut misnamed = crd(schema());
        misnamed["metadata"]["name"] = json!("wrong.example.com");
        misnamed["spec"]["versions"][0]["additionalPrinterColumns"] =
            json!([{"name": "A", "type": "weird", "jsonPath": "spec.a"}]);
        assert_eq!(
            check_crd(&misnamed).iter().map(FieldError::full).collect::<Vec<_>>(),
            [
                "metadata.name: Invalid value: \"wrong.example.com\": must be spec.names.plural+\".\"+spec.group",
                "spec.additionalPrinterColumns[0].type: Invalid value: \"weird\": must be one of boolean,date,integer,number,string",
                "spec.additionalPrinterColumns[0].JSONPath: Invalid value: \"spec.a\": must be a simple json path starting with .",
            ]
        );
        let missing = json!({"metadata": {"name": "things.example.com"},
            "spec": {"group": "example.com", "names": {"plural": "things"}, "versions": [{"name": "v1"}]}});
        assert_eq!(
            check_crd(&missing).iter().map(FieldError::full).collect::<Vec<_>>(),
            ["spec.versions[0].schema.openAPIV3Schema: Required value"]
        );
    }

    #[test]
    fn apply_bodies_with_undeclared_fields_are_named() {
        let body = json!({"metadata": {"name": "a"}, "spec": {"ttl": "2h", "nested": {"zzz": 2}, "bogus": 1}});
        assert_eq!(
            apply_type_error(&schema(), &body).as_deref(),
            Some(".spec.bogus: field not declared in schema")
        );
        let body = json!({"spec": {"ttl": "2h", "replicas": "x"}});
        assert_eq!(
            apply_type_error(&schema(), &body).as_deref(),
            Some(".spec.replicas: expected numeric (int or float), got string")
        );
        assert_eq!(apply_type_error(&schema(), &json!({"spec": {"extra": {"any": 1}}})), None);
    }
}
