//! Kubeconfig entries for virtual clusters: naming, the host metadata extension, and the
//! upsert / remove / list operations. Decides what changes; `Transaction` does the file work.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use kube::config::{AuthInfo, Cluster, NamedAuthInfo, NamedCluster, NamedContext, NamedExtension};
use serde::{Deserialize, Serialize};

use super::file::{KubeconfigFile, remove_named, upsert_named};
use super::loaded::{
    current_context, current_context_source, find_cluster, find_context, find_user,
};
use super::lock::{Wait, run_blocking};
use super::transaction::Transaction;
use super::{KubeconfigError, KubeconfigPaths, LoadedKubeconfigs};

/// Name of the context extension that ties a context to the virtual cluster behind it.
pub const EXTENSION_NAME: &str = "vc.dev/cluster";

/// How many numbered names to try after the readable ones are taken.
const NUMBERED_NAMES: usize = 100;

/// Which virtual cluster, on which host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualClusterRef {
    /// The virtual cluster's name.
    pub name: String,
    /// Its host namespace.
    pub namespace: String,
    /// The host context it was reached through.
    pub host_context: String,
    /// The host API server URL (empty when unknown).
    #[serde(default)]
    pub host_server: String,
}

impl VirtualClusterRef {
    /// Whether both name the same virtual cluster: same name and namespace on the same host.
    /// The host is compared by server URL when both know it (two contexts for one server are
    /// one host), else by host context name.
    pub fn same_cluster(&self, other: &Self) -> bool {
        let same_host = if self.host_server.is_empty() || other.host_server.is_empty() {
            self.host_context == other.host_context
        } else {
            self.host_server == other.host_server
        };
        self.name == other.name && self.namespace == other.namespace && same_host
    }
}

/// The value of the [`EXTENSION_NAME`] extension on a vc context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualClusterMetadata {
    #[serde(flatten)]
    pub cluster: VirtualClusterRef,
    /// The current-context before vc switched to this one, restored by `disconnect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_context: Option<String>,
}

impl VirtualClusterMetadata {
    /// The metadata of a context, if vc made it.
    pub fn of(context: &NamedContext) -> Option<Self> {
        context
            .context
            .as_ref()?
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.name == EXTENSION_NAME)
            .and_then(|e| serde_json::from_value(e.extension.clone()).ok())
    }

    fn to_extension(&self) -> Result<NamedExtension, KubeconfigError> {
        let extension = serde_json::to_value(self).map_err(|e| KubeconfigError::Serialize {
            path: PathBuf::from(EXTENSION_NAME),
            message: e.to_string(),
        })?;
        Ok(NamedExtension { name: EXTENSION_NAME.to_owned(), extension })
    }
}

