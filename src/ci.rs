//! CI outputs for GitHub Actions: `create` and `connect` append step outputs (`name`,
//! `namespace`, `context`, `kubeconfig`, `server`) to the file `GITHUB_OUTPUT` names, and
//! `create` a one-line summary with its phase timings to `GITHUB_STEP_SUMMARY`. Appends only;
//! prints nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variable naming the step's output file.
pub const OUTPUT_VAR: &str = "GITHUB_OUTPUT";
/// The variable naming the step's summary file (Markdown).
pub const SUMMARY_VAR: &str = "GITHUB_STEP_SUMMARY";

/// What a command reports about the cluster it made or reached.
#[derive(Clone, Debug, Default)]
pub struct ClusterOutputs {
    pub name: String,
    pub namespace: String,
    /// The kubeconfig context, when one was written.
    pub context: Option<String>,
    /// The kubeconfig file holding that context.
    pub kubeconfig: Option<String>,
    /// The API server URL of that context.
    pub server: Option<String>,
}

impl ClusterOutputs {
    /// The outputs in a fixed order; those without a value are left out.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("name", self.name.as_str()), ("namespace", self.namespace.as_str())];
        for (key, value) in
            [("context", &self.context), ("kubeconfig", &self.kubeconfig), ("server", &self.server)]
        {
            if let Some(value) = value {
                out.push((key, value.as_str()));
            }
        }
        out
    }
}

/// The output file's lines: `key=value`, or the multi-line form with a delimiter for a value
/// that spans lines.
pub fn output_text(fields: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (key, value) in fields {
        if value.contains('\n') || value.contains('\r') {
            let mut delimiter = "VC_OUTPUT_END".to_string();
            while value.contains(&delimiter) {
                delimiter.push('_');
            }
            text.push_str(&format!("{key}<<{delimiter}\n{value}\n{delimiter}\n"));
        } else {
            text.push_str(&format!("{key}={value}\n"));
        }
    }
    text
}

/// One Markdown line: the cluster, its state and the seconds of each phase.
pub fn summary_line(
    outputs: &ClusterOutputs,
    kubernetes_version: &str,
    ready: bool,
    timings: &[(&'static str, Duration)],
) -> String {
    let total: Duration = timings.iter().map(|(_, d)| *d).sum();
    let phases: Vec<String> =
        timings.iter().map(|(phase, d)| format!("{phase} {:.1}s", d.as_secs_f64())).collect();
    let state = if ready { "ready" } else { "applied, still starting," };
    let context = outputs.context.as_ref().map(|c| format!(", context `{c}`")).unwrap_or_default();
    format!(
        "vc: virtual cluster `{}` (Kubernetes {kubernetes_version}) {state} in namespace `{}`{context} in {:.1}s ({})\n",
        outputs.name,
        outputs.namespace,
        total.as_secs_f64(),
        phases.join(", ")
    )
}

/// The file a variable names, when it is set and not empty.
pub fn target(variable: &str) -> Option<PathBuf> {
    std::env::var_os(variable).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Appends `text` to `path` (created when missing, as the runner does).
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// Writes the outputs when `GITHUB_OUTPUT` is set; returns a warning when it cannot.
pub fn write_outputs(outputs: &ClusterOutputs) -> Option<String> {
    let path = target(OUTPUT_VAR)?;
    append(&path, &output_text(&outputs.fields()))
        .err()
        .map(|e| format!("cannot write the step outputs to {} ({OUTPUT_VAR}): {e}", path.display()))
}

/// Writes the summary line when `GITHUB_STEP_SUMMARY` is set; returns a warning when it cannot.
pub fn write_summary(line: &str) -> Option<String> {
    let path = target(SUMMARY_VAR)?;
    append(&path, line).err().map(|e| {
        format!("cannot write the step summary to {} ({SUMMARY_VAR}): {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs() -> ClusterOutputs {
        ClusterOutputs {
            name: "pr-42".into(),
            namespace: "vc-pr-42".into(),
            context: Some("vc-pr-42".into()),
            kubeconfig: Some("/home/runner/.kube/config".into()),
            server: Some("https://127.0.0.1:40123".into()),
        }
    }

    #[test]
    fn outputs_are_key_value_lines_in_a_fixed_order() {
        assert_eq!(
            output_text(&outputs().fields()),
            "name=pr-42\nnamespace=vc-pr-42\ncontext=vc-pr-42\nkubeconfig=/home/runner/.kube/config\nserver=https://127.0.0.1:40123\n"
        );
        let bare =
            ClusterOutputs { name: "a".into(), namespace: "vc-a".into(), ..Default::default() };
        assert_eq!(output_text(&bare.fields()), "name=a\nnamespace=vc-a\n");
    }

    #[test]
    fn a_value_over_several_lines_gets_a_delimiter_it_does_not_hold() {
        let text = output_text(&[("note", "one\nVC_OUTPUT_END\ntwo")]);
        assert_eq!(text, "note<<VC_OUTPUT_END_\none\nVC_OUTPUT_END\ntwo\nVC_OUTPUT_END_\n");
    }

    #[test]
    fn the_summary_is_one_line_with_every_phase() {
        let timings = [
            ("applying", Duration::from_millis(400)),
            ("ready", Duration::from_millis(9_060)),
            ("connected", Duration::from_millis(300)),
        ];
        let line = summary_line(&outputs(), "v1.36.0", true, &timings);
        assert_eq!(
            line,
            "vc: virtual cluster `pr-42` (Kubernetes v1.36.0) ready in namespace `vc-pr-42`, context `vc-pr-42` in 9.8s (applying 0.4s, ready 9.1s, connected 0.3s)\n"
        );
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn appends_keep_what_is_there() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("output");
        std::fs::write(&path, "earlier=1\n").unwrap();
        append(&path, "name=a\n").unwrap();
        append(&path, "name=b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "earlier=1\nname=a\nname=b\n");
    }
}
