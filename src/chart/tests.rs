//! Charts rendered into objects without a cluster: the fixture chart, values merging,
//! subcharts, hooks and refusals.

use std::path::Path;

use serde_json::{Value, json};

use super::render::{self, Files, Release};
use super::source::read_local;
use crate::provision::Manifest;

fn fixture() -> Files {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/charts/web");
    read_local(&dir, "web").expect("the fixture chart reads")
}

fn release(namespace: &str) -> Release {
    Release { name: Some("shop".into()), namespace: namespace.into() }
}

fn described(manifests: &[Manifest]) -> Vec<String> {
    manifests.iter().map(|m| format!("{} {}", m.kind(), m.name())).collect()
}

#[test]
fn the_fixture_chart_renders_in_install_order() {
    let values = json!({
        "image": {"repository": "busybox", "tag": "1.36"},
        "command": ["sleep", "3600"],
        "livenessProbe": null,
        "settings": {"greeting": "hi"},
    });
    let out =
        render::render(fixture(), "web", &values, &release("store"), "1.36").expect("renders");
    assert_eq!(
        described(&out),
        [
            "CustomResourceDefinition gadgets.web.example.test",
            "Namespace store",
            "ConfigMap shop-web-setup",
            "ServiceAccount shop-web",
            "ConfigMap shop-web-settings",
            "Service shop-web",
            "Deployment shop-web",
        ]
    );
    assert!(out.iter().all(|m| m.default_namespace.as_deref() == Some("store")));
    let deployment = &out[6];
    assert_eq!(deployment.source, "chart web: web/templates/deployment.yaml");
    let container = &deployment.object["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox:1.36");
    assert_eq!(container["command"], json!(["sleep", "3600"]));
    assert!(container.get("livenessProbe").is_none(), "null deletes the chart's default");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(deployment.object["spec"]["replicas"], 1);
    let labels = &deployment.object["metadata"]["labels"];
    assert_eq!(labels["helm.sh/chart"], "web-0.3.1");
    assert_eq!(labels["app.kubernetes.io/version"], "1.27.2");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    let checksum =
        deployment.object["spec"]["template"]["metadata"]["annotations"]["checksum/settings"]
            .as_str()
            .expect("a checksum");
    assert_eq!(checksum.len(), 64);
    let settings = &out[4].object["data"];
    assert_eq!(settings["greeting"], "hi", "the user's value wins");
    assert_eq!(settings["mode"], "demo", "maps merge: the chart's other keys stay");
    assert_eq!(settings["release-namespace"], "store");
    assert_eq!(settings["kubernetes"], "v1.36.0");
    assert_eq!(settings["site.conf"], "listen 8080;\nroot /srv/www;\n");
}

