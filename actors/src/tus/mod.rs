//! tus 1.0 through the server: creation, creation-with-upload,
//! creation-defer-length, termination, expiration and checksum.
//!
//! A request for an upload first takes its [`session`] actor (one request at
//! a time per upload), then, on PostgreSQL, a short lease in the upload's
//! row (one instance at a time). The body streams into the upload's sink
//! ([`crate::storage::UploadSink`]: whichever store is in use), see
//! [`write`]. Every acknowledged offset is written with a guard
//! (`WHERE offset = <the offset this request started from>`) together with
//! the SHA-256 state of exactly those bytes, so a restart, a crash or
//! another instance goes on from the last acknowledged byte, and the hash
//! is never computed twice.

mod create;
mod headers;
mod session;
mod write;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, TransactionTrait,
};
use stowage_entity::files::{self, FileStatus};
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};
use uuid::Uuid;

pub use headers::{Checksum, Metadata};

use crate::domain::ValidationError;
use crate::events::EventBus;
use crate::files::{FileError, Room, reserve, room};
use crate::storage::{Stand, Storage, StorageError};
use crate::time::now;

pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";

/// How long an instance's lease on an upload lasts without renewal.
const LEASE: Duration = Duration::from_secs(15);
/// How long a HEAD waits for a write in progress to end, so that the
/// offset it reports includes what a broken-off request is still storing.
const SETTLE: Duration = Duration::from_secs(5);
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
    /// Where S3 uploads spool the part they fill.
    spool_dir: std::path::PathBuf,
    sessions: session::Sessions,
    /// This process, as the holder of upload leases.
    instance: Uuid,
    max_upload_size: u64,
    idle_expiry: Duration,
}

impl Tus {
    pub fn new(
        db: DatabaseConnection,
        storage: Arc<Storage>,
        bus: EventBus,
        max_upload_size: u64,
        idle_expiry: Duration,
        spool_dir: std::path::PathBuf,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                storage,
                bus,
                spool_dir,
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

    /// The upload's offset and length.
    ///
    /// A client resumes from what HEAD says, typically right after its
    /// connection broke, while the server may still be storing what arrived
    /// (on S3, the tail). So a HEAD waits a little for a write in progress,
    /// on this instance or (by its lease) on another, to end: otherwise the
    /// client would send again, from an older offset, what is already here.
    pub async fn head(&self, owner: Uuid, id: Uuid) -> Result<TusUpload, TusError> {
        let until = tokio::time::Instant::now() + SETTLE;
        // Whose it is, before waiting for it; what it holds, after.
        self.session(owner, id).await?;
        self.inner.sessions.settled(id, SETTLE).await;
        loop {
            let (session, _) = self.session(owner, id).await?;
            if !leased(&session) || tokio::time::Instant::now() >= until {
                return Ok(TusUpload::of(&session));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
        let mut hold = inner.sessions.hold(id).await.ok_or(TusError::Locked(id))?;
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
        // A length not known yet reserves nothing: what the owner's quota
        // has room for bounds it, request by request.
        let room = match length {
            Some(_) => None,
            None => room(&inner.db, file.owner_id).await?,
        };
        let limit = match (length, room) {
            (Some(l), _) => l,
            // Its bytes so far are not reserved: the whole upload must fit.
            (None, Some(room)) => Ord::min(inner.max_upload_size, room.left),
            (None, None) => inner.max_upload_size,
        };
        if let Some(n) = req.content_length
            && req.offset.saturating_add(n) > limit
        {
            return Err(match length {
                Some(length) => TusError::PastLength { length },
                None => past_limit(req.offset.saturating_add(n), limit, room),
            });
        }
        self.take_lease(&session).await?;
        if session.size.is_none()
            && let Some(l) = length
        {
            self.declare_length(&mut session, file.owner_id, l).await?;
        }
        let incoming = write::Incoming {
            checksum: req.checksum.as_ref().map(Checksum::hasher),
            limit,
            expect: req.content_length.map(|n| req.offset + n),
            // The sink the last request left here, unless the upload moved
            // on elsewhere since.
            parked: hold
                .take_parked()
                .filter(|p| p.stand == stand_of(&session))
                .map(|p| p.sink),
        };
        let result = self.write(&session, &file, incoming, body).await;
        self.drop_lease(id).await;
        let (session, sink) = result.map_err(|e| match e {
            TusError::TooLarge { size, max } if length.is_none() => past_limit(size, max, room),
            other => other,
        })?;
        if let Some(sink) = sink {
            hold.park(sink);
        }
        Ok(TusUpload::of(&session))
    }

    /// Ends an unfinished upload and removes everything it stored.
    pub async fn terminate(&self, owner: Uuid, id: Uuid) -> Result<(), TusError> {
        let inner = &self.inner;
        let (session, file) = self.session(owner, id).await?;
        if session.state == UploadState::Completed {
            return Err(TusError::Completed(id));
        }
        let mut hold = inner.sessions.hold(id).await.ok_or(TusError::Locked(id))?;
        // Its files are about to go.
        drop(hold.take_parked());
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
        owner: Uuid,
        length: u64,
    ) -> Result<(), TusError> {
        let inner = &self.inner;
        let txn = inner.db.begin().await?;
        // The length becomes a reservation, against the file owner's quota.
        reserve(&txn, owner, length, "tus").await?;
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
}

/// A deferred-length upload would pass `limit`: its owner's quota, when
/// that is what set the limit (413 `quota_exceeded`), else the largest
/// file allowed.
fn past_limit(size: u64, limit: u64, room: Option<Room>) -> TusError {
    match room {
        Some(room) if limit == room.left => {
            crate::files::quota_refused("tus");
            FileError::QuotaExceeded {
                requested: size,
                stored: room.taken.stored,
                reserved: room.taken.reserved,
                quota: room.quota,
            }
            .into()
        }
        _ => TusError::TooLarge { size, max: limit },
    }
}

/// Where the upload's row says its sink stands.
/// Whether an instance holds the upload's write lease now (PostgreSQL).
fn leased(session: &upload_sessions::Model) -> bool {
    session.lease_owner.is_some() && session.lease_until.is_some_and(|t| t > Utc::now())
}

fn stand_of(session: &upload_sessions::Model) -> Stand {
    Stand {
        offset: session.offset as u64,
        tail_size: session.tail_size as u64,
        parts: session.parts_received as u32,
        s3_upload: session.s3_upload_id.clone(),
    }
}

/// Frees what an unfinished upload holds in the store: its multipart
/// upload, and a tus upload's tail object or staging file.
pub(crate) async fn release_store(
    storage: &Storage,
    session: &upload_sessions::Model,
    object_key: &str,
) -> Result<(), StorageError> {
    let s3_upload = session.s3_upload_id.as_deref();
    if session.kind == UploadKind::Tus {
        return storage
            .release_upload(session.id, object_key, s3_upload, session.offset as u64)
            .await;
    }
    if let Some(upload) = s3_upload {
        storage.abort_multipart(object_key, upload).await?;
    }
    Ok(())
}
