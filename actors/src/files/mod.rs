//! Files: direct uploads and their confirmation, reading, listing, renaming,
//! visibility, downloads and public links. Who may do what is decided here,
//! once, from the caller's role on the file; how a file becomes available
//! is [`lifecycle`]'s.

mod access;
mod downloads;
mod error;
mod lifecycle;
pub mod list;
mod shortcut;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::Condition;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, Set, SqlErr, TransactionTrait,
};
use serde_json::json;
use stowage_entity::files::{self, FileStatus, Visibility};
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};
use stowage_entity::{shares, shortcuts};
use uuid::Uuid;

pub(crate) use access::access;
pub use access::{Action, FileView, PERMISSIONS, Role};
pub use error::FileError;
use lifecycle::has_expired;
pub(crate) use lifecycle::{
    insert_file, mark_available, mark_available_in, pending_file, verify_object,
};
pub use list::{Cursor, ListQuery, Sort, View};

use crate::domain::{ContentType, FileName, ObjectKey, Sha256Hex, ValidationError};
use crate::events::{DomainEvent, EventBus};
use crate::storage::{PresignedRequest, Storage};
use crate::time::now;

/// The largest object one PUT may create (S3's limit); larger files use multipart.
pub const MAX_SINGLE_PUT: u64 = 5 << 30;
/// Lifetime of download URLs handed out by `content`, `download-url` and public links.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(300);
/// Default and bounds of a presigned upload URL's lifetime.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(3600);
pub const UPLOAD_URL_TTL_MIN: u64 = 1;
pub const UPLOAD_URL_TTL_MAX: u64 = 7 * 24 * 3600;
/// At most this many files in one batch upload request.
pub const MAX_BATCH: usize = 100;

/// A direct upload request after parsing.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub name: FileName,
    pub size: u64,
    pub content_type: ContentType,
    pub sha256: Option<Sha256Hex>,
    pub url_ttl: Duration,
}

impl NewUpload {
    /// Checks an `expires_in_seconds`.
    pub fn url_ttl(seconds: Option<u64>) -> Result<Duration, ValidationError> {
        match seconds {
            None => Ok(UPLOAD_URL_TTL),
            Some(s) if (UPLOAD_URL_TTL_MIN..=UPLOAD_URL_TTL_MAX).contains(&s) => {
                Ok(Duration::from_secs(s))
            }
            Some(_) => Err(ValidationError::new(
                "expires_in_seconds",
                format!("must be between {UPLOAD_URL_TTL_MIN} and {UPLOAD_URL_TTL_MAX}"),
            )),
        }
    }
}

/// A created file and where to PUT its bytes.
#[derive(Debug, Clone)]
pub struct DirectUpload {
    pub file: FileView,
    pub request: PresignedRequest,
}

/// A metadata change. `expires_at: Some(None)` clears the expiry.
#[derive(Debug, Clone, Default)]
pub struct FilePatch {
    pub name: Option<FileName>,
    pub visibility: Option<Visibility>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// A page of a listing.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<FileView>,
    pub next_cursor: Option<String>,
}

/// How much a user stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Clone)]
pub struct Files {
    db: DatabaseConnection,
    storage: Arc<Storage>,
    bus: EventBus,
    max_upload_size: u64,
    /// How long a deleted file stays restorable.
    trash_retention: Duration,
}

