//! Watching a control plane towards ready, and explaining why it is not.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;

use crate::engine::{self};

use super::{Host, HostError, control_plane_selector};

/// Progress of a virtual cluster towards ready, as seen on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadyEvent {
    /// The control-plane pod exists and is bound to a node.
    Scheduled,
    /// The pod's init containers (the binaries' copy) have finished.
    Initialized,
    /// The pod is not scheduled yet; the scheduler's message.
    Unschedulable(String),
    /// The control-plane pod passes its readiness probe.
    PodReady,
    /// A container is waiting for a reason worth showing (image pull, crash loop).
    Waiting { reason: String, message: String },
}

impl ReadyEvent {
    /// How the progress display shows this event: the phase it starts (names from
    /// `output::PHASES`), or a note.
    pub fn shown(&self) -> (Option<&'static str>, Option<String>) {
        match self {
            ReadyEvent::Scheduled => (Some("initialized"), None),
            ReadyEvent::Initialized => (Some("apiserver"), None),
            ReadyEvent::PodReady => (Some("ready"), None),
            ReadyEvent::Unschedulable(msg) => (None, Some(format!("not scheduled yet: {msg}"))),
            ReadyEvent::Waiting { reason, message } => (None, Some(format!("{reason}: {message}"))),
        }
    }
}

/// Waiting reasons that no amount of waiting cures: the wait ends at once with them.
const PERMANENT_REASONS: [&str; 3] =
    ["InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"];

/// How long a scheduling or container message must persist before it is shown: a healthy
/// start passes through some of them (an unbound claim for a second) and should stay quiet.
pub const NOTE_AFTER: Duration = Duration::from_secs(5);

