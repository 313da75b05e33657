//! Where the cluster runs and how it is reached and stored, against the fake host: placement
//! on the control plane and in the engine's configuration, round-tripping through the values
//! file, the record and `describe -o json`; bad values refused before any host contact.

use serde_json::{Value, json};

use crate::bad_input::unreachable_kubeconfig;
use crate::support::{Sandbox, Vc, fake_host as host};

fn recorded_spec(fake: &fakekube::FakeKube) -> Value {
    let sts = fake.get("statefulsets", "vc-dev", "dev").expect("StatefulSet dev");
    serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap()).unwrap()
}

/// The engine configuration `vc` wrote into the Secret `vc-config-dev`.
fn engine_config(fake: &fakekube::FakeKube) -> Value {
    use base64::Engine as _;
    let secret = fake.get("secrets", "vc-dev", "vc-config-dev").expect("Secret vc-config-dev");
    let encoded = secret["data"]["config.yaml"].as_str().expect("config.yaml");
    let text = base64::engine::general_purpose::STANDARD.decode(encoded).expect("base64");
    serde_saphyr::from_str(std::str::from_utf8(&text).expect("UTF-8")).expect("YAML")
}

#[test]
fn placement_round_trips_and_is_enforced() {
    let (fake, sandbox) = host();
    let values = sandbox.home().join("values.yaml");
    std::fs::write(
        &values,
        "placement:\n  nodeSelector:\n    pool: ci\n  tolerations: [\"dedicated=ci:NoSchedule\"]\n  priorityClassName: ci-low\n",
    )
    .unwrap();
    let args = [
        "create",
        "dev",
        "--no-connect",
        "--no-wait",
        "-f",
        values.to_str().unwrap(),
        "--node-selector",
        "kubernetes.io/arch=amd64",
        "--toleration",
        "spot:NoExecute",
        "--runtime-class",
        "gvisor",
    ];
    Vc::new(&sandbox).args(args).run().code(0);
    let expected = json!({
        "nodeSelector": {"kubernetes.io/arch": "amd64", "pool": "ci"},
        "tolerations": ["dedicated=ci:NoSchedule", "spot:NoExecute"],
        "runtimeClassName": "gvisor",
        "priorityClassName": "ci-low",
    });
    assert_eq!(recorded_spec(&fake)["placement"], expected);

    let sts = fake.get("statefulsets", "vc-dev", "dev").unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], expected["nodeSelector"]);
    assert_eq!(pod["runtimeClassName"], "gvisor");
    assert_eq!(pod["priorityClassName"], "ci-low");
    assert_eq!(
        pod["tolerations"],
        json!([
            {"key": "dedicated", "operator": "Equal", "value": "ci", "effect": "NoSchedule"},
            {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
        ])
    );

    let config = engine_config(&fake);
    let pods = &config["sync"]["toHost"]["pods"];
    assert_eq!(pods["enforceTolerations"], expected["tolerations"]);
    assert_eq!(pods["runtimeClassName"], "gvisor");
    assert_eq!(pods["priorityClassName"], "ci-low");
    assert_eq!(config["sync"]["fromHost"]["nodes"]["selector"]["labels"], expected["nodeSelector"]);

    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run();
    described.code(0);
    assert_eq!(described.json()["spec"]["placement"], expected);
    assert_eq!(described.json()["enforced"], expected);
    let text = Vc::new(&sandbox).args(["describe", "dev"]).run();
    text.code(0);
    assert!(text.stdout.contains("Enforced on every pod:"), "{}", text.stdout);
    assert!(
        text.stdout.contains("tolerations:      dedicated=ci:NoSchedule, spot:NoExecute"),
        "{}",
        text.stdout
    );
}

#[test]
fn bad_hosting_values_are_refused_before_contacting_the_host() {
    let sandbox = Sandbox::new();
    unreachable_kubeconfig(&sandbox);
    let values = sandbox.home().join("values.yaml");
    std::fs::write(&values, "placement:\n  runtimeClassName: G_Visor\n").unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("node selector without a value", vec!["--node-selector", "pool"]),
        ("node selector with a bad key", vec!["--node-selector", "a b=c"]),
        ("toleration with an unknown effect", vec!["--toleration", "spot:Sometimes"]),
        ("toleration with two values", vec!["--toleration", "a=b=c"]),
        ("bad priority class", vec!["--priority-class", "Low Priority"]),
        ("bad runtime class in a values file", vec!["-f", values.to_str().unwrap()]),
    ];
    let mut transcript = String::new();
    for (what, extra) in cases {
        let mut args = vec!["create", "dev"];
        args.extend(extra);
        let run = Vc::new(&sandbox).args(&args).run();
        assert_eq!(run.code, Some(2), "{what}: {run:?}");
        assert!(run.stdout.is_empty(), "{what}: nothing on stdout");
        assert_eq!(run.stderr.lines().count(), 1, "{what}: one line: {}", run.stderr);
        transcript.push_str(&format!("## {what}\n{}", run.stderr));
    }
    insta::assert_snapshot!(crate::support::filter(&transcript, &sandbox));
}
