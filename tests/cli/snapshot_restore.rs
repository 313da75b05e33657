//! `vc snapshot`, `vc restore`, `vc create --from-snapshot` and `vc clone` as real processes
//! against the fake, whose exec endpoint runs the engine's snapshot and restore over a
//! datastore stand-in per PVC.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fakekube::FakeKube;
use fakekube::exec::SnapshotFault;

use crate::support::{Run, Sandbox, Vc, fake_host};

fn vc(sandbox: &Sandbox, args: &[&str]) -> Run {
    Vc::new(sandbox).args(args).run()
}

/// The datastore claim of cluster `name` in its own namespace.
fn datastore(fake: &FakeKube, name: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    fake.datastore(&format!("vc-{name}"), &format!("data-{name}-0"))
}

/// A running cluster `name` whose datastore holds `keys` entries, one of them large.
fn seeded(fake: &FakeKube, sandbox: &Sandbox, name: &str, keys: usize) {
    vc(sandbox, &["create", name, "--no-connect"]).code(0);
    let (ns, claim) = (format!("vc-{name}"), format!("data-{name}-0"));
    for i in 0..keys {
        let key = format!("/registry/configmaps/default/cm-{i:04}");
        fake.datastore_put(
            &ns,
            &claim,
            key.as_bytes(),
            format!("value {i}\0binary\u{7f}").as_bytes(),
        );
    }
    // Pseudo-random, so compression cannot shrink it away.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fake.datastore_put(&ns, &claim, b"/registry/secrets/default/big", &big);
}

/// Requests that change the host (a rights review is a create that stores nothing).
fn write_count(fake: &FakeKube) -> usize {
    fake.requests()
        .iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch" | "other"))
        .filter(|r| !r.path.contains("selfsubject"))
        .count()
}

#[test]
fn snapshot_then_restore_under_a_new_name_keeps_every_entry() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "src", 50);
    let file = sandbox.dir.path().join("src.vcsnap");
    let file_arg = file.display().to_string();

    let taken = vc(&sandbox, &["snapshot", "src", "--to", &file_arg, "-o", "json"]);
    taken.code(0);
    let result = taken.json();
    assert_eq!(result["entries"], 51, "{result}");
    assert_eq!(result["file"], file_arg.as_str());
    let (metadata, trailer) =
        vc::snapshot::format::verify(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(metadata.cluster, "src");
    assert_eq!(metadata.namespace, "vc-src");
    assert_eq!(trailer.entries, 51);
    assert_eq!(result["sha256"], trailer.sha256.as_str());

    let restored = vc(&sandbox, &["restore", &file_arg, "--name", "copy", "--no-connect"]);
    restored.code(0);
    assert!(restored.stderr.contains("virtual cluster \"copy\" is ready"), "{}", restored.stderr);
    assert_eq!(datastore(&fake, "copy"), datastore(&fake, "src"), "entry for entry");
    // The restore container waited in Init and finished; the pod then started.
    assert_eq!(fake.exec().init_exit("vc-copy", "copy-0", "vc-restore"), Some(0));
    let sts = fake.get("statefulsets", "vc-copy", "copy").unwrap();
    let spec: serde_json::Value =
        serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap())
            .unwrap();
    assert!(spec.is_object(), "the new cluster has its own record");
    // The source is untouched.
    assert_eq!(datastore(&fake, "src").len(), 51);
}

#[test]
fn create_from_snapshot_is_the_same_restore() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "seed", 3);
    let file = sandbox.dir.path().join("seed.vcsnap");
    vc(&sandbox, &["snapshot", "seed", "--to", &file.display().to_string()]).code(0);
    vc(
        &sandbox,
        &["create", "pr-1", "--from-snapshot", &file.display().to_string(), "--no-connect"],
    )
    .code(0);
    assert_eq!(datastore(&fake, "pr-1"), datastore(&fake, "seed"));
}

#[test]
fn restore_without_a_name_uses_the_snapshots_and_refuses_an_existing_one() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "same", 2);
    let file = sandbox.dir.path().join("same.vcsnap");
    vc(&sandbox, &["snapshot", "same", "--to", &file.display().to_string()]).code(0);
    let before = write_count(&fake);
    let refused = vc(&sandbox, &["restore", &file.display().to_string(), "--no-connect"]);
    refused.code(6);
    assert!(refused.stderr.contains("\"same\" already exists"), "{}", refused.stderr);
    assert_eq!(write_count(&fake), before, "nothing written");
}

