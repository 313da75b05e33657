//! Isolation against the fake host: the control plane's egress pinned to the host API
//! server's endpoints read at create time (and recorded), the fallback when they cannot be
//! read, public egress closed to the host's addresses, stale isolation objects pruned on
//! `--upsert`, and no control plane applied when a guard is refused.

use std::time::Duration;

use fakekube::{FakeKube, Fault, FaultAction};
use serde_json::{Value, json};

use crate::support::{Run, Sandbox, Vc, fake_host as host};

fn create(sandbox: &Sandbox, extra: &[&str]) -> Run {
    let mut args = vec!["create", "dev", "--no-connect", "--no-wait"];
    args.extend_from_slice(extra);
    Vc::new(sandbox).args(args).run()
}

fn policy(fake: &FakeKube, name: &str) -> Value {
    fake.get("networkpolicies", "vc-dev", name).unwrap_or_else(|| panic!("policy {name}"))
}

fn recorded_spec(fake: &FakeKube) -> Value {
    let sts = fake.get("statefulsets", "vc-dev", "dev").expect("StatefulSet dev");
    serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap()).unwrap()
}

/// The egress rules of a policy that carry an ipBlock, as (cidrs, ports).
fn block_rules(policy: &Value) -> Vec<(Vec<String>, Vec<Value>)> {
    policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["to"].as_array().is_some_and(|to| to.iter().any(|p| p["ipBlock"].is_object()))
        })
        .map(|r| {
            let cidrs = r["to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["ipBlock"]["cidr"].as_str().unwrap().to_string())
                .collect();
            (cidrs, r["ports"].as_array().cloned().unwrap_or_default())
        })
        .collect()
}

#[test]
fn control_plane_egress_is_pinned_to_the_host_api_endpoints() {
    let (fake, sandbox) = host();
    let run = create(&sandbox, &[]);
    run.code(0);
    assert!(!run.stderr.contains("cannot read the host API"), "{}", run.stderr);
    let pinned =
        vec![(vec!["172.18.0.2/32".to_string()], vec![json!({"port": 6443, "protocol": "TCP"})])];
    assert_eq!(block_rules(&policy(&fake, "vc-cp-dev")), pinned);
    assert_eq!(block_rules(&policy(&fake, "vc-snapshot-dev")), pinned);
    // No rule of the control plane reaches every address.
    let cp = policy(&fake, "vc-cp-dev");
    assert!(cp["spec"]["egress"].as_array().unwrap().iter().all(|r| r["to"].is_array()), "{cp}");
    assert_eq!(recorded_spec(&fake)["isolation"]["hostApi"], json!(["172.18.0.2:6443"]));
    assert!(fake.get("networkpolicies", "vc-dev", "vc-kube-dns-dev").is_none());
    // The control-plane selector cannot be matched by a synced pod.
    assert_eq!(
        cp["spec"]["podSelector"]["matchExpressions"],
        json!([{"key": "vcluster.loft.sh/managed-by", "operator": "DoesNotExist"}])
    );

    // A host whose API server moved: --upsert reads the endpoints again.
    fake.set_api_endpoints(&[("192.168.49.2", 16443)]);
    Vc::new(&sandbox)
        .args(["create", "dev", "--upsert", "--no-connect", "--no-wait"])
        .run()
        .code(0);
    assert_eq!(
        block_rules(&policy(&fake, "vc-cp-dev")),
        vec![(
            vec!["192.168.49.2/32".to_string()],
            vec![json!({"port": 16443, "protocol": "TCP"})]
        )]
    );
    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run();
    described.code(0);
    assert_eq!(described.json()["hostApiEgress"], "192.168.49.2:16443");
}

#[test]
fn unreadable_endpoints_fall_back_to_the_api_ports_with_a_warning() {
    let (fake, sandbox) = host();
    for path in [
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        "/api/v1/namespaces/default/endpoints",
    ] {
        fake.forbid(None, path, "team-admin");
    }
    let run = create(&sandbox, &[]);
    run.code(0);
    assert!(run.stderr.contains("cannot read the host API server's endpoints"), "{}", run.stderr);
    assert!(run.stderr.contains("isolation.hostApi"), "{}", run.stderr);
    let cp = policy(&fake, "vc-cp-dev");
    let any_address: Vec<&Value> =
        cp["spec"]["egress"].as_array().unwrap().iter().filter(|r| r["to"].is_null()).collect();
    assert_eq!(
        any_address,
        [&json!({"ports": [
            {"port": 443, "protocol": "TCP"},
            {"port": 6443, "protocol": "TCP"},
            {"port": 8443, "protocol": "TCP"}
        ]})]
    );
    assert!(recorded_spec(&fake)["isolation"].get("hostApi").is_none());
    let described = Vc::new(&sandbox).args(["describe", "dev"]).run();
    described.code(0);
    assert!(
        described.stdout.contains("any address on ports 443, 6443, 8443"),
        "{}",
        described.stdout
    );
}

