//! `-v`: one stderr line per HTTP call the kube client makes (method, path, status, time to
//! the response), read from the `HTTP` spans kube's trace layer opens; `-vv` adds kube's own
//! debug and trace events (response headers, the bodies of error responses). Off without `-v`,
//! so library logging never interleaves with vc's messages. Writes to stderr only.

use std::fmt::Write as _;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Installs the log for `-v` (`verbose` 1) or `-vv` (2 and more); nothing for 0.
pub fn install(verbose: u8) {
    if verbose == 0 {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn paths_drop_scheme_and_host() {
        assert_eq!(path_of("https://10.0.0.1:6443/api/v1/pods?limit=1"), "/api/v1/pods?limit=1");
        assert_eq!(path_of("/version"), "/version");
    }
}
