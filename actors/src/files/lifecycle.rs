//! A file's life: created pending, its object verified against what was
//! declared, made available (with its `file.available` event in the same
//! transaction), served until it expires.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, Set, SqlErr, TransactionTrait,
};
use serde_json::json;
use stowage_entity::files::{self, FileStatus, ItemKind, Visibility};
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};
use uuid::Uuid;

use super::conflict::promote;
use super::{FileError, Placement};
use crate::domain::{ContentType, FileName, ObjectKey};
use crate::events::DomainEvent;
use crate::storage::{ObjectMeta, Storage};
use crate::time::now;
use crate::trace::TraceParent;

/// A new pending file in `place`, stored at `users/<owner>/files/<id>`, as
/// every kind of upload starts one.
pub(crate) fn pending_file(
    id: Uuid,
    place: &Placement,
    name: &FileName,
    size: u64,
    content_type: &ContentType,
    sha256: Option<String>,
    at: DateTime<Utc>,
) -> files::ActiveModel {
    let owner = place.owner;
    files::ActiveModel {
        id: Set(id),
        owner_id: Set(owner),
        name: Set(name.as_str().to_owned()),
        name_lower: Set(name.lower()),
        size: Set(size as i64),
        content_type: Set(content_type.as_str().to_owned()),
        sha256: Set(sha256),
        status: Set(FileStatus::Pending),
        visibility: Set(Visibility::Private),
        public_token: Set(None),
        object_key: Set(ObjectKey::new(owner, id).to_string()),
        version: Set(1),
        created_at: Set(at),
        updated_at: Set(at),
        available_at: Set(None),
        expires_at: Set(None),
        deleted_at: Set(None),
        purge_at: Set(None),
        kind: Set(ItemKind::File),
        parent_id: Set(place.parent),
        trashed_with: Set(None),
        revision: Set(1),
        base_revision: Set(None),
        uploaded_by: Set(place.by),
        conflict_of: Set(None),
    }
}

