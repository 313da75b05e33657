//! Snapshot and restore throughput (MB/s) and vc's peak memory, over the fake API server's exec
//! stream, for a generated datastore of 100 MB (and 1 GB with `VC_BENCH_SNAPSHOT_GB=1`), next
//! to copying the same bytes with `kubectl exec ... cat`. Prints figures; asserts nothing about
//! time. vc runs as a child process, so its peak RSS is its own (the fake lives in this one).
//!
//! `VC_BENCH_VC=PATH` measures another vc binary (a release build, say) instead of this build's.
//!
//! The peak is the child's `VmHWM` (its own address space's high-water mark), sampled from
//! /proc until it exits. `wait4`'s `ru_maxrss` cannot be used: Linux carries the high-water
//! mark of the address space a process had before `exec` (here the copy of this process, which
//! holds the fake's whole datastore) into it, so it reports this process's size, not vc's.

use std::process::Command;
use std::time::{Duration, Instant};

use fakekube::FakeKube;

const VC: &str = env!("CARGO_BIN_EXE_vc");
/// Bytes per datastore value: about what a large ConfigMap or Secret holds.
const VALUE: usize = 512 * 1024;

struct Bench {
    fake: FakeKube,
    dir: tempfile::TempDir,
}

impl Bench {
    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs vc; returns wall time, stderr and that process's own peak RSS in bytes (its
    /// `VmHWM`: the processes the fake itself spawns for exec are not counted).
    fn vc(&self, args: &[&str]) -> (Duration, String, u64) {
        let stderr_path = self.dir.path().join("stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let started = Instant::now();
        let vc = std::env::var_os("VC_BENCH_VC").unwrap_or_else(|| VC.into());
        let mut child = Command::new(vc)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("run vc");
        let mut peak = 0;
        let status = loop {
            if let Some(hwm) = high_water_mark(child.id()) {
                peak = peak.max(hwm);
            }
            match child.try_wait().expect("wait for vc") {
                Some(status) => break status,
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let took = started.elapsed();
        let code = status.code().unwrap_or(-1);
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert_eq!(code, 0, "vc {args:?}: {text}");
        (took, text, peak)
    }
}

/// The high-water mark of `pid`'s resident memory in bytes (`VmHWM` in /proc/PID/status),
/// while it runs.
fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn fill(fake: &FakeKube, namespace: &str, claim: &str, total: usize) -> usize {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut value = vec![0u8; VALUE];
    let count = total / VALUE;
    for i in 0..count {
        for chunk in value.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        fake.datastore_put(
            namespace,
            claim,
            format!("/registry/secrets/default/s{i:06}").as_bytes(),
            &value,
        );
    }
    count * VALUE
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

fn run(size_mb: usize) {
    let fake = FakeKube::builder().ready_delay(Duration::from_millis(20)).start();
    let dir = tempfile::tempdir().expect("temp dir");
    fake.write_kubeconfig(dir.path().join("kubeconfig"), "bench").expect("kubeconfig");
    let bench = Bench { fake, dir };
    let name = format!("b{size_mb}");
    bench.vc(&["create", &name, "--no-connect"]);
    let (ns, claim) = (format!("vc-{name}"), format!("data-{name}-0"));
    let bytes = fill(&bench.fake, &ns, &claim, size_mb * 1_000_000);

    let file = bench.dir.path().join("b.vcsnap");
    let file_arg = file.display().to_string();
    let (snap, _, snap_rss) = bench.vc(&["snapshot", &name, "--to", &file_arg, "-q"]);
    let file_size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or_default();
    let restored = format!("{name}r");
    let (restore, _, restore_rss) = bench.vc(&[
        "restore",
        &file_arg,
        "--name",
        &restored,
        "--no-connect",
        "-q",
        "--timeout",
        "30m",
    ]);
    assert_eq!(
        bench.fake.datastore(&format!("vc-{restored}"), &format!("data-{restored}-0")).len(),
        bytes / VALUE
    );

    // The same bytes through `kubectl exec ... cat`, from a file in the same volume.
    let blob = bench.fake.exec().container_dir(&ns, &format!("{name}-0"), "syncer").join("blob");
    std::fs::write(&blob, vec![0x5a; bytes]).expect("write blob");
    let started = Instant::now();
    let cat = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &bench.kubeconfig().display().to_string(),
            "exec",
            "-n",
            &ns,
            &format!("{name}-0"),
            "-c",
            "syncer",
            "--",
            "cat",
            "blob",
        ])
        .current_dir(bench.dir.path())
        .output();
    let cat_line = match cat {
        Ok(out) if out.status.success() && out.stdout.len() == bytes => {
            format!("{:>8.1} MB/s", mb_per_s(bytes, started.elapsed()))
        }
        Ok(out) => format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("kubectl not run: {e}"),
    };
    println!(
        "datastore {size_mb:>5} MB ({} keys), file {:.1} MB\n  vc snapshot     {:>8.1} MB/s  {:>7.2} s  peak RSS {:>6.1} MiB\n  vc restore      {:>8.1} MB/s  {:>7.2} s  peak RSS {:>6.1} MiB\n  kubectl exec cat {cat_line} (the same bytes, raw, over the same exec endpoint)",
        bytes / VALUE,
        file_size as f64 / 1e6,
        mb_per_s(bytes, snap),
        snap.as_secs_f64(),
        snap_rss as f64 / 1048576.0,
        mb_per_s(bytes, restore),
        restore.as_secs_f64(),
        restore_rss as f64 / 1048576.0,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb = std::env::var("VC_BENCH_SNAPSHOT_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    run(mb);
    if std::env::var_os("VC_BENCH_SNAPSHOT_GB").is_some() {
        run(1000);
    }
}
