//! The supervised ingest actor. It (re)connects its source in `started`,
//! pumps one batch at a time, and stops itself when the source breaks so its
//! supervisor restarts it, after a back-off.

use actix::prelude::*;

use super::{BATCH_MAX, BATCH_WAIT, Ingest, Outcome};
use crate::events::minio;
use crate::events::{EventBus, Inbound, IngestSource, MAX_DELIVER};
use crate::metrics::ACTOR_RESTARTS_TOTAL;
use crate::time::backoff;
use crate::trace::TraceParent;

/// Pull and apply the next batch.
#[derive(Message)]
#[rtype(result = "()")]
struct Pump;

/// Stop now (the supervisor restarts the actor): for tests and operators.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

pub struct IngestActor {
    ingest: Ingest,
    bus: EventBus,
    source: Option<IngestSource>,
    /// Consecutive failures, for the back-off.
    failures: u32,
}

impl IngestActor {
    pub fn new(ingest: Ingest) -> Self {
        let bus = ingest.bus.clone();
        Self {
            ingest,
            bus,
            source: None,
            failures: 0,
        }
    }

    /// Waits, then stops, so the supervisor restarts us.
    fn fail(&mut self, ctx: &mut Context<Self>, what: &str, error: anyhow::Error) {
        let delay = backoff(self.failures);
        self.failures += 1;
        tracing::error!(error = ?error, retry_in = ?delay, "ingest {what} failed; restarting");
        ctx.run_later(delay, |_, ctx| ctx.stop());
    }
}

impl Actor for IngestActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let bus = self.bus.clone();
        async move { bus.ingest_source().await }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(source) => {
                    tracing::info!(bus = act.bus.kind(), "ingest connected");
                    act.source = Some(source);
                    ctx.notify(Pump);
                }
                Err(e) => act.fail(ctx, "connection", e),
            })
            .wait(ctx);
    }
}

impl Supervised for IngestActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "ingest").increment(1);
        self.source = None;
    }
}

impl Handler<Pump> for IngestActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Pump, _: &mut Context<Self>) -> Self::Result {
        let Some(mut source) = self.source.take() else {
            return Box::pin(fut::ready(()));
        };
        let ingest = self.ingest.clone();
        Box::pin(
            async move {
                let result = pump(&ingest, &mut source).await;
                (source, result)
            }
            .into_actor(self)
            .map(|(source, result), act, ctx| {
                act.source = Some(source);
                match result {
                    Ok(()) => {
                        act.failures = 0;
                        ctx.notify(Pump);
                    }
                    Err(e) => act.fail(ctx, "source", e),
                }
            }),
        )
    }
}

impl Handler<Stop> for IngestActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// One batch. Only a broken source is an error: everything else is settled
/// message by message.
async fn pump(ingest: &Ingest, source: &mut IngestSource) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let batch = source.next_batch(BATCH_MAX, BATCH_WAIT).await?;
    if batch.is_empty() {
        return Ok(());
    }
    let fetched = started.elapsed();
    let size = batch.len();
    // A span for traces (debug: made only when traces are exported).
    let span = tracing::debug_span!("ingest", otel.name = "ingest batch", messages = size);
    tracing::Instrument::instrument(apply_batch(ingest, batch, started, fetched), span).await;
    Ok(())
}

/// Parses, applies and settles one batch of object-store events.
async fn apply_batch(
    ingest: &Ingest,
    batch: Vec<Inbound>,
    started: std::time::Instant,
    fetched: std::time::Duration,
) {
    let size = batch.len();
    let mut parsed: Vec<(Inbound, usize)> = Vec::with_capacity(batch.len());
    let mut events = Vec::with_capacity(batch.len());
    // Each traced message gets a consumer span in its publisher's trace
    // (linked to the batch's), open until it is settled; what its records
    // cause (a `file.available`) continues from there.
    let mut message_spans = Vec::new();
    for message in batch {
        match minio::parse(&message.payload) {
            Ok(mut records) => {
                if let Some(parent) = &message.trace {
                    let span = consumer_span(parent);
                    let trace = TraceParent::of(&span);
                    for record in &mut records {
                        record.trace = trace.clone();
                    }
                    message_spans.push(span);
                }
                parsed.push((message, records.len()));
                events.extend(records);
            }
            Err(e) => {
                tracing::warn!(
                    subject = %message.subject,
                    sequence = ?message.sequence,
                    bytes = message.payload.len(),
                    error = %e,
                    "malformed ingest event terminated"
                );
                Outcome::Malformed.count();
                settle(message.terminate().await);
            }
        }
    }
    let parsed_at = started.elapsed();
    match ingest.apply(&events).await {
        Ok(outcomes) => {
            let applied = started.elapsed();
            for outcome in outcomes {
                outcome.count();
            }
            for (message, _) in parsed {
                settle(message.ack().await);
            }
            tracing::debug!(
                size,
                fetch_ms = fetched.as_millis() as u64,
                parse_ms = (parsed_at - fetched).as_millis() as u64,
                apply_ms = (applied - parsed_at).as_millis() as u64,
                ack_ms = (started.elapsed() - applied).as_millis() as u64,
                "ingest batch"
            );
        }
        Err(e) => {
            tracing::error!(error = ?e, events = events.len(), "ingest batch failed; redelivering");
            for (message, records) in parsed {
                if message.attempt >= MAX_DELIVER {
                    tracing::error!(subject = %message.subject, sequence = ?message.sequence, "ingest event failed {MAX_DELIVER} times; terminated");
                    for _ in 0..records {
                        Outcome::Poison.count();
                    }
                    settle(message.terminate().await);
                } else {
                    metrics::counter!(crate::metrics::INGEST_EVENTS_TOTAL, "result" => "retried")
                        .increment(records as u64);
                    let delay = backoff(message.attempt as u32);
                    settle(message.retry(delay).await);
                }
            }
        }
    }
}

/// The span one traced message is handled under: a consumer span in the
/// publisher's trace, linked to the batch that applied it.
fn consumer_span(parent: &TraceParent) -> tracing::Span {
    let span = tracing::debug_span!(
        "ingest object",
        otel.name = "ingest object",
        otel.kind = "consumer",
    );
    parent.adopt(&span);
    if let Some(batch) = TraceParent::current() {
        batch.link(&span);
    }
    span
}

fn settle(result: anyhow::Result<()>) {
    if let Err(e) = result {
        // The message comes back after its ack wait; ingest is idempotent.
        tracing::warn!(error = %e, "could not settle an ingest message");
    }
}
