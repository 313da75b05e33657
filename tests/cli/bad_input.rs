//! Bad input: a clear one-line error, a non-zero exit code, and nothing sent to the host.

use crate::support::{Sandbox, Vc};

/// A kubeconfig whose server refuses connections: any request would fail with exit 5, so
/// exit 2 proves the input was refused before contacting the host.
pub(crate) fn unreachable_kubeconfig(sandbox: &Sandbox) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: host\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: host\n  context:\n    cluster: host\n    user: host\ncurrent-context: host\nusers:\n- name: host\n  user:\n    token: abc\n"
    );
    let path = sandbox.kubeconfig();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write kubeconfig");
}

#[test]
fn refused_before_contacting_the_host() {
    let sandbox = Sandbox::new();
    unreachable_kubeconfig(&sandbox);
    let values = sandbox.dir.path().join("values.yaml");
    std::fs::write(&values, "kubernetesVersion: '1.33'\nisolation:\n  enabeld: false\n").unwrap();
    let no_claim = sandbox.dir.path().join("no-claim.yaml");
    std::fs::write(
        &no_claim,
        "engine:\n  values:\n    controlPlane:\n      statefulSet:\n        persistence:\n          volumeClaim:\n            enabled: false\n",
    )
    .unwrap();
    let ephemeral_storage = sandbox.dir.path().join("ephemeral-storage.yaml");
    std::fs::write(&ephemeral_storage, "persistence: false\nstorage:\n  className: fast\n")
        .unwrap();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("uppercase name", vec!["create".into(), "Dev".into()]),
        ("underscore", vec!["create".into(), "my_dev".into()]),
        ("too long", vec!["create".into(), "a".repeat(53)]),
        (
            "unknown version",
            vec!["create".into(), "dev".into(), "--kubernetes-version".into(), "1.12".into()],
        ),
        ("bad ttl", vec!["create".into(), "dev".into(), "--ttl".into(), "forever".into()]),
        ("bad quota", vec!["create".into(), "dev".into(), "--quota".into(), "cpu=lots".into()]),
        ("bad label", vec!["create".into(), "dev".into(), "--label".into(), "nolabel".into()]),
        (
            "misspelt values key",
            vec!["create".into(), "dev".into(), "-f".into(), values.display().to_string()],
        ),
        (
            "the engine's own switch for no volume claim",
            vec!["create".into(), "dev".into(), "-f".into(), no_claim.display().to_string()],
        ),
        (
            "missing values file",
            vec!["create".into(), "dev".into(), "-f".into(), "/nonexistent/values.yaml".into()],
        ),
        ("bad timeout", vec!["create".into(), "dev".into(), "--timeout".into(), "soon".into()]),
        ("delete bad name", vec!["delete".into(), "Dev".into(), "--yes".into()]),
        ("reserved label", vec!["create".into(), "dev".into(), "--label".into(), "app=web".into()]),
        ("bad namespace", vec!["create".into(), "dev".into(), "-n".into(), "Team_A".into()]),
        ("empty image", vec!["create".into(), "dev".into(), "--engine-image".into(), "".into()]),
        ("bad selector", vec!["list".into(), "-l".into(), "a b c".into()]),
        (
            "bad idle limit",
            vec!["create".into(), "dev".into(), "--sleep-after".into(), "a while".into()],
        ),
        (
            "restore into an ephemeral cluster",
            vec![
                "create".into(),
                "dev".into(),
                "--from-snapshot".into(),
                "seeded.vcsnap".into(),
                "--ephemeral".into(),
            ],
        ),
        (
            "ephemeral with an idle limit",
            vec![
                "create".into(),
                "dev".into(),
                "--ephemeral".into(),
                "--sleep-after".into(),
                "30m".into(),
            ],
        ),
        (
            "bad storage size",
            vec!["create".into(), "dev".into(), "--storage-size".into(), "0Gi".into()],
        ),
        (
            "bad storage class",
            vec!["create".into(), "dev".into(), "--storage-class".into(), "Fast_SSD".into()],
        ),
        (
            "storage size with ephemeral",
            vec![
                "create".into(),
                "dev".into(),
                "--ephemeral".into(),
                "--storage-size".into(),
                "10Gi".into(),
            ],
        ),
        (
            "storage in the values file of an ephemeral cluster",
            vec![
                "create".into(),
                "dev".into(),
                "-f".into(),
                ephemeral_storage.display().to_string(),
            ],
        ),
        ("pause bad name", vec!["pause".into(), "Dev".into()]),
        ("resume bad name", vec!["resume".into(), "dev_1".into()]),
        ("extend bad ttl", vec!["extend".into(), "dev".into(), "--ttl".into(), "more".into()]),
        (
            "extend bad until",
            vec!["extend".into(), "dev".into(), "--until".into(), "friday".into()],
        ),
        ("gc bad selector", vec!["gc".into(), "-l".into(), "a b c".into(), "--yes".into()]),
        (
            "bad delete selector",
            vec!["delete".into(), "-l".into(), "team in a".into(), "--yes".into()],
        ),
    ];
    let mut transcript = String::new();
    for (what, args) in cases {
        let run = Vc::new(&sandbox).args(&args).run();
        assert_eq!(run.code, Some(2), "{what}: {run:?}");
        assert!(run.stdout.is_empty(), "{what}: nothing on stdout");
        transcript.push_str(&format!("## {what}\n{}", run.stderr));
    }
    insta::assert_snapshot!(crate::support::filter(&transcript, &sandbox));
}

#[test]
fn unreachable_host_is_exit_5_and_names_the_server() {
    let sandbox = Sandbox::new();
    unreachable_kubeconfig(&sandbox);
    let started = std::time::Instant::now();
    let run = Vc::new(&sandbox).args(["list"]).run();
    run.code(5);
    assert!(
        run.stderr.contains("cannot reach the host API server http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    // Refused connections must fail fast rather than wait for a timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn missing_and_malformed_kubeconfig() {
    let sandbox = Sandbox::new();
    let missing = Vc::new(&sandbox).args(["list"]).run();
    assert_ne!(missing.code, Some(0));
    assert!(missing.stderr.contains("kubeconfig"), "{}", missing.stderr);

    let path = sandbox.kubeconfig();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let broken = "apiVersion: v1\nclusters: [\n  - name: x\n";
    std::fs::write(&path, broken).unwrap();
    let malformed = Vc::new(&sandbox).args(["list"]).run();
    malformed.code(1);
    assert!(malformed.stderr.contains("kubeconfig"), "{}", malformed.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken, "the file is left as it was");
}

#[test]
fn rbac_needs_one_grantee_and_valid_names() {
    let sandbox = Sandbox::new();
    let none = Vc::new(&sandbox).args(["rbac", "team"]).run();
    none.code(2);
    assert!(none.stderr.contains("--user"), "{}", none.stderr);
    let bad = Vc::new(&sandbox).args(["rbac", "team", "--service-account", "runner"]).run();
    bad.code(2);
    assert!(bad.stderr.contains("NAMESPACE/NAME"), "{}", bad.stderr);
    let namespace = Vc::new(&sandbox).args(["rbac", "Team", "--user", "a"]).run();
    namespace.code(2);
    let two = Vc::new(&sandbox).args(["rbac", "team", "--user", "a", "--group", "b"]).run();
    two.code(2);
}
