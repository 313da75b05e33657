//! Helm charts installed inside a virtual cluster at creation: fetched (a local directory or
//! `.tgz`, an HTTP chart repository, an OCI registry), their values merged, their templates
//! rendered by vc (no Helm binary), and the objects handed to provisioning, all before the
//! host is contacted. Never talks to the host or the virtual cluster.

pub mod render;
mod source;
pub mod template;

pub use source::{load_all, oci_reference};

/// Why a chart could not be fetched or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("cannot read chart {chart}: {reason}")]
    Read { chart: String, reason: String },
    #[error("cannot fetch chart {chart}: {reason}")]
    Fetch { chart: String, reason: String },
    #[error("chart {chart} is not valid: {reason}")]
    Invalid { chart: String, reason: String },
    #[error("chart {chart} does not render: {error}")]
    Template { chart: String, error: template::TemplateError },
    #[error("{0}")]
    Output(String),
}

#[cfg(test)]
mod tests;
