//! `vc create` through the operator and `vc adopt`: the real binary beside a real
//! `vc operator run` process on the fake host.

use std::time::Duration;

use serde_json::{Value, json};

use crate::connect::Env;
use crate::operator::{
    Operator, RESOURCE, condition, install_crd, phase, virtual_cluster, wait_for,
};
use crate::support::{Sandbox, Vc, fake_host};
use crate::tls::VirtualApi;

/// Starts an operator and waits until it holds the Lease.
fn leading_operator(fake: &fakekube::FakeKube, sandbox: &Sandbox) -> Operator {
    let operator = Operator::start(sandbox, "one", &[]);
    wait_for("the Lease", Duration::from_secs(20), || {
        fake.get("leases", "vc-system", "vc-operator")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "one")
    });
    operator
}

/// The HTTP calls a `vc -v` run logged that wrote StatefulSets.
fn statefulset_writes(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("/statefulsets"))
        .filter(|l| ["PATCH", "POST", "PUT"].iter().any(|m| l.contains(m)))
        .collect()
}

fn owner_kind(fake: &fakekube::FakeKube, namespace: &str, name: &str) -> Value {
    fake.get("statefulsets", namespace, name)
        .map(|s| s["metadata"]["ownerReferences"][0]["kind"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn create_goes_through_the_virtual_cluster_and_connects() {
    let env = Env::new();
    install_crd(&env.fake, &env.sandbox);
    let operator = leading_operator(&env.fake, &env.sandbox);
    let api = VirtualApi::start("inside-dev");
    // The engine Secret and port-forward target are in place before the cluster exists; the
    // namespace carries vc's labels for dev, so create takes it as its own.
    let labels = json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "dev"});
    env.fake
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "vc-dev", "labels": labels}}))
        .expect("namespace");
    env.serve("dev", &api);

    let created =
        env.vc(&["create", "dev", "--ttl", "2h", "--label", "team=web", "-o", "json", "-v"]);
    created.code(0);
    let result = created.json();
    assert_eq!(result["name"], "dev");
    assert_eq!(result["namespace"], "vc-dev");
    assert_eq!(result["phase"], "Running");
    assert_eq!(result["virtualCluster"], "vc-dev/dev");
    assert_eq!(result["context"], "vc-dev");
    assert!(result["expiresAt"].is_string(), "{result:#}");
    for phase in ["applying", "ready", "connected"] {
        assert!(result["timings"][phase].is_number(), "timing {phase}: {result:#}");
    }
    assert!(
        created.stderr.contains("holds the Lease: creating a VirtualCluster"),
        "{}",
        created.stderr
    );
    assert_eq!(
        statefulset_writes(&created.stderr),
        Vec::<&str>::new(),
        "the create process applies no StatefulSet itself"
    );

    // The object carries the spec the flags built; the operator's apply made the control plane.
    let object = env.fake.get(RESOURCE, "vc-dev", "dev").expect("the VirtualCluster");
    assert_eq!(object["spec"]["ttl"], "2h");
    assert_eq!(object["spec"]["labels"]["team"], "web");
    assert_eq!(object["spec"]["quota"]["enabled"], true, "{object:#}");
    assert_eq!(object["status"]["phase"], "Running");
    assert_eq!(owner_kind(&env.fake, "vc-dev", "dev"), "VirtualCluster");
    assert!(
        env.fake
            .requests()
            .iter()
            .any(|r| r.verb == "apply" && r.path.contains("/statefulsets/dev")),
        "the operator applied the control plane"
    );
    assert_eq!(
        env.fake.count("resourcequotas", Some("vc-dev")),
        1,
        "the quota as vc create sets it"
    );

    // The working context reaches the cluster.
    let config = env.kubeconfig();
    assert_eq!(config["current-context"], "vc-dev");
    let listed = env.kubectl(&env.sandbox.kubeconfig(), &["get", "ns", "-o", "name"]);
    listed.code(0);
    assert!(listed.stdout.contains("inside-dev"), "{}", listed.stdout);

    // list tells it apart; a second create of the name refuses.
    let clusters = env.vc(&["list", "-o", "json"]).json();
    assert_eq!(clusters[0]["madeBy"], "virtualCluster", "{clusters:#}");
    env.vc(&["create", "dev", "--no-connect"]).code(6);
    env.vc(&["disconnect", "dev"]).code(0);
    drop(operator);
}

