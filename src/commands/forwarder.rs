//! `vc forwarder` (hidden): the detached background port-forward that `vc connect` starts.

use std::time::Duration;

use crate::cli::ForwarderArgs;
use crate::commands::Invocation;
use crate::error::CliError;
use crate::forward::{self, DEFAULT_GONE_AFTER, ForwarderOptions};

pub async fn run(invocation: &Invocation, args: ForwarderArgs) -> anyhow::Result<()> {
    let (Some(host_context), Some(namespace)) =
        (invocation.global.context.clone(), invocation.global.namespace.clone())
    else {
        return Err(CliError::usage("the forwarder needs --context and --namespace").into());
    };
    let options = ForwarderOptions {
        kubeconfig: invocation.global.kubeconfig.clone(),
        host_context,
        host_server: args.host_server,
        namespace,
        name: args.name,
        local_port: args.local_port,
        state_dir: args.state_dir,
        gone_after: args.gone_after_secs.map_or(DEFAULT_GONE_AFTER, Duration::from_secs),
    };
    forward::run_forwarder(options).await?;
    Ok(())
}
