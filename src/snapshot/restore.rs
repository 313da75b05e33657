//! Restoring a snapshot into a new cluster: where the snapshot comes from (a file, or a running
//! cluster for `vc clone`), verifying a file whole before anything is created, the Kubernetes
//! version rule, and feeding the new pod's restore init container.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use super::format::{self, FormatError, Metadata, Trailer};
use super::stream::{self, StreamError};

/// Where a restore reads its snapshot.
#[derive(Clone, Debug)]
pub enum Source {
    /// A verified `.vcsnap` file.
    File(PathBuf),
    /// A verified `.vcsnap` at an http(s) URL, streamed again for the restore.
    Url(String),
    /// The running syncer of another cluster, streamed through a pipe (`vc clone`).
    Cluster { namespace: String, pod: String },
    /// A `.vcsnap` on stdin (`vc restore -`), read once: `head` holds the bytes already read
    /// to find its metadata, and the rest follows on stdin. It is verified as it streams.
    Stdin { head: Vec<u8> },
}

/// A restore about to happen: its source and what the snapshot says about itself.
#[derive(Clone, Debug)]
pub struct Plan {
    pub source: Source,
    pub metadata: Metadata,
    /// What the verification pass found; the restore pass must find the same.
    pub verified: Option<Trailer>,
}

/// Why a restore cannot start or failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{path}: {source}")]
    File { path: String, source: FormatError },
    #[error("cannot read {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error(
        "{0} is not a regular file: restore reads a file twice (to verify it whole, then to restore it); to stream a snapshot in once, pipe it to: vc restore -"
    )]
    NotAFile(String),
    #[error(
        "vc restore - reads a snapshot from stdin, which is a terminal here; pipe one in (vc snapshot SRC --to - | vc restore - --name NEW) or name a file"
    )]
    StdinIsTerminal,
    #[error("stdin: {0}")]
    Stdin(FormatError),
    #[error("the clone's source and the new cluster disagree ({0}); nothing was restored")]
    CloneMismatch(String),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("fetching {url}: {message}")]
    Http { url: String, message: String },
    #[error(
        "{0} changed between verifying and restoring it (its SHA-256 differs); nothing was restored"
    )]
    Changed(String),
    #[error(
        "the restore container of pod {namespace}/{pod} did not start within {waited}s (see: vc describe)"
    )]
    NotStarted { namespace: String, pod: String, waited: u64 },
    #[error("reading pod {namespace}/{pod}: {source}")]
    Host { namespace: String, pod: String, source: kube::Error },
}

/// Whether a source names an http(s) URL rather than a file.
pub fn is_url(source: &str) -> bool {
    source.starts_with("https://") || source.starts_with("http://")
}

/// Opens an http(s) URL as a blocking reader of its body, streamed (never held whole).
pub async fn open_url(url: &str) -> Result<impl std::io::Read + Send + 'static, RestoreError> {
    use futures::TryStreamExt;
    let http = |message: String| RestoreError::Http { url: url.to_string(), message };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| http(e.to_string()))?;
    let response = client.get(url).send().await.map_err(|e| http(one_line(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(http(format!("the server answered {status}")));
    }
    // A body that stops early is a truncated snapshot, whatever the transport's words for it.
    let body = response
        .bytes_stream()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, one_line(&e)));
    let reader = tokio_util::io::StreamReader::new(body);
    Ok(std::io::BufReader::with_capacity(256 * 1024, tokio_util::io::SyncIoBridge::new(reader)))
}

fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Streams the whole snapshot at `url` through the verifier; nothing is stored.
pub async fn verify_url(url: &str) -> Result<(Metadata, Trailer), RestoreError> {
    let reader = open_url(url).await?;
    let shown = url.to_string();
    let verified = tokio::task::spawn_blocking(move || format::verify(reader))
        .await
        .map_err(|e| RestoreError::Http { url: shown.clone(), message: e.to_string() })?;
    verified.map_err(|e| RestoreError::File { path: url.to_string(), source: e })
}

/// Whether a source names stdin.
pub fn is_stdin(source: &str) -> bool {
    source == "-"
}

