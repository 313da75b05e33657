//! The etcd datastore against the fake host: the deployed etcd and the configuration that
//! points the control plane at it, round-tripping through the values file, the record,
//! `list` and `describe -o json`; an external etcd's Secret checked before anything is
//! applied; pause and resume in order around the control plane; delete removing its claims.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Sandbox, Vc, fake_host as host};

fn recorded_spec(fake: &fakekube::FakeKube, ns: &str) -> Value {
    let sts = fake.get("statefulsets", ns, "dev").expect("StatefulSet dev");
    serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap()).unwrap()
}

fn engine_config(fake: &fakekube::FakeKube, ns: &str, name: &str) -> Value {
    use base64::Engine as _;
    let secret_name = format!("vc-config-{name}");
    let secret = fake.get("secrets", ns, &secret_name).expect("the configuration Secret");
    let encoded = secret["data"]["config.yaml"].as_str().expect("config.yaml");
    let text = base64::engine::general_purpose::STANDARD.decode(encoded).expect("base64");
    serde_saphyr::from_str(std::str::from_utf8(&text).expect("UTF-8")).expect("YAML")
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn secret(ns: &str, name: &str, keys: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> =
        keys.iter().map(|k| (k.to_string(), json!("c2VjcmV0"))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
           "type": "Opaque", "data": data})
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn etcd_is_deployed_configured_and_recorded() {
    let (fake, sandbox) = host();
    let values = sandbox.home().join("values.yaml");
    std::fs::write(&values, "datastore:\n  kind: etcd\nstorage:\n  size: 8Gi\n").unwrap();
    let args = ["create", "dev", "--no-connect", "--no-wait", "-f", values.to_str().unwrap()];
    Vc::new(&sandbox).args(args).run().code(0);

    let etcd = fake.get("statefulsets", "vc-dev", "dev-etcd").expect("StatefulSet dev-etcd");
    let container = &etcd["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.k8s.io/etcd:3.6.8-0");
    assert_eq!(
        etcd["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "8Gi"
    );
    for service in ["dev-etcd", "dev-etcd-headless"] {
        let found = fake.get("services", "vc-dev", service).unwrap_or_else(|| panic!("{service}"));
        assert_eq!(found["spec"]["selector"], json!({"app": "vcluster-etcd", "release": "dev"}));
    }
    assert!(fake.get("networkpolicies", "vc-dev", "vc-etcd-dev").is_some());
    // The engine's certificates, which etcd mounts, were applied with the cluster.
    assert!(fake.get("secrets", "vc-dev", "dev-certs").is_some());
    let config = engine_config(&fake, "vc-dev", "dev");
    assert_eq!(config["controlPlane"]["backingStore"]["etcd"]["deploy"]["enabled"], true);
    assert_eq!(config["controlPlane"]["backingStore"]["etcd"]["external"]["enabled"], false);

    assert_eq!(recorded_spec(&fake, "vc-dev")["datastore"], json!({"kind": "etcd"}));
    let listed = Vc::new(&sandbox).args(["list", "-o", "json"]).run();
    listed.code(0);
    let listed = listed.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "etcd is not a second cluster: {listed}");
    assert_eq!(listed[0]["datastore"], "etcd");
    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run();
    described.code(0);
    assert_eq!(described.json()["datastore"], "etcd");
    assert_eq!(described.json()["spec"]["datastore"], json!({"kind": "etcd"}));
    let text = Vc::new(&sandbox).args(["describe", "dev"]).run();
    assert!(text.stdout.contains("Datastore:          etcd"), "{}", text.stdout);

    // The flag gives the same record as the values file.
    let (fake, sandbox) = host();
    let args = ["create", "dev", "--no-connect", "--no-wait", "--datastore", "etcd"];
    Vc::new(&sandbox).args(args).run().code(0);
    assert_eq!(recorded_spec(&fake, "vc-dev")["datastore"], json!({"kind": "etcd"}));
    assert!(fake.get("statefulsets", "vc-dev", "dev-etcd").is_some());
}

#[test]
fn an_external_etcd_needs_its_secret_before_anything_is_applied() {
    let (fake, sandbox) = host();
    fake.put(namespace("team")).unwrap();
    let args = [
        "create",
        "dev",
        "-n",
        "team",
        "--no-connect",
        "--no-wait",
        "--datastore",
        "etcd",
        "--etcd-endpoint",
        "https://10.20.0.5:2379",
        "--etcd-tls-secret",
        "etcd-client",
    ];
    let missing = Vc::new(&sandbox).args(args).run();
    missing.code(3);
    assert!(missing.stderr.contains("\"etcd-client\" was not found"), "{}", missing.stderr);
    assert!(missing.stderr.contains("kubectl -n team create secret"), "{}", missing.stderr);
    assert_eq!(fake.count("statefulsets", Some("team")), 0, "nothing applied");
    assert_eq!(fake.count("secrets", Some("team")), 0, "nothing applied");

    fake.put(secret("team", "etcd-client", &["ca.crt", "tls.crt"])).unwrap();
    let partial = Vc::new(&sandbox).args(args).run();
    partial.code(3);
    assert!(partial.stderr.contains("lacks the keys tls.key"), "{}", partial.stderr);
    assert_eq!(fake.count("statefulsets", Some("team")), 0, "nothing applied");

    // In a namespace vc creates, the Secret cannot be there yet.
    let own = Vc::new(&sandbox)
        .args(args[..2].iter().chain(&args[4..]).copied().collect::<Vec<_>>())
        .run();
    own.code(3);
    assert!(own.stderr.contains("--namespace"), "{}", own.stderr);
    assert!(fake.get("namespaces", "", "vc-dev").is_none(), "nothing applied");

    fake.put(secret("team", "etcd-client", &["ca.crt", "tls.crt", "tls.key"])).unwrap();
    Vc::new(&sandbox).args(args).run().code(0);
    assert!(fake.get("statefulsets", "team", "dev-etcd").is_none(), "no etcd deployed");
    let sts = fake.get("statefulsets", "team", "dev").unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "etcd-client");
    assert_eq!(volume.expect("the client Secret's volume")["secret"]["secretName"], "etcd-client");
    let external =
        &engine_config(&fake, "team", "dev")["controlPlane"]["backingStore"]["etcd"]["external"];
    assert_eq!(external["enabled"], true);
    assert_eq!(external["endpoint"], "https://10.20.0.5:2379");
    assert_eq!(external["tls"]["caFile"], "/run/config/etcd-client/ca.crt");
    let expected =
        json!({"kind": "etcd", "endpoint": "https://10.20.0.5:2379", "tlsSecret": "etcd-client"});
    assert_eq!(recorded_spec(&fake, "team")["datastore"], expected);
    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run();
    described.code(0);
    assert_eq!(described.json()["spec"]["datastore"], expected);
    let text = Vc::new(&sandbox).args(["describe", "dev"]).run();
    assert!(
        text.stdout.contains("etcd at https://10.20.0.5:2379 (client Secret etcd-client)"),
        "{}",
        text.stdout
    );
}

