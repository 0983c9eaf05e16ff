//! Sending deliveries. Every tick, the [`WebhookActor`] claims the due
//! deliveries that head their queue (the oldest pending one of each
//! webhook and file, not leased by any instance: `FOR UPDATE SKIP LOCKED`
//! and a lease on PostgreSQL), and sends each in a task of its own, at
//! most [`IN_FLIGHT`] at once: a slow or dead receiver holds only its own
//! deliveries, never a request or another receiver. The actor owns the
//! set of deliveries this instance has in flight (a tick claims none of
//! them again). When its ticks keep failing (the database is gone) it
//! stops; its supervisor restarts it (counted in
//! `stowage_actor_restarts_total{actor="webhooks"}`), and leases run out,
//! so nothing is lost.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use stowage_entity::webhook_deliveries::{self, DeliveryStatus};
use stowage_entity::webhooks;
use tokio::sync::Semaphore;
use tracing::Instrument;
use uuid::Uuid;

use super::{RETRY_WINDOW, guard, next_attempt, signature};
use crate::metrics::{ACTOR_RESTARTS_TOTAL, WEBHOOK_BACKLOG, WEBHOOK_DELIVERIES_TOTAL};
use crate::time::now;
use crate::trace::{TRACEPARENT, TraceParent};

/// Deliveries in flight from one instance at most.
pub const IN_FLIGHT: usize = 64;
/// One attempt's limit.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim keeps a delivery from other instances.
const LEASE: Duration = Duration::from_secs(60);
/// Time between ticks.
const TICK: Duration = Duration::from_millis(250);

/// What sends deliveries: the database, the guarded client, the pace.
#[derive(Clone)]
pub struct Sender {
    db: DatabaseConnection,
    http: reqwest::Client,
    allow_private: bool,
    /// The first retry's delay; each next one doubles (at most an hour).
    retry_base: Duration,
    slots: Arc<Semaphore>,
}

