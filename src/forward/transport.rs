//! Port-forward streams to one pod port through the host API server, and the local listener
//! that gives every accepted connection its own stream. Opening a stream is retried with
//! backoff while the pod is away; a stream that breaks mid-way closes its local connection
//! (the bytes in flight are lost), and the next connection opens a new stream.
//! No state files, no signals, no printing: callers pass a [`Log`] when they want lines.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use super::ForwardError;
use super::state::Log;
use super::ws::{Event, FrameReader, FrameWriter, HEADROOM};

/// Largest payload we put in one frame towards the pod. The kubelet reads each message whole
/// (Go's x/net/websocket allows 32 MiB), so large frames mean fewer frames and writes per byte.
const MAX_FRAME_PAYLOAD: usize = 256 * 1024;
/// The first upload buffer; it doubles up to [`MAX_FRAME_PAYLOAD`] while reads fill it, so
/// short-lived connections stay cheap and bulk transfers get large frames.
const FIRST_FRAME_PAYLOAD: usize = 16 * 1024;
/// Read buffer for frames from the pod (the kubelet sends at most 32 KiB per frame; payloads
/// are streamed, so this does not bound a frame's size).
const READ_BUFFER: usize = 64 * 1024;
/// Bytes a connection keeps for replay while the pod has not answered yet.
const MAX_REPLAY: usize = 1024 * 1024;
/// After the local side stops sending, how long the pod may stay silent before we close.
/// The v4 protocol cannot carry a half-close, so this bounds streams of clients that closed.
const HALF_CLOSE_LINGER: Duration = Duration::from_secs(10);

/// A port of a pod, addressed through the host API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodTarget {
    pub namespace: String,
    pub pod: String,
    pub port: u16,
}

impl PodTarget {
    pub fn new(namespace: impl Into<String>, pod: impl Into<String>, port: u16) -> Self {
        Self { namespace: namespace.into(), pod: pod.into(), port }
    }
}

impl std::fmt::Display for PodTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} port {}", self.namespace, self.pod, self.port)
    }
}

/// How a [`Forward`] behaves.
#[derive(Clone, Debug)]
pub struct ForwardOptions {
    /// How long an accepted connection waits for a stream (across retries) before it is closed.
    pub connect_timeout: Duration,
    /// First retry delay; doubled on each failure up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Where connection events go (the forwarder's log file); none for in-process forwards.
    pub(crate) log: Log,
    /// Counts connections that carry requests, for the idle limit; none when not tracked.
    pub(crate) activity: Option<Arc<Activity>>,
}

/// Connections that carried bytes from a local client: how many are open and when one was
/// last seen. A connection closed before it sent anything (a liveness check such as
/// `vc list`'s) is not activity.
#[derive(Debug, Default)]
pub struct Activity {
    open: AtomicU64,
    /// Unix seconds of the last connection that opened or closed; 0 for none.
    last: AtomicU64,
}

impl Activity {
    /// Whether a connection is open now or one was seen after `since` (Unix seconds).
    pub fn seen_after(&self, since: u64) -> bool {
        self.open.load(Ordering::Relaxed) > 0 || self.last.load(Ordering::Relaxed) > since
    }

    fn touch(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last.store(now, Ordering::Relaxed);
    }
}

/// One open connection in [`Activity`]; closing it counts as activity too.
struct ActiveConnection(Arc<Activity>);

impl ActiveConnection {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.open.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Self(activity.clone())
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            log: Log::none(),
            activity: None,
        }
    }
}

