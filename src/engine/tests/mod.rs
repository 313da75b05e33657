//! Tests of the engine: insta snapshots of every rendered object for the default spec and for
//! each opt-out, and unit tests of versions, the configuration checks and the record.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::config::{self, DEFAULT_QUOTA};
use super::*;
use crate::spec::VirtualClusterSpec;

const CREATED_AT: &str = "2025-01-02T03:04:05Z";

fn placement(own_namespace: bool) -> Placement {
    Placement {
        name: "dev".to_string(),
        namespace: if own_namespace { "vc-dev".to_string() } else { "team-a".to_string() },
        own_namespace,
        created_at: CREATED_AT.parse::<Timestamp>().expect("a valid timestamp"),
        host_minor: None,
    }
}

fn values(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).expect("test values are valid YAML")
}

fn with_values(yaml: &str) -> VirtualClusterSpec {
    VirtualClusterSpec {
        engine: crate::spec::EngineSpec { values: Some(values(yaml)) },
        ..Default::default()
    }
}

/// The object as JSON for a snapshot; the Secret's configuration is replaced by its size and
/// digest (the configuration has snapshots of its own).
fn snapshot_json(object: &HostObject) -> Value {
    let mut json = object.to_json();
    if let HostObject::Secret(secret) = object
        && let Some(data) = &secret.data
    {
        let summary: serde_json::Map<String, Value> = data
            .iter()
            .map(|(key, bytes)| {
                let text = String::from_utf8_lossy(&bytes.0);
                let note = format!("{} bytes, digest {}", bytes.0.len(), objects::digest(&text));
                (key.clone(), Value::String(note))
            })
            .collect();
        json["data"] = Value::Object(summary);
    }
    json
}

/// Snapshots every object of a scenario, one snapshot per object, and checks the order.
fn snapshot_scenario(scenario: &str, spec: &VirtualClusterSpec, own_namespace: bool) -> Rendered {
    let rendered = render(spec, &placement(own_namespace)).expect("the scenario renders");
    for object in &rendered.objects {
        let name = format!("{scenario}@{}-{}", object.kind(), object.name());
        insta::assert_yaml_snapshot!(name, snapshot_json(object));
    }
    let kinds: Vec<&str> = rendered.objects.iter().map(HostObject::kind).collect();
    assert_eq!(kinds.last(), Some(&"StatefulSet"), "the record comes last");
    if own_namespace {
        assert_eq!(kinds.first(), Some(&"Namespace"), "the namespace comes first");
    } else {
        assert!(!kinds.contains(&"Namespace"));
    }
    assert!(!kinds.iter().any(|k| k.starts_with("Cluster")), "no cluster-scoped RBAC");
    for object in &rendered.objects {
        let labels = object.to_json()["metadata"]["labels"].clone();
        for (key, value) in common_labels("dev") {
            assert_eq!(labels[&key], Value::String(value), "{} lacks {key}", object.name());
        }
    }
    rendered
}

fn kinds_and_names(rendered: &Rendered) -> Vec<String> {
    rendered.objects.iter().map(|o| format!("{}/{}", o.kind(), o.name())).collect()
}

fn config_yaml(spec: &VirtualClusterSpec, own_namespace: bool) -> String {
    engine_config(spec, &placement(own_namespace))
        .and_then(|c| c.to_yaml())
        .expect("the configuration renders")
}

#[test]
fn default_spec() {
    let rendered = snapshot_scenario("default", &VirtualClusterSpec::default(), true);
    insta::assert_snapshot!(
        "default@config.yaml",
        config_yaml(&VirtualClusterSpec::default(), true)
    );
    assert_eq!(rendered.kubernetes_version, "v1.36.0");
    assert_eq!(rendered.control_plane_image, "ghcr.io/loft-sh/kubernetes:v1.36.0");
    assert_eq!(rendered.engine_image, "ghcr.io/loft-sh/vcluster-oss:0.36.1");
    assert_eq!(
        kinds_and_names(&rendered),
        [
            "Namespace/vc-dev",
            "ResourceQuota/vc-dev",
            "LimitRange/vc-dev",
            "NetworkPolicy/vc-work-dev",
            "NetworkPolicy/vc-cp-dev",
            "NetworkPolicy/vc-snapshot-dev",
            "ServiceAccount/vc-dev",
            "ServiceAccount/vc-workload-dev",
            "Role/vc-dev",
            "RoleBinding/vc-dev",
            "Secret/vc-config-dev",
            "Service/dev",
            "Service/dev-headless",
            "StatefulSet/dev",
        ]
    );
}

