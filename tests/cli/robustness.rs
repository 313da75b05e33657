//! Robustness scenarios: a kubeconfig lock held by someone else (Ctrl-C while waiting for it,
//! and a stale lock), the forwarder's files after a cluster is deleted, and client certificates
//! vc's TLS stack refuses.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Run, Sandbox, Vc};

/// A kubeconfig with a host context and a context vc made for virtual cluster `dev`, so that
/// `vc disconnect --all` has an entry to remove (and a lock to take) without any host.
const CONNECTED_KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: kind-host
  cluster:
    server: https://127.0.0.1:9
- name: vc-dev
  cluster:
    server: https://127.0.0.1:10
contexts:
- name: kind-host
  context:
    cluster: kind-host
    user: kind-host
- name: vc-dev
  context:
    cluster: vc-dev
    user: vc-dev
    extensions:
    - name: vc.dev/cluster
      extension:
        name: dev
        namespace: vc-dev
        hostContext: kind-host
        hostServer: https://127.0.0.1:9
        previousContext: kind-host
current-context: vc-dev
users:
- name: kind-host
  user:
    token: host-token
- name: vc-dev
  user:
    token: dev-token
";

/// What a lock held by another kubectl or vc looks like to us: a file we did not create.
const FOREIGN_LOCK: &str = "held by another writer\n";

/// A sandbox whose kubeconfig is [`CONNECTED_KUBECONFIG`] and whose lock is already held.
fn locked_sandbox() -> (Sandbox, PathBuf) {
    let sandbox = Sandbox::new();
    let kubeconfig = sandbox.kubeconfig();
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(&kubeconfig, CONNECTED_KUBECONFIG).unwrap();
    let lock = lock_path(&kubeconfig);
    std::fs::write(&lock, FOREIGN_LOCK).unwrap();
    (sandbox, lock)
}

fn lock_path(kubeconfig: &Path) -> PathBuf {
    let mut name = kubeconfig.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// `vc ARGS` started in the background, with the same environment as [`Vc::run`].
fn spawn_vc(sandbox: &Sandbox, args: &[&str]) -> std::process::Child {
    Vc::new(sandbox).args(args).spawn()
}

/// Waits up to `limit` for `child` to exit; kills it (and fails) if it does not.
fn wait_within(mut child: std::process::Child, limit: Duration) -> (Run, Duration) {
    let started = Instant::now();
    while child.try_wait().expect("poll vc").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("reap vc");
            panic!(
                "vc still running {limit:?} after the signal\n--- stderr\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let waited = started.elapsed();
    (Run::of(child), waited)
}

// The lock wait yields to the runtime, so the Ctrl-C handler runs while vc waits.
#[test]
fn ctrl_c_while_waiting_for_the_kubeconfig_lock_exits_130_at_once() {
    let (sandbox, lock) = locked_sandbox();
    let child = spawn_vc(&sandbox, &["disconnect", "--all"]);
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill");
    assert!(killed.success(), "could not signal vc {pid}");
    let (run, waited) = wait_within(child, Duration::from_secs(3));
    run.code(130);
    assert!(waited < Duration::from_secs(1), "exited {waited:?} after Ctrl-C");
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(sandbox.kubeconfig()).unwrap(),
        CONNECTED_KUBECONFIG,
        "kubeconfig untouched"
    );
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        FOREIGN_LOCK,
        "a lock vc does not own is never removed"
    );
}

/// A lock nobody releases: vc gives up after its lock timeout (10 s, not configurable) and names
/// the lock file and how to clear it; the kubeconfig and the lock stay as they were.
#[test]
fn a_stale_kubeconfig_lock_fails_naming_the_lock_file() {
    let (sandbox, lock) = locked_sandbox();
    let started = Instant::now();
    let run = Vc::new(&sandbox).args(["disconnect", "--all"]).run();
    let waited = started.elapsed();
    run.code(1);
    assert!(waited >= Duration::from_secs(10), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    let message = run.stderr.replace('\n', " ");
    assert!(message.contains(&lock.display().to_string()), "names the lock: {message}");
    assert!(message.contains("still held after"), "{message}");
    assert!(message.contains("delete"), "says what to do: {message}");
    assert_eq!(std::fs::read_to_string(sandbox.kubeconfig()).unwrap(), CONNECTED_KUBECONFIG);
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), FOREIGN_LOCK, "the lock stays");
}

/// Every file name under the forward state directory.
fn forward_files(sandbox: &Sandbox) -> Vec<String> {
    let dir = sandbox.state().join("vc").join("forwards");
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Stops whatever this test's `vc` left running, even when an assertion failed first.
struct Disconnect<'a>(&'a Sandbox);

impl Drop for Disconnect<'_> {
    fn drop(&mut self) {
        let _ = Vc::new(self.0).args(["disconnect", "--all"]).run();
    }
}

