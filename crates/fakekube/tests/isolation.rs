//! What the isolation work relies on: EndpointSlices, the `kubernetes` Service / Endpoints /
//! EndpointSlice of a kubeadm host, ServiceCIDRs, node pod CIDRs, and NetworkPolicy
//! validation with the real 422 bodies.

mod common;

use common::{get, http, post};
use fakekube::FakeKube;
use serde_json::{Value, json};

fn netpol(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec})
}

const NETPOLS: &str = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";

#[test]
fn endpointslices_are_served_like_any_type() {
    let fk = FakeKube::start();
    let groups = get(&fk, "/apis").json();
    assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == "discovery.k8s.io"));
    let list = get(&fk, "/apis/discovery.k8s.io/v1").json();
    let entry = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "endpointslices")
        .unwrap();
    assert_eq!(
        (entry["kind"].as_str(), entry["namespaced"].as_bool()),
        (Some("EndpointSlice"), Some(true))
    );
    assert!(get(&fk, "/openapi/v3").json()["paths"]["apis/discovery.k8s.io/v1"].is_object());
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    });
    let created = post(&fk, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", &slice);
    assert_eq!(created.code, 201, "{}", created.text());
    let listed = get(&fk, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb").json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["kind"], "EndpointSliceList");
    let watched = get(&fk, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?watch=1&timeoutSeconds=1&labelSelector=kubernetes.io%2Fservice-name%3Dweb").lines();
    assert_eq!(watched.len(), 1);
    assert_eq!(watched[0]["object"]["endpoints"][0]["addresses"][0], "10.244.0.5");
}

#[test]
fn default_namespace_has_the_kubernetes_service_and_endpoints() {
    let fk = FakeKube::start();
    let svc = fk.get("services", "default", "kubernetes").unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    assert_eq!(
        svc["metadata"]["labels"],
        json!({"component": "apiserver", "provider": "kubernetes"})
    );
    let ep = fk.get("endpoints", "default", "kubernetes").unwrap();
    assert_eq!(
        ep["subsets"],
        json!([{"addresses": [{"ip": "172.18.0.2"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
    );
    let slice = fk.get("endpointslices", "default", "kubernetes").unwrap();
    assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["endpoints"],
        json!([{"addresses": ["172.18.0.2"], "conditions": {"ready": true}}])
    );
    assert_eq!(slice["ports"], json!([{"name": "https", "port": 6443, "protocol": "TCP"}]));

    fk.set_api_endpoints(&[("192.168.5.10", 8443), ("192.168.5.11", 8443)]);
    let ep = fk.get("endpoints", "default", "kubernetes").unwrap();
    assert_eq!(
        ep["subsets"][0]["addresses"],
        json!([{"ip": "192.168.5.10"}, {"ip": "192.168.5.11"}])
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8443);
    let slice = fk.get("endpointslices", "default", "kubernetes").unwrap();
    assert_eq!(slice["endpoints"].as_array().unwrap().len(), 2);
    assert_eq!(slice["endpoints"][1]["addresses"][0], "192.168.5.11");
    assert_eq!(slice["ports"][0]["port"], 8443);
}

#[test]
fn service_cidr_and_node_pod_cidrs_exist() {
    let fk = FakeKube::start();
    let cidr = get(&fk, "/apis/networking.k8s.io/v1/servicecidrs/kubernetes");
    assert_eq!(cidr.code, 200);
    assert_eq!(cidr.json()["spec"]["cidrs"], json!(["10.96.0.0/12"]));
    let node = fk.get("nodes", "", "fake-node").unwrap();
    assert_eq!(node["spec"]["podCIDR"], "10.244.0.0/24");
    assert_eq!(node["spec"]["podCIDRs"], json!(["10.244.0.0/24"]));
}

#[test]
fn ip_block_except_outside_cidr_is_422_with_the_real_body() {
    let fk = FakeKube::start();
    let body = netpol(
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/8"]}}]}]}),
    );
    let r = post(&fk, NETPOLS, &body);
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "NetworkPolicy.networking.k8s.io \"deny\" is invalid: spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
            "reason": "Invalid",
            "details": {"name": "deny", "group": "networking.k8s.io", "kind": "NetworkPolicy", "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`", "field": "spec.egress[0].to[0].ipBlock.except[0]"}
            ]},
            "code": 422,
        })
    );
    assert!(fk.get("networkpolicies", "default", "deny").is_none());
}

#[test]
fn network_policy_cidrs_ports_and_protocols_are_validated() {
    let fk = FakeKube::start();
    let body = netpol(
        "bad",
        json!({"podSelector": {}, "ingress": [{
            "from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}],
            "ports": [{"protocol": "ICMP", "port": 70000}, {"port": 90, "endPort": 80}],
        }]}),
    );
    let r = post(&fk, NETPOLS, &body);
    assert_eq!(r.code, 422);
    let causes = r.json()["details"]["causes"].clone();
    assert_eq!(
        causes,
        json!([
            {"reason": "FieldValueNotSupported", "message": "Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"", "field": "spec.ingress[0].ports[0].protocol"},
            {"reason": "FieldValueInvalid", "message": "Invalid value: 70000: must be between 1 and 65535, inclusive", "field": "spec.ingress[0].ports[0].port"},
            {"reason": "FieldValueInvalid", "message": "Invalid value: 80: must be greater than or equal to `port`", "field": "spec.ingress[0].ports[1].endPort"},
            {"reason": "FieldValueInvalid", "message": "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)", "field": "spec.ingress[0].from[0].ipBlock.cidr"},
        ])
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("NetworkPolicy.networking.k8s.io \"bad\" is invalid: [")
    );

    let good = netpol(
        "good",
        json!({"podSelector": {}, "egress": [{
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12"]}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"port": 1000, "endPort": 2000}],
        }]}),
    );
    assert_eq!(post(&fk, NETPOLS, &good).code, 201);
    // Updates are validated too.
    let patch = json!({"spec": {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]}});
    let r = http(
        &fk,
        "PATCH",
        &format!("{NETPOLS}/good"),
        "application/merge-patch+json",
        &patch.to_string(),
    );
    assert_eq!(r.code, 422, "{}", r.text());
}
