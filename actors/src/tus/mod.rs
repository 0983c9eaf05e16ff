//! tus 1.0 through the server: creation, creation-with-upload,
//! creation-defer-length, termination, expiration and checksum.
//!
//! A request for an upload first takes its [`session`] actor (one request at
//! a time per upload), then, on PostgreSQL, a short lease in the upload's
//! row (one instance at a time). The body streams through the
//! [`assembly`] actor, which hashes it and writes it: appended to a staging
//! file on the local store, cut into multipart parts of at least 5 MiB on
//! S3, with the bytes short of a part kept in a tail object between
//! requests. Every acknowledged offset is written with a guard
//! (`WHERE offset = <the offset this request started from>`) together with
//! the SHA-256 state of exactly those bytes, so a restart, a crash or
//! another instance goes on from the last acknowledged byte, and the hash
//! is never computed twice.

mod assembly;
mod headers;
mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, SyncArbiter};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use futures_util::{Stream, StreamExt};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use sha2::Digest;
use stowage_entity::files::{self, FileStatus};
use stowage_entity::upload_parts;
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};
use uuid::Uuid;

pub use assembly::ChunkAssembler;
pub use headers::{Checksum, Metadata};

use self::assembly::{Chunk, Digest as DigestPiece, Seal, Sink, Target, Write};
use self::headers::resumable;
use crate::domain::{ContentType, FileName, ValidationError};
use crate::events::EventBus;
use crate::files::{FileError, insert_file, mark_available_in, pending_file};
use crate::storage::{Storage, StorageError, StoredPart};
use crate::time::now;
use crate::uploads::{MAX_PARTS, MIN_PART_SIZE, PartPlan};

pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";

/// Bytes handed to the assembly actor at a time: large enough to keep the
/// per-message cost small, small enough for a cold page cache (large
/// `write()` calls into a cold cache are several times slower).
const WRITE_SIZE: usize = 1024 * 1024;
/// Without a checksum, progress inside one long request is acknowledged
/// this often, so a crash loses at most this much.
const CHECKPOINT_BYTES: u64 = 32 << 20;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// How long an instance's lease on an upload lasts without renewal.
const LEASE: Duration = Duration::from_secs(15);
/// Part size of an S3 upload whose length is deferred, doubled every
/// thousand parts so that 10,000 parts reach S3's 5 TiB.
const DEFERRED_PART_SIZE: u64 = 8 << 20;

/// What a tus request can run into.
#[derive(Debug, thiserror::Error)]
pub enum TusError {
    #[error("upload {0} does not exist")]
    NotFound(Uuid),
    #[error("upload {0} has expired or was abandoned; start a new one")]
    Gone(Uuid),
    #[error("upload {0} is busy with another request; retry shortly")]
    Locked(Uuid),
    #[error(
        "Upload-Offset is {got} but the upload has {expected} bytes; HEAD the upload and resume from its offset"
    )]
    OffsetMismatch { expected: u64, got: u64 },
    #[error("{0} is malformed: {1}")]
    BadHeader(&'static str, String),
    #[error("{0} is required")]
    MissingHeader(&'static str),
    #[error("the checksum algorithm {0:?} is not supported; use sha1 or sha256")]
    UnsupportedChecksum(String),
    #[error("the body does not match its Upload-Checksum; the chunk was discarded, send it again")]
    ChecksumMismatch,
    #[error("{size} bytes is more than the {max} bytes allowed (Tus-Max-Size)")]
    TooLarge { size: u64, max: u64 },
    #[error("the body goes past the upload's length of {length} bytes")]
    PastLength { length: u64 },
    #[error("the upload's length is {declared}; it cannot be changed to {sent}")]
    LengthMismatch { declared: u64, sent: u64 },
    #[error("upload {0} is complete: the file is ready, delete it through /api/v1/files")]
    Completed(Uuid),
    #[error(
        "upload {0} moved on while this request was writing; HEAD it and resume from its offset"
    )]
    Moved(Uuid),
    #[error("the request body broke off after {0} bytes")]
    Interrupted(u64),
    #[error(transparent)]
    File(#[from] FileError),
}

