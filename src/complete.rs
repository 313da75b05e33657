//! Shell completion: the scripts `vc completions SHELL` prints (they call `vc` back, so values
//! complete from live data) and the cluster-name candidates read from the host. A host that
//! does not answer within [`HOST_TIMEOUT`] yields no candidates, so a shell never hangs.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap_complete::engine::CompletionCandidate;
use clap_complete::env::Shells;

use crate::host::Host;
use crate::kubeconfig::{KubeconfigPaths, LoadedKubeconfigs};

/// The environment variable that switches `vc` into answering a completion request.
pub const ENV_VAR: &str = "VC_COMPLETE";

/// How long a completion request may wait for the host.
pub const HOST_TIMEOUT: Duration = Duration::from_millis(1500);

/// Answers a completion request and exits when `VC_COMPLETE` is set; returns otherwise.
pub fn answer_if_requested() {
    clap_complete::CompleteEnv::with_factory(|| {
        <crate::cli::Cli as clap::CommandFactory>::command()
    })
    .var(ENV_VAR)
    .bin("vc")
    .completer("vc")
    .complete();
}

/// The registration script for `shell` (bash, zsh, fish, powershell, elvish): it calls
/// `VC_COMPLETE=SHELL vc -- ARGS` for every completion.
pub fn script(shell: &str) -> Result<String, std::io::Error> {
    let shells = Shells::builtins();
    let completer = shells
        .completer(shell)
        .ok_or_else(|| std::io::Error::other(format!("no completion support for {shell}")))?;
    let mut buf = Vec::new();
    completer.write_registration(ENV_VAR, "vc", "vc", "vc", &mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Candidates for a cluster-name argument: the clusters on the host that the command line's
/// `--kubeconfig`, `--context` and `-n` name (else the defaults), within [`HOST_TIMEOUT`].
pub fn cluster_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(prefix) = current.to_str() else {
        return Vec::new();
    };
    let flags = HostFlags::from_args(std::env::args().skip_while(|a| a != "--").skip(1));
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return Vec::new();
    };
    let names = runtime
        .block_on(async { tokio::time::timeout(HOST_TIMEOUT, flags.cluster_names()).await })
        .ok()
        .flatten()
        .unwrap_or_default();
    // A connect attempt still pending must not hold the process.
    runtime.shutdown_background();
    names
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, namespace)| CompletionCandidate::new(name).help(Some(namespace.into())))
        .collect()
}

/// The global flags that choose the host, read from a partial command line.
#[derive(Debug, Default, PartialEq, Eq)]
struct HostFlags {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
}

impl HostFlags {
    fn from_args(args: impl IntoIterator<Item = String>) -> Self {
        let mut flags = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_string(), Some(value.to_string()))
                }
                _ => (arg.clone(), None),
            };
            let slot = match flag.as_str() {
                "--kubeconfig" => Slot::Kubeconfig,
                "--context" => Slot::Context,
                "-n" | "--namespace" => Slot::Namespace,
                _ => continue,
            };
            let Some(value) = inline.or_else(|| args.next()) else {
                break;
            };
            match slot {
                Slot::Kubeconfig => flags.kubeconfig = Some(PathBuf::from(value)),
                Slot::Context => flags.context = Some(value),
                Slot::Namespace => flags.namespace = Some(value),
            }
        }
        flags
    }

    /// (name, namespace) of every cluster in scope, or None when the host cannot be asked.
    async fn cluster_names(&self) -> Option<Vec<(String, String)>> {
        let paths = KubeconfigPaths::resolve(self.kubeconfig.as_deref()).ok()?;
        let loaded = LoadedKubeconfigs::load(&paths).ok()?;
        let context = loaded.host_context(self.context.as_deref()).ok()?;
        let host = Host::connect(loaded.merged(), Some(&context.context)).await.ok()?;
        let (records, _) = host.list(self.namespace.as_deref(), None).await.ok()?;
        let mut names: Vec<(String, String)> =
            records.into_iter().map(|r| (r.name, r.namespace)).collect();
        names.sort();
        names.dedup_by(|a, b| a.0 == b.0);
        Some(names)
    }
}

enum Slot {
    Kubeconfig,
    Context,
    Namespace,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> HostFlags {
        HostFlags::from_args(args.iter().map(|a| (*a).to_string()))
    }

    #[test]
    fn host_flags_are_read_in_both_spellings() {
        assert_eq!(
            flags(&["vc", "--kubeconfig", "/k", "connect", "--context=kind-a", "-n", "team", "de"]),
            HostFlags {
                kubeconfig: Some(PathBuf::from("/k")),
                context: Some("kind-a".into()),
                namespace: Some("team".into()),
            }
        );
        assert_eq!(flags(&["vc", "connect", "--context"]), HostFlags::default());
        assert_eq!(flags(&["vc", "delete", "--namespace=x", "a"]).namespace.as_deref(), Some("x"));
    }

    #[test]
    fn every_shell_has_a_script_that_calls_vc_back() {
        for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
            let text = script(shell).expect("a script");
            assert!(text.contains("VC_COMPLETE"), "{shell}: {text}");
        }
        assert!(script("tcsh").is_err());
    }
}
