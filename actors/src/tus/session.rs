//! The upload-session actor: one per upload that is being worked on,
//! registered by upload id. It serialises the upload's requests: while one
//! PATCH holds the session, another is refused with 423 (tus clients retry
//! it), so the bytes of two requests never interleave. When nothing has
//! happened for a while it stops and leaves the registry; the upload's
//! durable state is in the database, so the next request simply starts a
//! new one (on this instance or any other).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, SpawnHandle};
use uuid::Uuid;

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
                        UploadSession {
                            id,
                            busy: false,
                            idle: None,
                            registry: Arc::downgrade(&self.live),
                        }
                        .start()
                    })
                    .clone()
            };
            match addr.send(Acquire).await {
                Ok(true) => return Some(Hold { addr }),
                Ok(false) => return None,
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
}

/// One request's hold on an upload; released when dropped.
pub(crate) struct Hold {
    addr: Addr<UploadSession>,
}

impl Hold {
    /// Releases the upload and stops its actor now (there was no upload).
    pub fn forget(self) {
        self.addr.do_send(Stop);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.addr.do_send(Release);
    }
}

pub struct UploadSession {
    id: Uuid,
    busy: bool,
    idle: Option<SpawnHandle>,
    registry: Weak<Registry>,
}

impl UploadSession {
    fn arm_idle_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.idle.take() {
            ctx.cancel_future(handle);
        }
        self.idle = Some(ctx.run_later(IDLE, |session, ctx| {
            if !session.busy {
                ctx.stop();
            }
        }));
    }
}

impl Actor for UploadSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.arm_idle_timer(ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        if let Some(registry) = self.registry.upgrade() {
            let mut live = registry.lock().unwrap_or_else(|e| e.into_inner());
            if live.get(&self.id) == Some(&ctx.address()) {
                live.remove(&self.id);
            }
        }
        tracing::debug!(upload_id = %self.id, "upload session actor stopped");
    }
}

struct Acquire;

impl Message for Acquire {
    type Result = bool;
}

impl Handler<Acquire> for UploadSession {
    type Result = bool;

    fn handle(&mut self, _: Acquire, ctx: &mut Context<Self>) -> bool {
        if self.busy {
            return false;
        }
        self.busy = true;
        if let Some(handle) = self.idle.take() {
            ctx.cancel_future(handle);
        }
        true
    }
}

struct Release;

impl Message for Release {
    type Result = ();
}

impl Handler<Release> for UploadSession {
    type Result = ();

    fn handle(&mut self, _: Release, ctx: &mut Context<Self>) {
        self.busy = false;
        self.arm_idle_timer(ctx);
    }
}

struct Stop;

impl Message for Stop {
    type Result = ();
}

impl Handler<Stop> for UploadSession {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
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
}
