//! Where the cluster runs and how it is stored: placement on the control plane and in the
//! engine's enforcement options, the exposed endpoint, and the etcd datastore.

use serde_json::Value;

use super::{config_yaml, placement, snapshot_json};
use crate::engine::{HostObject, render};
use crate::spec::{ExposeKind, ExposeSpec, VirtualClusterSpec};

fn placement_spec() -> VirtualClusterSpec {
    serde_saphyr::from_str(
        "placement:\n  nodeSelector:\n    kubernetes.io/arch: amd64\n    pool: ci\n  tolerations:\n    - dedicated=ci:NoSchedule\n    - example.com/spot:NoExecute\n    - '*'\n  runtimeClassName: gvisor\n  priorityClassName: ci-low\n",
    )
    .expect("a valid spec")
}

fn object<'a>(objects: &'a [HostObject], kind: &str, name: &str) -> &'a HostObject {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

/// The engine configuration as JSON (parsed back from the YAML the syncer reads).
fn config_json(spec: &VirtualClusterSpec) -> Value {
    serde_saphyr::from_str(&config_yaml(spec, true)).expect("the configuration is YAML")
}

#[test]
fn placement_goes_on_the_control_plane() {
    let rendered = render(&placement_spec(), &placement(true)).expect("renders");
    let sts = snapshot_json(object(&rendered.objects, "StatefulSet", "dev"));
    let pod = &sts["spec"]["template"]["spec"];
    insta::assert_yaml_snapshot!(
        "placement@control-plane-pod-scheduling",
        serde_json::json!({
            "nodeSelector": pod["nodeSelector"],
            "tolerations": pod["tolerations"],
            "runtimeClassName": pod["runtimeClassName"],
            "priorityClassName": pod["priorityClassName"],
        })
    );
    assert_eq!(pod["nodeSelector"]["pool"], "ci");
    assert_eq!(pod["tolerations"][0]["operator"], "Equal");
    assert_eq!(pod["tolerations"][2], serde_json::json!({"operator": "Exists"}));
}

#[test]
fn placement_is_enforced_on_synced_pods() {
    let config = config_json(&placement_spec());
    let pods = &config["sync"]["toHost"]["pods"];
    insta::assert_yaml_snapshot!(
        "placement@enforced-on-synced-pods",
        serde_json::json!({
            "sync.toHost.pods.enforceTolerations": pods["enforceTolerations"],
            "sync.toHost.pods.runtimeClassName": pods["runtimeClassName"],
            "sync.toHost.pods.priorityClassName": pods["priorityClassName"],
            "sync.fromHost.nodes": config["sync"]["fromHost"]["nodes"],
        })
    );
    // The node selector is enforced without syncing host nodes (which needs a ClusterRole).
    assert_eq!(config["sync"]["fromHost"]["nodes"]["enabled"], false);
    assert_eq!(config["sync"]["fromHost"]["nodes"]["selector"]["labels"]["pool"], "ci");
}

#[test]
fn no_placement_leaves_the_defaults() {
    let defaults = config_json(&VirtualClusterSpec::default());
    assert_eq!(defaults["sync"]["toHost"]["pods"]["enforceTolerations"], serde_json::json!([]));
    assert_eq!(defaults["sync"]["toHost"]["pods"]["runtimeClassName"], "");
    assert_eq!(defaults["sync"]["fromHost"]["nodes"]["selector"]["labels"], serde_json::json!({}));
}

#[test]
fn expose_sets_the_service_type_and_room_in_the_quota() {
    for (kind, ports, node_ports) in [
        (ExposeKind::NodePort, vec!["https", "kubelet"], "2"),
        (ExposeKind::LoadBalancer, vec!["https"], "1"),
    ] {
        let spec =
            VirtualClusterSpec { expose: Some(ExposeSpec::service(kind)), ..Default::default() };
        let rendered = render(&spec, &placement(true)).expect("renders");
        let service = snapshot_json(object(&rendered.objects, "Service", "dev"));
        insta::assert_yaml_snapshot!(
            format!("expose-{}@Service-dev", kind.service_type()),
            service
        );
        assert_eq!(service["spec"]["type"], kind.service_type());
        let names: Vec<&str> = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ports);
        let quota = snapshot_json(object(&rendered.objects, "ResourceQuota", "vc-dev"));
        assert_eq!(quota["spec"]["hard"]["services.nodeports"], node_ports);
    }
    let default = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    let quota = snapshot_json(object(&default.objects, "ResourceQuota", "vc-dev"));
    assert_eq!(quota["spec"]["hard"]["services.nodeports"], "0");
    assert!(default.objects.iter().all(|o| o.kind() != "Ingress"), "no Ingress by default");
}

