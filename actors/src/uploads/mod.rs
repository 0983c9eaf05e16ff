//! Upload sessions: S3-style multipart with presigned parts (and, later, tus).
//!
//! A multipart session belongs to one pending file. The client asks for a
//! presigned URL per part and PUTs each part straight to the store; the
//! store's own part list is the truth when the client completes, so a
//! session survives restarts and works on any instance.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use stowage_entity::files::{self, FileStatus, ItemKind};
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};
use uuid::Uuid;

use crate::domain::{ContentType, FileName, ObjectKey, ValidationError};
use crate::events::EventBus;
use crate::files::{
    Conflict, FileError, FileView, Landed, Role, enter, insert_upload, land, mark_available,
    placement, reserve, verify_object,
};
use crate::storage::{PresignedRequest, Storage, StoredPart};

mod plan;

use crate::time::now;
pub use plan::{MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, PartPlan, check_parts};

/// Lifetime of a presigned part URL.
const PART_URL_TTL: Duration = Duration::from_secs(3600);

/// What went wrong with an upload session.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload {0} does not exist")]
    NotFound(Uuid),
    #[error("upload {0} has expired; start a new one")]
    Expired(Uuid),
    #[error("upload {0} is already complete")]
    Completed(Uuid),
    #[error("part {part} is out of range: this upload has parts 1 to {count}")]
    PartOutOfRange { part: u32, count: u32 },
    #[error("the parts do not match what the store holds: {0}")]
    PartsMismatch(String),
    #[error(transparent)]
    File(#[from] FileError),
}

impl From<sea_orm::DbErr> for UploadError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::File(e.into())
    }
}

impl From<crate::storage::StorageError> for UploadError {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::File(e.into())
    }
}

impl From<ValidationError> for UploadError {
    fn from(e: ValidationError) -> Self {
        Self::File(e.into())
    }
}

/// A multipart upload request after parsing.
#[derive(Debug, Clone)]
pub struct NewMultipart {
    pub name: FileName,
    pub size: u64,
    pub content_type: ContentType,
    pub part_size: Option<u64>,
    /// The folder to put it in; `None` is the caller's root.
    pub parent: Option<Uuid>,
    /// What happens if the name is taken there.
    pub conflict: Conflict,
}

/// A session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: upload_sessions::Model,
    pub plan: Option<PartPlan>,
}

#[derive(Clone)]
pub struct Uploads {
    db: DatabaseConnection,
    storage: Arc<Storage>,
    bus: EventBus,
    max_upload_size: u64,
    /// How long a session lives after its last activity.
    idle_expiry: Duration,
}

impl Uploads {
    pub fn new(
        db: DatabaseConnection,
        storage: Arc<Storage>,
        bus: EventBus,
        max_upload_size: u64,
        idle_expiry: Duration,
    ) -> Self {
        Self {
            db,
            storage,
            bus,
            max_upload_size,
            idle_expiry,
        }
    }

