//! A PATCH's body on its way into the store: read from the socket a MiB at
//! a time while the previous MiB goes into the upload's sink (and, with an
//! `Upload-Checksum`, through its hash), acknowledged as it becomes durable:
//! every stored part, and every 32 MiB or 2 s of a staging file. Each
//! acknowledgement moves the offset only from where this request found it,
//! together with the hash state of exactly those bytes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::{Stream, StreamExt};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use stowage_entity::files;
use stowage_entity::upload_parts;
use stowage_entity::upload_sessions::{self, UploadState};

use super::headers::BodyHasher;
use super::{LEASE, Tus, TusError};
use crate::files::{Landed, mark_available_in};
use crate::storage::{Chunk, Durable, Resume, StoredPart, UploadSink};
use crate::time::now;

/// Bytes handed to the sink at a time: large enough to keep the per-call
/// cost small, small enough for a cold page cache (large `write()` calls
/// into a cold cache are several times slower).
const WRITE_SIZE: usize = 1024 * 1024;
/// Without a checksum, progress into a staging file is acknowledged this
/// often, so a crash loses at most this much.
const CHECKPOINT_BYTES: u64 = 32 << 20;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

/// What a request brings besides its body.
pub(super) struct Incoming {
    /// The `Upload-Checksum` to check the body against.
    pub checksum: Option<BodyHasher>,
    /// The most bytes the upload may hold.
    pub limit: u64,
    /// Where the body ends (from its Content-Length).
    pub expect: Option<u64>,
    /// The sink the last request left with the session actor.
    pub parked: Option<UploadSink>,
}

/// What this request has acknowledged.
struct Progress {
    /// The acknowledged offset (in the database).
    committed: u64,
    last_checkpoint: Instant,
}

/// The sink (and the request's checksum hasher): at hand, or busy taking a
/// piece while the next is read from the socket.
enum Slot {
    Ready(Box<UploadSink>, Option<BodyHasher>),
    Busy(LocalBoxFuture<'static, Result<(UploadSink, Option<BodyHasher>), TusError>>),
}

impl Slot {
    /// The sink once it is at hand, and whether it was busy.
    async fn ready(self) -> Result<(UploadSink, Option<BodyHasher>, bool), TusError> {
        match self {
            Slot::Ready(sink, checksum) => Ok((*sink, checksum, false)),
            Slot::Busy(piece) => {
                let (sink, checksum) = piece.await?;
                Ok((sink, checksum, true))
            }
        }
    }
}

impl Tus {
    /// Where `session` stands, for its sink.
    fn resume(&self, session: &upload_sessions::Model, file: &files::Model) -> Resume {
        Resume {
            upload: session.id,
            key: file.object_key.clone(),
            content_type: file.content_type.clone(),
            offset: session.offset as u64,
            hash_state: session.hash_state.clone(),
            tail_size: session.tail_size as u64,
            parts: session.parts_received as u32,
            length: session.size.map(|l| l as u64),
            s3_upload: session.s3_upload_id.clone(),
            spool_dir: self.inner.spool_dir.clone(),
        }
    }

