//! Opt-in RBAC (`act_as`): requests outside the user's rules get the real 403, Role and
//! RoleBinding writes that would grant more than the user holds get the real escalation
//! refusal, and the self-subject reviews answer from the same rules.

mod common;

use common::{get, http, post};
use fakekube::rbac::admin_rules;
use fakekube::{FakeKube, PolicyRule, User};
use serde_json::{Value, json};

fn alice() -> User {
    User::new("alice").allow("team", admin_rules())
}

fn fake() -> FakeKube {
    let fk = FakeKube::builder().user(alice()).start();
    fk.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})).unwrap();
    fk.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}))
        .unwrap();
    fk
}

fn role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules})
}

fn binding(name: &str, kind: &str, role: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}],
    })
}

const ROLES: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles";
const BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings";

#[test]
fn requests_outside_the_rules_get_the_rbac_403() {
    let fk = fake();
    assert_eq!(get(&fk, "/api/v1/namespaces/team/pods").code, 200);
    assert_eq!(get(&fk, "/api/v1/namespaces/team").code, 200);
    assert_eq!(get(&fk, "/version").code, 200);
    let r = get(&fk, "/api/v1/namespaces/other/pods");
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\"",
               "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
    );
    let r = get(&fk, "/api/v1/namespaces/other");
    assert_eq!(
        r.json()["message"],
        "namespaces \"other\" is forbidden: User \"alice\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"other\""
    );
    // admin has no endpoint writes (CVE-2021-25740) and no pods/status.
    let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "x"}});
    let r = post(&fk, "/api/v1/namespaces/team/endpoints", &ep);
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json()["message"],
        "endpoints is forbidden: User \"alice\" cannot create resource \"endpoints\" in API group \"\" in the namespace \"team\""
    );
    fk.put(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    let r = http(
        &fk,
        "PATCH",
        "/api/v1/namespaces/team/pods/p/status",
        "application/merge-patch+json",
        "{\"status\":{}}",
    );
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods \"p\" is forbidden: User \"alice\" cannot patch resource \"pods/status\" in API group \"\" in the namespace \"team\"",
               "reason": "Forbidden", "details": {"name": "p", "kind": "pods"}, "code": 403})
    );
    let r = get(&fk, "/api/v1/nodes");
    assert_eq!(
        r.json()["message"],
        "nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    fk.act_as_admin();
    assert_eq!(get(&fk, "/api/v1/nodes").code, 200);
}

#[test]
fn roles_granting_more_than_the_user_holds_are_refused() {
    let fk = fake();
    let r = post(
        &fk,
        ROLES,
        &role(
            "status-writer",
            json!([{"apiGroups": [""], "resources": ["pods/status", "pods"], "verbs": ["patch", "update", "get"]}]),
        ),
    );
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "roles.rbac.authorization.k8s.io \"status-writer\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods/status\"], Verbs:[\"patch\" \"update\"]}",
               "reason": "Forbidden",
               "details": {"name": "status-writer", "group": "rbac.authorization.k8s.io", "kind": "roles"}, "code": 403})
    );
    let ok = role(
        "reader",
        json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}]),
    );
    assert_eq!(post(&fk, ROLES, &ok).code, 201);
    // Updating it to add endpoint writes is refused as well, listing each missing rule.
    let mut more = ok.clone();
    more["rules"] = json!([{"apiGroups": [""], "resources": ["endpoints"], "verbs": ["create", "delete"]}, {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["create"]}]);
    let r = http(&fk, "PUT", &format!("{ROLES}/reader"), "application/json", &more.to_string());
    assert_eq!(r.code, 403);
    assert!(r.json()["message"].as_str().unwrap().ends_with(
        "not currently held:\n{APIGroups:[\"\"], Resources:[\"endpoints\"], Verbs:[\"create\" \"delete\"]}\n{APIGroups:[\"discovery.k8s.io\"], Resources:[\"endpointslices\"], Verbs:[\"create\"]}"
    ));
    // Server-side apply goes through the same check.
    let r = http(
        &fk,
        "PATCH",
        &format!("{ROLES}/applied?fieldManager=t"),
        "application/apply-patch+yaml",
        &role("applied", json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]))
            .to_string(),
    );
    assert_eq!(r.code, 403, "{}", r.text());
    // With the escalate verb the user may.
    fk.act_as(alice().allow(
        "team",
        vec![PolicyRule::new(&["rbac.authorization.k8s.io"], &["roles"], &["escalate"])],
    ));
    assert_eq!(
        http(&fk, "PUT", &format!("{ROLES}/reader"), "application/json", &more.to_string()).code,
        200
    );
}

