//! The host rights `vc` needs in a namespace: what creating a cluster applies (each rendered
//! object, and every rule of the engine's Role, which RBAC lets a user grant only if they hold
//! it), which of those a user's rules lack, and the Role a cluster admin grants once per
//! namespace so a namespace admin can run `vc` there (`vc rbac`). Pure: no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::objects::{ALL_VERBS, rule};
use super::{HostObject, LABEL_MANAGED_BY, MANAGED_BY, Placement, render};
use crate::spec::VirtualClusterSpec;

/// Name of the Role (and prefix of the RoleBinding) `vc rbac` prints.
pub const USER_ROLE: &str = "vc-user";

/// One right: API group, resource, verb.
type Atom = (String, String, String);

const READ: [&str; 3] = ["get", "list", "watch"];

/// What `vc` itself does in a cluster's namespace, from create to delete: apply and remove
/// its objects, watch the control plane, read its logs and events, forward its port, and
/// remove what the engine synced (pods, services, secrets, config maps, claims, accounts).
pub fn own_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &[
                "serviceaccounts",
                "secrets",
                "services",
                "configmaps",
                "persistentvolumeclaims",
                "resourcequotas",
                "limitranges",
            ],
            &ALL_VERBS,
        ),
        rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
        rule(&[""], &["pods/log"], &["get"]),
        rule(&[""], &["pods/portforward"], &["get", "create"]),
        rule(&[""], &["events"], &READ),
        rule(&["apps"], &["statefulsets"], &ALL_VERBS),
        rule(&["apps"], &["deployments"], &READ),
        rule(&["networking.k8s.io"], &["networkpolicies", "ingresses"], &ALL_VERBS),
        rule(&["rbac.authorization.k8s.io"], &["roles", "rolebindings"], &ALL_VERBS),
    ]
}

/// The rights creating `objects` needs: reading and applying each one (server-side apply
/// creates or patches), and holding every rule of the engine's Role among them.
pub fn required_rules(objects: &[HostObject]) -> Vec<PolicyRule> {
    let mut rules: Vec<PolicyRule> = Vec::new();
    for object in objects.iter().filter(|o| !matches!(o, HostObject::Namespace(_))) {
        let api_version = object.api_version();
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        rules.push(rule(&[group], &[object.plural()], &["get", "create", "patch"]));
        if let HostObject::Role(role) = object {
            rules.extend(role.rules.iter().flatten().cloned());
        }
    }
    compact(atoms(&rules))
}