impl Sender {
    pub fn new(db: DatabaseConnection, allow_private: bool, retry_base: Duration) -> Self {
        Self {
            db,
            http: guard::client(allow_private, ATTEMPT_TIMEOUT),
            allow_private,
            retry_base,
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }

    /// Claims due heads of queues (none of `busy`), at most the free slots.
    async fn claim(
        &self,
        busy: &HashSet<Uuid>,
    ) -> Result<Vec<(webhook_deliveries::Model, webhooks::Model)>, sea_orm::DbErr> {
        let room = self.slots.available_permits();
        if room == 0 {
            return Ok(Vec::new());
        }
        let at = now();
        let txn = self.db.begin().await?;
        // The head of each (webhook, file) queue: no older pending one.
        let head = Expr::cust(
            "NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
             WHERE e.webhook_id = webhook_deliveries.webhook_id \
             AND e.file_id = webhook_deliveries.file_id \
             AND e.status = 'pending' AND e.id < webhook_deliveries.id)",
        );
        let mut select = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending))
            .filter(webhook_deliveries::Column::NextAttemptAt.lte(at))
            .filter(
                Condition::any()
                    .add(webhook_deliveries::Column::LeaseUntil.is_null())
                    .add(webhook_deliveries::Column::LeaseUntil.lt(at)),
            )
            .filter(head)
            .order_by_asc(webhook_deliveries::Column::NextAttemptAt)
            .limit(room as u64);
        if self.db.get_database_backend() == DbBackend::Postgres {
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let due: Vec<_> = select
            .all(&txn)
            .await?
            .into_iter()
            .filter(|d| !busy.contains(&d.id))
            .collect();
        if due.is_empty() {
            txn.commit().await?;
            return Ok(Vec::new());
        }
        webhook_deliveries::Entity::update_many()
            .col_expr(
                webhook_deliveries::Column::LeaseUntil,
                Expr::value(at + LEASE),
            )
            .filter(webhook_deliveries::Column::Id.is_in(due.iter().map(|d| d.id)))
            .exec(&txn)
            .await?;
        let hooks = webhooks::Entity::find()
            .filter(webhooks::Column::Id.is_in(due.iter().map(|d| d.webhook_id)))
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(due
            .into_iter()
            .filter_map(|d| {
                let hook = hooks.iter().find(|h| h.id == d.webhook_id)?.clone();
                Some((d, hook))
            })
            .collect())
    }

    /// One attempt: POST the event, signed; record what came of it. A
    /// client span in the event's trace, when it was traced, whose
    /// `traceparent` the receiver gets.
    async fn send(&self, delivery: webhook_deliveries::Model, hook: webhooks::Model) {
        let span = tracing::debug_span!(
            "webhook",
            otel.name = %format!("webhook {}", delivery.event_type),
            otel.kind = "client",
            webhook_id = %hook.id,
            delivery_id = %delivery.id,
            attempt = delivery.attempts + 1,
            http.status_code = tracing::field::Empty,
        );
        if let Some(parent) = delivery
            .trace_parent
            .as_deref()
            .and_then(TraceParent::parse)
        {
            parent.adopt(&span);
        }
        let attempt = async {
            let outcome = if hook.enabled {
                self.post(&delivery, &hook).await
            } else {
                // Disabled meanwhile: it waits, as if the receiver were down.
                Err(None)
            };
            if let Ok(code) | Err(Some(code)) = outcome {
                tracing::Span::current().record("http.status_code", code);
            }
            if let Err(e) = self.record(&delivery, outcome).await {
                tracing::warn!(delivery_id = %delivery.id, error = %e, "a delivery's outcome could not be recorded; its lease will run out and it is sent again");
            }
        };
        attempt.instrument(span).await;
    }

    /// `Ok(status)` for a 2xx; `Err(status)` otherwise (`None`: no answer).
    async fn post(
        &self,
        delivery: &webhook_deliveries::Model,
        hook: &webhooks::Model,
    ) -> Result<u16, Option<u16>> {
        let url = reqwest::Url::parse(&hook.url).map_err(|_| None)?;
        // An address in the URL is not resolved: check it here.
        let literal = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok());
        if !self.allow_private && literal.is_some_and(guard::forbidden) {
            return Err(None);
        }
        let id = delivery.event_id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = signature(&hook.secret, &id, timestamp, &delivery.body).ok_or(None)?;
        let mut request = self.http.post(url);
        if let Some(trace) = TraceParent::current() {
            request = request.header(TRACEPARENT, trace.as_str());
        }
        let sent = request
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => Ok(res.status().as_u16()),
            Ok(res) => Err(Some(res.status().as_u16())),
            Err(e) => {
                tracing::debug!(delivery_id = %delivery.id, error = %e, "webhook attempt failed");
                Err(None)
            }
        }
    }

    async fn record(
        &self,
        delivery: &webhook_deliveries::Model,
        outcome: Result<u16, Option<u16>>,
    ) -> Result<(), sea_orm::DbErr> {
        let at = now();
        let attempts = delivery.attempts + 1;
        let (status, code, next, result) = match outcome {
            Ok(code) => (DeliveryStatus::Delivered, Some(code), at, "delivered"),
            Err(code) => {
                let next = next_attempt(self.retry_base, attempts, at);
                let window_over = next
                    > delivery.created_at
                        + chrono::Duration::from_std(RETRY_WINDOW).unwrap_or_default();
                if window_over {
                    (DeliveryStatus::Failed, code, at, "failed")
                } else {
                    (DeliveryStatus::Pending, code, next, "retry")
                }
            }
        };
        metrics::counter!(WEBHOOK_DELIVERIES_TOTAL, "result" => result).increment(1);
        webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::Status, Expr::value(status))
            .col_expr(webhook_deliveries::Column::Attempts, Expr::value(attempts))
            .col_expr(
                webhook_deliveries::Column::LastStatusCode,
                Expr::value(code.map(i32::from)),
            )
            .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(next))
            .col_expr(
                webhook_deliveries::Column::LeaseUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .filter(webhook_deliveries::Column::Id.eq(delivery.id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Sets `stowage_webhook_backlog`: deliveries still pending.
    async fn report_backlog(&self) -> Result<(), sea_orm::DbErr> {
        let n = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending))
            .count(&self.db)
            .await?;
        metrics::gauge!(WEBHOOK_BACKLOG).set(n as f64);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

#[derive(Message)]
#[rtype(result = "()")]
struct Done(Uuid);

/// The supervised actor that paces the sender and owns what this instance
/// has in flight.
pub struct WebhookActor {
    sender: Sender,
    in_flight: HashSet<Uuid>,
    /// Ticks in a row that failed.
    failures: u32,
    ticks: u64,
}

impl WebhookActor {
    pub fn new(sender: Sender) -> Self {
        Self {
            sender,
            in_flight: HashSet::new(),
            failures: 0,
            ticks: 0,
        }
    }
}

impl Actor for WebhookActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify_later(Tick, TICK);
    }
}

impl Supervised for WebhookActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "webhooks").increment(1);
        // What was in flight finishes in its own task; its leases keep it
        // from being claimed twice meanwhile.
        self.in_flight.clear();
    }
}

impl Handler<Tick> for WebhookActor {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let sender = self.sender.clone();
        let busy = self.in_flight.clone();
        self.ticks += 1;
        let report = self.ticks.is_multiple_of(20);
        async move {
            if report {
                sender.report_backlog().await?;
            }
            sender.claim(&busy).await
        }
        .into_actor(self)
        .map(|claimed, act, ctx| {
            match claimed {
                Ok(batch) => {
                    act.failures = 0;
                    for (delivery, hook) in batch {
                        act.in_flight.insert(delivery.id);
                        let sender = act.sender.clone();
                        let me = ctx.address();
                        let id = delivery.id;
                        actix::spawn(async move {
                            let permit = sender.slots.clone().acquire_owned().await;
                            sender.send(delivery, hook).await;
                            drop(permit);
                            me.do_send(Done(id));
                        });
                    }
                }
                Err(e) => {
                    act.failures += 1;
                    tracing::warn!(error = %e, failures = act.failures, "webhook tick failed");
                    if act.failures >= 5 {
                        tracing::error!("webhook sender keeps failing; restarting");
                        ctx.stop();
                        return;
                    }
                }
            }
            ctx.notify_later(Tick, TICK);
        })
        .wait(ctx);
    }
}

impl Handler<Done> for WebhookActor {
    type Result = ();

    fn handle(&mut self, Done(id): Done, _: &mut Context<Self>) {
        self.in_flight.remove(&id);
    }
}
