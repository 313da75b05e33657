//! `vc doctor`: checks that the host, the user's rights, storage, network policy enforcement,
//! the engine images, the kubeconfig files and the local state are fit for `vc`, one line each
//! (pass / warn / fail) with a hint. Probes create throwaway objects and always remove them;
//! `--skip-probes` keeps the run read-only. Exit 1 when a check fails.

use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::cli::{DoctorArgs, OutputFormat};
use crate::commands::Invocation;
use crate::engine::{images, rbac};
use crate::error::{CliError, Exit};
use crate::forward::ForwardStore;
use crate::host::Host;
use crate::host::doctor::{
    Access, ClaimOutcome, ImageOutcome, PolicyOutcome, ProbePlan, ProbeResults, StorageClassInfo,
};
use crate::kubeconfig::KubeconfigPaths;
use crate::kubeconfig::health::{self, Writability};

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// One line of the report. JSON field names are stable (docs/output.md).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    name: &'static str,
    status: Status,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

fn check(name: &'static str, status: Status, message: impl Into<String>) -> Check {
    Check { name, status, message: message.into(), hint: None }
}

impl Check {
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    ok: bool,
    checks: Vec<Check>,
}

pub async fn run(invocation: &Invocation, args: DoctorArgs) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    let paths = KubeconfigPaths::resolve(invocation.global.kubeconfig.as_deref());
    match invocation.host().await {
        Ok(host) => host_checks(invocation, &args, &host, &mut checks).await?,
        Err(e) => {
            checks.push(
                check("host", Status::Fail, format!("{e:#}"))
                    .hint("check KUBECONFIG, --kubeconfig and --context (kubectl cluster-info)"),
            );
            for name in ["rights", "storage", "network policies", "images"] {
                checks.push(check(name, Status::Skip, "the host cannot be reached"));
            }
        }
    }
    match &paths {
        Ok(paths) => checks.extend(kubeconfig_checks(paths, args.fix)),
        Err(e) => checks.push(check("kubeconfig", Status::Fail, e.to_string())),
    }
    checks.extend(state_checks(args.fix).await);
    report(invocation, checks)
}

fn report(invocation: &Invocation, checks: Vec<Check>) -> anyhow::Result<()> {
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let printer = &invocation.printer;
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => {
            printer.structured_value(&Report { ok: failed == 0, checks: checks.clone() })?;
        }
        OutputFormat::Name => {
            let names: Vec<&str> =
                checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.name).collect();
            if !names.is_empty() {
                printer.data(&names.join("\n"));
            }
        }
        OutputFormat::Table => {
            let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
            let mut text = String::new();
            for c in &checks {
                let label = match c.status {
                    Status::Pass => printer.paint_stdout(c.status.label(), "32"),
                    Status::Warn => printer.paint_stdout(c.status.label(), "33"),
                    Status::Fail => printer.paint_stdout(c.status.label(), "31"),
                    Status::Skip => printer.paint_stdout(c.status.label(), "2"),
                };
                text.push_str(&format!("{label}  {:<width$}  {}\n", c.name, c.message));
                if let Some(hint) = &c.hint {
                    text.push_str(&format!("      {:<width$}  hint: {hint}\n", ""));
                }
            }
            printer.data(&text);
        }
    }
    if failed > 0 {
        return Err(CliError::new(
            Exit::Failure,
            format!(
                "{failed} of {} checks failed (see the hints above)",
                checks.iter().filter(|c| c.status != Status::Skip).count()
            ),
        )
        .into());
    }
    Ok(())
}