/// A Lease `vc-operator` in vc-system held by `holder`, last renewed `age` ago.
fn lease(holder: &str, age: jiff::SignedDuration) -> Value {
    let renewed = jiff::Timestamp::now() - age;
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": "vc-operator", "namespace": "vc-system" },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        },
    })
}

#[test]
fn direct_and_a_stale_lease_take_the_cli_path() {
    let (fake, sandbox) = fake_host();
    install_crd(&fake, &sandbox);
    let operator = leading_operator(&fake, &sandbox);
    let direct = Vc::new(&sandbox).args(["create", "one", "--direct", "--no-connect", "-v"]).run();
    direct.code(0);
    assert!(!statefulset_writes(&direct.stderr).is_empty(), "applied from here: {}", direct.stderr);
    assert!(fake.get(RESOURCE, "vc-one", "one").is_none(), "no VirtualCluster for --direct");
    assert_eq!(owner_kind(&fake, "vc-one", "one"), Value::Null);
    let listed = Vc::new(&sandbox).args(["list", "-o", "json"]).run().json();
    assert_eq!(listed[0]["madeBy"], "vc", "{listed:#}");
    // The operator leaves a cluster vc create made alone.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(owner_kind(&fake, "vc-one", "one"), Value::Null);
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");

    // The Lease the operator gave up has no holder; one not renewed for its duration is stale.
    for (lease, why) in [
        (None, "has no holder"),
        (Some(lease("gone", jiff::SignedDuration::from_secs(60))), "has not been renewed"),
    ] {
        if let Some(lease) = lease {
            fake.put(lease).expect("the Lease");
        }
        let name = if why.contains("holder") { "two" } else { "three" };
        let run = Vc::new(&sandbox).args(["create", name, "--no-connect", "-v"]).run();
        run.code(0);
        assert!(
            run.stderr.contains("applying the objects from here") && run.stderr.contains(why),
            "{}",
            run.stderr
        );
        assert!(fake.get(RESOURCE, &format!("vc-{name}"), name).is_none());
        assert!(fake.get("statefulsets", &format!("vc-{name}"), name).is_some());
        // --operator refuses instead, before anything is written.
        let refused =
            Vc::new(&sandbox).args(["create", "four", "--operator", "--no-connect"]).run();
        refused.code(3);
        assert!(
            refused.stderr.contains(why) && refused.stderr.contains("vc operator"),
            "{}",
            refused.stderr
        );
        assert!(fake.get("namespaces", "", "vc-four").is_none(), "nothing applied");
    }
}

