//! Files: direct uploads and their confirmation, reading, listing, renaming,
//! visibility, downloads and public links. Who may do what is decided here,
//! once, from the caller's role on the file; how a file becomes available
//! is [`lifecycle`]'s.

mod access;
mod changes;
mod conflict;
mod downloads;
mod error;
mod folders;
mod lifecycle;
pub mod list;
mod quota;
mod revisions;
mod shortcut;
mod tree;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::Condition;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Set, TransactionTrait,
};
use stowage_entity::files::{self, FileStatus, ItemKind, Visibility};
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};
use stowage_entity::{shares, shortcuts};
use uuid::Uuid;

pub use access::{Action, FileView, PERMISSIONS, Role};
pub(crate) use access::{access, access_item};
pub use conflict::{Conflict, OnConflict};
pub(crate) use conflict::{insert_upload, land};
pub use error::FileError;
pub use folders::{FOLDER_TYPE, MAX_PATH_SEGMENTS, NewFolder, Placement, parse_path};
pub(crate) use folders::{enter, free_name, placement};
use lifecycle::has_expired;
pub(crate) use lifecycle::{
    Landed, insert_file, mark_available, mark_available_in, pending_file, verify_object,
};
pub use list::{Cursor, ListQuery, Sort, View};
pub use quota::{Room, Taken};
pub(crate) use quota::{refused as quota_refused, reserve, room};
pub use revisions::{Retention, Revision};
pub(crate) use revisions::{discard, named_keys, objects_of, past_retention};
pub(crate) use tree::is_within as is_below;

use crate::domain::{ContentType, FileName, ObjectKey, Sha256Hex, ValidationError};
use crate::events::EventBus;
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
    /// The folder to put it in; `None` is the caller's root.
    pub parent: Option<Uuid>,
    /// What happens if the name is taken there.
    pub conflict: Conflict,
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

