//! Streams between the host and a `.vcsnap` file: the engine's own key-value snapshot read
//! from the running syncer container over exec, and a verified file written into a new
//! cluster's restore init container before its API server starts. This module talks to the
//! cluster; the file format itself is [`super::format`].

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::io::SyncIoBridge;

use super::format::{self, FormatError, Metadata, SnapshotWriter, Trailer};

/// The container the engine runs in, in the control-plane pod.
pub const SYNCER_CONTAINER: &str = "syncer";
pub use crate::engine::restore::RESTORE_CONTAINER;
/// Inside the restore container (working directory `/data`): the engine-format archive being
/// received, and the marker that the restore is done (the init container exits on it, and
/// does nothing on later starts of the pod).
pub const RESTORE_ARCHIVE: &str = "vc-restore.tar.gz";
pub const RESTORE_DONE: &str = ".vc-restored";
/// Bytes per exec while sending a restore: each chunk is one `head -c N`, so the length is
/// carried by the command and never depends on closing stdin (v4.channel.k8s.io cannot).
const RESTORE_CHUNK: usize = 4 * 1024 * 1024;
/// kube's exec pipes default to 1 KiB, which makes one WebSocket message per KiB; the
/// kubelet sends 32 KiB frames, so this keeps them whole.
const EXEC_BUFFER: usize = 64 * 1024;
/// How much of the engine's log to keep for an error message.
const LOG_TAIL: usize = 4096;

/// Why a stream to or from the host failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{what}: {source}")]
    Exec { what: String, source: kube::Error },
    #[error("{0}")]
    Engine(String),
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The payload that arrived is not the one expected (a file or URL that changed since it
    /// was verified, or a clone whose two sides disagree).
    #[error(
        "expected {} entries ({} bytes, SHA-256 {}), received {} entries ({} bytes, SHA-256 {})",
        expected.entries, expected.payload_bytes, expected.sha256,
        received.entries, received.payload_bytes, received.sha256
    )]
    Mismatch { expected: Trailer, received: Trailer },
    /// The archive staged in the restore container is not the one vc sent.
    #[error(
        "the restore container holds {staged} (expected {sent}); the stream into the pod was damaged"
    )]
    Staged { staged: String, sent: String },
}

/// What the payload of a restore must turn out to be before the engine may write it into the
/// new cluster's datastore. Every variant also requires the stream to match its own trailer.
pub enum Expected {
    /// A file or URL verified whole beforehand: the same entries, size and SHA-256 again.
    Verified(Trailer),
    /// The other side of a clone: what the source's snapshot wrote, sent only once the source's
    /// engine has reported success (an error otherwise).
    Source(tokio::sync::oneshot::Receiver<Result<Trailer, String>>),
    /// A stream read once (stdin): its own trailer, checked as it is read, is all there is.
    OwnTrailer,
}