impl From<sea_orm::DbErr> for TusError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::File(e.into())
    }
}

impl From<StorageError> for TusError {
    fn from(e: StorageError) -> Self {
        Self::File(e.into())
    }
}

impl From<ValidationError> for TusError {
    fn from(e: ValidationError) -> Self {
        Self::File(e.into())
    }
}

impl From<std::io::Error> for TusError {
    fn from(e: std::io::Error) -> Self {
        Self::File(StorageError::unavailable(e).into())
    }
}

impl From<anyhow::Error> for TusError {
    fn from(e: anyhow::Error) -> Self {
        Self::File(StorageError::unavailable(e).into())
    }
}

/// A new upload, as the creation request describes it.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// `None`: `Upload-Defer-Length: 1`.
    pub length: Option<u64>,
    pub metadata: Metadata,
}

/// One PATCH (or the body of a creation-with-upload POST).
#[derive(Debug, Clone)]
pub struct PatchRequest {
    pub offset: u64,
    /// `Upload-Length`, for an upload that deferred it.
    pub length: Option<u64>,
    pub content_length: Option<u64>,
    pub checksum: Option<Checksum>,
}

/// An upload as HEAD and the responses describe it.
#[derive(Debug, Clone)]
pub struct TusUpload {
    pub id: Uuid,
    pub file_id: Uuid,
    pub offset: u64,
    /// `None` while deferred.
    pub length: Option<u64>,
    pub metadata: Option<String>,
    /// `None` once complete.
    pub expires_at: Option<DateTime<Utc>>,
}

impl TusUpload {
    fn of(s: &upload_sessions::Model) -> Self {
        Self {
            id: s.id,
            file_id: s.file_id,
            offset: s.offset as u64,
            length: s.size.map(|l| l as u64),
            metadata: s.metadata.clone(),
            expires_at: (s.state == UploadState::Active).then_some(s.expires_at),
        }
    }
}

#[derive(Clone)]
pub struct Tus {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    storage: Arc<Storage>,
    bus: EventBus,
    assembler: Addr<ChunkAssembler>,
    sessions: session::Sessions,
    /// This process, as the holder of upload leases.
    instance: Uuid,
    max_upload_size: u64,
    idle_expiry: Duration,
}

/// Where a request's bytes went and what is acknowledged.
struct Progress {
    /// The acknowledged offset (in the database).
    committed: u64,
    /// Bytes taken in by the sink so far (from the request's start offset).
    absorbed: u64,
    /// S3: bytes in stored parts, parts stored, parts stored by this
    /// request but not yet acknowledged (a request with a checksum
    /// acknowledges all or nothing).
    stored: u64,
    parts: u32,
    new_parts: Vec<StoredPart>,
    s3_upload: Option<String>,
    last_checkpoint: Instant,
}