/// How the user authenticates to the virtual cluster.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Base64 PEM data, as in `client-certificate-data` / `client-key-data`.
    ClientCertificate { certificate_data: String, key_data: String },
    /// A bearer token.
    Token(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientCertificate { .. } => f.write_str("ClientCertificate(<redacted>)"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// The credential fields of a kubeconfig user, read and written through serde because kube
/// keeps the key and token as secrets.
#[derive(Default, Serialize, Deserialize)]
struct CredentialFields {
    #[serde(rename = "client-certificate-data", default, skip_serializing_if = "Option::is_none")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-key-data", default, skip_serializing_if = "Option::is_none")]
    client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl Credentials {
    /// Reads the credentials of a kubeconfig user (client certificate and key data, or token).
    ///
    /// # Errors
    /// [`KubeconfigError::AdminKubeconfig`] when the user has neither.
    pub fn from_auth_info(auth: &AuthInfo) -> Result<Self, KubeconfigError> {
        let fields: CredentialFields = serde_json::to_value(auth)
            .and_then(serde_json::from_value)
            .map_err(|e| KubeconfigError::AdminKubeconfig { reason: e.to_string() })?;
        match fields {
            CredentialFields {
                client_certificate_data: Some(certificate_data),
                client_key_data: Some(key_data),
                ..
            } => Ok(Self::ClientCertificate { certificate_data, key_data }),
            CredentialFields { token: Some(token), .. } => Ok(Self::Token(token)),
            _ => Err(KubeconfigError::AdminKubeconfig {
                reason: "its user has neither client certificate/key data nor a token".to_owned(),
            }),
        }
    }

    /// The kubeconfig user carrying these credentials.
    pub fn to_auth_info(&self) -> AuthInfo {
        let fields = match self.clone() {
            Self::ClientCertificate { certificate_data, key_data } => CredentialFields {
                client_certificate_data: Some(certificate_data),
                client_key_data: Some(key_data),
                token: None,
            },
            Self::Token(token) => CredentialFields { token: Some(token), ..Default::default() },
        };
        // Every field is an optional string on both sides, so this conversion cannot fail.
        serde_json::to_value(fields).and_then(serde_json::from_value).unwrap_or_default()
    }
}

/// What `vc connect` writes for one virtual cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualClusterEntry {
    pub cluster: VirtualClusterRef,
    /// The URL kubectl uses (the local forward, or `--server`).
    pub server_url: String,
    /// Base64 PEM of the virtual API server's CA (`certificate-authority-data`).
    pub ca_data: Option<String>,
    pub credentials: Credentials,
    /// Make it the current context, remembering the one it replaces.
    pub switch: bool,
}

impl VirtualClusterEntry {
    /// Takes the CA and credentials from the engine's admin kubeconfig (its current context,
    /// or its only one) and points them at `server_url`.
    ///
    /// # Errors
    /// [`KubeconfigError::AdminKubeconfig`] when the admin kubeconfig lacks a context, cluster
    /// or credentials.
    pub fn from_admin_kubeconfig(
        admin: &kube::config::Kubeconfig,
        cluster: VirtualClusterRef,
        server_url: &str,
        switch: bool,
    ) -> Result<Self, KubeconfigError> {
        let (admin_cluster, admin_user) = super::standalone::admin_parts(admin)?;
        Ok(Self {
            cluster,
            server_url: server_url.to_owned(),
            ca_data: admin_cluster.certificate_authority_data.clone(),
            credentials: Credentials::from_auth_info(admin_user)?,
            switch,
        })
    }
}

/// What [`upsert_virtual_cluster`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryOutcome {
    /// Name of the context, cluster and user.
    pub context_name: String,
    /// The file that holds the context.
    pub file: PathBuf,
    /// The context recorded to restore on disconnect.
    pub previous_context: Option<String>,
    /// True when no context for this virtual cluster existed before.
    pub created: bool,
    /// True when current-context was changed to this context.
    pub switched: bool,
    /// Files that were rewritten.
    pub written: Vec<PathBuf>,
}

/// Which entries [`remove_virtual_cluster`] removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VirtualClusterSelector {
    /// Every vc context for this virtual cluster (as `vc delete` / `vc disconnect NAME`).
    Cluster(VirtualClusterRef),
    /// One context by name; it must carry vc's metadata.
    Context(String),
}

/// What happened to current-context when entries were removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CurrentContextChange {
    /// It did not name a removed context.
    #[default]
    Unchanged,
    /// It named a removed context and now names this one (the recorded previous context).
    Restored(String),
    /// It named a removed context and is now unset.
    Unset,
}

/// What [`remove_virtual_cluster`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemovedOutcome {
    /// Contexts removed (their cluster and user of the same name went with them).
    pub removed_contexts: Vec<String>,
    pub current_context: CurrentContextChange,
    /// Files that were rewritten.
    pub written: Vec<PathBuf>,
}

/// A vc context found in the merged kubeconfig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualClusterContext {
    pub context_name: String,
    /// The file that defines it.
    pub file: PathBuf,
    pub metadata: VirtualClusterMetadata,
    /// The server of its cluster stanza (the local forward URL, usually).
    pub server: Option<String>,
    pub is_current: bool,
}

/// Every vc context in kubectl's merged view, in precedence order.
pub fn list_virtual_cluster_entries(loaded: &LoadedKubeconfigs) -> Vec<VirtualClusterContext> {
    let merged = loaded.merged();
    let current = loaded.current_context();
    merged
        .contexts
        .iter()
        .filter_map(|context| {
            let metadata = VirtualClusterMetadata::of(context)?;
            let (_, file) = loaded.context(&context.name)?;
            let server = context
                .context
                .as_ref()
                .and_then(|c| loaded.cluster(&c.cluster))
                .and_then(|(c, _)| c.cluster.as_ref())
                .and_then(|c| c.server.clone());
            Some(VirtualClusterContext {
                context_name: context.name.clone(),
                file: file.to_path_buf(),
                metadata,
                server,
                is_current: current == Some(context.name.as_str()),
            })
        })
        .collect()
}