/// A local listener on 127.0.0.1 forwarding to a pod port; it stops when dropped.
#[derive(Debug)]
pub struct Forward {
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Forward {
    /// Listens on `127.0.0.1:local_port` (0 picks a free port) and forwards every connection.
    ///
    /// # Errors
    /// [`ForwardError::PortInUse`] when the requested port is taken, [`ForwardError::Bind`]
    /// for any other listen failure.
    pub async fn start(
        client: Client,
        target: PodTarget,
        local_port: u16,
    ) -> Result<Forward, ForwardError> {
        let listener = super::state::bind_local(local_port)?;
        Self::from_listener(client, target, listener, ForwardOptions::default())
    }

    /// Forwards the connections of an already bound listener.
    ///
    /// # Errors
    /// [`ForwardError::Bind`] when the listener cannot be registered with the runtime.
    pub fn from_listener(
        client: Client,
        target: PodTarget,
        listener: std::net::TcpListener,
        options: ForwardOptions,
    ) -> Result<Forward, ForwardError> {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let bind_err = |source| ForwardError::Bind { port, source };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(listener).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let accept = tokio::spawn(accept_loop(listener, client, Arc::new(target), options));
        Ok(Forward { local_addr, accept })
    }

    pub fn local_port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection.
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    client: Client,
    target: Arc<PodTarget>,
    options: ForwardOptions,
) {
    let mut connections = JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((local, peer)) => {
                    next_id += 1;
                    let (client, target, options) = (client.clone(), target.clone(), options.clone());
                    connections.spawn(serve_connection(next_id, local, peer, client, target, options));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    options.log.line(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(
    id: u64,
    mut local: TcpStream,
    peer: SocketAddr,
    client: Client,
    target: Arc<PodTarget>,
    options: ForwardOptions,
) {
    let _ = local.set_nodelay(true);
    let started = Instant::now();
    match forward_connection(&client, &target, &mut local, &options).await {
        Ok(stats) if !stats.opened => {}
        Ok(stats) => {
            if let Some(error) = &stats.error {
                options
                    .log
                    .line(&format!("connection {id} from {peer}: the pod reported: {error}"));
            }
            options.log.line(&format!(
                "connection {id} from {peer} closed after {:.1}s: {} bytes up, {} bytes down{}",
                started.elapsed().as_secs_f64(),
                stats.up,
                stats.down,
                if stats.lingered { " (closed after the local side stopped sending)" } else { "" }
            ));
        }
        Err(e) => options.log.line(&format!("connection {id} from {peer}: {e}")),
    }
}

/// Bytes moved over one local connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct RelayStats {
    pub up: u64,
    pub down: u64,
    pub lingered: bool,
    /// Whether a stream was opened (not for a connection closed before sending anything).
    pub opened: bool,
    /// What the pod sent on the error channel after it had answered.
    pub error: Option<String>,
}

/// Forwards one local connection, opening streams until one carries it or time runs out.
///
/// No stream is opened until the local client has sent its first bytes (the target speaks
/// TLS, where the client speaks first): a connection closed before sending anything, such as
/// a liveness check, costs no upstream stream.
pub(crate) async fn forward_connection(
    client: &Client,
    target: &PodTarget,
    local: &mut TcpStream,
    options: &ForwardOptions,
) -> Result<RelayStats, ForwardError> {
    let mut replay = vec![0u8; FIRST_FRAME_PAYLOAD];
    let first = local
        .read(&mut replay)
        .await
        .map_err(|source| ForwardError::Relay { target: target.to_string(), source })?;
    if first == 0 {
        return Ok(RelayStats::default());
    }
    let _active = options.activity.as_ref().map(ActiveConnection::begin);
    replay.truncate(first);
    let deadline = tokio::time::Instant::now() + options.connect_timeout;
    let mut delay = options.initial_backoff;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let failure = match open_stream(client, target, deadline).await {
            Ok(io) => match relay(io, local, &mut replay).await {
                Ok(Ended::Done(mut stats)) => {
                    stats.up += first as u64;
                    return Ok(stats);
                }
                Ok(Ended::Refused { message, retry }) => {
                    let refused = ForwardError::Refused { target: target.to_string(), message };
                    if !retry {
                        return Err(refused);
                    }
                    refused
                }
                Err(source) => {
                    return Err(ForwardError::Relay { target: target.to_string(), source });
                }
            },
            Err(e) if is_permanent(&e) => return Err(e),
            Err(e @ ForwardError::StreamTimeout { .. }) => return Err(e),
            Err(e) => e,
        };
        if tokio::time::Instant::now() + delay > deadline {
            return Err(failure);
        }
        options.log.line(&format!("attempt {attempt}: {failure}; retrying in {delay:?}"));
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(options.max_backoff);
    }
}

/// Errors no retry can fix: the caller may not do this at all.
pub(crate) fn is_permanent(e: &ForwardError) -> bool {
    matches!(e, ForwardError::Stream { source: kube::Error::Api(s), .. } if s.code == 401 || s.code == 403)
}

/// Opens one port-forward WebSocket and hands back the raw upgraded connection; gives up
/// with [`ForwardError::StreamTimeout`] at `deadline`.
pub(crate) async fn open_stream(
    client: &Client,
    target: &PodTarget,
    deadline: tokio::time::Instant,
) -> Result<impl AsyncRead + AsyncWrite + Unpin + Send + 'static, ForwardError> {
    let stream_err = |source| ForwardError::Stream { target: target.to_string(), source };
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", target.namespace))
        .portforward(&target.pod, &[target.port])
        .map_err(|e| stream_err(kube::Error::BuildRequest(e)))?;
    let started = tokio::time::Instant::now();
    let connection = tokio::time::timeout_at(deadline, client.connect(request))
        .await
        .map_err(|_| ForwardError::StreamTimeout {
            target: target.to_string(),
            after: started.elapsed(),
        })?
        .map_err(stream_err)?;
    // No frame has been read yet, so the raw connection carries the stream from its start
    // (hyper keeps any bytes it read past the 101 response inside the upgraded connection).
    Ok(connection.into_stream().into_inner())
}

/// Checks that a stream to `target` opens and the pod accepts the connection: waits for the
/// two port frames, then up to `grace` for an error or a close.
pub(crate) async fn probe(
    client: &Client,
    target: &PodTarget,
    grace: Duration,
    connect_timeout: Duration,
) -> Result<(), ForwardError> {
    let io = open_stream(client, target, tokio::time::Instant::now() + connect_timeout).await?;
    let (r, mut w) = tokio::io::split(io);
    let mut reader = FrameReader::new(r, 4096);
    let mut prefix = [2usize; 2];
    let mut error = Vec::new();
    let relay_err = |source| ForwardError::Relay { target: target.to_string(), source };
    let refused = |error: &[u8]| ForwardError::Refused {
        target: target.to_string(),
        message: if error.is_empty() {
            "the stream closed at once".to_owned()
        } else {
            String::from_utf8_lossy(error).into_owned()
        },
    };
    let mut grace_end: Option<tokio::time::Instant> = None;
    loop {
        let next = match grace_end {
            Some(end) => match tokio::time::timeout_at(end, reader.next()).await {
                Ok(next) => next,
                Err(_) if error.is_empty() => break,
                Err(_) => return Err(refused(&error)),
            },
            None => tokio::time::timeout(connect_timeout, reader.next())
                .await
                .map_err(|_| relay_err(std::io::ErrorKind::TimedOut.into()))?,
        };
        match next.map_err(relay_err)? {
            Event::Data { channel, data } => {
                let rest = strip_prefix(&mut prefix, channel, data);
                if channel == 1 {
                    error.extend_from_slice(rest);
                }
            }
            Event::Ping(_) => {}
            Event::Closed => return Err(refused(&error)),
        }
        if prefix == [0, 0] && grace_end.is_none() {
            grace_end = Some(tokio::time::Instant::now() + grace);
        }
    }
    let mut writer = FrameWriter::new(&mut w);
    let _ = writer.close().await;
    Ok(())
}

/// Drops the two-byte port number that starts channels 0 and 1, however it is split.
fn strip_prefix<'a>(prefix: &mut [usize; 2], channel: u8, data: &'a [u8]) -> &'a [u8] {
    match prefix.get_mut(usize::from(channel)) {
        Some(left) => {
            let skip = (*left).min(data.len());
            *left -= skip;
            &data[skip..]
        }
        None => data,
    }
}

