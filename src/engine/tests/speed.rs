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

fn init_command(spec: &VirtualClusterSpec) -> (Vec<String>, Vec<String>, Value) {
    let sts = statefulset(spec);
    let init = sts["spec"]["template"]["spec"]["initContainers"][0].clone();
    (strings(&init["command"]), strings(&init["args"]), init)
}

/// Runs the init container's copy against a directory laid out like the control-plane image
/// (paths rewritten into a temporary directory) and returns the names it copied.
fn run_copy(command: &[String], args: &[String], image_files: &[&str]) -> Vec<String> {
    let root = tempfile::tempdir().expect("a temporary directory");
    let (image, binaries) = (root.path().join("kubernetes"), root.path().join("binaries"));
    std::fs::create_dir_all(&image).expect("image directory");
    std::fs::create_dir_all(&binaries).expect("binaries directory");
    for file in image_files {
        std::fs::write(image.join(file), file).expect("an image file");
    }
    let rewrite = |arg: &String| {
        arg.replace("/kubernetes", &image.display().to_string())
            .replace("/binaries", &binaries.display().to_string())
    };
    let status = std::process::Command::new(&command[0])
        .args(args.iter().map(rewrite))
        .status()
        .expect("the copy runs");
    assert!(status.success(), "the copy failed: {command:?} {args:?}");
    let mut copied: Vec<String> = std::fs::read_dir(&binaries)
        .expect("binaries directory")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    copied.sort();
    copied
}

/// What `ghcr.io/loft-sh/kubernetes` carries, plus a helper a datastore binary might need.
const IMAGE_FILES: [&str; 6] =
    ["etcd", "helm", "kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];

#[test]
fn init_container_copies_only_what_the_engine_runs_with_a_whole_cpu() {
    let (command, args, init) = init_command(&VirtualClusterSpec::default());
    assert_eq!(command, ["sh"]);
    let copied = run_copy(&command, &args, &IMAGE_FILES);
    assert_eq!(copied, ["etcd", "kine", "kube-apiserver", "kube-controller-manager"]);
    for binary in ["kube-apiserver", "kube-controller-manager", "kine"] {
        assert!(ENGINE_BINARIES.contains(&binary));
    }
    assert_eq!(init["resources"]["limits"]["cpu"], "1");
    assert_eq!(init["resources"]["limits"]["memory"], "256Mi", "the release's other limits stay");
    let sts = statefulset(&VirtualClusterSpec::default());
    let syncer = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(syncer["resources"]["limits"]["cpu"], "2");
    assert_eq!(syncer["resources"]["requests"]["cpu"], "200m");
}

#[test]
fn init_container_fails_without_the_image_directory() {
    let (command, args, _) = init_command(&VirtualClusterSpec::default());
    let status = std::process::Command::new(&command[0])
        .args(args.iter().map(|a| a.replace("/kubernetes", "/nonexistent-vc-test")))
        .status()
        .expect("the copy runs");
    assert!(!status.success(), "a missing directory must fail the init container");
}

#[test]
fn init_container_copies_helm_for_helm_charts_and_everything_for_custom_commands() {
    let helm = with_values(
        "experimental:\n  deploy:\n    vcluster:\n      helm:\n      - chart:\n          name: app\n",
    );
    let (command, args, _) = init_command(&helm);
    assert!(run_copy(&command, &args, &IMAGE_FILES).contains(&"helm".to_string()));
    let custom = with_values(
        "controlPlane:\n  distro:\n    k8s:\n      apiServer:\n        command: [/binaries/kube-apiserver, --v=2]\n",
    );
    let (command, args, _) = init_command(&custom);
    assert_eq!(command, ["cp"]);
    assert_eq!(args, ["-r", "/kubernetes/.", "/binaries/"]);
}

#[test]
fn init_container_leaves_out_a_disabled_controller_manager() {
    let spec = with_values(
        "controlPlane:\n  distro:\n    k8s:\n      controllerManager:\n        enabled: false\n",
    );
    let (command, args, _) = init_command(&spec);
    assert_eq!(run_copy(&command, &args, &IMAGE_FILES), ["etcd", "kine", "kube-apiserver"]);
}

#[test]
fn ephemeral_keeps_the_datastore_on_an_empty_dir() {
    let spec = VirtualClusterSpec { persistence: Some(false), ..Default::default() };
    let sts = statefulset(&spec);
    insta::assert_yaml_snapshot!("ephemeral@StatefulSet-dev", sts);
    assert_eq!(sts["spec"].get("volumeClaimTemplates"), None);
    assert_eq!(sts["spec"].get("persistentVolumeClaimRetentionPolicy"), None);
    let pod = &sts["spec"]["template"]["spec"];
    let data: Vec<&Value> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter(|v| v["name"] == "data")
        .collect();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["emptyDir"], serde_json::json!({}));
    let mounts = pod["containers"][0]["volumeMounts"].as_array().expect("mounts");
    assert!(mounts.iter().any(|m| m["name"] == "data" && m["mountPath"] == "/data"));
    let record: Value = serde_json::from_str(
        sts["metadata"]["annotations"]["vc.dev/spec"].as_str().expect("the record"),
    )
    .expect("the record is JSON");
    assert_eq!(record["persistence"], false, "the record says the cluster is ephemeral");

    let persistent = statefulset(&VirtualClusterSpec::default());
    assert!(persistent["spec"]["volumeClaimTemplates"].is_array());
    let record = persistent["metadata"]["annotations"]["vc.dev/spec"].as_str().expect("record");
    assert!(!record.contains("persistence"), "a persistent cluster's record is unchanged");
}

#[test]
fn ephemeral_refuses_extra_claim_templates() {
    let mut spec = with_values(
        "controlPlane:\n  statefulSet:\n    persistence:\n      volumeClaimTemplates:\n      - metadata:\n          name: extra\n",
    );
    spec.persistence = Some(false);
    let err = render(&spec, &placement(true)).expect_err("the combination is refused");
    assert!(err.to_string().contains("--ephemeral"), "{err}");
}

#[test]
fn engine_ways_to_drop_the_claim_point_at_ephemeral() {
    for yaml in [
        "controlPlane:\n  statefulSet:\n    persistence:\n      volumeClaim:\n        enabled: false\n",
        "controlPlane:\n  statefulSet:\n    persistence:\n      dataVolume:\n      - name: data\n        emptyDir: {}\n",
    ] {
        let message = render(&with_values(yaml), &placement(true)).expect_err(yaml).to_string();
        assert!(message.contains("is not supported by vc"), "{message}");
        assert!(message.contains("vc create --ephemeral"), "{message}");
        assert!(!message.ends_with("is not supported by vc"), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}
