//! The real kubectl against the fake: discovery, `get` (Table output), `apply --server-side`
//! (with its server-side field validation check), an apply conflict, and `get -w`.
//! Fails, rather than skips, when kubectl is missing. `FAKEKUBE_KUBECTL=/path/to/kubectl` pins
//! the binary (e.g. a 1.32 build instead of a version dispatcher).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fakekube::FakeKube;
use serde_json::json;

/// `FAKEKUBE_KUBECTL` if set (to pin a version), else `kubectl` on PATH or in /usr/bin.
fn kubectl_binary() -> PathBuf {
    if let Some(pinned) = std::env::var_os("FAKEKUBE_KUBECTL") {
        let pinned = PathBuf::from(pinned);
        assert!(pinned.is_file(), "FAKEKUBE_KUBECTL={} is not a file", pinned.display());
        return pinned;
    }
    let candidates = [PathBuf::from("/usr/bin/kubectl"), PathBuf::from("/usr/local/bin/kubectl")];
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("kubectl")).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(candidates)
        .find(|p| p.is_file())
        .expect("kubectl is required for this test and was not found on PATH or in /usr/bin")
}

struct Kubectl {
    bin: PathBuf,
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(fk: &FakeKube) -> Self {
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("config");
        fk.write_kubeconfig(&kubeconfig, "fake").unwrap();
        Kubectl { bin: kubectl_binary(), home, kubeconfig }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const STATEFULSET: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 1
  serviceName: web
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
";

#[test]
fn kubectl_get_apply_and_watch() {
    let fk = FakeKube::builder().ready_delay(Duration::ZERO).start();
    let k = Kubectl::new(&fk);

    let namespaces = k.ok(&["get", "namespaces"]);
    let header: Vec<&str> = namespaces.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "AGE"], "{namespaces}");
    assert!(
        namespaces.lines().any(|l| l.starts_with("default ") && l.contains("Active")),
        "{namespaces}"
    );