async fn host_checks(
    invocation: &Invocation,
    args: &DoctorArgs,
    host: &Host,
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    let answer = tokio::time::timeout(Duration::from_secs(10), host.server_version()).await;
    let version = match answer {
        Ok(Ok(v)) => v,
        failure => {
            let message = match failure {
                Ok(Err(e)) => e.to_string(),
                _ => host.no_answer(Duration::from_secs(10)).to_string(),
            };
            checks.push(check("host", Status::Fail, message).hint(format!(
                "check that the cluster runs and the context is right (kubectl --context {} cluster-info)",
                host.context
            )));
            for name in ["rights", "storage", "network policies", "images"] {
                checks.push(check(name, Status::Skip, "the host cannot be reached"));
            }
            return Ok(());
        }
    };
    checks.push(host_version_check(host, &version));

    let namespace = invocation.global.namespace.clone();
    // A host that stops answering half-way still gets a report, not just an error.
    let (rights, can_create_namespace) = match rights_checks(host, namespace.as_deref()).await {
        Ok(found) => found,
        Err(e) => (vec![check("rights", Status::Fail, format!("{e:#}"))], false),
    };
    checks.extend(rights);

    let classes = match host.storage_classes().await {
        Ok(classes) => classes,
        Err(e) => {
            checks.push(check("storage", Status::Fail, e.to_string()));
            for name in ["network policies", "images"] {
                checks.push(check(name, Status::Skip, "the host stopped answering"));
            }
            return Ok(());
        }
    };
    let default_class = classes.as_ref().and_then(|c| c.iter().find(|c| c.is_default).cloned());
    if args.skip_probes {
        checks.push(storage_check(classes.as_deref(), None));
        checks.push(check("network policies", Status::Skip, "not probed (--skip-probes)"));
        checks.push(check("images", Status::Skip, "not probed (--skip-probes)"));
        return Ok(());
    }
    let probe_namespace = match (&namespace, can_create_namespace) {
        (Some(ns), _) => Some((ns.clone(), false)),
        (None, true) => Some((run_prefix(), true)),
        (None, false) => None,
    };
    let Some((probe_ns, own_namespace)) = probe_namespace else {
        checks.push(storage_check(classes.as_deref(), None));
        for name in ["network policies", "images"] {
            checks.push(
                check(name, Status::Warn, "not probed: you cannot create a namespace to probe in")
                    .hint("run vc doctor -n NS with a namespace where you may create pods"),
            );
        }
        return Ok(());
    };
    let resolved = images::resolve(&crate::spec::VirtualClusterSpec::default())?;
    let plan = ProbePlan {
        prefix: if own_namespace { probe_ns.clone() } else { run_prefix() },
        namespace: probe_ns,
        own_namespace,
        images: vec![resolved.engine, resolved.control_plane],
        probe_image: args.probe_image.clone(),
        claim: default_class.is_some(),
        timeout: args.timeout,
    };
    invocation.printer.info(&format!(
        "probing in namespace {} (up to {}; everything is removed afterwards)",
        plan.namespace,
        crate::output::human_duration(args.timeout)
    ));
    // The probes bound their own waits; this bounds a host that stops answering mid-way.
    let outcome = tokio::select! {
        result = tokio::time::timeout(args.timeout + Duration::from_secs(30), host.run_probes(&plan)) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    let left = tokio::time::timeout(Duration::from_secs(30), host.remove_probes(&plan))
        .await
        .unwrap_or_else(|_| {
            vec![format!("objects labelled vc.dev/doctor={} in {}", plan.prefix, plan.namespace)]
        });
    for object in &left {
        invocation.printer.warn(&format!(
            "could not remove {object}; delete it with kubectl delete (label vc.dev/doctor={})",
            plan.prefix
        ));
    }
    let results = match outcome {
        None => {
            return Err(CliError::interrupted(if left.is_empty() {
                "interrupted; the probe objects were removed".to_string()
            } else {
                "interrupted; some probe objects are left (see the warnings)".to_string()
            })
            .into());
        }
        Some(Ok(Ok(results))) => results,
        Some(Ok(Err(e))) => {
            checks.push(storage_check(classes.as_deref(), None));
            for name in ["network policies", "images"] {
                checks.push(check(name, Status::Warn, format!("not probed: {e}")));
            }
            return Ok(());
        }
        Some(Err(_)) => {
            checks.push(storage_check(classes.as_deref(), None));
            for name in ["network policies", "images"] {
                checks.push(check(name, Status::Warn, "not probed: the host stopped answering"));
            }
            return Ok(());
        }
    };
    checks.push(storage_check(classes.as_deref(), results.claim.as_ref()));
    checks.push(policy_check(&results, &plan));
    checks.push(images_check(&results));
    Ok(())
}

/// A name unique to this run: `vc-doctor-` and six hex digits.
fn run_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or_default();
    format!("vc-doctor-{:06x}", (nanos ^ std::process::id().rotate_left(12)) & 0xff_ffff)
}

