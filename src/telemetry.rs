//! Logs (tracing), traces (OpenTelemetry over OTLP/HTTP, when an endpoint
//! is configured) and metrics (Prometheus), set up once per process.

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

/// What the process's tracing holds: the trace exporter, when there is
/// one, to flush at exit.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still queued (a few seconds at most).
    pub fn shutdown(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("stowage: traces not all exported at exit: {e}");
        }
    }
}

/// Whether traces are exported: an OTLP endpoint is configured (and the
/// SDK not disabled). Set once, at start-up.
pub fn tracing_exported() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            && !std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    })
}

/// What the trace exporter is given: Stowage's own spans (requests at
/// info; database, storage and actor work at debug) and sea-orm's, never
/// the HTTP client's that exports them.
const TRACE_FILTER: &str = "info,stowage=debug,stowage_actors=debug,sea_orm=info,reqwest=off,hyper=off,h2=off,opentelemetry=off";

/// Installs the global subscriber: logs to stderr, and spans to the OTLP
/// endpoint when one is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` and the
/// other standard `OTEL_*` variables). Without one, the spans only the
/// exporter wants are never made. Later calls do nothing (tests build
/// many applications in one process).
pub fn init_tracing(filter: &str, format: LogFormat) -> Telemetry {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Database spans are for traces; the logs keep sea-orm's warnings only,
    // unless asked for more.
    let log_filter = if filter.contains("sea_orm") {
        filter.to_owned()
    } else {
        format!("{filter},sea_orm=warn")
    };
    let log_filter = EnvFilter::try_new(&log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs
            .fmt_fields(escaped_fields())
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_filter(log_filter)
            .boxed(),
    };
    let mut telemetry = Telemetry::default();
    let mut layers = vec![logs];
    if tracing_exported() {
        match trace_exporter() {
            Ok((layer, provider)) => {
                telemetry.provider = Some(provider);
                layers.push(layer.with_filter(EnvFilter::new(TRACE_FILTER)).boxed());
            }
            Err(e) => eprintln!("stowage: traces are not exported: {e:#}"),
        }
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    telemetry
}

type TraceLayer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::Registry,
    opentelemetry_sdk::trace::Tracer,
>;

/// The OTLP/HTTP (protobuf) exporter, batched on a thread of its own, as
/// the `OTEL_*` variables configure it; W3C trace context propagation.
fn trace_exporter() -> anyhow::Result<(TraceLayer, opentelemetry_sdk::trace::SdkTracerProvider)> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("stowage");
    }
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("stowage"));
    Ok((layer, provider))
}

/// An incoming request's headers, as the propagator reads them.
struct RequestHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
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
        let span = tracing::info_span!(
            "request",
            otel.name = %format!("{} {route}", request.method()),
            otel.kind = "server",
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
        );
        if tracing_exported() {
            // A W3C `traceparent` the caller sent: this request continues its trace.
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&RequestHeaders(request.headers()))
            });
            let _ = span.set_parent(parent);
        }
        span
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