    let version = k.ok(&["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["minor"], "33");

    let manifest = k.path("sts.yaml");
    write(&manifest, STATEFULSET);
    let applied = k.ok(&["apply", "--server-side", "-f", manifest.to_str().unwrap()]);
    assert_eq!(applied.trim(), "statefulset.apps/web serverside-applied");
    assert!(
        fk.requests()
            .iter()
            .any(|r| r.verb == "apply" && r.query.contains("fieldValidation=Strict")),
        "kubectl found server-side field validation in the OpenAPI v3 document: {:?}",
        fk.requests()
    );

    let pods = k.ok(&["get", "pods"]);
    assert!(
        pods.lines().any(|l| l.starts_with("web-0") && l.contains("1/1") && l.contains("Running")),
        "{pods}"
    );
    let sts = k.ok(&["get", "sts", "web", "-o", "jsonpath={.status.readyReplicas}"]);
    assert_eq!(sts, "1");

    // Another manager changing an owned field without --force-conflicts is refused.
    write(&manifest, &STATEFULSET.replace("replicas: 1", "replicas: 3"));
    let conflict = k.run(&[
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    assert!(!conflict.status.success());
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("conflict with \"kubectl\"") && stderr.contains(".spec.replicas"),
        "{stderr}"
    );
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(fk.count("pods", Some("default")), 3);

    // `get -w` prints the current rows, then one per event.
    let mut child = k
        .command(&["get", "configmaps", "-w", "--request-timeout=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first =
        rx.recv_timeout(Duration::from_secs(10)).expect("kubectl get -w printed the header");
    assert!(first.starts_with("NAME"), "{first}");
    while fk.count_requests("watch", "/configmaps") == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    fk.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched", "namespace": "default"}, "data": {"a": "b"}}))
        .unwrap();
    let mut seen = Vec::new();
    let event = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no watch event; saw {seen:?}"));
        if line.starts_with("watched") {
            break line;
        }
        seen.push(line);
    };
    assert!(event.split_whitespace().nth(1) == Some("1"), "{event}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kubectl_reports_real_errors() {
    let fk = FakeKube::start();
    let k = Kubectl::new(&fk);
    let missing = k.run(&["get", "configmap", "nope"]);
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error from server (NotFound): configmaps \"nope\" not found"
    );
    fk.forbid(Some("POST"), "/api/v1/namespaces", "alice");
    let forbidden = k.run(&["create", "namespace", "x"]);
    assert!(!forbidden.status.success());
    assert!(String::from_utf8_lossy(&forbidden.stderr).contains(
        "namespaces is forbidden: User \"alice\" cannot create resource \"namespaces\" in API group \"\" at the cluster scope"
    ));
}

#[test]
fn kubectl_typed_generators_work_over_protobuf() {
    let fk = FakeKube::start();
    let k = Kubectl::new(&fk);
    assert_eq!(k.ok(&["create", "namespace", "gen"]).trim(), "namespace/gen created");
    k.ok(&["create", "configmap", "cm", "-n", "gen", "--from-literal=a=b"]);
    k.ok(&["create", "secret", "generic", "s", "-n", "gen", "--from-literal=pw=hunter2"]);
    k.ok(&["create", "serviceaccount", "robot", "-n", "gen"]);
    let ns = fk.get("namespaces", "", "gen").unwrap();
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert!(ns["metadata"].get("generateName").is_none());
    assert_eq!(fk.get("configmaps", "gen", "cm").unwrap()["data"], json!({"a": "b"}));
    let secret = fk.get("secrets", "gen", "s").unwrap();
    assert_eq!(
        (secret["type"].as_str(), secret["data"]["pw"].as_str()),
        (Some("Opaque"), Some("aHVudGVyMg=="))
    );
    assert!(fk.get("serviceaccounts", "gen", "robot").is_some());
}

const PROBE_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: probes.fakecrd-probe.example.com}
spec:
  group: fakecrd-probe.example.com
  scope: Namespaced
  names: {plural: probes, singular: probe, kind: Probe, shortNames: [prb]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [ttl]
            properties:
              ttl: {type: string, pattern: '^[0-9]+[smhd]$'}
              replicas: {type: integer, default: 1}
"#;

/// What kubectl 1.32 printed for the same files against a v1.36 kube-apiserver.
#[test]
fn kubectl_sees_custom_resource_columns_and_schema_errors() {
    let fk = FakeKube::start();
    let k = Kubectl::new(&fk);
    let crd = k.path("crd.yaml");
    write(&crd, PROBE_CRD);
    k.ok(&["apply", "-f", crd.to_str().unwrap()]);
    let doc = |name: &str, spec: &str| {
        let p = k.path(&format!("{name}.yaml"));
        write(
            &p,
            &format!(
                "apiVersion: fakecrd-probe.example.com/v1alpha1\nkind: Probe\nmetadata: {{name: {name}}}\nspec: {spec}\n"
            ),
        );
        p
    };
    let good = doc("kc", "{ttl: 2h, replicas: 3}");
    let out = k.ok(&["apply", "--server-side", "-f", good.to_str().unwrap()]);
    assert_eq!(out.trim(), "probe.fakecrd-probe.example.com/kc serverside-applied");
    let table = k.ok(&["get", "prb", "kc"]);
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "PHASE", "REPLICAS", "AGE"], "{table}");
    assert_eq!(lines[1][..2], ["kc", "3"], "{table}");

    let stderr = |args: &[&str]| {
        let out = k.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    let bad = doc("kcbad", "{ttl: 2 hours}");
    let invalid = "The Probe \"kcbad\" is invalid: spec.ttl: Invalid value: \"2 hours\": spec.ttl in body should match '^[0-9]+[smhd]$'";
    assert_eq!(stderr(&["apply", "--server-side", "-f", bad.to_str().unwrap()]), invalid);
    assert_eq!(stderr(&["create", "-f", bad.to_str().unwrap()]), invalid);
    let unknown = doc("kcunk", "{ttl: 2h, bogus: 1}");
    let unknown = unknown.to_str().unwrap();
    assert_eq!(
        stderr(&["apply", "--server-side", "-f", unknown]),
        "Error from server: failed to create typed patch object (default/kcunk; fakecrd-probe.example.com/v1alpha1, Kind=Probe): .spec.bogus: field not declared in schema"
    );
    let client_side = stderr(&["apply", "-f", unknown]);
    assert!(
        client_side.ends_with("Probe in version \"v1alpha1\" cannot be handled as a Probe: strict decoding error: unknown field \"spec.bogus\""),
        "{client_side}"
    );
    assert!(
        client_side.starts_with("Error from server (BadRequest): error when creating"),
        "{client_side}"
    );
}