#[test]
fn clone_copies_a_running_cluster_without_a_file() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "prod-like", 20);
    let cloned = vc(&sandbox, &["clone", "prod-like", "rehearsal", "--no-connect"]);
    cloned.code(0);
    assert_eq!(datastore(&fake, "rehearsal"), datastore(&fake, "prod-like"));
    let leftovers: Vec<_> = std::fs::read_dir(sandbox.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("vcsnap"))
        .collect();
    assert!(leftovers.is_empty(), "no file on disk: {leftovers:?}");
}

#[test]
fn a_corrupt_snapshot_is_refused_before_any_request() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "src", 5);
    let file = sandbox.dir.path().join("src.vcsnap");
    vc(&sandbox, &["snapshot", "src", "--to", &file.display().to_string()]).code(0);
    let good = std::fs::read(&file).unwrap();

    let truncated = sandbox.dir.path().join("truncated.vcsnap");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let mut flipped_bytes = zstd::decode_all(good.as_slice()).unwrap();
    let at = flipped_bytes.windows(7).position(|w| w == b"value 3").unwrap();
    flipped_bytes[at] = b'V';
    let flipped = sandbox.dir.path().join("flipped.vcsnap");
    std::fs::write(&flipped, zstd::encode_all(flipped_bytes.as_slice(), 3).unwrap()).unwrap();
    let foreign = sandbox.dir.path().join("foreign.vcsnap");
    std::fs::write(&foreign, b"apiVersion: v1\nkind: List\n").unwrap();

    fake.clear_requests();
    for (path, says) in
        [(&truncated, "truncated"), (&flipped, "SHA-256"), (&foreign, "not a vc snapshot")]
    {
        let run = vc(
            &sandbox,
            &["restore", &path.display().to_string(), "--name", "bad", "--no-connect"],
        );
        run.code(1);
        assert!(run.stderr.contains(says), "{}: {}", path.display(), run.stderr);
        assert!(run.stderr.contains("nothing was created"), "{}", run.stderr);
        assert_eq!(
            run.stderr.lines().filter(|l| !l.is_empty()).count(),
            1,
            "one line: {}",
            run.stderr
        );
    }
    assert!(
        fake.requests().is_empty(),
        "not one request reached the host: {:?}",
        fake.requests().len()
    );
}

#[test]
fn restoring_onto_an_older_or_a_skipped_minor_is_refused_before_any_write() {
    let (fake, sandbox) = fake_host();
    vc(&sandbox, &["create", "old", "--kubernetes-version", "1.33", "--no-connect"]).code(0);
    let file = sandbox.dir.path().join("old.vcsnap");
    vc(&sandbox, &["snapshot", "old", "--to", &file.display().to_string()]).code(0);
    let before = write_count(&fake);
    let skip = vc(
        &sandbox,
        &["restore", &file.display().to_string(), "--name", "n", "--kubernetes-version", "1.35"],
    );
    skip.code(2);
    assert!(skip.stderr.contains("skips minor versions"), "{}", skip.stderr);
    let down = vc(
        &sandbox,
        &["restore", &file.display().to_string(), "--name", "n", "--kubernetes-version", "1.32"],
    );
    down.code(2);
    assert!(down.stderr.contains("older 1.32 is refused"), "{}", down.stderr);
    assert_eq!(write_count(&fake), before);
    let up = vc(
        &sandbox,
        &[
            "restore",
            &file.display().to_string(),
            "--name",
            "n",
            "--kubernetes-version",
            "1.34",
            "--no-connect",
        ],
    );
    up.code(0);
    let sts = fake.get("statefulsets", "vc-n", "n").unwrap();
    assert_eq!(sts["metadata"]["annotations"]["vc.dev/kubernetes-version"], "v1.34.0");
}

#[test]
fn an_interrupted_snapshot_leaves_no_file() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "slow", 5);
    fake.exec().set_rate_limit(Some(256 * 1024));
    let dir = sandbox.dir.path().join("out");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("slow.vcsnap");
    let child = std::process::Command::new(crate::support::VC)
        .args(["snapshot", "slow", "--to", &file.display().to_string()])
        .env("KUBECONFIG", sandbox.kubeconfig())
        .env("HOME", sandbox.home())
        .env("XDG_STATE_HOME", sandbox.state())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fake.exec().opened() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let partial: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(partial.len(), 1, "a temporary file while it streams");
    assert!(!file.exists());
    let pid = i32::try_from(child.id()).unwrap();
    // SIGINT, as Ctrl-C sends.
    std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!file.exists(), "no file under the final name");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "and no temporary file left");
}

