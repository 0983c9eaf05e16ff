//! Changes to a file or folder: rename, visibility, expiry and moves
//! (guarded by the item's version), trash and restore. A folder goes to
//! the trash with everything below it, as one unit, and comes back the
//! same way.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, SqlErr, TransactionTrait};
use serde_json::json;
use stowage_entity::files::{self, FileStatus, ItemKind, Visibility};
use uuid::Uuid;

use super::access::access_item;
use super::tree::{is_within, lock_tree, trash};
use super::{Action, FileError, FilePatch, FileView, Files, Role, public_token};
use crate::domain::ValidationError;
use crate::events::{DomainEvent, Happened, item_event};
use crate::time::now;

impl Files {
    /// Applies a metadata change to a file, guarded by its version.
    pub async fn update(
        &self,
        caller: Uuid,
        id: Uuid,
        patch: FilePatch,
        if_match: Option<i64>,
    ) -> Result<FileView, FileError> {
        self.update_item(caller, id, ItemKind::File, patch, if_match)
            .await
    }

    /// Applies a change to a file or folder, guarded by its version.
    #[tracing::instrument(skip(self, patch), fields(item_id = %id))]
    pub async fn update_item(
        &self,
        caller: Uuid,
        id: Uuid,
        kind: ItemKind,
        patch: FilePatch,
        if_match: Option<i64>,
    ) -> Result<FileView, FileError> {
        let view = access_item(&self.db, caller, id, kind).await?;
        let file = &view.file;
        if if_match.is_some_and(|expected| expected != file.version) {
            return Err(FileError::VersionMismatch {
                current: file.version,
            });
        }
        let moving = patch.parent.filter(|p| *p != file.parent_id);
        if patch.name.is_none()
            && patch.visibility.is_none()
            && patch.expires_at.is_none()
            && moving.is_none()
        {
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
        if let Some(target) = moving {
            view.require(Action::Move)?;
            self.check_target(caller, file, target).await?;
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
        if let Some(target) = moving {
            update = update.col_expr(files::Column::ParentId, Expr::value(target));
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
        if let Some(target) = moving {
            // With the tree held, the target is checked again: it may have
            // gone to the trash, or moved below this folder, meanwhile.
            lock_tree(&txn, file.owner_id).await?;
            recheck_target(&txn, file, target).await?;
        }
        let result = match update.exec(&txn).await {
            Ok(r) => r,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                let name = patch
                    .name
                    .as_ref()
                    .map_or(file.name.as_str(), |n| n.as_str());
                return Err(FileError::NameTaken(name.to_owned()));
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
        let mut events = Vec::new();
        if let Some((old, new)) = renamed {
            events.push(DomainEvent::new(
                item_event(kind, Happened::Renamed),
                updated.id,
                updated.owner_id,
                Some(caller),
                json!({"old_name": old, "new_name": new, "version": updated.version}),
            ));
        }
        if let Some(target) = moving {
            events.push(DomainEvent::new(
                item_event(kind, Happened::Moved),
                updated.id,
                updated.owner_id,
                Some(caller),
                json!({"old_parent_id": file.parent_id, "new_parent_id": target, "version": updated.version}),
            ));
        }
        crate::outbox::record(&txn, &events).await?;
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(FileView::new(updated, view.role))
    }

    /// Whether `file` may move into `target` (`None` = its owner's root):
    /// a folder the caller may add to, of the same owner, not below itself.
    async fn check_target(
        &self,
        caller: Uuid,
        file: &files::Model,
        target: Option<Uuid>,
    ) -> Result<(), FileError> {
        let Some(target) = target else {
            // The root is its owner's alone: an editor may not empty a
            // shared folder into it.
            if caller != file.owner_id {
                return Err(FileError::Forbidden {
                    needed: "owner",
                    action: "move it to the root",
                });
            }
            return Ok(());
        };
        let folder = access_item(&self.db, caller, target, ItemKind::Folder).await?;
        if folder.file.owner_id != file.owner_id {
            return Err(FileError::CrossOwnerMove);
        }
        folder.require(Action::AddChildren)?;
        recheck_target(&self.db, file, Some(target)).await
    }

    /// Moves a file to the trash.
    pub async fn delete(&self, caller: Uuid, id: Uuid) -> Result<(), FileError> {
        self.delete_item(caller, id, ItemKind::File).await
    }

    /// Moves an item to the trash: a folder with everything below it, as
    /// one unit that leaves every view but `trash` and can be restored
    /// until `purge_at`.
    #[tracing::instrument(skip(self), fields(item_id = %id))]
    pub async fn delete_item(
        &self,
        caller: Uuid,
        id: Uuid,
        kind: ItemKind,
    ) -> Result<(), FileError> {
        let view = access_item(&self.db, caller, id, kind).await?;
        view.require(Action::Delete)?;
        let at = now();
        let purge_at = at + self.trash_retention;
        let txn = self.db.begin().await?;
        if kind == ItemKind::Folder {
            lock_tree(&txn, view.file.owner_id).await?;
        }
        let trashed = trash(&txn, id, at, purge_at).await?;
        if trashed > 0 {
            // A folder's event stands for everything that went with it.
            let event = DomainEvent::new(
                item_event(kind, Happened::Deleted),
                id,
                view.file.owner_id,
                Some(caller),
                json!({"name": view.file.name, "purge_at": purge_at, "items": trashed}),
            );
            crate::outbox::record(&txn, &[event]).await?;
        }
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(())
    }

    /// Empties the caller's trash: everything in it is past restoring at
    /// once (a restore is 404) and due for purging, which releases the
    /// objects, removes the rows (the `trash` view empties as it goes) and
    /// announces each `*.purged` as it does after retention; the caller
    /// asks the janitor to purge now ([`crate::janitor::PurgeNow`]).
    /// Returns how many items (files, folders and what is in them) were
    /// emptied.
    #[tracing::instrument(skip(self), fields(owner_id = %caller))]
    pub async fn empty_trash(&self, caller: Uuid) -> Result<u64, FileError> {
        let at = now();
        let gone = at - self.trash_retention - chrono::Duration::seconds(1);
        let emptied = files::Entity::update_many()
            .col_expr(files::Column::DeletedAt, Expr::value(gone))
            .col_expr(files::Column::PurgeAt, Expr::value(at))
            .filter(files::Column::OwnerId.eq(caller))
            .filter(files::Column::DeletedAt.is_not_null())
            // Claimed by a purge right now (its claim moved `purge_at`
            // ahead) or already due: the janitor has it.
            .filter(files::Column::PurgeAt.gt(at))
            .filter(files::Column::DeletedAt.gt(gone))
            .exec(&self.db)
            .await?;
        Ok(emptied.rows_affected)
    }

    /// Brings a file back from the trash.
    pub async fn restore(&self, caller: Uuid, id: Uuid) -> Result<FileView, FileError> {
        self.restore_item(caller, id, ItemKind::File).await
    }

    /// Brings an item back from the trash, under its old name and into its
    /// old folder, with everything that went to the trash with it.
    #[tracing::instrument(skip(self), fields(item_id = %id))]
    pub async fn restore_item(
        &self,
        caller: Uuid,
        id: Uuid,
        kind: ItemKind,
    ) -> Result<FileView, FileError> {
        let not_found = || match kind {
            ItemKind::Folder => FileError::FolderNotFound(id),
            ItemKind::File | ItemKind::Revision => FileError::NotFound(id),
        };
        let file = files::Entity::find_by_id(id)
            .filter(files::Column::OwnerId.eq(caller))
            .filter(files::Column::Kind.eq(kind))
            .one(&self.db)
            .await?
            .ok_or_else(not_found)?;
        if file.deleted_at.is_none() {
            return Err(FileError::NotDeleted);
        }
        if let Some(unit) = file.trashed_with.filter(|u| *u != id) {
            return Err(FileError::TrashedWithFolder(unit));
        }
        // Past retention: the janitor's to purge (it may be purging it right
        // now: its claim moves `purge_at`, never `deleted_at`); as good as gone.
        let restorable_since = now() - self.trash_retention;
        if file.deleted_at.is_some_and(|d| d <= restorable_since) {
            return Err(not_found());
        }
        let txn = self.db.begin().await?;
        lock_tree(&txn, caller).await?;
        if let Some(parent) = file.parent_id {
            let live = files::Entity::find_by_id(parent)
                .filter(files::Column::DeletedAt.is_null())
                .one(&txn)
                .await?;
            if live.is_none() {
                return Err(FileError::ParentGone);
            }
        }
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
                files::Column::TrashedWith,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(
                files::Column::Version,
                Expr::col(files::Column::Version).add(1),
            )
            .col_expr(files::Column::UpdatedAt, Expr::value(now()))
            .filter(
                files::Column::TrashedWith
                    .eq(id)
                    .or(files::Column::Id.eq(id)),
            )
            .filter(files::Column::DeletedAt.gt(restorable_since))
            .exec(&txn)
            .await;
        match result {
            Ok(r) if r.rows_affected >= 1 => {}
            Ok(_) => return Err(FileError::NotDeleted),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(FileError::NameTaken(file.name));
            }
            Err(e) => return Err(e.into()),
        }
        let restored = files::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(not_found)?;
        let event = DomainEvent::new(
            item_event(kind, Happened::Restored),
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
}

/// The target folder is live and, for a folder on the move, not the
/// folder itself or below it.
async fn recheck_target(
    db: &impl ConnectionTrait,
    file: &files::Model,
    target: Option<Uuid>,
) -> Result<(), FileError> {
    let Some(target) = target else {
        return Ok(());
    };
    files::Entity::find_by_id(target)
        .filter(files::Column::DeletedAt.is_null())
        .filter(files::Column::Kind.eq(ItemKind::Folder))
        .one(db)
        .await?
        .ok_or(FileError::FolderNotFound(target))?;
    if file.kind == ItemKind::Folder && is_within(db, target, file.id).await? {
        return Err(FileError::FolderCycle);
    }
    Ok(())
}