fn host_version_check(host: &Host, version: &crate::host::doctor::ServerVersion) -> Check {
    let default = images::DEFAULT_KUBERNETES_MINOR;
    let default_minor: Option<u32> = default.split('.').nth(1).and_then(|m| m.parse().ok());
    let oldest = images::KUBERNETES_VERSIONS.first().map_or("1.30", |(m, _)| *m);
    let oldest_minor: Option<u32> = oldest.split('.').nth(1).and_then(|m| m.parse().ok());
    let base = format!("{} answers, Kubernetes {}", host.server, version.git_version);
    match (version.minor, default_minor, oldest_minor) {
        (Some(host_minor), _, Some(oldest_minor)) if host_minor < oldest_minor => check(
            "host",
            Status::Warn,
            format!("{base}: older than {oldest}, the oldest Kubernetes this engine release runs"),
        )
        .hint("the engine is not tested on this host version; upgrade the host if creates fail"),
        (Some(host_minor), Some(default_minor), _) if default_minor > host_minor => check(
            "host",
            Status::Pass,
            format!(
                "{base}; virtual clusters default to {default}, newer than the host, which is fine (the control plane runs its own binaries)"
            ),
        ),
        _ => check("host", Status::Pass, format!("{base}; virtual clusters default to {default}")),
    }
}