fn ingress_spec(extra: &str) -> VirtualClusterSpec {
    serde_saphyr::from_str(&format!(
        "expose:\n  type: Ingress\n  host: dev.example.com\n  className: nginx\n{extra}"
    ))
    .expect("a valid spec")
}

#[test]
fn expose_ingress_renders_the_charts_ingress_with_tls_passthrough() {
    let rendered = render(&ingress_spec(""), &placement(true)).expect("renders");
    let ingress = snapshot_json(object(&rendered.objects, "Ingress", "dev"));
    insta::assert_yaml_snapshot!("expose-Ingress@Ingress-dev", ingress);
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/ssl-passthrough"], "true");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");
    assert_eq!(ingress["metadata"]["labels"]["app"], "vcluster");
    assert_eq!(ingress["metadata"]["labels"]["release"], "dev");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "dev.example.com");
    let path = &rule["http"]["paths"][0];
    assert_eq!(path["path"], "/");
    assert_eq!(path["pathType"], "ImplementationSpecific");
    assert_eq!(
        path["backend"]["service"],
        serde_json::json!({"name": "dev", "port": {"name": "https"}})
    );
    // The Service behind it stays a ClusterIP one; no node port is reserved.
    let service = snapshot_json(object(&rendered.objects, "Service", "dev"));
    assert_eq!(service["spec"]["type"], "ClusterIP");
    let quota = snapshot_json(object(&rendered.objects, "ResourceQuota", "vc-dev"));
    assert_eq!(quota["spec"]["hard"]["services.nodeports"], "0");
    // The Ingress is applied with the Services, before the control plane.
    let kinds: Vec<&str> = rendered.objects.iter().map(|o| o.kind()).collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(at("Ingress") < at("StatefulSet"), "{kinds:?}");
}

#[test]
fn expose_ingress_puts_the_host_in_the_engines_certificate() {
    let config = config_json(&ingress_spec(""));
    let ingress = &config["controlPlane"]["ingress"];
    // The engine adds controlPlane.ingress.host to its serving certificate's SANs.
    assert_eq!(ingress["enabled"], true);
    assert_eq!(ingress["host"], "dev.example.com");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(config["controlPlane"]["service"]["spec"]["type"], "ClusterIP");
    let defaults = config_json(&VirtualClusterSpec::default());
    assert_eq!(defaults["controlPlane"]["ingress"]["enabled"], false);
}

#[test]
fn expose_ingress_follows_the_engine_values() {
    // engine.values shape the Ingress as they shape the chart's: the path type, annotations
    // and labels, and rules of the user's own.
    let spec = ingress_spec(
        "engine:\n  values:\n    controlPlane:\n      ingress:\n        pathType: Prefix\n        labels:\n          team: a\n        annotations:\n          nginx.ingress.kubernetes.io/ssl-redirect: \"false\"\n",
    );
    let rendered = render(&spec, &placement(true)).expect("renders");
    let ingress = snapshot_json(object(&rendered.objects, "Ingress", "dev"));
    assert_eq!(ingress["spec"]["rules"][0]["http"]["paths"][0]["pathType"], "Prefix");
    assert_eq!(ingress["metadata"]["labels"]["team"], "a");
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/ssl-redirect"], "false");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/ssl-passthrough"], "true");

    let spec = ingress_spec(
        "engine:\n  values:\n    controlPlane:\n      ingress:\n        spec:\n          rules:\n            - host: other.example.com\n",
    );
    let rendered = render(&spec, &placement(true)).expect("renders");
    let ingress = snapshot_json(object(&rendered.objects, "Ingress", "dev"));
    assert_eq!(ingress["spec"]["rules"], serde_json::json!([{"host": "other.example.com"}]));
}
