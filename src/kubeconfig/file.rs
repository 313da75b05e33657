//! One kubeconfig file: parse it on its own, edit its stanzas, write it back atomically.
//! It never merges files and never takes locks; `Transaction` does both around it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use kube::config::{
    Kubeconfig, KubeconfigError as KubeParseError, NamedAuthInfo, NamedCluster, NamedContext,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::KubeconfigError;

/// Mode of a kubeconfig vc creates: it holds credentials.
const NEW_FILE_MODE: u32 = 0o600;
/// Mode of a directory vc creates for a kubeconfig, as kubectl creates it.
const NEW_DIR_MODE: u32 = 0o755;
/// Bound on symlink chains, as the kernel's own limit.
const MAX_SYMLINKS: usize = 40;

/// A stanza of a kubeconfig list, looked up by name.
pub(crate) trait Named {
    fn name(&self) -> &str;
}

impl Named for NamedCluster {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for NamedAuthInfo {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for NamedContext {
    fn name(&self) -> &str {
        &self.name
    }
}

/// Replaces the stanza with the same name in place, or appends it.
pub(crate) fn upsert_named<T: Named>(list: &mut Vec<T>, entry: T) {
    match list.iter_mut().find(|e| e.name() == entry.name()) {
        Some(slot) => *slot = entry,
        None => list.push(entry),
    }
}

/// Removes every stanza with that name; true when one was there.
pub(crate) fn remove_named<T: Named>(list: &mut Vec<T>, name: &str) -> bool {
    let before = list.len();
    list.retain(|e| e.name() != name);
    list.len() != before
}

/// A kubeconfig file as it is on disk, parsed on its own (relative paths left as written).
#[derive(Clone, Debug)]
pub struct KubeconfigFile {
    path: PathBuf,
    exists: bool,
    config: Kubeconfig,
    /// The file's YAML tree, so a rewrite keeps every stanza vc did not change exactly as it
    /// was (key spellings, fields kube's types would normalise). `None` for a missing, empty
    /// or multi-document file, which is then written from `config` alone.
    original: Option<Map<String, Value>>,
    /// `config` as read, in the form used to tell whether an edit changed anything.
    initial: Value,
}

impl KubeconfigFile {
    /// Reads and parses `path`; a missing file reads as an empty one.
    pub(crate) fn read(path: &Path) -> Result<Self, KubeconfigError> {
        match fs::read(path) {
            Ok(bytes) => {
                let text = decode(path, bytes)?;
                Self::parse(path, &text)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Self::missing(path)),
            Err(source) => Err(KubeconfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    fn missing(path: &Path) -> Self {
        let config = Kubeconfig::default();
        let initial = serde_json::to_value(&config).unwrap_or(Value::Null);
        Self { path: path.to_path_buf(), exists: false, config, original: None, initial }
    }

    /// Parses `text` as the contents of `path`.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, KubeconfigError> {
        let config = Kubeconfig::from_yaml(text).map_err(|e| malformed(path, &e))?;
        let original = match serde_saphyr::from_multiple::<Value>(text) {
            Ok(docs) => match <[Value; 1]>::try_from(docs) {
                Ok([Value::Object(map)]) => Some(map),
                _ => None,
            },
            Err(_) => None,
        };
        let initial = to_value(path, &config)?;
        Ok(Self { path: path.to_path_buf(), exists: true, config, original, initial })
    }

    /// The path as listed (not resolved through symlinks).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file existed when it was read.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The file's own contents, with relative paths as written.
    pub fn config(&self) -> &Kubeconfig {
        &self.config
    }

    pub(crate) fn config_mut(&mut self) -> &mut Kubeconfig {
        &mut self.config
    }

    /// The YAML tree to write: the original tree with only the changed stanzas replaced.
    fn render_tree(&self) -> Result<Value, KubeconfigError> {
        let Some(original) = &self.original else {
            return to_value(&self.path, &self.expected());
        };
        let mut out = original.clone();
        merge_section(&self.path, &mut out, "clusters", &self.config.clusters)?;
        merge_section(&self.path, &mut out, "users", &self.config.auth_infos)?;
        merge_section(&self.path, &mut out, "contexts", &self.config.contexts)?;
        let before =
            original.get("current-context").and_then(Value::as_str).filter(|s| !s.is_empty());
        let after = self.config.current_context.as_deref().filter(|s| !s.is_empty());
        if before != after {
            match after {
                Some(name) => out.insert("current-context".to_owned(), Value::from(name)),
                None => out.remove("current-context"),
            };
        }
        Ok(Value::Object(out))
    }

    /// What the written file must read back as: a file written from scratch also gets
    /// `apiVersion: v1` and `kind: Config`.
    fn expected(&self) -> Kubeconfig {
        let mut config = self.config.clone();
        if self.original.is_none() {
            config.api_version.get_or_insert_with(|| "v1".to_owned());
            config.kind.get_or_insert_with(|| "Config".to_owned());
        }
        config
    }

    /// Whether the edits so far changed the file's meaning.
    pub(crate) fn is_changed(&self) -> Result<bool, KubeconfigError> {
        Ok(to_value(&self.path, &self.config)? != self.initial)
    }

    /// The YAML text to write, checked to parse back to the same kubeconfig.
    pub(crate) fn render(&self) -> Result<String, KubeconfigError> {
        let text = render_yaml(&self.path, &self.render_tree()?)?;
        let reparsed = Kubeconfig::from_yaml(&text).map_err(|e| KubeconfigError::Serialize {
            path: self.path.clone(),
            message: format!("the rendered YAML does not parse back: {e}"),
        })?;
        if to_value(&self.path, &reparsed)? != to_value(&self.path, &self.expected())? {
            return Err(KubeconfigError::Serialize {
                path: self.path.clone(),
                message: "the rendered YAML does not read back as the same kubeconfig".to_owned(),
            });
        }
        Ok(text)
    }
}

/// Serialises a kubeconfig (or any part of one) to YAML the way vc writes files.
pub(crate) fn render_yaml<T: Serialize>(path: &Path, value: &T) -> Result<String, KubeconfigError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    // Long base64 data stays one plain scalar, as kubectl writes it.
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options).map_err(|e| KubeconfigError::Serialize {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn to_value<T: Serialize>(path: &Path, value: &T) -> Result<Value, KubeconfigError> {
    serde_json::to_value(value).map_err(|e| KubeconfigError::Serialize {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Rebuilds one named list: stanzas whose meaning did not change keep their original tree.
fn merge_section<T: Named + Serialize + DeserializeOwned>(
    path: &Path,
    out: &mut Map<String, Value>,
    key: &str,
    entries: &[T],
) -> Result<(), KubeconfigError> {
    let original: Vec<Value> = match out.get(key) {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    if entries.is_empty() && original.is_empty() {
        return Ok(());
    }
    let mut used = vec![false; original.len()];
    let mut merged = Vec::with_capacity(entries.len());
    for entry in entries {
        let fresh = to_value(path, entry)?;
        let kept = original.iter().enumerate().find(|(i, raw)| {
            !used[*i]
                && raw.get("name").and_then(Value::as_str) == Some(entry.name())
                && serde_json::from_value::<T>((*raw).clone())
                    .ok()
                    .and_then(|typed| serde_json::to_value(typed).ok())
                    .is_some_and(|normalised| normalised == fresh)
        });
        match kept {
            Some((i, raw)) => {
                used[i] = true;
                merged.push(raw.clone());
            }
            None => merged.push(fresh),
        }
    }
    out.insert(key.to_owned(), Value::Array(merged));
    Ok(())
}

fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, KubeconfigError> {
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    String::from_utf8(bytes).map_err(|_| KubeconfigError::Malformed {
        path: path.to_path_buf(),
        line: None,
        column: None,
        message: "the file is not UTF-8 text".to_owned(),
    })
}

fn malformed(path: &Path, error: &KubeParseError) -> KubeconfigError {
    match error {
        KubeParseError::Parse(e) => {
            let location = e.location();
            let mut options = serde_saphyr::RenderOptions::default();
            options.snippets = serde_saphyr::SnippetMode::Off;
            KubeconfigError::Malformed {
                path: path.to_path_buf(),
                line: location.map(|l| l.line()),
                column: location.map(|l| l.column()),
                message: e.render_with_options(options),
            }
        }
        other => KubeconfigError::Malformed {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: other.to_string(),
        },
    }
}

/// Whether an I/O error means "you may not write here".
pub(crate) fn is_read_only_error(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem)
}

/// Whether the file or directory has no write bit at all. Checked by mode, not by trying,
/// because a user who made it read-only meant it even when running as root.
pub(crate) fn looks_read_only(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o222 == 0)
}

/// Follows a chain of symlinks at the last path component to the file that holds the data.
fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::other(format!("too many levels of symbolic links at {}", path.display())))
}

/// Creates the directory that will hold `path` if it is missing (as `~/.kube` for a first write).
pub(crate) fn ensure_parent_dir(path: &Path) -> Result<(), KubeconfigError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(NEW_DIR_MODE).create(dir).map_err(|source| {
        if is_read_only_error(&source) {
            KubeconfigError::ReadOnly { path: path.to_path_buf(), source: Some(source) }
        } else {
            KubeconfigError::Write { path: path.to_path_buf(), source }
        }
    })
}

/// Writes `bytes` to a temp file beside the target, fsyncs it and renames it over the target.
/// A symlink is kept: its target is replaced. The target's mode is kept (0600 for a new file).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KubeconfigError> {
    let write_err = |source: io::Error| {
        if is_read_only_error(&source) {
            KubeconfigError::ReadOnly { path: path.to_path_buf(), source: Some(source) }
        } else {
            KubeconfigError::Write { path: path.to_path_buf(), source }
        }
    };
    let target = resolve_symlinks(path).map_err(write_err)?;
    let mut owner = None;
    let mode = match fs::metadata(&target) {
        Ok(meta) => {
            owner = Some((meta.uid(), meta.gid()));
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o222 == 0 {
                return Err(KubeconfigError::ReadOnly { path: path.to_path_buf(), source: None });
            }
            // Opening for write (without truncating) asks the kernel the same question kubectl's
            // write would, for ACLs and read-only mounts the mode does not show.
            OpenOptions::new().write(true).open(&target).map_err(write_err)?;
            mode
        }
        Err(e) if e.kind() == ErrorKind::NotFound => NEW_FILE_MODE,
        Err(e) => return Err(write_err(e)),
    };
    ensure_parent_dir(&target)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if looks_read_only(&dir) {
        return Err(KubeconfigError::ReadOnly { path: path.to_path_buf(), source: None });
    }
    let file_name =
        target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(write_err)?;
    tmp.write_all(bytes).map_err(write_err)?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode)).map_err(write_err)?;
    if let Some((uid, gid)) = owner {
        // Keeps the owner when root (sudo) rewrites a user's file; for anyone else the new
        // file is already theirs and the call changes nothing or is refused harmlessly.
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid));
    }
    tmp.as_file().sync_all().map_err(write_err)?;
    if let Err(e) = tmp.persist(&target) {
        // A kubeconfig bind-mounted into a container cannot be renamed over (EBUSY), nor
        // replaced across file systems (EXDEV). There, as kubectl does, write it in place:
        // the content is already rendered and checked, and the lock is still held.
        let in_place = matches!(e.error.raw_os_error(), Some(libc::EBUSY | libc::EXDEV));
        if !in_place {
            return Err(write_err(e.error));
        }
        let mut file =
            OpenOptions::new().write(true).truncate(true).open(&target).map_err(write_err)?;
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(write_err)?;
        return Ok(());
    }
    // The rename is durable only once the directory entry is; a failure here loses nothing.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