#[test]
fn snapshot_of_a_missing_cluster_is_not_found() {
    let (_fake, sandbox) = fake_host();
    let run = vc(&sandbox, &["snapshot", "ghost", "--to", "x.vcsnap"]);
    run.code(3);
    assert!(!Path::new("x.vcsnap").exists());
}

/// Serves `body` over HTTP/1.1 on loopback to every request; with `cut`, sends the full
/// Content-Length but only that many bytes, then closes the connection.
fn serve(body: Vec<u8>, cut: Option<usize>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/seed.vcsnap", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[..cut.unwrap_or(body.len())]);
        }
    });
    url
}

#[test]
fn restore_streams_from_an_http_url_and_refuses_one_that_drops_midway() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "web", 10);
    let file = sandbox.dir.path().join("web.vcsnap");
    vc(&sandbox, &["snapshot", "web", "--to", &file.display().to_string()]).code(0);
    let bytes = std::fs::read(&file).unwrap();

    let dropping = serve(bytes.clone(), Some(bytes.len() / 2));
    fake.clear_requests();
    let refused = vc(&sandbox, &["restore", &dropping, "--name", "dropped", "--no-connect"]);
    refused.code(1);
    assert!(refused.stderr.contains("truncated"), "{}", refused.stderr);
    assert!(refused.stderr.contains("nothing was created"), "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().filter(|l| !l.is_empty()).count(), 1, "{}", refused.stderr);
    assert!(fake.requests().is_empty(), "no request reached the host");

    let good = serve(bytes, None);
    vc(&sandbox, &["restore", &good, "--name", "from-url", "--no-connect"]).code(0);
    assert_eq!(datastore(&fake, "from-url"), datastore(&fake, "web"));
}

/// Whether cluster `name` is gone from the host, or on its way (its namespace terminating).
fn removed(fake: &FakeKube, name: &str) -> bool {
    let ns = format!("vc-{name}");
    fake.get("statefulsets", &ns, name).is_none()
        || fake.get("namespaces", "", &ns).is_some_and(|n| n["status"]["phase"] == "Terminating")
}

#[test]
fn clone_writes_nothing_when_the_source_fails_after_sending_everything() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "src", 20);
    // The source's whole archive arrives and matches its own trailer, but its engine then
    // reports failure: the new cluster's engine must not have restored it.
    fake.exec().set_snapshot_fault(Some(SnapshotFault::FailAfterWriting));
    let run = vc(&sandbox, &["clone", "src", "dst", "--no-connect"]);
    run.code(1);
    assert!(run.stderr.contains("the engine's snapshot failed"), "{}", run.stderr);
    assert!(run.stderr.contains("its objects were deleted"), "{}", run.stderr);
    assert!(datastore(&fake, "dst").is_empty(), "no entry reached the new datastore");
    assert!(removed(&fake, "dst"), "the new cluster is removed");
    assert_eq!(datastore(&fake, "src").len(), 21, "the source is untouched");
}

#[test]
fn clone_writes_nothing_when_the_source_stream_is_cut() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "src", 20);
    fake.exec().set_snapshot_fault(Some(SnapshotFault::CutAfter(1024 * 1024)));
    let run = vc(&sandbox, &["clone", "src", "dst", "--no-connect"]);
    run.code(1);
    assert!(run.stderr.contains("snapshot"), "{}", run.stderr);
    assert!(datastore(&fake, "dst").is_empty(), "no entry reached the new datastore");
    assert!(removed(&fake, "dst"), "the new cluster is removed");
}

#[test]
fn restore_reads_a_snapshot_from_stdin() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "src", 30);
    let file = sandbox.dir.path().join("src.vcsnap");
    vc(&sandbox, &["snapshot", "src", "--to", &file.display().to_string()]).code(0);
    let bytes = std::fs::read(&file).unwrap();

    let piped = Vc::new(&sandbox)
        .args(["restore", "-", "--name", "piped", "--no-connect"])
        .stdin(bytes.clone())
        .run();
    piped.code(0);
    assert_eq!(datastore(&fake, "piped"), datastore(&fake, "src"), "entry for entry");

    // Without --name, the snapshot's own name; it exists, so nothing is written.
    fake.clear_requests();
    let taken = Vc::new(&sandbox).args(["restore", "-", "--no-connect"]).stdin(bytes).run();
    taken.code(6);
    assert_eq!(write_count(&fake), 0, "nothing written");
}