    /// Creates a pending file and a multipart upload in the store.
    #[tracing::instrument(skip_all, fields(owner_id = %owner))]
    pub async fn create_multipart(
        &self,
        owner: Uuid,
        new: NewMultipart,
    ) -> Result<(FileView, SessionView), UploadError> {
        if new.size > self.max_upload_size {
            return Err(FileError::TooLarge {
                size: new.size,
                max: self.max_upload_size,
            }
            .into());
        }
        let plan = PartPlan::new(new.size, new.part_size)?;
        let place = placement(&self.db, owner, new.parent).await?;
        let at = now();
        let id = Uuid::now_v7();
        let key = ObjectKey::new(place.owner, id).to_string();
        let store_upload = self
            .storage
            .create_multipart(&key, new.content_type.as_str())
            .await?;
        let txn = self.db.begin().await?;
        let inserted = async {
            reserve(&txn, place.owner, new.size, "multipart").await?;
            enter(&txn, &place).await?;
            let landing = land(&txn, &place, new.name.clone(), new.conflict).await?;
            let base = new.conflict.base;
            insert_upload(
                &txn,
                id,
                &place,
                landing,
                base,
                new.size,
                &new.content_type,
                None,
                at,
            )
            .await
        }
        .await;
        let file = match inserted {
            Ok(f) => f,
            Err(e) => {
                drop(txn);
                // Leave nothing behind in the store.
                let _ = self.storage.abort_multipart(&key, &store_upload).await;
                return Err(e.into());
            }
        };
        let session = upload_sessions::ActiveModel {
            id: Set(Uuid::now_v7()),
            owner_id: Set(owner),
            file_id: Set(id),
            kind: Set(UploadKind::Multipart),
            state: Set(UploadState::Active),
            size: Set(Some(new.size as i64)),
            offset: Set(0),
            parts_received: Set(0),
            part_size: Set(Some(plan.part_size as i64)),
            s3_upload_id: Set(Some(store_upload)),
            metadata: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            expires_at: Set(at + self.idle_expiry),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok((
            FileView::new(file, place.role),
            SessionView {
                session,
                plan: Some(plan),
            },
        ))
    }

    /// A presigned PUT for part `part` of exactly its planned length.
    pub async fn part_url(
        &self,
        owner: Uuid,
        upload: Uuid,
        part: u32,
    ) -> Result<PresignedRequest, UploadError> {
        let (session, file, plan) = self.active_multipart(owner, upload).await?;
        if part == 0 || part > plan.part_count {
            return Err(UploadError::PartOutOfRange {
                part,
                count: plan.part_count,
            });
        }
        let store_upload = session.s3_upload_id.clone().unwrap_or_default();
        let request = self
            .storage
            .presign_part(
                &file.object_key,
                &store_upload,
                part,
                plan.part_len(part),
                PART_URL_TTL,
            )
            .await?;
        self.touch(&session, None).await?;
        Ok(request)
    }

    /// The parts the store holds so far.
    pub async fn parts(&self, owner: Uuid, upload: Uuid) -> Result<Vec<StoredPart>, UploadError> {
        let (session, file, _) = self.active_multipart(owner, upload).await?;
        let parts = self.stored_parts(&session, &file).await?;
        self.touch(&session, Some(&parts)).await?;
        Ok(parts)
    }

    /// Checks the client's part list against the store's, joins the parts
    /// and makes the file available.
    #[tracing::instrument(skip(self, claimed), fields(upload_id = %upload))]
    pub async fn complete(
        &self,
        owner: Uuid,
        upload: Uuid,
        claimed: Vec<(u32, String)>,
    ) -> Result<FileView, UploadError> {
        let (session, file, plan) = self.active_multipart(owner, upload).await?;
        let stored = self.stored_parts(&session, &file).await?;
        if let Err(e) = check_parts(&plan, &claimed, &stored) {
            crate::metrics::upload_failed("multipart", "parts_mismatch");
            return Err(e);
        }
        let store_upload = session.s3_upload_id.clone().unwrap_or_default();
        self.storage
            .complete_multipart(&file.object_key, &store_upload, &stored)
            .await?;
        let meta = self
            .storage
            .head(&file.object_key)
            .await?
            .ok_or(FileError::UploadIncomplete)?;
        let digest = verify_object(&self.storage, &file, &meta).await?;
        let changed = mark_available(
            &self.db,
            UploadKind::Multipart,
            &[Landed::new(file.id, digest)],
        )
        .await?;
        let landed = changed.first().map(|f| f.id);
        let at = now();
        upload_sessions::Entity::update_many()
            .col_expr(
                upload_sessions::Column::State,
                Expr::value(UploadState::Completed),
            )
            .col_expr(
                upload_sessions::Column::Offset,
                Expr::value(plan.size as i64),
            )
            .col_expr(
                upload_sessions::Column::PartsReceived,
                Expr::value(plan.part_count as i32),
            )
            .col_expr(upload_sessions::Column::UpdatedAt, Expr::value(at))
            .filter(upload_sessions::Column::Id.eq(session.id))
            .exec(&self.db)
            .await?;
        // What the upload became: its file, or (a revision upload) the
        // file it revised or its conflicted copy, which its session follows.
        let landed = match landed {
            Some(id) => id,
            None => self.get(owner, upload).await?.session.file_id,
        };
        let file = files::Entity::find_by_id(landed)
            .one(&self.db)
            .await?
            .ok_or(FileError::NotFound(landed))?;
        if !changed.is_empty() {
            self.bus.outbox_written();
        }
        // An editor may have uploaded it into a folder shared with them.
        let role = if file.owner_id == owner {
            Role::Owner
        } else {
            Role::Editor
        };
        Ok(FileView::new(file, role))
    }

    /// Aborts the upload in the store and removes its pending file.
    pub async fn abort(&self, owner: Uuid, upload: Uuid) -> Result<(), UploadError> {
        let (session, file) = self
            .owned_session(owner, upload, UploadKind::Multipart)
            .await?;
        if session.state == UploadState::Completed {
            return Err(UploadError::Completed(upload));
        }
        let store_upload = session.s3_upload_id.clone().unwrap_or_default();
        self.storage
            .abort_multipart(&file.object_key, &store_upload)
            .await?;
        crate::metrics::upload_failed("multipart", "aborted");
        // The session goes with its file (ON DELETE CASCADE).
        files::Entity::delete_many()
            .filter(files::Column::Id.eq(file.id))
            .filter(files::Column::Status.eq(FileStatus::Pending))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The caller's unfinished sessions, newest first.
    pub async fn list(&self, owner: Uuid) -> Result<Vec<SessionView>, UploadError> {
        let sessions = upload_sessions::Entity::find()
            .filter(upload_sessions::Column::OwnerId.eq(owner))
            .filter(upload_sessions::Column::State.eq(UploadState::Active))
            .order_by_desc(upload_sessions::Column::Id)
            .all(&self.db)
            .await?;
        self.shown(sessions).await
    }

    /// One of the caller's sessions, of any kind and state.
    pub async fn get(&self, owner: Uuid, id: Uuid) -> Result<SessionView, UploadError> {
        let session = upload_sessions::Entity::find_by_id(id)
            .filter(upload_sessions::Column::OwnerId.eq(owner))
            .one(&self.db)
            .await?
            .ok_or(UploadError::NotFound(id))?;
        let mut shown = self.shown(vec![session]).await?;
        shown.pop().ok_or(UploadError::NotFound(id))
    }

    /// Sessions as their owner sees them: an unfinished upload of a file's
    /// next revision names that file (not the upload's hidden row).
    async fn shown(
        &self,
        mut sessions: Vec<upload_sessions::Model>,
    ) -> Result<Vec<SessionView>, UploadError> {
        let revising: std::collections::HashMap<Uuid, Option<Uuid>> = files::Entity::find()
            .select_only()
            .column(files::Column::Id)
            .column(files::Column::ParentId)
            .filter(files::Column::Id.is_in(sessions.iter().map(|s| s.file_id)))
            .filter(files::Column::Kind.eq(ItemKind::Revision))
            .into_tuple::<(Uuid, Option<Uuid>)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        for s in &mut sessions {
            if let Some(Some(file)) = revising.get(&s.file_id) {
                s.file_id = *file;
            }
        }
        Ok(sessions.into_iter().map(view).collect())
    }

    async fn owned_session(
        &self,
        owner: Uuid,
        id: Uuid,
        kind: UploadKind,
    ) -> Result<(upload_sessions::Model, files::Model), UploadError> {
        let session = upload_sessions::Entity::find_by_id(id)
            .filter(upload_sessions::Column::OwnerId.eq(owner))
            .filter(upload_sessions::Column::Kind.eq(kind))
            .one(&self.db)
            .await?
            .ok_or(UploadError::NotFound(id))?;
        let file = files::Entity::find_by_id(session.file_id)
            .one(&self.db)
            .await?
            .ok_or(UploadError::NotFound(id))?;
        Ok((session, file))
    }

    async fn active_multipart(
        &self,
        owner: Uuid,
        id: Uuid,
    ) -> Result<(upload_sessions::Model, files::Model, PartPlan), UploadError> {
        let (session, file) = self.owned_session(owner, id, UploadKind::Multipart).await?;
        match session.state {
            UploadState::Active if session.expires_at <= Utc::now() => {
                return Err(UploadError::Expired(id));
            }
            UploadState::Active => {}
            UploadState::Completed => return Err(UploadError::Completed(id)),
            UploadState::Expired | UploadState::Aborted => return Err(UploadError::Expired(id)),
        }
        let plan = view(session.clone())
            .plan
            .ok_or(UploadError::NotFound(id))?;
        Ok((session, file, plan))
    }

    async fn stored_parts(
        &self,
        session: &upload_sessions::Model,
        file: &files::Model,
    ) -> Result<Vec<StoredPart>, UploadError> {
        let store_upload = session.s3_upload_id.clone().unwrap_or_default();
        self.storage
            .list_parts(&file.object_key, &store_upload)
            .await?
            .ok_or(UploadError::Expired(session.id))
    }

    /// Records activity: the session lives `idle_expiry` from now.
    async fn touch(
        &self,
        session: &upload_sessions::Model,
        parts: Option<&[StoredPart]>,
    ) -> Result<(), UploadError> {
        let at = now();
        let mut update = upload_sessions::Entity::update_many()
            .col_expr(upload_sessions::Column::UpdatedAt, Expr::value(at))
            .col_expr(
                upload_sessions::Column::ExpiresAt,
                Expr::value(at + self.idle_expiry),
            )
            .filter(upload_sessions::Column::Id.eq(session.id))
            .filter(upload_sessions::Column::State.eq(UploadState::Active));
        if let Some(parts) = parts {
            update = update
                .col_expr(
                    upload_sessions::Column::PartsReceived,
                    Expr::value(parts.len() as i32),
                )
                .col_expr(
                    upload_sessions::Column::Offset,
                    Expr::value(parts.iter().map(|p| p.size as i64).sum::<i64>()),
                );
        }
        update.exec(&self.db).await?;
        Ok(())
    }
}

fn view(session: upload_sessions::Model) -> SessionView {
    let plan = match (session.kind, session.size, session.part_size) {
        (UploadKind::Multipart, Some(size), Some(part_size)) => {
            PartPlan::new(size as u64, Some(part_size as u64)).ok()
        }
        _ => None,
    };
    SessionView { session, plan }
}
