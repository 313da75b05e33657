//! The resource types the fake serves: names, kinds, scope, verbs and name rules.
//! Pure data plus lookups; it knows nothing about stored objects.

use serde_json::{Value, json};

/// Which validation the object's `metadata.name` gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// DNS-1035 label (services).
    Dns1035,
    /// Path segment only (RBAC kinds): no `/`, `%`, `.` or `..`.
    PathSegment,
}

/// One served resource type.
#[derive(Clone, Debug)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Subresources besides the object itself, e.g. `status`, `log`, `scale`.
    pub subresources: Vec<String>,
    pub name_rule: NameRule,
    /// Whether spec changes bump `metadata.generation`.
    pub tracks_generation: bool,
    /// Set for resources registered from a CustomResourceDefinition.
    pub from_crd: bool,
    /// Review-style types that only accept `create` and store nothing.
    pub create_only: bool,
    /// Schema, printer columns and rules of a CRD-defined version.
    pub crd: Option<std::sync::Arc<crate::schema::CrdVersion>>,
}

pub const VERBS: [&str; 8] =
    ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

impl ResourceDef {
    /// `v1` for the core group, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `configmaps` or `statefulsets.apps`, as used in error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `ConfigMap` or `StatefulSet.apps`, as used in validation messages.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Stable key of the type in the store (version-independent).
    pub fn store_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    /// Discovery entries: the resource and its subresources.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": if self.create_only { &["create"][..] } else { &VERBS[..] },
        })];
        if !self.short_names.is_empty() {
            out[0]["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            out[0]["categories"] = json!(self.categories);
        }
        for sub in &self.subresources {
            let (kind, group, version, verbs): (&str, Option<&str>, Option<&str>, &[&str]) =
                match sub.as_str() {
                    "status" => (&self.kind, None, None, &["get", "patch", "update"]),
                    "scale" => {
                        ("Scale", Some("autoscaling"), Some("v1"), &["get", "patch", "update"])
                    }
                    "log" => (&self.kind, None, None, &["get"]),
                    "portforward" => ("PodPortForwardOptions", None, None, &["create", "get"]),
                    "finalize" => (&self.kind, None, None, &["update"]),
                    _ => (&self.kind, None, None, &["get"]),
                };
            let mut entry = json!({
                "name": format!("{}/{}", self.plural, sub),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if let Some(g) = group {
                entry["group"] = json!(g);
            }
            if let Some(v) = version {
                entry["version"] = json!(v);
            }
            out.push(entry);
        }
        out
    }
}

#[allow(clippy::too_many_arguments)] // a row of the built-in table reads best flat
fn def(
    group: &str,
    plural: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    subs: &[&str],
    rule: NameRule,
) -> ResourceDef {
    let tracks_generation = matches!(group, "apps")
        || plural == "networkpolicies"
        || plural == "ingresses"
        || matches!(plural, "customresourcedefinitions");
    ResourceDef {
        group: group.to_string(),
        version: "v1".to_string(),
        plural: plural.to_string(),
        singular: singular.to_string(),
        kind: kind.to_string(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        subresources: subs.iter().map(|s| s.to_string()).collect(),
        name_rule: rule,
        tracks_generation,
        from_crd: false,
        create_only: false,
        crd: None,
    }
}

/// The built-in resource types.
#[rustfmt::skip] // one row per type reads as a table
pub fn builtin() -> Vec<ResourceDef> {
    use NameRule::*;
    let mut defs = vec![
        def("", "namespaces", "namespace", "Namespace", false, &["ns"], &["finalize", "status"], Label),
        def("", "nodes", "node", "Node", false, &["no"], &["status"], Subdomain),
        def("", "pods", "pod", "Pod", true, &["po"], &["log", "portforward", "status"], Subdomain),
        def("", "secrets", "secret", "Secret", true, &[], &[], Subdomain),
        def("", "configmaps", "configmap", "ConfigMap", true, &["cm"], &[], Subdomain),
        def("", "services", "service", "Service", true, &["svc"], &["status"], Dns1035),
        def("", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], &[], Subdomain),
        def("", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, &["pvc"], &["status"], Subdomain),
        def("", "events", "event", "Event", true, &["ev"], &[], Subdomain),
        def("", "resourcequotas", "resourcequota", "ResourceQuota", true, &["quota"], &["status"], Subdomain),
        def("", "limitranges", "limitrange", "LimitRange", true, &["limits"], &[], Subdomain),
        def("", "endpoints", "endpoints", "Endpoints", true, &["ep"], &[], Subdomain),
        def("discovery.k8s.io", "endpointslices", "endpointslice", "EndpointSlice", true, &[], &[], Subdomain),
        def("apps", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], &["scale", "status"], Subdomain),
        def("apps", "deployments", "deployment", "Deployment", true, &["deploy"], &["scale", "status"], Subdomain),
        def("apps", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], &["scale", "status"], Subdomain),
        def("rbac.authorization.k8s.io", "roles", "role", "Role", true, &[], &[], PathSegment),
        def("rbac.authorization.k8s.io", "rolebindings", "rolebinding", "RoleBinding", true, &[], &[], PathSegment),
        def("rbac.authorization.k8s.io", "clusterroles", "clusterrole", "ClusterRole", false, &[], &[], PathSegment),
        def("rbac.authorization.k8s.io", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false, &[], &[], PathSegment),
        def("networking.k8s.io", "networkpolicies", "networkpolicy", "NetworkPolicy", true, &["netpol"], &[], Subdomain),
        def("networking.k8s.io", "ingresses", "ingress", "Ingress", true, &["ing"], &["status"], Subdomain),
        def("networking.k8s.io", "ingressclasses", "ingressclass", "IngressClass", false, &[], &[], Subdomain),
        def("networking.k8s.io", "servicecidrs", "servicecidr", "ServiceCIDR", false, &[], &["status"], Subdomain),
        def("events.k8s.io", "events", "event", "Event", true, &["ev"], &[], Subdomain),
        def("storage.k8s.io", "storageclasses", "storageclass", "StorageClass", false, &["sc"], &[], Subdomain),
        def("coordination.k8s.io", "leases", "lease", "Lease", true, &[], &[], Subdomain),
        def("authorization.k8s.io", "selfsubjectaccessreviews", "", "SelfSubjectAccessReview", false, &[], &[], Subdomain),
        def("authorization.k8s.io", "selfsubjectrulesreviews", "", "SelfSubjectRulesReview", false, &[], &[], Subdomain),
        def("authentication.k8s.io", "selfsubjectreviews", "", "SelfSubjectReview", false, &[], &[], Subdomain),
        def("apiextensions.k8s.io", "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false, &["crd", "crds"], &["status"], Subdomain),
    ];
    for d in &mut defs {
        d.create_only = d.plural.ends_with("accessreviews") || d.plural == "selfsubjectreviews";
        if matches!(d.plural.as_str(), "pods" | "services" | "statefulsets" | "deployments" | "replicasets") {
            d.categories = vec!["all".to_string()];
        }
    }
    defs
}

/// Resource types defined by a CustomResourceDefinition object (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let (Some(group), Some(plural), Some(kind)) =
        (spec["group"].as_str(), names["plural"].as_str(), names["kind"].as_str())
    else {
        return Vec::new();
    };
    let singular = names["singular"].as_str().map_or_else(|| kind.to_lowercase(), str::to_string);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"].as_bool() == Some(false) {
            continue;
        }
        let Some(name) = version["name"].as_str() else { continue };
        let mut subresources = Vec::new();
        if version["subresources"]["status"].is_object() {
            subresources.push("status".to_string());
        }
        if version["subresources"]["scale"].is_object() {
            subresources.push("scale".to_string());
        }
        out.push(ResourceDef {
            group: group.to_string(),
            version: name.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            kind: kind.to_string(),
            namespaced,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            subresources,
            name_rule: NameRule::Subdomain,
            tracks_generation: true,
            from_crd: true,
            create_only: false,
            crd: Some(std::sync::Arc::new(crate::schema::CrdVersion::from_version(version))),
        });
    }
    out
}
