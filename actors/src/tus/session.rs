//! The upload-session actor: one per upload that is being worked on,
//! registered by upload id. It owns the upload while it is active here:
//!
//! - who may write: one request at a time (another is refused with 423,
//!   which tus clients retry), so the bytes of two requests never
//!   interleave;
//! - the upload's sink between requests (its open staging file or spool,
//!   the SHA-256 state, the S3 multipart upload and what it has stored),
//!   so the next request goes on where the last one ended without opening
//!   anything again or fetching a tail back from S3.
//!
//! Its supervisor restarts it on a fault: a parked sink whose files no
//! longer match what it stands for (a spool or staging file changed
//! underneath it) makes the actor stop itself; the restart drops the sink,
//! counts `stowage_actor_restarts_total{actor="upload_session"}`, and the
//! request goes on from the durable state in the database and the store.
//! A request that finds another instance moved the upload drops the parked
//! sink too (that is no fault: several instances share uploads).
//!
//! When nothing has happened for a while it leaves the registry and stops
//! for good; the next request starts a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, SpawnHandle, Supervised,
    Supervisor,
};
use tokio::sync::oneshot;
use tracing::Span;
use uuid::Uuid;

use crate::metrics::ACTOR_RESTARTS_TOTAL;
use crate::storage::{Stand, UploadSink};

/// How long an idle session actor lives.
const IDLE: Duration = Duration::from_secs(60);

type Registry = Mutex<HashMap<Uuid, Addr<UploadSession>>>;

/// The live session actors of this instance.
#[derive(Default)]
pub(crate) struct Sessions {
    live: Arc<Registry>,
}

impl Sessions {
    /// Holds upload `id` for one request, or `None` when another request
    /// holds it now.
    pub async fn hold(&self, id: Uuid) -> Option<Hold> {
        // A session that stopped between lookup and send is replaced once.
        for _ in 0..2 {
            let addr = {
                let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                live.entry(id)
                    .or_insert_with(|| {
                        let registry = Arc::downgrade(&self.live);
                        Supervisor::start(move |_| UploadSession {
                            id,
                            busy: false,
                            idle: None,
                            parked: None,
                            waiting: Vec::new(),
                            retiring: false,
                            registry,
                        })
                    })
                    .clone()
            };
            let caller = Span::current();
            match addr.send(Acquire { caller }).await {
                Ok(Some(parked)) => {
                    return Some(Hold {
                        addr,
                        parked,
                        park: None,
                    });
                }
                Ok(None) => return None,
                Err(_) => {
                    let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                    if live.get(&id) == Some(&addr) {
                        live.remove(&id);
                    }
                }
            }
        }
        None
    }

    /// Waits, at most `within`, until no request of this instance holds
    /// upload `id` (a request the client broke off may still be storing
    /// what arrived).
    pub async fn settled(&self, id: Uuid, within: Duration) {
        let addr = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.get(&id).cloned()
        };
        let Some(addr) = addr else { return };
        if let Ok(Some(free)) = addr.send(WhenFree).await {
            // Sent, dropped (the actor stopped) or too slow: all end the wait.
            let _ = tokio::time::timeout(within, free).await;
        }
    }
}

/// A sink at rest between requests, and where it stands.
pub(crate) struct Parked {
    pub sink: UploadSink,
    pub stand: Stand,
}

/// One request's hold on an upload; released when dropped, handing the
/// sink back to the actor if the request parked one.
pub(crate) struct Hold {
    addr: Addr<UploadSession>,
    parked: Option<Parked>,
    park: Option<Parked>,
}

impl Hold {
    /// The sink the last request left, if any (once).
    pub fn take_parked(&mut self) -> Option<Parked> {
        self.parked.take()
    }

    /// Leaves `sink` with the actor for the next request.
    pub fn park(&mut self, sink: UploadSink) {
        let stand = sink.stand();
        self.park = Some(Parked { sink, stand });
    }

    /// Releases the upload and stops its actor now (there was no upload).
    pub fn forget(mut self) {
        self.park = None;
        self.addr.do_send(Retire {
            caller: Span::current(),
        });
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.addr.do_send(Release {
            parked: self.park.take(),
            caller: Span::current(),
        });
    }
}

pub struct UploadSession {
    id: Uuid,
    busy: bool,
    idle: Option<SpawnHandle>,
    parked: Option<Parked>,
    /// Whoever waits for the current request to end (woken on release).
    waiting: Vec<oneshot::Sender<()>>,
    /// Stopping for good (idle, or no upload): not a fault.
    retiring: bool,
    registry: Weak<Registry>,
}

impl UploadSession {
    fn arm_idle_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.idle.take() {
            ctx.cancel_future(handle);
        }
        self.idle = Some(ctx.run_later(IDLE, |session, ctx| {
            if !session.busy {
                session.retire(ctx);
            }
        }));
    }

    /// Leaves the registry and stops (the supervisor ends it once no
    /// request holds its address).
    fn retire(&mut self, ctx: &mut Context<Self>) {
        self.retiring = true;
        self.parked = None;
        if let Some(registry) = self.registry.upgrade() {
            let mut live = registry.lock().unwrap_or_else(|e| e.into_inner());
            if live.get(&self.id) == Some(&ctx.address()) {
                live.remove(&self.id);
            }
        }
        ctx.stop();
    }
}