impl Host {
    /// Watches until the control-plane pod is Ready and the engine's kubeconfig Secret
    /// exists, reporting progress through `on_event` (a scheduling or container message only
    /// once it persisted [`NOTE_AFTER`]). Ends early with [`HostError::Failed`] on what will
    /// not get better: an invalid image reference, a container configuration error, the
    /// control-plane pod refused by admission (quota, limits, pod security), or an engine
    /// that exits with an error at every start. The caller bounds it with a timeout.
    pub async fn wait_ready(
        &self,
        namespace: &str,
        name: &str,
        mut on_event: impl FnMut(ReadyEvent),
    ) -> Result<(), HostError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let pod_config = watcher::Config::default().labels(&control_plane_selector(name));
        let secret_config = watcher::Config::default()
            .fields(&format!("metadata.name={}", engine::kubeconfig_secret_name(name)));
        let event_config = watcher::Config::default()
            .fields(&format!("involvedObject.name={name},reason=FailedCreate"));
        let mut pod_events = watcher(pods, pod_config).default_backoff().boxed();
        let mut secret_events = watcher(secrets, secret_config).default_backoff().boxed();
        let mut refusals = watcher(events, event_config).default_backoff().boxed();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let (mut pod_ready, mut secret_present) = (false, false);
        let mut last_seen: Option<ReadyEvent> = None;
        let mut pending: Option<(Instant, ReadyEvent)> = None;
        let mut engine_errors_checked = false;
        let mut refusals_open = true;
        let pod_name = format!("{name}-0");
        while !(pod_ready && secret_present) {
            tokio::select! {
                event = pod_events.next() => match event {
                    Some(Ok(event)) => {
                        for pod in applied(event) {
                            if pod.metadata.name.as_deref() != Some(pod_name.as_str()) {
                                continue;
                            }
                            for e in pod_progress(&pod) {
                                if let ReadyEvent::Waiting { reason, message } = &e
                                    && PERMANENT_REASONS.contains(&reason.as_str())
                                {
                                    return Err(HostError::Failed(format!(
                                        "pod {namespace}/{pod_name}: {reason}: {message}"
                                    )));
                                }
                                if last_seen.as_ref() == Some(&e) {
                                    continue;
                                }
                                last_seen = Some(e.clone());
                                match e {
                                    ReadyEvent::Unschedulable(_) | ReadyEvent::Waiting { .. } => {
                                        if pending.as_ref().is_none_or(|(_, p)| p != &e) {
                                            pending = Some((Instant::now(), e));
                                        }
                                    }
                                    ReadyEvent::PodReady => {
                                        pending = None;
                                        pod_ready = true;
                                        on_event(e);
                                    }
                                    ReadyEvent::Scheduled => {
                                        if matches!(pending, Some((_, ReadyEvent::Unschedulable(_)))) {
                                            pending = None;
                                        }
                                        on_event(e);
                                    }
                                    ReadyEvent::Initialized => on_event(e),
                                }
                            }
                            if !engine_errors_checked && crash_looping(&pod) {
                                engine_errors_checked = true;
                                if let Some(line) = self.repeated_engine_error(namespace, &pod_name).await {
                                    return Err(HostError::Failed(format!(
                                        "the engine in pod {namespace}/{pod_name} exits with the same error at every start: {line}"
                                    )));
                                }
                            }
                        }
                    }
                    Some(Err(e)) => self.watch_error("watching the control-plane pod", e)?,
                    None => return Err(HostError::Api { what: "watching the control-plane pod".into(), message: "the watch ended".into() }),
                },
                event = secret_events.next(), if !secret_present => match event {
                    Some(Ok(event)) => {
                        if !applied(event).is_empty() {
                            secret_present = true;
                        }
                    }
                    Some(Err(e)) => self.watch_error("watching the kubeconfig Secret", e)?,
                    None => return Err(HostError::Api { what: "watching the kubeconfig Secret".into(), message: "the watch ended".into() }),
                },
                event = refusals.next(), if !pod_ready && refusals_open => {
                    // Events are only a shortcut: without them the timeout still explains.
                    refusals_open = event.is_some();
                    if let Some(Ok(event)) = event {
                        for refusal in applied(event) {
                            let message = refusal.message.unwrap_or_default();
                            // The StatefulSet controller retries, but admission refuses the
                            // same pod every time until the quota, limits or policy change.
                            if refusal.type_.as_deref() == Some("Warning") && message.contains("forbidden") {
                                return Err(HostError::Failed(format!(
                                    "the host refused the control-plane pod: {}",
                                    message.trim()
                                )));
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some((since, _)) = &pending
                        && since.elapsed() >= NOTE_AFTER
                        && let Some((_, note)) = pending.take()
                    {
                        on_event(note);
                    }
                }
            }
        }
        Ok(())
    }

    /// The engine's last log line, when both its last and its previous run ended with the
    /// same ERROR-level line (a configuration error it repeats at every restart).
    async fn repeated_engine_error(&self, namespace: &str, pod: &str) -> Option<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let last_line = |previous: bool| {
            let pods = pods.clone();
            async move {
                let params = LogParams {
                    container: Some("syncer".to_string()),
                    tail_lines: Some(5),
                    previous,
                    ..Default::default()
                };
                let text = pods.logs(pod, &params).await.ok()?;
                text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
            }
        };
        let (last, previous) = futures::join!(last_line(false), last_line(true));
        let last = last?;
        (is_error_line(&last) && previous.is_some_and(|p| is_error_line(&p))).then_some(last)
    }

    /// A watch error: fatal when access is refused, otherwise the watcher retries.
    fn watch_error(&self, what: &str, err: watcher::Error) -> Result<(), HostError> {
        match err {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => match &e {
                kube::Error::Api(s) if s.code == 401 || s.code == 403 => Err(self.explain(what, e)),
                // Transient: the watcher backs off and restarts the watch itself.
                _ => Ok(()),
            },
            watcher::Error::WatchError(status) if status.code == 401 || status.code == 403 => {
                Err(self.explain(what, kube::Error::Api(status)))
            }
            _ => Ok(()),
        }
    }

    /// Explains why a cluster is not ready, from what the host reports.
    pub async fn diagnose(&self, namespace: &str, name: &str) -> String {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod_name = format!("{name}-0");
        let pod = match pods.get_opt(&pod_name).await {
            Ok(Some(pod)) => pod,
            Ok(None) => {
                // Usually the StatefulSet controller says why (a quota or LimitRange refusing
                // the pod, a missing ServiceAccount).
                let warnings = self.warning_events(namespace, &[name]).await;
                let why = warnings.first().map_or_else(String::new, |w| format!(": {w}"));
                return format!(
                    "no control-plane pod {pod_name} was created{why}; check the StatefulSet: kubectl -n {namespace} describe statefulset {name}"
                );
            }
            Err(e) => {
                return format!(
                    "could not read pod {namespace}/{pod_name}: {}",
                    self.explain("", e)
                );
            }
        };
        let mut reasons = Vec::new();
        // The control plane waits for a deployed etcd: its trouble comes first.
        let etcd_pod = format!("{}-0", crate::engine::etcd::etcd_name(name));
        if let Ok(Some(etcd)) = pods.get_opt(&etcd_pod).await {
            for reason in self.pod_reasons(namespace, &etcd_pod, &etcd).await {
                reasons.push(format!("the deployed etcd's {reason}"));
            }
        }
        reasons.extend(self.pod_reasons(namespace, &pod_name, &pod).await);
        if reasons.is_empty() {
            for warning in self.warning_events(namespace, &[&pod_name]).await.into_iter().take(3) {
                reasons.push(warning);
            }
        }
        if reasons.is_empty() {
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            reasons.push(format!("pod {pod_name} is {phase} but not Ready yet"));
        }
        reasons.join("; ")
    }

    /// Why one pod does not run: unschedulable, or a container waiting (with the last log
    /// lines of one that crashes).
    async fn pod_reasons(&self, namespace: &str, pod_name: &str, pod: &Pod) -> Vec<String> {
        let mut reasons = Vec::new();
        for event in pod_progress(pod) {
            match event {
                ReadyEvent::Unschedulable(msg) => {
                    reasons.push(format!("pod {pod_name} is Pending: {msg}"));
                }
                ReadyEvent::Waiting { reason, message } => {
                    let mut line = format!("pod {pod_name}: {reason}");
                    if !message.is_empty() {
                        line.push_str(&format!(": {message}"));
                    }
                    if reason == "CrashLoopBackOff" || reason == "Error" {
                        let logs = self.last_log_lines(namespace, pod_name, 5).await;
                        if !logs.is_empty() {
                            line.push_str(&format!(
                                "; last log lines:\n    {}",
                                logs.join("\n    ")
                            ));
                        }
                    }
                    reasons.push(line);
                }
                _ => {}
            }
        }
        reasons
    }

    async fn last_log_lines(&self, namespace: &str, pod: &str, lines: i64) -> Vec<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = LogParams { tail_lines: Some(lines), ..Default::default() };
        match pods.logs(pod, &params).await {
            Ok(text) => text.lines().map(str::to_string).filter(|l| !l.is_empty()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Recent Warning events about the named objects, newest first, as "Reason: message".
    pub async fn warning_events(&self, namespace: &str, objects: &[&str]) -> Vec<String> {
        self.warning_events_since(namespace, objects, None).await
    }

    /// [`Host::warning_events`], leaving out those last seen before `since` (a running
    /// cluster's start-up noise: probes failing while it started, a claim binding).
    pub async fn warning_events_since(
        &self,
        namespace: &str,
        objects: &[&str],
        since: Option<jiff::Timestamp>,
    ) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let Ok(list) = api.list(&ListParams::default()).await else { return Vec::new() };
        let last_seen = |e: &Event| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        };
        let mut events: Vec<&Event> = list
            .items
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| e.involved_object.name.as_deref().is_some_and(|n| objects.contains(&n)))
            .filter(|e| since.is_none_or(|since| last_seen(e).is_none_or(|t| t >= since)))
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.last_timestamp.clone().map(|t| t.0)));
        events
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.as_deref().unwrap_or("Warning"),
                    e.message.as_deref().unwrap_or_default().trim()
                )
            })
            .collect()
    }
}

