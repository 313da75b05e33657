//! Warm pool scenarios: `vc pool create | list | describe | delete | keep` and
//! `vc create --from-pool` as real processes against the fake API server, including 20
//! claimants at once and claims while no keeper runs.

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fakekube::FakeKube;
use serde_json::Value;

use crate::support::{Run, Sandbox, Vc, fake_host};

fn vc(sandbox: &Sandbox, args: &[&str]) -> Run {
    Vc::new(sandbox).args(args).run()
}

/// `vc ARGS` started in the background with the sandbox's environment.
fn spawn(sandbox: &Sandbox, args: &[&str]) -> Child {
    Vc::new(sandbox).args(args).spawn()
}

fn finish(child: Child) -> Run {
    Run::of(child)
}

/// The control-plane StatefulSets labelled for `pool`.
fn members(fake: &FakeKube, pool: &str) -> Vec<Value> {
    fake.list("statefulsets", None)
        .into_iter()
        .filter(|s| s["metadata"]["labels"]["vc.dev/pool"] == pool)
        .collect()
}

fn unclaimed_ready(fake: &FakeKube, pool: &str) -> usize {
    members(fake, pool)
        .iter()
        .filter(|s| s["metadata"]["labels"]["vc.dev/claimed-as"].is_null())
        .filter(|s| s["status"]["readyReplicas"].as_i64().unwrap_or(0) >= 1)
        .count()
}

#[track_caller]
fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pool_status(sandbox: &Sandbox, pool: &str) -> Value {
    let listed = vc(sandbox, &["pool", "list", "-o", "json"]);
    listed.code(0);
    listed.json().as_array().unwrap().iter().find(|p| p["name"] == pool).cloned().unwrap()
}

#[test]
fn a_claimed_member_takes_the_claimants_name_everywhere() {
    let (fake, sandbox) = fake_host();
    let created = vc(&sandbox, &["pool", "create", "ci", "--size", "2", "--ttl", "1h"]);
    created.code(0);
    assert!(created.stderr.contains("pool \"ci\" created"), "{}", created.stderr);
    assert_eq!(members(&fake, "ci").len(), 2, "two members started at once (surge 2)");
    wait_until("two ready members", Duration::from_secs(10), || unclaimed_ready(&fake, "ci") == 2);
    for member in members(&fake, "ci") {
        let annotations = &member["metadata"]["annotations"];
        assert!(annotations["vc.dev/expires-at"].is_null(), "no TTL while pooled: {annotations}");
    }

    let listed = vc(&sandbox, &["list", "-o", "json"]).json();
    let statuses: Vec<&str> =
        listed.as_array().unwrap().iter().filter_map(|c| c["status"].as_str()).collect();
    assert_eq!(statuses, ["Pooled", "Pooled"]);
    let table = vc(&sandbox, &["list"]);
    assert!(table.stdout.contains("(pool ci)"), "{}", table.stdout);

    let claimed =
        vc(&sandbox, &["create", "pr-1", "--from-pool", "ci", "--no-connect", "-o", "json"]);
    claimed.code(0);
    let result = claimed.json();
    assert_eq!(result["name"], "pr-1");
    assert_eq!(result["pool"], "ci");
    let member = result["hostName"].as_str().unwrap().to_string();
    assert!(member.starts_with("ci-"), "{member}");
    assert_eq!(result["namespace"], format!("vc-{member}"));
    assert!(claimed.stderr.contains(&format!("claimed member \"{member}\"")), "{}", claimed.stderr);
    // The TTL counts from the claim.
    assert!(result["expiresAt"].is_string(), "{result}");

    // Every command finds it by the claimant's name.
    let described = vc(&sandbox, &["describe", "pr-1", "-o", "json"]);
    described.code(0);
    let d = described.json();
    assert_eq!(d["hostName"], member.as_str());
    assert_eq!(d["pool"], "ci");
    assert_eq!(d["status"], "Running");
    let text = vc(&sandbox, &["describe", "pr-1"]);
    assert!(text.stdout.contains(&format!("keep the member's name {member}")), "{}", text.stdout);
    let listed = vc(&sandbox, &["list", "-o", "json"]).json();
    let row = listed.as_array().unwrap().iter().find(|c| c["name"] == "pr-1").cloned().unwrap();
    assert_eq!(row["status"], "Running");
    assert_eq!(row["hostName"], member.as_str());
    vc(&sandbox, &["describe", &member]).code(3);
    // The name is taken now.
    vc(&sandbox, &["create", "pr-1", "--from-pool", "ci", "--no-connect"]).code(6);

    vc(&sandbox, &["pause", "pr-1"]).code(0);
    let sts = fake.get("statefulsets", &format!("vc-{member}"), &member).unwrap();
    assert_eq!(sts["spec"]["replicas"], 0);
    vc(&sandbox, &["resume", "pr-1", "--timeout", "20s"]).code(0);

    let described = vc(&sandbox, &["pool", "describe", "ci", "-o", "json"]);
    described.code(0);
    let p = described.json();
    assert_eq!(p["claims"], 1);
    assert_eq!(p["ready"], 1);
    assert!(p["claimSecondsP50"].as_f64().is_some_and(|s| s < 3.0), "{p}");

    vc(&sandbox, &["delete", "pr-1", "--yes"]).code(0);
    assert!(fake.get("namespaces", "", &format!("vc-{member}")).is_none(), "member namespace gone");
    assert_eq!(members(&fake, "ci").len(), 1);
}