#[test]
fn bad_etcd_values_are_refused_before_contacting_the_host() {
    let sandbox = Sandbox::new();
    crate::bad_input::unreachable_kubeconfig(&sandbox);
    let values = sandbox.home().join("values.yaml");
    std::fs::write(
        &values,
        "datastore:\n  kind: etcd\n  endpoint: http://etcd:2379\n  tlsSecret: x\n",
    )
    .unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "endpoint without etcd",
            vec!["--etcd-endpoint", "https://etcd:2379", "--etcd-tls-secret", "x"],
        ),
        (
            "endpoint without a Secret",
            vec!["--datastore", "etcd", "--etcd-endpoint", "https://etcd:2379"],
        ),
        ("Secret without an endpoint", vec!["--datastore", "etcd", "--etcd-tls-secret", "x"]),
        (
            "endpoint without a port",
            vec![
                "--datastore",
                "etcd",
                "--etcd-endpoint",
                "https://etcd",
                "--etcd-tls-secret",
                "x",
            ],
        ),
        (
            "bad Secret name",
            vec![
                "--datastore",
                "etcd",
                "--etcd-endpoint",
                "https://etcd:2379",
                "--etcd-tls-secret",
                "Etcd_Client",
            ],
        ),
        ("plain http in a values file", vec!["-f", values.to_str().unwrap()]),
        (
            "external etcd with a storage size",
            vec![
                "--datastore",
                "etcd",
                "--etcd-endpoint",
                "https://etcd:2379",
                "--etcd-tls-secret",
                "x",
                "--storage-size",
                "1Gi",
            ],
        ),
    ];
    let transcript = crate::support::create_refusals(&sandbox, cases);
    insta::assert_snapshot!(crate::support::filter(&transcript, &sandbox));
}

