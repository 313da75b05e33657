//! Opt-in RBAC: a test-chosen user with namespace-scoped (or cluster-wide) rules, request
//! authorization with the real denial message, escalation prevention on Role / RoleBinding
//! writes (as `pkg/registry/rbac/*/policybased` does), and the answers of
//! SelfSubjectAccessReview / SelfSubjectRulesReview. Also the rule data of the built-in
//! `admin`, `edit` and `view` ClusterRoles of Kubernetes 1.33.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::status::ApiError;

/// One RBAC rule, as in a Role's `rules`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(default, rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl PolicyRule {
    /// A resource rule: `PolicyRule::new(&[""], &["pods"], &["get", "list"])`.
    pub fn new(api_groups: &[&str], resources: &[&str], verbs: &[&str]) -> Self {
        PolicyRule {
            verbs: strings(verbs),
            api_groups: strings(api_groups),
            resources: strings(resources),
            ..Default::default()
        }
    }

    /// Restricts the rule to these object names.
    pub fn names(mut self, names: &[&str]) -> Self {
        self.resource_names = strings(names);
        self
    }

    /// A non-resource rule (`/healthz`, `/apis/*`).
    pub fn urls(urls: &[&str], verbs: &[&str]) -> Self {
        PolicyRule { verbs: strings(verbs), non_resource_urls: strings(urls), ..Default::default() }
    }

    /// Rules from JSON: a Role/ClusterRole object, its `rules` array, or one rule.
    pub fn parse(value: &Value) -> Vec<PolicyRule> {
        let rules = if value["rules"].is_array() { &value["rules"] } else { value };
        match rules {
            Value::Array(items) => {
                items.iter().filter_map(|r| serde_json::from_value(r.clone()).ok()).collect()
            }
            Value::Object(_) => serde_json::from_value(rules.clone()).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn has(list: &[String], item: &str) -> bool {
        list.iter().any(|x| x == item)
    }

    /// Whether this rule allows the request (`RuleAllows` of the RBAC authorizer).
    pub fn allows(&self, a: &Attributes) -> bool {
        let verb_ok = Self::has(&self.verbs, "*") || Self::has(&self.verbs, &a.verb);
        if !verb_ok {
            return false;
        }
        if let Some(path) = &a.path {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || u == path
                    || u.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
            });
        }
        let group_ok = Self::has(&self.api_groups, "*") || Self::has(&self.api_groups, &a.group);
        let combined = match &a.subresource {
            Some(s) => format!("{}/{}", a.resource, s),
            None => a.resource.clone(),
        };
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || a.subresource.as_ref().is_some_and(|s| *r == format!("*/{s}"))
        });
        let name_ok = self.resource_names.is_empty()
            || a.name.as_ref().is_some_and(|n| Self::has(&self.resource_names, n));
        group_ok && resource_ok && name_ok
    }

    /// `ruleCovers` of `k8s.io/component-helpers/auth/rbac/validation`.
    fn covers(&self, sub: &PolicyRule) -> bool {
        let all = |owner: &[String], wanted: &[String]| wanted.iter().all(|w| Self::has(owner, w));
        let verbs = Self::has(&self.verbs, "*") || all(&self.verbs, &sub.verbs);
        let groups = Self::has(&self.api_groups, "*") || all(&self.api_groups, &sub.api_groups);
        let resources = Self::has(&self.resources, "*")
            || sub.resources.iter().all(|r| {
                Self::has(&self.resources, r)
                    || r.split_once('/')
                        .is_some_and(|(_, s)| Self::has(&self.resources, &format!("*/{s}")))
            });
        let urls = sub.non_resource_urls.iter().all(|u| {
            self.non_resource_urls.iter().any(|o| {
                o == u || o == "*" || o.strip_suffix('*').is_some_and(|p| u.starts_with(p))
            })
        });
        let names = if sub.resource_names.is_empty() {
            self.resource_names.is_empty()
        } else {
            self.resource_names.is_empty() || all(&self.resource_names, &sub.resource_names)
        };
        verbs && groups && resources && urls && names
    }

    /// `BreakdownRule`: one rule per group, resource, verb (and name) or URL and verb.
    fn breakdown(&self) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        for g in &self.api_groups {
            for r in &self.resources {
                for v in &self.verbs {
                    let base = PolicyRule {
                        api_groups: vec![g.clone()],
                        resources: vec![r.clone()],
                        verbs: vec![v.clone()],
                        ..Default::default()
                    };
                    if self.resource_names.is_empty() {
                        out.push(base);
                    } else {
                        for n in &self.resource_names {
                            out.push(PolicyRule {
                                resource_names: vec![n.clone()],
                                ..base.clone()
                            });
                        }
                    }
                }
            }
        }
        for u in &self.non_resource_urls {
            for v in &self.verbs {
                out.push(PolicyRule::urls(&[u], &[v]));
            }
        }
        out
    }

    /// `CompactString` of `pkg/apis/rbac/v1`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        let q = |v: &[String]| {
            format!("[{}]", v.iter().map(|s| json!(s).to_string()).collect::<Vec<_>>().join(" "))
        };
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:{}", q(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:{}", q(&self.resources)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!("NonResourceURLs:{}", q(&self.non_resource_urls)));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:{}", q(&self.resource_names)));
        }
        if !self.verbs.is_empty() {
            parts.push(format!("Verbs:{}", q(&self.verbs)));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// What a request asks to do, as the authorizer sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
    /// Empty for cluster scope.
    pub namespace: String,
    /// Set for non-resource requests (`/healthz`).
    pub path: Option<String>,
}