#[test]
fn conditional_templates_follow_the_values() {
    let values = json!({"autoscaling": {"enabled": true}, "ingress": {"enabled": true,
        "tls": [{"hosts": ["a.test"], "secretName": "tls-a"}]}, "serviceAccount": {"create": false}});
    let out =
        render::render(fixture(), "web", &values, &release("default"), "1.33").expect("renders");
    let kinds = described(&out);
    assert!(kinds.contains(&"HorizontalPodAutoscaler shop-web".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"Ingress shop-web".to_string()), "{kinds:?}");
    assert!(
        !kinds.iter().any(|k| k.starts_with("ServiceAccount") || k.starts_with("Namespace")),
        "{kinds:?}"
    );
    let deployment = out.iter().find(|m| m.kind() == "Deployment").unwrap();
    assert!(deployment.object["spec"].get("replicas").is_none(), "autoscaled: no replicas");
    assert_eq!(deployment.object["spec"]["template"]["spec"]["serviceAccountName"], "default");
    let ingress = out.iter().find(|m| m.kind() == "Ingress").unwrap();
    assert_eq!(ingress.object["spec"]["tls"][0]["hosts"][0], "a.test");
    assert_eq!(
        ingress.object["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
        80
    );
}

#[test]
fn values_merge_as_helm_merges_them() {
    let mut base = json!({"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "keep": true});
    render::merge_values(&mut base, &json!({"a": {"b": 2, "c": [3], "d": null}, "new": "x"}));
    assert_eq!(base, json!({"a": {"b": 2, "c": [3]}, "keep": true, "new": "x"}));
    render::merge_values(&mut base, &json!({"a": "scalar"}));
    assert_eq!(base["a"], "scalar");
    // User values layered over each other keep their nulls, to delete the chart's defaults.
    let mut user = json!({"probe": {"x": 1}, "m": {"a": 1}});
    render::layer_values(&mut user, &json!({"probe": null, "m": {"b": 2}}));
    assert_eq!(user, json!({"probe": null, "m": {"a": 1, "b": 2}}));
}

fn files(entries: &[(&str, &str)]) -> Files {
    entries.iter().map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec())).collect()
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Chart.Name }}-{{ .Values.who }}\ndata:\n  g: {{ .Values.global.env | default \"none\" | quote }}\n";

#[test]
fn vendored_subcharts_render_in_their_values_scope() {
    let chart = files(&[
        (
            "Chart.yaml",
            "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: db\n  version: 1.x\n  repository: https://charts.example.test\n- name: cache\n  alias: redis\n  condition: redis.enabled\n  repository: https://charts.example.test\n",
        ),
        (
            "values.yaml",
            "who: parent\nglobal:\n  env: ci\ndb:\n  who: from-parent\nredis:\n  enabled: false\n",
        ),
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: parent-sees-{{ .Values.db.port }}\n",
        ),
        ("charts/db/Chart.yaml", "apiVersion: v2\nname: db\nversion: 1.2.0\n"),
        ("charts/db/values.yaml", "who: db-default\nport: 5432\n"),
        ("charts/db/templates/cm.yaml", CM),
        ("charts/cache/Chart.yaml", "apiVersion: v2\nname: cache\nversion: 1.0.0\n"),
        ("charts/cache/templates/cm.yaml", CM),
    ]);
    let out = render::render(chart.clone(), "app", &json!({}), &release("default"), "1.36")
        .expect("renders");
    assert_eq!(described(&out), ["ConfigMap parent-sees-5432", "ConfigMap db-from-parent"]);
    assert_eq!(out[1].object["data"]["g"], "ci", "global reaches the subchart");
    assert_eq!(out[1].source, "chart app: app/charts/db/templates/cm.yaml");
    let on = render::render(
        chart,
        "app",
        &json!({"redis": {"enabled": true, "who": "r"}}),
        &release("default"),
        "1.36",
    )
    .expect("renders");
    assert!(described(&on).contains(&"ConfigMap cache-r".to_string()), "{:?}", described(&on));
}

#[test]
fn what_a_chart_cannot_be_is_refused_clearly() {
    let missing_dep = files(&[(
        "Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: db\n  repository: https://charts.example.test\n",
    )]);
    let err = render::render(missing_dep, "app", &json!({}), &release("default"), "1.36")
        .unwrap_err()
        .to_string();
    assert!(err.contains("depends on chart \"db\" (https://charts.example.test), which is not vendored under app/charts/"), "{err}");
    let v1 = files(&[
        ("Chart.yaml", "apiVersion: v1\nname: old\nversion: 1.0.0\n"),
        ("requirements.yaml", "dependencies:\n- name: dep\n  repository: https://x.test\n"),
    ]);
    let err =
        render::render(v1, "old", &json!({}), &release("default"), "1.36").unwrap_err().to_string();
    assert!(err.contains("not vendored"), "{err}");
    let unknown = files(&[
        ("Chart.yaml", "apiVersion: v2\nname: app\nversion: 1.0.0\n"),
        (
            "templates/secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: {{ randAlphaNum 16 }}\n",
        ),
    ]);
    let err = render::render(unknown, "app", &json!({}), &release("default"), "1.36")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("chart app does not render: app/templates/secret.yaml:6: function \"randAlphaNum\" is not supported"), "{err}");
    let old_kube = render::render(fixture(), "web", &json!({}), &release("default"), "1.25")
        .unwrap_err()
        .to_string();
    assert!(
        old_kube.contains("requires Kubernetes >=1.26.0-0, and the virtual cluster runs v1.25.0"),
        "{old_kube}"
    );
    let none =
        render::render(files(&[("values.yaml", "")]), "x", &json!({}), &release("default"), "1.36")
            .unwrap_err()
            .to_string();
    assert!(none.contains("has no Chart.yaml"), "{none}");
    let bad_yaml = files(&[
        ("Chart.yaml", "apiVersion: v2\nname: app\nversion: 1.0.0\n"),
        ("templates/x.yaml", "kind: [\n"),
    ]);
    let err = render::render(bad_yaml, "app", &json!({}), &release("default"), "1.36")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("manifest chart app: app/templates/x.yaml is not valid YAML"), "{err}");
}

#[test]
fn a_packaged_chart_unpacks_as_its_directory_does() {
    let mut archive = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut archive, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (path, content) in fixture() {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("web/{path}"), content.as_slice()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }
    let unpacked = render::unpack(&archive, "web-0.3.1.tgz").expect("unpacks");
    assert_eq!(unpacked, fixture());
    let err = render::unpack(b"not gzip", "x.tgz").unwrap_err().to_string();
    assert!(err.starts_with("cannot read chart x.tgz: "), "{err}");
    let _: Value = json!(null);
}

#[test]
fn helmignore_leaves_files_and_directories_out_of_a_chart_directory() {
    let ignore = render::Ignore::parse(
        "# editors\n*.swp\n.vscode/\ntemplates/draft-*.yaml\n*.bak\n!keep.bak\n\n",
    );
    assert!(ignore.ignores("templates/x.yaml.swp", false));
    assert!(ignore.ignores(".vscode", true));
    assert!(!ignore.ignores(".vscode", false), "a trailing / matches directories only");
    assert!(ignore.ignores("templates/draft-1.yaml", false));
    assert!(!ignore.ignores("templates/sub/draft-1.yaml", false), "* stops at /");
    assert!(ignore.ignores("files/old.bak", false));
    assert!(!ignore.ignores("files/keep.bak", false), "a later ! keeps it");
    assert!(!ignore.ignores("templates/deployment.yaml", false));

    let dir = tempfile::tempdir().expect("temp dir");
    let chart = dir.path();
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: app\nversion: 1.0.0\n")
        .unwrap();
    std::fs::write(chart.join(".helmignore"), "templates/draft-*.yaml\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n",
    )
    .unwrap();
    std::fs::write(chart.join("templates/draft-x.yaml"), "{{ unfinished }}\n").unwrap();
    let files = read_local(chart, "app").expect("reads");
    assert!(
        !files.contains_key("templates/draft-x.yaml"),
        "{:?}",
        files.keys().collect::<Vec<_>>()
    );
    let out =
        render::render(files, "app", &json!({}), &release("default"), "1.36").expect("renders");
    assert_eq!(described(&out), ["ConfigMap kept"]);
}
