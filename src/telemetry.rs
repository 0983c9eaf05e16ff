//! Logs (tracing) and metrics (Prometheus), set up once per process.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::http::client_ip::ClientIp;
use crate::http::request_id::RequestId;

/// Installs the global log subscriber. Later calls do nothing (tests build
/// many applications in one process).
pub fn init_tracing(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.fmt_fields(escaped_fields()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Text-format fields with every control character escaped (`\n` as
/// `\\n`), so a value a client chose can never start a log line of its own
/// or hide one. The JSON format escapes by itself.
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let raw = format!("{value:?}");
        let text = escape_controls(&raw);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ")
}

/// `text` with control characters written as Rust escapes.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .and_then(|b| b.install_recorder())
                .unwrap_or_else(|e| {
                    // Only one recorder per process: fall back to a detached
                    // one so the server still runs and /metrics still answers.
                    tracing::error!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                });
            stowage_actors::metrics::describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok();
            handle
        })
        .clone()
}

/// The root span of every request: the default fields plus the request id,
/// so every log line a request causes carries it.
pub struct StowageRootSpan;

impl RootSpanBuilder for StowageRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default();
        // The route pattern, never the raw path (it may hold ids and tokens).
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let empty = tracing::field::Empty;
        tracing::info_span!(
            "request",
            request_id = %request_id,
            http.method = %request.method(),
            http.route = %route,
            http.client_ip = %ClientIp::of(request.request()),
            http.status_code = empty,
            otel.status_code = empty,
            // Who the request acts as, and the key that sent it (an admin
            // key acting for a user logs both).
            user_id = empty,
            key_id = empty,
            exception.message = empty,
            exception.details = empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        if let Ok(res) = outcome {
            let _entered = span.enter();
            let status = res.status().as_u16();
            if res.status().is_server_error() {
                tracing::error!(status, "request failed");
            } else {
                tracing::info!(status, "request served");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_value_cannot_forge_a_text_log_line() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(escaped_fields())
            .finish();
        let forged = "x\n2026-12-02T00:00:00Z  INFO admin logged in\r\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", id = %forged);
            let _entered = span.enter();
            tracing::warn!(field = %forged, debugged = ?forged, "bad {}", forged);
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
        assert!(text.contains("x\\n2026"), "{text}");
    }

    #[test]
    fn plain_text_is_untouched() {
        assert!(matches!(
            escape_controls("a b"),
            std::borrow::Cow::Borrowed("a b")
        ));
        assert_eq!(escape_controls("a\tb"), "a\\tb");
    }
}