#[test]
fn twenty_concurrent_claims_never_share_a_member() {
    let (fake, sandbox) = fake_host();
    vc(&sandbox, &["pool", "create", "burst", "--size", "12", "--max-surge", "12"]).code(0);
    wait_until("twelve ready members", Duration::from_secs(20), || {
        unclaimed_ready(&fake, "burst") == 12
    });
    let children: Vec<Child> = (0..20)
        .map(|i| {
            let name = format!("job-{i}");
            spawn(
                &sandbox,
                &["create", &name, "--from-pool", "burst", "--no-connect", "-o", "json"],
            )
        })
        .collect();
    let runs: Vec<Run> = children.into_iter().map(finish).collect();
    let mut claimed = Vec::new();
    let mut fallbacks = 0;
    for run in &runs {
        run.code(0);
        let result = run.json();
        match result["hostName"].as_str() {
            Some(member) => claimed.push(member.to_string()),
            None => {
                assert!(run.stderr.contains("the usual way"), "a fallback says so: {}", run.stderr);
                fallbacks += 1;
            }
        }
    }
    let distinct: BTreeSet<&String> = claimed.iter().collect();
    assert_eq!(distinct.len(), claimed.len(), "a member claimed twice: {claimed:?}");
    assert_eq!(claimed.len(), 12, "every warm member claimed: {claimed:?}");
    assert_eq!(fallbacks, 8);
    // On the host: each member carries exactly one claimant, each claimant one cluster.
    let owners: BTreeSet<String> = members(&fake, "burst")
        .iter()
        .filter_map(|s| s["metadata"]["labels"]["vc.dev/claimed-as"].as_str().map(str::to_string))
        .collect();
    assert_eq!(owners.len(), 12);
    let listed = vc(&sandbox, &["list", "-o", "json"]).json();
    let names: BTreeSet<&str> =
        listed.as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names.len(), 20, "twenty distinct clusters: {names:?}");
}

