//! Unit tests for the kubeconfig layer, on the real-world-shaped files in
//! `tests/fixtures/kubeconfig/`, each copied into its own temp directory.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

const FIXTURES: &[&str] = &[
    "kind.yaml",
    "k3d.yaml",
    "eks.yaml",
    "gke.yaml",
    "extensions.yaml",
    "no-current-context.yaml",
    "empty.yaml",
    "comments.yaml",
];

/// The engine's admin kubeconfig as the syncer writes it into Secret `vc-<name>`.
const ADMIN_KUBECONFIG: &str = "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkekNDQVIyZ0F3SUJBZ0lCQURBS0JnZ3Foa2pPUFFRREFqQWpNU0V3SHdZRFZRUUREQmhyTTNNdGMyVnkKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://localhost:8443
  name: my-vcluster
contexts:
- context:
    cluster: my-vcluster
    user: my-vcluster
  name: my-vcluster
current-context: my-vcluster
kind: Config
preferences: {}
users:
- name: my-vcluster
  user:
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrVENDQVRlZ0F3SUJBZ0lJYzBaTnlHR3BqM0F3Q2dZSUtvWkl6ajBFQXdJd0l6RWhNQjhHQTFVRUF3d1kKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IY0NBUUVFSUFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaYWJjZGVmZ2hpamtsbW5vcG9Bb0dDQ3FHU000OQotLS0tLUVORCBFQyBQUklWQVRFIEtFWS0tLS0tCg==
";

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubeconfig").join(name)
}

/// A temp directory holding copies of fixtures.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Copies a fixture in under `name`.
    fn copy(&self, fixture: &str, name: &str) -> PathBuf {
        let to = self.path(name);
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).expect("mkdir");
        }
        fs::copy(fixture_path(fixture), &to).expect("copy fixture");
        to
    }

    /// Paths as `KUBECONFIG=a:b:...` with the sandbox as `HOME`.
    fn env_paths(&self, files: &[&Path]) -> KubeconfigPaths {
        let env = KubeconfigEnv {
            kubeconfig: Some(std::env::join_paths(files).expect("join paths")),
            home: Some(self.dir.path().to_path_buf()),
        };
        KubeconfigPaths::resolve_with(None, &env).expect("resolve")
    }
}

fn host(name: &str, namespace: &str, host_context: &str, host_server: &str) -> VirtualClusterRef {
    VirtualClusterRef {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        host_context: host_context.to_owned(),
        host_server: host_server.to_owned(),
    }
}

fn entry(cluster: VirtualClusterRef, port: u16, switch: bool) -> VirtualClusterEntry {
    let admin = parse_admin_kubeconfig(ADMIN_KUBECONFIG).expect("admin kubeconfig");
    VirtualClusterEntry::from_admin_kubeconfig(
        &admin,
        cluster,
        &format!("https://127.0.0.1:{port}"),
        switch,
    )
    .expect("entry")
}

fn kind_dev() -> VirtualClusterRef {
    host("dev", "vc-dev", "kind-host", "https://127.0.0.1:41235")
}

/// The file's YAML tree, the way every YAML reader sees it (comments and layout aside).
fn yaml_value(path: &Path) -> Value {
    let text = fs::read_to_string(path).expect("read");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("yaml");
    docs.into_iter().next().unwrap_or(Value::Null)
}

