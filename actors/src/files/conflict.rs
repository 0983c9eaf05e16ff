//! What an upload becomes when its name is taken in its folder: a failure
//! (`fail`), a file under the first free name (`rename`), or the next
//! revision of the file there (`revision`).
//!
//! A revision upload is a hidden row of `files` (`kind = 'revision'`)
//! under the file it revises, named by its own id so it takes no name in
//! any folder, with its own object and its own reservation against the
//! owner's quota. Every upload kind treats it as a pending file; when its
//! bytes are in, [`promote`] makes it the file's next revision, or, if
//! the file moved past the revision the upload was based on, a new file
//! beside it: the original's conflicted copy. Nothing is overwritten and
//! no byte of a finished upload is lost.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    Set, SqlErr, TransactionTrait,
};
use serde_json::json;
use stowage_entity::files::{self, FileStatus, ItemKind, Visibility};
use stowage_entity::{file_revisions, upload_sessions};
use uuid::Uuid;

use super::{FileError, Placement, free_name};
use crate::domain::{ContentType, FileName, ValidationError};
use crate::events::DomainEvent;
use crate::time::now;

/// What to do when the name is taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnConflict {
    #[default]
    Fail,
    Rename,
    Revision,
}

/// An upload's answer to a taken name: the rule, and for `revision` the
/// revision the client based its bytes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conflict {
    pub on: OnConflict,
    pub base: Option<i64>,
}

impl Conflict {
    /// From the request's `on_conflict` and `base_revision`.
    pub fn parse(on: Option<&str>, base: Option<i64>) -> Result<Self, ValidationError> {
        let on = match on {
            None | Some("fail") => OnConflict::Fail,
            Some("rename") => OnConflict::Rename,
            Some("revision") => OnConflict::Revision,
            Some(_) => {
                return Err(ValidationError::new(
                    "on_conflict",
                    "must be fail, rename or revision",
                ));
            }
        };
        match base {
            Some(_) if on != OnConflict::Revision => Err(ValidationError::new(
                "base_revision",
                "only applies with on_conflict: revision",
            )),
            Some(b) if b < 1 => Err(ValidationError::new(
                "base_revision",
                "must be a revision number (1 or more)",
            )),
            _ => Ok(Self { on, base }),
        }
    }

    /// `base_revision` as tus metadata carries it (text).
    pub fn parse_text(on: Option<&str>, base: Option<&str>) -> Result<Self, ValidationError> {
        let base = base
            .map(|b| {
                b.trim().parse::<i64>().map_err(|_| {
                    ValidationError::new("base_revision", "must be a revision number (1 or more)")
                })
            })
            .transpose()?;
        Self::parse(on.map(str::trim), base)
    }
}

/// Where a new upload lands.
#[derive(Debug, Clone)]
pub(crate) enum Landing {
    /// A new file under this name.
    New(FileName),
    /// The next revision of this file.
    Revision(Box<files::Model>),
}

/// Inside the new upload's transaction, with the owner's tree held: what
/// `name` in `place` means under `conflict`.
pub(crate) async fn land(
    txn: &impl ConnectionTrait,
    place: &Placement,
    name: FileName,
    conflict: Conflict,
) -> Result<Landing, FileError> {
    match conflict.on {
        OnConflict::Fail => Ok(Landing::New(name)),
        OnConflict::Rename => Ok(Landing::New(free_name(txn, place, name).await?)),
        OnConflict::Revision => {
            let mut there = files::Entity::find()
                .filter(files::Column::OwnerId.eq(place.owner))
                .filter(files::Column::Name.eq(name.as_str()))
                .filter(files::Column::DeletedAt.is_null());
            there = match place.parent {
                None => there.filter(files::Column::ParentId.is_null()),
                Some(p) => there.filter(files::Column::ParentId.eq(p)),
            };
            match there.one(txn).await? {
                None if conflict.base.is_some() => Err(FileError::RevisionConflict {
                    base: conflict.base.unwrap_or_default(),
                    current: None,
                }),
                None => Ok(Landing::New(name)),
                Some(f) if f.kind != ItemKind::File || f.status != FileStatus::Available => {
                    Err(FileError::NameTaken(name.as_str().to_owned()))
                }
                Some(f) => match conflict.base {
                    Some(base) if base != f.revision => Err(FileError::RevisionConflict {
                        base,
                        current: Some(f.revision),
                    }),
                    _ => Ok(Landing::Revision(Box::new(f))),
                },
            }
        }
    }
}

/// Inside the new upload's transaction, after [`land`]: inserts its
/// pending row (the reservation), stored at `users/<owner>/files/<id>`,
/// and returns what the uploader sees: the new file, or the file the
/// upload will revise.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_upload(
    txn: &impl ConnectionTrait,
    id: Uuid,
    place: &Placement,
    landing: Landing,
    base: Option<i64>,
    size: u64,
    content_type: &ContentType,
    sha256: Option<String>,
    at: DateTime<Utc>,
) -> Result<files::Model, FileError> {
    match landing {
        Landing::New(name) => {
            let row = super::pending_file(id, place, &name, size, content_type, sha256, at);
            super::insert_file(txn, row, name.as_str()).await
        }
        Landing::Revision(file) => {
            pending_revision(id, &file, place.by, base, size, content_type, sha256, at)
                .insert(txn)
                .await?;
            Ok(*file)
        }
    }
}

