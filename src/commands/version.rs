//! `vc version`: the client's version and commit, the engine release it deploys and the
//! Kubernetes versions it can run. Contacts nothing.

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::commands::Invocation;
use crate::engine::images;

/// The git commit the binary was built from (from build.rs; "unknown" outside a checkout).
pub const GIT_COMMIT: &str = env!("VC_GIT_COMMIT");

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: &'static str,
    commit: &'static str,
    engine: EngineInfo,
    kubernetes: KubernetesInfo,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EngineInfo {
    release: &'static str,
    image: &'static str,
    control_plane_repository: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubernetesInfo {
    default: &'static str,
    supported: Vec<SupportedVersion>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SupportedVersion {
    minor: &'static str,
    version: &'static str,
}

pub fn run(invocation: &Invocation) -> anyhow::Result<()> {
    let info = VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: GIT_COMMIT,
        engine: EngineInfo {
            release: images::ENGINE_RELEASE,
            image: images::ENGINE_IMAGE,
            control_plane_repository: images::CONTROL_PLANE_REPOSITORY,
        },
        kubernetes: KubernetesInfo {
            default: images::DEFAULT_KUBERNETES_MINOR,
            supported: images::KUBERNETES_VERSIONS
                .iter()
                .map(|(minor, version)| SupportedVersion { minor, version })
                .collect(),
        },
    };
    let printer = &invocation.printer;
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&info),
        OutputFormat::Name => {
            printer.data(info.version);
            Ok(())
        }
        OutputFormat::Table => {
            let supported: Vec<String> = info
                .kubernetes
                .supported
                .iter()
                .map(|v| format!("{} ({})", v.minor, v.version))
                .collect();
            printer.data(&format!(
                "vc {} (commit {})\nengine: vcluster {} ({})\nkubernetes: default {}; supported {}\n",
                info.version,
                info.commit,
                info.engine.release,
                info.engine.image,
                info.kubernetes.default,
                supported.join(", "),
            ));
            Ok(())
        }
    }
}