/// The file as kube's types read it.
fn typed_value(path: &Path) -> Value {
    let text = fs::read_to_string(path).expect("read");
    serde_json::to_value(Kubeconfig::from_yaml(&text).expect("kubeconfig")).expect("json")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

/// `kubectl config view -o json` of one file; panics (fails the test) if kubectl is missing.
fn kubectl_view(path: &Path) -> Value {
    let out = Command::new("kubectl")
        .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
        .arg(path)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl must be installed for this test (it checks kubectl reads what vc writes)");
    assert!(
        out.status.success(),
        "kubectl could not read {}: {}\n--- file ---\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).expect("kubectl json")
}

fn names(view: &Value, section: &str) -> Vec<String> {
    view[section]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

// ---- resolution -----------------------------------------------------------------------------

#[test]
fn kubeconfig_resolve_explicit_wins_over_env() {
    let env = KubeconfigEnv {
        kubeconfig: Some(OsString::from("/a:/b")),
        home: Some(PathBuf::from("/home/u")),
    };
    let paths = KubeconfigPaths::resolve_with(Some(Path::new("/x/config")), &env).unwrap();
    assert_eq!(paths.precedence(), [PathBuf::from("/x/config")]);
    assert_eq!(paths.source(), PathSource::Explicit);
    assert_eq!(paths.default_file(), Path::new("/x/config"));
}

#[test]
fn kubeconfig_resolve_env_skips_empty_entries_and_duplicates() {
    let env = KubeconfigEnv {
        kubeconfig: Some(OsString::from(":/a::/b:/a:")),
        home: Some(PathBuf::from("/home/u")),
    };
    let paths = KubeconfigPaths::resolve_with(None, &env).unwrap();
    assert_eq!(paths.precedence(), [PathBuf::from("/a"), PathBuf::from("/b")]);
    assert_eq!(paths.source(), PathSource::EnvVar);
}

#[test]
fn kubeconfig_resolve_falls_back_to_home() {
    for kubeconfig in [None, Some(OsString::new()), Some(OsString::from("::"))] {
        let env = KubeconfigEnv { kubeconfig, home: Some(PathBuf::from("/home/u")) };
        let paths = KubeconfigPaths::resolve_with(None, &env).unwrap();
        assert_eq!(paths.precedence(), [PathBuf::from("/home/u/.kube/config")]);
        assert_eq!(paths.source(), PathSource::Home);
    }
    let err = KubeconfigPaths::resolve_with(None, &KubeconfigEnv::default()).unwrap_err();
    assert!(matches!(err, KubeconfigError::NoHome), "{err}");
}

#[test]
fn kubeconfig_default_file_follows_kubectl() {
    let sb = Sandbox::new();
    let (a, b, c) = (sb.path("a"), sb.path("b"), sb.path("c"));
    // Only one file: that file, even if missing.
    assert_eq!(sb.env_paths(&[&a]).default_file(), a);
    // None exists: the last one listed.
    assert_eq!(sb.env_paths(&[&a, &b, &c]).default_file(), c);
    // The first that exists.
    fs::write(&b, "").unwrap();
    fs::write(&c, "").unwrap();
    assert_eq!(sb.env_paths(&[&a, &b, &c]).default_file(), b);
}

// ---- loading --------------------------------------------------------------------------------

#[test]
fn kubeconfig_every_fixture_loads() {
    for name in FIXTURES {
        let paths = KubeconfigPaths::explicit(fixture_path(name));
        let loaded = LoadedKubeconfigs::load(&paths).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.files().len(), 1, "{name}");
    }
    let loaded =
        LoadedKubeconfigs::load(&KubeconfigPaths::explicit(fixture_path("empty.yaml"))).unwrap();
    assert!(loaded.merged().contexts.is_empty());
    assert_eq!(loaded.current_context(), None);
}

#[test]
fn kubeconfig_load_keeps_unknown_fields() {
    let paths = KubeconfigPaths::explicit(fixture_path("eks.yaml"));
    let merged = LoadedKubeconfigs::load(&paths).unwrap().merged();
    assert_eq!(merged.other["x-corp-managed-by"], "landing-zone-tool");
    let user = merged.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(user.other["x-team-owner"], "platform");
    assert_eq!(user.exec.as_ref().unwrap().command.as_deref(), Some("aws"));
}

#[test]
fn kubeconfig_explicit_missing_file_is_an_error_but_env_files_are_skipped() {
    let sb = Sandbox::new();
    let missing = sb.path("missing");
    let err = LoadedKubeconfigs::load(&KubeconfigPaths::explicit(&missing)).unwrap_err();
    assert!(matches!(err, KubeconfigError::ExplicitMissing { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let kind = sb.copy("kind.yaml", "kind");
    let loaded = LoadedKubeconfigs::load(&sb.env_paths(&[&missing, &kind])).unwrap();
    assert_eq!(loaded.files().len(), 1);
    assert_eq!(loaded.current_context(), Some("kind-host"));
}

#[test]
fn kubeconfig_merge_first_file_wins_and_paths_become_absolute() {
    let sb = Sandbox::new();
    let none = sb.copy("no-current-context.yaml", "a/config");
    let mini = sb.copy("extensions.yaml", "b/config");
    let kind = sb.copy("kind.yaml", "c/config");
    let loaded = LoadedKubeconfigs::load(&sb.env_paths(&[&none, &mini, &kind])).unwrap();
    // The first file sets no current-context; the second one does.
    assert_eq!(loaded.current_context(), Some("minikube"));
    let merged = loaded.merged();
    assert_eq!(merged.current_context.as_deref(), Some("minikube"));
    assert_eq!(
        merged.contexts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["staging", "minikube", "kind-host"]
    );
    assert!(merged.preferences.as_ref().and_then(|p| p.colors).unwrap_or(false));
    let user = merged.auth_infos.iter().find(|u| u.name == "minikube").unwrap();
    let cert = user.auth_info.as_ref().unwrap().client_certificate.clone().unwrap();
    assert_eq!(PathBuf::from(cert), sb.path("b/profiles/minikube/client.crt"));
    let cluster = merged.clusters.iter().find(|c| c.name == "minikube").unwrap();
    let ca = cluster.cluster.as_ref().unwrap().certificate_authority.clone().unwrap();
    assert_eq!(PathBuf::from(ca), sb.path("b/ca.crt"));
    // The per-file view keeps what the file says.
    let file = &loaded.files()[1];
    let raw_user = file.config().auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(raw_user.client_certificate.as_deref(), Some("profiles/minikube/client.crt"));
    // A shadowed definition is not the effective one.
    let dup = sb.copy("kind.yaml", "d/config");
    let loaded = LoadedKubeconfigs::load(&sb.env_paths(&[&kind, &dup])).unwrap();
    assert_eq!(loaded.context("kind-host").unwrap().1, kind);
}

#[test]
fn kubeconfig_malformed_file_error_names_file_line_and_column() {
    let sb = Sandbox::new();
    let bad = sb.copy("malformed.yaml", "config");
    let err = LoadedKubeconfigs::load(&KubeconfigPaths::explicit(&bad)).unwrap_err();
    let KubeconfigError::Malformed { path, line, column, .. } = &err else {
        panic!("expected Malformed, got {err}");
    };
    assert_eq!(path, &bad);
    assert!(line.is_some_and(|l| (7..=8).contains(&l)), "line {line:?}");
    assert!(column.is_some(), "{err}");
    let message = err.to_string();
    assert!(message.contains(&bad.display().to_string()), "{message}");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn kubeconfig_malformed_file_is_never_written() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "kind");
    let bad = sb.copy("malformed.yaml", "bad");
    let before = fs::read(&bad).unwrap();
    let kind_before = fs::read(&kind).unwrap();
    for paths in [KubeconfigPaths::explicit(&bad), sb.env_paths(&[&kind, &bad])] {
        let err = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap_err();
        assert!(matches!(err, KubeconfigError::Malformed { .. }), "{err}");
    }
    assert_eq!(fs::read(&bad).unwrap(), before);
    assert_eq!(fs::read(&kind).unwrap(), kind_before);
    assert!(!lock::lock_path(&bad).exists(), "lock released on error");
    assert!(!lock::lock_path(&kind).exists(), "lock released on error");
}

#[test]
fn kubeconfig_host_context_resolution() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    let paths = KubeconfigPaths::explicit(&kind);
    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    let host_ctx = loaded.host_context(None).unwrap();
    assert_eq!(host_ctx.context, "kind-host");
    assert_eq!(host_ctx.server.as_deref(), Some("https://127.0.0.1:41235"));
    assert_eq!(host_ctx.via_virtual_cluster, None);
    let err = loaded.host_context(Some("nope")).unwrap_err();
    assert!(matches!(err, KubeconfigError::ContextNotFound { .. }), "{err}");

    // While connected to a virtual cluster, the host is the one it was made from.
    upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    assert_eq!(loaded.current_context(), Some("vc-dev"));
    let host_ctx = loaded.host_context(None).unwrap();
    assert_eq!(host_ctx.context, "kind-host");
    assert_eq!(host_ctx.via_virtual_cluster.as_deref(), Some("vc-dev"));
    assert_eq!(loaded.host_context(Some("vc-dev")).unwrap().context, "vc-dev");

    // The merged view builds a kube client config for the host.
    let options = kube::config::KubeConfigOptions {
        context: Some(host_ctx.context.clone()),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let config =
        runtime.block_on(kube::Config::from_custom_kubeconfig(loaded.merged(), &options)).unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:41235/");

    let none = sb.copy("no-current-context.yaml", "none");
    let loaded = LoadedKubeconfigs::load(&KubeconfigPaths::explicit(&none)).unwrap();
    let err = loaded.host_context(None).unwrap_err();
    assert!(matches!(err, KubeconfigError::NoCurrentContext { .. }), "{err}");
}

// ---- round trips ----------------------------------------------------------------------------

#[test]
fn kubeconfig_upsert_then_remove_restores_every_fixture() {
    for name in FIXTURES {
        let sb = Sandbox::new();
        let file = sb.copy(name, "config");
        let yaml_before = yaml_value(&file);
        let typed_before = typed_value(&file);
        let current_before = LoadedKubeconfigs::load(&KubeconfigPaths::explicit(&file))
            .unwrap()
            .current_context()
            .map(str::to_owned);
        let paths = KubeconfigPaths::explicit(&file);

        let outcome = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome.context_name, "vc-dev", "{name}");
        assert_eq!(outcome.previous_context, current_before, "{name}");
        assert!(outcome.created && outcome.switched, "{name}");
        assert_eq!(outcome.written, std::slice::from_ref(&file), "{name}");

        let view = kubectl_view(&file);
        assert_eq!(view["current-context"], "vc-dev", "{name}");
        assert!(names(&view, "contexts").contains(&"vc-dev".to_owned()), "{name}");
        assert!(names(&view, "clusters").contains(&"vc-dev".to_owned()), "{name}");
        assert!(names(&view, "users").contains(&"vc-dev".to_owned()), "{name}");
        let cluster = view["clusters"].as_array().unwrap().iter().find(|c| c["name"] == "vc-dev");
        assert_eq!(cluster.unwrap()["cluster"]["server"], "https://127.0.0.1:8443", "{name}");

        let removed = remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(removed.removed_contexts, ["vc-dev"], "{name}");
        let expected = match current_before {
            Some(context) => CurrentContextChange::Restored(context),
            None => CurrentContextChange::Unset,
        };
        assert_eq!(removed.current_context, expected, "{name}");

        if *name == "empty.yaml" {
            // An empty file comes back as an empty kubeconfig, which is what it meant, with the
            // apiVersion and kind kubectl also writes.
            let mut typed_after = typed_value(&file);
            let fields = typed_after.as_object_mut().unwrap();
            assert_eq!(fields.remove("apiVersion"), Some(Value::from("v1")));
            assert_eq!(fields.remove("kind"), Some(Value::from("Config")));
            assert_eq!(typed_after, typed_before, "{name}");
        } else {
            assert_eq!(
                yaml_value(&file),
                yaml_before,
                "{name}: not the same YAML after round trip"
            );
        }
        kubectl_view(&file);
    }
}

#[test]
fn kubeconfig_upsert_keeps_other_stanzas_verbatim() {
    let sb = Sandbox::new();
    let eks = sb.copy("eks.yaml", "config");
    let before = yaml_value(&eks);
    upsert_virtual_cluster(&KubeconfigPaths::explicit(&eks), &entry(kind_dev(), 8443, false))
        .unwrap();
    let after = yaml_value(&eks);
    // The exec user did not gain `provideClusterInfo` or lose its unknown key; top-level
    // unknown keys and the untouched stanzas are as they were.
    assert_eq!(after["users"][0], before["users"][0]);
    assert_eq!(after["clusters"][0], before["clusters"][0]);
    assert_eq!(after["x-corp-rotation"], before["x-corp-rotation"]);
    assert_eq!(after["x-corp-managed-by"], "landing-zone-tool");
    assert_eq!(after["current-context"], before["current-context"]);

    let sb = Sandbox::new();
    let mini = sb.copy("extensions.yaml", "config");
    upsert_virtual_cluster(&KubeconfigPaths::explicit(&mini), &entry(kind_dev(), 8443, true))
        .unwrap();
    let after = yaml_value(&mini);
    // Relative paths stay relative in the file (only the merged view resolves them).
    assert_eq!(after["users"][0]["user"]["client-certificate"], "profiles/minikube/client.crt");
    assert_eq!(after["preferences"]["extensions"][0]["extension"]["theme"], "dark");
    assert_eq!(after["extensions"][0]["name"], "example.dev/top-level");
}

#[test]
fn kubeconfig_metadata_extension_is_recorded() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    let paths = KubeconfigPaths::explicit(&kind);
    upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    let view = kubectl_view(&kind);
    let context = view["contexts"].as_array().unwrap().iter().find(|c| c["name"] == "vc-dev");
    let extensions = &context.unwrap()["context"]["extensions"];
    assert_eq!(extensions[0]["name"], EXTENSION_NAME);
    let ext = &extensions[0]["extension"];
    assert_eq!(ext["name"], "dev");
    assert_eq!(ext["namespace"], "vc-dev");
    assert_eq!(ext["hostContext"], "kind-host");
    assert_eq!(ext["hostServer"], "https://127.0.0.1:41235");
    assert_eq!(ext["previousContext"], "kind-host");

    // The same entry again changes nothing, so nothing is written.
    let modified = fs::metadata(&kind).unwrap().modified().unwrap();
    let again = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    assert!(again.written.is_empty() && !again.created && !again.switched);
    assert_eq!(again.previous_context.as_deref(), Some("kind-host"));
    assert_eq!(fs::metadata(&kind).unwrap().modified().unwrap(), modified);

    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    let listed = list_virtual_cluster_entries(&loaded);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].context_name, "vc-dev");
    assert_eq!(listed[0].file, kind);
    assert_eq!(listed[0].metadata.cluster, kind_dev());
    assert_eq!(listed[0].server.as_deref(), Some("https://127.0.0.1:8443"));
    assert!(listed[0].is_current);
}