/// The hidden pending row of an upload of `file`'s next revision, its
/// object at `users/<owner>/files/<id>`.
#[allow(clippy::too_many_arguments)]
fn pending_revision(
    id: Uuid,
    file: &files::Model,
    by: Option<Uuid>,
    base: Option<i64>,
    size: u64,
    content_type: &ContentType,
    sha256: Option<String>,
    at: DateTime<Utc>,
) -> files::ActiveModel {
    let place = Placement {
        owner: file.owner_id,
        parent: Some(file.id),
        role: super::Role::Owner,
        by,
    };
    let name = FileName::parse(&id.to_string()).expect("a UUID is a valid name");
    let mut row = super::pending_file(id, &place, &name, size, content_type, sha256, at);
    row.kind = Set(ItemKind::Revision);
    row.base_revision = Set(base);
    row
}

/// What a finished revision upload became.
pub(crate) struct Promoted {
    /// The file it revised, or its conflicted copy.
    pub file: files::Model,
    pub event: DomainEvent,
}

/// Inside the transaction that made `upload` (a revision upload) available:
/// it becomes its file's next revision, unless the file is past the
/// revision it was based on (or gone), in which case it becomes a new file
/// beside it, the conflicted copy. Its sessions follow it.
pub(crate) async fn promote(
    txn: &DatabaseTransaction,
    upload: files::Model,
) -> Result<Promoted, FileError> {
    let at = now();
    let target = match upload.parent_id {
        Some(id) => lock_file(txn, id).await?,
        None => None,
    };
    let Some(file) = target
        .filter(|f| f.kind == ItemKind::File && f.status == FileStatus::Available)
        .filter(|f| upload.base_revision.is_none_or(|b| b == f.revision))
    else {
        return conflicted_copy(txn, upload, at).await;
    };
    let by = upload.uploaded_by;
    let revised = supersede(
        txn,
        &file,
        Current {
            object_key: upload.object_key.clone(),
            size: upload.size,
            sha256: upload.sha256.clone(),
            content_type: upload.content_type.clone(),
            by,
        },
        at,
    )
    .await?;
    upload_sessions::Entity::update_many()
        .col_expr(upload_sessions::Column::FileId, Expr::value(file.id))
        .filter(upload_sessions::Column::FileId.eq(upload.id))
        .exec(txn)
        .await?;
    files::Entity::delete_by_id(upload.id).exec(txn).await?;
    let event = revised_event(&revised, by, None);
    Ok(Promoted {
        file: revised,
        event,
    })
}

/// The content a file's current revision becomes.
pub(crate) struct Current {
    pub object_key: String,
    pub size: i64,
    pub sha256: Option<String>,
    pub content_type: String,
    pub by: Option<Uuid>,
}

/// With `file` held ([`lock_file`]): its current revision joins the
/// earlier ones and `next` becomes the current one.
pub(crate) async fn supersede(
    txn: &impl ConnectionTrait,
    file: &files::Model,
    next: Current,
    at: DateTime<Utc>,
) -> Result<files::Model, FileError> {
    file_revisions::ActiveModel {
        id: Set(Uuid::now_v7()),
        file_id: Set(file.id),
        owner_id: Set(file.owner_id),
        number: Set(file.revision),
        object_key: Set(file.object_key.clone()),
        size: Set(file.size),
        sha256: Set(file.sha256.clone()),
        content_type: Set(file.content_type.clone()),
        created_at: Set(file.available_at.unwrap_or(file.created_at)),
        created_by: Set(file.uploaded_by.or(Some(file.owner_id))),
    }
    .insert(txn)
    .await?;
    files::Entity::update_many()
        .col_expr(files::Column::Revision, Expr::value(file.revision + 1))
        .col_expr(files::Column::ObjectKey, Expr::value(next.object_key))
        .col_expr(files::Column::Size, Expr::value(next.size))
        .col_expr(files::Column::Sha256, Expr::value(next.sha256))
        .col_expr(files::Column::ContentType, Expr::value(next.content_type))
        .col_expr(files::Column::UploadedBy, Expr::value(next.by))
        .col_expr(
            files::Column::Version,
            Expr::col(files::Column::Version).add(1),
        )
        .col_expr(files::Column::UpdatedAt, Expr::value(at))
        .col_expr(files::Column::AvailableAt, Expr::value(at))
        .filter(files::Column::Id.eq(file.id))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or(FileError::NotFound(file.id))
}