#[test]
fn rolebindings_resolve_the_role_and_refuse_escalation() {
    let fk = fake();
    let r = post(&fk, BINDINGS, &binding("b", "Role", "ghost"));
    assert_eq!(r.code, 404);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "roles.rbac.authorization.k8s.io \"ghost\" not found", "reason": "NotFound",
               "details": {"name": "ghost", "group": "rbac.authorization.k8s.io", "kind": "roles"}, "code": 404})
    );
    let r = post(&fk, BINDINGS, &binding("b", "ClusterRole", "cluster-admin"));
    assert_eq!(
        (r.code, r.json()["message"].as_str()),
        (404, Some("clusterroles.rbac.authorization.k8s.io \"cluster-admin\" not found"))
    );
    fk.put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "endpoint-writer", "namespace": "team"},
                  "rules": [{"apiGroups": [""], "resources": ["endpoints"], "verbs": ["create", "update"]}]}))
        .unwrap();
    let r = post(&fk, BINDINGS, &binding("b", "Role", "endpoint-writer"));
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json()["message"],
        "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"endpoints\"], Verbs:[\"create\" \"update\"]}"
    );
    assert_eq!(
        r.json()["details"],
        json!({"name": "b", "group": "rbac.authorization.k8s.io", "kind": "rolebindings"})
    );
    fk.put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "viewer", "namespace": "team"},
                  "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}))
        .unwrap();
    assert_eq!(post(&fk, BINDINGS, &binding("ok", "Role", "viewer")).code, 201);
    // The bind verb on that role allows it.
    fk.act_as(alice().allow(
        "team",
        vec![
                PolicyRule::new(&["rbac.authorization.k8s.io"], &["roles"], &["bind"])
                    .names(&["endpoint-writer"]),
            ],
    ));
    assert_eq!(post(&fk, BINDINGS, &binding("b", "Role", "endpoint-writer")).code, 201);
}

#[test]
fn self_subject_reviews_answer_from_the_rules() {
    let fk = fake();
    let review = |ns: &str, verb: &str, resource: &str, sub: &str| {
        let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                          "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource, "subresource": sub}}});
        post(&fk, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", &body).json()["status"]
            ["allowed"]
            .clone()
    };
    assert_eq!(review("team", "create", "pods", ""), true);
    assert_eq!(review("team", "patch", "pods", "status"), false);
    assert_eq!(review("other", "get", "pods", ""), false);
    let list = get(&fk, "/apis/authorization.k8s.io/v1").json();
    assert!(
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "selfsubjectrulesreviews")
    );
    let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "team"}});
    let r = post(&fk, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", &body);
    assert_eq!(r.code, 201);
    let status = &r.json()["status"];
    assert_eq!(status["incomplete"], false);
    let rules = status["resourceRules"].as_array().unwrap();
    assert_eq!(
        rules[0],
        json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})
    );
    assert!(
        rules.iter().any(|r| r["resources"].as_array().unwrap().contains(&json!("rolebindings")))
    );
    assert!(
        !rules.iter().any(|r| r["resources"].as_array().unwrap().contains(&json!("endpoints"))
            && r["verbs"].as_array().unwrap().contains(&json!("create")))
    );
    assert_eq!(status["nonResourceRules"][0]["verbs"], json!(["get"]));
    let other = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "other"}});
    let rules =
        post(&fk, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", &other).json()["status"]
            ["resourceRules"]
            .clone();
    assert_eq!(
        rules.as_array().unwrap().len(),
        2,
        "only what every authenticated user has: {rules}"
    );
}
