//! A file's revisions: the current one is the file's own row, the earlier
//! ones rows of `file_revisions`, each a real object in the store. They
//! are listed, downloaded, restored (as a new revision that shares the old
//! one's object: nothing is copied and nothing is lost) and deleted one by
//! one; the janitor keeps a bounded number for a bounded time.
//!
//! Every change to a file's revisions holds the file's row first
//! ([`lock_file`]), so a restore and a deletion of the same revision take
//! turns, and an object leaves the store only once no row names it.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use stowage_entity::file_revisions;
use stowage_entity::files::{self, FileStatus};
use uuid::Uuid;

use super::conflict::{Current, lock_file, revised_event, supersede};
use super::{Action, DOWNLOAD_URL_TTL, FileError, FileView, Files, reserve};
use crate::domain::Disposition;
use crate::storage::Storage;
use crate::time::now;

/// One revision as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub number: i64,
    pub size: i64,
    pub sha256: Option<String>,
    pub content_type: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub current: bool,
}

impl Revision {
    fn current(file: &files::Model) -> Self {
        Self {
            number: file.revision,
            size: file.size,
            sha256: file.sha256.clone(),
            content_type: file.content_type.clone(),
            created_at: file.available_at.unwrap_or(file.created_at),
            created_by: file.uploaded_by.or(Some(file.owner_id)),
            current: true,
        }
    }

    fn earlier(r: file_revisions::Model) -> Self {
        Self {
            number: r.number,
            size: r.size,
            sha256: r.sha256,
            content_type: r.content_type,
            created_at: r.created_at,
            created_by: r.created_by,
            current: false,
        }
    }
}

/// How many earlier revisions the janitor keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep: u64,
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep: 50,
            max_age: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl Files {
    /// Every revision of an available file the caller may read, newest first.
    pub async fn revisions(&self, caller: Uuid, id: Uuid) -> Result<Vec<Revision>, FileError> {
        let view = self.readable(caller, id).await?;
        let mut all = vec![Revision::current(&view.file)];
        all.extend(
            file_revisions::Entity::find()
                .filter(file_revisions::Column::FileId.eq(id))
                .order_by_desc(file_revisions::Column::Number)
                .all(&self.db)
                .await?
                .into_iter()
                .map(Revision::earlier),
        );
        Ok(all)
    }

    /// A signed URL that downloads revision `number`.
    pub async fn revision_url(
        &self,
        caller: Uuid,
        id: Uuid,
        number: i64,
        disposition: Disposition,
    ) -> Result<(String, DateTime<Utc>), FileError> {
        let view = self.readable(caller, id).await?;
        view.require(Action::Download)?;
        let file = view.file;
        if number == file.revision {
            return self.signed_download(&file, disposition).await;
        }
        let revision = earlier(&self.db, id, number).await?;
        Ok(self
            .storage
            .presign_get(
                &revision.object_key,
                DOWNLOAD_URL_TTL,
                &disposition.header_value(&file.name),
                &revision.content_type,
            )
            .await?)
    }

    /// Makes revision `number`'s content the file's next revision (its
    /// object shared, not copied; its bytes count toward the quota again).
    /// Restoring the current revision changes nothing.
    pub async fn restore_revision(
        &self,
        caller: Uuid,
        id: Uuid,
        number: i64,
    ) -> Result<FileView, FileError> {
        let view = self.readable(caller, id).await?;
        view.require(Action::Revise)?;
        if number == view.file.revision {
            return Ok(view);
        }
        let revision = earlier(&self.db, id, number).await?;
        let txn = self.db.begin().await?;
        reserve(&txn, view.file.owner_id, revision.size as u64, "restore").await?;
        let file = lock_file(&txn, id)
            .await?
            .filter(|f| f.deleted_at.is_none())
            .ok_or(FileError::NotFound(id))?;
        // It may have gone while the quota was checked.
        let revision = earlier(&txn, id, number).await?;
        let restored = supersede(
            &txn,
            &file,
            Current {
                object_key: revision.object_key,
                size: revision.size,
                sha256: revision.sha256,
                content_type: revision.content_type,
                by: Some(caller),
            },
            now(),
        )
        .await?;
        crate::outbox::record(
            &txn,
            &[revised_event(&restored, Some(caller), Some(number))],
        )
        .await?;
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(FileView::new(restored, view.role))
    }

    /// Deletes an earlier revision and, unless another revision shares
    /// it, its object. The current revision cannot go.
    pub async fn delete_revision(
        &self,
        caller: Uuid,
        id: Uuid,
        number: i64,
    ) -> Result<(), FileError> {
        let view = self.readable(caller, id).await?;
        view.require(Action::DeleteRevision)?;
        if number == view.file.revision {
            return Err(FileError::CurrentRevision(number));
        }
        let revision = earlier(&self.db, id, number).await?;
        discard(&self.db, &self.storage, vec![revision]).await?;
        Ok(())
    }

    /// A live, available file the caller may see.
    async fn readable(&self, caller: Uuid, id: Uuid) -> Result<FileView, FileError> {
        let view = self.access(caller, id).await?;
        if view.file.status != FileStatus::Available {
            return Err(FileError::Pending);
        }
        Ok(view)
    }
}