/// Reads a snapshot's metadata from stdin (refusing a terminal, a foreign stream or another
/// format version) and returns it with the bytes read so far, which [`Source::Stdin`] replays
/// before the rest of stdin. Nothing on the host is touched; the payload is verified later,
/// as it streams into the new cluster, before the engine may write any of it.
pub async fn read_stdin_head() -> Result<(Metadata, Vec<u8>), RestoreError> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Err(RestoreError::StdinIsTerminal);
    }
    let read = tokio::task::spawn_blocking(|| {
        let mut recorder = Recorder { inner: std::io::stdin(), seen: Vec::new() };
        let metadata = format::read_metadata(&mut recorder);
        metadata.map(|m| (m, recorder.seen))
    });
    read.await
        .map_err(|e| RestoreError::Stdin(FormatError::Io(std::io::Error::other(e))))?
        .map_err(RestoreError::Stdin)
}

/// Keeps a copy of what is read through it (only the head of a stream is read this way).
struct Recorder<R> {
    inner: R,
    seen: Vec<u8>,
}

impl<R: std::io::Read> std::io::Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Reads and verifies the whole file (format version, every entry, count and checksum) and
/// returns its metadata. Nothing on the host is touched.
pub async fn verify_file(path: &Path) -> Result<(Metadata, Trailer), RestoreError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|e| RestoreError::Open { path: shown.clone(), source: e })?;
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(RestoreError::NotAFile(shown));
    }
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let verified =
        tokio::task::spawn_blocking(move || format::verify(reader)).await.map_err(|e| {
            RestoreError::Open { path: shown.clone(), source: std::io::Error::other(e) }
        })?;
    verified.map_err(|e| RestoreError::File { path: shown, source: e })
}

