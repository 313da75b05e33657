//! The etcd datastore: the deployed etcd's objects as the chart renders them, the engine
//! configuration that points the control plane at it, its isolation and accounting, and the
//! external etcd's configuration and mount.

use serde_json::{Value, json};

use super::{
    config_yaml, kinds_and_names, placement, snapshot_json, snapshot_scenario, with_values,
};
use crate::engine::{EngineError, HostObject, render};
use crate::spec::{DatastoreKind, VirtualClusterSpec};

fn etcd_spec() -> VirtualClusterSpec {
    serde_saphyr::from_str("datastore:\n  kind: etcd\n").expect("a valid spec")
}

fn external_spec(endpoint: &str) -> VirtualClusterSpec {
    serde_saphyr::from_str(&format!(
        "datastore:\n  kind: etcd\n  endpoint: {endpoint}\n  tlsSecret: etcd-client\n"
    ))
    .expect("a valid spec")
}

fn json_of(objects: &[HostObject], kind: &str, name: &str) -> Value {
    let object = objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"));
    snapshot_json(object)
}

fn config_json(spec: &VirtualClusterSpec) -> Value {
    serde_saphyr::from_str(&config_yaml(spec, true)).expect("the configuration is YAML")
}

#[test]
fn deployed_etcd_renders_beside_the_control_plane() {
    let rendered = snapshot_scenario("etcd", &etcd_spec(), true);
    assert_eq!(
        kinds_and_names(&rendered),
        [
            "Namespace/vc-dev",
            "ResourceQuota/vc-dev",
            "LimitRange/vc-dev",
            "NetworkPolicy/vc-work-dev",
            "NetworkPolicy/vc-cp-dev",
            "NetworkPolicy/vc-snapshot-dev",
            "NetworkPolicy/vc-etcd-dev",
            "ServiceAccount/vc-dev",
            "ServiceAccount/vc-workload-dev",
            "Role/vc-dev",
            "RoleBinding/vc-dev",
            "Secret/vc-config-dev",
            "Service/dev",
            "Service/dev-headless",
            "Service/dev-etcd",
            "Service/dev-etcd-headless",
            "StatefulSet/dev-etcd",
            "StatefulSet/dev",
        ]
    );
    let sts = json_of(&rendered.objects, "StatefulSet", "dev-etcd");
    let spec = &sts["spec"];
    assert_eq!(spec["selector"]["matchLabels"], json!({"app": "vcluster-etcd", "release": "dev"}));
    assert_eq!(spec["serviceName"], "dev-etcd-headless");
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.k8s.io/etcd:3.6.8-0");
    let command: Vec<&str> =
        container["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(command[0], "etcd");
    assert!(command.contains(
        &"--initial-cluster=dev-etcd-0=https://dev-etcd-0.dev-etcd-headless.vc-dev:2380"
    ));
    assert!(command.contains(&"--trusted-ca-file=/run/config/pki/etcd-ca.crt"));
    assert!(command.contains(&"--client-cert-auth=true"));
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "dev-certs");
    assert_eq!(pod["automountServiceAccountToken"], false);
    // Locked down like the control plane and more: no escalation, no capabilities.
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    // Limits, so the quota counts it as vc means.
    assert_eq!(container["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(container["resources"]["requests"]["cpu"], "20m");
    let claim = &spec["volumeClaimTemplates"][0];
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(claim["metadata"]["labels"]["vc.dev/cluster"], "dev");

    // The control plane keeps a small claim for its certificates.
    let cp = json_of(&rendered.objects, "StatefulSet", "dev");
    assert_eq!(
        cp["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    // The record says etcd.
    let record: Value =
        serde_json::from_str(cp["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap())
            .unwrap();
    assert_eq!(record["datastore"], json!({"kind": "etcd"}));
}

#[test]
fn the_control_plane_is_pointed_at_the_deployed_etcd() {
    let config = config_json(&etcd_spec());
    let etcd = &config["controlPlane"]["backingStore"]["etcd"];
    assert_eq!(etcd["deploy"]["enabled"], true);
    assert_eq!(etcd["deploy"]["service"]["enabled"], true, "the engine dials <name>-etcd:2379");
    assert_eq!(etcd["external"]["enabled"], false);
    assert_eq!(config["controlPlane"]["backingStore"]["database"]["embedded"]["enabled"], false);
    insta::assert_yaml_snapshot!(
        "etcd@config-backingStore",
        config["controlPlane"]["backingStore"]
    );
}

#[test]
fn only_the_control_plane_reaches_etcd() {
    let rendered = render(&etcd_spec(), &placement(true)).expect("renders");
    let policy = json_of(&rendered.objects, "NetworkPolicy", "vc-etcd-dev");
    let selector = &policy["spec"]["podSelector"];
    assert_eq!(selector["matchLabels"], json!({"app": "vcluster-etcd", "release": "dev"}));
    // No synced pod lacks the engine's label, so a tenant cannot match these selectors.
    assert_eq!(selector["matchExpressions"][0]["operator"], "DoesNotExist");
    let from: Vec<&Value> = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["from"].as_array().unwrap())
        .collect();
    for peer in &from {
        assert_eq!(
            peer["podSelector"]["matchExpressions"][0]["key"],
            "vcluster.loft.sh/managed-by"
        );
        assert!(peer.get("ipBlock").is_none() && peer.get("namespaceSelector").is_none());
    }
    assert_eq!(from[0]["podSelector"]["matchLabels"]["app"], "vcluster");
    // Workloads reach their control plane's API port and their own pods, never etcd.
    let work = json_of(&rendered.objects, "NetworkPolicy", "vc-work-dev");
    let text = work.to_string();
    assert!(!text.contains("vcluster-etcd") && !text.contains("2379"), "{text}");
    // The control plane reaches etcd's client port.
    let cp = json_of(&rendered.objects, "NetworkPolicy", "vc-cp-dev");
    let to_etcd = cp["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["to"][0]["podSelector"]["matchLabels"]["app"] == "vcluster-etcd")
        .expect("an egress rule to etcd");
    assert_eq!(to_etcd["ports"], json!([{"port": 2379, "protocol": "TCP"}]));
    // Without isolation there are no policies at all.
    let mut open = etcd_spec();
    open.isolation.enabled = false;
    let rendered = render(&open, &placement(true)).expect("renders");
    assert!(!rendered.objects.iter().any(|o| o.kind() == "NetworkPolicy"));
}

#[test]
fn storage_ephemeral_and_placement_apply_to_etcd() {
    let spec: VirtualClusterSpec = serde_saphyr::from_str(
        "datastore:\n  kind: etcd\nstorage:\n  size: 12Gi\n  className: fast\nplacement:\n  nodeSelector:\n    pool: db\n  tolerations:\n    - dedicated=db:NoSchedule\n  priorityClassName: high\n",
    )
    .unwrap();
    let rendered = render(&spec, &placement(true)).expect("renders");
    let etcd = json_of(&rendered.objects, "StatefulSet", "dev-etcd");
    let claim = &etcd["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "12Gi");
    assert_eq!(claim["storageClassName"], "fast");
    let pod = &etcd["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], json!({"pool": "db"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["priorityClassName"], "high");
    let cp = json_of(&rendered.objects, "StatefulSet", "dev");
    let cp_claim = &cp["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(cp_claim["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(cp_claim["storageClassName"], "fast");

    let mut ephemeral = etcd_spec();
    ephemeral.persistence = Some(false);
    let rendered = render(&ephemeral, &placement(true)).expect("renders");
    let etcd = json_of(&rendered.objects, "StatefulSet", "dev-etcd");
    assert!(etcd["spec"].get("volumeClaimTemplates").is_none());
    let volumes = etcd["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(volumes.iter().any(|v| v["name"] == "data" && v.get("emptyDir").is_some()));
    let cp = json_of(&rendered.objects, "StatefulSet", "dev");
    assert!(cp["spec"].get("volumeClaimTemplates").is_none());
}

#[test]
fn the_record_and_expiry_stay_on_the_control_plane() {
    let mut spec = etcd_spec();
    spec.ttl = Some("2h".into());
    let mut rendered = render(&spec, &placement(true)).expect("renders");
    rendered.keep_later_expiry("2030-01-01T00:00:00Z".parse().unwrap());
    let etcd = json_of(&rendered.objects, "StatefulSet", "dev-etcd");
    assert!(etcd["metadata"].get("annotations").is_none(), "{etcd}");
    let cp = json_of(&rendered.objects, "StatefulSet", "dev");
    assert_eq!(cp["metadata"]["annotations"]["vc.dev/expires-at"], "2030-01-01T00:00:00Z");
    let control: Vec<&str> =
        rendered.objects.iter().filter(|o| o.is_control_plane()).map(HostObject::name).collect();
    assert_eq!(control, ["dev"]);
}

#[test]
fn engine_values_tune_etcd_but_do_not_choose_the_store() {
    let mut spec = etcd_spec();
    spec.engine = with_values(
        "controlPlane:\n  backingStore:\n    etcd:\n      deploy:\n        statefulSet:\n          extraArgs: ['--quota-backend-bytes=4294967296']\n          highAvailability:\n            replicas: 3\n",
    )
    .engine;
    let rendered = render(&spec, &placement(true)).expect("renders");
    let etcd = json_of(&rendered.objects, "StatefulSet", "dev-etcd");
    assert_eq!(etcd["spec"]["replicas"], 3);
    let command = etcd["spec"]["template"]["spec"]["containers"][0]["command"].to_string();
    assert!(command.contains("--quota-backend-bytes=4294967296"), "{command}");
    assert!(command.contains("dev-etcd-2=https://dev-etcd-2.dev-etcd-headless.vc-dev:2380"));

    for (yaml, needle) in [
        (
            "controlPlane:\n  backingStore:\n    etcd:\n      deploy:\n        enabled: false\n",
            "cannot be switched off",
        ),
        (
            "controlPlane:\n  backingStore:\n    database:\n      embedded:\n        enabled: true\n",
            "chooses the backing store",
        ),
        (
            "controlPlane:\n  backingStore:\n    etcd:\n      deploy:\n        statefulSet:\n          enabled: false\n",
            "without members",
        ),
        (
            "controlPlane:\n  backingStore:\n    etcd:\n      deploy:\n        statefulSet:\n          highAvailability:\n            replicas: 7\n",
            "replicas=7",
        ),
    ] {
        let mut spec = etcd_spec();
        spec.engine = with_values(yaml).engine;
        let err = render(&spec, &placement(true)).expect_err(yaml);
        assert!(matches!(err, EngineError::Unsupported(_)), "{yaml}: {err}");
        assert!(err.to_string().contains(needle), "{yaml}: {err}");
    }
}

#[test]
fn external_etcd_is_configured_and_mounted() {
    let spec = external_spec("https://10.20.0.5:2379");
    assert_eq!(spec.datastore.kind, DatastoreKind::Etcd);
    let rendered = render(&spec, &placement(true)).expect("renders");
    let names = kinds_and_names(&rendered);
    assert!(!names.iter().any(|n| n.contains("etcd")), "nothing deployed: {names:?}");
    let config = config_json(&spec);
    insta::assert_yaml_snapshot!(
        "etcd-external@config-backingStore",
        config["controlPlane"]["backingStore"]
    );
    let external = &config["controlPlane"]["backingStore"]["etcd"]["external"];
    assert_eq!(external["endpoint"], "https://10.20.0.5:2379");
    assert_eq!(external["tls"]["keyFile"], "/run/config/etcd-client/tls.key");
    let cp = json_of(&rendered.objects, "StatefulSet", "dev");
    let pod = &cp["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "etcd-client");
    assert_eq!(volume.expect("the Secret's volume")["secret"]["secretName"], "etcd-client");
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    let mount = mounts.iter().find(|m| m["name"] == "etcd-client").expect("mounted");
    assert_eq!(mount["mountPath"], "/run/config/etcd-client");
    assert_eq!(mount["readOnly"], true);
    // Egress to that address and port only.
    let policy = json_of(&rendered.objects, "NetworkPolicy", "vc-cp-dev");
    let rule = policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ports"] == json!([{"port": 2379, "protocol": "TCP"}]))
        .expect("an egress rule to the endpoint");
    assert_eq!(rule["to"], json!([{"ipBlock": {"cidr": "10.20.0.5/32"}}]));
    // A host name cannot be named by a policy: its port is opened, to any address.
    let rendered = render(&external_spec("https://etcd.db.svc:12379"), &placement(true)).unwrap();
    let policy = json_of(&rendered.objects, "NetworkPolicy", "vc-cp-dev");
    let rule = policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ports"] == json!([{"port": 12379, "protocol": "TCP"}]))
        .expect("an egress rule to the endpoint's port");
    assert!(rule.get("to").is_none());
}

#[test]
fn the_quota_has_room_for_both_claims() {
    let hard = |yaml: &str| {
        let spec: VirtualClusterSpec = serde_saphyr::from_str(yaml).expect("a valid spec");
        crate::engine::config::quota_hard(&spec)["requests.storage"].clone()
    };
    // etcd's 5Gi and the control plane's 1Gi fit the default.
    assert_eq!(hard("datastore:\n  kind: etcd\n"), "20Gi");
    // 20Gi for etcd and 1Gi for the control plane do not: the quota grows to fit them.
    assert_eq!(hard("datastore:\n  kind: etcd\nstorage:\n  size: 20Gi\n"), "21Gi");
    assert_eq!(hard("storage:\n  size: 30Gi\n"), "30Gi");
    assert_eq!(hard("storage:\n  size: 10Gi\n"), "20Gi");
    // The user's own quota wins.
    assert_eq!(
        hard(
            "datastore:\n  kind: etcd\nstorage:\n  size: 20Gi\nquota:\n  hard:\n    requests.storage: 8Gi\n"
        ),
        "8Gi"
    );
}
