//! `-v` logs every HTTP call (method, path, status, time) on stderr, `-vv` also kube's own
//! events and the bodies; without `-v`, or with `-q`, nothing of the sort; stdout carries only the data.

use crate::support::{Vc, fake_host};

#[test]
fn verbose_logs_http_calls_on_stderr_only() {
    let (_fake, sandbox) = fake_host();
    let plain = Vc::new(&sandbox).args(["list", "-o", "json"]).run();
    plain.code(0);
    assert!(!plain.stderr.contains("http:"), "{}", plain.stderr);

    let verbose = Vc::new(&sandbox).args(["list", "-o", "json", "-v"]).run();
    verbose.code(0);
    assert_eq!(verbose.stdout, plain.stdout, "stdout carries only the data");
    let calls: Vec<&str> = verbose.stderr.lines().filter(|l| l.starts_with("http: ")).collect();
    assert!(
        calls.iter().any(|l| l.starts_with("http: GET /apis/apps/v1/statefulsets?")
            && l.contains("labelSelector=app%3Dvcluster 200 ")
            && l.ends_with(" ms")),
        "{}",
        verbose.stderr
    );
    assert!(!verbose.stderr.contains("DEBUG"), "kube's events only with -vv: {}", verbose.stderr);

    let very = Vc::new(&sandbox).args(["describe", "nope", "-vv"]).run();
    very.code(3);
    assert!(very.stderr.contains("http: GET /apis/apps/v1/statefulsets?"), "{}", very.stderr);
    assert!(very.stderr.contains("DEBUG kube_client"), "{}", very.stderr);
    assert!(
        very.stderr.contains("http:   < {\"apiVersion\":\"apps/v1\",\"items\":[]"),
        "{}",
        very.stderr
    );

    // Request bodies too, and watches still stream (create waits through one).
    let created = Vc::new(&sandbox).args(["create", "dev", "--no-connect", "-vv"]).run();
    created.code(0);
    assert!(created.stderr.contains("http:   > {"), "{}", created.stderr);
    assert!(created.stderr.contains("is ready"), "{}", created.stderr);

    let quiet = Vc::new(&sandbox).args(["list", "-q", "-v"]).run();
    quiet.code(0);
    assert!(!quiet.stderr.contains("http:"), "{}", quiet.stderr);
}