/// The Kubernetes minor (`1.35`) of a version such as `v1.35.0`, `1.35` or `1.35.2`.
pub fn minor_of(version: &str) -> Option<(u32, u32)> {
    let bare = version.trim().trim_start_matches('v');
    let mut parts = bare.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether a snapshot of Kubernetes `from` may be restored onto `to`: the same minor, or the
/// next one. An API server reads objects stored by its own minor and by the one before it
/// (that is how a cluster is upgraded); an older one may not understand what a newer one
/// stored, and Kubernetes does not support skipping minors, since objects are migrated to a
/// new storage version one minor at a time.
pub fn check_version_change(from: &str, to: &str) -> Result<(), String> {
    let (Some(source), Some(target)) = (minor_of(from), minor_of(to)) else {
        // A snapshot of a cluster vc did not make may not name its version; the engine's own
        // checks then decide.
        return Ok(());
    };
    let show = |(a, b): (u32, u32)| format!("{a}.{b}");
    if target < source {
        return Err(format!(
            "the snapshot is of Kubernetes {}; restoring it onto the older {} is refused: an older API server cannot be trusted to read what a newer one stored (use --kubernetes-version {} or newer)",
            show(source),
            show(target),
            show(source)
        ));
    }
    if target.0 != source.0 || target.1 > source.1 + 1 {
        return Err(format!(
            "the snapshot is of Kubernetes {}; restoring it onto {} skips minor versions, which Kubernetes does not support (objects move to new storage versions one minor at a time): restore onto {}.{} first, snapshot that, and go on from there",
            show(source),
            show(target),
            source.0,
            source.1 + 1
        ));
    }
    Ok(())
}

/// Waits until the restore init container of `pod` runs.
pub async fn wait_for_restore_container(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    timeout: Duration,
) -> Result<(), RestoreError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let started = tokio::time::Instant::now();
    loop {
        let current = pods.get_opt(pod).await.map_err(|e| RestoreError::Host {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            source: e,
        })?;
        let running = current
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.init_container_statuses.as_ref())
            .is_some_and(|statuses| {
                statuses.iter().any(|s| {
                    s.name == stream::RESTORE_CONTAINER
                        && s.state.as_ref().is_some_and(|st| st.running.is_some())
                })
            });
        if running {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(RestoreError::NotStarted {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                waited: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Streams the plan's snapshot into the restore container of `pod` and runs the engine's
/// restore there, only once the payload is known whole and as expected: a file or URL must
/// carry again what verifying it found; a clone's stream must match what the source's engine
/// reported as a successful snapshot; stdin must match its own trailer.
pub async fn restore(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    plan: &Plan,
    counter: Arc<AtomicU64>,
) -> Result<Trailer, RestoreError> {
    let verified = || match &plan.verified {
        Some(t) => stream::Expected::Verified(t.clone()),
        None => stream::Expected::OwnTrailer,
    };
    let changed = |what: String| {
        move |e: StreamError| match e {
            StreamError::Mismatch { .. } => RestoreError::Changed(what),
            other => RestoreError::Stream(other),
        }
    };
    match &plan.source {
        Source::File(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| RestoreError::Open { path: path.display().to_string(), source: e })?;
            let reader = std::io::BufReader::with_capacity(256 * 1024, file);
            stream::restore_into_pod(client, namespace, pod, reader, verified(), counter)
                .await
                .map_err(changed(path.display().to_string()))
        }
        Source::Url(url) => {
            let reader = open_url(url).await?;
            stream::restore_into_pod(client, namespace, pod, reader, verified(), counter)
                .await
                .map_err(changed(url.clone()))
        }
        Source::Stdin { head } => {
            let reader = std::io::Read::chain(std::io::Cursor::new(head.clone()), std::io::stdin());
            let reader = std::io::BufReader::with_capacity(256 * 1024, reader);
            stream::restore_into_pod(client, namespace, pod, reader, verified(), counter)
                .await
                .map_err(|e| match e {
                    StreamError::Format(f) => RestoreError::Stdin(f),
                    other => RestoreError::Stream(other),
                })
        }
        Source::Cluster { namespace: src_ns, pod: src_pod } => {
            let (reader, writer) = std::io::pipe().map_err(StreamError::Io)?;
            let (source_done, source_result) = tokio::sync::oneshot::channel();
            let read_counter = Arc::new(AtomicU64::new(0));
            let snapshot = stream::snapshot_from_pod(
                client,
                src_ns,
                src_pod,
                plan.metadata.clone(),
                writer,
                read_counter,
            );
            let restore = stream::restore_into_pod(
                client,
                namespace,
                pod,
                reader,
                stream::Expected::Source(source_result),
                counter,
            );
            // The snapshot side ends first (closing the pipe) and only then tells the restore
            // side what it sent, once the source's engine reported success; the restore side
            // lets the engine write nothing before that. A failure on either side ends both.
            let (snapshot, restored) = futures::join!(
                async {
                    let r = snapshot.await.map(|(w, t)| {
                        drop(w);
                        t
                    });
                    let _ = source_done.send(
                        r.as_ref()
                            .map(Clone::clone)
                            .map_err(|e| format!("the clone's source failed: {e}")),
                    );
                    r
                },
                restore
            );
            snapshot?;
            restored.map_err(|e| match e {
                e @ StreamError::Mismatch { .. } => RestoreError::CloneMismatch(e.to_string()),
                other => RestoreError::Stream(other),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_or_the_next_minor_is_allowed() {
        assert!(check_version_change("v1.35.0", "v1.35.0").is_ok());
        assert!(check_version_change("1.35", "v1.36.0").is_ok());
        assert!(check_version_change("", "v1.36.0").is_ok());
    }

    #[test]
    fn a_downgrade_is_refused_saying_why() {
        let err = check_version_change("v1.36.0", "v1.35.0").unwrap_err();
        assert!(err.contains("older 1.35 is refused"), "{err}");
        assert!(err.contains("--kubernetes-version 1.36"), "{err}");
    }

    #[test]
    fn skipping_a_minor_is_refused_naming_the_next_step() {
        let err = check_version_change("v1.33.4", "v1.35.0").unwrap_err();
        assert!(err.contains("skips minor versions"), "{err}");
        assert!(err.contains("restore onto 1.34 first"), "{err}");
    }

    #[test]
    fn minors_parse_from_tags_and_short_forms() {
        assert_eq!(minor_of("v1.33.4"), Some((1, 33)));
        assert_eq!(minor_of("1.36"), Some((1, 36)));
        assert_eq!(minor_of("latest"), None);
    }
}