#[test]
fn pause_stops_etcd_after_the_control_plane_and_resume_starts_it_first() {
    let (fake, sandbox) = host();
    Vc::new(&sandbox)
        .args(["create", "dev", "-q", "--no-connect", "--datastore", "etcd"])
        .run()
        .code(0);
    let patches = |fake: &fakekube::FakeKube| -> Vec<String> {
        fake.requests()
            .into_iter()
            .filter(|r| r.verb == "patch" && r.path.contains("/statefulsets/"))
            .map(|r| r.path.rsplit('/').next().unwrap_or_default().to_string())
            .collect()
    };
    fake.clear_requests();
    Vc::new(&sandbox).args(["pause", "dev"]).run().code(0);
    assert_eq!(patches(&fake), ["dev", "dev-etcd"]);
    let etcd = fake.get("statefulsets", "vc-dev", "dev-etcd").unwrap();
    assert_eq!(etcd["spec"]["replicas"], 0);
    assert_eq!(etcd["metadata"]["annotations"]["loft.sh/paused-replicas"], "1");
    assert!(fake.get("persistentvolumeclaims", "vc-dev", "data-dev-etcd-0").is_some(), "data kept");

    fake.clear_requests();
    Vc::new(&sandbox).args(["resume", "dev"]).run().code(0);
    assert_eq!(patches(&fake), ["dev-etcd", "dev"]);
    let etcd = fake.get("statefulsets", "vc-dev", "dev-etcd").unwrap();
    assert_eq!(etcd["spec"]["replicas"], 1);
    assert!(etcd["metadata"]["annotations"].get("loft.sh/paused").is_none());
}

#[test]
fn delete_removes_the_etcd_claims() {
    let (fake, sandbox) = host();
    fake.put(namespace("team")).unwrap();
    let args = ["create", "dev", "-n", "team", "--no-connect", "--no-wait", "--datastore", "etcd"];
    Vc::new(&sandbox).args(args).run().code(0);
    wait_for("the etcd claim", || {
        fake.get("persistentvolumeclaims", "team", "data-dev-etcd-0").is_some()
    });
    Vc::new(&sandbox).args(["delete", "dev", "--yes"]).run().code(0);
    wait_for("the etcd claim to go", || {
        fake.get("persistentvolumeclaims", "team", "data-dev-etcd-0").is_none()
    });
    assert!(fake.get("statefulsets", "team", "dev-etcd").is_none());
    assert!(fake.get("services", "team", "dev-etcd").is_none());
    assert!(fake.get("persistentvolumeclaims", "team", "data-dev-0").is_none());
}

fn snapshot_of(fake: &fakekube::FakeKube, sandbox: &Sandbox, name: &str, ns: &str) -> String {
    fake.datastore_put(ns, &format!("data-{name}-0"), b"/registry/configmaps/default/seed", b"42");
    let file = sandbox.dir.path().join(format!("{name}.vcsnap")).display().to_string();
    let mut args = vec!["snapshot", name, "--to", &file];
    if ns != format!("vc-{name}") {
        args.extend(["-n", ns]);
    }
    Vc::new(sandbox).args(&args).run().code(0);
    file
}

fn metadata_datastore(file: &str) -> String {
    let (metadata, _) = vc::snapshot::format::verify(std::fs::File::open(file).unwrap()).unwrap();
    metadata.datastore
}

#[test]
fn an_etcd_cluster_snapshots_and_restores_into_etcd() {
    let (fake, sandbox) = host();
    Vc::new(&sandbox).args(["create", "src", "--no-connect", "--datastore", "etcd"]).run().code(0);
    let file = snapshot_of(&fake, &sandbox, "src", "vc-src");
    assert_eq!(metadata_datastore(&file), "etcd");
    Vc::new(&sandbox).args(["restore", &file, "--name", "copy", "--no-connect"]).run().code(0);
    assert!(fake.get("statefulsets", "vc-copy", "copy-etcd").is_some(), "the copy has its etcd");
    let sts = fake.get("statefulsets", "vc-copy", "copy").unwrap();
    let spec: Value =
        serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap())
            .unwrap();
    assert_eq!(spec["datastore"], json!({"kind": "etcd"}));
    assert_eq!(fake.exec().init_exit("vc-copy", "copy-0", "vc-restore"), Some(0));
    assert_eq!(
        fake.datastore("vc-copy", "data-copy-0")
            .get(b"/registry/configmaps/default/seed".as_slice()),
        Some(&b"42".to_vec())
    );
}

