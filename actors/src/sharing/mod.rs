//! Sharing: shares, role changes and revocations. A revocation also
//! removes the sharee's shortcuts to the file, in the same transaction;
//! each change records `file.shared` or `file.unshared` in the outbox in
//! its own transaction.
//!
//! Plain functions, not an actor: every bit of sharing's state is in the
//! database, where concurrent changes of one file go one by one (each
//! writes the file's row first), so an actor would only forward calls.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use serde_json::json;
use stowage_entity::files::{self, FileStatus, ItemKind};
use stowage_entity::shares::{self, ShareRole};
use stowage_entity::{shortcuts, users};
use uuid::Uuid;

use crate::domain::Email;
use crate::events::{DomainEvent, EventBus, Happened, item_event};
use crate::files::{Action, FileError, Role, access_item};
use crate::time::now;

/// Share a file with the account behind `email`, or change its role.
pub struct Share {
    pub caller: Uuid,
    pub file_id: Uuid,
    /// A file, or a folder (its role flows to everything below it).
    pub kind: ItemKind,
    pub email: String,
    pub role: ShareRole,
}

/// What a share did.
#[derive(Debug, Clone)]
pub struct ShareOutcome {
    pub share: shares::Model,
    pub user: users::Model,
    /// A new share (201) rather than a changed or unchanged one (200).
    pub created: bool,
}

/// End a share: by the file's owner, or by the sharee leaving.
pub struct Revoke {
    pub caller: Uuid,
    pub file_id: Uuid,
    /// A file, or a folder (its role flows to everything below it).
    pub kind: ItemKind,
    pub user_id: Uuid,
}

/// The shares of a file, for its owner.
pub struct ListShares {
    pub caller: Uuid,
    pub file_id: Uuid,
    /// A file, or a folder (its role flows to everything below it).
    pub kind: ItemKind,
}

#[derive(Clone)]
pub struct Sharing {
    db: DatabaseConnection,
    bus: EventBus,
}

impl Sharing {
    pub fn new(db: DatabaseConnection, bus: EventBus) -> Self {
        Self { db, bus }
    }

    pub async fn share(&self, msg: Share) -> Result<ShareOutcome, FileError> {
        let (db, bus) = (self.db.clone(), self.bus.clone());
        let view = access_item(&db, msg.caller, msg.file_id, msg.kind).await?;
        view.require(Action::ManageShares)?;
        if view.file.status != FileStatus::Available {
            return Err(FileError::Pending);
        }
        let user = users::Entity::find()
            .filter(users::Column::EmailKey.eq(Email::key_of(&msg.email)))
            .one(&db)
            .await?
            .ok_or_else(|| FileError::UserNotFound(msg.email.trim().to_owned()))?;
        if user.id == view.file.owner_id {
            return Err(FileError::ShareWithOwner);
        }
        let at = now();
        let txn = db.begin().await?;
        // Write first: SQLite's write lock is taken up front (a read
        // that later writes fails at once when another write came in
        // between), and concurrent shares of one file go one by one.
        files::Entity::update_many()
            .col_expr(
                files::Column::UpdatedAt,
                Expr::col(files::Column::UpdatedAt),
            )
            .filter(files::Column::Id.eq(msg.file_id))
            .exec(&txn)
            .await?;
        let existing = shares::Entity::find_by_id((msg.file_id, user.id))
            .one(&txn)
            .await?;
        let previous = existing.as_ref().map(|s| s.role);
        let (share, created) = match existing {
            None => {
                let share = shares::ActiveModel {
                    file_id: Set(msg.file_id),
                    user_id: Set(user.id),
                    role: Set(msg.role),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(&txn)
                .await;
                match share {
                    Ok(s) => (s, true),
                    // Shared concurrently: the row that won (and its
                    // event) stand; this transaction is over.
                    Err(e)
                        if matches!(
                            e.sql_err(),
                            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                        ) =>
                    {
                        drop(txn);
                        let share = shares::Entity::find_by_id((msg.file_id, user.id))
                            .one(&db)
                            .await?
                            .ok_or(FileError::Conflict)?;
                        return Ok(ShareOutcome {
                            share,
                            user,
                            created: false,
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(s) if s.role == msg.role => (s, false),
            Some(s) => {
                let mut active: shares::ActiveModel = s.into();
                active.role = Set(msg.role);
                active.updated_at = Set(at);
                (active.update(&txn).await?, false)
            }
        };
        if previous != Some(share.role) {
            let role = Role::from(share.role).as_str();
            let event = DomainEvent::new(
                item_event(msg.kind, Happened::Shared),
                msg.file_id,
                view.file.owner_id,
                Some(msg.caller),
                json!({
                    "user_id": user.id,
                    "role": role,
                    "previous_role": previous.map(|r| Role::from(r).as_str()),
                }),
            );
            crate::outbox::record(&txn, &[event]).await?;
        }
        txn.commit().await?;
        bus.outbox_written();
        Ok(ShareOutcome {
            share,
            user,
            created,
        })
    }

    pub async fn revoke(&self, msg: Revoke) -> Result<(), FileError> {
        let (db, bus) = (self.db.clone(), self.bus.clone());
        let view = access_item(&db, msg.caller, msg.file_id, msg.kind).await?;
        let leaving = msg.user_id == msg.caller && view.role != Role::Owner;
        if !leaving {
            view.require(Action::ManageShares)?;
        }
        let txn = db.begin().await?;
        let removed = shares::Entity::delete_by_id((msg.file_id, msg.user_id))
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            return Err(FileError::ShareNotFound(msg.user_id));
        }
        shortcuts::Entity::delete_many()
            .filter(shortcuts::Column::FileId.eq(msg.file_id))
            .filter(shortcuts::Column::UserId.eq(msg.user_id))
            .exec(&txn)
            .await?;
        let event = DomainEvent::new(
            item_event(msg.kind, Happened::Unshared),
            msg.file_id,
            view.file.owner_id,
            Some(msg.caller),
            json!({"user_id": msg.user_id}),
        );
        crate::outbox::record(&txn, &[event]).await?;
        txn.commit().await?;
        bus.outbox_written();
        Ok(())
    }

    pub async fn list(
        &self,
        msg: ListShares,
    ) -> Result<Vec<(shares::Model, users::Model)>, FileError> {
        let db = self.db.clone();
        let view = access_item(&db, msg.caller, msg.file_id, msg.kind).await?;
        view.require(Action::ManageShares)?;
        let rows = shares::Entity::find()
            .filter(shares::Column::FileId.eq(msg.file_id))
            .find_also_related(users::Entity)
            .all(&db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(share, user)| Some((share, user?)))
            .collect())
    }
}
