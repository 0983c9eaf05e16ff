//! Events in and out.
//!
//! *In*: object-store notifications in MinIO's format, from NATS JetStream
//! (MinIO's NATS target, or the local store when NATS is configured) or from
//! the in-process bus of the embedded default. Either way they reach the
//! ingest actor through an [`IngestSource`] with the same ack, retry and
//! terminate semantics.
//!
//! *Out*: domain events (`file.available`, …), written to the outbox in the
//! transaction that caused them and delivered by its relay
//! ([`crate::outbox`]) on `stowage.events.<type>` when NATS is configured,
//! and always to in-process subscribers.

mod domain;
pub mod minio;

pub use domain::{ACTING_KEY, DeliverError, DomainEvent, Happened, item_event};

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Mutex, broadcast, mpsc};
use tracing::Instrument;

use crate::trace::{TRACEPARENT, TraceParent, producer_span};

/// Subject prefix of outgoing domain events.
pub const EVENTS_PREFIX: &str = "stowage.events";
/// Durable consumer every instance shares: each event goes to one of them.
const INGEST_CONSUMER: &str = "stowage-ingest";
/// Deliveries before a message that keeps failing is terminated.
pub const MAX_DELIVER: u64 = 5;
/// After the first message of a batch, how long to keep collecting: large
/// batches under load, at most this much added latency when quiet.
const LINGER: Duration = Duration::from_millis(20);
/// Longest the relay waits to hand one domain event to the NATS client.
pub const PUBLISH_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    domain: broadcast::Sender<DomainEvent>,
    transport: Transport,
    /// Rung after a commit that wrote to the outbox: the relay wakes.
    outbox: tokio::sync::Notify,
}

enum Transport {
    InProcess {
        tx: mpsc::Sender<Inbound>,
        rx: Arc<Mutex<mpsc::Receiver<Inbound>>>,
        /// Messages to deliver again, each once its delay has passed.
        delayed: Delayed,
    },
    Nats(Box<NatsTransport>),
}

/// In-process messages waiting to be delivered again: held by the source,
/// not by a task of their own, and never more than were taken from the
/// (bounded) queue.
type Delayed = Arc<std::sync::Mutex<Vec<(tokio::time::Instant, Inbound)>>>;

/// Object-created notifications the in-process queue holds before a
/// publisher waits for room (the local store's PUT, then).
pub const IN_PROCESS_CAPACITY: usize = 10_000;

struct NatsTransport {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    ingest_subject: String,
    stream: String,
    /// Around publishing: a NATS that stops answering fails fast.
    circuit: crate::circuit::Circuit,
}

impl EventBus {
    /// The bus of the embedded default: everything stays in this process.
    pub fn in_process() -> Self {
        let (tx, rx) = mpsc::channel(IN_PROCESS_CAPACITY);
        Self::with(Transport::InProcess {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            delayed: Delayed::default(),
        })
    }