impl Files {
    pub fn new(
        db: DatabaseConnection,
        storage: Arc<Storage>,
        bus: EventBus,
        max_upload_size: u64,
        trash_retention: Duration,
    ) -> Self {
        Self {
            db,
            storage,
            bus,
            max_upload_size,
            trash_retention,
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Creates pending files and presigned PUTs for them, all or nothing.
    #[tracing::instrument(skip_all, fields(owner_id = %owner, count = uploads.len()))]
    pub async fn create_direct_uploads(
        &self,
        owner: Uuid,
        uploads: Vec<NewUpload>,
    ) -> Result<Vec<DirectUpload>, FileError> {
        let max = Ord::min(self.max_upload_size, MAX_SINGLE_PUT);
        for (i, u) in uploads.iter().enumerate() {
            if u.size > max {
                return Err(FileError::TooLarge { size: u.size, max });
            }
            if uploads[..i].iter().any(|v| v.name == u.name) {
                return Err(FileError::NameTaken(u.name.as_str().to_owned()));
            }
        }
        let at = now();
        let txn = self.db.begin().await?;
        let mut created = Vec::with_capacity(uploads.len());
        for u in uploads {
            let id = Uuid::now_v7();
            let key = ObjectKey::new(owner, id).to_string();
            let file = pending_file(
                id,
                owner,
                &u.name,
                u.size,
                &u.content_type,
                u.sha256.map(Sha256Hex::into_string),
                at,
            );
            let file = insert_file(&txn, file, u.name.as_str()).await?;
            let request = self
                .storage
                .presign_put(&key, u.size, u.content_type.as_str(), u.url_ttl)
                .await?;
            upload_sessions::ActiveModel {
                id: Set(Uuid::now_v7()),
                owner_id: Set(owner),
                file_id: Set(id),
                kind: Set(UploadKind::Direct),
                state: Set(UploadState::Active),
                size: Set(Some(u.size as i64)),
                offset: Set(0),
                parts_received: Set(0),
                part_size: Set(None),
                s3_upload_id: Set(None),
                metadata: Set(None),
                created_at: Set(at),
                updated_at: Set(at),
                expires_at: Set(request.expires_at),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
            created.push(DirectUpload {
                file: FileView::new(file, Role::Owner),
                request,
            });
        }
        txn.commit().await?;
        Ok(created)
    }

    /// Checks the stored object against the file and makes it available.
    #[tracing::instrument(skip(self), fields(file_id = %id))]
    pub async fn confirm(&self, caller: Uuid, id: Uuid) -> Result<FileView, FileError> {
        let view = self.access(caller, id).await?;
        view.require(Action::ConfirmUpload)?;
        if view.file.status == FileStatus::Available {
            return Ok(view);
        }
        let file = view.file;
        let meta = self
            .storage
            .head(&file.object_key)
            .await?
            .ok_or(FileError::UploadIncomplete)?;
        let digest = match verify_object(&self.storage, &file, &meta).await {
            Err(FileError::UploadMismatch(why)) => {
                // The wrong bytes are never served; removing them lets the
                // same URL take the right ones (it stores once per object).
                self.storage.delete(&file.object_key).await?;
                return Err(FileError::UploadMismatch(why));
            }
            other => other?,
        };
        mark_available(&self.db, UploadKind::Direct, &[(file.id, digest)]).await?;
        self.bus.outbox_written();
        Ok(FileView::new(self.load(id).await?, Role::Owner))
    }

    /// The file, if the caller may see it (pending files only to their owner).
    pub async fn get(&self, caller: Uuid, id: Uuid) -> Result<FileView, FileError> {
        self.access(caller, id).await
    }

    pub async fn list(&self, caller: Uuid, query: &ListQuery) -> Result<Page, FileError> {
        let shared_with_caller = || {
            Query::select()
                .column(shares::Column::FileId)
                .from(shares::Entity)
                .and_where(shares::Column::UserId.eq(caller))
                .to_owned()
        };
        let live = files::Entity::find().filter(files::Column::DeletedAt.is_null());
        let select = match query.view {
            View::Owned => live.filter(files::Column::OwnerId.eq(caller)),
            View::Shared => live
                .filter(files::Column::Status.eq(FileStatus::Available))
                .filter(files::Column::Id.in_subquery(shared_with_caller())),
            View::Shortcuts => live
                .filter(
                    files::Column::Id.in_subquery(
                        Query::select()
                            .column(shortcuts::Column::FileId)
                            .from(shortcuts::Entity)
                            .and_where(shortcuts::Column::UserId.eq(caller))
                            .to_owned(),
                    ),
                )
                // Only what the caller can still see.
                .filter(
                    Condition::any().add(files::Column::OwnerId.eq(caller)).add(
                        Condition::all()
                            .add(files::Column::Status.eq(FileStatus::Available))
                            .add(files::Column::Id.in_subquery(shared_with_caller())),
                    ),
                ),
            View::Trash => files::Entity::find()
                .filter(files::Column::OwnerId.eq(caller))
                .filter(files::Column::DeletedAt.is_not_null()),
        };
        let mut rows = list::apply(select, query).all(&self.db).await?;
        let more = rows.len() as u64 > query.limit;
        rows.truncate(query.limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|f| Cursor::after(query.sort, f).encode()))
            .flatten();
        // Roles and shortcut ids of the page, two queries at most.
        let ids: Vec<Uuid> = rows.iter().map(|f| f.id).collect();
        let mut roles = std::collections::HashMap::new();
        if rows.iter().any(|f| f.owner_id != caller) {
            for s in shares::Entity::find()
                .filter(shares::Column::UserId.eq(caller))
                .filter(shares::Column::FileId.is_in(ids.clone()))
                .all(&self.db)
                .await?
            {
                roles.insert(s.file_id, Role::from(s.role));
            }
        }
        let mut shortcut_ids = std::collections::HashMap::new();
        if query.view == View::Shortcuts {
            for s in shortcuts::Entity::find()
                .filter(shortcuts::Column::UserId.eq(caller))
                .filter(shortcuts::Column::FileId.is_in(ids))
                .all(&self.db)
                .await?
            {
                shortcut_ids.insert(s.file_id, s.id);
            }
        }
        let items = rows
            .into_iter()
            .map(|file| {
                let role = if file.owner_id == caller {
                    Role::Owner
                } else {
                    roles.get(&file.id).copied().unwrap_or(Role::Viewer)
                };
                let shortcut_id = shortcut_ids.get(&file.id).copied();
                let mut view = FileView::new(file, role);
                view.shortcut_id = shortcut_id;
                view
            })
            .collect();
        Ok(Page { items, next_cursor })
    }

    /// Applies a metadata change, guarded by the file's version.
    #[tracing::instrument(skip(self, patch), fields(file_id = %id))]
    pub async fn update(
        &self,
        caller: Uuid,
        id: Uuid,
        patch: FilePatch,
        if_match: Option<i64>,
    ) -> Result<FileView, FileError> {
        let view = self.access(caller, id).await?;
        let file = &view.file;
        if if_match.is_some_and(|expected| expected != file.version) {
            return Err(FileError::VersionMismatch {
                current: file.version,
            });
        }
        if patch.name.is_none() && patch.visibility.is_none() && patch.expires_at.is_none() {
            // Nothing to change: no new version.
            return Ok(view);
        }
        if patch.name.is_some() {
            view.require(Action::Rename)?;
        }
        if patch.visibility.is_some() {
            view.require(Action::ChangeVisibility)?;
        }
        if patch.expires_at.is_some() {
            view.require(Action::SetExpiry)?;
        }
        if patch.visibility == Some(Visibility::Public) && file.status != FileStatus::Available {
            return Err(FileError::Pending);
        }
        if patch
            .expires_at
            .flatten()
            .is_some_and(|at| at <= Utc::now())
        {
            return Err(ValidationError::new("expires_at", "must be in the future").into());
        }
        let renamed = patch
            .name
            .as_ref()
            .filter(|n| n.as_str() != file.name)
            .map(|n| (file.name.clone(), n.as_str().to_owned()));

        let mut update = files::Entity::update_many()
            .col_expr(
                files::Column::Version,
                Expr::col(files::Column::Version).add(1),
            )
            .col_expr(files::Column::UpdatedAt, Expr::value(now()))
            .filter(files::Column::Id.eq(id))
            .filter(files::Column::Version.eq(file.version));
        if let Some(name) = &patch.name {
            update = update
                .col_expr(files::Column::Name, Expr::value(name.as_str()))
                .col_expr(files::Column::NameLower, Expr::value(name.lower()));
        }
        match patch.visibility {
            Some(Visibility::Public) if file.visibility != Visibility::Public => {
                update = update
                    .col_expr(files::Column::Visibility, Expr::value(Visibility::Public))
                    .col_expr(files::Column::PublicToken, Expr::value(public_token()));
            }
            Some(Visibility::Private) => {
                update = update
                    .col_expr(files::Column::Visibility, Expr::value(Visibility::Private))
                    .col_expr(
                        files::Column::PublicToken,
                        Expr::value(Option::<String>::None),
                    );
            }
            _ => {}
        }
        if let Some(expires_at) = patch.expires_at {
            update = update.col_expr(files::Column::ExpiresAt, Expr::value(expires_at));
        }
        let txn = self.db.begin().await?;
        let result = match update.exec(&txn).await {
            Ok(r) => r,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                let name = patch
                    .name
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default();
                return Err(FileError::NameTaken(name));
            }
            Err(e) => return Err(e.into()),
        };
        if result.rows_affected == 0 {
            txn.rollback().await?;
            // Someone else changed it between our read and write.
            return match if_match {
                Some(_) => {
                    let current = self.load(id).await?.version;
                    Err(FileError::VersionMismatch { current })
                }
                None => Err(FileError::Conflict),
            };
        }
        let updated = files::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(FileError::NotFound(id))?;
        if let Some((old, new)) = renamed {
            let event = DomainEvent::new(
                "file.renamed",
                updated.id,
                updated.owner_id,
                Some(caller),
                json!({"old_name": old, "new_name": new, "version": updated.version}),
            );
            crate::outbox::record(&txn, &[event]).await?;
        }
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(FileView::new(updated, view.role))
    }

    /// Moves a file to the trash: it leaves every view but `trash`, and can
    /// be restored until `purge_at`.
    #[tracing::instrument(skip(self), fields(file_id = %id))]
    pub async fn delete(&self, caller: Uuid, id: Uuid) -> Result<(), FileError> {
        let view = self.access(caller, id).await?;
        view.require(Action::Delete)?;
        let at = now();
        let purge_at = at + self.trash_retention;
        let txn = self.db.begin().await?;
        let result = files::Entity::update_many()
            .col_expr(files::Column::DeletedAt, Expr::value(at))
            .col_expr(files::Column::PurgeAt, Expr::value(purge_at))
            .col_expr(
                files::Column::Version,
                Expr::col(files::Column::Version).add(1),
            )
            .col_expr(files::Column::UpdatedAt, Expr::value(at))
            .filter(files::Column::Id.eq(id))
            .filter(files::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if result.rows_affected == 1 {
            let event = DomainEvent::new(
                "file.deleted",
                id,
                view.file.owner_id,
                Some(caller),
                json!({"name": view.file.name, "purge_at": purge_at}),
            );
            crate::outbox::record(&txn, &[event]).await?;
        }
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(())
    }

    /// Brings a file back from the trash, under its old name.
    #[tracing::instrument(skip(self), fields(file_id = %id))]
    pub async fn restore(&self, caller: Uuid, id: Uuid) -> Result<FileView, FileError> {
        let file = files::Entity::find_by_id(id)
            .filter(files::Column::OwnerId.eq(caller))
            .one(&self.db)
            .await?
            .ok_or(FileError::NotFound(id))?;
        if file.deleted_at.is_none() {
            return Err(FileError::NotDeleted);
        }
        // Past retention: the janitor's to purge (it may be purging it right
        // now: its claim moves `purge_at`, never `deleted_at`); as good as gone.
        let restorable_since = now() - self.trash_retention;
        if file.deleted_at.is_some_and(|d| d <= restorable_since) {
            return Err(FileError::NotFound(id));
        }
        let txn = self.db.begin().await?;
        let result = files::Entity::update_many()
            .col_expr(
                files::Column::DeletedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                files::Column::PurgeAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                files::Column::Version,
                Expr::col(files::Column::Version).add(1),
            )
            .col_expr(files::Column::UpdatedAt, Expr::value(now()))
            .filter(files::Column::Id.eq(id))
            .filter(files::Column::DeletedAt.gt(restorable_since))
            .exec(&txn)
            .await;
        match result {
            Ok(r) if r.rows_affected == 1 => {}
            Ok(_) => return Err(FileError::NotDeleted),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(FileError::NameTaken(file.name));
            }
            Err(e) => return Err(e.into()),
        }
        let restored = files::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(FileError::NotFound(id))?;
        let event = DomainEvent::new(
            "file.restored",
            id,
            restored.owner_id,
            Some(caller),
            json!({"name": restored.name}),
        );
        crate::outbox::record(&txn, &[event]).await?;
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(FileView::new(restored, Role::Owner))
    }

    /// Live, available files the user owns, and their bytes.
    pub async fn usage(&self, owner: Uuid) -> Result<Usage, FileError> {
        #[derive(FromQueryResult)]
        struct Row {
            files: i64,
            bytes: Option<i64>,
        }
        let row = files::Entity::find()
            .select_only()
            .column_as(files::Column::Id.count(), "files")
            // PostgreSQL sums bigints as numeric: bring it back to bigint.
            .column_as(files::Column::Size.sum().cast_as("BIGINT"), "bytes")
            .filter(files::Column::OwnerId.eq(owner))
            .filter(files::Column::DeletedAt.is_null())
            .filter(files::Column::Status.eq(FileStatus::Available))
            .into_model::<Row>()
            .one(&self.db)
            .await?;
        Ok(row.map_or_else(Usage::default, |r| Usage {
            files: u64::try_from(r.files).unwrap_or(0),
            bytes: u64::try_from(r.bytes.unwrap_or(0)).unwrap_or(0),
        }))
    }

    /// The caller's view of a live file; `NotFound` for anyone who may not see it.
    async fn access(&self, caller: Uuid, id: Uuid) -> Result<FileView, FileError> {
        access(&self.db, caller, id).await
    }

    async fn load(&self, id: Uuid) -> Result<files::Model, FileError> {
        files::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(FileError::NotFound(id))
    }
}

/// An unguessable token for a public link.
fn public_token() -> String {
    use base64::Engine;
    let mut raw = [0u8; 24];
    rand::fill(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}
