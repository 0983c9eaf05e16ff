//! The janitor's supervised actor: a timer with jitter, one sweep at a time.
//! It owns the sweeps' pace and where the orphan sweep stands. When every
//! sweep of a round fails, its dependencies are gone (the database, the
//! store): it stops itself after a back-off; its supervisor restarts it
//! (counted in `stowage_actor_restarts_total{actor="janitor"}`) with the
//! orphan sweep starting over, and claims, back-offs and deadlines are all
//! in the database, so the work goes on where it stood.

use std::time::Duration;

use actix::prelude::*;

use super::Janitor;
use crate::metrics::ACTOR_RESTARTS_TOTAL;

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

/// Answered once the sweep in progress (if any) has finished its batch;
/// no sweep starts after it. Set `Janitor::stopping` first.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

pub struct JanitorActor {
    janitor: Janitor,
    interval: Duration,
    /// Rounds in a row in which every sweep failed.
    failures: u32,
}

impl JanitorActor {
    pub fn new(janitor: Janitor, interval: Duration) -> Self {
        Self {
            janitor,
            interval,
            failures: 0,
        }
    }

    /// The interval ±10 %, so instances started together drift apart.
    fn next_delay(&self) -> Duration {
        let jitter = rand::random_range(0.9..1.1);
        self.interval.mul_f64(jitter)
    }
}

impl Actor for JanitorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.next_delay();
        ctx.notify_later(Tick, delay);
    }
}

impl Supervised for JanitorActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "janitor").increment(1);
        if let Ok(mut cursor) = self.janitor.orphan_cursor.try_lock() {
            *cursor = None;
        }
    }
}

impl Handler<Tick> for JanitorActor {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let janitor = self.janitor.clone();
        // `wait`: no tick is handled while a sweep runs.
        // A span for traces (debug: made only when traces are exported).
        let span = tracing::debug_span!("janitor", otel.name = "janitor sweep");
        tracing::Instrument::instrument(async move { janitor.sweep().await }, span)
            .into_actor(self)
            .map(|(failed, ran), act, ctx| {
                if act
                    .janitor
                    .stopping
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    return;
                }
                if ran > 0 && failed == ran {
                    let delay = crate::time::backoff(act.failures);
                    act.failures += 1;
                    tracing::error!(retry_in = ?delay, "every janitor sweep failed; restarting");
                    ctx.run_later(delay, |_, ctx| ctx.stop());
                    return;
                }
                act.failures = 0;
                let delay = act.next_delay();
                ctx.notify_later(Tick, delay);
            })
            .wait(ctx);
    }
}

/// Purge what is due now (someone emptied their trash), beside the
/// regular sweeps: the claims on each batch keep a purge and a sweep (on
/// this instance or another) from taking the same files.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PurgeNow;

impl Handler<PurgeNow> for JanitorActor {
    type Result = ();

    fn handle(&mut self, _: PurgeNow, ctx: &mut Context<Self>) {
        let janitor = self.janitor.clone();
        async move {
            if let Err(e) = janitor.purge().await {
                tracing::warn!(error = %e, "purging an emptied trash failed; the next sweep goes on");
            }
        }
        .into_actor(self)
        .spawn(ctx);
    }
}

impl Handler<Shutdown> for JanitorActor {
    type Result = ();

    /// Runs only after the sweep in progress: a sweep holds the actor (`wait`).
    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        tracing::info!("janitor stopped");
    }
}