    /// Connects to NATS (over TLS, trusting `ca`, when one is given) and
    /// makes sure the ingest stream exists.
    pub async fn connect_nats(
        url: &str,
        ingest_subject: &str,
        ca: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut options = async_nats::ConnectOptions::new()
            .name("stowage")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5));
        if let Some(ca) = ca {
            options = options
                .add_root_certificates(ca.to_owned())
                .require_tls(true);
        }
        let client = options
            .connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let jetstream = jetstream::new(client.clone());
        let stream = stream_name(ingest_subject);
        jetstream
            .get_or_create_stream(stream::Config {
                name: stream.clone(),
                subjects: vec![ingest_subject.to_owned()],
                // Each event is work for one instance; acked events go.
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                max_age: Duration::from_secs(7 * 24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!("creating the JetStream stream {stream} on {ingest_subject}")
            })?;
        Ok(Self::with(Transport::Nats(Box::new(NatsTransport {
            client,
            jetstream,
            ingest_subject: ingest_subject.to_owned(),
            stream,
            circuit: crate::circuit::Circuit::new("nats"),
        }))))
    }

    fn with(transport: Transport) -> Self {
        let (domain, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                domain,
                transport,
                outbox: tokio::sync::Notify::new(),
            }),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.inner.transport {
            Transport::InProcess { .. } => "in-process",
            Transport::Nats(_) => "nats",
        }
    }

    /// Publishes an object-store notification for ingest (what MinIO does
    /// after a PUT), under a producer span whose `traceparent` goes with it
    /// (a NATS header). On NATS it returns once JetStream has stored it.
    pub async fn publish_object_event(&self, payload: Vec<u8>) -> anyhow::Result<()> {
        match &self.inner.transport {
            // Waits for room: the queue is bounded.
            Transport::InProcess { tx, .. } => {
                let span = producer_span("in-process", "ingest", None);
                let mut message = Inbound::in_process(Bytes::from(payload), 1);
                message.trace = TraceParent::of(&span);
                tx.send(message)
                    .instrument(span)
                    .await
                    .map_err(|_| anyhow::anyhow!("the in-process bus is closed"))
            }
            Transport::Nats(nats) => {
                nats.circuit.allow()?;
                let span = producer_span("nats", &nats.ingest_subject, None);
                let mut headers = async_nats::HeaderMap::new();
                if let Some(trace) = TraceParent::of(&span) {
                    headers.insert(TRACEPARENT, trace.as_str());
                }
                let stored = async {
                    nats.jetstream
                        .publish_with_headers(
                            nats.ingest_subject.clone(),
                            headers,
                            Bytes::from(payload),
                        )
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .await
                        .map_err(|e| anyhow::anyhow!("JetStream did not store the event: {e}"))?;
                    Ok(())
                }
                .instrument(span)
                .await;
                nats.circuit.record(stored.is_ok());
                stored
            }
        }
    }

    /// Domain events published by this process from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.inner.domain.subscribe()
    }

    /// Where the ingest actor reads from. On NATS: the shared durable pull
    /// consumer, created if missing.
    pub async fn ingest_source(&self) -> anyhow::Result<IngestSource> {
        match &self.inner.transport {
            Transport::InProcess { rx, delayed, .. } => Ok(IngestSource::InProcess {
                rx: rx.clone(),
                delayed: delayed.clone(),
            }),
            Transport::Nats(nats) => {
                let stream = nats
                    .jetstream
                    .get_stream(&nats.stream)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("opening the ingest stream")?;
                let consumer: PullConsumer = stream
                    .get_or_create_consumer(
                        INGEST_CONSUMER,
                        jetstream::consumer::pull::Config {
                            durable_name: Some(INGEST_CONSUMER.to_owned()),
                            ack_policy: jetstream::consumer::AckPolicy::Explicit,
                            ack_wait: Duration::from_secs(30),
                            max_deliver: MAX_DELIVER as i64,
                            // One subject per consumer: NATS 2.9 ignores the plural form.
                            filter_subject: nats.ingest_subject.clone(),
                            max_ack_pending: 20_000,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("creating the ingest consumer")?;
                // A continuous pull: messages arrive as soon as they are
                // published, and up to a batch waits buffered.
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(crate::ingest::BATCH_MAX)
                    .messages()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("subscribing to the ingest consumer")?;
                Ok(IngestSource::Nats(Box::new(messages)))
            }
        }
    }

    /// `Ok` while events can flow.
    pub fn health(&self) -> Result<(), String> {
        match &self.inner.transport {
            Transport::InProcess { tx, .. } if tx.is_closed() => {
                Err("in-process bus closed".into())
            }
            Transport::InProcess { .. } => Ok(()),
            Transport::Nats(nats) => match nats.client.connection_state() {
                async_nats::connection::State::Connected => Ok(()),
                other => Err(format!("NATS {other:?}").to_lowercase()),
            },
        }
    }
}

/// Moves the delayed messages that are due into `batch`; returns when the
/// next one is.
fn take_due(delayed: &Delayed, batch: &mut Vec<Inbound>) -> Option<tokio::time::Instant> {
    let now = tokio::time::Instant::now();
    let mut held = delayed.lock().unwrap_or_else(|e| e.into_inner());
    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut *held)
        .into_iter()
        .partition(|(at, _)| *at <= now);
    let next = later.iter().map(|(at, _)| *at).min();
    *held = later;
    batch.extend(due.into_iter().map(|(_, m)| m));
    next
}

