//! Benchmarks of the `vc` binary against the fake API server with instant readiness: start-up
//! time, the time `vc create` itself takes, `vc list` with 500 virtual clusters, and the time
//! from `vc connect` to a working `kubectl get ns`. Prints figures; asserts nothing about time.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fakekube::FakeKube;
use serde_json::json;

#[path = "../tests/cli/tls.rs"]
#[allow(dead_code)] // The bench uses part of the test stand-in.
mod tls;

const VC: &str = env!("CARGO_BIN_EXE_vc");

struct Bench {
    fake: FakeKube,
    dir: tempfile::TempDir,
}

impl Bench {
    fn new(fake: FakeKube) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fake.write_kubeconfig(dir.path().join("kubeconfig"), "bench").expect("kubeconfig");
        Self { fake, dir }
    }

    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn vc(&self, args: &[&str]) -> (Duration, Output) {
        let started = Instant::now();
        let output = Command::new(VC)
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .output()
            .expect("run vc");
        let took = started.elapsed();
        assert!(
            output.status.success(),
            "vc {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (took, output)
    }
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    println!(
        "{name:<44} n={:<3} min {:>7.1} ms  median {:>7.1} ms  mean {:>7.1} ms  max {:>7.1} ms",
        samples.len(),
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        mean,
        ms(samples[samples.len() - 1])
    );
}

fn statefulset(i: usize) -> serde_json::Value {
    let name = format!("c{i:03}");
    let ns = format!("vc-{name}");
    let labels = json!({"app": "vcluster", "release": name, "app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": name});
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "annotations": {"vc.dev/created-at": "2026-01-01T00:00:00Z", "vc.dev/kubernetes-version": "v1.33.4",
                                     "vc.dev/spec": "{\"kubernetesVersion\":\"1.33\"}"}},
        "spec": {"replicas": 1, "serviceName": format!("{name}-headless"),
                 "selector": {"matchLabels": {"app": "vcluster", "release": name}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster-oss:0.36.1"}]}}},
        "status": {"replicas": 1, "readyReplicas": 1}
    })
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    println!("vc benchmarks (fake API server on loopback, instant readiness)");

    let bench = Bench::new(FakeKube::builder().ready_delay(Duration::ZERO).start());
    let startup: Vec<Duration> = (0..30).map(|_| bench.vc(&["--version"]).0).collect();
    summary("vc --version (process start-up)", startup);

    let mut create_wall = Vec::new();
    let mut create_ready = Vec::new();
    for i in 0..15 {
        let name = format!("b{i}");
        let (took, output) = bench.vc(&["create", &name, "--no-connect", "-o", "json"]);
        create_wall.push(took);
        let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        let phases: f64 = ["applying", "scheduled", "initialized", "apiserver", "ready"]
            .iter()
            .filter_map(|p| result["timings"][p].as_f64())
            .sum();
        create_ready.push(Duration::from_secs_f64(phases));
    }
    summary("vc create, whole process (vc's own time)", create_wall);
    summary("vc create, apply + watch phases", create_ready);

    let objects: Vec<serde_json::Value> = (0..500).map(statefulset).collect();
    let bench = Bench::new(
        FakeKube::builder().ready_delay(Duration::ZERO).controllers(false).objects(objects).start(),
    );
    let list: Vec<Duration> = (0..15)
        .map(|_| {
            let (took, output) = bench.vc(&["list", "-o", "json"]);
            let items: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
            assert_eq!(items.as_array().map(Vec::len), Some(500));
            took
        })
        .collect();
    summary("vc list -o json, 500 clusters", list);
    let table: Vec<Duration> = (0..15).map(|_| bench.vc(&["list"]).0).collect();
    summary("vc list (table), 500 clusters", table);

    connect_figures();
    race_figures();
}

/// vc's own overhead once the virtual API answers: `vc create` against a control plane whose
/// `/readyz` answers at once through the fake's port-forward (the pod runs but never turns
/// Ready and no `vc-<name>` is written, so the race alone ends the wait), from `/readyz`
/// answering to the process returning with a working context.
fn race_figures() {
    let fake = FakeKube::builder().ready_delay(Duration::ZERO).start();
    let api = tls::VirtualApi::start("bench");
    fake.set_engine_secret(false);
    fake.set_engine_certs(Some(&api.pki.admin_conf()));
    let bench = Bench::new(fake);
    let mut after_api = Vec::new();
    let mut to_ready = Vec::new();
    for i in 0..10 {
        let name = format!("r{i}");
        let namespace = format!("vc-{name}");
        bench.fake.set_behaviour(&name, fakekube::PodBehaviour::NeverReady);
        bench.fake.set_port_forward_target(&namespace, &format!("{name}-0"), 8443, api.addr());
        let (took, output) = bench.vc(&["create", &name, "-o", "json"]);
        let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        let phase = |p: &str| result["timings"][p].as_f64().unwrap_or_default();
        let until_api: f64 =
            ["applying", "scheduled", "initialized", "apiserver"].iter().map(|p| phase(p)).sum();
        after_api.push(took.saturating_sub(Duration::from_secs_f64(until_api)));
        to_ready.push(Duration::from_secs_f64(phase("ready")));
        bench.vc(&["disconnect", &name, "-q"]);
    }
    summary("vc create: /readyz answered to /version checked", to_ready);
    summary("vc create: /readyz answered to process exit", after_api);
}

/// `vc connect` (background forward + kubeconfig merge) until `kubectl get ns` answers through
/// it, against a TLS stand-in for the virtual API server behind the fake's port-forward.
fn connect_figures() {
    let fake = FakeKube::builder().ready_delay(Duration::ZERO).start();
    let api = tls::VirtualApi::start("bench");
    let bench = Bench::new(fake);
    let mut to_kubectl = Vec::new();
    let mut connect_only = Vec::new();
    for i in 0..10 {
        let name = format!("k{i}");
        let namespace = format!("vc-{name}");
        bench.vc(&["create", &name, "--no-connect", "-q"]);
        bench.fake.set_port_forward_target(&namespace, &format!("{name}-0"), 8443, api.addr());
        bench.fake.put(api.pki.engine_secret(&namespace, &name)).expect("engine Secret");
        let started = Instant::now();
        let (took, _) = bench.vc(&["connect", &name, "-q"]);
        let listed = Command::new("kubectl")
            .args(["get", "ns", "-o", "name"])
            .env("KUBECONFIG", bench.kubeconfig())
            .output()
            .expect("kubectl");
        assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
        to_kubectl.push(started.elapsed());
        connect_only.push(took);
        bench.vc(&["disconnect", &name, "-q"]);
    }
    summary("vc connect (forwarder up, kubeconfig merged)", connect_only);
    summary("vc connect + first kubectl get ns", to_kubectl);
}
