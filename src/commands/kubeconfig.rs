//! `vc kubeconfig NAME`: prints a self-contained kubeconfig for a virtual cluster and starts
//! nothing. The server is `--server`, else the exposed address (`vc create --expose`), else
//! the running forward's URL, else the engine's own.

use crate::cli::KubeconfigArgs;
use crate::commands::Invocation;
use crate::connection::{self, Target};
use crate::error::CliError;
use crate::forward;
use crate::kubeconfig;

pub async fn run(invocation: &Invocation, args: KubeconfigArgs) -> anyhow::Result<()> {
    crate::spec::validate_name(&args.name)?;
    let host = invocation.host().await?;
    let record = host.find(&args.name, invocation.global.namespace.as_deref()).await?;
    let target = Target::of(&host, &record);
    let text =
        host.admin_kubeconfig(&target.namespace, &target.host_name).await?.ok_or_else(|| {
            CliError::not_found(format!(
                "virtual cluster {:?} has no kubeconfig yet: it is still starting (see: vc list)",
                target.name
            ))
        })?;
    let admin = kubeconfig::parse_admin_kubeconfig(&text)?;
    let exposed = match record.spec.as_ref().and_then(|s| s.expose.as_ref()) {
        Some(expose) if args.server.is_none() => {
            host.exposed_url(&target.namespace, &target.host_name, expose).await?
        }
        _ => None,
    };
    let server = match args.server.or(exposed) {
        Some(url) => url,
        None => match forward::status(&target.forward_key()).await? {
            Some(status) if status.answering => connection::local_url(status.state.port),
            _ => admin
                .clusters
                .first()
                .and_then(|c| c.cluster.as_ref())
                .and_then(|c| c.server.clone())
                .unwrap_or_else(|| "https://localhost:8443".to_string()),
        },
    };
    let config = kubeconfig::standalone_kubeconfig(&admin, &target.context_name(), &server)?;
    invocation.printer.data(&kubeconfig::render_kubeconfig(&config)?);
    Ok(())
}
