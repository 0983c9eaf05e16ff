//! Who may see a file and what each role may do with it: one table.
//!
//! A stranger never learns a file exists: every route answers 404. A caller
//! who can see the file but may not do what they asked gets 403. Pending
//! files are visible to their owner only.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use stowage_entity::files::{self, FileStatus, ItemKind};
use stowage_entity::shares::ShareRole;
use stowage_entity::upload_sessions;
use uuid::Uuid;

use super::FileError;
use super::tree::inherited_role;

/// The caller's role on a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Editor,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    fn column(self) -> usize {
        match self {
            Role::Owner => 0,
            Role::Editor => 1,
            Role::Viewer => 2,
        }
    }

    /// Whether this role may do `action`.
    pub fn may(self, action: Action) -> bool {
        PERMISSIONS
            .iter()
            .find(|(a, _)| *a == action)
            .is_some_and(|(_, allowed)| allowed[self.column()])
    }
}

impl From<ShareRole> for Role {
    fn from(r: ShareRole) -> Self {
        match r {
            ShareRole::Editor => Role::Editor,
            ShareRole::Viewer => Role::Viewer,
        }
    }
}

/// Everything a caller can ask of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Download,
    AddShortcut,
    Rename,
    /// Move into another folder of the same owner.
    Move,
    /// Create folders and upload files inside a folder.
    AddChildren,
    ChangeVisibility,
    SetExpiry,
    Delete,
    ConfirmUpload,
    ManageShares,
    /// Restore an earlier revision as the current one.
    Revise,
    /// Delete an earlier revision for good.
    DeleteRevision,
}

/// The permission table.
pub const PERMISSIONS: &[(Action, [bool; 3])] = &[
    //                          owner  editor viewer
    (Action::Read, /*        */ [true, true, true]),
    (Action::Download, /*    */ [true, true, true]),
    (Action::AddShortcut, /* */ [true, true, true]),
    (Action::Rename, /*      */ [true, true, false]),
    (Action::Move, /*        */ [true, true, false]),
    (Action::AddChildren, /* */ [true, true, false]),
    (Action::ChangeVisibility, [true, false, false]),
    (Action::SetExpiry, /*   */ [true, false, false]),
    (Action::Delete, /*      */ [true, false, false]),
    (Action::ConfirmUpload, /**/ [true, false, false]),
    (Action::ManageShares, /**/ [true, false, false]),
    (Action::Revise, /*      */ [true, true, false]),
    (Action::DeleteRevision, [true, false, false]),
];

impl Action {
    /// For the 403's detail: what the action is, and who may do it.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Action::Read | Action::Download | Action::AddShortcut => {
                ("anyone it is shared with", "read it")
            }
            Action::Rename => ("owner or an editor", "rename it"),
            Action::Move => ("owner or an editor", "move it"),
            Action::AddChildren => ("owner or an editor", "add to it"),
            Action::ChangeVisibility => ("owner", "change its visibility"),
            Action::SetExpiry => ("owner", "change its expiry"),
            Action::Delete => ("owner", "delete or restore it"),
            Action::ConfirmUpload => ("owner", "confirm its upload"),
            Action::ManageShares => ("owner", "share it or see its shares"),
            Action::Revise => ("owner or an editor", "restore its revisions"),
            Action::DeleteRevision => ("owner", "delete its revisions"),
        }
    }
}

/// A file as one caller sees it.
#[derive(Debug, Clone)]
pub struct FileView {
    pub file: files::Model,
    pub role: Role,
    /// In the `shortcuts` view: the caller's shortcut to it.
    pub shortcut_id: Option<Uuid>,
}

impl FileView {
    pub fn new(file: files::Model, role: Role) -> Self {
        Self {
            file,
            role,
            shortcut_id: None,
        }
    }

    /// `Ok` if the caller's role allows `action`, else 403.
    pub fn require(&self, action: Action) -> Result<(), FileError> {
        if self.role.may(action) {
            return Ok(());
        }
        let (needed, action) = action.describe();
        Err(FileError::Forbidden { needed, action })
    }
}

/// The caller's view of a live file: owner, sharee (of an available file,
/// shared directly or through a folder above it), or `NotFound` for
/// everyone else.
pub(crate) async fn access(
    db: &impl ConnectionTrait,
    caller: Uuid,
    id: Uuid,
) -> Result<FileView, FileError> {
    access_item(db, caller, id, ItemKind::File).await
}

/// The caller's view of a live file or folder (`kind`); its role is the
/// highest of its own share and those of the folders above it.
pub(crate) async fn access_item(
    db: &impl ConnectionTrait,
    caller: Uuid,
    id: Uuid,
    kind: ItemKind,
) -> Result<FileView, FileError> {
    let not_found = || match kind {
        ItemKind::Folder => FileError::FolderNotFound(id),
        ItemKind::File | ItemKind::Revision => FileError::NotFound(id),
    };
    let file = files::Entity::find_by_id(id)
        .filter(files::Column::DeletedAt.is_null())
        .filter(files::Column::Kind.eq(kind))
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    if file.owner_id == caller {
        return Ok(FileView::new(file, Role::Owner));
    }
    if file.status != FileStatus::Available {
        // Pending files are their owner's, and their uploader's: an editor
        // uploading into a folder shared with them (it is the owner's file).
        let uploader = upload_sessions::Entity::find()
            .filter(upload_sessions::Column::FileId.eq(id))
            .filter(upload_sessions::Column::OwnerId.eq(caller))
            .one(db)
            .await?;
        return match uploader {
            Some(_) => Ok(FileView::new(file, Role::Editor)),
            None => Err(not_found()),
        };
    }
    match inherited_role(db, caller, id).await? {
        Some(role) => Ok(FileView::new(file, role)),
        None => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_row_and_owners_may_do_everything() {
        for (i, (action, allowed)) in PERMISSIONS.iter().enumerate() {
            assert!(allowed[0], "{action:?}");
            assert!(
                !PERMISSIONS[i + 1..].iter().any(|(a, _)| a == action),
                "{action:?} twice"
            );
        }
        assert!(Role::Editor.may(Action::Rename));
        assert!(!Role::Viewer.may(Action::Rename));
        assert!(!Role::Editor.may(Action::Delete));
    }
}
