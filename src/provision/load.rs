//! Loading manifest sources into objects: a file, a directory's `.yaml`, `.yml` and `.json`
//! files (sorted by name, not recursive), an http(s) URL, or inline YAML. Every object is
//! checked for what server-side apply needs (apiVersion, kind, metadata.name).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{Manifest, ProvisionError};

/// How long one URL may take to download.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a source is inline YAML rather than a path or URL: it spans lines.
fn is_inline(source: &str) -> bool {
    source.contains('\n')
}

fn is_url(source: &str) -> bool {
    source.starts_with("https://") || source.starts_with("http://")
}

/// Whether a source names a file or directory on this machine (not inline YAML, not a URL).
pub fn is_local(source: &str) -> bool {
    !is_inline(source) && !is_url(source)
}

/// Loads every source, in order, into objects.
pub async fn load(sources: &[String]) -> Result<Vec<Manifest>, ProvisionError> {
    let mut out = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        if is_inline(source) {
            out.extend(parse(source, &format!("inline manifest {}", i + 1))?);
        } else if is_url(source) {
            out.extend(parse(&fetch(source).await?, source)?);
        } else {
            for (label, text) in read_path(Path::new(source))? {
                out.extend(parse(&text, &label)?);
            }
        }
    }
    Ok(out)
}

async fn fetch(url: &str) -> Result<String, ProvisionError> {
    let fail = |reason: String| ProvisionError::Read { from: url.to_string(), reason };
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let response = client.get(url).send().await.map_err(|e| fail(crate::host::root_cause(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("the server answered {status}")));
    }
    response.text().await.map_err(|e| fail(crate::host::root_cause(&e)))
}

/// A file's text, or the texts of a directory's manifest files.
fn read_path(path: &Path) -> Result<Vec<(String, String)>, ProvisionError> {
    let label = path.display().to_string();
    let fail = |reason: String| ProvisionError::Read { from: label.clone(), reason };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_dir() {
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        return Ok(vec![(label.clone(), text)]);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| fail(e.to_string()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail("the directory holds no .yaml, .yml or .json file".to_string()));
    }
    files
        .into_iter()
        .map(|file| {
            let label = file.display().to_string();
            std::fs::read_to_string(&file)
                .map(|text| (label.clone(), text))
                .map_err(|e| ProvisionError::Read { from: label, reason: e.to_string() })
        })
        .collect()
}

/// Parses a YAML stream (or one JSON document) into objects: `---` separated documents, empty
/// documents skipped, a `List` unpacked.
pub fn parse(text: &str, source: &str) -> Result<Vec<Manifest>, ProvisionError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
        ProvisionError::Parse { from: source.to_string(), reason: first.to_string() }
    })?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    let several = docs.len() > 1;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let label =
            if several { format!("{source} (document {})", i + 1) } else { source.to_string() };
        let is_list =
            doc["kind"].as_str().is_some_and(|k| k.ends_with("List")) && doc["items"].is_array();
        let items =
            if is_list { doc["items"].as_array().cloned().unwrap_or_default() } else { vec![doc] };
        for object in items {
            check(&object, &label)?;
            out.push(Manifest { source: label.clone(), object, default_namespace: None });
        }
    }
    Ok(out)
}

fn check(object: &Value, source: &str) -> Result<(), ProvisionError> {
    let fail = |reason: &str| {
        Err(ProvisionError::NotAnObject { from: source.to_string(), reason: reason.to_string() })
    };
    if !object.is_object() {
        return fail("a document must be a mapping");
    }
    if object["apiVersion"].as_str().is_none_or(str::is_empty) {
        return fail("it has no apiVersion");
    }
    if object["kind"].as_str().is_none_or(str::is_empty) {
        return fail("it has no kind");
    }
    if object["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        let why = if object["metadata"]["generateName"].is_string() {
            "metadata.generateName cannot be applied idempotently; give it a metadata.name"
        } else {
            "it has no metadata.name"
        };
        return fail(why);
    }
    Ok(())
}