#[test]
fn kubeconfig_reconnect_keeps_name_and_previous_context() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    let before = yaml_value(&kind);
    let paths = KubeconfigPaths::explicit(&kind);
    upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    // Same cluster reached through another context name for the same server: same entry.
    let mut again = kind_dev();
    again.host_context = "kind-host-admin".to_owned();
    let outcome = upsert_virtual_cluster(&paths, &entry(again, 9443, true)).unwrap();
    assert_eq!(outcome.context_name, "vc-dev");
    assert!(!outcome.created && !outcome.switched);
    assert_eq!(outcome.previous_context.as_deref(), Some("kind-host"));
    let view = kubectl_view(&kind);
    assert_eq!(names(&view, "contexts"), ["kind-host", "vc-dev"]);
    let cluster = &view["clusters"].as_array().unwrap()[1];
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:9443");
    remove_virtual_cluster(&paths, &VirtualClusterSelector::Context("vc-dev".to_owned())).unwrap();
    assert_eq!(yaml_value(&kind), before);
}

#[test]
fn kubeconfig_upsert_without_switch_leaves_current_context() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    let paths = KubeconfigPaths::explicit(&kind);
    let outcome = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, false)).unwrap();
    assert!(!outcome.switched);
    assert_eq!(outcome.previous_context, None);
    assert_eq!(kubectl_view(&kind)["current-context"], "kind-host");
    let removed =
        remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev())).unwrap();
    assert_eq!(removed.current_context, CurrentContextChange::Unchanged, "not ours: untouched");
}

