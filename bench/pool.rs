//! Warm pool figures against the fake API server: the time of `vc create --from-pool` (claim
//! plus connect, the whole process) over 50 claims, p50 and p95, and the refill time per member
//! as the keeper records it. Prints figures; asserts nothing about time.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fakekube::FakeKube;
use serde_json::Value;

#[path = "../tests/cli/tls.rs"]
#[allow(dead_code)] // The bench uses part of the test stand-in.
mod tls;

const VC: &str = env!("CARGO_BIN_EXE_vc");
const CLAIMS: usize = 50;

struct Bench {
    fake: FakeKube,
    dir: tempfile::TempDir,
}

impl Bench {
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

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&self.vc(args).1.stdout).expect("json")
    }

    /// Names of the pool's members that are ready and unclaimed.
    fn ready_members(&self, pool: &str) -> Vec<String> {
        self.fake
            .list("statefulsets", None)
            .into_iter()
            .filter(|s| s["metadata"]["labels"]["vc.dev/pool"] == pool)
            .filter(|s| s["metadata"]["labels"]["vc.dev/claimed-as"].is_null())
            .filter(|s| s["status"]["readyReplicas"].as_i64().unwrap_or(0) >= 1)
            .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    }

    fn wait_ready(&self, pool: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.ready_members(pool).len() < count {
            assert!(Instant::now() < deadline, "pool {pool} did not fill");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn percentiles(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    println!(
        "{name:<52} n={:<3} p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms",
        samples.len(),
        at(50.0) * 1000.0,
        at(95.0) * 1000.0,
        at(100.0) * 1000.0
    );
}

fn main() {
    println!("vc pool benchmarks (fake API server on loopback, pods ready after 20 ms)");
    let fake = FakeKube::builder().ready_delay(Duration::from_millis(20)).start();
    let dir = tempfile::tempdir().expect("temp dir");
    fake.write_kubeconfig(dir.path().join("kubeconfig"), "bench").expect("kubeconfig");
    let bench = Bench { fake, dir };
    let api = tls::VirtualApi::start("bench");

    let size = CLAIMS.to_string();
    bench.vc(&["pool", "create", "bench", "--size", &size, "--max-surge", &size, "-q"]);
    bench.wait_ready("bench", CLAIMS);
    for member in bench.ready_members("bench") {
        let namespace = format!("vc-{member}");
        bench.fake.set_port_forward_target(&namespace, &format!("{member}-0"), 8443, api.addr());
        bench.fake.put(api.pki.engine_secret(&namespace, &member)).expect("engine Secret");
    }

    let mut whole = Vec::new();
    let mut claim_only = Vec::new();
    let mut connect = Vec::new();
    for i in 0..CLAIMS {
        let name = format!("job-{i}");
        let (took, output) = bench.vc(&["create", &name, "--from-pool", "bench", "-o", "json"]);
        let result: Value = serde_json::from_slice(&output.stdout).expect("json");
        assert!(result["hostName"].is_string(), "claimed, not created: {result}");
        whole.push(took.as_secs_f64());
        claim_only.push(result["timings"]["applying"].as_f64().unwrap_or_default());
        connect.push(result["timings"]["connected"].as_f64().unwrap_or_default());
        bench.vc(&["disconnect", &name, "-q"]);
    }
    percentiles("vc create --from-pool, whole process", whole);
    percentiles("  the claim (LIST + guarded write)", claim_only);
    percentiles("  the connect (forwarder up, kubeconfig merged)", connect);

    // Refill: one keeper pass starts up to --max-surge replacements; the next records each
    // one's time from creation to ready.
    let started = Instant::now();
    bench.vc(&["pool", "keep", "--once", "-q"]);
    bench.wait_ready("bench", CLAIMS);
    let refilled = started.elapsed();
    bench.vc(&["pool", "keep", "--once", "-q"]);
    let described = bench.json(&["pool", "describe", "bench", "-o", "json"]);
    let refill: Vec<f64> = described["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["state"] == "Ready")
        .filter_map(|m| m["readySeconds"].as_f64())
        .collect();
    percentiles("refill time per member (creation to ready, keeper)", refill);
    println!(
        "{:<52} {CLAIMS} members in {:.1} s (one pass, surge {CLAIMS})",
        "refill of the whole pool",
        refilled.as_secs_f64()
    );
}
