//! From a chart's files to the objects to apply, as `helm install` would: Chart.yaml checked,
//! values.yaml merged with the user's values, vendored subcharts rendered in their values
//! scope, templates rendered (partials, NOTES.txt and tests left out), hooks placed, CRDs from
//! `crds/` first. Pure: works on the files in memory.

use std::collections::BTreeMap;
use std::io::Read as _;

use serde_json::{Map, Value, json};

use super::ChartError;
use super::template::{self, Templates};
use crate::provision::{self, Manifest};

/// A chart's files by their path inside the chart (`Chart.yaml`, `templates/x.yaml`).
pub type Files = BTreeMap<String, Vec<u8>>;

/// The largest chart archive vc unpacks, and the most its files may hold.
const MAX_UNPACKED: u64 = 64 << 20;

/// What `.Release` says, and where namespaced objects go.
#[derive(Clone, Debug)]
pub struct Release {
    pub name: Option<String>,
    pub namespace: String,
}

/// Unpacks a chart archive (`.tgz`): the files under its one top directory.
pub fn unpack(bytes: &[u8], label: &str) -> Result<Files, ChartError> {
    let fail = |reason: String| ChartError::Read { chart: label.to_string(), reason };
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut archive = tar::Archive::new(gz.take(MAX_UNPACKED));
    let mut files = Files::new();
    let entries = archive.entries().map_err(|e| fail(format!("not a chart archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("not a chart archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| fail(e.to_string()))?.to_string_lossy().into_owned();
        // Every file sits under the chart's directory; that prefix goes.
        let Some((_, inside)) = path.split_once('/') else { continue };
        if inside.split('/').any(|part| part == "..") {
            return Err(fail(format!("the archive holds a path outside the chart: {path}")));
        }
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(|e| fail(e.to_string()))?;
        files.insert(inside.to_string(), content);
    }
    if files.is_empty() {
        return Err(fail("the archive is empty or not a gzip-compressed tar".into()));
    }
    Ok(files)
}

/// A chart directory's `.helmignore`: one pattern a line (`#` comments), `*` and `?` globs,
/// a trailing `/` for directories only, `!` to keep what an earlier line ignores. A pattern
/// with a `/` matches the path inside the chart, one without matches a name at any depth; the
/// last matching line decides.
#[derive(Debug, Default)]
pub struct Ignore {
    rules: Vec<(String, bool, bool)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (keep, line) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, line),
                };
                let dir_only = line.ends_with('/');
                let pattern = line.trim_end_matches('/').trim_start_matches("./").to_string();
                (pattern, dir_only, keep)
            })
            .filter(|(pattern, _, _)| !pattern.is_empty())
            .collect();
        Ignore { rules }
    }

    /// Whether `path` (inside the chart, `/`-separated) is left out.
    pub fn ignores(&self, path: &str, is_dir: bool) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        let mut ignored = false;
        for (pattern, dir_only, keep) in &self.rules {
            if *dir_only && !is_dir {
                continue;
            }
            let subject = if pattern.contains('/') { path } else { name };
            if glob(pattern.as_bytes(), subject.as_bytes()) {
                ignored = !keep;
            }
        }
        ignored
    }
}

/// `*` (any run without `/`) and `?` (one character but `/`) against text.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text)
                || (text.first().is_some_and(|c| *c != b'/') && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(c)) if *c != b'/' => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// Helm's merge of values: maps merge key by key, anything else replaces, and `null` deletes