pub(super) enum Ended {
    Done(RelayStats),
    /// The pod refused before answering anything; when `retry`, `replay` holds what to send on
    /// a new stream.
    Refused {
        message: String,
        retry: bool,
    },
}

/// Which end of a relay failed.
enum Broken {
    /// The local connection: nothing to retry.
    Local(std::io::Error),
    /// The stream to the pod.
    Stream(std::io::Error),
}

/// Relays one local connection over one stream.
///
/// Until the pod sends its first byte, everything sent is kept in `replay` and re-sent first,
/// so a connection refused by the pod (its server restarting), or whose stream breaks before
/// the pod answered, can be retried transparently. Once the pod answered, a broken stream is
/// an error.
pub(super) async fn relay<S>(
    io: S,
    local: &mut TcpStream,
    replay: &mut Vec<u8>,
) -> std::io::Result<Ended>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (ws_r, ws_w) = tokio::io::split(io);
    let mut writer = FrameWriter::new(ws_w);
    let mut reader = FrameReader::new(ws_r, READ_BUFFER);
    let (mut local_r, mut local_w) = local.split();
    let answered = AtomicBool::new(false);
    let down = AtomicU64::new(0);
    let up = AtomicU64::new(0);
    // Holds the replay for the whole relay (never emptied across an await) until the pod
    // answers or it grows too large.
    let kept = Mutex::new(Some(std::mem::take(replay)));
    let (pong_tx, mut pong_rx) = mpsc::channel::<Vec<u8>>(4);

    let upload = async {
        let pending = lock(&kept).clone().unwrap_or_default();
        writer.send(0, &pending, MAX_FRAME_PAYLOAD).await.map_err(Broken::Stream)?;
        drop(pending);
        let mut frame = vec![0u8; HEADROOM + FIRST_FRAME_PAYLOAD];
        loop {
            tokio::select! {
                read = local_r.read(&mut frame[HEADROOM..]) => {
                    let n = read.map_err(Broken::Local)?;
                    if n == 0 {
                        return Ok::<_, Broken>(writer);
                    }
                    if !answered.load(Ordering::Acquire) {
                        let mut kept = lock(&kept);
                        match kept.as_mut() {
                            Some(k) if k.len() + n <= MAX_REPLAY => {
                                k.extend_from_slice(&frame[HEADROOM..HEADROOM + n]);
                            }
                            // Too much to keep: this connection can no longer be replayed.
                            _ => *kept = None,
                        }
                    }
                    writer.send_in_place(&mut frame, 0, n).await.map_err(Broken::Stream)?;
                    up.fetch_add(n as u64, Ordering::Relaxed);
                    if n == frame.len() - HEADROOM && n < MAX_FRAME_PAYLOAD {
                        frame.resize(HEADROOM + (2 * n).min(MAX_FRAME_PAYLOAD), 0);
                    }
                }
                Some(payload) = pong_rx.recv() => writer.pong(&payload).await.map_err(Broken::Stream)?,
            }
        }
    };

    let download = async {
        let mut prefix = [2usize; 2];
        let mut error = Vec::new();
        loop {
            match reader.next().await.map_err(Broken::Stream)? {
                Event::Data { channel, data } => {
                    let data = strip_prefix(&mut prefix, channel, data);
                    if data.is_empty() {
                        continue;
                    }
                    match channel {
                        0 => {
                            if !answered.swap(true, Ordering::AcqRel) {
                                *lock(&kept) = None;
                            }
                            local_w.write_all(data).await.map_err(Broken::Local)?;
                            down.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                        1 if error.len() < 4096 => error.extend_from_slice(data),
                        _ => {}
                    }
                }
                Event::Ping(payload) => {
                    let _ = pong_tx.try_send(payload);
                }
                Event::Closed => break,
            }
        }
        Ok::<_, Broken>(error)
    };

    let ended: Result<(Vec<u8>, bool), Broken> = async {
        tokio::pin!(upload, download);
        tokio::select! {
            error = &mut download => Ok((error?, false)),
            uploaded = &mut upload => {
                let mut writer = uploaded?;
                loop {
                    let before = down.load(Ordering::Relaxed);
                    match tokio::time::timeout(HALF_CLOSE_LINGER, &mut download).await {
                        Ok(error) => break Ok((error?, false)),
                        Err(_) if down.load(Ordering::Relaxed) == before => {
                            let _ = writer.close().await;
                            break Ok((Vec::new(), true));
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
    .await;
    let answered = answered.load(Ordering::Acquire);
    let (error, lingered) = match ended {
        Ok(ended) => ended,
        Err(Broken::Local(e)) => return Err(e),
        Err(Broken::Stream(e)) if !answered => {
            let kept = lock(&kept).take();
            let retry = kept.is_some();
            *replay = kept.unwrap_or_default();
            let message = format!("the stream broke before the pod answered: {e}");
            return Ok(Ended::Refused { message, retry });
        }
        Err(Broken::Stream(e)) => return Err(e),
    };
    let error = (!error.is_empty()).then(|| String::from_utf8_lossy(&error).into_owned());
    if let Some(message) = error.clone()
        && !answered
    {
        let kept = lock(&kept).take();
        let retry = kept.is_some();
        *replay = kept.unwrap_or_default();
        return Ok(Ended::Refused { message, retry });
    }
    let _ = local_w.shutdown().await;
    let (up, down) = (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
    Ok(Ended::Done(RelayStats { up, down, lingered, opened: true, error }))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The loopback address a forward listens on.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