/// Storage options telling the engine's `container` store to use `path`.
fn storage_options(path: &str) -> String {
    let json = serde_json::json!({"type": "container", "container": {"path": path}});
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

/// The command that makes the engine write its key-value snapshot (one datastore revision,
/// gzip tar, one entry per key) to stdout; its log goes to stderr.
pub fn engine_snapshot_command() -> Vec<String> {
    vec![
        "env".into(),
        format!("VCLUSTER_STORAGE_OPTIONS={}", storage_options("/dev/stdout")),
        "/vcluster".into(),
        "snapshot".into(),
    ]
}

/// The command that makes the engine restore the received archive into a new datastore.
pub fn engine_restore_command() -> Vec<String> {
    vec![
        "env".into(),
        format!(
            "VCLUSTER_STORAGE_OPTIONS={}",
            storage_options(&format!("/data/{RESTORE_ARCHIVE}"))
        ),
        "/vcluster".into(),
        "restore".into(),
        "--new-vcluster".into(),
    ]
}

/// The restore init container's own command: wait until vc has written the datastore.
pub fn restore_wait_script() -> String {
    format!("until [ -e {RESTORE_DONE} ]; do sleep 1; done")
}

/// Reads the engine's snapshot from `pod`'s syncer container and writes it as a `.vcsnap`
/// to `out`, adding the bytes read from the host to `counter`. Memory is one entry.
pub async fn snapshot_from_pod<W: Write + Send + 'static>(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    metadata: Metadata,
    out: W,
    counter: Arc<AtomicU64>,
) -> Result<(W, Trailer), StreamError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = AttachParams::default()
        .container(SYNCER_CONTAINER)
        .stdin(false)
        .stderr(true)
        .max_stdout_buf_size(EXEC_BUFFER);
    let mut attached = pods.exec(pod, engine_snapshot_command(), &params).await.map_err(|e| {
        StreamError::Exec { what: format!("exec into pod {namespace}/{pod}"), source: e }
    })?;
    let stdout =
        attached.stdout().ok_or_else(|| StreamError::Engine("exec gave no stdout".into()))?;
    let log = collect_log(&mut attached);
    let status = attached.take_status();
    let reader = SyncIoBridge::new(Counting { inner: stdout, counter });
    let convert = tokio::task::spawn_blocking(move || engine_to_vcsnap(reader, &metadata, out));
    let converted = convert.await.map_err(|e| StreamError::Engine(e.to_string()))?;
    let log = log.await.unwrap_or_default();
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    let _ = attached.join().await;
    check_status(status, &log, "the engine's snapshot")?;
    converted
}

/// Converts the engine's gzip key-value tar into our format.
fn engine_to_vcsnap<R: Read, W: Write>(
    engine: R,
    metadata: &Metadata,
    out: W,
) -> Result<(W, Trailer), StreamError> {
    let mut writer = SnapshotWriter::new(out, metadata)?;
    let gz = flate2::read::GzDecoder::new(engine);
    let mut archive = tar::Archive::new(gz);
    let mut value = Vec::new();
    for entry in archive.entries().map_err(engine_stream)? {
        let mut entry = entry.map_err(engine_stream)?;
        let key = entry.path_bytes().into_owned();
        value.clear();
        entry.read_to_end(&mut value).map_err(engine_stream)?;
        writer.add(&key, &value)?;
    }
    Ok(writer.finish()?)
}

fn engine_stream(e: io::Error) -> StreamError {
    StreamError::Engine(format!("the engine's snapshot stream broke off: {e}"))
}

/// Converts a `.vcsnap` into the engine's key-value archive (gzip tar, name = key in a PAX
/// path record, content = value), as the engine's restore reads it. The caller has verified
/// the file already; the checksum is verified again on the way.
pub fn vcsnap_to_engine<R: Read, W: Write>(
    input: R,
    out: W,
) -> Result<(Metadata, Trailer), StreamError> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(3));
    let mut tar = tar::Builder::new(gz);
    let mut failure: Option<io::Error> = None;
    let result = format::read_snapshot(
        input,
        |_| Ok(()),
        |key, value| {
            let written = append_engine_entry(&mut tar, key, value);
            written.map_err(|e| {
                let message = e.to_string();
                failure = Some(e);
                FormatError::Corrupt(message)
            })
        },
    );
    if let Some(e) = failure {
        return Err(StreamError::Io(e));
    }
    let (metadata, trailer) = result?;
    tar.into_inner()?.finish()?;
    Ok((metadata, trailer))
}

fn append_engine_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    tar.append_pax_extensions([("path", key)])?;
    let mut header = tar::Header::new_ustar();
    // The PAX record carries the key; the plain name is a placeholder readers ignore.
    header.as_old_mut().name[..3].copy_from_slice(b"key");
    header.set_size(value.len() as u64);
    header.set_mode(0o666);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, value)
}

