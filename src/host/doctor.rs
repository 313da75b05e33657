//! What `vc doctor` asks the host: its version, access reviews, storage classes, and the
//! probes that create throwaway objects (a claim, an image pod, two client pods and a deny
//! policy) and always remove them again. Prints nothing; the command phrases the results.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    SeccompProfile, SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

use super::{Host, HostError};
use crate::engine::{LABEL_MANAGED_BY, MANAGED_BY};

/// Label on every throwaway object, naming the doctor run it belongs to.
pub const LABEL_DOCTOR: &str = "vc.dev/doctor";

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// The host's Kubernetes version.
#[derive(Clone, Debug)]
pub struct ServerVersion {
    pub git_version: String,
    pub minor: Option<u32>,
}

/// One right to review: verb on group/resource, in a namespace or cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub namespace: Option<String>,
}

/// A storage class as doctor reports it.
#[derive(Clone, Debug)]
pub struct StorageClassInfo {
    pub name: String,
    pub provisioner: String,
    pub is_default: bool,
    pub wait_for_first_consumer: bool,
}

/// What to probe, and where.
#[derive(Clone, Debug)]
pub struct ProbePlan {
    /// Namespace to probe in; `own_namespace` means doctor creates it and deletes it after.
    pub namespace: String,
    pub own_namespace: bool,
    /// Prefix of every object's name, unique to this run.
    pub prefix: String,
    /// Images to pull on a node (engine and control plane).
    pub images: Vec<String>,
    /// Image of the network probe pods (needs sh, httpd and nc: busybox).
    pub probe_image: String,
    /// Whether to mount a claim of the default class in the image pod.
    pub claim: bool,
    /// How long each probe may wait.
    pub timeout: Duration,
}

/// How one image fared on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageOutcome {
    Present,
    /// The kubelet's reason and message.
    PullFailed {
        reason: String,
        message: String,
    },
    /// The pod never got as far as pulling (unschedulable, waiting for its claim, refused).
    Unknown(String),
}

/// How the claim of the default class fared.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimOutcome {
    Bound { seconds: f64 },
    Pending(String),
    Failed(String),
}

/// What the network probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyOutcome {
    Enforced,
    NotEnforced,
    /// Why it could not tell (no connectivity to begin with, pods that never finished, ...).
    Unverified(String),
}

/// Results of the probes.
#[derive(Clone, Debug)]
pub struct ProbeResults {
    pub images: Vec<(String, ImageOutcome)>,
    pub claim: Option<ClaimOutcome>,
    pub policy: PolicyOutcome,
}

