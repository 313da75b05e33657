//! Manifests applied inside a new virtual cluster (`vc create --apply`, spec `manifests`): they
//! land in the virtual API server's stand-in, in order, with server-side apply; a failing one is
//! named and the cluster stays.

use serde_json::{Value, json};

use crate::connect::Env;
use crate::tls::VirtualApi;

/// Makes `name`'s namespace look like vc's own and serves `api` as its control plane, before the
/// create (as `create_connects_by_default` does).
pub(crate) fn prepare(env: &Env, name: &str, api: &VirtualApi) {
    let labels = json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": name});
    env.fake
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": format!("vc-{name}"), "labels": labels}}))
        .expect("namespace");
    env.serve(name, api);
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

fn managers(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|f| f["manager"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[test]
fn create_applies_manifests_inside_once_ready() {
    let env = Env::new();
    let api = VirtualApi::start("inside-shop");
    prepare(&env, "shop", &api);
    let dir = env.sandbox.dir.path().join("stack");
    std::fs::create_dir_all(&dir).unwrap();
    // The custom resource comes first in the files and the namespace last: vc orders them.
    std::fs::write(
        dir.join("1-widget.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: shop\nspec:\n  size: 3\n",
    )
    .unwrap();
    std::fs::write(dir.join("2-crd.yaml"), CRD).unwrap();
    std::fs::write(
        dir.join("3-app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: shop\ndata:\n  greeting: hello\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata: {}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    )
    .unwrap();
    let values = env.sandbox.dir.path().join("values.yaml");
    // A path in the values file is relative to the file.
    std::fs::write(&values, "manifests:\n- stack\n- |\n  apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: robot\n    namespace: shop\n").unwrap();

    let created = env.vc(&["create", "shop", "-f", values.to_str().unwrap(), "-o", "json"]);
    created.code(0);
    let result = created.json();
    assert!(result["timings"]["provisioning"].is_number(), "{result}");
    assert!(result["timings"]["connected"].is_number(), "{result}");
    assert!(created.stderr.contains("applied 6 objects inside"), "{}", created.stderr);

    let inside = &api.inner;
    let app = inside.get("configmaps", "shop", "app").expect("ConfigMap shop/app inside");
    assert_eq!(app["data"]["greeting"], "hello");
    assert!(managers(&app).contains(&"vc".to_string()), "{app}");
    assert!(inside.get("configmaps", "default", "plain").is_some(), "no namespace: default");
    assert!(inside.get("serviceaccounts", "shop", "robot").is_some(), "the inline manifest");
    let widget = inside.get("widgets.example.com", "shop", "w").expect("the custom resource");
    assert_eq!(widget["spec"]["size"], 3);
    assert!(env.fake.get("configmaps", "shop", "app").is_none(), "nothing on the host");

    // The record keeps the sources; describe shows them.
    let described = env.vc(&["describe", "shop", "-o", "json"]).json();
    let recorded = described["spec"]["manifests"].as_array().expect("manifests recorded");
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0], dir.display().to_string());

    // Idempotent: applying again over what is there changes nothing and succeeds.
    let again =
        env.vc(&["create", "shop", "-f", values.to_str().unwrap(), "--upsert", "--no-connect"]);
    again.code(0);
    env.vc(&["disconnect", "shop"]).code(0);
}

#[test]
fn a_failing_manifest_is_named_and_the_cluster_stays() {
    let env = Env::new();
    let api = VirtualApi::start("inside-bad");
    prepare(&env, "bad", &api);
    let file = env.sandbox.dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n",
    )
    .unwrap();
    let run = env.vc(&["create", "bad", "--apply", file.to_str().unwrap(), "--no-connect"]);
    run.code(1);
    let error = run.stderr.lines().last().unwrap_or_default().to_string();
    assert!(error.contains("virtual cluster \"bad\" is ready, but applying ConfigMap \"Not_Valid\" in namespace \"default\""), "{}", run.stderr);
    assert!(error.contains("bad.yaml (document 2)"), "{error}");
    assert!(error.contains("metadata.name: Invalid value: \"Not_Valid\""), "{error}");
    assert!(error.contains("stays in namespace \"vc-bad\""), "{error}");
    assert!(api.inner.get("configmaps", "default", "fine").is_some(), "the one before it applied");
    assert!(env.fake.get("statefulsets", "vc-bad", "bad").is_some(), "the cluster is kept");

    // A custom resource whose definition is missing names what to do.
    std::fs::write(&file, "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n")
        .unwrap();
    let run =
        env.vc(&["create", "bad", "--upsert", "--apply", file.to_str().unwrap(), "--no-connect"]);
    run.code(1);
    assert!(
        run.stderr.contains("serves no kind \"Gadget\" in \"example.com/v1\""),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_manifests_are_refused_before_the_host_hears_of_the_cluster() {
    let env = Env::new();
    let file = env.sandbox.dir.path().join("nokind.yaml");
    std::fs::write(&file, "apiVersion: v1\nmetadata:\n  name: x\n").unwrap();
    env.fake.clear_requests();
    let run = env.vc(&["create", "early", "--apply", file.to_str().unwrap()]);
    run.code(2);
    assert!(
        run.stderr.contains("nokind.yaml is not a Kubernetes object: it has no kind"),
        "{}",
        run.stderr
    );
    let missing = env.vc(&["create", "early", "--apply", "/nonexistent/stack"]);
    missing.code(2);
    assert!(
        missing.stderr.contains("cannot read manifest /nonexistent/stack"),
        "{}",
        missing.stderr
    );
    let fine = env.sandbox.dir.path().join("fine.yaml");
    std::fs::write(&fine, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n").unwrap();
    let no_wait = env.vc(&["create", "early", "--apply", fine.to_str().unwrap(), "--no-wait"]);
    no_wait.code(2);
    assert!(env.fake.requests().is_empty(), "no request: {:?}", env.fake.requests());
}