#[test]
fn no_isolation() {
    let mut spec = VirtualClusterSpec::default();
    spec.isolation.enabled = false;
    let rendered = snapshot_scenario("no-isolation", &spec, true);
    assert!(!rendered.objects.iter().any(|o| o.kind() == "NetworkPolicy"));
    // The DNS restriction goes with the NetworkPolicies.
    assert!(config_yaml(&spec, true).contains("fallbackHostCluster: true"));
}

#[test]
fn allow_internet() {
    let mut spec = VirtualClusterSpec::default();
    spec.isolation.allow_internet = true;
    let rendered = snapshot_scenario("allow-internet", &spec, true);
    let work = rendered.objects.iter().find(|o| o.name() == "vc-work-dev").expect("policy");
    let text = serde_json::to_string(&work.to_json()).expect("json");
    assert!(text.contains("0.0.0.0/0"));
    for range in config::PRIVATE_RANGES {
        assert!(text.contains(range), "{range} not excluded");
    }
}

#[test]
fn no_quota() {
    let mut spec = VirtualClusterSpec::default();
    spec.quota.enabled = Some(false);
    let rendered = snapshot_scenario("no-quota", &spec, true);
    assert!(!rendered.objects.iter().any(|o| matches!(o.kind(), "ResourceQuota" | "LimitRange")));
}

#[test]
fn shared_namespace() {
    let rendered = snapshot_scenario("shared-namespace", &VirtualClusterSpec::default(), false);
    assert!(!rendered.objects.iter().any(|o| matches!(o.kind(), "ResourceQuota" | "LimitRange")));
    assert!(rendered.objects.iter().all(|o| o.namespace() == Some("team-a")));
}

#[test]
fn shared_namespace_with_quota() {
    let mut spec = VirtualClusterSpec::default();
    spec.quota.enabled = Some(true);
    let rendered = render(&spec, &placement(false)).expect("renders");
    assert!(rendered.objects.iter().any(|o| o.kind() == "ResourceQuota"));
}

#[test]
fn custom_quota() {
    let mut spec = VirtualClusterSpec::default();
    spec.quota.hard = BTreeMap::from([
        ("limits.cpu".to_string(), "16".to_string()),
        ("count/pods".to_string(), "50".to_string()),
        ("requests.nvidia.com/gpu".to_string(), "1".to_string()),
    ]);
    let rendered = snapshot_scenario("custom-quota", &spec, true);
    let HostObject::ResourceQuota(quota) = &rendered.objects[1] else {
        panic!("the quota follows the namespace")
    };
    let hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref()).expect("hard");
    assert_eq!(hard["limits.cpu"].0, "16");
    assert_eq!(hard["count/pods"].0, "50");
    assert_eq!(hard["requests.nvidia.com/gpu"].0, "1");
    assert_eq!(hard["requests.memory"].0, "4Gi", "defaults stay under the overrides");
    assert_eq!(hard.len(), DEFAULT_QUOTA.len() + 1);
}

