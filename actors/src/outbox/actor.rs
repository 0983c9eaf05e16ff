//! The supervised outbox relay. It owns this instance's relay state (its
//! lease identity and its failure count) and runs one pass at a time: at
//! once when a commit rings or a full batch went out, else every second.
//! When the database, its own dependency, fails, it stops itself after a
//! back-off and its supervisor starts it again (counted in
//! `stowage_actor_restarts_total{actor="outbox"}`); the unsent rows are
//! where it left them. A delivery failure (NATS away) is retried with
//! back-off without a restart: the NATS circuit reports that one.

use std::time::Duration;

use actix::prelude::*;

use super::{BATCH, Pass, Relay, RelayError};
use crate::metrics::ACTOR_RESTARTS_TOTAL;
use crate::time::backoff;

/// How long the relay sleeps when nothing rang.
const IDLE: Duration = Duration::from_secs(1);

#[derive(Message)]
#[rtype(result = "()")]
struct Pump;

/// Stop now (the supervisor restarts the actor): for tests and operators.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

pub struct OutboxRelayActor {
    relay: Relay,
    /// Consecutive failures, for the back-off.
    failures: u32,
    passes: u64,
}

impl OutboxRelayActor {
    pub fn new(relay: Relay) -> Self {
        Self {
            relay,
            failures: 0,
            passes: 0,
        }
    }
}

impl Actor for OutboxRelayActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Pump);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let relay = self.relay.clone();
        actix::spawn(async move {
            let _ = relay.resign().await;
        });
    }
}

impl Supervised for OutboxRelayActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "outbox").increment(1);
    }
}

impl Handler<Pump> for OutboxRelayActor {
    type Result = ();

    /// One pass at a time: the pass holds the actor (`wait`); the idle
    /// wait after it does not, so `Stop` is heard meanwhile.
    fn handle(&mut self, _: Pump, ctx: &mut Context<Self>) {
        let relay = self.relay.clone();
        let upkeep = self.passes.is_multiple_of(10);
        self.passes += 1;
        async move {
            let pass = relay.pass().await;
            if upkeep && let Err(e) = relay.upkeep().await {
                tracing::warn!(error = %e, "outbox upkeep failed");
            }
            pass
        }
        .into_actor(self)
        .map(|result, act, ctx| match result {
            Ok(pass) => {
                act.failures = 0;
                if pass == Pass::Published(BATCH as usize) {
                    ctx.notify(Pump);
                } else {
                    let bus = act.relay.bus().clone();
                    async move { bus.outbox_wait(IDLE).await }
                        .into_actor(act)
                        .map(|(), _, ctx| ctx.notify(Pump))
                        .spawn(ctx);
                }
            }
            Err(RelayError::Delivery(e)) => {
                let delay = backoff(act.failures);
                act.failures += 1;
                tracing::debug!(error = %e, retry_in = ?delay, "outbox delivery failed");
                ctx.notify_later(Pump, delay);
            }
            Err(e) => {
                let delay = backoff(act.failures);
                act.failures += 1;
                tracing::error!(error = %e, retry_in = ?delay, "outbox relay failed; restarting");
                ctx.run_later(delay, |_, ctx| ctx.stop());
            }
        })
        .wait(ctx);
    }
}

impl Handler<Stop> for OutboxRelayActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
