use crate::domain::ValidationError;
use crate::storage::StorageError;

/// What can go wrong with files and uploads.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such file, or the caller may not see it: one answer for both.
    #[error("file {0} does not exist")]
    NotFound(uuid::Uuid),
    /// No such folder, or the caller may not see it.
    #[error("folder {0} does not exist")]
    FolderNotFound(uuid::Uuid),
    #[error("nothing in your files is at that path")]
    PathNotFound,
    #[error("a folder cannot move into itself or a folder below it")]
    FolderCycle,
    #[error("an item can only move into a folder of its own owner")]
    CrossOwnerMove,
    #[error(
        "the folder it was in is in the trash or gone; restore that folder first, or move the item"
    )]
    ParentGone,
    #[error("it went to the trash with folder {0}; restore that folder")]
    TrashedWithFolder(uuid::Uuid),
    #[error("an item named {0:?} already exists in that folder")]
    NameTaken(String),
    #[error("{}", revision_conflict(*.base, *.current))]
    RevisionConflict { base: i64, current: Option<i64> },
    #[error("revision {0} is the file's current revision; upload or restore another one first")]
    CurrentRevision(i64),
    #[error("the file has no revision {0}")]
    RevisionNotFound(i64),
    #[error(
        "{requested} more bytes do not fit the owner's quota of {quota} bytes: {stored} are stored (the trash included) and {reserved} reserved by unfinished uploads"
    )]
    QuotaExceeded {
        requested: u64,
        stored: u64,
        reserved: u64,
        quota: u64,
    },
    #[error("{size} bytes is more than the {max} bytes allowed")]
    TooLarge { size: u64, max: u64 },
    /// The caller may see the file but not do this to it.
    #[error("only the file's {needed} may {action}")]
    Forbidden {
        needed: &'static str,
        action: &'static str,
    },
    #[error("the file's version is {current}, not the one given in If-Match")]
    VersionMismatch { current: i64 },
    #[error("the file changed while this request was being handled; retry it")]
    Conflict,
    #[error("the file is not in the trash")]
    NotDeleted,
    #[error("there is already a shortcut to this file")]
    ShortcutExists,
    #[error("shortcut {0} does not exist")]
    ShortcutNotFound(uuid::Uuid),
    #[error("no account has the email {0:?}")]
    UserNotFound(String),
    #[error("{0} is not shared with this file")]
    ShareNotFound(uuid::Uuid),
    #[error("the owner of a file cannot be given a role on it")]
    ShareWithOwner,
    #[error("the file has expired and is on its way to the trash")]
    Expired,
    #[error("the upload of this file has not finished")]
    Pending,
    #[error("no object has been uploaded for this file yet")]
    UploadIncomplete,
    #[error("the uploaded object does not match: {0}")]
    UploadMismatch(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

fn revision_conflict(base: i64, current: Option<i64>) -> String {
    match current {
        Some(c) => format!(
            "the file is at revision {c}, not {base}: fetch revision {c} and upload again with base_revision {c}, or upload without base_revision"
        ),
        None => format!(
            "no file with that name is there any more (base_revision {base} was given); upload without base_revision to create it"
        ),
    }
}

impl From<sea_orm::DbErr> for FileError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Unexpected(anyhow::Error::new(e).context("database"))
    }
}