#[test]
fn engine_values_override() {
    let spec = with_values(
        "controlPlane:\n  statefulSet:\n    resources:\n      limits:\n        memory: 3Gi\n    \
         persistence:\n      volumeClaim:\n        size: 10Gi\n        storageClass: fast\n    \
         env:\n    - name: EXTRA\n      value: 'yes'\n  proxy:\n    extraSANs:\n    - dev.example.com\n  \
         service:\n    spec:\n      type: NodePort\n\
         policies:\n  networkPolicy:\n    workload:\n      egress:\n      - to:\n        - ipBlock:\n            \
         cidr: 10.1.2.3/32\n        ports:\n        - port: 5432\n          protocol: TCP\n",
    );
    let rendered = snapshot_scenario("engine-values", &spec, true);
    let config = config_yaml(&spec, true);
    insta::assert_snapshot!("engine-values@config.yaml", config);
    assert!(config.contains("dev.example.com"));
    let sts = rendered.objects.last().expect("statefulset").to_json();
    let syncer = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(syncer["resources"]["limits"]["memory"], "3Gi");
    assert_eq!(syncer["resources"]["limits"]["cpu"], "2", "a deep merge keeps siblings");
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "fast");
}

#[test]
fn storage_size_and_class_shape_the_volume_claim() {
    let claim = |spec: &VirtualClusterSpec| {
        let rendered = render(spec, &placement(true)).expect("renders");
        rendered.objects.last().expect("statefulset").to_json()["spec"]["volumeClaimTemplates"][0]
            ["spec"]
            .clone()
    };
    let default = claim(&VirtualClusterSpec::default());
    assert_eq!(default["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(default.get("storageClassName"), None, "the host's default class");

    let mut spec = VirtualClusterSpec::default();
    spec.storage.size = Some("20Gi".to_string());
    spec.storage.class_name = Some("fast-ssd".to_string());
    let sized = claim(&spec);
    assert_eq!(sized["resources"]["requests"]["storage"], "20Gi");
    assert_eq!(sized["storageClassName"], "fast-ssd");
    assert_eq!(sized["accessModes"], serde_json::json!(["ReadWriteOnce"]));
    let config = config_yaml(&spec, true);
    assert!(config.contains("size: 20Gi") && config.contains("storageClass: fast-ssd"), "{config}");

    // Only the class: the size stays the release's.
    spec.storage.size = None;
    assert_eq!(claim(&spec)["resources"]["requests"]["storage"], "5Gi");
    // The passthrough is merged last and wins.
    spec.engine.values = Some(values(
        "controlPlane:\n  statefulSet:\n    persistence:\n      volumeClaim:\n        storageClass: slow\n",
    ));
    assert_eq!(claim(&spec)["storageClassName"], "slow");
}

#[test]
fn a_re_apply_keeps_a_later_recorded_expiry_only() {
    let expiry = |rendered: &Rendered| {
        let HostObject::StatefulSet(sts) = rendered.objects.last().expect("statefulset") else {
            panic!("the StatefulSet comes last")
        };
        sts.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_EXPIRES_AT).cloned())
    };
    let spec = VirtualClusterSpec { ttl: Some("2h".into()), ..Default::default() };
    let mut rendered = render(&spec, &placement(true)).expect("renders");
    let extended: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    rendered.keep_later_expiry(extended);
    assert_eq!(rendered.expires_at, Some(extended));
    assert_eq!(expiry(&rendered).as_deref(), Some("2030-01-01T00:00:00Z"));

    let mut rendered = render(&spec, &placement(true)).expect("renders");
    rendered.keep_later_expiry("2020-01-01T00:00:00Z".parse().unwrap());
    assert_eq!(expiry(&rendered).as_deref(), Some("2025-01-02T05:04:05Z"), "never shortened");

    // Without a TTL, an expiry given with vc extend stays too.
    let mut rendered = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    assert_eq!(expiry(&rendered), None);
    rendered.keep_later_expiry(extended);
    assert_eq!(expiry(&rendered).as_deref(), Some("2030-01-01T00:00:00Z"));
}

