//! Outgoing domain events: what one is, and how the outbox relay delivers
//! a batch of them (NATS first, confirmed; then this process's subscribers).

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use uuid::Uuid;

use super::{EVENTS_PREFIX, EventBus, PUBLISH_WAIT, Transport};
use crate::trace::{TRACEPARENT, TraceParent, producer_span};

/// How long the relay waits for NATS to confirm a batch (a flush's PONG).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// A domain event, as published.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DomainEvent {
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub file_id: Uuid,
    pub owner_id: Uuid,
    pub actor_id: Option<Uuid>,
    /// The key the request that caused it came with (a service acting for
    /// `actor_id`, or the user's own key); `None` for a login or the system.
    #[serde(default)]
    pub via_key_id: Option<Uuid>,
    pub data: serde_json::Value,
    /// The span that caused it, when traced: kept beside the event (on its
    /// outbox row, in NATS headers), never in the published JSON.
    #[serde(skip)]
    pub trace: Option<TraceParent>,
}

tokio::task_local! {
    /// The key of the request being served: the HTTP layer opens it for
    /// each request and fills it once the caller is known, and every event
    /// the request causes (in its task) names the key.
    pub static ACTING_KEY: std::cell::Cell<Option<Uuid>>;
}

impl DomainEvent {
    pub fn new(
        kind: &'static str,
        file_id: Uuid,
        owner_id: Uuid,
        actor_id: Option<Uuid>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            kind: kind.to_owned(),
            occurred_at: crate::time::now(),
            file_id,
            owner_id,
            actor_id,
            via_key_id: ACTING_KEY.try_with(std::cell::Cell::get).ok().flatten(),
            data,
            trace: TraceParent::current(),
        }
    }
}

/// Why a batch was not delivered: none of it counts as sent.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("the NATS circuit is open")]
    CircuitOpen,
    #[error("NATS is disconnected")]
    Disconnected,
    #[error("NATS did not take the events: {0}")]
    Failed(String),
}

impl EventBus {
    /// Delivers `events` in order. With NATS, each goes to
    /// `stowage.events.<type>` and the batch counts once the server has
    /// confirmed it (a flush), through the NATS circuit; then every event
    /// goes to this process's subscribers. An `Err` delivered nothing to the
    /// subscribers, and the relay tries the batch again later (NATS may see
    /// an event twice: delivery is at least once, `event_id` tells repeats).
    pub async fn deliver(&self, events: &[DomainEvent]) -> Result<(), DeliverError> {
        if let Transport::Nats(nats) = &self.inner.transport {
            nats.circuit
                .allow()
                .map_err(|_| DeliverError::CircuitOpen)?;
            let sent = send(&nats.client, events).await;
            nats.circuit.record(sent.is_ok());
            sent?;
        }
        for event in events {
            // No receiver is fine.
            let _ = self.inner.domain.send(event.clone());
        }
        Ok(())
    }

    /// Tells the outbox relay that a commit wrote events for it.
    pub fn outbox_written(&self) {
        self.inner.outbox.notify_one();
    }

    /// Waits for [`EventBus::outbox_written`] (a call made while nobody
    /// waited counts), or `max`.
    pub async fn outbox_wait(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.inner.outbox.notified()).await;
    }
}

async fn send(client: &async_nats::Client, events: &[DomainEvent]) -> Result<(), DeliverError> {
    if client.connection_state() != async_nats::connection::State::Connected {
        return Err(DeliverError::Disconnected);
    }
    for event in events {
        let body = serde_json::to_vec(event).map_err(|e| DeliverError::Failed(e.to_string()))?;
        let subject = format!("{EVENTS_PREFIX}.{}", event.kind);
        // The event's trace goes on: a producer span under the span that
        // caused it, named in the message's `traceparent` header.
        let span = producer_span("nats", &subject, event.trace.as_ref());
        let mut headers = async_nats::HeaderMap::new();
        if let Some(trace) = TraceParent::of(&span) {
            headers.insert(TRACEPARENT, trace.as_str());
        }
        let publish = client.publish_with_headers(subject, headers, Bytes::from(body));
        match tokio::time::timeout(PUBLISH_WAIT, publish.instrument(span)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(DeliverError::Failed(e.to_string())),
            Err(_) => return Err(DeliverError::Failed("the client's queue is full".into())),
        }
    }
    match tokio::time::timeout(FLUSH_WAIT, client.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(DeliverError::Failed(e.to_string())),
        Err(_) => Err(DeliverError::Failed("no confirmation in time".into())),
    }
}

/// What happened to a file or folder, for [`item_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    Created,
    Renamed,
    Moved,
    Deleted,
    Restored,
    Purged,
    Shared,
    Unshared,
}

/// The event type when `happened` to an item of `kind`: `file.moved`,
/// `folder.deleted`, … (a file's creation is `file.available`, when its
/// upload completes; a revision upload is part of its file).
pub fn item_event(kind: stowage_entity::files::ItemKind, happened: Happened) -> &'static str {
    use Happened::*;
    use stowage_entity::files::ItemKind::{File, Folder, Revision};
    match (kind, happened) {
        (File | Revision, Created) => "file.available",
        (File | Revision, Renamed) => "file.renamed",
        (File | Revision, Moved) => "file.moved",
        (File | Revision, Deleted) => "file.deleted",
        (File | Revision, Restored) => "file.restored",
        (File | Revision, Purged) => "file.purged",
        (File | Revision, Shared) => "file.shared",
        (File | Revision, Unshared) => "file.unshared",
        (Folder, Created) => "folder.created",
        (Folder, Renamed) => "folder.renamed",
        (Folder, Moved) => "folder.moved",
        (Folder, Deleted) => "folder.deleted",
        (Folder, Restored) => "folder.restored",
        (Folder, Purged) => "folder.purged",
        (Folder, Shared) => "folder.shared",
        (Folder, Unshared) => "folder.unshared",
    }
}