/// Access reviews for every right vc needs in a namespace, namespace creation apart, and the
/// cluster-wide list `vc` uses to find clusters without -n. Returns the checks and whether
/// namespaces may be created.
async fn rights_checks(host: &Host, namespace: Option<&str>) -> anyhow::Result<(Vec<Check>, bool)> {
    // Without -n vc creates vc-NAME, where only cluster-wide grants can apply.
    let scope = namespace.map_or_else(|| "vc-doctor".to_string(), str::to_string);
    let mut wanted: Vec<Access> = rbac::required_rights(&scope)
        .into_iter()
        .map(|(group, resource, verb)| Access {
            group,
            resource,
            verb,
            namespace: Some(scope.clone()),
        })
        .collect();
    let create_namespace = Access {
        group: String::new(),
        resource: "namespaces".into(),
        verb: "create".into(),
        namespace: None,
    };
    let list_everywhere = Access {
        group: "apps".into(),
        resource: "statefulsets".into(),
        verb: "list".into(),
        namespace: None,
    };
    wanted.push(create_namespace.clone());
    wanted.push(list_everywhere.clone());
    let answers: Vec<(Access, Result<Option<bool>, crate::host::HostError>)> =
        futures::stream::iter(wanted)
            .map(|access| async move {
                let answer = host.can(&access).await;
                (access, answer)
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let mut missing = Vec::new();
    let mut unanswered = 0;
    let mut namespace_ok = false;
    let mut list_ok = false;
    for (access, answer) in &answers {
        let allowed = match answer {
            Ok(Some(allowed)) => *allowed,
            Ok(None) => {
                unanswered += 1;
                continue;
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        };
        if *access == create_namespace {
            namespace_ok = allowed;
        } else if *access == list_everywhere {
            list_ok = allowed;
        } else if !allowed {
            missing.push((access.group.clone(), access.resource.clone(), access.verb.clone()));
        }
    }
    let total = answers.len() - 2;
    let user = host.user_name().await.unwrap_or_else(|| "USER".to_string());
    let mut checks = Vec::new();
    let where_ = namespace.map_or_else(
        || "a namespace vc creates (cluster-wide grants)".to_string(),
        |ns| format!("namespace {ns}"),
    );
    if unanswered > 0 {
        checks.push(
            check("rights", Status::Warn, format!("the host did not answer {unanswered} access reviews"))
                .hint("the host's authorizer may not support SelfSubjectAccessReview; creates check again before applying"),
        );
    } else if missing.is_empty() {
        checks.push(check(
            "rights",
            Status::Pass,
            format!("all {total} rights vc needs in {where_}"),
        ));
    } else {
        let rules: Vec<String> =
            rbac::rules_of(missing.clone()).iter().map(rbac::describe_rule).collect();
        let hint = match namespace {
            Some(ns) => format!(
                "a cluster admin grants them once: vc rbac {ns} --user {user} | kubectl apply -f -"
            ),
            None => "pass -n NS for a namespace where a cluster admin granted them (vc rbac NS --user YOU)".to_string(),
        };
        checks.push(
            check(
                "rights",
                Status::Fail,
                format!(
                    "{} of {total} rights missing in {where_}: {}",
                    missing.len(),
                    rules.join(", ")
                ),
            )
            .hint(hint),
        );
    }
    if namespace.is_none() {
        checks.push(if namespace_ok {
            check(
                "namespace creation",
                Status::Pass,
                "you may create namespaces (vc create makes vc-NAME)",
            )
        } else {
            check(
                "namespace creation",
                Status::Fail,
                "you may not create namespaces, so vc create NAME cannot make vc-NAME",
            )
            .hint("use an existing namespace: vc create NAME -n NS (vc doctor -n NS checks it)")
        });
    }
    checks.push(if list_ok {
        check("cluster-wide list", Status::Pass, "clusters are found by name in every namespace")
    } else {
        check(
            "cluster-wide list",
            Status::Warn,
            "you may not list StatefulSets in all namespaces: without -n, vc looks only in vc-NAME and your context's namespace",
        )
        .hint("pass -n NS to commands for clusters in other namespaces")
    });
    Ok((checks, namespace_ok))
}

fn storage_check(classes: Option<&[StorageClassInfo]>, claim: Option<&ClaimOutcome>) -> Check {
    let Some(classes) = classes else {
        return check("storage", Status::Warn, "you may not list storage classes").hint(
            "a cluster admin can tell whether a default class exists (kubectl get storageclass)",
        );
    };
    let Some(class) = classes.iter().find(|c| c.is_default) else {
        let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        return check(
            "storage",
            Status::Fail,
            format!("no default StorageClass (classes: {known}): the control plane's volume claim would stay Pending"),
        )
        .hint("mark one default: kubectl annotate storageclass NAME storageclass.kubernetes.io/is-default-class=true (kind, k3d and minikube ship one)");
    };
    let mode = if class.wait_for_first_consumer {
        "WaitForFirstConsumer: claims bind once a pod uses them"
    } else {
        "binds at once"
    };
    let base = format!("default class {} ({}, {mode})", class.name, class.provisioner);
    match claim {
        None => check("storage", Status::Pass, format!("{base}; binding not probed")),
        Some(ClaimOutcome::Bound { seconds }) => {
            check("storage", Status::Pass, format!("{base}; a probe claim bound in {seconds:.1}s"))
        }
        Some(ClaimOutcome::Pending(why)) => {
            check("storage", Status::Fail, format!("{base}; a probe claim stayed Pending ({why})"))
                .hint(format!(
                    "check the provisioner {} (kubectl get pods -A | grep -i provisioner)",
                    class.provisioner
                ))
        }
        Some(ClaimOutcome::Failed(event)) => {
            check("storage", Status::Fail, format!("{base}; a probe claim failed: {event}"))
                .hint(format!("check the provisioner {}", class.provisioner))
        }
    }
}

fn policy_check(results: &ProbeResults, plan: &ProbePlan) -> Check {
    match &results.policy {
        PolicyOutcome::Enforced => check(
            "network policies",
            Status::Pass,
            "enforced: a deny policy stopped traffic between two probe pods",
        ),
        PolicyOutcome::NotEnforced => check(
            "network policies",
            Status::Warn,
            "NOT enforced: traffic passed a deny policy, so vc's isolation would be silently unenforced",
        )
        .hint("use a CNI that enforces NetworkPolicies (Calico, Cilium, kube-router, ...)"),
        PolicyOutcome::Unverified(why) => check(
            "network policies",
            Status::Warn,
            format!("not enforced as far as vc can tell, could not verify: {why}; isolation may be silently unenforced"),
        )
        .hint(format!(
            "the probe needs {} (sh, httpd, nc) on a node: --probe-image IMAGE for a mirror",
            plan.probe_image
        )),
    }
}

fn images_check(results: &ProbeResults) -> Check {
    let failed: Vec<String> = results
        .images
        .iter()
        .filter_map(|(image, outcome)| match outcome {
            ImageOutcome::PullFailed { reason, message } => {
                Some(format!("{image}: {reason}: {message}"))
            }
            _ => None,
        })
        .collect();
    let unknown: Vec<String> = results
        .images
        .iter()
        .filter_map(|(image, outcome)| match outcome {
            ImageOutcome::Unknown(why) => Some(format!("{image} ({why})")),
            _ => None,
        })
        .collect();
    let all: Vec<&str> = results.images.iter().map(|(i, _)| i.as_str()).collect();
    if !failed.is_empty() {
        check("images", Status::Fail, format!("cannot pull on a node: {}", failed.join("; ")))
            .hint("let the nodes reach the registry, load the images onto them (kind load docker-image, k3d image import), or point vc at a mirror (--engine-image, --control-plane-image)")
    } else if !unknown.is_empty() {
        check("images", Status::Warn, format!("could not verify: {}", unknown.join("; ")))
    } else {
        check("images", Status::Pass, format!("present or pullable on a node: {}", all.join(", ")))
    }
}

fn kubeconfig_checks(paths: &KubeconfigPaths, fix: bool) -> Vec<Check> {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut fixed = Vec::new();
    for path in paths.precedence() {
        match health::writability(path) {
            Writability::Writable => {}
            Writability::WouldCreate => {
                if path == paths.default_file() {
                    notes.push(format!("{} will be created", path.display()));
                }
            }
            Writability::NotWritable(why) => problems.push(format!("{}: {why}", path.display())),
        }
        if let Some((lock, age)) = health::stale_lock(path) {
            if fix {
                match health::remove_stale_lock(&lock) {
                    Ok(()) => fixed.push(format!("removed stale lock {}", lock.display())),
                    Err(e) => problems.push(format!("cannot remove {}: {e}", lock.display())),
                }
            } else {
                problems.push(format!(
                    "{} is {} old, left by a process that died",
                    lock.display(),
                    crate::output::human_age(age)
                ));
            }
        }
    }
    let files: Vec<String> = paths.precedence().iter().map(|p| p.display().to_string()).collect();
    if problems.is_empty() {
        let mut message = format!("writable: {}", files.join(", "));
        for extra in notes.iter().chain(&fixed) {
            message.push_str(&format!("; {extra}"));
        }
        vec![check("kubeconfig", Status::Pass, message)]
    } else {
        vec![
            check("kubeconfig", Status::Fail, problems.join("; "))
                .hint("fix the file's permissions, or remove a stale .lock with vc doctor --fix"),
        ]
    }
}

async fn state_checks(fix: bool) -> Vec<Check> {
    let store = match ForwardStore::from_env() {
        Ok(store) => store,
        Err(e) => {
            return vec![
                check("state directory", Status::Fail, e.to_string())
                    .hint("set XDG_STATE_HOME or HOME"),
            ];
        }
    };
    let dir = store.dir().to_path_buf();
    let mut checks = vec![match health::writability(&dir.join(".probe")) {
        Writability::NotWritable(why) => {
            check("state directory", Status::Fail, format!("{}: {why}", dir.display()))
                .hint("fix its permissions or point XDG_STATE_HOME elsewhere")
        }
        _ => check("state directory", Status::Pass, format!("{} is writable", dir.display())),
    }];
    let statuses = match store.list_statuses().await {
        Ok(s) => s,
        Err(e) => {
            checks.push(check("forwards", Status::Warn, e.to_string()));
            return checks;
        }
    };
    let running = statuses.iter().filter(|s| s.alive && s.answering).count();
    let stale: Vec<_> = statuses.iter().filter(|s| !s.alive || !s.answering).collect();
    if stale.is_empty() {
        checks.push(check("forwards", Status::Pass, format!("{running} running, none stale")));
        return checks;
    }
    let describe = |s: &&crate::forward::ForwardStatus| {
        let what = if s.alive { "not answering" } else { "not running" };
        format!("{}/{} on port {} ({what})", s.state.namespace, s.state.name, s.state.port)
    };
    if !fix {
        let names: Vec<String> = stale.iter().map(describe).collect();
        checks.push(
            check("forwards", Status::Warn, format!("{running} running; stale: {}", names.join(", ")))
                .hint("vc doctor --fix stops them and removes their state files (vc connect NAME starts a new one)"),
        );
        return checks;
    }
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for status in &stale {
        let key = status.state.key();
        if status.alive
            && let Err(e) = store.stop(&key, Duration::from_secs(2)).await
        {
            failed.push(format!("{}: {e}", describe(status)));
            continue;
        }
        match store.remove(&key) {
            Ok(()) => removed.push(describe(status)),
            Err(e) => failed.push(format!("{}: {e}", describe(status))),
        }
    }
    checks.push(if failed.is_empty() {
        check(
            "forwards",
            Status::Pass,
            format!("{running} running; removed stale {}", removed.join(", ")),
        )
    } else {
        check("forwards", Status::Fail, format!("could not clean {}", failed.join(", ")))
    });
    checks
}