/// A deleted cluster leaves nothing of its forward behind: no state file and no log. A plain
/// disconnect keeps both (the port for the next connect, the log for `vc connect --logs`).
#[test]
fn deleting_a_connected_cluster_removes_its_forward_log() {
    let fake = fakekube::FakeKube::builder().ready_delay(Duration::from_millis(20)).start();
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.kubeconfig().parent().unwrap()).unwrap();
    fake.write_kubeconfig(sandbox.kubeconfig(), "kind-host").unwrap();
    let _guard = Disconnect(&sandbox);
    let vc = |args: &[&str]| Vc::new(&sandbox).args(args).run();
    let api = crate::tls::VirtualApi::start("inside-dev");
    vc(&["create", "dev", "--no-connect"]).code(0);
    fake.set_port_forward_target("vc-dev", "dev-0", 8443, api.addr());
    fake.put(api.pki.engine_secret("vc-dev", "dev")).expect("engine Secret");

    vc(&["connect", "dev"]).code(0);
    let files = forward_files(&sandbox);
    assert!(files.iter().any(|f| f.ends_with(".log")), "the forwarder logs: {files:?}");
    vc(&["disconnect", "dev"]).code(0);
    let files = forward_files(&sandbox);
    assert!(files.iter().any(|f| f.ends_with(".json")), "disconnect keeps the port: {files:?}");
    assert!(files.iter().any(|f| f.ends_with(".log")), "and the log: {files:?}");

    vc(&["connect", "dev"]).code(0);
    vc(&["delete", "dev", "--yes"]).code(0);
    let files = forward_files(&sandbox);
    assert!(
        !files.iter().any(|f| f.ends_with(".log") || f.ends_with(".log.old")),
        "log left behind: {files:?}"
    );
    assert!(!files.iter().any(|f| f.ends_with(".json")), "state left behind: {files:?}");
}

/// One DER element at the start of `der`: (tag, header length, content length).
fn der_element(der: &[u8]) -> (u8, usize, usize) {
    let tag = der[0];
    match der[1] {
        short if short < 0x80 => (tag, 2, usize::from(short)),
        long => {
            let count = usize::from(long & 0x7f);
            let len = der[2..2 + count].iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
            (tag, 2 + count, len)
        }
    }
}

fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        len if len < 0x80 => out.push(u8::try_from(len).unwrap()),
        len => {
            let bytes: Vec<u8> =
                len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
            out.push(0x80 | u8::try_from(bytes.len()).unwrap());
            out.extend(bytes);
        }
    }
    out.extend(content);
    out
}

/// `cert` (DER) as an X.509 v1 certificate: the version field and the v3 extensions dropped
/// from the signed part, as a bare `openssl x509 -req` makes it. The signature no longer
/// matches, which does not matter: rustls refuses the certificate on parsing, before any check.
fn as_v1(cert: &[u8]) -> Vec<u8> {
    let (_, header, len) = der_element(cert);
    let body = &cert[header..header + len];
    let (tbs_tag, tbs_header, tbs_len) = der_element(body);
    let mut fields = &body[tbs_header..tbs_header + tbs_len];
    let mut tbs = Vec::new();
    while !fields.is_empty() {
        let (tag, h, l) = der_element(fields);
        // [0] version and [3] extensions.
        if tag != 0xa0 && tag != 0xa3 {
            tbs.extend(&fields[..h + l]);
        }
        fields = &fields[h + l..];
    }
    let mut out = der_wrap(tbs_tag, &tbs);
    out.extend(&body[tbs_header + tbs_len..]);
    der_wrap(0x30, &out)
}

/// A kubeconfig user whose client certificate is X.509 v1: kubectl takes it, rustls cannot.
/// The error names the user and the context, says what is wrong and how to re-issue it.
#[test]
fn an_x509_v1_client_certificate_is_named_with_the_fix() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "admin");
    let v3 = params.self_signed(&key).unwrap();
    let v1 = as_v1(v3.der());
    assert_ne!(v1, v3.der().to_vec());
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(&v1)
    );
    let b64 = |s: &str| STANDARD.encode(s.as_bytes());
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: https://127.0.0.1:9\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab-admin\ncurrent-context: lab\nusers:\n- name: lab-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&pem),
        b64(&key.serialize_pem()),
    );
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.kubeconfig().parent().unwrap()).unwrap();
    std::fs::write(sandbox.kubeconfig(), &kubeconfig).unwrap();

    let run = Vc::new(&sandbox).args(["list"]).run();
    run.code(1);
    let message = &run.stderr;
    assert!(message.contains("kubeconfig user \"lab-admin\""), "names the user: {message}");
    assert!(message.contains("context \"lab\""), "names the context: {message}");
    assert!(message.contains("X.509 v1"), "says what is wrong: {message}");
    assert!(message.contains("rustls"), "{message}");
    assert!(message.contains("extendedKeyUsage=clientAuth"), "says how to fix it: {message}");
    assert_eq!(message.lines().count(), 1, "one message: {message}");

    // The same key with the v3 certificate gets past building the client, to the host.
    let fixed = kubeconfig.replace(&b64(&pem), &b64(&v3.pem()));
    std::fs::write(sandbox.kubeconfig(), fixed).unwrap();
    let run = Vc::new(&sandbox).args(["list"]).run();
    run.code(5);
    assert!(!run.stderr.contains("X.509 v1"), "{}", run.stderr);
}