/// Writes the cluster, user and context of a virtual cluster, and switches to it when asked.
/// Edits stay in the files that define the stanzas; new stanzas go to the default file.
///
/// Waits for a held lock on the async runtime: the task yields between attempts, so a
/// `select!` on Ctrl-C around the command ends the wait at once (the future is dropped, no
/// lock is left behind, and someone else's lock is never removed).
///
/// # Errors
/// Lock timeout, malformed or read-only files, write failures.
pub async fn upsert_virtual_cluster_async(
    paths: &KubeconfigPaths,
    entry: &VirtualClusterEntry,
) -> Result<EntryOutcome, KubeconfigError> {
    upsert_in(Transaction::begin(paths, Wait::Async).await?, entry)
}

/// [`upsert_virtual_cluster_async`] for a plain thread: a held lock blocks the calling thread
/// (on the async runtime, the whole task, Ctrl-C included) for up to the lock timeout.
///
/// # Errors
/// As [`upsert_virtual_cluster_async`].
pub fn upsert_virtual_cluster(
    paths: &KubeconfigPaths,
    entry: &VirtualClusterEntry,
) -> Result<EntryOutcome, KubeconfigError> {
    upsert_in(run_blocking(Transaction::begin(paths, Wait::Blocking))?, entry)
}

fn upsert_in(
    mut tx: Transaction,
    entry: &VirtualClusterEntry,
) -> Result<EntryOutcome, KubeconfigError> {
    let name = match existing_context_name(&tx.files, &entry.cluster) {
        Some(name) => name,
        None => free_context_name(&tx.files, &entry.cluster)?,
    };
    let existing = find_context(&tx.files, &name).map(|(_, c)| c.clone());
    let recorded = existing.as_ref().and_then(VirtualClusterMetadata::of);
    let current = current_context(&tx.files).map(str::to_owned);
    let switched = entry.switch && current.as_deref() != Some(name.as_str());
    let previous_context =
        if switched { current } else { recorded.and_then(|m| m.previous_context) };

    let metadata = VirtualClusterMetadata {
        cluster: entry.cluster.clone(),
        previous_context: previous_context.clone(),
    };
    let created = existing.is_none();
    // The user may have set a namespace or added extensions to the context: keep them.
    let mut context =
        existing.unwrap_or_else(|| NamedContext { name: name.clone(), ..Default::default() });
    let inner = context.context.get_or_insert_with(Default::default);
    inner.cluster.clone_from(&name);
    inner.user = Some(name.clone());
    let extensions = inner.extensions.get_or_insert_with(Vec::new);
    extensions.retain(|e| e.name != EXTENSION_NAME);
    extensions.push(metadata.to_extension()?);

    // Likewise for the cluster (a proxy-url, say); server and CA are vc's.
    let mut cluster = find_cluster(&tx.files, &name).map_or_else(
        || NamedCluster { name: name.clone(), ..Default::default() },
        |(_, c)| c.clone(),
    );
    let inner = cluster.cluster.get_or_insert_with(Cluster::default);
    inner.server = Some(entry.server_url.clone());
    inner.certificate_authority_data.clone_from(&entry.ca_data);
    inner.certificate_authority = None;
    inner.insecure_skip_tls_verify = None;

    let user = NamedAuthInfo {
        name: name.clone(),
        auth_info: Some(entry.credentials.to_auth_info()),
        ..Default::default()
    };

    let cluster_file = find_cluster(&tx.files, &name).map_or(tx.default_index, |(i, _)| i);
    let user_file = find_user(&tx.files, &name).map_or(tx.default_index, |(i, _)| i);
    let context_file = find_context(&tx.files, &name).map_or(tx.default_index, |(i, _)| i);
    upsert_named(&mut tx.files[cluster_file].config_mut().clusters, cluster);
    upsert_named(&mut tx.files[user_file].config_mut().auth_infos, user);
    upsert_named(&mut tx.files[context_file].config_mut().contexts, context);
    if switched {
        let default = tx.default_index;
        tx.files[default].config_mut().current_context = Some(name.clone());
    }
    let file = tx.files[context_file].path().to_path_buf();
    let written = tx.commit()?;
    Ok(EntryOutcome { context_name: name, file, previous_context, created, switched, written })
}

