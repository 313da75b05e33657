//! A stateful fake Kubernetes API server on loopback HTTP for vc's tests and benchmarks.
//!
//! Start one per test with [`FakeKube::start`], point a kubeconfig at [`FakeKube::url`], and
//! drive or inspect it through the handle (state access, pod behaviours, faults, request log).

mod admission;
mod api;
mod apply;
mod cel;
mod controllers;
mod discovery;
pub mod exec;
mod faults;
mod fields;
pub mod portforward;
mod protobuf;
mod quantity;
pub mod rbac;
mod registry;
mod schema;
mod selector;
mod server;
mod state;
mod status;
mod table;
mod util;
mod validation;

pub use faults::{Fault, FaultAction, RequestRecord};
pub use rbac::{PolicyRule, User};
pub use server::{Builder, FakeKube};
pub use state::PodBehaviour;
pub use status::ApiError;

/// Parses a JSON or YAML file body holding objects: one object, a `List` (`items`), a JSON
/// array, or a multi-document YAML stream.
pub fn parse_objects(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let docs: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => vec![v],
        Err(_) => {
            serde_saphyr::from_multiple::<serde_json::Value>(text).map_err(|e| e.to_string())?
        }
    };
    let mut out = Vec::new();
    for doc in docs {
        match doc {
            serde_json::Value::Array(items) => out.extend(items),
            serde_json::Value::Null => {}
            v if v["items"].is_array()
                && v["kind"].as_str().is_some_and(|k| k.ends_with("List")) =>
            {
                out.extend(v["items"].as_array().cloned().unwrap_or_default());
            }
            v => out.push(v),
        }
    }
    Ok(out)
}