#[test]
fn create_through_the_operator_refuses_what_it_cannot_take_and_deletes_its_namespace() {
    let (fake, sandbox) = fake_host();
    // Without the CRD, --operator is refused with exit 3 and the dry run contacts nothing.
    let refused = Vc::new(&sandbox).args(["create", "dev", "--operator", "--no-connect"]).run();
    refused.code(3);
    assert!(refused.stderr.contains("CRD virtualclusters.vc.dev"), "{}", refused.stderr);
    fake.clear_requests();
    let dry =
        Vc::new(&sandbox).args(["create", "dev", "--operator", "--dry-run", "-o", "json"]).run();
    dry.code(0);
    assert!(fake.requests().is_empty(), "the dry run contacts nothing");
    let list = dry.json();
    let kinds: Vec<&str> =
        list["items"].as_array().unwrap().iter().filter_map(|i| i["kind"].as_str()).collect();
    assert_eq!(kinds, ["Namespace", "VirtualCluster"], "{list:#}");
    assert_eq!(list["items"][1]["metadata"], json!({ "name": "dev", "namespace": "vc-dev" }));

    install_crd(&fake, &sandbox);
    let operator = leading_operator(&fake, &sandbox);
    // A cluster vc create made is never re-applied through a VirtualCluster.
    Vc::new(&sandbox).args(["create", "cli", "--direct", "--no-connect"]).run().code(0);
    let taken = Vc::new(&sandbox).args(["create", "cli", "--upsert", "--no-connect"]).run();
    taken.code(6);
    assert!(taken.stderr.contains("vc adopt cli"), "{}", taken.stderr);
    assert!(fake.get(RESOURCE, "vc-cli", "cli").is_none());

    // A control plane the host refuses: the operator's reason is shown, and the wait ends at
    // --timeout with exit 4, the VirtualCluster left for vc delete.
    fake.fail(Some("PATCH"), "/statefulsets/slow", 500);
    let slow = Vc::new(&sandbox).args(["create", "slow", "--no-connect", "--timeout", "3s"]).run();
    slow.code(4);
    assert!(
        slow.stderr.contains("ApplyFailed") && slow.stderr.contains("vc delete slow"),
        "{}",
        slow.stderr
    );
    fake.clear_faults();
    // Its control plane never came: vc delete finds the VirtualCluster itself.
    let deleted = Vc::new(&sandbox).args(["delete", "slow", "--yes"]).run();
    deleted.code(0);
    assert!(fake.get(RESOURCE, "vc-slow", "slow").is_none());
    assert!(fake.get("namespaces", "", "vc-slow").is_none(), "with the namespace vc made");

    // Made through the operator in a namespace of its own: vc delete removes the namespace
    // too; in a namespace vc did not make, only what the operator made goes.
    let made = Vc::new(&sandbox).args(["create", "dev", "--no-connect", "-o", "json"]).run();
    made.code(0);
    assert_eq!(made.json()["virtualCluster"], "vc-dev/dev");
    let namespace = fake.get("namespaces", "", "vc-dev").expect("the namespace vc made");
    assert_eq!(namespace["metadata"]["labels"]["vc.dev/cluster"], "dev");
    // --upsert re-applies the VirtualCluster's spec and waits for the operator's re-apply.
    let again = Vc::new(&sandbox).args(["create", "dev", "--no-connect"]).run();
    again.code(6);
    assert!(again.stderr.contains("--upsert"), "{}", again.stderr);
    let upserted = Vc::new(&sandbox)
        .args(["create", "dev", "--upsert", "--label", "tier=gold", "--no-connect"])
        .run();
    upserted.code(0);
    let object = fake.get(RESOURCE, "vc-dev", "dev").expect("the VirtualCluster");
    assert_eq!(object["spec"]["labels"]["tier"], "gold");
    assert_eq!(object["status"]["observedGeneration"], object["metadata"]["generation"]);
    let record = fake.get("statefulsets", "vc-dev", "dev").expect("the control plane");
    let spec = record["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap_or_default();
    assert!(spec.contains("gold"), "re-applied by the operator: {spec}");
    fake.put(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "team" } }))
        .expect("namespace team");
    Vc::new(&sandbox).args(["create", "shared", "-n", "team", "--no-connect"]).run().code(0);
    assert_eq!(phase(&fake, "team", "shared").as_deref(), Some("Running"));
    assert_eq!(fake.count("resourcequotas", Some("team")), 0, "no quota in a shared namespace");
    let deleted = Vc::new(&sandbox).args(["delete", "dev", "shared", "--yes"]).run();
    deleted.code(0);
    assert!(deleted.stderr.contains("and namespace vc-dev"), "{}", deleted.stderr);
    assert!(fake.get("namespaces", "", "vc-dev").is_none(), "the namespace vc made is gone");
    assert!(fake.get("namespaces", "", "team").is_some(), "the user's namespace stays");
    assert!(fake.get(RESOURCE, "team", "shared").is_none());
    drop(operator);
}

