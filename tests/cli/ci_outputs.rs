//! CI outputs: with `GITHUB_OUTPUT` set, `create` and `connect` append the cluster's outputs;
//! with `GITHUB_STEP_SUMMARY` set, `create` appends a one-line summary; `-o json` carries the
//! same fields.

use std::collections::BTreeMap;

use serde_json::json;

use crate::connect::Env;
use crate::support::Vc;
use crate::tls::VirtualApi;

/// The `key=value` lines of an output file.
fn outputs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn create_and_connect_write_github_outputs_and_a_summary() {
    let env = Env::new();
    let api = VirtualApi::start("inside-ci");
    let labels = json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "ci"});
    env.fake
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "vc-ci", "labels": labels}}))
        .expect("namespace");
    env.serve("ci", &api);
    let output = env.sandbox.dir.path().join("github-output");
    let summary = env.sandbox.dir.path().join("github-summary.md");
    std::fs::write(&output, "earlier=kept\n").unwrap();

    let created = Vc::new(&env.sandbox)
        .args(["create", "ci", "-o", "json"])
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .run();
    created.code(0);
    let result = created.json();
    let written = std::fs::read_to_string(&output).unwrap();
    let lines = outputs(&written);
    assert_eq!(lines[0], ("earlier".to_string(), "kept".to_string()), "appended: {written}");
    let keys: Vec<&str> = lines[1..].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["name", "namespace", "context", "kubeconfig", "server"], "{written}");
    let values: BTreeMap<String, String> = lines[1..].iter().cloned().collect();
    assert_eq!(values["name"], "ci");
    assert_eq!(values["namespace"], "vc-ci");
    assert_eq!(values["context"], "vc-ci");
    assert_eq!(values["kubeconfig"], env.sandbox.kubeconfig().display().to_string());
    assert!(values["server"].starts_with("https://127.0.0.1:"), "{written}");
    // -o json carries the same fields with the same values.
    for key in ["name", "namespace", "context", "kubeconfig", "server"] {
        assert_eq!(result[key], values[key].as_str(), "{key}: {result}");
    }
    // The kubeconfig output is a file with the context, usable as KUBECONFIG.
    let listed =
        env.kubectl(std::path::Path::new(&values["kubeconfig"]), &["get", "ns", "-o", "name"]);
    crate::connect::assert_lists_virtual_namespaces(&listed, "inside-ci");

    let line = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("vc: virtual cluster `ci` (Kubernetes "), "{line}");
    assert!(line.contains("ready in namespace `vc-ci`, context `vc-ci`"), "{line}");
    for phase in ["applying", "ready", "connected"] {
        assert!(line.contains(&format!("{phase} ")), "{phase}: {line}");
    }

    // connect appends the same outputs again (a later step of the same job).
    std::fs::write(&output, "").unwrap();
    let connected = Vc::new(&env.sandbox)
        .args(["connect", "ci", "-o", "json"])
        .env("GITHUB_OUTPUT", &output)
        .run();
    connected.code(0);
    let again: BTreeMap<String, String> =
        outputs(&std::fs::read_to_string(&output).unwrap()).into_iter().collect();
    assert_eq!(again, values, "connect reports the same cluster");
    let json = connected.json();
    for key in ["name", "namespace", "context", "kubeconfig", "server"] {
        assert_eq!(json[key], again[key].as_str(), "{key}: {json}");
    }
    env.vc(&["disconnect", "ci"]).code(0);

    // An address the user exposes (`--server`): the same outputs, that address as the server,
    // and no forward port in the JSON.
    std::fs::write(&output, "").unwrap();
    let exposed = format!("https://127.0.0.1:{}", api.addr().port());
    let direct = Vc::new(&env.sandbox)
        .args(["connect", "ci", "--server", &exposed, "-o", "json"])
        .env("GITHUB_OUTPUT", &output)
        .run();
    direct.code(0);
    let json = direct.json();
    assert_eq!(json["server"], exposed.as_str(), "{json}");
    assert_eq!(json.get("localPort"), None, "{json}");
    let direct_outputs: BTreeMap<String, String> =
        outputs(&std::fs::read_to_string(&output).unwrap()).into_iter().collect();
    assert_eq!(direct_outputs["server"], exposed);
    assert_eq!(direct_outputs["context"], "vc-ci");
    env.vc(&["disconnect", "ci"]).code(0);

    // Without the variables nothing is written anywhere.
    std::fs::remove_file(&output).unwrap();
    env.vc(&["connect", "ci"]).code(0);
    assert!(!output.exists());
}

#[test]
fn an_unwritable_output_file_is_a_warning_not_a_failure() {
    let env = Env::new();
    let output = env.sandbox.dir.path().join("missing-dir").join("output");
    let created = Vc::new(&env.sandbox)
        .args(["create", "nowhere", "--no-connect"])
        .env("GITHUB_OUTPUT", &output)
        .run();
    created.code(0);
    assert!(created.stderr.contains("cannot write the step outputs to"), "{}", created.stderr);
    assert!(created.stderr.contains("(GITHUB_OUTPUT)"), "{}", created.stderr);
}
