//! Quotas that hold even when the bytes never pass through the server.
//!
//! A pending file is a reservation: it is created with its declared size
//! when an upload starts, becomes the stored file (or a file's next
//! revision) when the upload completes, and goes when it is aborted or
//! expires. So what an owner uses is one sum over their file rows
//! (pending, live and in the trash) and one over their files' earlier
//! revisions, and a reservation is checked against the quota with the owner's row
//! held ([`lock_tree`]): concurrent uploads, on any number of instances,
//! take turns and never reserve past it.

use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
};
use stowage_entity::files::{self, FileStatus, ItemKind};
use stowage_entity::{file_revisions, users};
use uuid::Uuid;

use super::FileError;
use super::tree::lock_tree;

/// What an owner's files take: stored bytes (every revision, live and in
/// the trash) and bytes reserved by unfinished uploads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    pub stored: u64,
    pub reserved: u64,
}

impl Taken {
    pub fn total(self) -> u64 {
        self.stored + self.reserved
    }
}

/// The bytes `owner`'s files take.
pub(crate) async fn taken(db: &impl ConnectionTrait, owner: Uuid) -> Result<Taken, FileError> {
    #[derive(FromQueryResult)]
    struct Row {
        status: FileStatus,
        bytes: Option<i64>,
    }
    let rows = files::Entity::find()
        .select_only()
        .column(files::Column::Status)
        // PostgreSQL sums bigints as numeric: bring it back to bigint.
        .column_as(files::Column::Size.sum().cast_as("BIGINT"), "bytes")
        .filter(files::Column::OwnerId.eq(owner))
        .filter(files::Column::Kind.ne(ItemKind::Folder))
        .group_by(files::Column::Status)
        .into_model::<Row>()
        .all(db)
        .await?;
    let earlier: Option<i64> = file_revisions::Entity::find()
        .select_only()
        .column_as(
            file_revisions::Column::Size.sum().cast_as("BIGINT"),
            "bytes",
        )
        .filter(file_revisions::Column::OwnerId.eq(owner))
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    let mut taken = Taken {
        stored: u64::try_from(earlier.unwrap_or(0)).unwrap_or(0),
        reserved: 0,
    };
    for r in rows {
        let bytes = u64::try_from(r.bytes.unwrap_or(0)).unwrap_or(0);
        match r.status {
            FileStatus::Available => taken.stored += bytes,
            FileStatus::Pending => taken.reserved += bytes,
        }
    }
    Ok(taken)
}

/// Inside a new upload's transaction: holds `owner`'s tree and checks that
/// `bytes` more fit their quota; the pending file inserted next is the
/// reservation. `kind` labels a refusal in `stowage_quota_rejections_total`.
pub(crate) async fn reserve(
    txn: &impl ConnectionTrait,
    owner: Uuid,
    bytes: u64,
    kind: &'static str,
) -> Result<(), FileError> {
    let Some(quota) = lock_tree(txn, owner).await? else {
        return Ok(());
    };
    if bytes == 0 {
        return Ok(());
    }
    let taken = taken(txn, owner).await?;
    check(taken, bytes, quota, kind)
}

/// What is left of a quota.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub left: u64,
    pub taken: Taken,
    pub quota: u64,
}

/// How many more bytes `owner` may store, if they have a quota; read
/// without holding anything (for an upload whose length is not known yet).
pub(crate) async fn room(
    db: &impl ConnectionTrait,
    owner: Uuid,
) -> Result<Option<Room>, FileError> {
    let quota = users::Entity::find_by_id(owner)
        .select_only()
        .column(users::Column::QuotaBytes)
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    let Some(quota) = quota else {
        return Ok(None);
    };
    let quota = u64::try_from(quota).unwrap_or(0);
    let taken = taken(db, owner).await?;
    Ok(Some(Room {
        left: quota.saturating_sub(taken.total()),
        taken,
        quota,
    }))
}

/// `Ok` if `bytes` more fit; else counts the refusal and says why.
pub(crate) fn check(
    taken: Taken,
    bytes: u64,
    quota: i64,
    kind: &'static str,
) -> Result<(), FileError> {
    let quota = u64::try_from(quota).unwrap_or(0);
    if taken.total().saturating_add(bytes) <= quota {
        return Ok(());
    }
    refused(kind);
    Err(FileError::QuotaExceeded {
        requested: bytes,
        stored: taken.stored,
        reserved: taken.reserved,
        quota,
    })
}

/// Counts one upload refused for its owner's quota.
pub(crate) fn refused(kind: &'static str) {
    metrics::counter!(crate::metrics::QUOTA_REJECTIONS_TOTAL, "kind" => kind).increment(1);
}
