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
