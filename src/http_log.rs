//! `-v`: one stderr line per HTTP call the kube client makes (method, path, status, time to
//! the response), read from the `HTTP` spans kube's trace layer opens; `-vv` adds kube's own
//! debug and trace events and the request and response bodies ([`BodyLogLayer`], cut at
//! [`BODY_LIMIT`]; watches, logs and port-forwards stream and are not read). Off without
//! `-v`, so library logging never interleaves with vc's messages. Writes to stderr only.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::{Request, Response};
use kube::client::Body;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Longest body printed with `-vv`, in bytes (the rest is cut, as kubectl's -v=8 does).
pub const BODY_LIMIT: usize = 4096;

static BODIES: AtomicBool = AtomicBool::new(false);

/// Whether `-vv` asked for bodies (the host's client then adds [`BodyLogLayer`]).
pub fn bodies_enabled() -> bool {
    BODIES.load(Ordering::Relaxed)
}

/// Installs the log for `-v` (`verbose` 1) or `-vv` (2 and more); nothing for 0.
pub fn install(verbose: u8) {
    if verbose == 0 {
        return;
    }
    BODIES.store(verbose >= 2, Ordering::Relaxed);
    let layer = HttpLog { events: verbose >= 2 };
    // A second install (tests calling twice) keeps the first.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

struct HttpLog {
    events: bool,
}

/// One call in flight, kept in its span.
struct Call {
    method: String,
    url: String,
    started: Instant,
    answered: bool,
}

#[derive(Default)]
struct Fields {
    method: Option<String>,
    url: Option<String>,
    status: Option<u64>,
    message: Option<String>,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "http.method" => self.method = Some(text),
            "http.url" => self.url = Some(text),
            "message" => self.message = Some(text),
            name => {
                let _ = write!(self.rest, " {name}={text}");
            }
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "http.status_code" {
            self.status = Some(value);
        } else {
            self.record_debug(field, &value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        match u64::try_from(value) {
            Ok(v) if field.name() == "http.status_code" => self.status = Some(v),
            _ => self.record_debug(field, &value),
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "http.method" => self.method = Some(value.to_string()),
            "http.url" => self.url = Some(value.to_string()),
            "message" => self.message = Some(value.to_string()),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }
}

/// The path and query of a URL (the host is the same on every line).
fn path_of(url: &str) -> &str {
    url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap_or(url)
}

fn millis(started: Instant) -> String {
    format!("{} ms", started.elapsed().as_millis())
}

impl<S> Layer<S> for HttpLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "HTTP" || !attrs.metadata().target().starts_with("kube") {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Call {
                method: fields.method.unwrap_or_default(),
                url: fields.url.unwrap_or_default(),
                started: Instant::now(),
                answered: false,
            });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        let Some(status) = fields.status else { return };
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(call) = extensions.get_mut::<Call>() else { return };
        if !call.answered {
            call.answered = true;
            eprintln!(
                "http: {} {} {status} {}",
                call.method,
                path_of(&call.url),
                millis(call.started)
            );
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        if let Some(call) = extensions.get::<Call>().filter(|c| !c.answered) {
            eprintln!(
                "http: {} {} no response {}",
                call.method,
                path_of(&call.url),
                millis(call.started)
            );
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !self.events || !event.metadata().target().starts_with("kube") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        eprintln!(
            "http:   {} {}: {}{}",
            event.metadata().level(),
            event.metadata().target(),
            fields.message.unwrap_or_default(),
            fields.rest
        );
    }
}

/// Prints request and response bodies of calls that do not stream (`-vv`).
#[derive(Clone, Copy, Debug, Default)]
pub struct BodyLogLayer;

impl<S> tower_layer::Layer<S> for BodyLogLayer {
    type Service = BodyLog<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyLog { inner }
    }
}

/// The service of [`BodyLogLayer`].
#[derive(Clone, Debug)]
pub struct BodyLog<S> {
    inner: S,
}

/// Watches, follows and upgrades stream for as long as they live: never read them whole.
fn streams(uri: &http::Uri) -> bool {
    let query = uri.query().unwrap_or_default();
    let path = uri.path();
    query.split('&').any(|p| p == "watch=true" || p == "watch=1" || p == "follow=true")
        || path.ends_with("/portforward")
        || path.ends_with("/exec")
        || path.ends_with("/attach")
}

fn print_body(direction: &str, bytes: &[u8], secret: bool) {
    if let Some(line) = body_line(direction, bytes, secret) {
        eprintln!("{line}");
    }
}

/// The `-vv` line of a body; a Secret's (certificates, keys, kubeconfigs) is left out, so a
/// shared log never carries credentials.
fn body_line(direction: &str, bytes: &[u8], secret: bool) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    if secret {
        return Some(format!("http:   {direction} [{} bytes of a Secret left out]", bytes.len()));
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_LIMIT)]);
    let cut = if bytes.len() > BODY_LIMIT {
        format!(" [{} more bytes cut]", bytes.len() - BODY_LIMIT)
    } else {
        String::new()
    };
    Some(format!("http:   {direction} {}{cut}", text.trim_end()))
}

/// The response body type of kube's service stack, below the client.
type DynBody = Box<
    dyn http_body::Body<Data = bytes::Bytes, Error = Box<dyn std::error::Error + Send + Sync>>
        + Send
        + Unpin,
>;

impl<S> tower_service::Service<Request<Body>> for BodyLog<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<DynBody>>,
    S::Future: Send + 'static,
    S::Error: From<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = Response<DynBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<DynBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        use futures::FutureExt as _;
        use http_body_util::BodyExt as _;
        let streaming = streams(request.uri());
        let secret = request.uri().path().contains("/secrets");
        // kube's request bodies are bytes in memory: a copy is ready at once.
        if let Some(Ok(bytes)) =
            request.body().try_clone().and_then(|copy| copy.collect_bytes().now_or_never())
        {
            print_body(">", &bytes, secret);
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if streaming {
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(S::Error::from)?.to_bytes();
            print_body("<", &bytes, secret);
            let full: DynBody =
                Box::new(http_body_util::Full::new(bytes).map_err(|never| match never {}));
            Ok(Response::from_parts(parts, full))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{body_line, path_of, streams};

    #[test]
    fn watches_and_streams_are_not_read_whole() {
        for uri in [
            "/api/v1/pods?watch=true&labelSelector=a",
            "/api/v1/namespaces/x/pods/p/log?follow=true",
            "/api/v1/namespaces/x/pods/p/portforward?ports=8443",
        ] {
            assert!(streams(&uri.parse().expect("uri")), "{uri}");
        }
        assert!(!streams(&"/api/v1/pods?labelSelector=watch%3Dtrue".parse().expect("uri")));
    }

    #[test]
    fn secret_bodies_are_left_out() {
        let key = b"{\"data\":{\"ca.key\":\"LS0tLS1CRUdJTi...\"}}";
        let line = body_line("<", key, true).unwrap();
        assert!(!line.contains("ca.key"), "{line}");
        assert!(line.contains("bytes of a Secret left out"), "{line}");
        let other = body_line(">", b"{\"kind\":\"ConfigMap\"}", false).unwrap();
        assert!(other.contains("ConfigMap"), "{other}");
        assert_eq!(body_line(">", b"", false), None);
    }

    #[test]
    fn paths_drop_scheme_and_host() {
        assert_eq!(path_of("https://10.0.0.1:6443/api/v1/pods?limit=1"), "/api/v1/pods?limit=1");
        assert_eq!(path_of("/version"), "/version");
    }
}
