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
        let spec = VirtualClusterSpec { expose: Some(ExposeSpec { kind }), ..Default::default() };
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
}