#[test]
fn ttl_and_labels() {
    let mut spec = VirtualClusterSpec { ttl: Some("2h".into()), ..Default::default() };
    spec.labels.insert("team".into(), "web".into());
    let rendered = snapshot_scenario("ttl", &spec, true);
    let HostObject::StatefulSet(sts) = rendered.objects.last().expect("statefulset") else {
        panic!("the StatefulSet comes last")
    };
    let annotations = sts.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(annotations[ANNOTATION_CREATED_AT], CREATED_AT);
    assert_eq!(annotations[ANNOTATION_EXPIRES_AT], "2025-01-02T05:04:05Z");
    assert_eq!(annotations[ANNOTATION_KUBERNETES_VERSION], "v1.36.0");
    let recorded: VirtualClusterSpec =
        serde_json::from_str(&annotations[ANNOTATION_SPEC]).expect("the record is the spec");
    assert_eq!(recorded, spec);
    let labels = sts.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels["team"], "web");
    let selector = &sts.spec.as_ref().expect("spec").selector;
    assert_eq!(
        selector.match_labels.as_ref().expect("labels"),
        &BTreeMap::from([("app".into(), "vcluster".into()), ("release".into(), "dev".into())])
    );
}

#[test]
fn no_ttl_no_expiry() {
    let rendered = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    let sts = rendered.objects.last().expect("statefulset").to_json();
    assert!(sts["metadata"]["annotations"].get(ANNOTATION_EXPIRES_AT).is_none());
}

#[test]
fn version_and_image_overrides() {
    let mut spec =
        VirtualClusterSpec { kubernetes_version: Some("1.33".into()), ..Default::default() };
    spec.images.engine = Some("registry.local/loft-sh/vcluster-oss:0.36.1".into());
    let rendered = render(&spec, &placement(true)).expect("renders");
    assert_eq!(rendered.kubernetes_version, "v1.33.4");
    assert_eq!(rendered.control_plane_image, "ghcr.io/loft-sh/kubernetes:v1.33.4");
    let sts = rendered.objects.last().expect("statefulset").to_json();
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["image"], "ghcr.io/loft-sh/kubernetes:v1.33.4");
    assert_eq!(pod["containers"][0]["image"], "registry.local/loft-sh/vcluster-oss:0.36.1");

    spec.images.control_plane = Some("registry.local/k8s:custom".into());
    let rendered = render(&spec, &placement(true)).expect("renders");
    assert_eq!(rendered.control_plane_image, "registry.local/k8s:custom");
    let sts = rendered.objects.last().expect("statefulset").to_json();
    assert_eq!(
        sts["spec"]["template"]["spec"]["initContainers"][0]["image"],
        "registry.local/k8s:custom"
    );
}

#[test]
fn unknown_version_is_an_error() {
    let spec = VirtualClusterSpec { kubernetes_version: Some("1.99".into()), ..Default::default() };
    let err = render(&spec, &placement(true)).expect_err("refused");
    assert!(matches!(err, EngineError::UnknownVersion { .. }));
    assert!(err.to_string().contains("1.30, 1.31, 1.32, 1.33, 1.34, 1.35, 1.36"), "{err}");
}

#[test]
fn unknown_engine_key_is_named() {
    let spec = with_values("controlPlane:\n  statefulSet:\n    resourcez:\n      limits: {}\n");
    let err = render(&spec, &placement(true)).expect_err("refused");
    assert!(matches!(err, EngineError::Values(_)));
    assert_eq!(
        err.to_string(),
        "engine.values: unknown key controlPlane.statefulSet.resourcez for engine release 0.36.1"
    );
    let err = render(&with_values("contolPlane: {}\n"), &placement(true)).expect_err("refused");
    assert!(err.to_string().contains("unknown key contolPlane"), "{err}");
}

#[test]
fn wrongly_typed_engine_value_is_named() {
    let spec = with_values("controlPlane:\n  proxy:\n    port: lots\n");
    let err = render(&spec, &placement(true)).expect_err("refused");
    assert!(err.to_string().contains("controlPlane.proxy.port"), "{err}");
}