fn atoms(rules: &[PolicyRule]) -> Vec<Atom> {
    let mut out = Vec::new();
    for r in rules.iter().filter(|r| r.resource_names.as_ref().is_none_or(Vec::is_empty)) {
        for group in r.api_groups.iter().flatten() {
            for resource in r.resources.iter().flatten() {
                for verb in &r.verbs {
                    out.push((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Rules grouped back by group and resource, verbs in a stable order.
fn compact(atoms: Vec<Atom>) -> Vec<PolicyRule> {
    let mut by_resource: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (group, resource, verb) in atoms {
        by_resource.entry((group, resource)).or_default().push(verb);
    }
    // Resources with the same verbs in one group share a rule, as a person would write it.
    let mut by_verbs: BTreeMap<(String, Vec<String>), Vec<String>> = BTreeMap::new();
    for ((group, resource), mut verbs) in by_resource {
        verbs.sort();
        verbs.dedup();
        by_verbs.entry((group, verbs)).or_default().push(resource);
    }
    by_verbs
        .into_iter()
        .map(|((group, verbs), resources)| PolicyRule {
            api_groups: Some(vec![group]),
            resources: Some(resources),
            verbs,
            ..Default::default()
        })
        .collect()
}

fn covers(held: &PolicyRule, (group, resource, verb): &Atom) -> bool {
    let has = |items: Option<&Vec<String>>, wanted: &str| {
        items.is_some_and(|items| items.iter().any(|i| i == "*" || i == wanted))
    };
    held.resource_names.as_ref().is_none_or(Vec::is_empty)
        && has(held.api_groups.as_ref(), group)
        && has(held.resources.as_ref(), resource)
        && has(Some(&held.verbs), verb)
}

/// The rights of `required` that `held` does not grant, as rules.
pub fn missing_rules(required: &[PolicyRule], held: &[PolicyRule]) -> Vec<PolicyRule> {
    compact(atoms(required).into_iter().filter(|a| !held.iter().any(|h| covers(h, a))).collect())
}

/// A rule as the API server prints it in an escalation error.
pub fn describe_rule(rule: &PolicyRule) -> String {
    let quoted =
        |items: &[String]| items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(" ");
    format!(
        "{{APIGroups:[{}], Resources:[{}], Verbs:[{}]}}",
        quoted(rule.api_groups.as_deref().unwrap_or_default()),
        quoted(rule.resources.as_deref().unwrap_or_default()),
        quoted(&rule.verbs)
    )
}

/// Every right (API group, resource, verb) that running `vc` in `namespace` needs, one by
/// one: what `vc rbac` grants there, for a check such as `vc doctor`'s access reviews.
pub fn required_rights(namespace: &str) -> Vec<(String, String, String)> {
    let grant = grant(namespace, &Grantee::User(String::new()));
    atoms(grant.role.rules.as_deref().unwrap_or_default())
}

/// Rules of `rights` grouped as a person would write them (for messages).
pub fn rules_of(rights: Vec<(String, String, String)>) -> Vec<PolicyRule> {
    compact(rights)
}

/// Who `vc rbac` grants the rights to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grantee {
    User(String),
    Group(String),
    ServiceAccount { namespace: String, name: String },
}

impl Grantee {
    fn subject(&self) -> Subject {
        let (kind, name, namespace, api_group) = match self {
            Grantee::User(n) => ("User", n.clone(), None, Some("rbac.authorization.k8s.io")),
            Grantee::Group(n) => ("Group", n.clone(), None, Some("rbac.authorization.k8s.io")),
            Grantee::ServiceAccount { namespace, name } => {
                ("ServiceAccount", name.clone(), Some(namespace.clone()), None)
            }
        };
        Subject {
            kind: kind.to_string(),
            name,
            namespace,
            api_group: api_group.map(str::to_string),
        }
    }

    /// A name for the RoleBinding: the subject's name in lowercase letters, digits and '-'.
    fn binding_name(&self) -> String {
        let raw = match self {
            Grantee::User(n) | Grantee::Group(n) => n.clone(),
            Grantee::ServiceAccount { namespace, name } => format!("{namespace}-{name}"),
        };
        let mut name: String = raw
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        name.truncate(63 - USER_ROLE.len() - 1);
        format!("{USER_ROLE}-{}", name.trim_matches('-'))
    }
}

/// Name of the Role in `default` that lets a user read the host API server's endpoints.
pub const ENDPOINTS_ROLE: &str = "vc-read-api-endpoints";

/// What `vc rbac` prints: the Role `vc-user` and its RoleBinding in `namespace`, and a Role
/// and RoleBinding in `default` to read the `kubernetes` Endpoints (only that object), so
/// the policies pin the control plane's egress to the real API server endpoints instead of
/// falling back to any address on the API ports.
pub struct Grant {
    pub role: Role,
    pub binding: RoleBinding,
    pub endpoints_role: Role,
    pub endpoints_binding: RoleBinding,
}

impl Grant {
    pub fn objects(self) -> Vec<HostObject> {
        vec![
            HostObject::Role(self.role),
            HostObject::RoleBinding(self.binding),
            HostObject::Role(self.endpoints_role),
            HostObject::RoleBinding(self.endpoints_binding),
        ]
    }
}

/// The grant that lets `grantee` run `vc` in `namespace`: `vc`'s own rights and every rule
/// the engine's Role holds for the default configuration on a current host (pod resize
/// included, which is inert on hosts before 1.35), and reading the API server's endpoints.
pub fn grant(namespace: &str, grantee: &Grantee) -> Grant {
    let placement = Placement {
        name: "vc".to_string(),
        namespace: namespace.to_string(),
        own_namespace: false,
        created_at: jiff::Timestamp::UNIX_EPOCH,
        host_minor: Some(u32::MAX),
    };
    // The default spec always renders; an empty rule list would only make the grant smaller.
    let engine_rules = render(&VirtualClusterSpec::default(), &placement)
        .map(|r| required_rules(&r.objects))
        .unwrap_or_default();
    let mut rules = own_rules();
    rules.extend(engine_rules);
    let labels = BTreeMap::from([(LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string())]);
    let meta =
        |name: &str, namespace: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
    let binding = |name: &str, namespace: &str, role: &str| RoleBinding {
        metadata: meta(name, namespace),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: role.to_string(),
        },
        subjects: Some(vec![grantee.subject()]),
    };
    let endpoints = PolicyRule {
        resource_names: Some(vec!["kubernetes".to_string()]),
        ..rule(&[""], &["endpoints"], &["get"])
    };
    Grant {
        role: Role { metadata: meta(USER_ROLE, namespace), rules: Some(compact(atoms(&rules))) },
        binding: binding(&grantee.binding_name(), namespace, USER_ROLE),
        endpoints_role: Role {
            metadata: meta(ENDPOINTS_ROLE, "default"),
            rules: Some(vec![endpoints]),
        },
        endpoints_binding: binding(
            &format!("{ENDPOINTS_ROLE}-{}", grantee.binding_name().trim_start_matches("vc-user-")),
            "default",
            ENDPOINTS_ROLE,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verbs(rules: &[PolicyRule], group: &str, resource: &str) -> Vec<String> {
        atoms(rules)
            .into_iter()
            .filter(|(g, r, _)| g == group && r == resource)
            .map(|(_, _, v)| v)
            .collect()
    }

    #[test]
    fn a_cluster_admin_misses_nothing() {
        let placement = Placement { host_minor: Some(35), ..grant_placement() };
        let rendered = render(&VirtualClusterSpec::default(), &placement).expect("renders");
        let required = required_rules(&rendered.objects);
        assert!(!required.is_empty());
        let admin = rule(&["*"], &["*"], &["*"]);
        assert!(missing_rules(&required, &[admin]).is_empty());
        // Everything is missing for a user who holds nothing.
        assert_eq!(atoms(&missing_rules(&required, &[])), atoms(&required));
    }

    fn grant_placement() -> Placement {
        Placement {
            name: "dev".to_string(),
            namespace: "team".to_string(),
            own_namespace: false,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            host_minor: None,
        }
    }

    #[test]
    fn what_a_namespace_admin_lacks_is_named() {
        let rendered = render(&VirtualClusterSpec::default(), &grant_placement()).expect("renders");
        let required = required_rules(&rendered.objects);
        // A part of `admin`: pods, services, ... but no pod status or endpoint writes.
        let held = vec![
            rule(
                &[""],
                &[
                    "pods",
                    "services",
                    "secrets",
                    "configmaps",
                    "serviceaccounts",
                    "persistentvolumeclaims",
                    "pods/attach",
                    "pods/exec",
                    "pods/portforward",
                    "pods/log",
                    "endpoints",
                    "events",
                ],
                &["*"],
            ),
            rule(&["apps"], &["*"], &["*"]),
            rule(
                &["networking.k8s.io", "rbac.authorization.k8s.io", "events.k8s.io"],
                &["*"],
                &["*"],
            ),
            rule(&[""], &["resourcequotas", "limitranges"], &["get", "create", "patch"]),
            rule(&[""], &["pods/status"], &["update"]).clone(),
            PolicyRule {
                resource_names: Some(vec!["x".into()]),
                ..rule(&["discovery.k8s.io"], &["endpointslices"], &["*"])
            },
        ];
        let missing = missing_rules(&required, &held);
        assert_eq!(verbs(&missing, "", "pods/ephemeralcontainers"), ["update"]);
        assert!(verbs(&missing, "", "pods/status").is_empty(), "held");
        assert_eq!(
            verbs(&missing, "discovery.k8s.io", "endpointslices"),
            ["create", "delete", "get", "list", "update", "watch"],
            "a rule limited to names does not count"
        );
        assert!(verbs(&missing, "", "pods").is_empty());
        assert_eq!(
            describe_rule(&rule(&[""], &["pods/status"], &["update"])),
            r#"{APIGroups:[""], Resources:["pods/status"], Verbs:["update"]}"#
        );
    }

    #[test]
    fn the_grant_covers_what_creating_needs() {
        let Grant { role, binding, endpoints_role, endpoints_binding } =
            grant("team", &Grantee::User("alice@example.com".into()));
        let held = role.rules.clone().unwrap_or_default();
        assert_eq!(endpoints_role.metadata.namespace.as_deref(), Some("default"));
        let endpoints = &endpoints_role.rules.expect("rules")[0];
        assert_eq!(endpoints.resource_names.as_deref(), Some(&["kubernetes".to_string()][..]));
        assert_eq!(endpoints.verbs, ["get"]);
        assert_eq!(endpoints_binding.role_ref.name, ENDPOINTS_ROLE);
        for minor in [None, Some(30), Some(35)] {
            let placement = Placement { host_minor: minor, ..grant_placement() };
            let mut spec = VirtualClusterSpec::default();
            spec.quota.enabled = Some(true);
            let rendered = render(&spec, &placement).expect("renders");
            let missing = missing_rules(&required_rules(&rendered.objects), &held);
            assert!(missing.is_empty(), "{minor:?}: {missing:?}");
        }
        assert!(missing_rules(&own_rules(), &held).is_empty());
        assert_eq!(binding.metadata.name.as_deref(), Some("vc-user-alice-example-com"));
        assert_eq!(binding.subjects.as_ref().map(|s| s[0].kind.as_str()), Some("User"));
        let sa = grant(
            "team",
            &Grantee::ServiceAccount { namespace: "ci".into(), name: "runner".into() },
        );
        let subject = &sa.binding.subjects.expect("a subject")[0];
        assert_eq!(
            (subject.kind.as_str(), subject.namespace.as_deref()),
            ("ServiceAccount", Some("ci"))
        );
        assert_eq!(subject.api_group, None);
    }
}
