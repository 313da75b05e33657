//! The read side: every kubeconfig file loaded on its own and kubectl's merged view over them.
//! Lookups only; nothing here writes a file.

use std::path::Path;

use kube::config::{Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

use super::entries::VirtualClusterMetadata;
use super::file::{KubeconfigFile, Named};
use super::{KubeconfigError, KubeconfigPaths, PathSource};

/// The kubeconfig files as read, in precedence order (missing `KUBECONFIG` files left out).
#[derive(Clone, Debug)]
pub struct LoadedKubeconfigs {
    files: Vec<KubeconfigFile>,
    described: String,
}

/// The host cluster context vc talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostContext {
    /// Context name, for `KubeConfigOptions::context`.
    pub context: String,
    /// Server URL of the context's cluster, when the cluster is defined.
    pub server: Option<String>,
    /// The context's default namespace, if it sets one.
    pub namespace: Option<String>,
    /// Set when no context was requested and the current context is a vc context: the host
    /// was taken from its metadata, and this is the vc context's name.
    pub via_virtual_cluster: Option<String>,
}

impl LoadedKubeconfigs {
    /// Loads every file of `paths`.
    ///
    /// # Errors
    /// A missing `--kubeconfig` file, an unreadable file, or malformed YAML (naming the file).
    pub fn load(paths: &KubeconfigPaths) -> Result<Self, KubeconfigError> {
        let mut files = Vec::new();
        for path in paths.precedence() {
            let file = KubeconfigFile::read(path)?;
            if !file.exists() {
                if paths.source() == PathSource::Explicit {
                    return Err(KubeconfigError::ExplicitMissing { path: path.clone() });
                }
                continue;
            }
            files.push(file);
        }
        Ok(Self { files, described: paths.describe() })
    }

    /// The files that were read, in precedence order.
    pub fn files(&self) -> &[KubeconfigFile] {
        &self.files
    }

    /// kubectl's merged view, for building a client with `kube::Config::from_custom_kubeconfig`.
    pub fn merged(&self) -> Kubeconfig {
        merged(&self.files)
    }

    /// The effective current-context: the first non-empty one in precedence order.
    pub fn current_context(&self) -> Option<&str> {
        current_context(&self.files)
    }

    /// The effective context of that name and the file that defines it.
    pub fn context(&self, name: &str) -> Option<(&NamedContext, &Path)> {
        find_context(&self.files, name).map(|(i, c)| (c, self.files[i].path()))
    }

    /// The effective cluster of that name and the file that defines it.
    pub fn cluster(&self, name: &str) -> Option<(&NamedCluster, &Path)> {
        find_cluster(&self.files, name).map(|(i, c)| (c, self.files[i].path()))
    }

    /// The effective user of that name and the file that defines it.
    pub fn user(&self, name: &str) -> Option<(&NamedAuthInfo, &Path)> {
        find_user(&self.files, name).map(|(i, c)| (c, self.files[i].path()))
    }

    /// The host context: `requested` (`--context`) if given, else the current context. When the
    /// current context is one vc made for a virtual cluster, its recorded host context is used,
    /// so `vc list` run while connected still talks to the host.
    ///
    /// # Errors
    /// [`KubeconfigError::ContextNotFound`] or [`KubeconfigError::NoCurrentContext`].
    pub fn host_context(&self, requested: Option<&str>) -> Result<HostContext, KubeconfigError> {
        let (name, via) = match requested {
            Some(name) => (name.to_owned(), None),
            None => {
                let current = self.current_context().ok_or_else(|| {
                    KubeconfigError::NoCurrentContext { files: self.described.clone() }
                })?;
                let meta = self.context(current).and_then(|(c, _)| VirtualClusterMetadata::of(c));
                match meta {
                    Some(meta) => (meta.cluster.host_context, Some(current.to_owned())),
                    None => (current.to_owned(), None),
                }
            }
        };
        let (context, _) = self.context(&name).ok_or_else(|| KubeconfigError::ContextNotFound {
            name: name.clone(),
            files: self.described.clone(),
        })?;
        let inner = context.context.as_ref();
        let server = inner
            .and_then(|c| self.cluster(&c.cluster))
            .and_then(|(c, _)| c.cluster.as_ref())
            .and_then(|c| c.server.clone());
        Ok(HostContext {
            context: name,
            server,
            namespace: inner.and_then(|c| c.namespace.clone()),
            via_virtual_cluster: via,
        })
    }
}