/// Removes the context, cluster and user of a virtual cluster from whichever files hold them.
/// When the removed context was current, the recorded previous context is restored if it still
/// exists, else current-context is unset. Other vc contexts that recorded a removed one as
/// their previous context take over its record.
///
/// # Errors
/// [`KubeconfigError::NotVirtualClusterContext`] for a context vc did not make; lock, parse and
/// write errors.
pub fn remove_virtual_cluster(
    paths: &KubeconfigPaths,
    selector: &VirtualClusterSelector,
) -> Result<RemovedOutcome, KubeconfigError> {
    remove_in(run_blocking(Transaction::begin(paths, Wait::Blocking))?, selector)
}

/// [`remove_virtual_cluster`] waiting for a held lock on the async runtime, as
/// [`upsert_virtual_cluster_async`] does.
///
/// # Errors
/// As [`remove_virtual_cluster`].
pub async fn remove_virtual_cluster_async(
    paths: &KubeconfigPaths,
    selector: &VirtualClusterSelector,
) -> Result<RemovedOutcome, KubeconfigError> {
    remove_in(Transaction::begin(paths, Wait::Async).await?, selector)
}

fn remove_in(
    mut tx: Transaction,
    selector: &VirtualClusterSelector,
) -> Result<RemovedOutcome, KubeconfigError> {
    let targets = select_targets(&tx.files, selector)?;
    if targets.is_empty() {
        return Ok(RemovedOutcome::default());
    }
    let current_before = current_context(&tx.files).map(str::to_owned);
    let removed: BTreeSet<String> = targets.iter().map(|(_, name, _)| name.clone()).collect();
    for (index, name, _) in &targets {
        remove_named(&mut tx.files[*index].config_mut().contexts, name);
    }
    for (index, name, _) in &targets {
        remove_unreferenced(&mut tx.files, *index, name);
    }

    // A removed context recorded as another's previous context is replaced by what it recorded
    // itself, so disconnecting stacked connects in any order ends on the context they started
    // from (the steps are bounded: a cycle of records ends unset).
    let replaced: BTreeMap<&str, Option<&str>> = targets
        .iter()
        .map(|(_, name, meta)| (name.as_str(), meta.previous_context.as_deref()))
        .collect();
    let resolve = |mut previous: Option<String>| {
        for _ in 0..=replaced.len() {
            match previous.as_deref().and_then(|p| replaced.get(p)) {
                Some(next) => previous = next.map(str::to_owned),
                None => return previous,
            }
        }
        None
    };
    for file in &mut tx.files {
        for context in &mut file.config_mut().contexts {
            let Some(mut meta) = VirtualClusterMetadata::of(context) else { continue };
            if !meta.previous_context.as_deref().is_some_and(|p| replaced.contains_key(p)) {
                continue;
            }
            meta.previous_context = resolve(meta.previous_context.take());
            let extension = meta.to_extension()?;
            if let Some(extensions) = context.context.as_mut().and_then(|c| c.extensions.as_mut()) {
                extensions.retain(|e| e.name != EXTENSION_NAME);
                extensions.push(extension);
            }
        }
    }

    let mut outcome = RemovedOutcome {
        removed_contexts: removed.iter().cloned().collect(),
        ..Default::default()
    };
    if let Some(current) = current_before.filter(|c| removed.contains(c)) {
        let previous = resolve(
            targets
                .iter()
                .find(|(_, name, _)| *name == current)
                .and_then(|(_, _, meta)| meta.previous_context.clone()),
        )
        .filter(|p| !removed.contains(p) && find_context(&tx.files, p).is_some());
        restore_current_context(&mut tx.files, &removed, previous.as_deref());
        outcome.current_context = match current_context(&tx.files) {
            Some(now) => CurrentContextChange::Restored(now.to_owned()),
            None => CurrentContextChange::Unset,
        };
    }
    outcome.written = tx.commit()?;
    Ok(outcome)
}