/// the key.
pub fn merge_values(base: &mut Value, over: &Value) {
    let Value::Object(over) = over else {
        if !over.is_null() {
            *base = over.clone();
        }
        return;
    };
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    let Value::Object(map) = base else { return };
    for (key, value) in over {
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(_) if map.get(key).is_some_and(Value::is_object) => {
                if let Some(existing) = map.get_mut(key) {
                    merge_values(existing, value);
                }
            }
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
}

/// Layers one set of user values over another, as Helm layers `-f` files and `--set`: maps
/// merge, anything else replaces, and a `null` is kept (it deletes the chart's default when
/// [`merge_values`] puts the result over values.yaml).
pub fn layer_values(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        layer_values(existing, value);
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// Reads a YAML document into a value (an empty one is an empty map).
pub fn yaml(text: &[u8], what: &str, chart: &str) -> Result<Value, ChartError> {
    let text = String::from_utf8_lossy(text);
    let value: Value = serde_saphyr::from_str::<Option<Value>>(&text)
        .map_err(|e| ChartError::Invalid {
            chart: chart.to_string(),
            reason: format!("{what} is not valid YAML: {}", first_line(&e.to_string())),
        })?
        .unwrap_or(Value::Object(Map::new()));
    Ok(value)
}

fn first_line(text: &str) -> String {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_string()
}

/// One chart of the tree: its metadata, files, and where it sits (`web`, `web/charts/db`).
struct Node {
    meta: Value,
    name: String,
    path: String,
    files: Files,
    values: Value,
    children: Vec<Node>,
}

/// Renders a chart into the objects to apply, in apply order: its CRDs, the release namespace
/// (unless `default`), pre-install hooks, the rest in Helm's kind order, post-install hooks.
pub fn render(
    files: Files,
    label: &str,
    values: &Value,
    release: &Release,
    kube_version: &str,
) -> Result<Vec<Manifest>, ChartError> {
    let invalid = |reason: String| ChartError::Invalid { chart: label.to_string(), reason };
    let mut root = load_node(files, None, label)?;
    if root.meta["type"].as_str() == Some("library") {
        return Err(invalid("it is a library chart, which installs nothing".into()));
    }
    let kube = format!("v{}", kube_version.trim_start_matches('v'));
    let kube_full = if kube.matches('.').count() == 1 { format!("{kube}.0") } else { kube.clone() };
    if let Some(constraint) = root.meta["kubeVersion"].as_str() {
        let ok = template::semver_matches(constraint, &kube_full).map_err(&invalid)?;
        if !ok {
            return Err(invalid(format!(
                "it requires Kubernetes {constraint}, and the virtual cluster runs {kube_full} (choose another with --kubernetes-version)"
            )));
        }
    }
    merge_values(&mut root.values, values);
    scope_values(&mut root);

    let release_name = release.name.clone().unwrap_or_else(|| root.name.clone());
    let (major, minor) = {
        let mut parts = kube_full.trim_start_matches('v').split('.');
        (parts.next().unwrap_or("1").to_string(), parts.next().unwrap_or("0").to_string())
    };
    let capabilities = json!({
        "KubeVersion": {"Version": kube_full, "GitVersion": kube_full, "Major": major, "Minor": minor},
        "APIVersions": template::api_versions_object(&builtin_api_versions()),
        "HelmVersion": {"Version": "v3.19.0"},
    });
    let release_object = json!({
        "Name": release_name, "Namespace": release.namespace, "Service": "Helm",
        "IsInstall": true, "IsUpgrade": false, "Revision": 1,
    });

    let mut templates = Templates::new();
    let mut chart_files = BTreeMap::new();
    let mut nodes = Vec::new();
    flatten(&root, &mut nodes);
    for node in &nodes {
        for (path, content) in &node.files {
            let full = format!("{}/{path}", node.path);
            if path.starts_with("templates/") {
                templates
                    .add(&full, &String::from_utf8_lossy(content))
                    .map_err(|e| ChartError::Template { chart: label.to_string(), error: e })?;
            } else {
                chart_files.insert(full, String::from_utf8_lossy(content).into_owned());
            }
        }
    }
    templates.set_chart_files(chart_files);

    let mut crds = Vec::new();
    let mut pre = Vec::new();
    let mut regular = Vec::new();
    let mut post = Vec::new();
    for node in &nodes {
        let chart_object = chart_object(&node.meta, node.path.contains("/charts/"));
        for (path, content) in &node.files {
            let full = format!("{}/{path}", node.path);
            let source = format!("chart {label}: {full}");
            if path.starts_with("crds/") && is_manifest_file(path) {
                crds.extend(parse(&String::from_utf8_lossy(content), &source)?);
                continue;
            }
            if !path.starts_with("templates/") || !renders(path) {
                continue;
            }
            let data = json!({
                "Values": node.values,
                "Release": release_object,
                "Chart": chart_object,
                "Capabilities": capabilities,
                "Template": {"Name": full, "BasePath": format!("{}/templates", node.path)},
                "Files": template::files_object(&format!("{}/", node.path)),
            });
            let text = templates
                .render(&full, &data)
                .map_err(|e| ChartError::Template { chart: label.to_string(), error: e })?;
            for manifest in parse(&text, &source)? {
                match hook_phase(&manifest) {
                    Hook::None => regular.push(manifest),
                    Hook::PreInstall => pre.push(manifest),
                    Hook::PostInstall => post.push(manifest),
                    Hook::Skipped => {}
                }
            }
        }
    }
    sort_by_kind(&mut regular);
    sort_hooks(&mut pre);
    sort_hooks(&mut post);
    let mut out = crds;
    let defines_namespace = regular.iter().chain(&pre).any(|m| {
        m.kind() == "Namespace" && m.api_version() == "v1" && m.name() == release.namespace
    });
    if release.namespace != "default" && !defines_namespace {
        out.push(Manifest {
            source: format!("chart {label}: the release namespace"),
            object: release_namespace(&release.namespace),
            default_namespace: None,
        });
    }
    out.extend(pre);
    out.extend(regular);
    out.extend(post);
    for manifest in &mut out {
        manifest.default_namespace = Some(release.namespace.clone());
    }
    Ok(out)
}

/// The release namespace, as `helm install --create-namespace` makes it.
fn release_namespace(name: &str) -> Value {
    use k8s_openapi::Resource as _;
    use k8s_openapi::api::core::v1::Namespace;
    let namespace = Namespace {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut object = serde_json::to_value(&namespace).unwrap_or(Value::Null);
    object["apiVersion"] = Value::String(Namespace::API_VERSION.to_string());
    object["kind"] = Value::String(Namespace::KIND.to_string());
    object
}

fn parse(text: &str, source: &str) -> Result<Vec<Manifest>, ChartError> {
    provision::parse(text, source).map_err(|e| ChartError::Output(e.to_string()))
}

fn load_node(files: Files, parent: Option<&str>, label: &str) -> Result<Node, ChartError> {
    let invalid = |reason: String| ChartError::Invalid { chart: label.to_string(), reason };
    let meta_bytes = files.get("Chart.yaml").ok_or_else(|| {
        invalid(match parent {
            Some(p) => format!("{p} holds a subchart without Chart.yaml"),
            None => "it has no Chart.yaml (is it a chart directory?)".to_string(),
        })
    })?;
    let meta = yaml(meta_bytes, "Chart.yaml", label)?;
    let name = meta["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("Chart.yaml has no name".to_string()))?;
    let name = name.to_string();
    if meta["version"].is_null() {
        return Err(invalid(format!("Chart.yaml of {name} has no version")));
    }
    let api = meta["apiVersion"].as_str().unwrap_or("v1");
    if api != "v1" && api != "v2" {
        return Err(invalid(format!(
            "Chart.yaml of {name} has apiVersion {api:?}; vc reads v1 and v2"
        )));
    }
    let path = match parent {
        Some(p) => format!("{p}/charts/{name}"),
        None => name.clone(),
    };
    let values = match files.get("values.yaml") {
        Some(bytes) => yaml(bytes, &format!("{path}/values.yaml"), label)?,
        None => Value::Object(Map::new()),
    };
    // Vendored subcharts: charts/<dir>/... or charts/<name>.tgz.
    let mut sub_dirs: BTreeMap<String, Files> = BTreeMap::new();
    let mut own = Files::new();
    for (file, content) in files {
        match file.strip_prefix("charts/") {
            Some(rest) if rest.ends_with(".tgz") && !rest.contains('/') => {
                let unpacked = unpack(&content, &format!("{label} ({path}/charts/{rest})"))?;
                sub_dirs.insert(rest.to_string(), unpacked);
            }
            Some(rest) => {
                if let Some((dir, inside)) = rest.split_once('/') {
                    sub_dirs
                        .entry(dir.to_string())
                        .or_default()
                        .insert(inside.to_string(), content);
                }
            }
            None => {
                own.insert(file, content);
            }
        }
    }
    let mut children = Vec::new();
    for (_, sub) in sub_dirs {
        children.push(load_node(sub, Some(&path), label)?);
    }
    let dependencies = match api {
        "v1" => match own.get("requirements.yaml") {
            Some(bytes) => {
                yaml(bytes, &format!("{path}/requirements.yaml"), label)?["dependencies"].clone()
            }
            None => Value::Null,
        },
        _ => meta["dependencies"].clone(),
    };
    for dep in dependencies.as_array().into_iter().flatten() {
        let dep_name = dep["name"].as_str().unwrap_or_default();
        if !children.iter().any(|c| c.name == dep_name) {
            let repo = dep["repository"].as_str().unwrap_or("no repository");
            return Err(invalid(format!(
                "{path} depends on chart {dep_name:?} ({repo}), which is not vendored under {path}/charts/; run helm dependency build in the chart directory and give vc the result"
            )));
        }
    }
    let mut node = Node { meta, name, path, files: own, values, children };
    apply_dependency_settings(&mut node, &dependencies);
    Ok(node)
}

/// A dependency's alias renames its subchart (its values key and its path); its condition is
/// checked later against the merged values.
fn apply_dependency_settings(node: &mut Node, dependencies: &Value) {
    for dep in dependencies.as_array().into_iter().flatten() {
        let (Some(dep_name), Some(alias)) = (dep["name"].as_str(), dep["alias"].as_str()) else {
            continue;
        };
        if let Some(child) = node.children.iter_mut().find(|c| c.name == dep_name) {
            child.name = alias.to_string();
            child.path = format!("{}/charts/{alias}", node.path);
        }
    }
    if let Some(map) = node.meta.as_object_mut() {
        map.insert("\u{0}dependencies".into(), dependencies.clone());
    }
}

/// Gives every subchart its values: its own values.yaml, under the parent's values for its
/// name (which the parent's templates then see too), and the parent's `global`. A subchart
/// whose dependency condition is false is dropped.
fn scope_values(node: &mut Node) {
    let dependencies = node.meta["\u{0}dependencies"].clone();
    let parent_values = node.values.clone();
    let mut kept = Vec::new();
    for mut child in std::mem::take(&mut node.children) {
        let dep = dependencies
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["alias"].as_str().or(d["name"].as_str()) == Some(&child.name));
        if let Some(condition) = dep.and_then(|d| d["condition"].as_str()) {
            // The first path of the condition that resolves to a bool decides.
            let decided = condition.split(',').map(str::trim).find_map(|path| {
                path.split('.')
                    .try_fold(&parent_values, |v, key| v.get(key))
                    .and_then(Value::as_bool)
            });
            if decided == Some(false) {
                continue;
            }
        }
        let mut values = child.values.clone();
        merge_values(&mut values, &parent_values[&child.name]);
        let mut global = parent_values["global"].clone();
        if global.is_object() {
            let mut own_global = values["global"].clone();
            merge_values(&mut own_global, &global);
            global = own_global;
            values["global"] = global;
        }
        child.values = values;
        scope_values(&mut child);
        if let Value::Object(map) = &mut node.values {
            map.insert(child.name.clone(), child.values.clone());
        }
        kept.push(child);
    }
    node.children = kept;
}

fn flatten<'a>(node: &'a Node, out: &mut Vec<&'a Node>) {
    out.push(node);
    for child in &node.children {
        flatten(child, out);
    }
}

/// `.Chart`: Chart.yaml's fields with Helm's capitalised names.
fn chart_object(meta: &Value, is_subchart: bool) -> Value {
    let mut out = Map::new();
    if let Value::Object(map) = meta {
        for (key, value) in map {
            if key.starts_with('\u{0}') {
                continue;
            }
            let name = match key.as_str() {
                "apiVersion" => "APIVersion".to_string(),
                "appVersion" => "AppVersion".to_string(),
                "kubeVersion" => "KubeVersion".to_string(),
                other => {
                    let mut chars = other.chars();
                    chars
                        .next()
                        .map(|c| c.to_uppercase().chain(chars).collect())
                        .unwrap_or_default()
                }
            };
            let value = match (key.as_str(), value) {
                // A version is text, whatever YAML made of it.
                ("version" | "appVersion", Value::Number(n)) => Value::String(n.to_string()),
                _ => value.clone(),
            };
            out.insert(name, value);
        }
    }
    out.insert("IsRoot".into(), Value::Bool(!is_subchart));
    Value::Object(out)
}

fn is_manifest_file(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")
}

/// Whether a file under templates/ is rendered into objects: not a partial (`_*`), not
/// NOTES.txt, not a chart test, and a YAML or JSON file.
fn renders(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    !base.starts_with('_')
        && !path.starts_with("templates/tests/")
        && base != "NOTES.txt"
        && is_manifest_file(path)
}

enum Hook {
    None,
    PreInstall,
    PostInstall,
    Skipped,
}

/// Where a `helm.sh/hook` object goes in an install: pre-install hooks before the rest,
/// post-install ones after; tests and hooks of other events are not part of an install.
fn hook_phase(manifest: &Manifest) -> Hook {
    let Some(hooks) = manifest.object["metadata"]["annotations"]["helm.sh/hook"].as_str() else {
        return Hook::None;
    };
    let hooks: Vec<&str> = hooks.split(',').map(str::trim).collect();
    if hooks.iter().any(|h| h.starts_with("test")) {
        Hook::Skipped
    } else if hooks.contains(&"pre-install") {
        Hook::PreInstall
    } else if hooks.contains(&"post-install") {
        Hook::PostInstall
    } else {
        Hook::Skipped
    }
}

/// Hooks by `helm.sh/hook-weight` (then kind, then name), as Helm runs them.
fn sort_hooks(hooks: &mut [Manifest]) {
    let weight = |m: &Manifest| {
        m.object["metadata"]["annotations"]["helm.sh/hook-weight"]
            .as_str()
            .and_then(|w| w.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    hooks.sort_by(|a, b| {
        weight(a)
            .cmp(&weight(b))
            .then_with(|| kind_rank(a.kind()).cmp(&kind_rank(b.kind())))
            .then_with(|| a.name().cmp(b.name()))
    });
}

/// Helm's install order of kinds; kinds it does not list go last, in their order.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn kind_rank(kind: &str) -> usize {
    INSTALL_ORDER.iter().position(|k| *k == kind).unwrap_or(INSTALL_ORDER.len())
}

fn sort_by_kind(manifests: &mut [Manifest]) {
    manifests.sort_by_key(|m| kind_rank(m.kind()));
}

/// The group versions a virtual cluster of the supported Kubernetes releases serves, for
/// `.Capabilities.APIVersions.Has`.
fn builtin_api_versions() -> Vec<String> {
    [
        "v1",
        "admissionregistration.k8s.io/v1",
        "apiextensions.k8s.io/v1",
        "apiregistration.k8s.io/v1",
        "apps/v1",
        "authentication.k8s.io/v1",
        "authorization.k8s.io/v1",
        "autoscaling/v1",
        "autoscaling/v2",
        "batch/v1",
        "certificates.k8s.io/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "events.k8s.io/v1",
        "flowcontrol.apiserver.k8s.io/v1",
        "networking.k8s.io/v1",
        "node.k8s.io/v1",
        "policy/v1",
        "rbac.authorization.k8s.io/v1",
        "scheduling.k8s.io/v1",
        "storage.k8s.io/v1",
    ]
    .iter()
    .map(|v| (*v).to_string())
    .collect()
}