#[test]
fn adopt_hands_a_cli_cluster_to_a_virtual_cluster_that_then_cascades() {
    let (fake, sandbox) = fake_host();
    Vc::new(&sandbox).args(["create", "dev", "--ttl", "2h", "--no-connect"]).run().code(0);
    // No CRD: exit 3, naming the install.
    let refused = Vc::new(&sandbox).args(["adopt", "dev"]).run();
    refused.code(3);
    assert!(refused.stderr.contains("vc operator install"), "{}", refused.stderr);
    install_crd(&fake, &sandbox);
    // No operator: nothing would adopt it (exit 3), and nothing is written.
    fake.clear_requests();
    let idle = Vc::new(&sandbox).args(["adopt", "dev"]).run();
    idle.code(3);
    assert!(idle.stderr.contains("no operator would take"), "{}", idle.stderr);
    assert!(fake.requests().iter().all(|r| !r.is_write()), "a refusal writes nothing");
    Vc::new(&sandbox).args(["adopt", "nope"]).run().code(3);

    let operator = leading_operator(&fake, &sandbox);
    // A VirtualCluster of the name without the marker does not take it over.
    fake.put(virtual_cluster("vc-dev", "dev", json!({ "ttl": "2h" }))).expect("stored");
    wait_for("NotOwned", Duration::from_secs(20), || {
        fake.get(RESOURCE, "vc-dev", "dev")
            .is_some_and(|o| condition(&o, "Degraded")["reason"] == "NotOwned")
    });
    assert_eq!(owner_kind(&fake, "vc-dev", "dev"), Value::Null, "not taken without the marker");
    fake.remove_now(RESOURCE, "vc-dev", "dev");

    // Paused: refused (exit 6) until resumed.
    Vc::new(&sandbox).args(["pause", "dev"]).run().code(0);
    let paused = Vc::new(&sandbox).args(["adopt", "dev"]).run();
    paused.code(6);
    assert!(paused.stderr.contains("vc resume dev"), "{}", paused.stderr);
    Vc::new(&sandbox).args(["resume", "dev", "--timeout", "30s"]).run().code(0);

    // An expiry moved by vc extend is carried over as the ttl that reaches it.
    Vc::new(&sandbox).args(["extend", "dev", "--ttl", "5h"]).run().code(0);
    let before = fake.get("statefulsets", "vc-dev", "dev").expect("the control plane");
    let adopted = Vc::new(&sandbox).args(["adopt", "dev", "-o", "json"]).run();
    adopted.code(0);
    assert_eq!(adopted.json()["virtualCluster"], "vc-dev/dev", "{}", adopted.stdout);
    let object = fake.get(RESOURCE, "vc-dev", "dev").expect("the VirtualCluster");
    assert_eq!(object["metadata"]["annotations"]["vc.dev/adopt"], "true");
    let ttl = object["spec"]["ttl"].as_str().unwrap_or_default();
    assert!(ttl.starts_with("5h") || ttl.starts_with("4h59m"), "the extended expiry: {ttl}");
    let sts = fake.get("statefulsets", "vc-dev", "dev").expect("the control plane");
    assert_eq!(sts["metadata"]["ownerReferences"][0]["uid"], object["metadata"]["uid"]);
    let kept = |s: &Value, key: &str| s["metadata"]["annotations"][key].clone();
    assert_eq!(kept(&sts, "vc.dev/created-at"), kept(&before, "vc.dev/created-at"));
    // A ttl counts whole seconds: the expiry stays, rounded up to the next second at most.
    let at = |s: &Value| -> jiff::Timestamp {
        kept(s, "vc.dev/expires-at").as_str().unwrap_or_default().parse().expect("a timestamp")
    };
    let moved = at(&sts).duration_since(at(&before));
    assert!(
        moved >= jiff::SignedDuration::ZERO && moved < jiff::SignedDuration::from_secs(1),
        "the extended expiry kept: moved by {moved:?}"
    );
    wait_for("Running", Duration::from_secs(20), || {
        phase(&fake, "vc-dev", "dev").as_deref() == Some("Running")
    });
    let listed = Vc::new(&sandbox).args(["list", "-o", "json"]).run().json();
    assert_eq!(listed[0]["madeBy"], "virtualCluster", "{listed:#}");
    let again = Vc::new(&sandbox).args(["adopt", "dev"]).run();
    again.code(6);
    assert!(again.stderr.contains("already is the VirtualCluster vc-dev/dev"), "{}", again.stderr);

    // Deleting the VirtualCluster removes the cluster; the namespace vc made stays for vc.
    fake.delete(RESOURCE, "vc-dev", "dev").expect("deleted");
    wait_for("the cascade", Duration::from_secs(30), || {
        fake.get(RESOURCE, "vc-dev", "dev").is_none()
            && fake.get("statefulsets", "vc-dev", "dev").is_none()
            && fake.list("persistentvolumeclaims", Some("vc-dev")).is_empty()
            && fake.get("services", "vc-dev", "dev").is_none()
    });
    let (code, log) = operator.stop();
    assert_eq!(code, Some(0), "{log}");
}