/// Stages a snapshot in the restore init container of `pod`, then, once it is known whole and
/// as `expected`, runs the engine's restore there and marks it done. `source` is read once, as
/// it streams. Nothing reaches the datastore before these checks pass, in this order: the
/// stream matches its own trailer (count, size, SHA-256); it is what `expected` says; the
/// archive staged in the pod has the size and SHA-256 of the bytes vc sent.
pub async fn restore_into_pod<R: Read + Send + 'static>(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    source: R,
    expected: Expected,
    counter: Arc<AtomicU64>,
) -> Result<Trailer, StreamError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    // One chunk queued while one is sent: the converter blocks (and so stops reading the
    // source) when the pod is behind.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let convert = tokio::task::spawn_blocking(move || {
        let sink = ChunkSender::new(tx);
        let mut sink = io::BufWriter::with_capacity(64 * 1024, sink);
        let result = vcsnap_to_engine(source, &mut sink);
        let flushed = sink.into_inner().map_err(|e| e.into_error()).and_then(ChunkSender::finish);
        match (result, flushed) {
            (Ok(r), Ok(sent)) => Ok((r, sent)),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(StreamError::Io(e)),
        }
    });
    run_in(
        &pods,
        pod,
        RESTORE_CONTAINER,
        vec!["rm".into(), "-f".into(), RESTORE_ARCHIVE.into()],
        None,
    )
    .await?;
    while let Some(chunk) = rx.recv().await {
        let len = chunk.len();
        let script = format!("head -c {len} | tee -a {RESTORE_ARCHIVE} | wc -c");
        let out = run_in(
            &pods,
            pod,
            RESTORE_CONTAINER,
            vec!["sh".into(), "-c".into(), script],
            Some(chunk),
        )
        .await?;
        if out.trim() != len.to_string() {
            return Err(StreamError::Engine(format!(
                "the restore container received {} of {len} bytes",
                out.trim()
            )));
        }
        counter.fetch_add(len as u64, Ordering::Relaxed);
    }
    let ((_, trailer), sent) = convert.await.map_err(|e| StreamError::Engine(e.to_string()))??;
    // Every byte is in the pod and the stream matched its own trailer; the engine may write
    // the datastore only once it is also what was expected, and the staged file is intact.
    let expected = match expected {
        Expected::Verified(t) => Some(t),
        Expected::Source(source) => match source.await {
            Ok(Ok(t)) => Some(t),
            Ok(Err(e)) => return Err(StreamError::Engine(e)),
            Err(_) => {
                return Err(StreamError::Engine("the clone's source stopped sending".into()));
            }
        },
        Expected::OwnTrailer => None,
    };
    if let Some(expected) = expected
        && expected != trailer
    {
        return Err(StreamError::Mismatch { expected, received: trailer });
    }
    let check = format!("wc -c < {RESTORE_ARCHIVE} && sha256sum {RESTORE_ARCHIVE}");
    let staged =
        run_in(&pods, pod, RESTORE_CONTAINER, vec!["sh".into(), "-c".into(), check], None).await?;
    let staged = parse_staged(&staged);
    if staged != sent {
        return Err(StreamError::Staged { staged: staged.to_string(), sent: sent.to_string() });
    }
    run_in(&pods, pod, RESTORE_CONTAINER, engine_restore_command(), None).await?;
    let finish = format!("rm -f {RESTORE_ARCHIVE} && touch {RESTORE_DONE}");
    run_in(&pods, pod, RESTORE_CONTAINER, vec!["sh".into(), "-c".into(), finish], None).await?;
    Ok(trailer)
}