#[test]
fn unsupported_variants_are_refused() {
    for (yaml, needle) in [
        (
            "controlPlane:\n  backingStore:\n    etcd:\n    \
          \x20 external:\n        enabled: true\n",
            "etcd.external",
        ),
        (
            "controlPlane:\n  backingStore:\n    etcd:\n      deploy:\n        enabled: true\n",
            "etcd.deploy",
        ),
        (
            "controlPlane:\n  backingStore:\n    etcd:\n      embedded:\n        enabled: true\n",
            "commercial",
        ),
        (
            "controlPlane:\n  backingStore:\n    database:\n      external:\n        enabled: true\n",
            "commercial",
        ),
        ("controlPlane:\n  statefulSet:\n    highAvailability:\n      replicas: 3\n", "replicas=3"),
        (
            "controlPlane:\n  statefulSet:\n    persistence:\n      volumeClaim:\n        enabled: false\n",
            "Deployment",
        ),
        ("sync:\n  fromHost:\n    nodes:\n      enabled: true\n", "ClusterRole"),
        ("rbac:\n  clusterRole:\n    enabled: true\n", "ClusterRole"),
        ("controlPlane:\n  ingress:\n    enabled: true\n", "Ingress"),
        ("privateNodes:\n  enabled: true\n", "commercial"),
    ] {
        let err = render(&with_values(yaml), &placement(true)).expect_err(yaml);
        assert!(matches!(err, EngineError::Unsupported(_)), "{yaml}: {err}");
        assert!(err.to_string().contains(needle), "{yaml}: {err}");
    }
}

#[test]
fn switching_the_cluster_role_off_does_not_admit_what_needs_one() {
    for trigger in [
        "sync:\n  fromHost:\n    nodes:\n      enabled: true\n",
        "integrations:\n  kubeVirt:\n    enabled: true\n",
        "integrations:\n  istio:\n    enabled: true\n",
        "integrations:\n  externalSecrets:\n    enabled: true\n",
        "sync:\n  toHost:\n    gatewayApi:\n      enabled: true\n",
    ] {
        let spec = with_values(&format!("rbac:\n  clusterRole:\n    enabled: false\n{trigger}"));
        let err = render(&spec, &placement(true)).expect_err(trigger);
        assert!(err.to_string().contains("ClusterRole"), "{trigger}: {err}");
    }
}

fn role_of(rendered: &Rendered) -> &k8s_openapi::api::rbac::v1::Role {
    rendered
        .objects
        .iter()
        .find_map(|o| match o {
            HostObject::Role(role) => Some(role),
            _ => None,
        })
        .expect("a Role")
}

fn grants(role: &k8s_openapi::api::rbac::v1::Role, group: &str, resource: &str) -> Vec<String> {
    role.rules
        .iter()
        .flatten()
        .filter(|r| r.api_groups.iter().flatten().any(|g| g == group))
        .filter(|r| r.resources.iter().flatten().any(|x| x == resource))
        .flat_map(|r| r.verbs.clone())
        .collect()
}

#[test]
fn role_grants_what_the_engine_uses_and_no_more() {
    let rendered = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    let role = role_of(&rendered);
    assert_eq!(grants(role, "", "pods/status"), ["update"]);
    assert_eq!(grants(role, "", "pods/ephemeralcontainers"), ["update"]);
    assert!(grants(role, "", "pods/resize").is_empty(), "no resize on an unknown host");
    assert!(!grants(role, "", "endpoints").contains(&"patch".to_string()));
    assert!(!grants(role, "discovery.k8s.io", "endpointslices").contains(&"patch".to_string()));
    assert!(grants(role, "discovery.k8s.io", "endpointslices").contains(&"create".to_string()));

    let on_135 = Placement { host_minor: Some(35), ..placement(true) };
    let rendered = render(&VirtualClusterSpec::default(), &on_135).expect("renders");
    assert_eq!(grants(role_of(&rendered), "", "pods/resize"), ["patch"]);
    let on_134 = Placement { host_minor: Some(34), ..placement(true) };
    let rendered = render(&VirtualClusterSpec::default(), &on_134).expect("renders");
    assert!(grants(role_of(&rendered), "", "pods/resize").is_empty());
}

