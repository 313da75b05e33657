//! Fetching charts and their values files: a local directory or `.tgz`, an HTTP chart
//! repository (`index.yaml`, the version picked, the archive's digest checked), or an OCI
//! registry (the v2 API with the anonymous Bearer token flow). Everything is read into memory
//! and rendered before the host is contacted.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::Digest as _;

use super::ChartError;
use super::render::{self, Files, Release};
use crate::provision::Manifest;
use crate::spec::ChartSpec;

/// How long one download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest chart archive or index vc downloads.
const MAX_DOWNLOAD: usize = 32 << 20;
/// The media type of a chart's layer in an OCI artifact.
const OCI_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// Fetches and renders every chart, in order, into the objects to apply.
pub async fn load_all(
    charts: &[ChartSpec],
    kube_version: &str,
) -> Result<Vec<Manifest>, ChartError> {
    let mut out = Vec::new();
    for chart in charts {
        let label = chart.label();
        let mut values = Value::Object(Map::new());
        for file in &chart.values_files {
            let text = std::fs::read(file).map_err(|e| ChartError::Read {
                chart: label.clone(),
                reason: format!("values file {file}: {e}"),
            })?;
            render::layer_values(&mut values, &render::yaml(&text, file, &label)?);
        }
        if let Some(given) = &chart.values {
            render::layer_values(&mut values, given);
        }
        let files = fetch(chart, &label).await?;
        let release = Release {
            name: chart.release_name.clone(),
            namespace: chart.namespace.clone().unwrap_or_else(|| "default".to_string()),
        };
        out.extend(render::render(files, &label, &values, &release, kube_version)?);
    }
    Ok(out)
}

async fn fetch(chart: &ChartSpec, label: &str) -> Result<Files, ChartError> {
    if let Some(path) = &chart.path {
        return read_local(Path::new(path), label);
    }
    let (Some(repo), Some(name)) = (&chart.repo, &chart.name) else {
        return Err(ChartError::Invalid {
            chart: label.to_string(),
            reason: "give path, or repo and name".into(),
        });
    };
    let fail = |reason: String| ChartError::Fetch { chart: label.to_string(), reason };
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let archive = if repo.starts_with("oci://") {
        let version = chart.version.as_deref().ok_or_else(|| {
            fail("a chart from an OCI registry needs its version (version: 1.2.3)".into())
        })?;
        from_oci(&client, repo, name, version).await.map_err(fail)?
    } else {
        from_repository(&client, repo, name, chart.version.as_deref()).await.map_err(fail)?
    };
    render::unpack(&archive, label)
}

/// A chart directory's files (recursively, `.git` left out), or a packaged `.tgz`.
pub(super) fn read_local(path: &Path, label: &str) -> Result<Files, ChartError> {
    let fail = |reason: String| ChartError::Read { chart: label.to_string(), reason };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_dir() {
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        return render::unpack(&bytes, label);
    }
    let ignore = match std::fs::read_to_string(path.join(".helmignore")) {
        Ok(text) => render::Ignore::parse(&text),
        Err(_) => render::Ignore::default(),
    };
    let mut files = Files::new();
    let mut pending = vec![path.to_path_buf()];
    let mut total = 0usize;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| fail(e.to_string()))? {
            let entry = entry.map_err(|e| fail(e.to_string()))?;
            let p = entry.path();
            let relative = p.strip_prefix(path).unwrap_or(&p);
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let is_dir = p.is_dir();
            if entry.file_name() == ".git" || ignore.ignores(&key, is_dir) {
                continue;
            }
            if is_dir {
                pending.push(p);
                continue;
            }
            let content = std::fs::read(&p).map_err(|e| fail(format!("{}: {e}", p.display())))?;
            total += content.len();
            if total > MAX_DOWNLOAD {
                return Err(fail(format!("it holds more than {} MiB", MAX_DOWNLOAD >> 20)));
            }
            files.insert(key, content);
        }
    }
    Ok(files)
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::host::root_cause(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let bytes =
        response.bytes().await.map_err(|e| format!("{url}: {}", crate::host::root_cause(&e)))?;
    if bytes.len() > MAX_DOWNLOAD {
        return Err(format!("{url} is larger than {} MiB", MAX_DOWNLOAD >> 20));
    }
    Ok(bytes.to_vec())
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A release version's numbers, for picking the newest; a pre-release is never picked unless
/// asked for by its exact version.
fn release_key(version: &str) -> Option<[u64; 3]> {
    let v = version.trim_start_matches('v');
    if v.contains('-') {
        return None;
    }
    let core = v.split('+').next()?;
    let mut key = [0u64; 3];
    for (i, part) in core.split('.').enumerate() {
        *key.get_mut(i)? = part.parse().ok()?;
    }
    Some(key)
}

async fn from_repository(
    client: &reqwest::Client,
    repo: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Vec<u8>, String> {
    let base = repo.trim_end_matches('/');
    let index_url = format!("{base}/index.yaml");
    let index = get(client, &index_url).await?;
    let index: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&index)).map_err(|e| {
        format!(
            "{index_url} is not a chart repository index: {}",
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    let entries = index["entries"][name]
        .as_array()
        .ok_or_else(|| format!("the repository {repo} has no chart {name:?} (see {index_url})"))?;
    let entry = match version {
        Some(wanted) => entries.iter().find(|e| {
            e["version"]
                .as_str()
                .is_some_and(|v| v.trim_start_matches('v') == wanted.trim_start_matches('v'))
        }),
        None => entries
            .iter()
            .filter_map(|e| e["version"].as_str().and_then(release_key).map(|k| (k, e)))
            .max_by_key(|(k, _)| *k)
            .map(|(_, e)| e),
    }
    .ok_or_else(|| {
        let known: Vec<&str> =
            entries.iter().filter_map(|e| e["version"].as_str()).take(10).collect();
        match version {
            Some(v) => format!(
                "the repository {repo} has no version {v} of {name} (it has {})",
                known.join(", ")
            ),
            None => format!("the repository {repo} lists no release of {name}"),
        }
    })?;
    let url =
        entry["urls"][0].as_str().ok_or_else(|| format!("{name} in {index_url} has no url"))?;
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("{base}/{}", url.trim_start_matches('/'))
    };
    let archive = get(client, &url).await?;
    if let Some(digest) = entry["digest"].as_str().filter(|d| !d.is_empty()) {
        let actual = sha256_hex(&archive);
        if actual != digest.trim_start_matches("sha256:") {
            return Err(format!(
                "{url} does not match the digest in {index_url} (sha256 {actual}, the index says {digest})"
            ));
        }
    }
    Ok(archive)
}

/// `oci://registry/path` and a chart name into the registry's address and the repository.
pub fn oci_reference(repo: &str, name: &str) -> Result<(String, String), String> {
    let rest = repo.strip_prefix("oci://").ok_or("not an oci:// reference")?.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return Err(format!("{repo} names no registry"));
    }
    let repository = if path.is_empty() { name.to_string() } else { format!("{path}/{name}") };
    Ok((host.to_string(), repository))
}

/// The registry's base URL: HTTPS, except for a registry on this machine (a development
/// registry serves plain HTTP).
fn registry_base(host: &str) -> String {
    let loopback =
        host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]");
    format!("{}://{host}", if loopback { "http" } else { "https" })
}