// ---- several files --------------------------------------------------------------------------

#[test]
fn kubeconfig_new_entries_go_to_first_existing_file_and_round_trip() {
    let sb = Sandbox::new();
    let missing = sb.path("missing/config");
    let a = sb.copy("no-current-context.yaml", "a");
    let b = sb.copy("kind.yaml", "b");
    let (a0, b0) = (yaml_value(&a), yaml_value(&b));
    let paths = sb.env_paths(&[&missing, &a, &b]);
    assert_eq!(paths.default_file(), a);

    let outcome = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    assert_eq!(outcome.file, a);
    assert_eq!(outcome.previous_context.as_deref(), Some("kind-host"));
    assert_eq!(outcome.written, std::slice::from_ref(&a));
    assert!(!missing.exists(), "a missing file that is not the default is not created");
    assert_eq!(yaml_value(&b), b0, "b is untouched");
    let view = kubectl_view(&a);
    assert_eq!(view["current-context"], "vc-dev");
    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    assert_eq!(loaded.current_context(), Some("vc-dev"));

    let removed =
        remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev())).unwrap();
    assert_eq!(removed.current_context, CurrentContextChange::Restored("kind-host".to_owned()));
    assert_eq!(yaml_value(&a), a0);
    assert_eq!(yaml_value(&b), b0);
    assert_eq!(LoadedKubeconfigs::load(&paths).unwrap().current_context(), Some("kind-host"));
}

