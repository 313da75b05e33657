//! Benchmark of `vc operator run` against the fake API server (pods ready at once): time until
//! N VirtualClusters applied at once are all Running, reconcile latency and API calls per
//! reconcile, then the requests per minute the operator makes in steady state, when nothing
//! changes (the goal: none beyond its watches and Lease renewals). Prints figures only.
//!
//! `VC_BENCH_OPERATOR_CLUSTERS` (default 500) and `VC_BENCH_STEADY_SECONDS` (default 60).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fakekube::FakeKube;
use serde_json::json;

const VC: &str = env!("CARGO_BIN_EXE_vc");

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN)
}

fn http_get(address: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else { return String::new() };
    let _ = write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn main() {
    let clusters = env_number("VC_BENCH_OPERATOR_CLUSTERS", 500);
    let steady = Duration::from_secs(env_number("VC_BENCH_STEADY_SECONDS", 60));
    let fake = FakeKube::builder().ready_delay(Duration::ZERO).start();
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, "bench").expect("kubeconfig");
    let crd = Command::new(VC)
        .args(["operator", "crd", "-o", "json"])
        .output()
        .expect("run vc operator crd");
    fake.put(serde_json::from_slice(&crd.stdout).expect("CRD JSON")).expect("the CRD");

    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut operator = Command::new(VC)
        .args(["operator", "run", "--identity", "bench", "--metrics-address", &address.to_string()])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vc operator run");
    while !http_get(address, "/readyz").starts_with("HTTP/1.1 200") {
        std::thread::sleep(Duration::from_millis(50));
    }

    fake.clear_requests();
    let started = Instant::now();
    for i in 0..clusters {
        let ns = format!("team-{i:03}");
        fake.put(json!({
            "apiVersion": "vc.dev/v1alpha1", "kind": "VirtualCluster",
            "metadata": { "name": "c", "namespace": ns }, "spec": {},
        }))
        .expect("a VirtualCluster");
    }
    let running = |fake: &FakeKube| {
        fake.list("virtualclusters.vc.dev", None)
            .iter()
            .filter(|o| o["status"]["phase"] == "Running")
            .count() as u64
    };
    while running(&fake) < clusters {
        assert!(started.elapsed() < Duration::from_secs(1800), "not all Running after 30 min");
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    let metrics = http_get(address, "/metrics");
    let reconciles = metric(&metrics, "vc_operator_reconciles_total ");
    let seconds = metric(&metrics, "vc_operator_reconcile_duration_seconds_sum ");
    let requests = fake.requests();
    let calls =
        requests.iter().filter(|r| r.verb != "watch" && !r.path.contains("/leases")).count();
    println!(
        "{clusters} VirtualClusters applied at once: all Running after {:.1} s",
        took.as_secs_f64()
    );
    println!(
        "reconciles {reconciles}, mean reconcile {:.1} ms, API calls per reconcile {:.1} ({calls} calls, watches and Lease excluded)",
        seconds / reconciles * 1000.0,
        calls as f64 / reconciles
    );

    std::thread::sleep(Duration::from_secs(5));
    fake.clear_requests();
    let before = metric(&http_get(address, "/metrics"), "vc_operator_reconciles_total ");
    std::thread::sleep(steady);
    let after = metric(&http_get(address, "/metrics"), "vc_operator_reconciles_total ");
    let per_minute = 60.0 / steady.as_secs_f64();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for request in fake.requests() {
        let what = if request.path.contains("/leases") {
            format!("{} lease", request.verb)
        } else {
            format!(
                "{} {}",
                request.verb,
                request
                    .path
                    .rsplit('/')
                    .nth(usize::from(request.verb != "list" && request.verb != "watch"))
                    .unwrap_or_default()
            )
        };
        *by_kind.entry(what).or_default() += 1;
    }
    println!(
        "steady state with {clusters} VirtualClusters over {} s: {:.1} reconciles/min",
        steady.as_secs(),
        (after - before) * per_minute
    );
    if by_kind.is_empty() {
        println!("  no requests at all");
    }
    for (what, count) in by_kind {
        println!("  {what:<40} {:.1}/min", count as f64 * per_minute);
    }
    let _ = Command::new("kill").args(["-TERM", &operator.id().to_string()]).status();
    let _ = operator.wait();
}
