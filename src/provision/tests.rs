//! Loading, checking and ordering manifests, without a cluster.

use super::*;

#[test]
fn a_stream_parses_into_named_objects() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: b\n    namespace: shop\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: c\n";
    let manifests = parse(text, "app.yaml").expect("parses");
    let described: Vec<String> = manifests.iter().map(Manifest::describe).collect();
    assert_eq!(
        described,
        ["ConfigMap \"a\"", "Secret \"b\" in namespace \"shop\"", "ServiceAccount \"c\""]
    );
    assert_eq!(manifests[0].source, "app.yaml (document 1)");
    assert_eq!(manifests[2].source, "app.yaml (document 2)");
    let single = parse(
        "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"x\"}}",
        "ns.json",
    )
    .expect("JSON is YAML");
    assert_eq!(single[0].source, "ns.json");
    assert!(parse("", "empty.yaml").expect("an empty file").is_empty());
}

#[test]
fn what_apply_cannot_take_is_refused_with_its_source() {
    let cases = [
        ("kind: ConfigMap\nmetadata:\n  name: a\n", "it has no apiVersion"),
        ("apiVersion: v1\nmetadata:\n  name: a\n", "it has no kind"),
        ("apiVersion: v1\nkind: ConfigMap\n", "it has no metadata.name"),
        ("apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: p-\n", "metadata.generateName"),
        ("- a\n- b\n", "a document must be a mapping"),
    ];
    for (text, why) in cases {
        let err = parse(text, "bad.yaml").expect_err(text).to_string();
        assert!(err.starts_with("manifest bad.yaml is not a Kubernetes object"), "{err}");
        assert!(err.contains(why), "{err}");
    }
    let err = parse("a: [unclosed\n", "broken.yaml").expect_err("bad YAML").to_string();
    assert!(err.starts_with("manifest broken.yaml is not valid YAML: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn namespaces_and_definitions_go_first_the_rest_in_order() {
    let text = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n";
    let manifests = parse(text, "all.yaml").expect("parses");
    let order: Vec<&str> = ordered(&manifests).iter().map(|m| m.name()).collect();
    assert_eq!(order, ["shop", "widgets.example.com", "w", "c", "s"]);
}

#[tokio::test]
async fn files_directories_and_inline_sources_load_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cm = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    std::fs::write(dir.path().join("b.yaml"), cm("from-b")).unwrap();
    std::fs::write(dir.path().join("a.yml"), cm("from-a")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let file = elsewhere.path().join("single.json");
    std::fs::write(
        &file,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"from-json"}}"#,
    )
    .unwrap();
    let sources = vec![file.display().to_string(), dir.path().display().to_string(), cm("inline")];
    let loaded = load(&sources).await.expect("loads");
    let names: Vec<&str> = loaded.iter().map(Manifest::name).collect();
    assert_eq!(names, ["from-json", "from-a", "from-b", "inline"]);
    assert_eq!(loaded[3].source, "inline manifest 3");

    let missing = load(&["/nonexistent/app.yaml".to_string()]).await.expect_err("missing");
    assert!(missing.to_string().starts_with("cannot read manifest /nonexistent/app.yaml: "));
    let empty = tempfile::tempdir().expect("temp dir");
    let none = load(&[empty.path().display().to_string()]).await.expect_err("empty directory");
    assert!(none.to_string().contains("holds no .yaml"), "{none}");
}