#[test]
fn kubeconfig_edits_go_to_the_file_that_defines_the_entry() {
    let sb = Sandbox::new();
    let a = sb.copy("k3d.yaml", "a");
    let b = sb.copy("kind.yaml", "b");
    // The entry is first written with only b in the list.
    upsert_virtual_cluster(&sb.env_paths(&[&b]), &entry(kind_dev(), 8443, false)).unwrap();
    let a0 = yaml_value(&a);
    let paths = sb.env_paths(&[&a, &b]);
    let outcome = upsert_virtual_cluster(&paths, &entry(kind_dev(), 9443, false)).unwrap();
    assert!(!outcome.created);
    assert_eq!(outcome.file, b);
    assert_eq!(outcome.written, std::slice::from_ref(&b));
    assert_eq!(yaml_value(&a), a0, "a is untouched");
    let view = kubectl_view(&b);
    let cluster = view["clusters"].as_array().unwrap().iter().find(|c| c["name"] == "vc-dev");
    assert_eq!(cluster.unwrap()["cluster"]["server"], "https://127.0.0.1:9443");
    // Removal finds it in b as well.
    let removed =
        remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev())).unwrap();
    assert_eq!(removed.written, std::slice::from_ref(&b));
    assert_eq!(typed_value(&b), typed_value(&fixture_path("kind.yaml")));
}

#[test]
fn kubeconfig_no_existing_file_creates_last_listed_or_home_config_with_0600() {
    let sb = Sandbox::new();
    let (x, y) = (sb.path("x/config"), sb.path("y/config"));
    let outcome =
        upsert_virtual_cluster(&sb.env_paths(&[&x, &y]), &entry(kind_dev(), 8443, true)).unwrap();
    assert_eq!(outcome.file, y);
    assert!(!x.exists());
    assert_eq!(mode(&y), 0o600);
    assert_eq!(kubectl_view(&y)["current-context"], "vc-dev");

    let home = Sandbox::new();
    let env = KubeconfigEnv { kubeconfig: None, home: Some(home.dir.path().to_path_buf()) };
    let paths = KubeconfigPaths::resolve_with(None, &env).unwrap();
    let outcome = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    let config = home.path(".kube/config");
    assert_eq!(outcome.file, config);
    assert_eq!(mode(&config), 0o600);
    assert_eq!(outcome.previous_context, None);
    let view = kubectl_view(&config);
    assert_eq!(view["current-context"], "vc-dev");
    assert_eq!(view["apiVersion"], "v1");
    assert_eq!(view["kind"], "Config");
}

// ---- naming ---------------------------------------------------------------------------------

#[test]
fn kubeconfig_same_name_on_two_hosts_does_not_overwrite() {
    let sb = Sandbox::new();
    let a = sb.copy("kind.yaml", "a");
    let b = sb.copy("k3d.yaml", "b");
    let paths = sb.env_paths(&[&a, &b]);
    let on_kind = kind_dev();
    let on_k3d = host("dev", "vc-dev", "k3d-dev", "https://0.0.0.0:36443");
    let other_ns = host("dev", "team-b", "kind-host", "https://127.0.0.1:41235");
    let first = upsert_virtual_cluster(&paths, &entry(on_kind.clone(), 8443, true)).unwrap();
    let second = upsert_virtual_cluster(&paths, &entry(on_k3d.clone(), 8444, true)).unwrap();
    let third = upsert_virtual_cluster(&paths, &entry(other_ns.clone(), 8445, false)).unwrap();
    assert_eq!(first.context_name, "vc-dev");
    assert_eq!(second.context_name, "vc-dev@k3d-dev");
    assert_eq!(second.previous_context.as_deref(), Some("vc-dev"));
    assert_eq!(third.context_name, "vc-dev@kind-host");

    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    let listed = list_virtual_cluster_entries(&loaded);
    let servers: Vec<_> =
        listed.iter().map(|e| (e.context_name.as_str(), e.server.as_deref().unwrap())).collect();
    assert_eq!(
        servers,
        [
            ("vc-dev", "https://127.0.0.1:8443"),
            ("vc-dev@k3d-dev", "https://127.0.0.1:8444"),
            ("vc-dev@kind-host", "https://127.0.0.1:8445")
        ]
    );
    assert_eq!(listed[1].metadata.cluster, on_k3d);
    assert!(listed[1].is_current);

    // Removing the k3d one restores vc-dev (its previous context) and leaves the others.
    let removed = remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(on_k3d)).unwrap();
    assert_eq!(removed.removed_contexts, ["vc-dev@k3d-dev"]);
    assert_eq!(removed.current_context, CurrentContextChange::Restored("vc-dev".to_owned()));
    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    let left: Vec<_> =
        list_virtual_cluster_entries(&loaded).into_iter().map(|e| e.context_name).collect();
    assert_eq!(left, ["vc-dev", "vc-dev@kind-host"]);
    assert!(loaded.cluster("vc-dev").is_some() && loaded.user("vc-dev").is_some());
}

