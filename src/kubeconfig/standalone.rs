//! Standalone kubeconfigs built from the engine's admin kubeconfig: for `--print` and for the
//! private file `vc connect -- CMD` hands to its command. Never touches the user's kubeconfig.

use std::io::Write as _;
use std::path::Path;

use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

use super::KubeconfigError;
use super::file::render_yaml;

/// Parses the engine's admin kubeconfig (Secret `vc-<name>`, key `config`).
///
/// # Errors
/// [`KubeconfigError::AdminKubeconfig`] when it is not a kubeconfig.
pub fn parse_admin_kubeconfig(yaml: &str) -> Result<Kubeconfig, KubeconfigError> {
    let config = Kubeconfig::from_yaml(yaml).map_err(|e| KubeconfigError::AdminKubeconfig {
        reason: format!("it is not a valid kubeconfig: {e}"),
    })?;
    admin_parts(&config)?;
    Ok(config)
}

/// The cluster and user of the admin kubeconfig's current context (or its only context).
pub(crate) fn admin_parts(admin: &Kubeconfig) -> Result<(&Cluster, &AuthInfo), KubeconfigError> {
    let unusable = |reason: &str| KubeconfigError::AdminKubeconfig { reason: reason.to_owned() };
    let context = match admin.current_context.as_deref().filter(|c| !c.is_empty()) {
        Some(name) => admin.contexts.iter().find(|c| c.name == name),
        None if admin.contexts.len() == 1 => admin.contexts.first(),
        None => None,
    }
    .and_then(|c| c.context.as_ref())
    .ok_or_else(|| unusable("it has no current context"))?;
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| unusable("its context names a cluster it does not define"))?;
    let user_name = context.user.as_deref().unwrap_or_default();
    let user = admin
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.as_ref())
        .ok_or_else(|| unusable("its context names a user it does not define"))?;
    Ok((cluster, user))
}

/// A kubeconfig with one context, cluster and user named `context_name`, taken from the admin
/// kubeconfig with the server replaced by `server_url`. CA data and TLS settings are kept, so
/// the server certificate is still verified.
///
/// # Errors
/// [`KubeconfigError::AdminKubeconfig`] when the admin kubeconfig lacks a context, cluster or
/// user.
pub fn standalone_kubeconfig(
    admin: &Kubeconfig,
    context_name: &str,
    server_url: &str,
) -> Result<Kubeconfig, KubeconfigError> {
    let (cluster, user) = admin_parts(admin)?;
    let mut cluster = cluster.clone();
    cluster.server = Some(server_url.to_owned());
    Ok(Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        clusters: vec![NamedCluster {
            name: context_name.to_owned(),
            cluster: Some(cluster),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: context_name.to_owned(),
            auth_info: Some(user.clone()),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: context_name.to_owned(),
            context: Some(Context {
                cluster: context_name.to_owned(),
                user: Some(context_name.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(context_name.to_owned()),
        ..Default::default()
    })
}

/// The YAML text of a kubeconfig, as vc writes files (for `--print`).
///
/// # Errors
/// [`KubeconfigError::Serialize`] if serialisation fails.
pub fn render_kubeconfig(config: &Kubeconfig) -> Result<String, KubeconfigError> {
    render_yaml(Path::new("-"), config)
}

/// Writes a kubeconfig to a new private (0600) temp file; the file is deleted when the
/// returned path is dropped.
///
/// # Errors
/// [`KubeconfigError::Write`] or [`KubeconfigError::Serialize`].
pub fn write_private_kubeconfig(
    config: &Kubeconfig,
) -> Result<tempfile::TempPath, KubeconfigError> {
    let text = render_kubeconfig(config)?;
    let mut file = tempfile::Builder::new()
        .prefix("vc-kubeconfig-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|source| KubeconfigError::Write { path: std::env::temp_dir(), source })?;
    let path = file.path().to_path_buf();
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|source| KubeconfigError::Write { path, source })?;
    Ok(file.into_temp_path())
}
