//! Ingresses as kube-apiserver validates them (a rule's host is a DNS name, never an IP; a
//! path has a known path type and an absolute path), with the real 422 bodies; and the
//! ingress controller a test can switch on to publish an address in their status.

mod common;

use common::post;
use fakekube::FakeKube;
use serde_json::{Value, json};

const PATH: &str = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";

fn ingress(name: &str, host: &str, path_type: &str, path: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
           "spec": {"rules": [{"host": host, "http": {"paths": [{
               "path": path, "pathType": path_type,
               "backend": {"service": {"name": "dev", "port": {"name": "https"}}}}]}}]}})
}

#[test]
fn hosts_and_paths_are_validated_as_the_api_server_does() {
    let fk = FakeKube::start();
    let ok = post(&fk, PATH, &ingress("ok", "dev.example.com", "ImplementationSpecific", "/"));
    assert_eq!(ok.code, 201, "{}", ok.json());

    let cases = [
        (
            ingress("ip", "10.0.0.1", "Prefix", "/"),
            "Ingress.networking.k8s.io \"ip\" is invalid: spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
        ),
        (
            ingress("upper", "Dev.Example.com", "Prefix", "/"),
            "Ingress.networking.k8s.io \"upper\" is invalid: spec.rules[0].host: Invalid value: \"Dev.Example.com\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        (
            ingress("kind", "dev.example.com", "Everything", "/"),
            "Ingress.networking.k8s.io \"kind\" is invalid: spec.rules[0].http.paths[0].pathType: Unsupported value: \"Everything\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
        ),
        (
            ingress("relative", "dev.example.com", "Prefix", "api"),
            "Ingress.networking.k8s.io \"relative\" is invalid: spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
        ),
    ];
    for (body, message) in cases {
        let refused = post(&fk, PATH, &body);
        assert_eq!(refused.code, 422, "{}", refused.json());
        assert_eq!(refused.json()["reason"], "Invalid");
        assert_eq!(refused.json()["message"], message);
    }
    let mut untyped = ingress("untyped", "dev.example.com", "Prefix", "/");
    untyped["spec"]["rules"][0]["http"]["paths"][0].as_object_mut().unwrap().remove("pathType");
    let refused = post(&fk, PATH, &untyped);
    assert_eq!(refused.code, 422);
    assert_eq!(
        refused.json()["details"]["causes"][0]["message"],
        "Required value: pathType must be specified"
    );
}

#[test]
fn an_ingress_controller_publishes_its_address() {
    let fk = FakeKube::start();
    post(&fk, PATH, &ingress("pending", "a.example.com", "Prefix", "/"));
    let pending = fk.get("ingresses", "default", "pending").unwrap();
    assert!(pending["status"]["loadBalancer"]["ingress"].is_null(), "{pending}");

    fk.set_ingress_address(Some("172.18.0.5"));
    post(&fk, PATH, &ingress("served", "b.example.com", "Prefix", "/"));
    let served = fk.get("ingresses", "default", "served").unwrap();
    assert_eq!(served["status"]["loadBalancer"]["ingress"], json!([{"ip": "172.18.0.5"}]));
    fk.set_ingress_address(Some("localhost"));
    post(&fk, PATH, &ingress("named", "c.example.com", "Prefix", "/"));
    let named = fk.get("ingresses", "default", "named").unwrap();
    assert_eq!(named["status"]["loadBalancer"]["ingress"], json!([{"hostname": "localhost"}]));
}