#[test]
fn kubeconfig_foreign_vc_named_context_is_not_taken_over() {
    let sb = Sandbox::new();
    let file = sb.path("config");
    fs::write(
        &file,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: vc-dev\n  cluster: {server: https://mine:6443}\n\
         contexts:\n- name: vc-dev\n  context: {cluster: vc-dev, user: me}\nusers:\n- name: me\n  user: {token: abc}\n\
         current-context: vc-dev\n",
    )
    .unwrap();
    let before = yaml_value(&file);
    let paths = KubeconfigPaths::explicit(&file);
    let outcome = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    assert_eq!(outcome.context_name, "vc-dev@kind-host");
    let err = remove_virtual_cluster(&paths, &VirtualClusterSelector::Context("vc-dev".to_owned()))
        .unwrap_err();
    assert!(matches!(err, KubeconfigError::NotVirtualClusterContext { .. }), "{err}");
    remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev())).unwrap();
    assert_eq!(yaml_value(&file), before);
}

#[test]
fn kubeconfig_remove_missing_entry_writes_nothing() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    let modified = fs::metadata(&kind).unwrap().modified().unwrap();
    let paths = KubeconfigPaths::explicit(&kind);
    let outcome =
        remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev())).unwrap();
    assert_eq!(outcome, RemovedOutcome::default());
    let outcome =
        remove_virtual_cluster(&paths, &VirtualClusterSelector::Context("vc-x".to_owned()))
            .unwrap();
    assert!(outcome.written.is_empty());
    assert_eq!(fs::metadata(&kind).unwrap().modified().unwrap(), modified);
}

#[test]
fn kubeconfig_remove_unsets_current_context_when_previous_is_gone() {
    let sb = Sandbox::new();
    let a = sb.copy("no-current-context.yaml", "a");
    let b = sb.copy("kind.yaml", "b");
    let paths = sb.env_paths(&[&a, &b]);
    upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    // The previous context disappears meanwhile (kubectl config delete-context kind-host).
    let text = fs::read_to_string(&b).unwrap();
    let mut config = Kubeconfig::from_yaml(&text).unwrap();
    config.contexts.clear();
    config.current_context = None;
    fs::write(&b, render_kubeconfig(&config).unwrap()).unwrap();

    let removed =
        remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev())).unwrap();
    assert_eq!(removed.current_context, CurrentContextChange::Unset);
    assert_eq!(LoadedKubeconfigs::load(&paths).unwrap().current_context(), None);
    assert_eq!(yaml_value(&a), yaml_value(&fixture_path("no-current-context.yaml")));
}

// ---- locking --------------------------------------------------------------------------------

#[test]
fn kubeconfig_held_lock_waits_then_names_the_stale_lock() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    let before = fs::read(&kind).unwrap();
    let lock_file = lock::lock_path(&kind);
    assert_eq!(lock_file, sb.path("config.lock"));
    fs::write(&lock_file, "").unwrap();
    let paths = KubeconfigPaths::explicit(&kind).with_lock_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    let KubeconfigError::LockTimeout { lock, .. } = &err else { panic!("{err}") };
    assert_eq!(lock, &lock_file);
    let message = err.to_string();
    assert!(message.contains(&lock_file.display().to_string()), "{message}");
    assert!(message.contains("delete"), "{message}");
    assert!(message.contains("kubectl"), "{message}");
    assert_eq!(fs::read(&kind).unwrap(), before, "nothing written without the lock");
    assert!(lock_file.exists(), "someone else's lock is never removed");

    // Released meanwhile: the writer gets through.
    let releaser = {
        let lock_file = lock_file.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            fs::remove_file(lock_file).unwrap();
        })
    };
    let paths = paths.with_lock_timeout(Duration::from_secs(5));
    upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    releaser.join().unwrap();
    assert!(!lock_file.exists(), "lock removed after writing");
}