#[test]
fn a_copy_of_an_external_etcd_cluster_gets_an_etcd_of_its_own() {
    let (fake, sandbox) = host();
    fake.put(namespace("team")).unwrap();
    fake.put(secret("team", "etcd-client", &["ca.crt", "tls.crt", "tls.key"])).unwrap();
    let args = [
        "create",
        "src",
        "-n",
        "team",
        "--no-connect",
        "--datastore",
        "etcd",
        "--etcd-endpoint",
        "https://10.20.0.5:2379",
        "--etcd-tls-secret",
        "etcd-client",
    ];
    Vc::new(&sandbox).args(args).run().code(0);
    let file = snapshot_of(&fake, &sandbox, "src", "team");
    assert_eq!(metadata_datastore(&file), "etcd-external");
    Vc::new(&sandbox).args(["restore", &file, "--name", "copy", "--no-connect"]).run().code(0);
    let sts = fake.get("statefulsets", "vc-copy", "copy").unwrap();
    let spec: Value =
        serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap())
            .unwrap();
    assert_eq!(spec["datastore"], json!({"kind": "etcd"}), "never the source's etcd");
    assert!(fake.get("statefulsets", "vc-copy", "copy-etcd").is_some());
    let config = engine_config(&fake, "vc-copy", "copy");
    assert_eq!(config["controlPlane"]["backingStore"]["etcd"]["external"]["enabled"], false);
}

#[test]
fn a_create_that_times_out_names_the_etcd_pods_trouble_first() {
    let (fake, sandbox) = host();
    fake.set_image_absent("registry.k8s.io/etcd:3.6.8-0");
    fake.set_ready_delay(Duration::from_secs(600));
    let args = ["create", "dev", "--no-connect", "--datastore", "etcd", "--timeout", "3s"];
    let run = Vc::new(&sandbox).args(args).run();
    run.code(4);
    let first = run.stderr.find("the deployed etcd's pod dev-etcd-0:");
    let control = run.stderr.find("pod dev-0");
    assert!(first.is_some(), "{}", run.stderr);
    assert!(run.stderr.contains("registry.k8s.io/etcd:3.6.8-0"), "{}", run.stderr);
    assert!(control.is_none_or(|c| first < Some(c)), "{}", run.stderr);
}

#[test]
fn both_claims_fit_the_quota_with_a_large_etcd() {
    let (fake, sandbox) = host();
    let args = ["create", "dev", "--no-connect", "--datastore", "etcd", "--storage-size", "20Gi"];
    Vc::new(&sandbox).args(args).run().code(0);
    wait_for("both claims", || {
        fake.get("persistentvolumeclaims", "vc-dev", "data-dev-etcd-0").is_some()
            && fake.get("persistentvolumeclaims", "vc-dev", "data-dev-0").is_some()
    });
    let quota = fake.get("resourcequotas", "vc-dev", "vc-dev").expect("the quota");
    assert_eq!(quota["spec"]["hard"]["requests.storage"], "21Gi");
}

#[test]
fn an_upsert_cannot_change_the_datastore_but_a_restore_can() {
    let (fake, sandbox) = host();
    Vc::new(&sandbox).args(["create", "dev", "--no-connect"]).run().code(0);
    let before = fake.get("statefulsets", "vc-dev", "dev").unwrap();
    let changed = Vc::new(&sandbox)
        .args(["create", "dev", "--upsert", "--no-connect", "--datastore", "etcd"])
        .run();
    changed.code(6);
    assert!(changed.stderr.contains("keeps its data in sqlite"), "{}", changed.stderr);
    assert!(changed.stderr.contains("--from-snapshot FILE --datastore KIND"), "{}", changed.stderr);
    assert_eq!(changed.stderr.lines().count(), 1, "{}", changed.stderr);
    let after = fake.get("statefulsets", "vc-dev", "dev").unwrap();
    assert_eq!(before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"]);
    assert!(fake.get("statefulsets", "vc-dev", "dev-etcd").is_none(), "nothing applied");

    // Across kinds: a snapshot of the SQLite cluster restores into an etcd one.
    let file = snapshot_of(&fake, &sandbox, "dev", "vc-dev");
    assert_eq!(metadata_datastore(&file), "kine");
    let args = ["create", "copy", "--from-snapshot", &file, "--datastore", "etcd", "--no-connect"];
    Vc::new(&sandbox).args(args).run().code(0);
    assert!(fake.get("statefulsets", "vc-copy", "copy-etcd").is_some());
    assert_eq!(
        fake.datastore("vc-copy", "data-copy-0")
            .get(b"/registry/configmaps/default/seed".as_slice()),
        Some(&b"42".to_vec())
    );
}