async fn earlier(
    db: &impl ConnectionTrait,
    file: Uuid,
    number: i64,
) -> Result<file_revisions::Model, FileError> {
    file_revisions::Entity::find()
        .filter(file_revisions::Column::FileId.eq(file))
        .filter(file_revisions::Column::Number.eq(number))
        .one(db)
        .await?
        .ok_or(FileError::RevisionNotFound(number))
}

/// Deletes earlier revisions: their rows in one transaction that holds
/// their files, then each object no row names any more. Returns how many
/// rows went. (An object the store would not let go is an orphan now: the
/// janitor's orphan sweep removes it.)
pub(crate) async fn discard(
    db: &DatabaseConnection,
    storage: &Storage,
    revisions: Vec<file_revisions::Model>,
) -> Result<u64, FileError> {
    if revisions.is_empty() {
        return Ok(0);
    }
    let txn = db.begin().await?;
    let mut files: Vec<Uuid> = revisions.iter().map(|r| r.file_id).collect();
    files.sort();
    files.dedup();
    for file in &files {
        lock_file(&txn, *file).await?;
    }
    let gone = file_revisions::Entity::delete_many()
        .filter(file_revisions::Column::Id.is_in(revisions.iter().map(|r| r.id)))
        .exec_with_returning(&txn)
        .await?;
    let keys: Vec<String> = gone.iter().map(|r| r.object_key.clone()).collect();
    let named = named_keys(&txn, &keys).await?;
    txn.commit().await?;
    let unnamed: Vec<String> = keys
        .into_iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .filter(|k| !named.contains(k))
        .collect();
    if !unnamed.is_empty() {
        let report = storage.delete_many(&unnamed).await?;
        if !report.failed.is_empty() {
            tracing::warn!(
                failed = report.failed.len(),
                "revision objects the store would not delete are left to the orphan sweep"
            );
        }
    }
    Ok(gone.len() as u64)
}

/// Which of `keys` a file (as its current revision, when it has been
/// revised) or an earlier revision still names.
pub(crate) async fn named_keys(
    db: &impl ConnectionTrait,
    keys: &[String],
) -> Result<HashSet<String>, FileError> {
    let mut named = HashSet::new();
    for chunk in keys.chunks(500) {
        // A file at revision 1 keeps its object at its own id: only
        // revised files can name another key (the partial index).
        named.extend(
            files::Entity::find()
                .select_only()
                .column(files::Column::ObjectKey)
                .filter(files::Column::Revision.gt(1))
                .filter(files::Column::ObjectKey.is_in(chunk.iter().cloned()))
                .into_tuple::<String>()
                .all(db)
                .await?,
        );
        named.extend(
            file_revisions::Entity::find()
                .select_only()
                .column(file_revisions::Column::ObjectKey)
                .filter(file_revisions::Column::ObjectKey.is_in(chunk.iter().cloned()))
                .into_tuple::<String>()
                .all(db)
                .await?,
        );
    }
    Ok(named)
}

/// The earlier revisions past `retention`: older than its age, or beyond
/// the newest `keep` of their file; at most `limit`.
pub(crate) async fn past_retention(
    db: &impl ConnectionTrait,
    retention: Retention,
    limit: u64,
) -> Result<Vec<file_revisions::Model>, FileError> {
    let cutoff =
        now() - chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
    let mut due = file_revisions::Entity::find()
        .filter(file_revisions::Column::CreatedAt.lt(cutoff))
        .limit(limit)
        .all(db)
        .await?;
    let room = limit.saturating_sub(due.len() as u64);
    if room == 0 {
        return Ok(due);
    }
    // Files with more than `keep` earlier revisions, then each one's extras.
    let crowded: Vec<Uuid> = file_revisions::Entity::find()
        .select_only()
        .column(file_revisions::Column::FileId)
        .group_by(file_revisions::Column::FileId)
        .having(
            Expr::col(file_revisions::Column::Id)
                .count()
                .gt(retention.keep as i64),
        )
        .limit(100)
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    let seen: HashSet<Uuid> = due.iter().map(|r| r.id).collect();
    for file in crowded {
        let extras = file_revisions::Entity::find()
            .filter(file_revisions::Column::FileId.eq(file))
            .order_by_desc(file_revisions::Column::Number)
            .offset(retention.keep)
            .limit(room)
            .all(db)
            .await?;
        due.extend(extras.into_iter().filter(|r| !seen.contains(&r.id)));
        if due.len() as u64 >= limit {
            break;
        }
    }
    due.truncate(limit as usize);
    Ok(due)
}

/// The earlier revisions' objects of files about to be purged.
pub(crate) async fn objects_of(
    db: &impl ConnectionTrait,
    files: &[Uuid],
) -> Result<Vec<(Uuid, String)>, FileError> {
    let mut all = Vec::new();
    for chunk in files.chunks(1000) {
        all.extend(
            file_revisions::Entity::find()
                .select_only()
                .column(file_revisions::Column::FileId)
                .column(file_revisions::Column::ObjectKey)
                .filter(file_revisions::Column::FileId.is_in(chunk.iter().copied()))
                .into_tuple::<(Uuid, String)>()
                .all(db)
                .await?,
        );
    }
    Ok(all)
}