/// On a single-threaded runtime, a waiting writer must yield: the task that releases the lock
/// runs meanwhile, and a wait that is abandoned (as `select!` on Ctrl-C does) returns at once
/// without touching the lock it was waiting for.
#[tokio::test(flavor = "current_thread")]
async fn kubeconfig_async_lock_wait_yields_and_can_be_abandoned() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    let before = fs::read(&kind).unwrap();
    let lock_file = lock::lock_path(&kind);
    fs::write(&lock_file, "someone else's").unwrap();
    let paths = KubeconfigPaths::explicit(&kind).with_lock_timeout(Duration::from_secs(10));

    let dev = entry(kind_dev(), 8443, true);
    let started = Instant::now();
    tokio::select! {
        result = upsert_virtual_cluster_async(&paths, &dev) => {
            panic!("the lock is held, yet the writer finished: {result:?}")
        }
        () = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    assert!(started.elapsed() < Duration::from_secs(2), "abandoned after {:?}", started.elapsed());
    assert_eq!(fs::read(&kind).unwrap(), before, "nothing written without the lock");
    assert_eq!(fs::read_to_string(&lock_file).unwrap(), "someone else's", "foreign lock kept");

    let releaser = {
        let lock_file = lock_file.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            fs::remove_file(lock_file).unwrap();
        })
    };
    assert!(upsert_virtual_cluster_async(&paths, &dev).await.unwrap().created);
    releaser.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(!lock_file.exists(), "own lock removed after writing");

    fs::write(&lock_file, "").unwrap();
    let paths = paths.with_lock_timeout(Duration::from_millis(300));
    let selector = VirtualClusterSelector::Cluster(kind_dev());
    let err = remove_virtual_cluster_async(&paths, &selector).await.unwrap_err();
    let KubeconfigError::LockTimeout { lock, .. } = &err else { panic!("{err}") };
    assert_eq!(lock, &lock_file);
    assert!(lock_file.exists(), "someone else's lock is never removed");
}

#[test]
fn kubeconfig_racing_writers_both_land() {
    let sb = Sandbox::new();
    let a = sb.copy("kind.yaml", "a");
    let b = sb.copy("k3d.yaml", "b");
    let paths = Arc::new(sb.env_paths(&[&a, &b]));
    let writers: Vec<_> = (0..8u16)
        .map(|i| {
            let paths = Arc::clone(&paths);
            std::thread::spawn(move || {
                let cluster = host(&format!("race{i}"), "vc", "kind-host", "https://h:6443");
                upsert_virtual_cluster(&paths, &entry(cluster, 9000 + i, i % 2 == 0)).unwrap()
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer thread");
    }
    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    let mut listed: Vec<_> =
        list_virtual_cluster_entries(&loaded).into_iter().map(|e| e.context_name).collect();
    listed.sort();
    let expected: Vec<_> = (0..8).map(|i| format!("vc-race{i}")).collect();
    assert_eq!(listed, expected);
    for i in 0..8 {
        assert!(loaded.cluster(&format!("vc-race{i}")).is_some());
        assert!(loaded.user(&format!("vc-race{i}")).is_some());
    }
    kubectl_view(&a);
    assert!(!lock::lock_path(&a).exists() && !lock::lock_path(&b).exists());
}

// ---- file handling --------------------------------------------------------------------------

#[test]
fn kubeconfig_symlink_stays_a_symlink() {
    let sb = Sandbox::new();
    let real = sb.copy("kind.yaml", "dotfiles/kube/config");
    let link = sb.path("config");
    std::os::unix::fs::symlink("dotfiles/kube/config", &link).unwrap();
    let paths = KubeconfigPaths::explicit(&link);
    upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("dotfiles/kube/config"));
    assert_eq!(kubectl_view(&real)["current-context"], "vc-dev");
    // kubectl's lock name is the listed path's, not the target's.
    assert!(!sb.path("config.lock").exists());
    let leftovers: Vec<_> = fs::read_dir(sb.path("dotfiles/kube")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");
}

#[test]
fn kubeconfig_mode_is_preserved() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    fs::set_permissions(&kind, fs::Permissions::from_mode(0o640)).unwrap();
    // Only root can give a file away; then the owner must survive the rewrite too (sudo).
    let given_away = std::os::unix::fs::chown(&kind, Some(4242), Some(4243)).is_ok();
    upsert_virtual_cluster(&KubeconfigPaths::explicit(&kind), &entry(kind_dev(), 8443, true))
        .unwrap();
    assert_eq!(mode(&kind), 0o640);
    if given_away {
        use std::os::unix::fs::MetadataExt as _;
        let meta = fs::metadata(&kind).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4243));
    }
}

#[test]
fn kubeconfig_read_only_file_and_directory_are_refused() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    fs::set_permissions(&kind, fs::Permissions::from_mode(0o444)).unwrap();
    let before = fs::read(&kind).unwrap();
    let err =
        upsert_virtual_cluster(&KubeconfigPaths::explicit(&kind), &entry(kind_dev(), 8443, true))
            .unwrap_err();
    assert!(matches!(err, KubeconfigError::ReadOnly { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("read-only") && message.contains("--print"), "{message}");
    assert_eq!(fs::read(&kind).unwrap(), before);
    assert!(!lock::lock_path(&kind).exists());

    let ro = Sandbox::new();
    let kind = ro.copy("kind.yaml", "ro/config");
    let dir = ro.path("ro");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    let err =
        upsert_virtual_cluster(&KubeconfigPaths::explicit(&kind), &entry(kind_dev(), 8443, true))
            .unwrap_err();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(err, KubeconfigError::ReadOnly { .. }), "{err}");
    assert_eq!(fs::read(&kind).unwrap(), before);
}

// ---- standalone -----------------------------------------------------------------------------