/// (file index, context name, metadata) of every context the selector names.
fn select_targets(
    files: &[KubeconfigFile],
    selector: &VirtualClusterSelector,
) -> Result<Vec<(usize, String, VirtualClusterMetadata)>, KubeconfigError> {
    match selector {
        VirtualClusterSelector::Cluster(wanted) => Ok(files
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.config().contexts.iter().map(move |c| (i, c)))
            .filter_map(|(i, c)| {
                let meta = VirtualClusterMetadata::of(c)?;
                meta.cluster.same_cluster(wanted).then(|| (i, c.name.clone(), meta))
            })
            .collect()),
        VirtualClusterSelector::Context(name) => match find_context(files, name) {
            None => Ok(Vec::new()),
            Some((i, context)) => match VirtualClusterMetadata::of(context) {
                Some(meta) => Ok(vec![(i, name.clone(), meta)]),
                None => Err(KubeconfigError::NotVirtualClusterContext { name: name.clone() }),
            },
        },
    }
}

/// Removes the cluster and user vc created under `name` (from the file that held the context,
/// else from the file that defines them), unless a remaining context still uses them.
fn remove_unreferenced(files: &mut [KubeconfigFile], context_file: usize, name: &str) {
    let contexts =
        || files.iter().flat_map(|f| f.config().contexts.iter()).filter_map(|c| c.context.as_ref());
    let cluster_used = contexts().any(|c| c.cluster == name);
    let user_used = contexts().any(|c| c.user.as_deref() == Some(name));
    if !cluster_used
        && !remove_named(&mut files[context_file].config_mut().clusters, name)
        && let Some((i, _)) = find_cluster(files, name)
    {
        remove_named(&mut files[i].config_mut().clusters, name);
    }
    if !user_used
        && !remove_named(&mut files[context_file].config_mut().auth_infos, name)
        && let Some((i, _)) = find_user(files, name)
    {
        remove_named(&mut files[i].config_mut().auth_infos, name);
    }
}

/// Clears every current-context naming a removed context, then makes `target` effective:
/// if clearing already makes it so (an earlier value in a later file), nothing more is
/// written; else it goes where the removed context was set.
fn restore_current_context(
    files: &mut [KubeconfigFile],
    removed: &BTreeSet<String>,
    target: Option<&str>,
) {
    let Some((first, _)) = current_context_source(files) else { return };
    for file in files.iter_mut() {
        let config = file.config_mut();
        if config.current_context.as_ref().is_some_and(|c| removed.contains(c)) {
            config.current_context = None;
        }
    }
    if let Some(target) = target
        && current_context(files) != Some(target)
    {
        files[first].config_mut().current_context = Some(target.to_owned());
    }
}

/// The context already holding this virtual cluster, if any: the first in kubectl's merged
/// view (a shadowed definition is not reused, its name belongs to the one that shadows it).
fn existing_context_name(files: &[KubeconfigFile], wanted: &VirtualClusterRef) -> Option<String> {
    files
        .iter()
        .flat_map(|f| f.config().contexts.iter())
        .filter(|c| find_context(files, &c.name).is_some_and(|(_, first)| std::ptr::eq(first, *c)))
        .find_map(|c| {
            VirtualClusterMetadata::of(c)
                .filter(|m| m.cluster.same_cluster(wanted))
                .map(|_| c.name.clone())
        })
}

/// The first free name: `vc-<name>`, `vc-<name>@<host-context>`,
/// `vc-<name>.<namespace>@<host-context>`, then numbered ones. Free means no context, cluster
/// or user has it.
fn free_context_name(
    files: &[KubeconfigFile],
    wanted: &VirtualClusterRef,
) -> Result<String, KubeconfigError> {
    let base = format!("vc-{}", wanted.name);
    let host = &wanted.host_context;
    let readable =
        [base.clone(), format!("{base}@{host}"), format!("{base}.{}@{host}", wanted.namespace)];
    let numbered = (2..NUMBERED_NAMES + 2).map(|n| format!("{base}@{host}-{n}"));
    readable
        .into_iter()
        .chain(numbered)
        .find(|name| {
            find_context(files, name).is_none()
                && find_cluster(files, name).is_none()
                && find_user(files, name).is_none()
        })
        .ok_or_else(|| KubeconfigError::NoFreeName {
            name: wanted.name.clone(),
            host_context: wanted.host_context.clone(),
        })
}