#[test]
fn integrations_get_the_charts_role_rules() {
    let spec = with_values(
        "integrations:\n  certManager:\n    enabled: true\n    sync:\n      fromHost:\n        clusterIssuers:\n          enabled: false\n",
    );
    let rendered = render(&spec, &placement(true)).expect("cert-manager renders");
    let role = role_of(&rendered);
    assert_eq!(grants(role, "cert-manager.io", "certificates").len(), 7);
    assert_eq!(grants(role, "cert-manager.io", "issuers").len(), 7);
    let default = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    assert!(grants(role_of(&default), "cert-manager.io", "certificates").is_empty());

    let spec = with_values(
        "sync:\n  toHost:\n    gatewayApi:\n      referenceGrants:\n        enabled: \"true\"\n",
    );
    let rendered = render(&spec, &placement(true)).expect("reference grants render");
    assert_eq!(grants(role_of(&rendered), "gateway.networking.k8s.io", "referencegrants").len(), 7);

    let spec = with_values("integrations:\n  certManager:\n    enabled: true\n");
    let err = render(&spec, &placement(true)).expect_err("cluster issuers need a ClusterRole");
    assert!(err.to_string().contains("certManager.sync.fromHost.clusterIssuers"), "{err}");
}

#[test]
fn engine_values_must_be_a_mapping() {
    let spec = VirtualClusterSpec {
        engine: crate::spec::EngineSpec { values: Some(Value::from(3)) },
        ..Default::default()
    };
    assert!(render(&spec, &placement(true)).is_err());
}

#[test]
fn defaults_parse_through_the_typed_model() {
    let defaults = config::defaults();
    let typed = config::parse(&defaults).expect("the defaults fit the model");
    assert_eq!(serde_json::to_value(&typed).expect("serializes"), defaults);
}

#[test]
fn configuration_round_trips_through_the_typed_model() {
    for spec in [
        VirtualClusterSpec::default(),
        with_values(
            "controlPlane:\n  proxy:\n    extraSANs: [a.example.com]\nsync:\n  toHost:\n    ingresses:\n      enabled: true\n",
        ),
    ] {
        let built = engine_config(&spec, &placement(true)).expect("builds");
        let again = serde_json::to_value(&built.typed).expect("serializes");
        assert_eq!(again, built.json, "typed round trip");
        let yaml = built.to_yaml().expect("yaml");
        let parsed: Value = serde_saphyr::from_str(&yaml).expect("the YAML parses");
        assert_eq!(parsed, built.json, "YAML round trip");
    }
}

#[test]
fn deep_merge_follows_helm() {
    let mut base = values("a:\n  b: 1\n  c: [1, 2]\n  d: {e: 1}\nkeep: true\n");
    config::deep_merge(
        &mut base,
        &values("a:\n  b: 2\n  c: [3]\n  d: null\n  f: {g: null, h: 1}\n"),
    );
    assert_eq!(base, values("a:\n  b: 2\n  c: [3]\n  f: {h: 1}\nkeep: true\n"));
}

#[test]
fn configuration_carries_what_vc_derives() {
    let mut spec = VirtualClusterSpec::default();
    spec.isolation.allow_internet = true;
    let built = engine_config(&spec, &placement(true)).expect("builds").json;
    assert_eq!(built["controlPlane"]["statefulSet"]["image"]["repository"], "loft-sh/vcluster-oss");
    assert_eq!(built["controlPlane"]["statefulSet"]["image"]["tag"], "0.36.1");
    assert_eq!(built["controlPlane"]["distro"]["k8s"]["image"]["tag"], "v1.36.0");
    assert_eq!(built["networking"]["advanced"]["fallbackHostCluster"], false);
    assert_eq!(built["policies"]["networkPolicy"]["enabled"], true);
    assert_eq!(built["policies"]["networkPolicy"]["workload"]["publicEgress"]["enabled"], true);
    assert_eq!(built["telemetry"]["enabled"], false);
    // Untouched release defaults stay.
    assert_eq!(
        built["sync"]["toHost"]["pods"]["rewriteHosts"]["initContainer"]["image"]["tag"],
        "3.20"
    );
}

