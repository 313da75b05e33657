//! The etcd datastore's host objects: the StatefulSet `<name>-etcd` with its Service and
//! headless Service, rendered from `controlPlane.backingStore.etcd.deploy` the way the chart's
//! `etcd-*.yaml` templates render them, and the external etcd's client Secret mounted into the
//! control plane. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, HTTPGetAction, PersistentVolumeClaim, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SecretVolumeSource, SecurityContext, Service, ServiceSpec, Toleration,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::config::model;
use super::objects::{
    View, claim_spec, empty_dir, field_env, from_config, image_ref, list, mount, non_empty,
    object_meta, optional, resources, service_port,
};
use super::{EngineError, LABEL_APP, LABEL_RELEASE, common_labels};

/// The `app` label of the etcd pods (the chart's).
pub const APP_ETCD: &str = "vcluster-etcd";
/// etcd's client, peer and metrics ports.
pub const CLIENT_PORT: i32 = 2379;
pub const PEER_PORT: i32 = 2380;
pub const METRICS_PORT: i32 = 2381;
/// Where the etcd container reads the engine's certificate Secret.
const ETCD_PKI: &str = "/run/config/pki";
/// Where the control plane reads an external etcd's client Secret.
pub const EXTERNAL_TLS_DIR: &str = "/run/config/etcd-client";
/// The volume carrying it.
const EXTERNAL_TLS_VOLUME: &str = "etcd-client";
/// Keys of the external etcd's client Secret (the `kubernetes.io/tls` keys plus the CA, as
/// cert-manager writes them).
pub const EXTERNAL_TLS_KEYS: [&str; 3] = ["ca.crt", "tls.crt", "tls.key"];

/// Name of the etcd StatefulSet and its Service.
pub fn etcd_name(name: &str) -> String {
    format!("{name}-etcd")
}

/// Name of the etcd headless Service.
pub fn etcd_headless_name(name: &str) -> String {
    format!("{name}-etcd-headless")
}

/// Name of the volume claim of etcd member `ordinal`; like the control plane's, it outlives
/// the StatefulSet.
pub fn etcd_claim_name(name: &str, ordinal: i32) -> String {
    format!("data-{name}-etcd-{ordinal}")
}

/// The etcd pods' selector labels, exactly `app: vcluster-etcd, release: <name>`.
pub fn etcd_selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_APP.to_string(), APP_ETCD.to_string()),
        (LABEL_RELEASE.to_string(), name.to_string()),
    ])
}

fn etcd_labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = common_labels(name);
    labels.extend(etcd_selector_labels(name));
    labels
}

/// The deployed etcd's settings, when `controlPlane.backingStore.etcd.deploy.enabled` is on.
fn deploy<'a>(view: &View<'a>) -> Option<&'a model::EtcdDeploy> {
    view.control_plane()
        .and_then(|c| c.backing_store.as_ref())
        .and_then(|b| b.etcd.as_ref())
        .and_then(|e| e.deploy.as_ref())
        .filter(|d| d.enabled == Some(true))
}