pub(crate) async fn insert_file(
    conn: &impl ConnectionTrait,
    file: files::ActiveModel,
    name: &str,
) -> Result<files::Model, FileError> {
    match file.insert(conn).await {
        Ok(f) => Ok(f),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(FileError::NameTaken(name.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Compares a stored object with what the file expects; returns the digest
/// to record (the one checked, or the one the store computed).
/// Whether the file's `expires_at` has passed: from that instant it is not
/// served, though the janitor moves it to the trash only on its next sweep.
pub(super) fn has_expired(file: &files::Model) -> bool {
    file.expires_at.is_some_and(|at| at <= Utc::now())
}

pub(crate) async fn verify_object(
    storage: &Storage,
    file: &files::Model,
    meta: &ObjectMeta,
) -> Result<Option<String>, FileError> {
    if meta.size != file.size as u64 {
        return Err(FileError::UploadMismatch(format!(
            "the object has {} bytes, the file was declared with {}",
            meta.size, file.size
        )));
    }
    let Some(expected) = &file.sha256 else {
        return Ok(meta.sha256.clone());
    };
    let actual = match &meta.sha256 {
        Some(d) => Some(d.clone()),
        None => storage.sha256(&file.object_key).await?,
    };
    match actual {
        Some(d) if &d == expected => Ok(Some(d)),
        Some(d) => Err(FileError::UploadMismatch(format!(
            "the object's sha256 is {d}, the file was declared with {expected}"
        ))),
        None => Err(FileError::UploadIncomplete),
    }
}

/// A file whose bytes have landed, for [`mark_available`].
#[derive(Debug, Clone)]
pub(crate) struct Landed {
    pub id: Uuid,
    /// The SHA-256 found while checking the bytes, to record.
    pub sha256: Option<String>,
    /// The trace its upload belongs to, when that is not the current span's
    /// (ingest handles many uploads' events at once).
    pub trace: Option<TraceParent>,
}

impl Landed {
    pub fn new(id: Uuid, sha256: Option<String>) -> Self {
        Self {
            id,
            sha256,
            trace: None,
        }
    }
}

/// Makes pending files available (with the digest to record, if any) and
/// completes their direct upload sessions, in one transaction. Files that are
/// no longer pending are left alone: only the files this call changed come
/// back, so a race between ingest and confirm announces each file once.
pub(crate) async fn mark_available(
    db: &DatabaseConnection,
    kind: UploadKind,
    landed: &[Landed],
) -> Result<Vec<files::Model>, FileError> {
    if landed.is_empty() {
        return Ok(Vec::new());
    }
    let txn = db.begin().await?;
    let changed = mark_available_in(&txn, landed, true).await?;
    txn.commit().await?;
    for f in &changed {
        crate::metrics::upload_completed(kind.as_str(), u64::try_from(f.size).unwrap_or(0));
    }
    Ok(changed)
}

/// [`mark_available`] inside the caller's transaction; counts nothing.
/// `direct_sessions`: also complete the files' direct-upload sessions (a
/// caller that finishes its own session passes `false`). A revision
/// upload comes back as what it became: its file, at its next revision,
/// or the conflicted copy ([`promote`]).
pub(crate) async fn mark_available_in(
    txn: &DatabaseTransaction,
    landed: &[Landed],
    direct_sessions: bool,
) -> Result<Vec<files::Model>, FileError> {
    let at = now();
    let mut changed = Vec::with_capacity(landed.len());
    // One statement for the files without a new digest, one per file with one.
    let plain: Vec<Uuid> = landed
        .iter()
        .filter(|l| l.sha256.is_none())
        .map(|l| l.id)
        .collect();
    let pending = |q: sea_orm::UpdateMany<files::Entity>| {
        q.col_expr(files::Column::Status, Expr::value(FileStatus::Available))
            .col_expr(
                files::Column::Version,
                Expr::col(files::Column::Version).add(1),
            )
            .col_expr(files::Column::UpdatedAt, Expr::value(at))
            .col_expr(files::Column::AvailableAt, Expr::value(at))
            .filter(files::Column::Status.eq(FileStatus::Pending))
    };
    for chunk in plain.chunks(1000) {
        changed.extend(
            pending(files::Entity::update_many())
                .filter(files::Column::Id.is_in(chunk.iter().copied()))
                .exec_with_returning(txn)
                .await?,
        );
    }
    for l in landed.iter().filter(|l| l.sha256.is_some()) {
        changed.extend(
            pending(files::Entity::update_many())
                .col_expr(files::Column::Sha256, Expr::value(l.sha256.clone()))
                .filter(files::Column::Id.eq(l.id))
                .exec_with_returning(txn)
                .await?,
        );
    }
    let ids: Vec<Uuid> = changed.iter().map(|f| f.id).collect();
    for chunk in ids.chunks(1000).filter(|_| direct_sessions) {
        upload_sessions::Entity::update_many()
            .col_expr(
                upload_sessions::Column::State,
                Expr::value(UploadState::Completed),
            )
            .col_expr(upload_sessions::Column::UpdatedAt, Expr::value(at))
            .filter(upload_sessions::Column::FileId.is_in(chunk.iter().copied()))
            .filter(upload_sessions::Column::Kind.eq(UploadKind::Direct))
            .filter(upload_sessions::Column::State.eq(UploadState::Active))
            .exec(txn)
            .await?;
    }
    let traces: HashMap<Uuid, &TraceParent> = landed
        .iter()
        .filter_map(|l| Some((l.id, l.trace.as_ref()?)))
        .collect();
    let mut events: Vec<DomainEvent> = Vec::with_capacity(changed.len());
    for row in &mut changed {
        let trace = traces.get(&row.id).copied().cloned();
        let mut event = if row.kind == ItemKind::Revision {
            let promoted = promote(txn, row.clone()).await?;
            *row = promoted.file;
            promoted.event
        } else {
            available_event(row)
        };
        if trace.is_some() {
            event.trace = trace;
        }
        events.push(event);
    }
    for chunk in events.chunks(1000) {
        crate::outbox::record(txn, chunk).await?;
    }
    Ok(changed)
}

fn available_event(file: &files::Model) -> DomainEvent {
    DomainEvent::new(
        "file.available",
        file.id,
        file.owner_id,
        None,
        json!({"name": file.name, "size": file.size, "content_type": file.content_type, "sha256": file.sha256}),
    )
}
