//! Go's text/template with the Sprig and Helm functions that charts use: a stated subset
//! (docs/provisioning.md lists it), parsed and evaluated over JSON values. Anything outside the
//! subset is refused when the template is parsed, naming the template, the line and the
//! function. Pure: no I/O, no clock, no randomness.

mod exec;
mod format;
mod funcs;
mod parse;

use std::collections::BTreeMap;

use serde_json::Value;

pub use funcs::SUPPORTED;

/// A template that does not parse or does not render: the file, the line, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TemplateError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl TemplateError {
    fn at(file: &str, line: usize, message: impl Into<String>) -> Self {
        TemplateError { file: file.to_string(), line, message: message.into() }
    }
}

/// A set of parsed template files sharing their `define`d templates, as a chart's are.
#[derive(Clone, Debug, Default)]
pub struct Templates {
    files: BTreeMap<String, parse::Parsed>,
    /// Named templates: their defining file and body. A later file's definition replaces an
    /// earlier one's, as Helm's (files taken in name order) do.
    defines: BTreeMap<String, (String, Vec<parse::Node>)>,
    /// The chart's other files, for `.Files.Get`.
    chart_files: BTreeMap<String, String>,
}

impl Templates {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a template file and keeps its definitions.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), TemplateError> {
        let parsed = parse::parse(source, name)?;
        for (define, body) in &parsed.defines {
            self.defines.insert(define.clone(), (name.to_string(), body.clone()));
        }
        self.files.insert(name.to_string(), parsed);
        Ok(())
    }

    /// The files `.Files.Get` reads, by their path inside the chart.
    pub fn set_chart_files(&mut self, files: BTreeMap<String, String>) {
        self.chart_files = files;
    }

    /// Renders a file added before with `data` as its dot.
    pub fn render(&self, name: &str, data: &Value) -> Result<String, TemplateError> {
        let parsed = self
            .files
            .get(name)
            .ok_or_else(|| TemplateError::at(name, 0, "no such template file"))?;
        exec::run(self, name, &parsed.body, data)
    }
}

/// The value `.Files` stands for in a chart's data: `.Files.Get NAME` reads the chart file
/// `PREFIX` + `NAME` of those given to [`Templates::set_chart_files`].
pub fn files_object(prefix: &str) -> Value {
    exec::files_marker(prefix)
}

/// Whether `version` meets a Masterminds semver constraint (as `semverCompare` and a chart's
/// `kubeVersion` use them).
pub fn semver_matches(constraint: &str, version: &str) -> Result<bool, String> {
    funcs::semver_matches(constraint, version)
}

/// The value `.Capabilities.APIVersions` stands for: `.Capabilities.APIVersions.Has "apps/v1"`.
pub fn api_versions_object(versions: &[String]) -> Value {
    exec::api_versions_marker(versions)
}

/// Renders one template text on its own (for tests and `tpl`-like uses).
pub fn render_str(name: &str, source: &str, data: &Value) -> Result<String, TemplateError> {
    let mut templates = Templates::new();
    templates.add(name, source)?;
    templates.render(name, data)
}

#[cfg(test)]
mod tests;