/// The etcd objects, in apply order (Services, then the StatefulSet); empty unless the
/// configuration deploys etcd.
pub fn render_etcd(
    name: &str,
    namespace: &str,
    view: &View<'_>,
) -> Result<(Vec<Service>, Option<StatefulSet>), EngineError> {
    let Some(deploy) = deploy(view) else { return Ok((Vec::new(), None)) };
    let global = view.global_annotations();
    let ports = || {
        vec![
            service_port("etcd", CLIENT_PORT, CLIENT_PORT, None),
            service_port("peer", PEER_PORT, PEER_PORT, None),
        ]
    };
    let mut services = Vec::new();
    let service = deploy.service.as_ref();
    if service.and_then(|s| s.enabled).unwrap_or(true) {
        let mut annotations = global.clone();
        annotations.extend(service.and_then(|s| s.annotations.clone()).unwrap_or_default());
        services.push(Service {
            metadata: object_meta(&etcd_name(name), namespace, etcd_labels(name), annotations),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".to_string()),
                ports: Some(ports()),
                selector: Some(etcd_selector_labels(name)),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut annotations = global;
    annotations.extend(
        deploy.headless_service.as_ref().and_then(|s| s.annotations.clone()).unwrap_or_default(),
    );
    services.push(Service {
        metadata: object_meta(&etcd_headless_name(name), namespace, etcd_labels(name), annotations),
        spec: Some(ServiceSpec {
            publish_not_ready_addresses: Some(true),
            ports: Some(ports()),
            cluster_ip: Some("None".to_string()),
            selector: Some(etcd_selector_labels(name)),
            ..Default::default()
        }),
        ..Default::default()
    });
    let sts = match deploy.stateful_set.as_ref() {
        Some(sts) if sts.enabled == Some(false) => None,
        sts => Some(render_etcd_statefulset(name, namespace, view, sts)?),
    };
    Ok((services, sts))
}

/// The etcd container's command: the chart's flags, with every member of the StatefulSet in
/// the initial cluster and TLS for clients and peers from the engine's certificates.
fn etcd_command(name: &str, namespace: &str, replicas: i32, extra: &[String]) -> Vec<String> {
    let headless = format!("{}.{namespace}", etcd_headless_name(name));
    let initial_cluster = (0..replicas)
        .map(|i| format!("{name}-etcd-{i}=https://{name}-etcd-{i}.{headless}:{PEER_PORT}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut command = vec![
        "etcd".to_string(),
        format!("--cert-file={ETCD_PKI}/etcd-server.crt"),
        "--client-cert-auth=true".to_string(),
        "--data-dir=/var/lib/etcd".to_string(),
        format!("--advertise-client-urls=https://$(NAME).{headless}:{CLIENT_PORT}"),
        format!("--initial-advertise-peer-urls=https://$(NAME).{headless}:{PEER_PORT}"),
        format!("--initial-cluster={initial_cluster}"),
        format!("--initial-cluster-token={name}"),
        "--initial-cluster-state=new".to_string(),
        format!("--listen-client-urls=https://0.0.0.0:{CLIENT_PORT}"),
        format!("--listen-metrics-urls=http://0.0.0.0:{METRICS_PORT}"),
        format!("--listen-peer-urls=https://0.0.0.0:{PEER_PORT}"),
        format!("--key-file={ETCD_PKI}/etcd-server.key"),
        "--name=$(NAME)".to_string(),
        format!("--peer-cert-file={ETCD_PKI}/etcd-peer.crt"),
        "--peer-client-cert-auth=true".to_string(),
        format!("--peer-key-file={ETCD_PKI}/etcd-peer.key"),
        format!("--peer-trusted-ca-file={ETCD_PKI}/etcd-ca.crt"),
        "--snapshot-count=10000".to_string(),
        format!("--trusted-ca-file={ETCD_PKI}/etcd-ca.crt"),
    ];
    command.extend(extra.iter().cloned());
    command
}

fn http_probe(path: &str, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(METRICS_PORT),
            scheme: Some("HTTP".to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(10),
        timeout_seconds: Some(15),
        period_seconds: Some(10),
        success_threshold: Some(1),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The chart's default affinity: members spread over nodes, then zones, where possible.
fn spread_affinity(name: &str) -> Result<Affinity, EngineError> {
    let term = |weight: i32, topology: &str| {
        json!({"weight": weight, "podAffinityTerm": {
            "labelSelector": {"matchExpressions": [
                {"key": LABEL_APP, "operator": "In", "values": [APP_ETCD]},
                {"key": LABEL_RELEASE, "operator": "In", "values": [name]},
            ]},
            "topologyKey": topology,
        }})
    };
    let value = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        term(100, "kubernetes.io/hostname"),
        term(50, "topology.kubernetes.io/zone"),
    ]}});
    from_config(&value, "controlPlane.backingStore.etcd.deploy.statefulSet.scheduling.affinity")
}

fn render_etcd_statefulset(
    name: &str,
    namespace: &str,
    view: &View<'_>,
    sts: Option<&model::EtcdDeployStatefulSet>,
) -> Result<StatefulSet, EngineError> {
    let key = "controlPlane.backingStore.etcd.deploy.statefulSet";
    let default_registry = view.advanced().and_then(|a| a.default_image_registry.as_ref());
    let replicas =
        sts.and_then(|s| s.high_availability.as_ref()).and_then(|h| h.replicas).unwrap_or(1);
    let replicas = i32::try_from(replicas).map_err(|_| {
        EngineError::Values(format!("{key}.highAvailability.replicas is out of range"))
    })?;

    let mut labels = sts.and_then(|s| s.labels.clone()).unwrap_or_default();
    labels.extend(etcd_labels(name));
    let mut annotations = view.global_annotations();
    annotations.extend(sts.and_then(|s| s.annotations.clone()).unwrap_or_default());
    let pods = sts.and_then(|s| s.pods.as_ref());
    let mut pod_labels = pods.and_then(|p| p.labels.clone()).unwrap_or_default();
    pod_labels.extend(etcd_labels(name));
    let pod_annotations = pods.and_then(|p| p.annotations.clone()).filter(|a| !a.is_empty());

    let persistence = sts.and_then(|s| s.persistence.as_ref());
    let claim = persistence.and_then(|p| p.volume_claim.as_ref());
    let claim_enabled = claim.and_then(|c| c.enabled).unwrap_or(true);
    let mut claim_templates: Vec<PersistentVolumeClaim> = list(
        persistence.and_then(|p| p.volume_claim_templates.as_ref()),
        &format!("{key}.persistence.volumeClaimTemplates"),
    )?;
    if claim_templates.is_empty() && claim_enabled {
        let size = claim.and_then(|c| c.size.clone()).unwrap_or_else(|| "5Gi".to_string());
        claim_templates.push(PersistentVolumeClaim {
            // vc's labels let a delete in a shared namespace find the claim.
            metadata: ObjectMeta {
                name: Some("data".to_string()),
                labels: Some(common_labels(name)),
                ..Default::default()
            },
            spec: Some(claim_spec(
                claim.and_then(|c| c.access_modes.as_ref()),
                claim.and_then(|c| c.storage_class.as_ref()),
                size,
            )),
            ..Default::default()
        });
    }
    let retention = claim.and_then(|c| c.retention_policy.clone()).filter(|p| p == "Delete");

    let mut volumes = vec![Volume {
        name: "certs".to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(super::certs_secret_name(name)),
            ..Default::default()
        }),
        ..Default::default()
    }];
    volumes.extend(list::<Volume, _>(
        persistence.and_then(|p| p.add_volumes.as_ref()),
        &format!("{key}.persistence.addVolumes"),
    )?);
    if !claim_enabled {
        volumes.push(empty_dir("data"));
    }
    let mut mounts = vec![
        mount("data", "/var/lib/etcd"),
        VolumeMount {
            name: "certs".to_string(),
            mount_path: ETCD_PKI.to_string(),
            read_only: Some(true),
            ..Default::default()
        },
    ];
    mounts.extend(list::<VolumeMount, _>(
        persistence.and_then(|p| p.add_volume_mounts.as_ref()),
        &format!("{key}.persistence.addVolumeMounts"),
    )?);

    let mut env = vec![field_env("NAME", "metadata.name")];
    for item in sts.and_then(|s| s.env.as_ref()).into_iter().flatten() {
        env.push(from_config::<EnvVar, _>(item, &format!("{key}.env"))?);
    }
    let security = sts.and_then(|s| s.security.as_ref());
    let sts_resources = sts.and_then(|s| s.resources.as_ref());
    let extra_args = sts.and_then(|s| s.extra_args.clone()).unwrap_or_default();
    let container = Container {
        name: "etcd".to_string(),
        image: Some(image_ref(sts.and_then(|s| s.image.as_ref()), default_registry)),
        image_pull_policy: non_empty(sts.and_then(|s| s.image_pull_policy.as_ref())),
        command: Some(etcd_command(name, namespace, replicas, &extra_args)),
        security_context: optional::<SecurityContext, _>(
            security.and_then(|s| s.container_security_context.as_ref()),
            &format!("{key}.security.containerSecurityContext"),
        )?,
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: resources(
            sts_resources.and_then(|r| r.limits.as_ref()),
            sts_resources.and_then(|r| r.requests.as_ref()),
            &format!("{key}.resources"),
        )?,
        liveness_probe: Some(http_probe("/livez", 8)),
        startup_probe: Some(http_probe("/readyz", 24)),
        ..Default::default()
    };

    let scheduling = sts.and_then(|s| s.scheduling.as_ref());
    let affinity = match optional::<Affinity, _>(
        scheduling.and_then(|s| s.affinity.as_ref()),
        &format!("{key}.scheduling.affinity"),
    )? {
        Some(affinity) => affinity,
        None => spread_affinity(name)?,
    };
    let (service_account, _) = super::objects::service_account_names(name, view);
    let pod_spec = PodSpec {
        termination_grace_period_seconds: Some(10),
        affinity: Some(affinity),
        topology_spread_constraints: optional::<Vec<TopologySpreadConstraint>, _>(
            scheduling.and_then(|s| s.topology_spread_constraints.as_ref()),
            &format!("{key}.scheduling.topologySpreadConstraints"),
        )?,
        node_selector: optional(
            scheduling.and_then(|s| s.node_selector.as_ref()),
            &format!("{key}.scheduling.nodeSelector"),
        )?,
        tolerations: optional::<Vec<Toleration>, _>(
            scheduling.and_then(|s| s.tolerations.as_ref()),
            &format!("{key}.scheduling.tolerations"),
        )?,
        // etcd never calls the API: no token in the pod.
        automount_service_account_token: Some(false),
        service_account_name: Some(service_account),
        volumes: Some(volumes),
        priority_class_name: non_empty(scheduling.and_then(|s| s.priority_class_name.as_ref())),
        security_context: optional::<PodSecurityContext, _>(
            security.and_then(|s| s.pod_security_context.as_ref()),
            &format!("{key}.security.podSecurityContext"),
        )?,
        enable_service_links: Some(sts.and_then(|s| s.enable_service_links).unwrap_or(true)),
        containers: vec![container],
        ..Default::default()
    };

    Ok(StatefulSet {
        metadata: object_meta(&etcd_name(name), namespace, labels, annotations),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            pod_management_policy: Some(
                non_empty(scheduling.and_then(|s| s.pod_management_policy.as_ref()))
                    .unwrap_or_else(|| "Parallel".to_string()),
            ),
            service_name: Some(etcd_headless_name(name)),
            persistent_volume_claim_retention_policy: retention.map(|p| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(p),
                    ..Default::default()
                }
            }),
            selector: LabelSelector {
                match_labels: Some(etcd_selector_labels(name)),
                ..Default::default()
            },
            volume_claim_templates: (!claim_templates.is_empty()).then_some(claim_templates),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: pod_annotations,
                    ..Default::default()
                }),
                spec: Some(pod_spec),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Mounts an external etcd's client Secret read-only into the control plane's syncer
/// container at [`EXTERNAL_TLS_DIR`], where `controlPlane.backingStore.etcd.external.tls`
/// points.
pub fn mount_external_tls(sts: &mut StatefulSet, secret: &str) {
    let Some(pod) = sts.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else { return };
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: EXTERNAL_TLS_VOLUME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            // Owner and group only: the key is a credential.
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
    if let Some(syncer) = pod.containers.iter_mut().find(|c| c.name == "syncer") {
        syncer.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
            name: EXTERNAL_TLS_VOLUME.to_string(),
            mount_path: EXTERNAL_TLS_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        });
    }
}