#[test]
fn pool_delete_removes_its_unclaimed_members_and_nothing_else() {
    let (fake, sandbox) = fake_host();
    vc(&sandbox, &["pool", "create", "a", "--size", "2"]).code(0);
    vc(&sandbox, &["pool", "create", "b", "--size", "1"]).code(0);
    vc(&sandbox, &["create", "dev", "--no-connect"]).code(0);
    wait_until("members ready", Duration::from_secs(10), || {
        unclaimed_ready(&fake, "a") == 2 && unclaimed_ready(&fake, "b") == 1
    });
    let claim = vc(&sandbox, &["create", "mine", "--from-pool", "a", "--no-connect", "-o", "json"]);
    claim.code(0);
    let kept = claim.json()["hostName"].as_str().unwrap().to_string();

    let refused = vc(&sandbox, &["pool", "delete", "a"]);
    refused.code(2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(members(&fake, "a").len(), 2, "nothing deleted before the confirmation");

    let deleted = vc(&sandbox, &["pool", "delete", "a", "--yes"]);
    deleted.code(0);
    assert!(deleted.stderr.contains("1 claimed cluster(s) stay"), "{}", deleted.stderr);
    wait_until("the namespace of the unclaimed member to go", Duration::from_secs(10), || {
        members(&fake, "a").len() == 1
    });
    let left = members(&fake, "a");
    assert_eq!(left.len(), 1, "only the claimed member stays");
    assert_eq!(left[0]["metadata"]["name"], kept.as_str());
    assert_eq!(members(&fake, "b").len(), 1, "the other pool is untouched");
    assert!(fake.get("statefulsets", "vc-dev", "dev").is_some(), "a plain cluster is untouched");
    vc(&sandbox, &["describe", "mine"]).code(0);
    vc(&sandbox, &["pool", "describe", "a"]).code(3);
    let pools = vc(&sandbox, &["pool", "list", "-o", "name"]);
    assert_eq!(pools.stdout, "b\n");
    // The namespace vc made for definitions goes with the last pool.
    assert!(fake.get("namespaces", "", "vc-pools").is_some(), "pool b is still defined there");
    vc(&sandbox, &["pool", "delete", "b", "--yes"]).code(0);
    wait_until("the definitions' namespace to go", Duration::from_secs(10), || {
        fake.get("namespaces", "", "vc-pools").is_none()
    });
}

#[test]
fn claims_work_with_the_keeper_down_and_the_keeper_refills() {
    let (fake, sandbox) = fake_host();
    vc(&sandbox, &["pool", "create", "ci", "--size", "2", "--max-surge", "1", "--no-fill"]).code(0);
    assert!(members(&fake, "ci").is_empty(), "--no-fill starts nothing");

    let mut keeper = spawn(&sandbox, &["pool", "keep", "--interval", "1s"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while unclaimed_ready(&fake, "ci") < 2 {
        if Instant::now() > deadline {
            let _ = keeper.kill();
            panic!("the keeper did not fill the pool: {}", finish(keeper).stderr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM ends the keeper cleanly.
    let pid = keeper.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let stopped = finish(keeper);
    stopped.code(0);
    assert!(stopped.stderr.contains("starting ci-"), "{}", stopped.stderr);
    assert!(stopped.stderr.contains("is ready ("), "refill time printed: {}", stopped.stderr);

    // No keeper: the two members there still serve two claims.
    for name in ["one", "two"] {
        let run =
            vc(&sandbox, &["create", name, "--from-pool", "ci", "--no-connect", "-o", "json"]);
        run.code(0);
        assert!(run.json()["hostName"].is_string(), "{name} was claimed: {}", run.stderr);
    }
    // Then --pool-wait waits for a member that no keeper starts.
    let waited = vc(
        &sandbox,
        &["create", "three", "--from-pool", "ci", "--pool-wait", "--timeout", "2s", "--no-connect"],
    );
    waited.code(4);
    assert!(waited.stderr.contains("no member of pool \"ci\" became ready"), "{}", waited.stderr);

    // A pass of the keeper starts replacements, at most --max-surge at once.
    vc(&sandbox, &["pool", "keep", "--once"]).code(0);
    assert_eq!(members(&fake, "ci").len(), 3, "one replacement (surge 1)");
    wait_until("the replacement is ready", Duration::from_secs(10), || {
        unclaimed_ready(&fake, "ci") == 1
    });
    vc(&sandbox, &["pool", "keep", "--once"]).code(0);
    wait_until("the pool is full again", Duration::from_secs(10), || {
        unclaimed_ready(&fake, "ci") == 2
    });
    let status = pool_status(&sandbox, "ci");
    assert_eq!(status["ready"], 2);
    assert_eq!(status["claims"], 2);
    assert!(status["refillSecondsP50"].as_f64().is_some(), "{status}");
}

#[test]
fn a_paused_pool_resumes_the_member_it_hands_out() {
    let (fake, sandbox) = fake_host();
    vc(&sandbox, &["pool", "create", "cheap", "--size", "1", "--paused"]).code(0);
    wait_until("the member is ready", Duration::from_secs(10), || {
        unclaimed_ready(&fake, "cheap") == 1
    });
    vc(&sandbox, &["pool", "keep", "--once"]).code(0);
    let member = members(&fake, "cheap").remove(0);
    assert_eq!(member["spec"]["replicas"], 0, "paused while it waits");
    assert_eq!(member["metadata"]["annotations"]["loft.sh/paused"], "true");
    let listed = vc(&sandbox, &["list", "-o", "json"]).json();
    assert_eq!(listed[0]["status"], "Pooled");

    let claimed = vc(&sandbox, &["create", "woken", "--from-pool", "cheap", "--no-connect"]);
    claimed.code(0);
    assert!(
        claimed.stderr.contains("resumed \"woken\""),
        "resume time printed: {}",
        claimed.stderr
    );
    let member = members(&fake, "cheap").remove(0);
    assert_eq!(member["spec"]["replicas"], 1);
    let described = vc(&sandbox, &["describe", "woken", "-o", "json"]).json();
    assert_eq!(described["status"], "Running");
}

#[test]
fn a_claim_refuses_flags_it_cannot_honour_and_unknown_pools() {
    let (fake, sandbox) = fake_host();
    let run = vc(&sandbox, &["create", "x", "--from-pool", "ci", "--kubernetes-version", "1.33"]);
    run.code(2);
    let run = vc(&sandbox, &["create", "x", "--from-pool", "nope", "--no-connect"]);
    run.code(3);
    assert!(run.stderr.contains("pool \"nope\" not found"), "{}", run.stderr);
    let run = vc(&sandbox, &["pool", "create", "bad", "--size", "1", "--max-surge", "0"]);
    run.code(2);
    assert!(run.stderr.contains("--max-surge"), "{}", run.stderr);
    assert!(fake.list("configmaps", Some("vc-pools")).is_empty(), "nothing written");
    // An empty pool falls back to a plain create from the pool's spec.
    vc(&sandbox, &["pool", "create", "empty", "--size", "1", "--no-fill", "--ttl", "2h"]).code(0);
    let run =
        vc(&sandbox, &["create", "plain", "--from-pool", "empty", "--no-connect", "-o", "json"]);
    run.code(0);
    assert!(run.stderr.contains("the usual way"), "{}", run.stderr);
    assert_eq!(run.json()["namespace"], "vc-plain");
    let sts = fake.get("statefulsets", "vc-plain", "plain").unwrap();
    let spec: Value =
        serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap())
            .unwrap();
    assert_eq!(spec["ttl"], "2h", "the pool's spec");
}

#[test]
fn a_claim_connects_under_the_claimants_name_and_disconnects() {
    let env = crate::connect::Env::new();
    let api = crate::tls::VirtualApi::start("inside-claimed");
    env.vc(&["pool", "create", "web", "--size", "1"]).code(0);
    wait_until("the member is ready", Duration::from_secs(10), || {
        unclaimed_ready(&env.fake, "web") == 1
    });
    // The member's control plane is `api`: its pod's port 8443 and its engine Secret.
    let member = members(&env.fake, "web").remove(0);
    let member = member["metadata"]["name"].as_str().unwrap().to_string();
    let namespace = format!("vc-{member}");
    env.fake.set_port_forward_target(&namespace, &format!("{member}-0"), 8443, api.addr());
    env.fake.put(api.pki.engine_secret(&namespace, &member)).expect("engine Secret");

    let claimed = env.vc(&["create", "feature", "--from-pool", "web", "-o", "json"]);
    claimed.code(0);
    let result = claimed.json();
    assert_eq!(result["context"], "vc-feature");
    let seconds: f64 =
        result["timings"].as_object().unwrap().values().filter_map(Value::as_f64).sum();
    assert!(seconds < 3.0, "a claim and connect in under 3 s on the fake: {result}");
    let config: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(env.sandbox.kubeconfig()).unwrap())
            .unwrap();
    assert_eq!(config["current-context"], "vc-feature");
    let listed = env.kubectl(&env.sandbox.kubeconfig(), &["get", "ns", "-o", "name"]);
    crate::connect::assert_lists_virtual_namespaces(&listed, "inside-claimed");
    // The forward is the member's, found under the claimant's name.
    assert_eq!(env.forward(&member)["namespace"], namespace.as_str());
    let row = env.vc(&["list", "-o", "json"]).json()[0].clone();
    assert_eq!(row["name"], "feature");
    assert_eq!(row["connected"], true);

    env.vc(&["disconnect", "feature"]).code(0);
    let config: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(env.sandbox.kubeconfig()).unwrap())
            .unwrap();
    assert_eq!(config["current-context"], "kind-host");
    assert_eq!(env.vc(&["list", "-o", "json"]).json()[0]["connected"], false);
    env.vc(&["connect", "feature"]).code(0);
    env.vc(&["delete", "feature", "--yes"]).code(0);
    assert!(
        members(&env.fake, "web").is_empty()
            || env.fake.get("namespaces", "", &namespace).is_none()
    );
}

/// The leader of `vc operator run` keeps the pools full as `vc pool keep` does: it fills a
/// pool declared with --no-fill and replaces a claimed member, logging each start, and stops
/// on SIGTERM.
#[test]
fn the_operator_keeps_pools_full() {
    let (fake, sandbox) = fake_host();
    let crd = vc(&sandbox, &["operator", "crd", "-o", "json"]);
    crd.code(0);
    fake.put(crd.json()).expect("the CRD is stored");
    vc(&sandbox, &["pool", "create", "ci", "--size", "1", "--no-fill"]).code(0);
    assert!(members(&fake, "ci").is_empty(), "--no-fill starts nothing");
    let mut operator =
        spawn(&sandbox, &["operator", "run", "--identity", "pool-test", "--pool-interval", "1s"]);
    let filled = || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while unclaimed_ready(&fake, "ci") < 1 {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    };
    if !filled() {
        let _ = operator.kill();
        panic!("the operator did not fill the pool: {}", finish(operator).stderr);
    }
    let claimed =
        vc(&sandbox, &["create", "one", "--from-pool", "ci", "--no-connect", "-o", "json"]);
    claimed.code(0);
    assert!(claimed.json()["hostName"].is_string(), "claimed: {}", claimed.stderr);
    if !filled() {
        let _ = operator.kill();
        panic!("the operator did not refill the pool: {}", finish(operator).stderr);
    }
    assert_eq!(members(&fake, "ci").len(), 2, "one claimed member and one replacement");
    let pid = operator.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while operator.try_wait().expect("the operator's status").is_none() {
        if Instant::now() > deadline {
            let _ = operator.kill();
            panic!("the operator did not stop on SIGTERM: {}", finish(operator).stderr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = finish(operator);
    stopped.code(0);
    assert!(stopped.stderr.contains(r#"pool \"ci\": starting ci-"#), "{}", stopped.stderr);
}

/// With no pool defined, the operator's keeper makes no request beyond its watch on pool
/// definitions, however short `--pool-interval`, and starts filling a pool as soon as one is
/// defined.
#[test]
fn with_no_pool_the_keeper_only_watches_and_a_new_pool_wakes_it() {
    let (fake, sandbox) = fake_host();
    let crd = vc(&sandbox, &["operator", "crd", "-o", "json"]);
    crd.code(0);
    fake.put(crd.json()).expect("the CRD is stored");
    let mut operator =
        spawn(&sandbox, &["operator", "run", "--identity", "pool-test", "--pool-interval", "1s"]);
    let configmap_lists = || {
        fake.requests()
            .iter()
            .filter(|r| r.path.contains("/configmaps") && r.verb == "list")
            .count()
    };
    let watched =
        || fake.requests().iter().any(|r| r.path.contains("/configmaps") && r.verb == "watch");
    wait_until("the keeper's watch on pool definitions", Duration::from_secs(20), watched);
    std::thread::sleep(Duration::from_millis(1500));
    let before = configmap_lists();
    std::thread::sleep(Duration::from_secs(3));
    let after = configmap_lists();
    if after != before {
        let _ = operator.kill();
        panic!(
            "{} LISTs of ConfigMaps in 3 s with no pool defined: {}",
            after - before,
            finish(operator).stderr
        );
    }
    vc(&sandbox, &["pool", "create", "ci", "--size", "1", "--no-fill"]).code(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while members(&fake, "ci").is_empty() {
        if Instant::now() > deadline {
            let _ = operator.kill();
            panic!("the new pool did not wake the keeper: {}", finish(operator).stderr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = operator.kill();
    let _ = operator.wait();
}

/// `vc operator run` on a host without the CRD refuses to start, naming the install command,
/// instead of waiting on a watch that cannot succeed.
#[test]
fn the_operator_refuses_to_start_without_its_crd() {
    let (_fake, sandbox) = fake_host();
    let run = vc(&sandbox, &["operator", "run", "--identity", "no-crd"]);
    run.code(3);
    assert!(run.stderr.contains("vc operator install"), "{}", run.stderr);
}