/// Whether a container of the pod has crashed at least twice and is backing off.
fn crash_looping(pod: &Pod) -> bool {
    pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).any(|c| {
        c.restart_count >= 2
            && c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff")
    })
}

/// Whether a log line is at ERROR level, in the engine's console or JSON encoding or klog's.
pub fn is_error_line(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().take(4).collect();
    let klog =
        line.len() > 5 && line.starts_with('E') && line[1..5].chars().all(|c| c.is_ascii_digit());
    words.iter().any(|w| w.trim_matches(|c: char| !c.is_ascii_alphabetic()) == "ERROR")
        || line.contains("\"level\":\"error\"")
        || line.contains("level=error")
        || klog
}

/// Objects added or changed by one watcher event.
fn applied<K>(event: watcher::Event<K>) -> Vec<K> {
    match event {
        watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => vec![obj],
        _ => Vec::new(),
    }
}

/// What a control-plane pod says about its progress.
pub fn pod_progress(pod: &Pod) -> Vec<ReadyEvent> {
    let mut out = Vec::new();
    let Some(status) = &pod.status else { return out };
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    match condition("PodScheduled") {
        Some(c) if c.status == "True" => out.push(ReadyEvent::Scheduled),
        Some(c) => out.push(ReadyEvent::Unschedulable(
            c.message.clone().or_else(|| c.reason.clone()).unwrap_or_default(),
        )),
        None => {}
    }
    if condition("Initialized").is_some_and(|c| c.status == "True") {
        out.push(ReadyEvent::Initialized);
    }
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in statuses {
        if let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.clone().unwrap_or_default();
            if matches!(
                reason.as_str(),
                "ErrImagePull"
                    | "ImagePullBackOff"
                    | "CrashLoopBackOff"
                    | "InvalidImageName"
                    | "ErrImageNeverPull"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
            ) {
                out.push(ReadyEvent::Waiting {
                    reason,
                    message: waiting.message.clone().unwrap_or_default(),
                });
            }
        }
    }
    if condition("Ready").is_some_and(|c| c.status == "True") {
        out.push(ReadyEvent::PodReady);
    }
    out
}