/// First file (index) to define the named stanza, and the stanza.
fn find_first<'a, T: Named>(
    files: &'a [KubeconfigFile],
    name: &str,
    list: impl Fn(&'a Kubeconfig) -> &'a [T],
) -> Option<(usize, &'a T)> {
    files
        .iter()
        .enumerate()
        .find_map(|(i, f)| list(f.config()).iter().find(|e| e.name() == name).map(|e| (i, e)))
}

pub(crate) fn find_context<'a>(
    files: &'a [KubeconfigFile],
    name: &str,
) -> Option<(usize, &'a NamedContext)> {
    find_first(files, name, |c| &c.contexts)
}

pub(crate) fn find_cluster<'a>(
    files: &'a [KubeconfigFile],
    name: &str,
) -> Option<(usize, &'a NamedCluster)> {
    find_first(files, name, |c| &c.clusters)
}

pub(crate) fn find_user<'a>(
    files: &'a [KubeconfigFile],
    name: &str,
) -> Option<(usize, &'a NamedAuthInfo)> {
    find_first(files, name, |c| &c.auth_infos)
}

/// Index of the first file that sets a non-empty current-context, and its value.
pub(crate) fn current_context_source(files: &[KubeconfigFile]) -> Option<(usize, &str)> {
    files.iter().enumerate().find_map(|(i, f)| {
        f.config().current_context.as_deref().filter(|c| !c.is_empty()).map(|c| (i, c))
    })
}

pub(crate) fn current_context(files: &[KubeconfigFile]) -> Option<&str> {
    current_context_source(files).map(|(_, c)| c)
}

/// kubectl's merge: the first file to set a value or define a name wins; relative file
/// references become absolute against the directory of the file that holds them.
pub(crate) fn merged(files: &[KubeconfigFile]) -> Kubeconfig {
    let mut out = Kubeconfig::default();
    for file in files {
        let mut next = file.config().clone();
        absolutize(&mut next, file.path());
        out.kind = out.kind.or(next.kind);
        out.api_version = out.api_version.or(next.api_version);
        out.preferences = out.preferences.or(next.preferences);
        out.extensions = out.extensions.or(next.extensions);
        if out.current_context.as_deref().is_none_or(str::is_empty) {
            out.current_context = next.current_context.filter(|c| !c.is_empty());
        }
        append_new(&mut out.clusters, next.clusters);
        append_new(&mut out.auth_infos, next.auth_infos);
        append_new(&mut out.contexts, next.contexts);
        for (key, value) in next.other {
            out.other.entry(key).or_insert(value);
        }
    }
    out
}

fn append_new<T: Named>(base: &mut Vec<T>, next: Vec<T>) {
    for entry in next {
        if !base.iter().any(|e| e.name() == entry.name()) {
            base.push(entry);
        }
    }
}

/// Rewrites relative file references as kubectl resolves them: against the file's directory.
fn absolutize(config: &mut Kubeconfig, file: &Path) {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let fix = |value: &mut Option<String>| {
        if let Some(v) = value.as_mut()
            && !v.is_empty()
            && Path::new(v.as_str()).is_relative()
        {
            *v = dir.join(v.as_str()).to_string_lossy().into_owned();
        }
    };
    for cluster in config.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        fix(&mut cluster.certificate_authority);
    }
    for user in config.auth_infos.iter_mut().filter_map(|u| u.auth_info.as_mut()) {
        fix(&mut user.client_certificate);
        fix(&mut user.client_key);
        fix(&mut user.token_file);
        // A bare command name is looked up on PATH, as in client-go; only paths are resolved.
        if let Some(exec) = user.exec.as_mut()
            && exec.command.as_deref().is_some_and(|c| c.contains(std::path::MAIN_SEPARATOR))
        {
            fix(&mut exec.command);
        }
    }
}