impl Actor for UploadSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.arm_idle_timer(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::debug!(upload_id = %self.id, "upload session actor stopped");
    }
}

impl Supervised for UploadSession {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if std::mem::take(&mut self.retiring) {
            // A request reached it as it retired: it serves that one.
            return;
        }
        self.parked = None;
        tracing::warn!(upload_id = %self.id, "upload session actor restarted");
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => "upload_session").increment(1);
    }
}

/// The span of one message's handling, under the request that sent it
/// (debug: made only when traces are exported).
fn handling(caller: &Span, message: &'static str, id: Uuid) -> tracing::span::EnteredSpan {
    tracing::debug_span!(
        parent: caller,
        "upload session",
        otel.name = %format!("upload session {message}"),
        upload_id = %id,
        outcome = tracing::field::Empty,
    )
    .entered()
}

/// Take the upload: `None` while another request holds it; else the
/// parked sink, if there is one and it is intact.
struct Acquire {
    caller: Span,
}

impl Message for Acquire {
    type Result = Option<Option<Parked>>;
}

impl Handler<Acquire> for UploadSession {
    type Result = Option<Option<Parked>>;

    fn handle(&mut self, Acquire { caller }: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let span = handling(&caller, "acquire", self.id);
        if self.busy {
            span.record("outcome", "busy");
            return None;
        }
        self.busy = true;
        if let Some(handle) = self.idle.take() {
            ctx.cancel_future(handle);
        }
        match self.parked.take() {
            Some(p) if !p.sink.intact(&p.stand) => {
                // Its files changed underneath it: a fault. The restart
                // drops the sink; this request goes on from durable state.
                tracing::warn!(upload_id = %self.id, "a parked upload sink no longer matches its files");
                span.record("outcome", "restart");
                ctx.stop();
                Some(None)
            }
            parked => {
                span.record("outcome", if parked.is_some() { "parked" } else { "fresh" });
                Some(parked)
            }
        }
    }
}

struct Release {
    parked: Option<Parked>,
    caller: Span,
}

impl Message for Release {
    type Result = ();
}

impl Handler<Release> for UploadSession {
    type Result = ();

    fn handle(&mut self, Release { parked, caller }: Release, ctx: &mut Context<Self>) {
        let _span = handling(&caller, "release", self.id);
        self.busy = false;
        self.waiting.clear();
        self.parked = parked;
        self.arm_idle_timer(ctx);
    }
}

struct Retire {
    caller: Span,
}

impl Message for Retire {
    type Result = ();
}

impl Handler<Retire> for UploadSession {
    type Result = ();

    fn handle(&mut self, Retire { caller }: Retire, ctx: &mut Context<Self>) {
        let _span = handling(&caller, "retire", self.id);
        self.busy = false;
        self.waiting.clear();
        self.retire(ctx);
    }
}

/// A receiver that completes when the request holding the upload ends;
/// `None` when none does.
struct WhenFree;

impl Message for WhenFree {
    type Result = Option<oneshot::Receiver<()>>;
}

impl Handler<WhenFree> for UploadSession {
    type Result = Option<oneshot::Receiver<()>>;

    fn handle(&mut self, _: WhenFree, _: &mut Context<Self>) -> Self::Result {
        if !self.busy {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.push(tx);
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn one_request_at_a_time() {
        let sessions = Sessions::default();
        let id = Uuid::now_v7();
        let first = sessions.hold(id).await.expect("free at first");
        assert!(sessions.hold(id).await.is_none(), "held twice");
        assert!(
            sessions.hold(Uuid::now_v7()).await.is_some(),
            "other uploads are free"
        );
        drop(first);
        // The release is a message; let it arrive.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            sessions.hold(id).await.is_some(),
            "free again after release"
        );
    }

    #[actix::test]
    async fn a_wait_for_a_held_upload_ends_with_its_request() {
        let sessions = Sessions::default();
        let id = Uuid::now_v7();
        // Nothing holds it: no wait at all.
        tokio::time::timeout(
            Duration::from_millis(50),
            sessions.settled(id, Duration::from_secs(60)),
        )
        .await
        .expect("an upload nobody holds is settled");
        let hold = sessions.hold(id).await.unwrap();
        let released = tokio::time::Instant::now();
        let wait = sessions.settled(id, Duration::from_secs(60));
        let release = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(hold);
        };
        let ((), ()) = tokio::join!(wait, release);
        let waited = released.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
            "waited {waited:?}"
        );
        // A request that never ends holds a waiter only as long as it allows.
        let _stuck = sessions.hold(id).await.unwrap();
        let start = tokio::time::Instant::now();
        sessions.settled(id, Duration::from_millis(100)).await;
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