/// A JetStream stream name for a subject: `stowage.ingest` → `STOWAGE_INGEST`.
fn stream_name(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Where ingest reads notifications from.
pub enum IngestSource {
    InProcess {
        rx: Arc<Mutex<mpsc::Receiver<Inbound>>>,
        delayed: Delayed,
    },
    Nats(Box<pull::Stream>),
}

impl IngestSource {
    /// Up to `max` messages: waits for the first up to `wait`, then collects
    /// for up to [`LINGER`] more. An empty batch is normal.
    pub async fn next_batch(&mut self, max: usize, wait: Duration) -> anyhow::Result<Vec<Inbound>> {
        match self {
            IngestSource::InProcess { rx, delayed } => {
                let mut rx = rx.lock().await;
                let mut batch = Vec::new();
                let give_up = tokio::time::Instant::now() + wait;
                let mut linger_until = None;
                while batch.len() < max {
                    // Retries whose delay has passed join first; the wait
                    // for new messages ends when the next retry is due.
                    let next_due = take_due(delayed, &mut batch);
                    let now = tokio::time::Instant::now();
                    if !batch.is_empty() && linger_until.is_none() {
                        linger_until = Some(now + LINGER);
                    }
                    let end = linger_until.unwrap_or(give_up);
                    if now >= end || batch.len() >= max {
                        break;
                    }
                    let deadline = next_due.map_or(end, |due| Ord::min(due, end));
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(m)) => batch.push(m),
                        Ok(None) => anyhow::bail!("the in-process bus is closed"),
                        // A retry came due, or the wait is over: look again.
                        Err(_) => {}
                    }
                }
                for m in &mut batch {
                    m.requeue = Some(delayed.clone());
                }
                Ok(batch)
            }
            IngestSource::Nats(messages) => {
                let mut batch = Vec::new();
                let mut deadline = tokio::time::Instant::now() + wait;
                while batch.len() < max {
                    match tokio::time::timeout_at(deadline, messages.next()).await {
                        Ok(Some(m)) => {
                            if batch.is_empty() {
                                deadline = tokio::time::Instant::now() + LINGER;
                            }
                            batch.push(inbound(m)?);
                        }
                        Ok(None) => anyhow::bail!("the JetStream consumer stream ended"),
                        Err(_) => break,
                    }
                }
                Ok(batch)
            }
        }
    }
}

fn inbound(message: Result<jetstream::Message, pull::MessagesError>) -> anyhow::Result<Inbound> {
    let message = message.map_err(|e| anyhow::anyhow!("JetStream delivery: {e}"))?;
    let (sequence, attempt) = message
        .info()
        .map(|i| (Some(i.stream_sequence), i.delivered.max(1) as u64))
        .unwrap_or((None, 1));
    let trace = message
        .headers
        .as_ref()
        .and_then(|h| h.get(TRACEPARENT))
        .and_then(|v| TraceParent::parse(v.as_str()));
    Ok(Inbound {
        payload: message.payload.clone(),
        trace,
        subject: message.subject.to_string(),
        sequence,
        attempt,
        nats: Some(message),
        requeue: None,
    })
}

/// One delivered notification and the means to settle it.
pub struct Inbound {
    pub payload: Bytes,
    pub subject: String,
    /// The stream sequence on NATS.
    pub sequence: Option<u64>,
    /// 1 on first delivery.
    pub attempt: u64,
    /// The publisher's span, when traced.
    pub trace: Option<TraceParent>,
    nats: Option<jetstream::Message>,
    requeue: Option<Delayed>,
}

impl Inbound {
    fn in_process(payload: Bytes, attempt: u64) -> Self {
        Self {
            payload,
            subject: "in-process".into(),
            sequence: None,
            attempt,
            trace: None,
            nats: None,
            requeue: None,
        }
    }

    /// Done: never deliver again.
    pub async fn ack(self) -> anyhow::Result<()> {
        self.settle(AckKind::Ack).await
    }

    /// Not done: deliver again after `delay`.
    pub async fn retry(self, delay: Duration) -> anyhow::Result<()> {
        if let Some(delayed) = self.requeue {
            let mut again = Inbound::in_process(self.payload, self.attempt + 1);
            again.trace = self.trace;
            delayed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((tokio::time::Instant::now() + delay, again));
            return Ok(());
        }
        self.settle(AckKind::Nak(Some(delay))).await
    }

    /// Poison: never deliver again, and it was not done.
    pub async fn terminate(self) -> anyhow::Result<()> {
        self.settle(AckKind::Term).await
    }

    async fn settle(self, kind: AckKind) -> anyhow::Result<()> {
        match self.nats {
            Some(message) => message
                .ack_with(kind)
                .await
                .map_err(|e| anyhow::anyhow!("settling a JetStream message: {e}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_subjects() {
        assert_eq!(stream_name("stowage.ingest"), "STOWAGE_INGEST");
        assert_eq!(stream_name("a.b-c.*"), "A_B_C__");
    }

    #[tokio::test]
    async fn in_process_delivery_retries_with_a_growing_attempt() {
        let bus = EventBus::in_process();
        let mut source = bus.ingest_source().await.unwrap();
        bus.publish_object_event(b"one".to_vec()).await.unwrap();
        let batch = source.next_batch(10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].attempt, 1);
        let first = batch.into_iter().next().unwrap();
        first.retry(Duration::from_millis(10)).await.unwrap();
        let batch = source.next_batch(10, Duration::from_secs(1)).await.unwrap();
        assert_eq!((batch.len(), batch[0].attempt), (1, 2));
        assert!(
            source
                .next_batch(10, Duration::from_millis(20))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