/// Runs one command in a container, feeding `stdin` if given; returns its stdout, or the
/// failure with its stderr.
async fn run_in(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    command: Vec<String>,
    stdin: Option<Vec<u8>>,
) -> Result<String, StreamError> {
    let params = AttachParams::default()
        .container(container)
        .stdin(stdin.is_some())
        .stderr(true)
        .max_stdin_buf_size(EXEC_BUFFER)
        .max_stdout_buf_size(EXEC_BUFFER);
    let what = command.iter().take(4).cloned().collect::<Vec<_>>().join(" ");
    let mut attached = pods.exec(pod, command, &params).await.map_err(|e| StreamError::Exec {
        what: format!("exec into {container} of pod {pod}"),
        source: e,
    })?;
    let mut stdout =
        attached.stdout().ok_or_else(|| StreamError::Engine("exec gave no stdout".into()))?;
    let log = collect_log(&mut attached);
    let status = attached.take_status();
    if let (Some(data), Some(mut writer)) = (stdin, attached.stdin()) {
        writer.write_all(&data).await?;
        writer.flush().await?;
        // The command reads exactly its length, so it never waits for an end of stdin (which
        // v4.channel.k8s.io cannot send); dropping the writer just stops sending.
        drop(writer);
    }
    let mut out = String::new();
    stdout.read_to_string(&mut out).await?;
    let log = log.await.unwrap_or_default();
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    // Let the stream's task end before the next exec starts.
    let _ = attached.join().await;
    check_status(status, &log, &what)?;
    Ok(out)
}

fn collect_log(attached: &mut AttachedProcess) -> tokio::task::JoinHandle<String> {
    let stderr = attached.stderr();
    tokio::spawn(async move {
        let Some(mut stderr) = stderr else { return String::new() };
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * LOG_TAIL {
                tail.drain(..tail.len() - LOG_TAIL);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    })
}

fn check_status(
    status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
    log: &str,
    what: &str,
) -> Result<(), StreamError> {
    match status {
        Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
        Some(s) => {
            let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            let message = s.message.unwrap_or_default();
            Err(StreamError::Engine(if last.is_empty() {
                format!("{what} failed: {message}")
            } else {
                format!("{what} failed: {message}; its last log line: {last}")
            }))
        }
        None => Err(StreamError::Engine(format!(
            "{what}: the exec stream ended without an exit status (the connection to the host broke)"
        ))),
    }
}

/// Counts bytes as they are read.
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.counter.fetch_add(read as u64, Ordering::Relaxed);
        poll
    }
}

/// Size and SHA-256 of an archive: what vc sent into the pod, or what the pod holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Staged {
    bytes: u64,
    sha256: String,
}

impl std::fmt::Display for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes with SHA-256 {}", self.bytes, self.sha256)
    }
}

/// Reads the output of `wc -c < FILE && sha256sum FILE` (a count, then `HASH  FILE`); what
/// cannot be read stays empty and so never matches.
fn parse_staged(out: &str) -> Staged {
    let mut lines = out.lines();
    let bytes = lines.next().and_then(|l| l.trim().parse().ok()).unwrap_or(u64::MAX);
    let sha256 = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    Staged { bytes, sha256 }
}