#[test]
fn values_file_endpoints_win_over_discovery() {
    let (fake, sandbox) = host();
    let values = sandbox.home().join("values.yaml");
    std::fs::write(&values, "isolation:\n  hostApi: [\"10.0.0.1:6443\"]\n").unwrap();
    create(&sandbox, &["-f", values.to_str().unwrap()]).code(0);
    assert_eq!(block_rules(&policy(&fake, "vc-cp-dev"))[0].0, ["10.0.0.1/32"]);
}

#[test]
fn public_egress_stays_closed_to_the_host_api_and_private_ranges() {
    let (fake, sandbox) = host();
    fake.set_api_endpoints(&[("35.1.2.3", 443)]);
    create(&sandbox, &["--allow-internet"]).code(0);
    let work = policy(&fake, "vc-work-dev");
    let public = work["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| r["to"][0]["ipBlock"].as_object().cloned())
        .expect("a public egress rule");
    assert_eq!(public["cidr"], "0.0.0.0/0");
    let except: Vec<&str> =
        public["except"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for closed in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "240.0.0.0/4",
        "35.1.2.3/32",
    ] {
        assert!(except.contains(&closed), "{closed} not closed: {except:?}");
    }
    // The fake host's pod and service ranges lie inside 10.0.0.0/8: nothing to add for them.
    assert!(!except.contains(&"10.244.0.0/24"), "{except:?}");
}

#[test]
fn upsert_removes_isolation_objects_the_new_spec_drops() {
    let (fake, sandbox) = host();
    create(&sandbox, &[]).code(0);
    // A policy an earlier release rendered, labelled for the cluster.
    fake.put(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "vc-kube-dns-dev",
            "namespace": "vc-dev",
            "labels": {"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "dev"}
        },
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}
    }))
    .unwrap();
    // And one of the user's own, which stays.
    fake.put(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "mine", "namespace": "vc-dev"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))
    .unwrap();
    Vc::new(&sandbox)
        .args(["create", "dev", "--upsert", "--no-quota", "--no-connect", "--no-wait"])
        .run()
        .code(0);
    assert!(fake.get("networkpolicies", "vc-dev", "vc-kube-dns-dev").is_none());
    assert!(fake.get("networkpolicies", "vc-dev", "mine").is_some());
    assert!(fake.get("networkpolicies", "vc-dev", "vc-cp-dev").is_some());
    assert_eq!(fake.count("resourcequotas", Some("vc-dev")), 0);
    assert_eq!(fake.count("limitranges", Some("vc-dev")), 0);
    Vc::new(&sandbox)
        .args(["create", "dev", "--upsert", "--no-isolation", "--no-connect", "--no-wait"])
        .run()
        .code(0);
    let left: Vec<String> = fake
        .list("networkpolicies", Some("vc-dev"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["mine"]);
}

#[test]
fn a_refused_guard_leaves_no_control_plane() {
    for (path, what) in [
        ("/api/v1/namespaces/vc-dev/resourcequotas", "ResourceQuota"),
        ("/apis/networking.k8s.io/v1/namespaces/vc-dev/networkpolicies/vc-cp-dev", "NetworkPolicy"),
    ] {
        let (fake, sandbox) = host();
        fake.add_fault(Fault {
            path_contains: path.to_string(),
            action: FaultAction::Forbid { user: "team-admin".to_string() },
            ..Fault::default()
        });
        let run = create(&sandbox, &[]);
        run.code(5);
        assert!(run.stderr.contains(what), "{what}: {}", run.stderr);
        assert!(
            fake.get("statefulsets", "vc-dev", "dev").is_none(),
            "{what}: control plane applied"
        );
        assert_eq!(fake.count_requests("apply", "/statefulsets/"), 0, "{what}");
        assert_eq!(fake.count_requests("apply", "/rolebindings/"), 0, "{what}");

        let cleaned = Vc::new(&sandbox)
            .args(["create", "dev", "--no-connect", "--no-wait", "--cleanup-on-failure"])
            .run();
        cleaned.code(5);
        assert!(cleaned.stderr.contains("--cleanup-on-failure"), "{}", cleaned.stderr);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while fake.get("namespaces", "", "vc-dev").is_some() && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(fake.get("namespaces", "", "vc-dev").is_none(), "{what}: namespace left");
    }
}

#[test]
fn the_role_binding_follows_its_role() {
    let (fake, sandbox) = host();
    create(&sandbox, &[]).code(0);
    let applies: Vec<String> =
        fake.requests().into_iter().filter(|r| r.verb == "apply").map(|r| r.path).collect();
    let position = |needle: &str| {
        applies
            .iter()
            .position(|p| p.contains(needle))
            .unwrap_or_else(|| panic!("{needle} applied"))
    };
    assert!(position("/roles/vc-dev") < position("/rolebindings/vc-dev"));
    for guard in ["/resourcequotas/", "/limitranges/", "/networkpolicies/", "/rolebindings/"] {
        assert!(
            position(guard) < position("/statefulsets/dev"),
            "{guard} before the control plane"
        );
    }
}
