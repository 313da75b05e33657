//! Tests of what `vc` renders for a fast start: probe periods and budgets, the
//! controller-manager flags, the binaries the init container copies and the CPU limits, each
//! checked against what the engine at the pinned release knows.

use serde_json::Value;

use super::super::config::{
    CONTROLLER_MANAGER_ARGS, PROBE_PERIOD_SECONDS, STARTUP_FAILURE_THRESHOLD,
};
use super::*;

/// Flags the engine v0.36.1 passes to the controller manager itself (`pkg/k8s/k8s.go`,
/// default mode). Its `MergeArgs` drops an engine flag when an extra argument names the same
/// flag, so an extra argument that is not in this list would be added beside the engine's own
/// instead of replacing one.
const ENGINE_CONTROLLER_MANAGER_FLAGS: [&str; 17] = [
    "--service-cluster-ip-range",
    "--authentication-kubeconfig",
    "--authorization-kubeconfig",
    "--bind-address",
    "--client-ca-file",
    "--cluster-name",
    "--kubeconfig",
    "--requestheader-client-ca-file",
    "--root-ca-file",
    "--service-account-private-key-file",
    "--use-service-account-credentials",
    "--leader-elect",
    "--controllers",
    "--node-monitor-grace-period",
    "--node-monitor-period",
    "--pvclaimbinder-sync-period",
    "--horizontal-pod-autoscaler-sync-period",
];

/// Files the engine v0.36.1 writes under `/data/pki` (`pkg/certs`); the controller manager's
/// kubeconfig must be one of them.
const ENGINE_KUBECONFIGS: [&str; 3] =
    ["/data/pki/admin.conf", "/data/pki/controller-manager.conf", "/data/pki/scheduler.conf"];

/// Binaries the engine v0.36.1 starts from `/binaries` (`pkg/constants`).
const ENGINE_BINARIES: [&str; 5] =
    ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kine", "helm"];

fn statefulset(spec: &VirtualClusterSpec) -> Value {
    let rendered = render(spec, &placement(true)).expect("the spec renders");
    rendered.objects.last().expect("the StatefulSet comes last").to_json()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn probes_tick_every_second_and_keep_the_start_up_budget() {
    let sts = statefulset(&VirtualClusterSpec::default());
    let syncer = &sts["spec"]["template"]["spec"]["containers"][0];
    let startup = &syncer["startupProbe"];
    assert_eq!(startup["periodSeconds"], 1);
    assert_eq!(startup.get("initialDelaySeconds"), None);
    let budget = startup["periodSeconds"].as_i64().expect("a period")
        * startup["failureThreshold"].as_i64().expect("a threshold");
    // The release's startup probe: every 6 s, 300 failures.
    assert_eq!(budget, 6 * 300, "the start-up budget stays 30 minutes");
    assert_eq!(PROBE_PERIOD_SECONDS * STARTUP_FAILURE_THRESHOLD, 6 * 300);
    let readiness = &syncer["readinessProbe"];
    assert_eq!(readiness["periodSeconds"], 1);
    assert_eq!(readiness.get("initialDelaySeconds"), None);
    assert_eq!(syncer["livenessProbe"]["initialDelaySeconds"], 60, "liveness is the release's");
}

#[test]
fn probes_can_be_overridden() {
    let spec = with_values(
        "controlPlane:\n  statefulSet:\n    probes:\n      startupProbe:\n        periodSeconds: 6\n        failureThreshold: 300\n",
    );
    let sts = statefulset(&spec);
    let startup = &sts["spec"]["template"]["spec"]["containers"][0]["startupProbe"];
    assert_eq!(startup["periodSeconds"], 6);
    assert_eq!(startup["failureThreshold"], 300);
}

#[test]
fn controller_manager_flags_replace_engine_flags_and_come_together() {
    let config = engine_config(&VirtualClusterSpec::default(), &placement(true))
        .expect("the default configuration builds");
    let args =
        strings(&config.json["controlPlane"]["distro"]["k8s"]["controllerManager"]["extraArgs"]);
    assert_eq!(args, CONTROLLER_MANAGER_ARGS.to_vec());
    for arg in &args {
        let (flag, _) = arg.split_once('=').expect("flag=value");
        assert!(
            ENGINE_CONTROLLER_MANAGER_FLAGS.contains(&flag),
            "{flag} is not a flag the engine passes, so it would not replace one"
        );
    }
    let value = |flag: &str| {
        args.iter().find_map(|a| a.strip_prefix(&format!("{flag}="))).map(str::to_string)
    };
    // Per-controller credentials off only works with a kubeconfig that may do everything.
    assert_eq!(value("--use-service-account-credentials").as_deref(), Some("false"));
    let kubeconfig = value("--kubeconfig").expect("the kubeconfig flag comes with it");
    assert!(ENGINE_KUBECONFIGS.contains(&kubeconfig.as_str()));
    assert_eq!(kubeconfig, "/data/pki/admin.conf");
}

#[test]
fn controller_manager_flags_can_be_overridden() {
    let spec = with_values(
        "controlPlane:\n  distro:\n    k8s:\n      controllerManager:\n        extraArgs: []\n",
    );
    let config = engine_config(&spec, &placement(true)).expect("the configuration builds");
    let args = &config.json["controlPlane"]["distro"]["k8s"]["controllerManager"]["extraArgs"];
    assert_eq!(args, &Value::Array(Vec::new()), "a list in engine.values replaces vc's");
}

#[test]
fn init_container_copies_only_the_binaries_it_runs_with_a_whole_cpu() {
    let sts = statefulset(&VirtualClusterSpec::default());
    let init = &sts["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["command"], serde_json::json!(["cp"]));
    let args = strings(&init["args"]);
    let (target, sources) = args.split_last().expect("sources and a target");
    assert_eq!(target, "/binaries/");
    let names: Vec<&str> = sources
        .iter()
        .map(|s| s.strip_prefix("/kubernetes/").expect("from the image's directory"))
        .collect();
    assert_eq!(names, ["kube-apiserver", "kube-controller-manager", "kine"]);
    assert!(names.iter().all(|n| ENGINE_BINARIES.contains(n)));
    assert_eq!(init["resources"]["limits"]["cpu"], "1");
    assert_eq!(init["resources"]["limits"]["memory"], "256Mi", "the release's other limits stay");
    let syncer = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(syncer["resources"]["limits"]["cpu"], "2");
    assert_eq!(syncer["resources"]["requests"]["cpu"], "200m");
}

#[test]
fn init_container_copies_everything_for_custom_commands_and_helm_charts() {
    for values in [
        "controlPlane:\n  distro:\n    k8s:\n      apiServer:\n        command: [/binaries/kube-apiserver, --v=2]\n",
        "experimental:\n  deploy:\n    vcluster:\n      helm:\n      - chart:\n          name: app\n",
    ] {
        let sts = statefulset(&with_values(values));
        let args = strings(&sts["spec"]["template"]["spec"]["initContainers"][0]["args"]);
        assert_eq!(args, ["-r", "/kubernetes/.", "/binaries/"], "{values}");
    }
}

#[test]
fn init_container_leaves_out_a_disabled_controller_manager() {
    let spec = with_values(
        "controlPlane:\n  distro:\n    k8s:\n      controllerManager:\n        enabled: false\n",
    );
    let sts = statefulset(&spec);
    let args = strings(&sts["spec"]["template"]["spec"]["initContainers"][0]["args"]);
    assert_eq!(args, ["/kubernetes/kube-apiserver", "/kubernetes/kine", "/binaries/"]);
}