/// Hands fixed-size chunks to the async side (blocking when it is behind), hashing what it
/// sends.
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buffer: Vec<u8>,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl ChunkSender {
    fn new(tx: tokio::sync::mpsc::Sender<Vec<u8>>) -> Self {
        use sha2::Digest as _;
        Self {
            tx,
            buffer: Vec::with_capacity(RESTORE_CHUNK),
            hasher: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(RESTORE_CHUNK));
        self.tx.blocking_send(chunk).map_err(|_| io::Error::other("the restore stream stopped"))
    }

    fn finish(mut self) -> io::Result<Staged> {
        use sha2::Digest as _;
        self.send()?;
        Ok(Staged { bytes: self.bytes, sha256: format::hex(&self.hasher.finalize()) })
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let room = RESTORE_CHUNK - self.buffer.len();
        let n = room.min(data.len());
        self.hasher.update(&data[..n]);
        self.bytes += n as u64;
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == RESTORE_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_format_converts_to_the_engines_and_back_entry_for_entry() {
        let meta = Metadata {
            format: format::FORMAT_KIND.into(),
            format_version: format::FORMAT_VERSION,
            cluster: "a".into(),
            namespace: "vc-a".into(),
            spec: serde_json::Value::Null,
            kubernetes_version: "1.36".into(),
            engine_release: "0.36.1".into(),
            engine_image: String::new(),
            control_plane_image: String::new(),
            created_at: String::new(),
            datastore: "kine".into(),
            source: "engine-key-value".into(),
        };
        let entries = [
            (b"/registry/configmaps/default/x".to_vec(), b"\x00\x01".to_vec()),
            (format!("/registry/pods/ns/{}", "p".repeat(180)).into_bytes(), vec![9; 100_000]),
        ];
        let mut writer = SnapshotWriter::new(Vec::new(), &meta).unwrap();
        for (k, v) in &entries {
            writer.add(k, v).unwrap();
        }
        let (file, trailer) = writer.finish().unwrap();
        let mut engine = Vec::new();
        let (_, checked) = vcsnap_to_engine(file.as_slice(), &mut engine).unwrap();
        assert_eq!(checked, trailer);
        let (again, again_trailer) =
            engine_to_vcsnap(engine.as_slice(), &meta, Vec::new()).unwrap();
        assert_eq!(again_trailer, trailer, "same entries, same order, same checksum");
        assert_eq!(format::verify(again.as_slice()).unwrap().1, trailer);
    }

    #[test]
    fn the_staged_archive_is_read_from_wc_and_sha256sum() {
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let out = format!("4\n{sha}  vc-restore.tar.gz\n");
        assert_eq!(parse_staged(&out), Staged { bytes: 4, sha256: sha.into() });
        // busybox pads the count; upper-case hex is the same hash.
        let padded = format!("       4\n{}  vc-restore.tar.gz\n", sha.to_uppercase());
        assert_eq!(parse_staged(&padded), parse_staged(&out));
        // Nothing readable never matches what was sent, not even an empty archive.
        let empty = Staged { bytes: 0, sha256: String::new() };
        assert_ne!(parse_staged(""), empty);
        assert_ne!(parse_staged("sha256sum: not found\n"), empty);
    }

    #[test]
    fn the_sender_hashes_exactly_the_bytes_it_hands_on() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut sender = ChunkSender::new(tx);
        let data: Vec<u8> = (0..RESTORE_CHUNK + 10).map(|i| i as u8).collect();
        sender.write_all(&data).unwrap();
        let staged = sender.finish().unwrap();
        let mut got = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            assert!(chunk.len() <= RESTORE_CHUNK);
            got.extend(chunk);
        }
        assert_eq!(got, data);
        use sha2::Digest as _;
        let sha = format::hex(&sha2::Sha256::digest(&data));
        assert_eq!(staged, Staged { bytes: data.len() as u64, sha256: sha });
    }

    #[test]
    fn a_broken_engine_stream_is_an_engine_error() {
        let meta_err =
            engine_to_vcsnap(&b"\x1f\x8b\x08garbage"[..], &sample(), Vec::new()).unwrap_err();
        assert!(matches!(meta_err, StreamError::Engine(m) if m.contains("broke off")));
    }

    fn sample() -> Metadata {
        Metadata {
            format: format::FORMAT_KIND.into(),
            format_version: format::FORMAT_VERSION,
            cluster: String::new(),
            namespace: String::new(),
            spec: serde_json::Value::Null,
            kubernetes_version: String::new(),
            engine_release: String::new(),
            engine_image: String::new(),
            control_plane_image: String::new(),
            created_at: String::new(),
            datastore: String::new(),
            source: String::new(),
        }
    }

    #[test]
    fn the_commands_name_the_engine_store_as_base64_json() {
        let cmd = engine_snapshot_command();
        let encoded = cmd[1].strip_prefix("VCLUSTER_STORAGE_OPTIONS=").unwrap();
        let json = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "container", "container": {"path": "/dev/stdout"}})
        );
        assert_eq!(&cmd[2..], ["/vcluster", "snapshot"]);
        assert_eq!(engine_restore_command()[3..], ["restore", "--new-vcluster"]);
    }
}
