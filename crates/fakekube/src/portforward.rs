//! The `pods/{name}/portforward` endpoint: a WebSocket speaking the API server's binary
//! `v4.channel.k8s.io` port-forward framing, bridged to loopback TCP targets the test configures.
//! It keeps no pod objects of its own; which pods exist is the store's business (see
//! [`PortForwards::set_pod_check`]).
//!
//! Framing, as the kubelet writes it: for the i-th requested port, channel `2*i` carries data and
//! `2*i+1` carries one error text; every binary message starts with its channel byte, and the
//! first message on each channel is the port number as two little-endian bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};

/// The only subprotocol served: binary channels, as kube-rs and client-go's WebSocket executor
/// negotiate for port-forward.
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";

/// Route of the endpoint, in axum's path syntax.
pub const ROUTE: &str = "/api/v1/namespaces/{namespace}/pods/{name}/portforward";

/// The kubelet copies from the pod's socket with a 32 KiB buffer, so frames towards the client
/// are at most this large; mirroring it keeps client benchmarks honest.
const TARGET_READ_CHUNK: usize = 32 * 1024;

type PodCheck = dyn Fn(&str, &str) -> bool + Send + Sync;
/// Which pod's streams to break (`None`: all).
type BreakTarget = Option<(String, String)>;

/// Port-forward targets and live streams. Cheap to clone; every clone shares the same state.
#[derive(Clone, Default)]
pub struct PortForwards {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    targets: Mutex<HashMap<(String, String, u16), SocketAddr>>,
    pod_check: Mutex<Option<Arc<PodCheck>>>,
    /// Changed by [`PortForwards::drop_all`] / [`PortForwards::drop_pod`]; every open stream
    /// watches it. The value names the pod to break, `None` for all.
    breaker: Mutex<Option<watch::Sender<BreakTarget>>>,
    active: AtomicUsize,
    opened: AtomicU64,
}

impl std::fmt::Debug for PortForwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortForwards")
            .field("targets", &*lock(&self.inner.targets))
            .field("active", &self.active())
            .field("opened", &self.opened())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the others.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PortForwards {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bridge `port` of pod `namespace/pod` to `target` (usually a listener on 127.0.0.1).
    pub fn set_target(&self, namespace: &str, pod: &str, port: u16, target: SocketAddr) {
        lock(&self.inner.targets).insert((namespace.to_owned(), pod.to_owned(), port), target);
    }

    /// Forget one port's target: new streams to it get the kubelet's "connection refused" error.
    pub fn remove_target(&self, namespace: &str, pod: &str, port: u16) {
        lock(&self.inner.targets).remove(&(namespace.to_owned(), pod.to_owned(), port));
    }

    /// Forget every target of a pod (for a deleted pod, together with the store's own delete).
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        lock(&self.inner.targets).retain(|(ns, p, _), _| !(ns == namespace && p == pod));
    }

    /// Decide which pods exist (the store's view). Without it, a pod exists while it has a
    /// target; a missing pod answers 404 before the upgrade, as the API server does.
    pub fn set_pod_check(&self, check: impl Fn(&str, &str) -> bool + Send + Sync + 'static) {
        *lock(&self.inner.pod_check) = Some(Arc::new(check));
    }

    /// Break every open port-forward stream now, without a close handshake, as a restarting API
    /// server or pod does. Targets stay configured, so new streams work.
    pub fn drop_all(&self) {
        self.break_streams(None);
    }

    /// Break the open streams of one pod (its container restarted).
    pub fn drop_pod(&self, namespace: &str, pod: &str) {
        self.break_streams(Some((namespace.to_owned(), pod.to_owned())));
    }

    fn break_streams(&self, which: BreakTarget) {
        if let Some(tx) = lock(&self.inner.breaker).as_ref() {
            tx.send_replace(which);
        }
    }

    /// Streams open right now.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Streams accepted since the start.
    pub fn opened(&self) -> u64 {
        self.inner.opened.load(Ordering::SeqCst)
    }

    fn target(&self, namespace: &str, pod: &str, port: u16) -> Option<SocketAddr> {
        lock(&self.inner.targets).get(&(namespace.to_owned(), pod.to_owned(), port)).copied()
    }

    fn pod_exists(&self, namespace: &str, pod: &str) -> bool {
        let check = lock(&self.inner.pod_check).clone();
        match check {
            Some(check) => check(namespace, pod),
            None => lock(&self.inner.targets).keys().any(|(ns, p, _)| ns == namespace && p == pod),
        }
    }

    fn subscribe(&self) -> watch::Receiver<BreakTarget> {
        lock(&self.inner.breaker).get_or_insert_with(|| watch::channel(None).0).subscribe()
    }
}

/// The endpoint as a router that merges into any other: `.merge(portforward::router(pf))`.
pub fn router<S>(port_forwards: PortForwards) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(ROUTE, get(handle)).with_state(port_forwards)
}