#[test]
fn readiness_probe_is_quick() {
    let rendered = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    let sts = rendered.objects.last().expect("statefulset").to_json();
    let probe = &sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["httpGet"]["path"], "/readyz");
    assert_eq!(probe["httpGet"]["port"], 8443);
    assert_eq!(probe["httpGet"]["scheme"], "HTTPS");
    let period = probe["periodSeconds"].as_i64().expect("a period");
    assert!((1..=2).contains(&period), "{period}");
}

/// Millicores or bytes of a quantity with the suffixes the defaults use.
fn amount(quantity: &str) -> f64 {
    let units =
        [("Ki", 1024.0), ("Mi", 1024.0 * 1024.0), ("Gi", 1024.0 * 1024.0 * 1024.0), ("m", 0.001)];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<f64>().expect("a number") * factor;
        }
    }
    quantity.parse().expect("a plain number")
}

#[test]
fn control_plane_pod_fits_the_default_quota() {
    let rendered = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    let sts = rendered.objects.last().expect("statefulset").to_json();
    let pod = &sts["spec"]["template"]["spec"];
    let quota: BTreeMap<&str, &str> = DEFAULT_QUOTA.iter().copied().collect();
    let defaults: BTreeMap<&str, &str> = config::DEFAULT_LIMITS.iter().copied().collect();
    let default_requests: BTreeMap<&str, &str> = config::DEFAULT_REQUESTS.iter().copied().collect();
    for (kind, fallback) in [("limits", &defaults), ("requests", &default_requests)] {
        for resource in ["cpu", "memory", "ephemeral-storage"] {
            let of = |container: &Value| {
                container["resources"][kind][resource]
                    .as_str()
                    .map_or_else(|| amount(fallback[resource]), amount)
            };
            let containers: f64 =
                pod["containers"].as_array().expect("containers").iter().map(of).sum();
            let init =
                pod["initContainers"].as_array().expect("init").iter().map(of).fold(0.0, f64::max);
            let used = containers.max(init);
            let cap = amount(quota[format!("{kind}.{resource}").as_str()]);
            // The pod may use at most half the namespace's quota, leaving room for workloads.
            assert!(used <= cap / 2.0, "{kind}.{resource}: {used} of {cap}");
        }
    }
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"];
    assert!(amount(claim.as_str().expect("size")) <= amount(quota["requests.storage"]));
}

#[test]
fn host_object_helpers() {
    let rendered = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    let first = &rendered.objects[0];
    assert_eq!((first.kind(), first.api_version(), first.name()), ("Namespace", "v1", "vc-dev"));
    assert_eq!(first.namespace(), None);
    let last = rendered.objects.last().expect("statefulset");
    assert_eq!((last.kind(), last.api_version()), ("StatefulSet", "apps/v1"));
    assert_eq!(last.to_json()["kind"], "StatefulSet");
    assert_eq!(last.namespace(), Some("vc-dev"));
}

#[test]
fn secret_holds_the_complete_configuration() {
    let rendered = render(&VirtualClusterSpec::default(), &placement(true)).expect("renders");
    let HostObject::Secret(secret) =
        rendered.objects.iter().find(|o| o.kind() == "Secret").expect("secret")
    else {
        unreachable!()
    };
    let data = secret.data.as_ref().expect("data");
    let text = String::from_utf8(data["config.yaml"].0.clone()).expect("utf-8");
    assert_eq!(text, config_yaml(&VirtualClusterSpec::default(), true));
    let parsed: Value = serde_saphyr::from_str(&text).expect("yaml");
    config::parse(&parsed).expect("the written configuration parses strictly");
}

#[test]
fn rendering_is_deterministic() {
    let spec = VirtualClusterSpec { ttl: Some("1d".into()), ..Default::default() };
    let a = render(&spec, &placement(true)).expect("renders");
    let b = render(&spec, &placement(true)).expect("renders");
    let json = |r: &Rendered| r.objects.iter().map(HostObject::to_json).collect::<Vec<_>>();
    assert_eq!(json(&a), json(&b));
}

mod etcd;
mod hosting;
mod isolation;
mod pki;
mod speed;
