//! `vc disconnect [NAME|--all]`: stops background forwarders and removes the kubeconfig
//! entries, restoring the previous current-context. Needs no host: it works from the
//! kubeconfig's metadata and the forward state files.

use crate::cli::{DisconnectArgs, OutputFormat};
use crate::commands::Invocation;
use crate::connection::{self, Target};
use crate::forward;
use crate::kubeconfig::{CurrentContextChange, list_virtual_cluster_entries};

pub async fn run(invocation: &Invocation, args: DisconnectArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.name {
        crate::spec::validate_name(name)?;
    }
    let printer = &invocation.printer;
    let namespace = invocation.global.namespace.as_deref();
    let wanted = |name: &str, ns: &str| {
        args.name.as_deref().is_none_or(|n| n == name) && namespace.is_none_or(|n| n == ns)
    };
    let (paths, loaded) = invocation.kubeconfigs()?;
    let mut targets: Vec<Target> = Vec::new();
    // The engine runs one virtual cluster per namespace, so namespace and host identify it;
    // its name may differ between the two sources (a cluster claimed from a pool keeps the
    // member's name on the host, where its forward is keyed).
    let mut add = |t: Target| {
        let same = |o: &Target| o.namespace == t.namespace && o.host_server == t.host_server;
        if !targets.iter().any(same) {
            targets.push(t);
        }
    };
    // A stopped forwarder's state file stays (it keeps the port for the next connect): only a
    // running one makes a cluster connected.
    let alive: Vec<_> = forward::list_states_alive()
        .await?
        .into_iter()
        .filter(|s| s.alive)
        .map(|s| s.state)
        .collect();
    for entry in list_virtual_cluster_entries(&loaded) {
        let c = entry.metadata.cluster;
        if wanted(&c.name, &c.namespace) {
            let host_name = alive
                .iter()
                .find(|s| s.namespace == c.namespace && s.host_server == c.host_server)
                .map_or_else(|| c.name.clone(), |s| s.name.clone());
            add(Target {
                name: c.name,
                host_name,
                namespace: c.namespace,
                host_context: c.host_context,
                host_server: c.host_server,
            });
        }
    }
    for s in alive {
        if wanted(&s.name, &s.namespace) {
            add(Target {
                name: s.name.clone(),
                host_name: s.name,
                namespace: s.namespace,
                host_context: s.host_context,
                host_server: s.host_server,
            });
        }
    }
    if targets.is_empty() {
        let what = args
            .name
            .as_deref()
            .map_or("no virtual cluster".to_string(), |n| format!("virtual cluster {n:?}"));
        printer.info(&format!("{what} is not connected; nothing to do"));
        if printer.structured() {
            printer.structured_value(&Vec::<String>::new())?;
        }
        return Ok(());
    }
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for target in &targets {
        // One cluster failing must not leave the others connected.
        let result = match connection::disconnect(&paths, target, false).await {
            Ok(result) => result,
            Err(e) => {
                failures.push(format!("{}: {e:#}", target.name));
                continue;
            }
        };
        let restored = match &result.removed.current_context {
            CurrentContextChange::Restored(ctx) => format!("; current context is {ctx} again"),
            CurrentContextChange::Unset => "; current context unset".to_string(),
            CurrentContextChange::Unchanged => String::new(),
        };
        printer.info(&format!(
            "disconnected virtual cluster {:?} (namespace {}){restored}",
            target.name, target.namespace
        ));
        done.push(target.name.clone());
    }
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&done)?,
        OutputFormat::Name => printer.data(&done.join("\n")),
        OutputFormat::Table => {}
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("disconnecting failed for {}", failures.join("; ")))
    }
}
