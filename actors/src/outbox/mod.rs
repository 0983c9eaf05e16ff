//! The transactional outbox. A change and the domain events that report it
//! commit together ([`record`] in the change's transaction); the relay
//! ([`Relay`], driven by [`OutboxRelayActor`]) publishes what is unsent, in
//! the order it was written, and marks it sent. A crash between commit and
//! publish loses nothing: the rows wait for the next relay.
//!
//! One instance relays at a time: the holder of the single `outbox_relay`
//! lease, renewed every pass and taken over once it lapses. So events leave
//! in `id` order, and every file's events in the order they happened.
//! Delivery is at least once: a relay that dies after publishing and before
//! marking re-publishes those events, with the same `event_id`.

mod actor;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use stowage_entity::{outbox, outbox_relay};
use uuid::Uuid;

pub use actor::{OutboxRelayActor, Stop};

use crate::events::{DeliverError, DomainEvent, EventBus};
use crate::metrics::OUTBOX_BACKLOG;
use crate::time::now;
use crate::trace::TraceParent;

/// Events one pass publishes at most.
pub const BATCH: u64 = 256;
/// How long a relay's lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(15);
/// The longest one pass delivers: well within [`LEASE`].
const DELIVERY_WAIT: Duration = Duration::from_secs(5);
/// Sent events are kept this long (for inspection; webhooks have their own rows).
const KEEP_SENT: Duration = Duration::from_secs(24 * 3600);

/// Writes `events` to the outbox, in the caller's transaction.
pub async fn record(db: &impl ConnectionTrait, events: &[DomainEvent]) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = events
        .iter()
        .map(|e| {
            Ok(outbox::ActiveModel {
                event_id: Set(e.event_id),
                kind: Set(e.kind.clone()),
                file_id: Set(e.file_id),
                body: Set(serde_json::to_string(e)
                    .map_err(|e| DbErr::Custom(format!("event not serialisable: {e}")))?),
                created_at: Set(e.occurred_at),
                sent_at: Set(None),
                trace_parent: Set(e.trace.as_ref().map(|t| t.as_str().to_owned())),
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    outbox::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed: the relay's own dependency is lost.
    #[error("the outbox is unreachable: {0}")]
    Database(#[from] DbErr),
    #[error("the events could not be delivered: {0}")]
    Delivery(#[from] DeliverError),
    #[error("an outbox row does not hold an event: {0}")]
    Corrupt(String),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Another instance holds the lease.
    Follower,
    /// Published this many (0: nothing was waiting).
    Published(usize),
}

/// The relay's state: who it is, and where it publishes.
#[derive(Clone)]
pub struct Relay {
    db: DatabaseConnection,
    bus: EventBus,
    /// This instance, as the lease names it.
    holder: Uuid,
    /// Until when this instance surely holds the lease (it renews it once
    /// less than half is left, not on every pass).
    held_until: Arc<Mutex<Option<Instant>>>,
}

impl Relay {
    pub fn new(db: DatabaseConnection, bus: EventBus) -> Self {
        Self {
            db,
            bus,
            holder: Uuid::now_v7(),
            held_until: Arc::default(),
        }
    }

    fn held_until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.held_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Takes or renews the lease, then publishes up to [`BATCH`] unsent
    /// events in order and marks them sent.
    pub async fn pass(&self) -> Result<Pass, RelayError> {
        if !self.lead().await? {
            return Ok(Pass::Follower);
        }
        let rows = outbox::Entity::find()
            .filter(outbox::Column::SentAt.is_null())
            .order_by_asc(outbox::Column::Id)
            .limit(BATCH)
            .all(&self.db)
            .await?;
        if rows.is_empty() {
            return Ok(Pass::Published(0));
        }
        let events = rows
            .iter()
            .map(|r| {
                let mut event = serde_json::from_str::<DomainEvent>(&r.body)
                    .map_err(|e| RelayError::Corrupt(format!("row {}: {e}", r.id)))?;
                event.trace = r.trace_parent.as_deref().and_then(TraceParent::parse);
                Ok(event)
            })
            .collect::<Result<Vec<_>, RelayError>>()?;
        // A pass ends well within the lease, and marks only while it still
        // leads: a relay that lost the lease meanwhile marks nothing (its
        // successor publishes those again: at least once, in order).
        tokio::time::timeout(DELIVERY_WAIT, self.bus.deliver(&events))
            .await
            .map_err(|_| DeliverError::Failed("delivery took too long".into()))??;
        if !self.lead().await? {
            return Ok(Pass::Follower);
        }
        // Marked sent, and handed to the webhooks, in one transaction: a
        // delivery row exists for each event exactly once.
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let txn = self.db.begin().await?;
        let marked: std::collections::HashSet<Uuid> = outbox::Entity::update_many()
            .col_expr(outbox::Column::SentAt, Expr::value(now()))
            .filter(outbox::Column::Id.is_in(ids))
            .filter(outbox::Column::SentAt.is_null())
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .map(|r| r.event_id)
            .collect();
        // Only what this pass marked: another relay's marks were its own.
        let fresh: Vec<DomainEvent> = events
            .into_iter()
            .filter(|e| marked.contains(&e.event_id))
            .collect();
        crate::webhooks::fan_out(&txn, &fresh).await?;
        txn.commit().await?;
        Ok(Pass::Published(rows.len()))
    }

    /// Whether this instance holds the lease (taking it if it lapsed).
    async fn lead(&self) -> Result<bool, DbErr> {
        let started = Instant::now();
        if self.held_until().is_some_and(|t| t > started + LEASE / 2) {
            return Ok(true);
        }
        *self.held_until() = None;
        let at = now();
        let until: DateTime<Utc> = at + LEASE;
        let taken = outbox_relay::Entity::update_many()
            .col_expr(outbox_relay::Column::Holder, Expr::value(self.holder))
            .col_expr(outbox_relay::Column::LeaseUntil, Expr::value(until))
            .filter(outbox_relay::Column::Id.eq(1))
            .filter(
                Condition::any()
                    .add(outbox_relay::Column::Holder.eq(self.holder))
                    .add(outbox_relay::Column::Holder.is_null())
                    .add(outbox_relay::Column::LeaseUntil.lt(at)),
            )
            .exec(&self.db)
            .await?;
        let leads = taken.rows_affected == 1;
        if leads {
            *self.held_until() = Some(started + LEASE);
        }
        Ok(leads)
    }

    /// Lets the lease go (on shutdown), so another instance takes over at once.
    pub async fn resign(&self) -> Result<(), DbErr> {
        *self.held_until() = None;
        outbox_relay::Entity::update_many()
            .col_expr(
                outbox_relay::Column::Holder,
                Expr::value(Option::<Uuid>::None),
            )
            .filter(outbox_relay::Column::Id.eq(1))
            .filter(outbox_relay::Column::Holder.eq(self.holder))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Sets `stowage_outbox_backlog` to the unsent events, and drops sent
    /// ones past [`KEEP_SENT`].
    pub async fn upkeep(&self) -> Result<u64, DbErr> {
        let unsent = outbox::Entity::find()
            .filter(outbox::Column::SentAt.is_null())
            .count(&self.db)
            .await?;
        metrics::gauge!(OUTBOX_BACKLOG).set(unsent as f64);
        outbox::Entity::delete_many()
            .filter(outbox::Column::SentAt.lt(now() - KEEP_SENT))
            .exec(&self.db)
            .await?;
        Ok(unsent)
    }
}