#[test]
fn a_foreign_stdin_is_refused_before_any_request() {
    let (fake, sandbox) = fake_host();
    let run = Vc::new(&sandbox)
        .args(["restore", "-", "--name", "x", "--no-connect"])
        .stdin(b"apiVersion: v1\nkind: List\n".to_vec())
        .run();
    run.code(1);
    assert!(run.stderr.contains("stdin: not a vc snapshot"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was created"), "{}", run.stderr);
    assert!(fake.requests().is_empty(), "not one request reached the host");
}

#[test]
fn a_truncated_or_corrupt_stdin_writes_nothing_and_removes_the_new_cluster() {
    let (fake, sandbox) = fake_host();
    seeded(&fake, &sandbox, "src", 30);
    let file = sandbox.dir.path().join("src.vcsnap");
    vc(&sandbox, &["snapshot", "src", "--to", &file.display().to_string()]).code(0);
    let good = std::fs::read(&file).unwrap();
    let mut flipped = zstd::decode_all(good.as_slice()).unwrap();
    let at = flipped.windows(7).position(|w| w == b"value 3").unwrap();
    flipped[at] = b'V';
    let flipped = zstd::encode_all(flipped.as_slice(), 3).unwrap();

    for (name, bytes, says) in
        [("cut", good[..good.len() * 3 / 4].to_vec(), "truncated"), ("flipped", flipped, "SHA-256")]
    {
        let run = Vc::new(&sandbox)
            .args(["restore", "-", "--name", name, "--no-connect"])
            .stdin(bytes)
            .run();
        run.code(1);
        assert!(run.stderr.contains(says), "{name}: {}", run.stderr);
        assert!(run.stderr.contains("its objects were deleted"), "{name}: {}", run.stderr);
        assert!(datastore(&fake, name).is_empty(), "{name}: no entry reached the datastore");
        assert!(removed(&fake, name), "{name}: the new cluster is removed");
    }
}

#[test]
fn a_snapshot_waits_for_a_control_plane_that_is_still_starting() {
    // The syncer container runs for two seconds before it is ready, as after a fresh create
    // whose readiness vc proved before the kubelet's probe did.
    let fake = FakeKube::builder().ready_delay(Duration::from_secs(2)).start();
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.kubeconfig().parent().unwrap()).unwrap();
    fake.write_kubeconfig(sandbox.kubeconfig(), "kind-host").unwrap();
    vc(&sandbox, &["create", "fresh", "--no-wait"]).code(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let running = || {
        fake.get("pods", "vc-fresh", "fresh-0").is_some_and(|p| {
            p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == "syncer" && c["state"]["running"].is_object())
        })
    };
    while !running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let file = sandbox.dir.path().join("fresh.vcsnap");
    let taken = vc(&sandbox, &["snapshot", "fresh", "--to", &file.display().to_string()]);
    taken.code(0);
    assert!(file.exists());

    // A paused cluster has no syncer at all: refused at once.
    vc(&sandbox, &["pause", "fresh"]).code(0);
    let started = std::time::Instant::now();
    let refused = vc(&sandbox, &["snapshot", "fresh", "--to", &file.display().to_string()]);
    refused.code(1);
    assert!(refused.stderr.contains("no running control plane"), "{}", refused.stderr);
    assert!(started.elapsed() < Duration::from_secs(20), "not waited for");
}

#[test]
fn a_copy_does_not_claim_the_sources_ingress_host() {
    let (fake, sandbox) = fake_host();
    let expose = ["--expose", "ingress=web.example.com"];
    vc(&sandbox, &[&["create", "web", "--no-connect"][..], &expose].concat()).code(0);
    assert!(fake.get("ingresses", "vc-web", "web").is_some());
    let file = sandbox.dir.path().join("web.vcsnap").display().to_string();
    vc(&sandbox, &["snapshot", "web", "--to", &file]).code(0);
    vc(&sandbox, &["restore", &file, "--name", "copy", "--no-connect"]).code(0);
    assert!(fake.get("ingresses", "vc-copy", "copy").is_none(), "the copy has no Ingress");
    let sts = fake.get("statefulsets", "vc-copy", "copy").unwrap();
    let spec: serde_json::Value =
        serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap())
            .unwrap();
    assert!(spec.get("expose").is_none(), "{spec}");
}