    /// Streams the body into the store; acknowledges what arrived. Returns
    /// the sink to park, unless the upload is complete.
    pub(super) async fn write<S, E>(
        &self,
        session: &upload_sessions::Model,
        file: &files::Model,
        incoming: Incoming,
        mut body: S,
    ) -> Result<(upload_sessions::Model, Option<UploadSink>), TusError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let Incoming {
            checksum,
            limit,
            expect,
            parked,
        } = incoming;
        let start = session.offset as u64;
        let checked = checksum.is_some();
        let mut sink = match parked {
            Some(sink) => sink,
            None => {
                self.inner
                    .storage
                    .open_sink(&self.resume(session, file))
                    .await?
            }
        };
        sink.expect(expect, session.size.map(|l| l as u64));
        let mut slot = Slot::Ready(Box::new(sink), checksum);
        let mut progress = Progress {
            committed: start,
            last_checkpoint: Instant::now(),
        };
        let mut absorbed = 0u64;
        let mut buf: Vec<Bytes> = Vec::new();
        let mut buffered = 0usize;
        let mut broke_off = false;
        loop {
            let chunk = match body.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    tracing::info!(error = %e, "a tus request body broke off");
                    broke_off = true;
                    break;
                }
                None => break,
            };
            let received = start + absorbed + (buffered + chunk.len()) as u64;
            if received > limit {
                // Nothing of a body that overruns the upload is kept.
                let _ = slot.ready().await;
                return Err(match session.size {
                    Some(length) => TusError::PastLength {
                        length: length as u64,
                    },
                    None => TusError::TooLarge {
                        size: received,
                        max: limit,
                    },
                });
            }
            buffered += chunk.len();
            buf.push(chunk);
            if buffered >= WRITE_SIZE {
                let (mut sink, checksum, busy) = self.leased(session, slot.ready()).await?;
                self.record_started_upload(session, &mut sink).await?;
                if busy {
                    self.after_absorb(session, &mut sink, checked, &mut progress, start + absorbed)
                        .await?;
                }
                absorbed += std::mem::take(&mut buffered) as u64;
                let data: Chunk = std::mem::take(&mut buf).into();
                slot = Slot::Busy(Box::pin(absorb(sink, data, checksum)));
            }
        }
        let (mut sink, mut checksum, _) = self.leased(session, slot.ready()).await?;
        self.record_started_upload(session, &mut sink).await?;
        if !buf.is_empty() {
            absorbed += std::mem::take(&mut buffered) as u64;
            let data: Chunk = std::mem::take(&mut buf).into();
            (sink, checksum) = self.leased(session, absorb(sink, data, checksum)).await?;
            self.record_started_upload(session, &mut sink).await?;
        }
        if let Some(checksum) = checksum {
            if broke_off {
                // All or nothing: half a checked chunk is not acknowledged.
                return Err(TusError::Interrupted(absorbed));
            }
            if !checksum.matches() {
                crate::metrics::upload_failed("tus", "checksum_mismatch");
                return Err(TusError::ChecksumMismatch);
            }
        }
        let end = start + absorbed;
        if session.size == Some(end as i64) && !broke_off {
            let done = self.finish(session, file, sink, progress).await?;
            return Ok((done, None));
        }
        let durable = self.leased(session, sink.checkpoint()).await?;
        let session = self.commit(session, &mut progress, &durable).await?;
        sink.acknowledged(&durable).await;
        if broke_off {
            return Err(TusError::Interrupted(end - start));
        }
        Ok((session, Some(sink)))
    }

    /// After a piece is in: record a multipart upload the sink started, and
    /// (without a checksum) acknowledge what became durable: a stored part
    /// at once, a staging file's bytes every so often.
    async fn after_absorb(
        &self,
        session: &upload_sessions::Model,
        sink: &mut UploadSink,
        checked: bool,
        progress: &mut Progress,
        taken: u64,
    ) -> Result<(), TusError> {
        self.record_started_upload(session, sink).await?;
        let due = progress.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
            || taken - progress.committed >= CHECKPOINT_BYTES;
        let settled = if checked {
            None
        } else {
            sink.settled(due).await?
        };
        match settled {
            Some(durable) if due || !durable.new_parts.is_empty() => {
                self.commit(session, progress, &durable).await?;
                sink.acknowledged(&durable).await;
            }
            // A slow upload, or an all-or-nothing one, still renews its lease.
            _ if due => {
                self.take_lease(session).await?;
                progress.last_checkpoint = Instant::now();
            }
            _ => {}
        }
        Ok(())
    }

    /// Awaits `work` (a part on its way to the store, say) while keeping
    /// this instance's lease on the upload: renewed every third of it, so a
    /// slow store never lets another instance in mid-request.
    async fn leased<T, E>(
        &self,
        session: &upload_sessions::Model,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, TusError>
    where
        TusError: From<E>,
    {
        let mut work = std::pin::pin!(work);
        loop {
            match tokio::time::timeout(LEASE / 3, work.as_mut()).await {
                Ok(done) => return done.map_err(TusError::from),
                Err(_) => self.take_lease(session).await?,
            }
        }
    }

    /// A multipart upload the sink started is recorded at once: whatever
    /// happens next, the janitor can abort it.
    async fn record_started_upload(
        &self,
        session: &upload_sessions::Model,
        sink: &mut UploadSink,
    ) -> Result<(), TusError> {
        if let Some(upload) = sink.take_started_upload() {
            upload_sessions::Entity::update_many()
                .col_expr(upload_sessions::Column::S3UploadId, Expr::value(upload))
                .filter(upload_sessions::Column::Id.eq(session.id))
                .exec(&self.inner.db)
                .await?;
        }
        Ok(())
    }

    /// Acknowledges `durable`: the offset moves only from where this request
    /// found it, and only while this instance holds the lease.
    async fn commit(
        &self,
        session: &upload_sessions::Model,
        progress: &mut Progress,
        durable: &Durable,
    ) -> Result<upload_sessions::Model, TusError> {
        let inner = &self.inner;
        let at = now();
        let txn = inner.db.begin().await?;
        if !durable.new_parts.is_empty() {
            upload_parts::Entity::insert_many(durable.new_parts.iter().map(|p| {
                upload_parts::ActiveModel {
                    session_id: Set(session.id),
                    part_number: Set(p.part_number as i32),
                    size: Set(p.size as i64),
                    etag: Set(p.etag.clone()),
                }
            }))
            .exec(&txn)
            .await?;
        }
        let mut update = upload_sessions::Entity::update_many()
            .col_expr(
                upload_sessions::Column::Offset,
                Expr::value(durable.offset as i64),
            )
            .col_expr(
                upload_sessions::Column::HashState,
                Expr::value(durable.hash_state.clone()),
            )
            .col_expr(
                upload_sessions::Column::TailSize,
                Expr::value(durable.tail_size as i64),
            )
            .col_expr(
                upload_sessions::Column::PartsReceived,
                Expr::value(durable.parts as i32),
            )
            .col_expr(upload_sessions::Column::UpdatedAt, Expr::value(at))
            .col_expr(
                upload_sessions::Column::ExpiresAt,
                Expr::value(at + inner.idle_expiry),
            )
            .filter(upload_sessions::Column::Id.eq(session.id))
            .filter(upload_sessions::Column::Offset.eq(progress.committed as i64))
            .filter(upload_sessions::Column::State.eq(UploadState::Active));
        if inner.db.get_database_backend() == DbBackend::Postgres {
            update = update
                .col_expr(upload_sessions::Column::LeaseUntil, Expr::value(at + LEASE))
                .filter(upload_sessions::Column::LeaseOwner.eq(inner.instance));
        }
        let updated = update.exec_with_returning(&txn).await?;
        let Some(session) = updated.into_iter().next() else {
            // Someone else moved the offset: acknowledge nothing.
            return Err(TusError::Moved(session.id));
        };
        txn.commit().await?;
        metrics::counter!(crate::metrics::UPLOAD_BYTES_TOTAL, "kind" => "tus")
            .increment(durable.offset.saturating_sub(progress.committed));
        progress.committed = durable.offset;
        progress.last_checkpoint = Instant::now();
        Ok(session)
    }

    /// The last byte is in: the sink becomes the object and the file
    /// becomes available with its SHA-256.
    async fn finish(
        &self,
        session: &upload_sessions::Model,
        file: &files::Model,
        sink: UploadSink,
        progress: Progress,
    ) -> Result<upload_sessions::Model, TusError> {
        let inner = &self.inner;
        let length = session.size.unwrap_or(0) as u64;
        let prior: Vec<StoredPart> = if sink.needs_prior_parts() {
            upload_parts::Entity::find()
                .filter(upload_parts::Column::SessionId.eq(session.id))
                .order_by_asc(upload_parts::Column::PartNumber)
                .all(&inner.db)
                .await?
                .into_iter()
                .map(|p| StoredPart {
                    part_number: p.part_number as u32,
                    size: p.size as u64,
                    etag: p.etag,
                })
                .collect()
        } else {
            Vec::new()
        };
        let had_parts = session.parts_received > 0 || !prior.is_empty();
        let digest = self.leased(session, sink.finish(prior)).await?;
        let at = now();
        let txn = inner.db.begin().await?;
        let changed = mark_available_in(&txn, &[Landed::new(file.id, Some(digest))], false)
            .await
            .map_err(TusError::File)?;
        if had_parts {
            upload_parts::Entity::delete_many()
                .filter(upload_parts::Column::SessionId.eq(session.id))
                .exec(&txn)
                .await?;
        }
        let done = upload_sessions::Entity::update_many()
            .col_expr(
                upload_sessions::Column::State,
                Expr::value(UploadState::Completed),
            )
            .col_expr(upload_sessions::Column::Offset, Expr::value(length as i64))
            .col_expr(
                upload_sessions::Column::HashState,
                Expr::value(Option::<String>::None),
            )
            .col_expr(upload_sessions::Column::TailSize, Expr::value(0i64))
            .col_expr(upload_sessions::Column::UpdatedAt, Expr::value(at))
            .filter(upload_sessions::Column::Id.eq(session.id))
            .filter(upload_sessions::Column::State.eq(UploadState::Active))
            .exec_with_returning(&txn)
            .await?;
        if done.is_empty() {
            // Another request finished or ended it meanwhile: this one
            // changes nothing.
            return Err(TusError::Moved(session.id));
        }
        txn.commit().await?;
        metrics::counter!(crate::metrics::UPLOAD_BYTES_TOTAL, "kind" => "tus")
            .increment(length.saturating_sub(progress.committed));
        if !changed.is_empty() {
            // Its bytes were counted as they were acknowledged.
            crate::metrics::upload_completed("tus", 0);
            inner.bus.outbox_written();
        }
        done.into_iter()
            .next()
            .ok_or(TusError::NotFound(session.id))
    }
}

/// One piece into the sink, and through the request's checksum beside it.
async fn absorb(
    mut sink: UploadSink,
    data: Chunk,
    checksum: Option<BodyHasher>,
) -> Result<(UploadSink, Option<BodyHasher>), TusError> {
    let Some(mut hasher) = checksum else {
        sink.write(data).await?;
        return Ok((sink, None));
    };
    let pieces = data.clone();
    let hashed = tokio::task::spawn_blocking(move || {
        for piece in pieces.iter() {
            hasher.update(piece);
        }
        hasher
    });
    let (written, hashed) = futures_util::future::join(sink.write(data), hashed).await;
    written?;
    Ok((sink, Some(hashed.map_err(anyhow::Error::from)?)))
}