/// Serves only this endpoint on a fresh loopback port, on the current runtime (benchmarks and
/// transport tests that need no other API). Returns the base URL, `http://127.0.0.1:PORT`.
pub async fn serve_standalone(port_forwards: PortForwards) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let app: Router = router(port_forwards).fallback(|| async {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// The handler itself, for a caller that routes by hand.
pub async fn handle(
    State(pf): State<PortForwards>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ports = match parse_ports(query.as_deref().unwrap_or("")) {
        Ok(ports) => ports,
        Err(message) => return status(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    if !pf.pod_exists(&namespace, &name) {
        return status(StatusCode::NOT_FOUND, "NotFound", &format!("pods \"{name}\" not found"));
    }
    let Ok(upgrade) = upgrade else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "Upgrade request required");
    };
    let offered = upgrade.requested_protocols().any(|p| p.as_bytes() == PROTOCOL_V4.as_bytes());
    if !offered {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("only the {PROTOCOL_V4} subprotocol is served by this fake"),
        );
    }
    upgrade
        .protocols([PROTOCOL_V4])
        .on_upgrade(move |socket| serve(pf, namespace, name, ports, socket))
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

/// `ports=8443`, `ports=80%2C443` or `ports=80&ports=443`, as the API server accepts.
fn parse_ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.split('&') {
        let Some(value) = pair.strip_prefix("ports=") else { continue };
        for part in percent_decode(value).split(',') {
            let port = part
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("invalid port {part:?}"))?;
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err("at least one port must be specified".to_owned());
    }
    if ports.len() > 128 {
        return Err("too many ports".to_owned());
    }
    Ok(ports)
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decrements the live-stream count however the session ends.
struct ActiveGuard(PortForwards);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.inner.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

async fn serve(
    pf: PortForwards,
    namespace: String,
    pod: String,
    ports: Vec<u16>,
    socket: WebSocket,
) {
    pf.inner.active.fetch_add(1, Ordering::SeqCst);
    pf.inner.opened.fetch_add(1, Ordering::SeqCst);
    let _guard = ActiveGuard(pf.clone());
    let mut breaker = pf.subscribe();
    breaker.borrow_and_update();
    let broken = async {
        while breaker.changed().await.is_ok() {
            let hit = breaker
                .borrow_and_update()
                .as_ref()
                .is_none_or(|(ns, p)| *ns == namespace && *p == pod);
            if hit {
                return;
            }
        }
        std::future::pending::<()>().await;
    };

    tokio::select! {
        () = session(&pf, &namespace, &pod, &ports, socket) => {}
        // Dropping the session future drops the socket: the client sees the connection break.
        () = broken => {}
    }
}

async fn session(pf: &PortForwards, namespace: &str, pod: &str, ports: &[u16], socket: WebSocket) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    for (i, port) in ports.iter().enumerate() {
        let Ok(ch) = u8::try_from(2 * i) else { return };
        for channel in [ch, ch + 1] {
            if ws_tx.send(frame(channel, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }

    // Everything towards the client goes through one writer task, in order.
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            let close = matches!(msg, Message::Close(_));
            if ws_tx.send(msg).await.is_err() || close {
                break;
            }
        }
        let _ = ws_tx.close().await;
    });

    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::with_capacity(ports.len());
    let mut pumps = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let ch = (2 * i) as u8;
        let conn = match pf.target(namespace, pod, port) {
            Some(addr) => TcpStream::connect(addr).await.ok(),
            None => None,
        };
        match conn {
            Some(conn) => {
                let _ = conn.set_nodelay(true);
                let (r, w) = conn.into_split();
                writers.push(Some(w));
                pumps.push(tokio::spawn(pump_from_target(r, ch, out_tx.clone())));
            }
            None => {
                writers.push(None);
                let text = format!(
                    "error forwarding port {port} to pod {pod}, uid : failed to connect to \
                     localhost:{port} inside namespace \"{namespace}\": connection refused"
                );
                let _ = out_tx.send(frame(ch + 1, text.as_bytes())).await;
            }
        }
    }
    if writers.iter().all(Option::is_none) {
        let _ = out_tx.send(Message::Close(None)).await;
    }

    // When every target has finished sending, the kubelet's handler returns and the socket closes.
    let closer = {
        let out_tx = out_tx.clone();
        tokio::spawn(async move {
            for pump in pumps {
                let _ = pump.await;
            }
            let _ = out_tx.send(Message::Close(None)).await;
        })
    };
    drop(out_tx);

    while let Some(Ok(msg)) = ws_rx.next().await {
        match msg {
            Message::Binary(data) if data.len() > 1 => {
                let index = usize::from(data[0] / 2);
                // Data sent on an error channel is ignored, as the kubelet does.
                if data[0] % 2 != 0 {
                    continue;
                }
                let Some(Some(w)) = writers.get_mut(index) else { continue };
                if w.write_all(&data[1..]).await.is_err() {
                    writers[index] = None;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    // The client went away: tear the bridges down.
    drop(writers);
    closer.abort();
    let _ = writer.await;
}

async fn pump_from_target(mut r: OwnedReadHalf, ch: u8, out: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; TARGET_READ_CHUNK + 1];
    buf[0] = ch;
    loop {
        match r.read(&mut buf[1..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let msg = Message::Binary(Bytes::copy_from_slice(&buf[..=n]));
                if out.send(msg).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_query_forms() {
        assert_eq!(parse_ports("ports=8443").unwrap(), vec![8443]);
        assert_eq!(parse_ports("&ports=80%2C1234").unwrap(), vec![80, 1234]);
        assert_eq!(parse_ports("ports=80&ports=443").unwrap(), vec![80, 443]);
        assert!(parse_ports("").is_err());
        assert!(parse_ports("ports=0").is_err());
        assert!(parse_ports("ports=http").is_err());
    }

    #[test]
    fn percent_decoding_keeps_stray_percent() {
        assert_eq!(percent_decode("a%2Cb"), "a,b");
        assert_eq!(percent_decode("a%"), "a%");
        assert_eq!(percent_decode("a%zz"), "a%zz");
    }
}