/// Rules granted in one namespace (`Some`, like a RoleBinding) or everywhere (`None`, like a
/// ClusterRoleBinding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub namespace: Option<String>,
    pub rules: Vec<PolicyRule>,
}

/// The identity requests are treated as coming from (see `FakeKube::act_as`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Default `["system:authenticated"]`; `system:masters` bypasses every check.
    pub groups: Vec<String>,
    pub grants: Vec<Grant>,
}

impl User {
    /// A user with no rights beyond what every authenticated user has (discovery,
    /// self-subject reviews).
    pub fn new(name: &str) -> Self {
        User {
            name: name.to_string(),
            groups: vec!["system:authenticated".into()],
            grants: Vec::new(),
        }
    }

    /// Replaces the user's groups.
    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.groups = strings(groups);
        self
    }

    /// Grants `rules` in `namespace` (a Role bound there).
    pub fn allow(mut self, namespace: &str, rules: Vec<PolicyRule>) -> Self {
        self.grants.push(Grant { namespace: Some(namespace.to_string()), rules });
        self
    }

    /// Grants `rules` in every namespace and at cluster scope (a ClusterRoleBinding).
    pub fn allow_everywhere(mut self, rules: Vec<PolicyRule>) -> Self {
        self.grants.push(Grant { namespace: None, rules });
        self
    }

    fn privileged(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    /// Every rule that applies in `namespace` (`""`: cluster scope), in the order the RBAC
    /// rule resolver visits them: ClusterRoleBindings (the built-in ones of authenticated
    /// users first), then RoleBindings of the namespace.
    pub fn rules_for(&self, namespace: &str) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        if self.privileged() {
            out.extend(cluster_admin_rules());
        }
        for g in self.grants.iter().filter(|g| g.namespace.is_none()) {
            out.extend(g.rules.iter().cloned());
        }
        if self.groups.iter().any(|g| g == "system:authenticated") || self.privileged() {
            out.extend(authenticated_rules());
        }
        if !namespace.is_empty() {
            for g in self.grants.iter().filter(|g| g.namespace.as_deref() == Some(namespace)) {
                out.extend(g.rules.iter().cloned());
            }
        }
        out
    }

    /// Whether the request is allowed.
    pub fn can(&self, a: &Attributes) -> bool {
        self.privileged() || self.rules_for(&a.namespace).iter().any(|r| r.allows(a))
    }

    /// The denial body for a request this user may not make.
    pub fn forbidden(&self, a: &Attributes) -> ApiError {
        ApiError::rbac_forbidden_sub(
            &self.name,
            &a.verb,
            &a.group,
            &a.resource,
            a.subresource.as_deref(),
            a.name.as_deref(),
            (!a.namespace.is_empty()).then_some(a.namespace.as_str()),
        )
    }

    /// `ConfirmNoEscalation`: `Err(message)` listing the rules of `wanted` not covered by the
    /// user's rights in `namespace`.
    pub fn confirm_no_escalation(
        &self,
        namespace: &str,
        wanted: &[PolicyRule],
    ) -> Result<(), String> {
        if self.privileged() {
            return Ok(());
        }
        let owner = self.rules_for(namespace);
        let missing: Vec<PolicyRule> = wanted
            .iter()
            .flat_map(PolicyRule::breakdown)
            .filter(|s| !owner.iter().any(|o| o.covers(s)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        // CompactRules: simple rules (one group, one resource, at most one name) merge verbs.
        let mut compact: Vec<PolicyRule> = Vec::new();
        for m in missing {
            let simple = m.non_resource_urls.is_empty();
            match compact.iter_mut().find(|c| {
                simple
                    && c.non_resource_urls.is_empty()
                    && c.api_groups == m.api_groups
                    && c.resources == m.resources
                    && c.resource_names == m.resource_names
            }) {
                Some(c) => {
                    for v in m.verbs {
                        if !c.verbs.contains(&v) {
                            c.verbs.push(v);
                        }
                    }
                }
                None => compact.push(m),
            }
        }
        let mut lines: Vec<String> = compact.iter().map(PolicyRule::compact_string).collect();
        lines.sort();
        lines.dedup();
        let groups: Vec<String> = self.groups.iter().map(|g| json!(g).to_string()).collect();
        Err(format!(
            "user {} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            json!(self.name),
            groups.join(" "),
            lines.join("\n")
        ))
    }
}

/// The `status` of a SelfSubjectRulesReview in `namespace` (`None`: the fake's default
/// cluster-admin identity).
pub fn rules_review_status(user: Option<&User>, namespace: &str) -> Value {
    let rules = match user {
        Some(u) => u.rules_for(namespace),
        None => {
            let mut r = cluster_admin_rules();
            r.extend(authenticated_rules());
            r
        }
    };
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        if !r.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        } else {
            let mut v = json!({"verbs": r.verbs});
            if !r.api_groups.is_empty() {
                v["apiGroups"] = json!(r.api_groups);
            }
            if !r.resources.is_empty() {
                v["resources"] = json!(r.resources);
            }
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            resource_rules.push(v);
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}

fn cluster_admin_rules() -> Vec<PolicyRule> {
    vec![PolicyRule::new(&["*"], &["*"], &["*"]), PolicyRule::urls(&["*"], &["*"])]
}

/// `system:basic-user`, `system:discovery` and `system:public-info-viewer`, bound to
/// `system:authenticated`.
fn authenticated_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::new(
            &["authorization.k8s.io"],
            &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            &["create"],
        ),
        PolicyRule::new(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
        PolicyRule::urls(
            &[
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ],
            &["get"],
        ),
        PolicyRule::urls(&["/healthz", "/livez", "/readyz", "/version", "/version/"], &["get"]),
    ]
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The rules of `system:aggregate-to-view` (what the built-in `view` ClusterRole aggregates).
pub fn view_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::new(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
            READ,
        ),
        PolicyRule::new(
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
            READ,
        ),
        PolicyRule::new(&[""], &["namespaces"], READ),
        PolicyRule::new(&["discovery.k8s.io"], &["endpointslices"], READ),
        PolicyRule::new(
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
            READ,
        ),
        PolicyRule::new(
            &["autoscaling"],
            &["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
            READ,
        ),
        PolicyRule::new(&["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
        PolicyRule::new(
            &["extensions"],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
            ],
            READ,
        ),
        PolicyRule::new(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
        PolicyRule::new(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ,
        ),
    ]
}

/// The rules of the built-in `edit` ClusterRole: `system:aggregate-to-edit` plus `view`.
/// No write access to endpoints / endpointslices (removed in 1.22, CVE-2021-25740), no
/// `pods/status`, `pods/ephemeralcontainers`, `pods/resize`, quotas or limit ranges.
pub fn edit_rules() -> Vec<PolicyRule> {
    let mut rules = vec![
        PolicyRule::new(
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
            READ,
        ),
        PolicyRule::new(&[""], &["serviceaccounts"], &["impersonate"]),
        PolicyRule::new(
            &[""],
            &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
            WRITE,
        ),
        PolicyRule::new(&[""], &["pods/eviction"], &["create"]),
        PolicyRule::new(
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
            WRITE,
        ),
        PolicyRule::new(&[""], &["serviceaccounts/token"], &["create"]),
        PolicyRule::new(
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
            WRITE,
        ),
        PolicyRule::new(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        PolicyRule::new(&["batch"], &["cronjobs", "jobs"], WRITE),
        PolicyRule::new(
            &["extensions"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "ingresses",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
            ],
            WRITE,
        ),
        PolicyRule::new(&["policy"], &["poddisruptionbudgets"], WRITE),
        PolicyRule::new(&["networking.k8s.io"], &["ingresses", "networkpolicies"], WRITE),
        PolicyRule::new(&["coordination.k8s.io"], &["leases"], READ_WRITE),
    ];
    rules.extend(view_rules());
    rules
}

/// The rules of the built-in `admin` ClusterRole of Kubernetes 1.33 (aggregated: `edit`,
/// `view` and `system:aggregate-to-admin`): `edit` plus roles / rolebindings and
/// localsubjectaccessreviews. It holds no `escalate` or `bind`, so granting more than it
/// holds is refused.
pub fn admin_rules() -> Vec<PolicyRule> {
    let mut rules = edit_rules();
    rules.push(PolicyRule::new(
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
        &["create"],
    ));
    rules.push(PolicyRule::new(
        &["rbac.authorization.k8s.io"],
        &["rolebindings", "roles"],
        READ_WRITE,
    ));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, resource: &str, sub: Option<&str>, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.map(str::to_string),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn admin_has_no_endpoint_writes_or_pod_status() {
        let u = User::new("alice").allow("team", admin_rules());
        assert!(u.can(&attrs("create", "", "pods", None, "team")));
        assert!(u.can(&attrs("get", "", "endpoints", None, "team")));
        assert!(!u.can(&attrs("create", "", "endpoints", None, "team")));
        assert!(!u.can(&attrs("patch", "discovery.k8s.io", "endpointslices", None, "team")));
        assert!(!u.can(&attrs("patch", "", "pods", Some("status"), "team")));
        assert!(!u.can(&attrs("create", "", "pods", None, "other")));
    }

    #[test]
    fn escalation_lists_missing_rules() {
        let u = User::new("alice").allow("team", admin_rules());
        let wanted =
            vec![PolicyRule::new(&[""], &["pods/status", "pods"], &["update", "patch", "get"])];
        let err = u.confirm_no_escalation("team", &wanted).unwrap_err();
        assert_eq!(
            err,
            "user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods/status\"], Verbs:[\"update\" \"patch\"]}"
        );
        assert!(
            u.confirm_no_escalation("team", &[PolicyRule::new(&[""], &["pods"], &["get"])]).is_ok()
        );
    }
}