async fn from_oci(
    client: &reqwest::Client,
    repo: &str,
    name: &str,
    version: &str,
) -> Result<Vec<u8>, String> {
    let (host, repository) = oci_reference(repo, name)?;
    let base = registry_base(&host);
    // Helm stores `+` of a version as `_` in the tag.
    let tag = version.replace('+', "_");
    let manifest_url = format!("{base}/v2/{repository}/manifests/{tag}");
    let mut token: Option<String> = None;
    let manifest =
        oci_get(client, &manifest_url, "application/vnd.oci.image.manifest.v1+json", &mut token)
            .await?;
    let manifest: Value = serde_json::from_slice(&manifest)
        .map_err(|e| format!("{manifest_url} is not an OCI manifest: {e}"))?;
    let layer = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["mediaType"].as_str() == Some(OCI_CHART_LAYER))
        .ok_or_else(|| {
            format!(
                "{repo}/{name}:{version} is not a Helm chart (no layer of type {OCI_CHART_LAYER})"
            )
        })?;
    let digest = layer["digest"].as_str().ok_or("the chart layer has no digest")?;
    let blob_url = format!("{base}/v2/{repository}/blobs/{digest}");
    let blob = oci_get(client, &blob_url, OCI_CHART_LAYER, &mut token).await?;
    let actual = sha256_hex(&blob);
    if digest.strip_prefix("sha256:") != Some(actual.as_str()) {
        return Err(format!("{blob_url} does not match its digest (sha256 {actual})"));
    }
    Ok(blob)
}

/// A GET against a registry; on 401 with a Bearer challenge, an anonymous token is fetched
/// from the challenge's realm and the request made again.
async fn oci_get(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    token: &mut Option<String>,
) -> Result<Vec<u8>, String> {
    let cause = |e: reqwest::Error| format!("{url}: {}", crate::host::root_cause(&e));
    for _ in 0..2 {
        let mut request = client.get(url).header(reqwest::header::ACCEPT, accept);
        if let Some(t) = token.as_deref() {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(cause)?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED && token.is_none() {
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            *token =
                Some(anonymous_token(client, &challenge).await.map_err(|e| format!("{url}: {e}"))?);
            continue;
        }
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        let bytes = response.bytes().await.map_err(cause)?;
        if bytes.len() > MAX_DOWNLOAD {
            return Err(format!("{url} is larger than {} MiB", MAX_DOWNLOAD >> 20));
        }
        return Ok(bytes.to_vec());
    }
    Err(format!(
        "{url} refused the anonymous token (a private chart needs helm registry login and helm pull; pass the .tgz as path)"
    ))
}

/// Parses `Bearer realm="...",service="...",scope="..."` and asks the realm for a token.
async fn anonymous_token(client: &reqwest::Client, challenge: &str) -> Result<String, String> {
    let params = challenge.strip_prefix("Bearer ").ok_or_else(|| {
        format!("the registry asks for credentials ({challenge:?}); vc fetches public charts only")
    })?;
    let mut realm = None;
    let mut query = Vec::new();
    for part in split_challenge(params) {
        let Some((key, value)) = part.split_once('=') else { continue };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim() {
            "realm" => realm = Some(value),
            key => query.push((key.to_string(), value)),
        }
    }
    let realm = realm.ok_or("the registry's challenge names no realm")?;
    let response = client
        .get(&realm)
        .query(&query)
        .send()
        .await
        .map_err(|e| format!("{realm}: {}", crate::host::root_cause(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{realm} refused an anonymous token ({})", response.status()));
    }
    let body = response.bytes().await.map_err(|e| format!("{realm}: {e}"))?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| format!("{realm} answered no JSON: {e}"))?;
    body["token"]
        .as_str()
        .or(body["access_token"].as_str())
        .map(String::from)
        .ok_or_else(|| format!("{realm} answered without a token"))
}

/// Splits a challenge's parameters on commas outside quotes.
fn split_challenge(params: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in params.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
