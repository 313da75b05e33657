//! Where the cluster runs and how it is stored: placement on the control plane and in the
//! engine's enforcement options, the exposed endpoint, and the etcd datastore.

use serde_json::Value;

use super::{config_yaml, placement, snapshot_json};
use crate::engine::{HostObject, render};
use crate::spec::VirtualClusterSpec;

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