#[test]
fn kubeconfig_standalone_rewrites_only_the_server() {
    let admin = parse_admin_kubeconfig(ADMIN_KUBECONFIG).unwrap();
    let config = standalone_kubeconfig(&admin, "vc-dev", "https://127.0.0.1:31234").unwrap();
    assert_eq!(config.current_context.as_deref(), Some("vc-dev"));
    let cluster = config.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:31234"));
    assert_eq!(
        cluster.certificate_authority_data,
        admin.clusters[0].cluster.as_ref().unwrap().certificate_authority_data
    );
    assert_eq!(cluster.insecure_skip_tls_verify, None);

    let private = write_private_kubeconfig(&config).unwrap();
    assert_eq!(mode(&private), 0o600);
    let view = kubectl_view(&private);
    assert_eq!(view["current-context"], "vc-dev");
    assert_eq!(view["clusters"][0]["cluster"]["server"], "https://127.0.0.1:31234");
    assert!(view["users"][0]["user"]["client-key-data"].as_str().is_some_and(|k| !k.is_empty()));
    let path = private.to_path_buf();
    drop(private);
    assert!(!path.exists(), "private kubeconfig removed when dropped");

    let text = render_kubeconfig(&config).unwrap();
    assert_eq!(
        serde_json::to_value(Kubeconfig::from_yaml(&text).unwrap()).unwrap(),
        serde_json::to_value(&config).unwrap()
    );
}

#[test]
fn kubeconfig_admin_kubeconfig_without_credentials_is_refused() {
    let err = parse_admin_kubeconfig("apiVersion: v1\nkind: Config\n").unwrap_err();
    assert!(matches!(err, KubeconfigError::AdminKubeconfig { .. }), "{err}");
    let admin = Kubeconfig::from_yaml(
        "clusters: [{name: c, cluster: {server: 'https://localhost:8443'}}]\n\
         users: [{name: u, user: {username: admin}}]\n\
         contexts: [{name: x, context: {cluster: c, user: u}}]\n",
    )
    .unwrap();
    let err = VirtualClusterEntry::from_admin_kubeconfig(&admin, kind_dev(), "https://x", true)
        .unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");
    let token = Credentials::Token("t0k3n".to_owned());
    assert_eq!(Credentials::from_auth_info(&token.to_auth_info()).unwrap(), token);
    assert!(!format!("{token:?}").contains("t0k3n"));
}

#[test]
fn kubeconfig_entries_survive_a_kubectl_rewrite() {
    let sb = Sandbox::new();
    let kind = sb.copy("kind.yaml", "config");
    let paths = KubeconfigPaths::explicit(&kind);
    upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, true)).unwrap();
    // kubectl rewrites the whole file in its own way; vc's extension must come through.
    let out = Command::new("kubectl")
        .args(["config", "use-context", "kind-host", "--kubeconfig"])
        .arg(&kind)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl must be installed for this test");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    let listed = list_virtual_cluster_entries(&loaded);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].metadata.cluster, kind_dev());
    assert_eq!(listed[0].metadata.previous_context.as_deref(), Some("kind-host"));
    assert!(!listed[0].is_current);
    let removed =
        remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev())).unwrap();
    assert_eq!(removed.removed_contexts, ["vc-dev"]);
    assert_eq!(removed.current_context, CurrentContextChange::Unchanged);
    assert_eq!(typed_value(&kind), typed_value(&fixture_path("kind.yaml")));
}

#[test]
fn kubeconfig_shadowed_vc_context_is_not_reused() {
    let sb = Sandbox::new();
    let a = sb.copy("kind.yaml", "a");
    let b = sb.copy("kind.yaml", "b");
    // b holds vc-dev for the cluster; a later gets a foreign vc-dev that shadows it.
    upsert_virtual_cluster(&sb.env_paths(&[&b]), &entry(kind_dev(), 8443, false)).unwrap();
    let mut config = Kubeconfig::from_yaml(&fs::read_to_string(&a).unwrap()).unwrap();
    let mut foreign = config.contexts[0].clone();
    foreign.name = "vc-dev".to_owned();
    config.contexts.push(foreign);
    fs::write(&a, render_kubeconfig(&config).unwrap()).unwrap();
    let a0 = yaml_value(&a);

    let paths = sb.env_paths(&[&a, &b]);
    let outcome = upsert_virtual_cluster(&paths, &entry(kind_dev(), 8443, false)).unwrap();
    assert_eq!(outcome.context_name, "vc-dev@kind-host");
    assert_eq!(outcome.file, a);
    let loaded = LoadedKubeconfigs::load(&paths).unwrap();
    let (foreign, _) = loaded.context("vc-dev").unwrap();
    assert_eq!(foreign.context.as_ref().unwrap().cluster, "kind-host", "foreign one untouched");
    // Removal by cluster takes every vc entry of it, shadowed or not, and nothing else.
    let removed =
        remove_virtual_cluster(&paths, &VirtualClusterSelector::Cluster(kind_dev())).unwrap();
    assert_eq!(removed.removed_contexts, ["vc-dev", "vc-dev@kind-host"]);
    assert_eq!(yaml_value(&a), a0);
    assert_eq!(typed_value(&b), typed_value(&fixture_path("kind.yaml")));
}