impl Tus {
    pub fn new(
        db: DatabaseConnection,
        storage: Arc<Storage>,
        bus: EventBus,
        max_upload_size: u64,
        idle_expiry: Duration,
    ) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
        let assembler = SyncArbiter::start(threads, ChunkAssembler::default);
        Self {
            inner: Arc::new(Inner {
                db,
                storage,
                bus,
                assembler,
                sessions: session::Sessions::default(),
                instance: Uuid::new_v4(),
                max_upload_size,
                idle_expiry,
            }),
        }
    }

    pub fn max_upload_size(&self) -> u64 {
        self.inner.max_upload_size
    }

    /// Creates the pending file and the upload session.
    #[tracing::instrument(skip_all, fields(owner_id = %owner))]
    pub async fn create(&self, owner: Uuid, new: NewUpload) -> Result<TusUpload, TusError> {
        let inner = &self.inner;
        if let Some(length) = new.length {
            self.check_size(length)?;
        }
        let id = Uuid::now_v7();
        let file_id = Uuid::now_v7();
        let name = match new.metadata.text(&["filename", "name"])? {
            Some(n) => FileName::parse(&n)?,
            None => FileName::parse(&format!("upload-{id}"))?,
        };
        let content_type = match new.metadata.text(&["filetype", "type"])? {
            Some(t) if !t.is_empty() => ContentType::parse(&t)?,
            _ => ContentType::octet_stream(),
        };
        let at = now();
        let part_size = match (&*inner.storage, new.length) {
            (Storage::S3(_), Some(l)) => {
                Some(PartPlan::new(Ord::max(l, 1), None)?.part_size as i64)
            }
            _ => None,
        };
        let txn = inner.db.begin().await?;
        insert_file(
            &txn,
            pending_file(
                file_id,
                owner,
                &name,
                new.length.unwrap_or(0),
                &content_type,
                None,
                at,
            ),
            name.as_str(),
        )
        .await?;
        let session = upload_sessions::ActiveModel {
            id: Set(id),
            owner_id: Set(owner),
            file_id: Set(file_id),
            kind: Set(UploadKind::Tus),
            state: Set(UploadState::Active),
            size: Set(new.length.map(|l| l as i64)),
            offset: Set(0),
            parts_received: Set(0),
            part_size: Set(part_size),
            s3_upload_id: Set(None),
            metadata: Set(Some(new.metadata.raw().to_owned()).filter(|m| !m.is_empty())),
            hash_state: Set(None),
            tail_size: Set(0),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            expires_at: Set(at + inner.idle_expiry),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        if new.length == Some(0) {
            // Nothing to wait for: an empty upload is complete at once.
            return self
                .patch(
                    owner,
                    id,
                    PatchRequest {
                        offset: 0,
                        length: None,
                        content_length: Some(0),
                        checksum: None,
                    },
                    futures_util::stream::empty::<Result<Bytes, std::convert::Infallible>>(),
                )
                .await;
        }
        Ok(TusUpload::of(&session))
    }

    /// The upload's offset and length.
    pub async fn head(&self, owner: Uuid, id: Uuid) -> Result<TusUpload, TusError> {
        let (session, _) = self.session(owner, id).await?;
        Ok(TusUpload::of(&session))
    }

    /// Appends a request body at `req.offset`.
    #[tracing::instrument(skip(self, req, body), fields(offset = req.offset))]
    pub async fn patch<S, E>(
        &self,
        owner: Uuid,
        id: Uuid,
        req: PatchRequest,
        body: S,
    ) -> Result<TusUpload, TusError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let inner = &self.inner;
        let hold = inner.sessions.hold(id).await.ok_or(TusError::Locked(id))?;
        let (mut session, file) = match self.session(owner, id).await {
            Ok(found) => found,
            Err(e) => {
                // No upload to serialise: its actor need not wait for the idle timer.
                hold.forget();
                return Err(e);
            }
        };
        if session.state == UploadState::Completed {
            return match session.size {
                Some(l) if l as u64 == req.offset => Ok(TusUpload::of(&session)),
                _ => Err(TusError::OffsetMismatch {
                    expected: session.offset as u64,
                    got: req.offset,
                }),
            };
        }
        if req.offset != session.offset as u64 {
            return Err(TusError::OffsetMismatch {
                expected: session.offset as u64,
                got: req.offset,
            });
        }
        let length = match (session.size.map(|l| l as u64), req.length) {
            (Some(declared), Some(sent)) if declared != sent => {
                return Err(TusError::LengthMismatch { declared, sent });
            }
            (Some(l), _) => Some(l),
            (None, Some(l)) => {
                self.check_size(l)?;
                if l < req.offset {
                    return Err(TusError::BadHeader(
                        "Upload-Length",
                        format!("{l} is less than the {} bytes already received", req.offset),
                    ));
                }
                Some(l)
            }
            (None, None) => None,
        };
        let limit = length.unwrap_or(inner.max_upload_size);
        if let Some(n) = req.content_length
            && req.offset.saturating_add(n) > limit
        {
            return Err(match length {
                Some(length) => TusError::PastLength { length },
                None => TusError::TooLarge {
                    size: req.offset.saturating_add(n),
                    max: limit,
                },
            });
        }
        self.take_lease(&session).await?;
        if session.size.is_none()
            && let Some(l) = length
        {
            self.declare_length(&mut session, l).await?;
        }
        let result = self.write(&session, &file, req, limit, body).await;
        self.drop_lease(id).await;
        let session = result?;
        Ok(TusUpload::of(&session))
    }

    /// Ends an unfinished upload and removes everything it stored.
    pub async fn terminate(&self, owner: Uuid, id: Uuid) -> Result<(), TusError> {
        let inner = &self.inner;
        let (session, file) = self.session(owner, id).await?;
        if session.state == UploadState::Completed {
            return Err(TusError::Completed(id));
        }
        let _hold = inner.sessions.hold(id).await.ok_or(TusError::Locked(id))?;
        self.take_lease(&session).await?;
        release_store(&inner.storage, &session, &file.object_key).await?;
        crate::metrics::upload_failed("tus", "aborted");
        // The session and its parts go with the pending file (ON DELETE CASCADE).
        files::Entity::delete_many()
            .filter(files::Column::Id.eq(session.file_id))
            .filter(files::Column::Status.eq(FileStatus::Pending))
            .exec(&inner.db)
            .await?;
        Ok(())
    }

    fn check_size(&self, size: u64) -> Result<(), TusError> {
        let max = self.inner.max_upload_size;
        if size > max {
            return Err(TusError::TooLarge { size, max });
        }
        Ok(())
    }

    /// The caller's tus upload and its file (one query); 410 once it expired.
    async fn session(
        &self,
        owner: Uuid,
        id: Uuid,
    ) -> Result<(upload_sessions::Model, files::Model), TusError> {
        let (session, file) = upload_sessions::Entity::find_by_id(id)
            .filter(upload_sessions::Column::OwnerId.eq(owner))
            .filter(upload_sessions::Column::Kind.eq(UploadKind::Tus))
            .find_also_related(files::Entity)
            .one(&self.inner.db)
            .await?
            .ok_or(TusError::NotFound(id))?;
        let file = file.ok_or(TusError::NotFound(id))?;
        match session.state {
            UploadState::Active if session.expires_at <= Utc::now() => Err(TusError::Gone(id)),
            UploadState::Active | UploadState::Completed => Ok((session, file)),
            UploadState::Expired | UploadState::Aborted => Err(TusError::Gone(id)),
        }
    }

    /// On PostgreSQL, where several instances may serve one upload, only
    /// the lease holder writes. (SQLite has one instance: the session
    /// actor is enough.)
    async fn take_lease(&self, session: &upload_sessions::Model) -> Result<(), TusError> {
        let inner = &self.inner;
        if inner.db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let at = now();
        let taken = upload_sessions::Entity::update_many()
            .col_expr(
                upload_sessions::Column::LeaseOwner,
                Expr::value(inner.instance),
            )
            .col_expr(upload_sessions::Column::LeaseUntil, Expr::value(at + LEASE))
            .filter(upload_sessions::Column::Id.eq(session.id))
            .filter(
                upload_sessions::Column::LeaseOwner
                    .is_null()
                    .or(upload_sessions::Column::LeaseOwner.eq(inner.instance))
                    .or(upload_sessions::Column::LeaseUntil.lt(at)),
            )
            .exec(&inner.db)
            .await?;
        if taken.rows_affected == 0 {
            return Err(TusError::Locked(session.id));
        }
        Ok(())
    }

    async fn drop_lease(&self, id: Uuid) {
        let inner = &self.inner;
        if inner.db.get_database_backend() != DbBackend::Postgres {
            return;
        }
        let released = upload_sessions::Entity::update_many()
            .col_expr(
                upload_sessions::Column::LeaseOwner,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(
                upload_sessions::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(upload_sessions::Column::Id.eq(id))
            .filter(upload_sessions::Column::LeaseOwner.eq(inner.instance))
            .exec(&inner.db)
            .await;
        if let Err(e) = released {
            // It runs out by itself.
            tracing::warn!(upload_id = %id, error = ?e, "could not release an upload lease");
        }
    }

    /// A deferred length becomes known: the session and the file learn it.
    async fn declare_length(
        &self,
        session: &mut upload_sessions::Model,
        length: u64,
    ) -> Result<(), TusError> {
        let inner = &self.inner;
        let txn = inner.db.begin().await?;
        let set = upload_sessions::Entity::update_many()
            .col_expr(upload_sessions::Column::Size, Expr::value(length as i64))
            .filter(upload_sessions::Column::Id.eq(session.id))
            .filter(upload_sessions::Column::Size.is_null())
            .exec(&txn)
            .await?;
        if set.rows_affected == 0 {
            return Err(TusError::Locked(session.id));
        }
        files::Entity::update_many()
            .col_expr(files::Column::Size, Expr::value(length as i64))
            .filter(files::Column::Id.eq(session.file_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        session.size = Some(length as i64);
        Ok(())
    }

    /// Streams the body into the store; acknowledges what arrived.
    async fn write<S, E>(
        &self,
        session: &upload_sessions::Model,
        file: &files::Model,
        req: PatchRequest,
        limit: u64,
        mut body: S,
    ) -> Result<upload_sessions::Model, TusError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let inner = &self.inner;
        let start = session.offset as u64;
        let checked = req.checksum.is_some();
        let mut sink = Some(self.open_sink(session, req.checksum.as_ref()).await?);
        // On S3 the sink's part buffer starts with the tail object's bytes,
        // so the stored parts end `tail_size` before the offset.
        let mut progress = Progress {
            committed: start,
            absorbed: 0,
            stored: start - session.tail_size as u64,
            parts: session.parts_received as u32,
            new_parts: Vec::new(),
            s3_upload: session.s3_upload_id.clone(),
            last_checkpoint: Instant::now(),
        };
        let mut in_flight: Option<LocalBoxFuture<'_, Result<Box<Sink>, TusError>>> = None;
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
            let received = start + progress.absorbed + (buffered + chunk.len()) as u64;
            if received > limit {
                // Nothing of a body that overruns the upload is kept.
                if let Some(pending) = in_flight.take() {
                    let _ = pending.await;
                }
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
                if let Some(pending) = in_flight.take() {
                    let s = pending.await?;
                    sink = Some(
                        self.after_absorb(session, file, checked, s, &mut progress)
                            .await?,
                    );
                }
                progress.absorbed += std::mem::take(&mut buffered) as u64;
                let data: Chunk = std::mem::take(&mut buf).into();
                let s = sink.take().expect("the sink is back between messages");
                in_flight = Some(Box::pin(self.absorb(s, data)));
            }
        }
        if let Some(pending) = in_flight.take() {
            sink = Some(pending.await?);
        }
        if !buf.is_empty() {
            progress.absorbed += std::mem::take(&mut buffered) as u64;
            let data: Chunk = std::mem::take(&mut buf).into();
            let s = sink.take().expect("the sink is back between messages");
            sink = Some(self.absorb(s, data).await?);
        }
        let mut sink = sink.expect("the sink is back at the end");
        if let Some(checksum) = sink.checksum.take() {
            if broke_off {
                // All or nothing: half a checked chunk is not acknowledged.
                return Err(TusError::Interrupted(progress.absorbed));
            }
            if !checksum.matches() {
                crate::metrics::upload_failed("tus", "checksum_mismatch");
                return Err(TusError::ChecksumMismatch);
            }
        }
        let end = start + progress.absorbed;
        if session.size == Some(end as i64) && !broke_off {
            return self.finish(session, file, sink, progress).await;
        }
        // Cut whatever parts are full, then keep the rest as the tail.
        let mut sink = self
            .after_absorb(session, file, false, sink, &mut progress)
            .await?;
        let tail = match sink.target.part() {
            Some(part) if !part.is_empty() => {
                let Storage::S3(s3) = &*inner.storage else {
                    unreachable!("parts are cut on S3 only")
                };
                let key = tail_key(session.id);
                inner
                    .storage
                    .call(
                        "put_object",
                        s3.put_bytes(&key, part, "application/octet-stream"),
                    )
                    .await?;
                part.len() as u64
            }
            _ => 0,
        };
        let hash = resumable::save(&sink.sha256);
        let session = self.commit(session, &mut progress, end, tail, hash).await?;
        if broke_off {
            return Err(TusError::Interrupted(end - start));
        }
        Ok(session)
    }

    /// Hands a piece of the body to the assembly actor: hashing and writing
    /// go out together and run side by side.
    fn absorb(
        &self,
        sink: Box<Sink>,
        data: Chunk,
    ) -> impl std::future::Future<Output = Result<Box<Sink>, TusError>> + 'static {
        let Sink {
            sha256,
            checksum,
            target,
        } = *sink;
        let whole = matches!(target, Target::File(_));
        let assembler = &self.inner.assembler;
        let hashed = assembler.send(DigestPiece {
            sha256,
            checksum,
            whole,
            data: data.clone(),
        });
        let written = assembler.send(Write { target, data });
        async move {
            let (hashed, written) = futures_util::future::join(hashed, written).await;
            let (sha256, checksum) = hashed.map_err(anyhow::Error::from)?;
            let target = written.map_err(anyhow::Error::from)??;
            Ok(Box::new(Sink {
                sha256,
                checksum,
                target,
            }))
        }
    }

    /// After a chunk is in: on S3, store every full part; without a
    /// checksum, acknowledge progress every so often.
    async fn after_absorb(
        &self,
        session: &upload_sessions::Model,
        file: &files::Model,
        checked: bool,
        mut s: Box<Sink>,
        progress: &mut Progress,
    ) -> Result<Box<Sink>, TusError> {
        let inner = &self.inner;
        let start = session.offset as u64;
        loop {
            let target = self.part_target(session, progress.parts);
            let Some(part) = s.target.part() else {
                break;
            };
            if (part.len() as u64) < target {
                break;
            }
            let part = part.split_to(target as usize).freeze();
            s = inner
                .assembler
                .send(Seal {
                    sink: s,
                    part: part.clone(),
                })
                .await
                .map_err(anyhow::Error::from)?;
            self.store_part(session, file, progress, part).await?;
            if !checked {
                let hash = resumable::save(&s.sha256);
                let to = progress.stored;
                self.commit(session, progress, to, 0, hash).await?;
            }
        }
        let due = progress.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
            || start + progress.absorbed - progress.committed >= CHECKPOINT_BYTES;
        if !checked && due {
            match &mut s.target {
                Target::File(_) => {
                    let hash = resumable::save(&s.sha256);
                    let to = start + progress.absorbed;
                    self.commit(session, progress, to, 0, hash).await?;
                }
                // S3 acknowledges whole parts as they are stored; a
                // slow upload still renews its lease here.
                Target::Part(_) => {
                    self.take_lease(session).await?;
                    progress.last_checkpoint = Instant::now();
                }
            }
        }
        Ok(s)
    }

    /// The size of part `n + 1` of an S3 upload.
    fn part_target(&self, session: &upload_sessions::Model, parts_done: u32) -> u64 {
        match session.part_size {
            Some(p) => p as u64,
            None => {
                let doublings = Ord::min(parts_done / 1000, 10);
                Ord::max(DEFERRED_PART_SIZE << doublings, MIN_PART_SIZE)
            }
        }
    }

    /// Uploads one part (starting the S3 multipart upload if need be).
    async fn store_part(
        &self,
        session: &upload_sessions::Model,
        file: &files::Model,
        progress: &mut Progress,
        part: Bytes,
    ) -> Result<(), TusError> {
        let inner = &self.inner;
        let Storage::S3(s3) = &*inner.storage else {
            unreachable!("parts are cut on S3 only")
        };
        let number = progress.parts + 1;
        if u64::from(number) > MAX_PARTS {
            return Err(TusError::TooLarge {
                size: progress.stored + part.len() as u64,
                max: progress.stored,
            });
        }
        let upload = match &progress.s3_upload {
            Some(u) => u.clone(),
            None => {
                let u = inner
                    .storage
                    .create_multipart(&file.object_key, &file.content_type)
                    .await?;
                // Recorded at once: whatever happens next, the janitor can abort it.
                upload_sessions::Entity::update_many()
                    .col_expr(upload_sessions::Column::S3UploadId, Expr::value(u.clone()))
                    .filter(upload_sessions::Column::Id.eq(session.id))
                    .exec(&inner.db)
                    .await?;
                progress.s3_upload = Some(u.clone());
                u
            }
        };
        let size = part.len() as u64;
        let etag = inner
            .storage
            .call(
                "upload_part",
                s3.upload_part(
                    &file.object_key,
                    &upload,
                    number,
                    Vec::from(part),
                    &file.content_type,
                ),
            )
            .await?;
        progress.parts = number;
        progress.stored += size;
        progress.new_parts.push(StoredPart {
            part_number: number,
            size,
            etag,
        });
        Ok(())
    }

    /// Acknowledges `to` bytes: the offset moves only from where this
    /// request found it, and only while this instance holds the lease.
    async fn commit(
        &self,
        session: &upload_sessions::Model,
        progress: &mut Progress,
        to: u64,
        tail: u64,
        hash: String,
    ) -> Result<upload_sessions::Model, TusError> {
        let inner = &self.inner;
        let at = now();
        let txn = inner.db.begin().await?;
        let parts = std::mem::take(&mut progress.new_parts);
        if !parts.is_empty() {
            upload_parts::Entity::insert_many(parts.iter().map(|p| upload_parts::ActiveModel {
                session_id: Set(session.id),
                part_number: Set(p.part_number as i32),
                size: Set(p.size as i64),
                etag: Set(p.etag.clone()),
            }))
            .exec(&txn)
            .await?;
        }
        let mut update = upload_sessions::Entity::update_many()
            .col_expr(upload_sessions::Column::Offset, Expr::value(to as i64))
            .col_expr(upload_sessions::Column::HashState, Expr::value(hash))
            .col_expr(upload_sessions::Column::TailSize, Expr::value(tail as i64))
            .col_expr(
                upload_sessions::Column::PartsReceived,
                Expr::value(progress.parts as i32),
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
            .increment(to.saturating_sub(progress.committed));
        progress.committed = to;
        progress.last_checkpoint = Instant::now();
        Ok(session)
    }

    /// The last byte is in: the object takes its place in the store and
    /// the file becomes available with its SHA-256.
    async fn finish(
        &self,
        session: &upload_sessions::Model,
        file: &files::Model,
        mut sink: Box<Sink>,
        mut progress: Progress,
    ) -> Result<upload_sessions::Model, TusError> {
        let inner = &self.inner;
        let length = session.size.unwrap_or(0) as u64;
        let digest = match &*inner.storage {
            Storage::Local(local) => {
                let Target::File(staged) = sink.target else {
                    unreachable!("the local store stages into a file")
                };
                // Closed, not synced: like every acknowledged offset, the
                // file survives the process, and the OS writes it back.
                drop(staged);
                let digest = hex::encode(sink.sha256.finalize());
                inner
                    .storage
                    .call(
                        "put_object",
                        local.adopt_staged(
                            session.id,
                            &file.object_key,
                            length,
                            &digest,
                            &file.content_type,
                        ),
                    )
                    .await?;
                digest
            }
            Storage::S3(s3) => {
                let rest = match &mut sink.target {
                    Target::Part(b) => b.split().freeze(),
                    Target::File(_) => unreachable!("S3 uploads fill parts"),
                };
                let mut s = inner
                    .assembler
                    .send(Seal {
                        sink,
                        part: rest.clone(),
                    })
                    .await
                    .map_err(anyhow::Error::from)?;
                let digest = hex::encode(std::mem::take(&mut s.sha256).finalize());
                if progress.parts == 0 {
                    // Never reached a part: one PUT.
                    inner
                        .storage
                        .call(
                            "put_object",
                            s3.put_bytes(&file.object_key, &rest, &file.content_type),
                        )
                        .await?;
                } else {
                    if !rest.is_empty() {
                        self.store_part(session, file, &mut progress, rest).await?;
                    }
                    let mut parts: Vec<StoredPart> = upload_parts::Entity::find()
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
                        .collect();
                    parts.retain(|p| p.part_number <= progress.parts);
                    for p in &progress.new_parts {
                        parts.retain(|q| q.part_number != p.part_number);
                        parts.push(p.clone());
                    }
                    parts.sort_by_key(|p| p.part_number);
                    let upload = progress.s3_upload.clone().unwrap_or_default();
                    inner
                        .storage
                        .complete_multipart(&file.object_key, &upload, &parts)
                        .await?;
                }
                if session.offset > 0 {
                    // A tail may be left from an earlier request.
                    let _ = inner.storage.delete(&tail_key(session.id)).await;
                }
                digest
            }
        };
        let at = now();
        let txn = inner.db.begin().await?;
        let changed = mark_available_in(&txn, &[(file.id, Some(digest))], false)
            .await
            .map_err(TusError::File)?;
        if progress.parts > 0 {
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
            .col_expr(
                upload_sessions::Column::PartsReceived,
                Expr::value(progress.parts as i32),
            )
            .col_expr(upload_sessions::Column::UpdatedAt, Expr::value(at))
            .filter(upload_sessions::Column::Id.eq(session.id))
            .exec_with_returning(&txn)
            .await?;
        txn.commit().await?;
        metrics::counter!(crate::metrics::UPLOAD_BYTES_TOTAL, "kind" => "tus")
            .increment(length.saturating_sub(progress.committed));
        if !changed.is_empty() {
            // Its bytes were counted as they were acknowledged.
            crate::metrics::upload_completed("tus", 0);
        }
        if !changed.is_empty() {
            inner.bus.outbox_written();
        }
        done.into_iter()
            .next()
            .ok_or(TusError::NotFound(session.id))
    }

    /// The sink for a request, holding exactly the acknowledged bytes.
    async fn open_sink(
        &self,
        session: &upload_sessions::Model,
        checksum: Option<&Checksum>,
    ) -> Result<Box<Sink>, TusError> {
        let inner = &self.inner;
        let sha256 = resumable::restore(session.hash_state.as_deref())?;
        let offset = session.offset as u64;
        let target = match &*inner.storage {
            Storage::Local(local) => {
                let path: PathBuf = local.staging_path(session.id);
                let file = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                    use std::io::{Seek, SeekFrom};
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .mode(0o600)
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(path)?;
                    // A crash may have left bytes that were never acknowledged.
                    // (Only then: truncating can wait for the page cache's
                    // writeback of the file's last page.)
                    if f.metadata()?.len() != offset {
                        f.set_len(offset)?;
                    }
                    f.seek(SeekFrom::Start(offset))?;
                    Ok(f)
                })
                .await
                .map_err(anyhow::Error::from)?
                .map_err(StorageError::unavailable)?;
                Target::File(file)
            }
            Storage::S3(s3) => {
                let target = self.part_target(session, session.parts_received as u32);
                let mut part = BytesMut::with_capacity(Ord::min(target, 64 << 20) as usize);
                if session.tail_size > 0 {
                    let tail = inner
                        .storage
                        .call("get_object", s3.get_bytes(&tail_key(session.id)))
                        .await?
                        .filter(|t| t.len() as i64 == session.tail_size)
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "upload {}'s tail object is missing or of the wrong size",
                                session.id
                            )
                        })?;
                    part.extend_from_slice(&tail);
                }
                Target::Part(part)
            }
        };
        Ok(Box::new(Sink {
            sha256,
            checksum: checksum.map(Checksum::hasher),
            target,
        }))
    }
}

/// Where an S3 tus upload keeps the bytes short of a part between requests
/// (outside `users/`, which the orphan sweep owns).
pub fn tail_key(upload: Uuid) -> String {
    format!("uploads/tus/{upload}/tail")
}

/// Frees what an unfinished upload holds in the store: the S3 multipart
/// upload, a tus upload's tail object or staging file.
pub(crate) async fn release_store(
    storage: &Storage,
    session: &upload_sessions::Model,
    object_key: &str,
) -> Result<(), StorageError> {
    if let Some(upload) = &session.s3_upload_id {
        storage.abort_multipart(object_key, upload).await?;
    }
    if session.kind == UploadKind::Tus {
        match storage {
            Storage::Local(local) => local.discard_staged(session.id).await?,
            Storage::S3(_) if session.offset > 0 => storage.delete(&tail_key(session.id)).await?,
            Storage::S3(_) => {}
        }
    }
    Ok(())
}
