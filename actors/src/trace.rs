//! W3C trace context where work leaves the task that started it: in NATS
//! headers and the in-process bus (object-store events and domain events),
//! and on outbox and webhook-delivery rows. A [`TraceParent`] is the
//! `traceparent` of one span; a span made for the work that follows adopts
//! it as its parent, so one trace runs from a request through ingest, the
//! outbox relay and a webhook.
//!
//! Without a trace exporter the spans that would carry it are never made
//! and every [`TraceParent::of`] is `None`: nothing is stored or sent.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and carrier key) a trace context travels under.
pub const TRACEPARENT: &str = "traceparent";

/// A span's W3C `traceparent`: `00-<trace id>-<span id>-<flags>`, always in
/// this canonical form (a received value is parsed and written again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// The current span's, when it is part of an exported trace.
    pub fn current() -> Option<Self> {
        Self::of(&Span::current())
    }

    /// `span`'s, when it is part of an exported trace.
    pub fn of(span: &Span) -> Option<Self> {
        if span.is_disabled() {
            return None;
        }
        Self::from_context(&span.context())
    }

    /// A received value (a NATS header, a stored column), if it is a valid
    /// `traceparent`; anything else is ignored, never an error.
    pub fn parse(value: &str) -> Option<Self> {
        // Longer than any version-00 value plus room for a future version's
        // fields: no reason to look further.
        if value.len() > 128 {
            return None;
        }
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), value.to_owned())]);
        Self::from_context(&TraceContextPropagator::new().extract(&carrier))
    }

    fn from_context(cx: &Context) -> Option<Self> {
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut carrier);
        carrier.remove(TRACEPARENT).map(Self)
    }

    /// Makes `span`, just made and not yet entered, continue this trace.
    pub fn adopt(&self, span: &Span) {
        let _ = span.set_parent(self.context());
    }

    /// Links `span`, just made and not yet entered, to this context (a
    /// batch that several traces flowed into).
    pub fn link(&self, span: &Span) {
        span.add_link(self.context().span().span_context().clone());
    }

    fn context(&self) -> Context {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), self.0.clone())]);
        TraceContextPropagator::new().extract(&carrier)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A producer span for handing a message to `system` (`nats`,
/// `in-process`) for `destination`: under `parent` when one is given, else
/// under the current span.
pub fn producer_span(system: &str, destination: &str, parent: Option<&TraceParent>) -> Span {
    let span = tracing::debug_span!(
        "publish",
        otel.name = %format!("publish {destination}"),
        otel.kind = "producer",
        messaging.system = %system,
        messaging.destination.name = %destination,
    );
    if let Some(parent) = parent {
        parent.adopt(&span);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_trace_parents_are_kept_and_in_canonical_form() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(good).unwrap().as_str(), good);
        assert_eq!(
            TraceParent::parse(&good.to_uppercase()).map(|t| t.0),
            None,
            "upper-case hex is not W3C trace context"
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX: y",
            &"0".repeat(4096),
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_an_exporter_nothing_is_traced() {
        let span = tracing::info_span!("request");
        assert_eq!(TraceParent::of(&span), None);
        assert_eq!(TraceParent::current(), None);
    }
}
