//! Type-specific validation the real API server runs on create and update (422 Invalid):
//! NetworkPolicy ports and ipBlocks, Ingress hosts and paths, and the immutable fields of StatefulSets, Services and
//! Secrets. Messages follow `pkg/apis/*/validation` of Kubernetes v1.33.

use std::net::IpAddr;

use serde_json::Value;

use crate::registry::ResourceDef;
use crate::status::FieldError;

/// Errors for writing `new` (over `old` on updates) of type `def`.
pub fn validate(def: &ResourceDef, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (def.group.as_str(), def.plural.as_str()) {
        ("networking.k8s.io", "networkpolicies") => {
            let existing = old.map(existing_cidrs).unwrap_or_default();
            network_policy_spec(&new["spec"], &existing, &mut errs);
        }
        ("networking.k8s.io", "ingresses") => ingress_spec(&new["spec"], &mut errs),
        ("apps", "statefulsets") => {
            if let Some(old) = old {
                statefulset_update(new, old, &mut errs);
            }
        }
        ("", "services") => {
            if let Some(old) = old {
                service_update(new, old, &mut errs);
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            errs.extend(crate::schema::check_crd(new));
        }
        ("", "secrets") => {
            if let Some(old) = old.filter(|o| o["type"] != new["type"]) {
                let _ = old;
                let v = new["type"].as_str().unwrap_or_default();
                errs.push(FieldError::invalid("type", v, "field is immutable"));
            }
        }
        _ => {}
    }
    errs
}

const STS_MUTABLE: [&str; 7] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn statefulset_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let strip = |v: &Value| {
        let mut v = v["spec"].clone();
        if let Some(m) = v.as_object_mut() {
            for k in STS_MUTABLE {
                m.remove(k);
            }
            m.retain(|_, v| !v.is_null());
        }
        v
    };
    if strip(new) != strip(old) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

/// Go's `%#v` of a `[]string`.
pub fn go_string_slice(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| serde_json::json!(s).to_string()).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn service_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let external = |v: &Value| v["spec"]["type"] == "ExternalName";
    if external(new) || external(old) {
        return;
    }
    let old_ip = old["spec"]["clusterIP"].as_str().unwrap_or_default();
    let new_ip = new["spec"]["clusterIP"].as_str().unwrap_or_default();
    if old_ip.is_empty() || new_ip.is_empty() || old_ip == "None" && new_ip == "None" {
        return;
    }
    if old_ip != new_ip {
        let mut ips: Vec<&str> = vec![new_ip];
        let new_ips: Vec<&str> = new["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let old_ips: Vec<&str> = old["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if new_ips != old_ips && !new_ips.is_empty() {
            ips = new_ips;
        }
        errs.push(FieldError::invalid_raw(
            "spec.clusterIPs[0]",
            go_string_slice(&ips),
            "may not change once set",
        ));
    }
}

fn existing_cidrs(old: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        for rule in old["spec"][rules].as_array().into_iter().flatten() {
            for peer in rule[peers].as_array().into_iter().flatten() {
                let b = &peer["ipBlock"];
                if let Some(c) = b["cidr"].as_str() {
                    out.push(c.to_string());
                }
                for e in b["except"].as_array().into_iter().flatten() {
                    if let Some(e) = e.as_str() {
                        out.push(e.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Path types an Ingress path may have (`supportedPathTypes`, sorted as Go prints the set).
const INGRESS_PATH_TYPES: [&str; 3] = ["Exact", "ImplementationSpecific", "Prefix"];

/// `validateIngressRules` and `validateHTTPIngressPath`: a rule's host is a DNS name (a
/// wildcard only as the first label), never an IP address; every path has a known path type
/// and an absolute path; the class name is a DNS subdomain.
fn ingress_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    if let Some(class) = spec["ingressClassName"].as_str() {
        for mut e in crate::util::validate_name(crate::registry::NameRule::Subdomain, class) {
            e.field = "spec.ingressClassName".to_string();
            errs.push(e);
        }
    }
    for (i, rule) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        let path = format!("spec.rules[{i}]");
        if let Some(host) = rule["host"].as_str().filter(|h| !h.is_empty()) {
            let field = format!("{path}.host");
            if host.parse::<IpAddr>().is_ok() {
                errs.push(FieldError::invalid(
                    &field,
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            let name = host.strip_prefix("*.").unwrap_or(host);
            for mut e in crate::util::validate_name(crate::registry::NameRule::Subdomain, name) {
                e.field.clone_from(&field);
                e.value = Some(serde_json::json!(host).to_string());
                errs.push(e);
            }
        }
        for (j, p) in rule["http"]["paths"].as_array().into_iter().flatten().enumerate() {
            let at = format!("{path}.http.paths[{j}]");
            let Some(path_type) = p["pathType"].as_str() else {
                errs.push(FieldError::required(
                    &format!("{at}.pathType"),
                    "pathType must be specified",
                ));
                continue;
            };
            if !INGRESS_PATH_TYPES.contains(&path_type) {
                errs.push(FieldError::not_supported(
                    &format!("{at}.pathType"),
                    path_type,
                    &INGRESS_PATH_TYPES,
                ));
                continue;
            }
            let value = p["path"].as_str().unwrap_or_default();
            let may_be_empty = path_type == "ImplementationSpecific";
            if !(value.starts_with('/') || may_be_empty && value.is_empty()) {
                errs.push(FieldError::invalid(
                    &format!("{at}.path"),
                    value,
                    "must be an absolute path",
                ));
            }
        }
    }
}

fn network_policy_spec(spec: &Value, existing: &[String], errs: &mut Vec<FieldError>) {
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in spec[rules].as_array().into_iter().flatten().enumerate() {
            let path = format!("spec.{rules}[{i}]");
            for (j, port) in rule["ports"].as_array().into_iter().flatten().enumerate() {
                network_policy_port(port, &format!("{path}.ports[{j}]"), errs);
            }
            for (j, peer) in rule[peers].as_array().into_iter().flatten().enumerate() {
                network_policy_peer(peer, &format!("{path}.{peers}[{j}]"), existing, errs);
            }
        }
    }
    let types: Vec<&Value> = spec["policyTypes"].as_array().into_iter().flatten().collect();
    if types.len() > 2 {
        let rendered: Vec<&str> = types.iter().filter_map(|t| t.as_str()).collect();
        errs.push(FieldError::invalid_raw(
            "spec.policyTypes",
            format!("&{}", go_string_slice(&rendered)),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or_default();
        if t != "Ingress" && t != "Egress" {
            errs.push(FieldError::not_supported(
                &format!("spec.policyTypes[{i}]"),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
}

fn network_policy_port(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(p) = port["protocol"].as_str().filter(|p| !matches!(*p, "TCP" | "UDP" | "SCTP")) {
        errs.push(FieldError::not_supported(
            &format!("{path}.protocol"),
            p,
            &["TCP", "UDP", "SCTP"],
        ));
    }
    let end = port["endPort"].as_i64();
    const RANGE: &str = "must be between 1 and 65535, inclusive";
    match &port["port"] {
        Value::Number(n) => {
            let p = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&p) {
                errs.push(FieldError::invalid_raw(&format!("{path}.port"), p.to_string(), RANGE));
            }
            if let Some(e) = end {
                if e < p {
                    errs.push(FieldError::invalid_raw(
                        &format!("{path}.endPort"),
                        e.to_string(),
                        "must be greater than or equal to `port`",
                    ));
                }
                if !(1..=65535).contains(&e) {
                    errs.push(FieldError::invalid_raw(
                        &format!("{path}.endPort"),
                        e.to_string(),
                        RANGE,
                    ));
                }
            }
        }
        Value::String(_) => {
            if let Some(e) = end {
                errs.push(FieldError::invalid_raw(
                    &format!("{path}.endPort"),
                    e.to_string(),
                    "may not be specified when `port` is non-numeric",
                ));
            }
        }
        _ => {
            if let Some(e) = end {
                errs.push(FieldError::invalid_raw(
                    &format!("{path}.endPort"),
                    e.to_string(),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn network_policy_peer(peer: &Value, path: &str, existing: &[String], errs: &mut Vec<FieldError>) {
    let mut n = 0;
    for key in ["podSelector", "namespaceSelector", "ipBlock"] {
        if !peer[key].is_null() {
            n += 1;
        }
    }
    let block = &peer["ipBlock"];
    if !block.is_null() {
        ip_block(block, &format!("{path}.ipBlock"), existing, errs);
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if n > 1 && !block.is_null() {
        errs.push(FieldError::forbidden(path, "may not specify both ipBlock and another peer"));
    }
}

const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn ip_block(block: &Value, path: &str, existing: &[String], errs: &mut Vec<FieldError>) {
    let cidr = block["cidr"].as_str().unwrap_or_default();
    if cidr.is_empty() {
        errs.push(FieldError::required(&format!("{path}.cidr"), ""));
        return;
    }
    let parsed = parse_cidr(cidr);
    if parsed.is_none() && !existing.iter().any(|c| c == cidr) {
        errs.push(FieldError::invalid(&format!("{path}.cidr"), cidr, CIDR_MSG));
    }
    let Some(outer) = parsed else { return };
    for (i, except) in block["except"].as_array().into_iter().flatten().enumerate() {
        let text = except.as_str().unwrap_or_default();
        let epath = format!("{path}.except[{i}]");
        let Some(inner) = parse_cidr(text) else {
            if !existing.iter().any(|c| c == text) {
                errs.push(FieldError::invalid(&epath, text, CIDR_MSG));
            }
            continue;
        };
        if !outer.contains(&inner.network) || outer.prefix >= inner.prefix {
            errs.push(FieldError::invalid(&epath, text, "must be a strict subset of `cidr`"));
        }
    }
}

/// A parsed CIDR: the masked network address and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => mask32(u32::from(*i), self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(i)) => mask128(u128::from(*i), self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask32(v: u32, prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { v & (u32::MAX << (32 - u32::from(prefix))) }
}

fn mask128(v: u128, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { v & (u128::MAX << (128 - u32::from(prefix))) }
}

/// IPv4 as Go's `ParseIPSloppy` reads it (leading zeros allowed, decimal).
fn parse_ipv4_sloppy(s: &str) -> Option<[u8; 4]> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut out = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out[i] = p.parse::<u16>().ok().filter(|v| *v <= 255)? as u8;
    }
    Some(out)
}

/// Parses `addr/prefix` like `netutils.ParseCIDRSloppy`.
pub fn parse_cidr(s: &str) -> Option<Cidr> {
    let (addr, prefix) = s.split_once('/')?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    if let Some(v4) = parse_ipv4_sloppy(addr) {
        if prefix > 32 {
            return None;
        }
        let n = mask32(u32::from_be_bytes(v4), prefix);
        return Some(Cidr { network: IpAddr::V4(n.into()), prefix });
    }
    let v6: std::net::Ipv6Addr = addr.parse().ok()?;
    if prefix > 128 {
        return None;
    }
    let n = mask128(u128::from(v6), prefix);
    Some(Cidr { network: IpAddr::V6(n.into()), prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_contain() {
        let outer = parse_cidr("10.0.0.0/8").unwrap();
        let inner = parse_cidr("10.1.0.0/16").unwrap();
        assert!(outer.contains(&inner.network));
        assert!(!inner.contains(&outer.network));
        assert!(parse_cidr("10.0.0.0").is_none());
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("300.0.0.0/8").is_none());
        assert!(parse_cidr("010.0.0.1/8").is_some());
        assert!(parse_cidr("2001:db8::/64").is_some());
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().network.to_string(), "10.0.0.0");
    }
}