impl Host {
    /// GET /version.
    pub async fn server_version(&self) -> Result<ServerVersion, HostError> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| self.explain("reading /version", e))?;
        let minor = info.minor.trim_end_matches('+').parse().ok();
        Ok(ServerVersion { git_version: info.git_version, minor })
    }

    /// One SelfSubjectAccessReview; `Ok(None)` when the host will not answer it.
    pub async fn can(&self, access: &Access) -> Result<Option<bool>, HostError> {
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(access.group.clone()),
                    resource: Some(access.resource.split('/').next().unwrap_or("").to_string()),
                    subresource: access.resource.split_once('/').map(|(_, s)| s.to_string()),
                    verb: Some(access.verb.clone()),
                    namespace: access.namespace.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) => Ok(answer.status.map(|s| s.allowed)),
            Err(kube::Error::Api(s)) if (403..=405).contains(&s.code) => Ok(None),
            Err(e) => Err(self.explain("reviewing your rights on the host", e)),
        }
    }

    /// Every storage class, or `Ok(None)` when listing them is refused.
    pub async fn storage_classes(&self) -> Result<Option<Vec<StorageClassInfo>>, HostError> {
        let api: Api<StorageClass> = Api::all(self.client.clone());
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(Some(
                list.items
                    .into_iter()
                    .map(|c| {
                        let annotations = c.metadata.annotations.unwrap_or_default();
                        let is_default = [DEFAULT_CLASS, BETA_DEFAULT_CLASS]
                            .iter()
                            .any(|k| annotations.get(*k).is_some_and(|v| v == "true"));
                        StorageClassInfo {
                            name: c.metadata.name.unwrap_or_default(),
                            provisioner: c.provisioner,
                            is_default,
                            wait_for_first_consumer: c.volume_binding_mode.as_deref()
                                == Some("WaitForFirstConsumer"),
                        }
                    })
                    .collect(),
            )),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
            Err(e) => Err(self.explain("listing storage classes", e)),
        }
    }

    /// Runs the probes of `plan`. The caller removes the objects with [`Host::remove_probes`],
    /// whatever happened here.
    pub async fn run_probes(&self, plan: &ProbePlan) -> Result<ProbeResults, HostError> {
        if plan.own_namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let namespace =
                Namespace { metadata: probe_meta(plan, &plan.namespace), ..Default::default() };
            api.create(&PostParams::default(), &namespace)
                .await
                .map_err(|e| self.explain(&format!("creating namespace {}", plan.namespace), e))?;
        }
        let (images, policy) = tokio::join!(self.probe_images(plan), self.probe_policy(plan));
        let (images, claim) = images?;
        Ok(ProbeResults { images, claim, policy: policy? })
    }

    /// Removes every object of the doctor run `plan`; returns those it could not remove.
    pub async fn remove_probes(&self, plan: &ProbePlan) -> Vec<String> {
        let mut left = Vec::new();
        let now = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::background() };
        if plan.own_namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            match api.delete(&plan.namespace, &now).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => left.push(format!("namespace {} ({e})", plan.namespace)),
            }
            return left;
        }
        let selector = ListParams::default().labels(&format!("{LABEL_DOCTOR}={}", plan.prefix));
        let ns = &plan.namespace;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let policies: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), ns);
        if let Err(e) = pods.delete_collection(&now, &selector).await {
            left.push(format!("pods {LABEL_DOCTOR}={} in {ns} ({e})", plan.prefix));
        }
        if let Err(e) = policies.delete_collection(&now, &selector).await {
            left.push(format!("networkpolicies {LABEL_DOCTOR}={} in {ns} ({e})", plan.prefix));
        }
        if let Err(e) = claims.delete_collection(&now, &selector).await {
            left.push(format!(
                "persistentvolumeclaims {LABEL_DOCTOR}={} in {ns} ({e})",
                plan.prefix
            ));
        }
        left
    }

    async fn probe_images(
        &self,
        plan: &ProbePlan,
    ) -> Result<(Vec<(String, ImageOutcome)>, Option<ClaimOutcome>), HostError> {
        let ns = &plan.namespace;
        let claim_name = format!("{}-claim", plan.prefix);
        let started = tokio::time::Instant::now();
        if plan.claim {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
            let claim = PersistentVolumeClaim {
                metadata: probe_meta(plan, &claim_name),
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity("1Mi".to_string()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            claims
                .create(&PostParams::default(), &claim)
                .await
                .map_err(|e| self.explain(&format!("creating claim {ns}/{claim_name}"), e))?;
        }
        let mut spec = probe_pod_spec(plan, "true");
        spec.containers = plan
            .images
            .iter()
            .enumerate()
            .map(|(i, image)| Container {
                image: Some(image.clone()),
                command: Some(vec!["true".to_string()]),
                ..probe_container(&format!("image-{i}"), image)
            })
            .collect();
        if plan.claim {
            spec.volumes = Some(vec![Volume {
                name: "claim".to_string(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name.clone(),
                    read_only: None,
                }),
                ..Default::default()
            }]);
            if let Some(first) = spec.containers.first_mut() {
                first.volume_mounts = Some(vec![VolumeMount {
                    name: "claim".to_string(),
                    mount_path: "/claim".to_string(),
                    ..Default::default()
                }]);
            }
        }
        let pod_name = format!("{}-images", plan.prefix);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod =
            Pod { metadata: probe_meta(plan, &pod_name), spec: Some(spec), ..Default::default() };
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| self.explain(&format!("creating pod {ns}/{pod_name}"), e))?;

        let deadline = started + plan.timeout;
        let mut claim_outcome = None;
        loop {
            if plan.claim && claim_outcome.is_none() {
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
                if let Ok(Some(c)) = claims.get_opt(&claim_name).await
                    && c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                {
                    claim_outcome =
                        Some(ClaimOutcome::Bound { seconds: started.elapsed().as_secs_f64() });
                }
            }
            let current = pods.get_opt(&pod_name).await.ok().flatten();
            let outcomes = current.as_ref().map(image_outcomes);
            let settled = outcomes
                .as_ref()
                .is_some_and(|o| o.iter().all(|(_, out)| !matches!(out, ImageOutcome::Unknown(_))));
            let claim_settled = !plan.claim || claim_outcome.is_some();
            if (settled && claim_settled) || tokio::time::Instant::now() >= deadline {
                let why = match &current {
                    Some(pod) => pod_waiting_reason(pod),
                    None => "the probe pod disappeared".to_string(),
                };
                let outcomes = outcomes.unwrap_or_else(|| {
                    plan.images
                        .iter()
                        .map(|i| (i.clone(), ImageOutcome::Unknown(why.clone())))
                        .collect()
                });
                if plan.claim && claim_outcome.is_none() {
                    claim_outcome = Some(self.claim_pending(ns, &claim_name, plan.timeout).await);
                }
                return Ok((outcomes, claim_outcome));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn claim_pending(&self, ns: &str, name: &str, timeout: Duration) -> ClaimOutcome {
        let events = self.warning_events(ns, &[name]).await;
        match events.last() {
            Some(event) => ClaimOutcome::Failed(event.clone()),
            None => ClaimOutcome::Pending(format!(
                "not bound within {}",
                crate::output::human_duration(timeout)
            )),
        }
    }

    async fn probe_policy(&self, plan: &ProbePlan) -> Result<PolicyOutcome, HostError> {
        let ns = &plan.namespace;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let server_name = format!("{}-server", plan.prefix);
        let server_labels = [
            (LABEL_DOCTOR.to_string(), plan.prefix.clone()),
            ("vc.dev/doctor-role".to_string(), "server".to_string()),
        ];
        let serve = "echo ok > /www/index.html && exec httpd -f -p 8080 -h /www";
        let mut meta = probe_meta(plan, &server_name);
        meta.labels.get_or_insert_default().extend(server_labels.clone());
        let mut spec = probe_pod_spec(plan, serve);
        // The image's own directories are not writable for the unprivileged user.
        spec.volumes = Some(vec![Volume {
            name: "www".to_string(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        }]);
        for container in &mut spec.containers {
            container.volume_mounts = Some(vec![VolumeMount {
                name: "www".to_string(),
                mount_path: "/www".to_string(),
                ..Default::default()
            }]);
        }
        let server = Pod { metadata: meta, spec: Some(spec), ..Default::default() };
        pods.create(&PostParams::default(), &server)
            .await
            .map_err(|e| self.explain(&format!("creating pod {ns}/{server_name}"), e))?;
        let deadline = tokio::time::Instant::now() + plan.timeout;
        let ip = loop {
            let pod = pods.get_opt(&server_name).await.ok().flatten();
            if let Some(pod) = &pod {
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if let Some(ip) =
                    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).filter(|_| running)
                {
                    break ip;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let why =
                    pod.as_ref().map_or_else(|| "it disappeared".to_string(), pod_waiting_reason);
                return Ok(PolicyOutcome::Unverified(format!(
                    "the probe server pod did not run: {why}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // Reachable before any policy: otherwise a blocked request proves nothing. (nc, not
        // busybox's wget, which crashes as an unprivileged user; a few tries, as the server
        // may still be starting.)
        let fetch = format!("nc -w 3 {ip} 8080 </dev/null");
        let reach = format!("for i in 1 2 3 4 5; do {fetch} && exit 0; sleep 1; done; exit 1");
        match self.run_client(plan, "before", &reach, deadline).await? {
            ClientEnd::Succeeded => {}
            ClientEnd::Failed => {
                return Ok(PolicyOutcome::Unverified(
                    "a pod cannot reach another pod even without a NetworkPolicy".to_string(),
                ));
            }
            ClientEnd::Unfinished(why) => return Ok(PolicyOutcome::Unverified(why)),
        }
        let policies: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), ns);
        let policy = NetworkPolicy {
            metadata: probe_meta(plan, &format!("{}-deny", plan.prefix)),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(server_labels.into_iter().collect()),
                    ..Default::default()
                }),
                policy_types: Some(vec!["Ingress".to_string()]),
                ingress: None,
                egress: None,
            }),
        };
        policies
            .create(&PostParams::default(), &policy)
            .await
            .map_err(|e| self.explain(&format!("creating NetworkPolicy in {ns}"), e))?;
        // Exits 0 once a request is refused; a CNI takes a moment to program a new policy.
        let blocked = format!("for i in 1 2 3 4 5 6; do {fetch} || exit 0; sleep 1; done; exit 1");
        Ok(match self.run_client(plan, "after", &blocked, deadline).await? {
            ClientEnd::Succeeded => PolicyOutcome::Enforced,
            ClientEnd::Failed => PolicyOutcome::NotEnforced,
            ClientEnd::Unfinished(why) => PolicyOutcome::Unverified(why),
        })
    }

    async fn run_client(
        &self,
        plan: &ProbePlan,
        suffix: &str,
        script: &str,
        deadline: tokio::time::Instant,
    ) -> Result<ClientEnd, HostError> {
        let ns = &plan.namespace;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let name = format!("{}-{suffix}", plan.prefix);
        let pod = Pod {
            metadata: probe_meta(plan, &name),
            spec: Some(probe_pod_spec(plan, script)),
            ..Default::default()
        };
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| self.explain(&format!("creating pod {ns}/{name}"), e))?;
        loop {
            let current = pods.get_opt(&name).await.ok().flatten();
            match current.as_ref().and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref())
            {
                Some("Succeeded") => return Ok(ClientEnd::Succeeded),
                Some("Failed") => return Ok(ClientEnd::Failed),
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let why = current
                    .as_ref()
                    .map_or_else(|| "it disappeared".to_string(), pod_waiting_reason);
                return Ok(ClientEnd::Unfinished(format!(
                    "the probe pod {name} did not finish within {} ({why})",
                    crate::output::human_duration(plan.timeout)
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

enum ClientEnd {
    Succeeded,
    Failed,
    Unfinished(String),
}

fn probe_meta(plan: &ProbePlan, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: (name != plan.namespace).then(|| plan.namespace.clone()),
        labels: Some(BTreeMap::from([
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
            (LABEL_DOCTOR.to_string(), plan.prefix.clone()),
        ])),
        ..Default::default()
    }
}

/// A container that the restricted Pod Security level admits, small enough for any quota.
fn probe_container(name: &str, image: &str) -> Container {
    let quantity = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    Container {
        name: name.to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        resources: Some(ResourceRequirements {
            requests: Some(quantity("10m", "16Mi")),
            limits: Some(quantity("100m", "64Mi")),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), add: None }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn probe_pod_spec(plan: &ProbePlan, script: &str) -> PodSpec {
    PodSpec {
        containers: vec![Container {
            command: Some(vec!["sh".to_string(), "-c".to_string(), script.to_string()]),
            ..probe_container("probe", &plan.probe_image)
        }],
        restart_policy: Some("Never".to_string()),
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(0),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65534),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Per container image: present once its container got past pulling.
fn image_outcomes(pod: &Pod) -> Vec<(String, ImageOutcome)> {
    let spec_images: Vec<(String, String)> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect();
    let statuses =
        pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    let pending = pod_waiting_reason(pod);
    spec_images
        .into_iter()
        .map(|(container, image)| {
            let status = statuses.iter().find(|s| s.name == container);
            let state = status.and_then(|s| s.state.as_ref());
            let outcome = match state {
                Some(s) if s.running.is_some() || s.terminated.is_some() => ImageOutcome::Present,
                Some(s) => match s.waiting.as_ref() {
                    Some(w) => {
                        let reason = w.reason.clone().unwrap_or_default();
                        match reason.as_str() {
                            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName"
                            | "ErrImageNeverPull" => ImageOutcome::PullFailed {
                                reason,
                                message: w.message.clone().unwrap_or_default(),
                            },
                            "ContainerCreating" | "PodInitializing" | "" => {
                                ImageOutcome::Unknown(pending.clone())
                            }
                            // Any other wait (CreateContainerError, ...) comes after the pull.
                            _ => ImageOutcome::Present,
                        }
                    }
                    None => ImageOutcome::Unknown(pending.clone()),
                },
                None => ImageOutcome::Unknown(pending.clone()),
            };
            (image, outcome)
        })
        .collect()
}

/// Why a pod has not started: its scheduling condition, else its phase.
fn pod_waiting_reason(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let unscheduled = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(c) = unscheduled {
        return format!("not scheduled: {}", c.message.clone().unwrap_or_default());
    }
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .next();
    match (status.and_then(|s| s.phase.clone()), waiting) {
        (Some(phase), Some(reason)) => format!("{phase}, {reason}"),
        (Some(phase), None) => phase,
        (None, _) => "not started".to_string(),
    }
}
