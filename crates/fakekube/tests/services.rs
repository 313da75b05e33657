//! Service allocation as kube-apiserver does it: node ports from 30000-32767 for NodePort and
//! LoadBalancer Services, kept across updates, a taken or out-of-range port refused with the
//! real 422 body; and the load-balancer controller a test can switch on.

mod common;

use common::post;
use fakekube::FakeKube;
use serde_json::{Value, json};

fn service(name: &str, kind: &str, node_port: Option<u16>) -> Value {
    let mut port = json!({"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"});
    if let Some(n) = node_port {
        port["nodePort"] = json!(n);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"type": kind, "ports": [port], "selector": {"app": name}}})
}

fn node_port(svc: &Value) -> u64 {
    svc["spec"]["ports"][0]["nodePort"].as_u64().expect("a node port")
}

#[test]
fn node_ports_are_allocated_and_a_taken_one_is_refused() {
    let fk = FakeKube::start();
    let path = "/api/v1/namespaces/default/services";
    let first = post(&fk, path, &service("a", "NodePort", None));
    assert_eq!(first.code, 201, "{}", first.json());
    let allocated = node_port(&first.json());
    assert!((30000..=32767).contains(&allocated), "{allocated}");
    let cluster_ip = post(&fk, path, &service("c", "ClusterIP", None));
    assert!(cluster_ip.json()["spec"]["ports"][0].get("nodePort").is_none());

    let taken = post(&fk, path, &service("b", "NodePort", Some(allocated as u16)));
    assert_eq!(taken.code, 422);
    let message = format!(
        "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: {allocated}: provided port is already allocated"
    );
    assert_eq!(taken.json()["message"], message.as_str());
    assert_eq!(taken.json()["reason"], "Invalid");
    assert_eq!(taken.json()["details"]["causes"][0]["field"], "spec.ports[0].nodePort");

    let out_of_range = post(&fk, path, &service("d", "NodePort", Some(8080)));
    assert_eq!(out_of_range.code, 422);
    assert!(
        out_of_range.json()["message"].as_str().unwrap().ends_with(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{}",
        out_of_range.json()
    );
    // An update that leaves the port out keeps the one allocated.
    let mut again = service("a", "NodePort", None);
    again["metadata"]["resourceVersion"] = first.json()["metadata"]["resourceVersion"].clone();
    fk.put(again).expect("update");
    assert_eq!(node_port(&fk.get("services", "default", "a").unwrap()), allocated);
}

#[test]
fn a_load_balancer_gets_the_configured_address() {
    let fk = FakeKube::start();
    let path = "/api/v1/namespaces/default/services";
    post(&fk, path, &service("pending", "LoadBalancer", None));
    let pending = fk.get("services", "default", "pending").unwrap();
    assert_eq!(pending["status"]["loadBalancer"], json!({}));
    assert!((30000..=32767).contains(&node_port(&pending)));

    fk.set_load_balancer_address(Some("172.18.255.1"));
    post(&fk, path, &service("lb", "LoadBalancer", None));
    let lb = fk.get("services", "default", "lb").unwrap();
    assert_eq!(
        lb["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "172.18.255.1", "ipMode": "VIP"}])
    );
    fk.set_load_balancer_address(Some("lb.example.com"));
    post(&fk, path, &service("named", "LoadBalancer", None));
    let named = fk.get("services", "default", "named").unwrap();
    assert_eq!(named["status"]["loadBalancer"]["ingress"], json!([{"hostname": "lb.example.com"}]));
}