/// Holds a file's row for the rest of the transaction (its revisions
/// change one at a time) and returns it as it is now.
pub(crate) async fn lock_file(
    txn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<files::Model>, FileError> {
    Ok(files::Entity::update_many()
        .col_expr(files::Column::Revision, Expr::col(files::Column::Revision))
        .filter(files::Column::Id.eq(id))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next())
}

/// The upload becomes a file of its own beside the one it was meant to
/// revise (at the owner's root if that one is gone or in the trash),
/// named `name (conflicted copy YYYY-MM-DD).ext`.
async fn conflicted_copy(
    txn: &DatabaseTransaction,
    upload: files::Model,
    at: DateTime<Utc>,
) -> Result<Promoted, FileError> {
    let original = match upload.parent_id {
        Some(id) => files::Entity::find_by_id(id).one(txn).await?,
        None => None,
    };
    let (parent, original_name) = match &original {
        Some(o) if o.deleted_at.is_none() => (o.parent_id, o.name.clone()),
        Some(o) => (None, o.name.clone()),
        None => (None, format!("upload-{}", upload.id)),
    };
    let place = Placement {
        owner: upload.owner_id,
        parent,
        role: super::Role::Owner,
        by: upload.uploaded_by,
    };
    let wanted = conflicted_name(&original_name, at);
    // Another item may take the name between the look and the write: the
    // unique index says so, and the next free name is tried.
    for _ in 0..5 {
        let name = free_name(txn, &place, wanted.clone()).await?;
        let attempt = txn.begin().await?;
        let updated = files::Entity::update_many()
            .col_expr(files::Column::Kind, Expr::value(ItemKind::File))
            .col_expr(files::Column::ParentId, Expr::value(parent))
            .col_expr(files::Column::Name, Expr::value(name.as_str()))
            .col_expr(files::Column::NameLower, Expr::value(name.lower()))
            .col_expr(
                files::Column::BaseRevision,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                files::Column::ConflictOf,
                Expr::value(original.as_ref().map(|o| o.id)),
            )
            .col_expr(files::Column::Visibility, Expr::value(Visibility::Private))
            .col_expr(
                files::Column::DeletedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                files::Column::PurgeAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                files::Column::TrashedWith,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(files::Column::UpdatedAt, Expr::value(at))
            .filter(files::Column::Id.eq(upload.id))
            .exec_with_returning(&attempt)
            .await;
        match updated {
            Ok(rows) => {
                attempt.commit().await?;
                let copy = rows
                    .into_iter()
                    .next()
                    .ok_or(FileError::NotFound(upload.id))?;
                let event = DomainEvent::new(
                    "file.available",
                    copy.id,
                    copy.owner_id,
                    copy.uploaded_by,
                    json!({"name": copy.name, "size": copy.size, "content_type": copy.content_type,
                           "sha256": copy.sha256, "conflict_of": copy.conflict_of}),
                );
                return Ok(Promoted { file: copy, event });
            }
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                attempt.rollback().await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(FileError::Conflict)
}

/// `report.pdf` → `report (conflicted copy 2026-12-02).pdf`, shortened to
/// fit a name's limit.
pub(crate) fn conflicted_name(original: &str, at: DateTime<Utc>) -> FileName {
    let (stem, ext) = super::folders::split_extension(original);
    let tag = format!(" (conflicted copy {})", at.format("%Y-%m-%d"));
    let mut stem: String = stem.to_owned();
    loop {
        if let Ok(name) = FileName::parse(&format!("{stem}{tag}{ext}")) {
            return name;
        }
        if stem.pop().is_none() {
            return FileName::parse(&format!("conflicted copy {}", at.format("%Y-%m-%d")))
                .expect("a short plain name is valid");
        }
    }
}

/// `file.revised`: the file's new current revision.
pub(crate) fn revised_event(
    file: &files::Model,
    by: Option<Uuid>,
    restored_from: Option<i64>,
) -> DomainEvent {
    DomainEvent::new(
        "file.revised",
        file.id,
        file.owner_id,
        by,
        json!({"name": file.name, "revision": file.revision, "size": file.size,
               "content_type": file.content_type, "sha256": file.sha256,
               "restored_from": restored_from}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_rules_parse() {
        assert_eq!(Conflict::parse(None, None).unwrap().on, OnConflict::Fail);
        assert_eq!(
            Conflict::parse(Some("revision"), Some(3)).unwrap(),
            Conflict {
                on: OnConflict::Revision,
                base: Some(3)
            }
        );
        assert!(Conflict::parse(Some("merge"), None).is_err());
        assert!(Conflict::parse(Some("rename"), Some(1)).is_err());
        assert!(Conflict::parse(Some("revision"), Some(0)).is_err());
        assert!(Conflict::parse_text(Some("revision"), Some("x")).is_err());
        assert_eq!(
            Conflict::parse_text(Some("revision"), Some(" 2 "))
                .unwrap()
                .base,
            Some(2)
        );
    }

    #[test]
    fn conflicted_copies_keep_the_extension_and_fit() {
        let at = "2026-12-02T10:00:00Z".parse().unwrap();
        assert_eq!(
            conflicted_name("report.pdf", at).as_str(),
            "report (conflicted copy 2026-12-02).pdf"
        );
        assert_eq!(
            conflicted_name(".env", at).as_str(),
            ".env (conflicted copy 2026-12-02)"
        );
        let long = format!("{}.txt", "a".repeat(250));
        let name = conflicted_name(&long, at);
        assert!(name.as_str().ends_with("(conflicted copy 2026-12-02).txt"));
        assert!(name.as_str().len() <= 255);
    }
}