/// A metadata change. `expires_at: Some(None)` clears the expiry;
/// `parent: Some(None)` moves the item to its owner's root.
#[derive(Debug, Clone, Default)]
pub struct FilePatch {
    pub name: Option<FileName>,
    pub visibility: Option<Visibility>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub parent: Option<Option<Uuid>>,
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
    /// Live, available files.
    pub files: u64,
    /// Stored bytes, the trash included.
    pub bytes: u64,
    /// Bytes reserved by unfinished uploads.
    pub reserved_bytes: u64,
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
    #[tracing::instrument(skip_all, fields(owner_id = %caller, count = uploads.len()))]
    pub async fn create_direct_uploads(
        &self,
        caller: Uuid,
        uploads: Vec<NewUpload>,
    ) -> Result<Vec<DirectUpload>, FileError> {
        let max = Ord::min(self.max_upload_size, MAX_SINGLE_PUT);
        for (i, u) in uploads.iter().enumerate() {
            if u.size > max {
                return Err(FileError::TooLarge { size: u.size, max });
            }
            let both_fail = |v: &NewUpload| {
                v.conflict.on == OnConflict::Fail && u.conflict.on == OnConflict::Fail
            };
            if uploads[..i]
                .iter()
                .any(|v| v.name == u.name && v.parent == u.parent && both_fail(v))
            {
                return Err(FileError::NameTaken(u.name.as_str().to_owned()));
            }
        }
        // Where each goes, checked once per folder; entered in owner order,
        // so two batches never wait on each other's trees.
        let mut places: Vec<Placement> = Vec::new();
        for u in &uploads {
            if !places.iter().any(|p| p.parent == u.parent) {
                places.push(placement(&self.db, caller, u.parent).await?);
            }
        }
        places.sort_by_key(|p| (p.owner, p.parent));
        let at = now();
        let txn = self.db.begin().await?;
        // Each owner's bytes are reserved at once, owners in order.
        let mut owners: Vec<Uuid> = places.iter().map(|p| p.owner).collect();
        owners.dedup();
        for owner in owners {
            let bytes = uploads
                .iter()
                .filter(|u| {
                    places
                        .iter()
                        .any(|p| p.parent == u.parent && p.owner == owner)
                })
                .map(|u| u.size)
                .sum();
            reserve(&txn, owner, bytes, "direct").await?;
        }
        for place in &places {
            enter(&txn, place).await?;
        }
        let mut created = Vec::with_capacity(uploads.len());
        for u in uploads {
            let Some(place) = places.iter().find(|p| p.parent == u.parent) else {
                return Err(FileError::FolderNotFound(u.parent.unwrap_or_default()));
            };
            let id = Uuid::now_v7();
            let key = ObjectKey::new(place.owner, id).to_string();
            let landing = land(&txn, place, u.name.clone(), u.conflict).await?;
            let inserted = insert_upload(
                &txn,
                id,
                place,
                landing,
                u.conflict.base,
                u.size,
                &u.content_type,
                u.sha256.map(Sha256Hex::into_string),
                at,
            )
            .await?;
            let request = self
                .storage
                .presign_put(&key, u.size, u.content_type.as_str(), u.url_ttl)
                .await?;
            upload_sessions::ActiveModel {
                id: Set(Uuid::now_v7()),
                owner_id: Set(caller),
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
                file: FileView::new(inserted, place.role),
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
        if view.file.status == FileStatus::Available {
            // The caller's direct uploads of this file's next revision.
            let uploads = files::Entity::find()
                .filter(files::Column::ParentId.eq(id))
                .filter(files::Column::Kind.eq(ItemKind::Revision))
                .filter(files::Column::Status.eq(FileStatus::Pending))
                .filter(files::Column::UploadedBy.eq(caller))
                .filter(files::Column::DeletedAt.is_null())
                .all(&self.db)
                .await?;
            if !uploads.is_empty() {
                return self.confirm_revisions(view, uploads).await;
            }
            // Its uploader confirming once more, or after the ingest did
            // (read again: a revision of theirs may have landed meanwhile).
            let file = self.load(id).await?;
            if file.uploaded_by == Some(caller) {
                return Ok(FileView::new(file, view.role));
            }
        }
        // Anyone else who sees a pending file is its uploader.
        if view.file.status == FileStatus::Available || view.role != Role::Editor {
            view.require(Action::ConfirmUpload)?;
        }
        if view.file.status == FileStatus::Available {
            return Ok(view);
        }
        let (file, role) = (view.file, view.role);
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
        mark_available(
            &self.db,
            UploadKind::Direct,
            &[Landed::new(file.id, digest)],
        )
        .await?;
        self.bus.outbox_written();
        Ok(FileView::new(self.load(id).await?, role))
    }

    /// Checks the stored objects of revision uploads and lets them land:
    /// what the last one became comes back (the file, or a conflicted copy).
    async fn confirm_revisions(
        &self,
        view: FileView,
        uploads: Vec<files::Model>,
    ) -> Result<FileView, FileError> {
        let mut ready = Vec::with_capacity(uploads.len());
        for upload in &uploads {
            let Some(meta) = self.storage.head(&upload.object_key).await? else {
                continue;
            };
            match verify_object(&self.storage, upload, &meta).await {
                Err(FileError::UploadMismatch(why)) => {
                    self.storage.delete(&upload.object_key).await?;
                    return Err(FileError::UploadMismatch(why));
                }
                other => ready.push(Landed::new(upload.id, other?)),
            }
        }
        if ready.is_empty() {
            return Err(FileError::UploadIncomplete);
        }
        let landed = mark_available(&self.db, UploadKind::Direct, &ready).await?;
        self.bus.outbox_written();
        Ok(match landed.into_iter().last() {
            Some(file) => FileView::new(file, view.role),
            None => FileView::new(self.load(view.file.id).await?, view.role),
        })
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
            // Flat: every live file, whatever folder it is in.
            View::Owned => live
                .filter(files::Column::OwnerId.eq(caller))
                .filter(files::Column::Kind.eq(ItemKind::File)),
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
                // Only what the caller can still see: theirs, or available
                // (whether a share reaches it, directly or through a
                // folder, is checked for the page's rows below).
                .filter(
                    Condition::any()
                        .add(files::Column::OwnerId.eq(caller))
                        .add(files::Column::Status.eq(FileStatus::Available)),
                ),
            // What was deleted as a unit: a folder once, not its contents.
            View::Trash => files::Entity::find()
                .filter(files::Column::OwnerId.eq(caller))
                .filter(files::Column::DeletedAt.is_not_null())
                .filter(
                    Expr::col(files::Column::TrashedWith)
                        .equals(files::Column::Id)
                        .or(files::Column::TrashedWith.is_null()),
                ),
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
        if query.view == View::Shortcuts {
            // A shortcut's file may be reached through a folder shared
            // with the caller (that role, then), or no longer at all (it
            // leaves the page; the cursor still goes on after it).
            let mut seen = Vec::with_capacity(rows.len());
            for file in rows {
                if file.owner_id == caller {
                    seen.push(file);
                } else if let Some(role) = tree::inherited_role(&self.db, caller, file.id).await? {
                    roles.insert(file.id, role);
                    seen.push(file);
                }
            }
            rows = seen;
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

    /// What the user stores: their live files, and the bytes that count
    /// toward their quota (stored, the trash included, and reserved).
    pub async fn usage(&self, owner: Uuid) -> Result<Usage, FileError> {
        let files = files::Entity::find()
            .filter(files::Column::OwnerId.eq(owner))
            .filter(files::Column::Kind.eq(ItemKind::File))
            .filter(files::Column::DeletedAt.is_null())
            .filter(files::Column::Status.eq(FileStatus::Available))
            .count(&self.db)
            .await?;
        let taken = quota::taken(&self.db, owner).await?;
        Ok(Usage {
            files,
            bytes: taken.stored,
            reserved_bytes: taken.reserved,
        })
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
