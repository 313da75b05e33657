//! Decodes the Kubernetes protobuf envelope for the few kinds kubectl's typed generators send
//! (`kubectl create namespace|configmap|secret|serviceaccount`), into the JSON the store uses.
//! Other kinds are refused by the caller with 415.

use serde_json::{Map, Value, json};

use crate::util;

/// Wire values of one protobuf field.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

/// Splits a message into `(field number, value)` pairs.
fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let value = match key & 7 {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                continue;
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let bytes = buf.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Field::Bytes(bytes)
            }
            5 => {
                pos += 4;
                continue;
            }
            _ => return None,
        };
        out.push((key >> 3, value));
    }
    Some(out)
}

fn text(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// A `map<string, string>` (or bytes values, base64-encoded as in JSON) entry.
fn map_entry(bytes: &[u8], base64_values: bool) -> Option<(String, Value)> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
            (2, Field::Bytes(b)) if base64_values => value = json!(util::base64(b)),
            (2, Field::Bytes(b)) => value = text(b),
            _ => {}
        }
    }
    Some((key, value))
}

fn insert_entry(obj: &mut Value, field: &str, bytes: &[u8], base64_values: bool) -> Option<()> {
    let (k, v) = map_entry(bytes, base64_values)?;
    if !obj[field].is_object() {
        obj[field] = Value::Object(Map::new());
    }
    obj[field][k] = v;
    Some(())
}

fn object_meta(bytes: &[u8]) -> Option<Value> {
    let mut meta = json!({});
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (_, Field::Bytes([])) => {}
            (1, Field::Bytes(b)) => meta["name"] = text(b),
            (2, Field::Bytes(b)) => meta["generateName"] = text(b),
            (3, Field::Bytes(b)) => meta["namespace"] = text(b),
            (11, Field::Bytes(b)) => insert_entry(&mut meta, "labels", b, false)?,
            (12, Field::Bytes(b)) => insert_entry(&mut meta, "annotations", b, false)?,
            (14, Field::Bytes(b)) => {
                let mut list = meta["finalizers"].as_array().cloned().unwrap_or_default();
                list.push(text(b));
                meta["finalizers"] = Value::Array(list);
            }
            _ => {}
        }
    }
    Some(meta)
}

fn object(kind: &str, bytes: &[u8]) -> Option<Value> {
    let mut obj = json!({});
    for (n, f) in fields(bytes)? {
        let Field::Bytes(b) = f else {
            if let (Field::Varint(v), "ConfigMap", 4) | (Field::Varint(v), "Secret", 5) =
                (f, kind, n)
            {
                obj["immutable"] = json!(v != 0);
            }
            continue;
        };
        match (kind, n) {
            (_, 1) => obj["metadata"] = object_meta(b)?,
            ("Namespace", 2) => {
                let finalizers: Vec<Value> = fields(b)?
                    .into_iter()
                    .filter_map(|(n, f)| match (n, f) {
                        (1, Field::Bytes(s)) => Some(text(s)),
                        _ => None,
                    })
                    .collect();
                if !finalizers.is_empty() {
                    obj["spec"] = json!({"finalizers": finalizers});
                }
            }
            ("ConfigMap", 2) => insert_entry(&mut obj, "data", b, false)?,
            ("ConfigMap", 3) => insert_entry(&mut obj, "binaryData", b, true)?,
            ("Secret", 2) => insert_entry(&mut obj, "data", b, true)?,
            ("Secret", 3) if !b.is_empty() => obj["type"] = text(b),
            ("Secret", 4) => insert_entry(&mut obj, "stringData", b, false)?,
            _ => {}
        }
    }
    Some(obj)
}

/// Decodes a `k8s\0`-prefixed protobuf body; `None` for other kinds or malformed input.
pub fn decode(body: &[u8]) -> Option<Value> {
    let envelope = body.strip_prefix(b"k8s\0")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(envelope)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (m, g) in fields(type_meta)? {
                    match (m, g) {
                        (1, Field::Bytes(b)) => {
                            api_version = String::from_utf8_lossy(b).into_owned()
                        }
                        (2, Field::Bytes(b)) => kind = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    if api_version != "v1"
        || !matches!(kind.as_str(), "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount")
    {
        return None;
    }
    let mut obj = object(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_configmap() {
        let entry = [field(1, b"k"), field(2, b"v")].concat();
        let meta =
            [field(1, b"cm"), field(11, &[field(1, b"app"), field(2, b"x")].concat())].concat();
        let raw = [field(1, &meta), field(2, &entry)].concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"app": "x"}}, "data": {"k": "v"}})
        );
    }
}
