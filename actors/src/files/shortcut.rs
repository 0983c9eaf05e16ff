//! Shortcuts: a user's pointer to a file they can see (one per file).

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, SqlErr};
use stowage_entity::shortcuts;
use uuid::Uuid;

use super::{Action, FileError, FileView, Files};
use crate::time::now;

impl Files {
    /// A shortcut to a file the caller can see; one per file.
    pub async fn add_shortcut(&self, caller: Uuid, file_id: Uuid) -> Result<FileView, FileError> {
        let mut view = self.access(caller, file_id).await?;
        view.require(Action::AddShortcut)?;
        let shortcut = shortcuts::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(caller),
            file_id: Set(file_id),
            created_at: Set(now()),
        };
        match shortcut.insert(&self.db).await {
            Ok(s) => {
                view.shortcut_id = Some(s.id);
                Ok(view)
            }
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(FileError::ShortcutExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes one of the caller's shortcuts.
    pub async fn remove_shortcut(&self, caller: Uuid, shortcut_id: Uuid) -> Result<(), FileError> {
        let removed = shortcuts::Entity::delete_many()
            .filter(shortcuts::Column::Id.eq(shortcut_id))
            .filter(shortcuts::Column::UserId.eq(caller))
            .exec(&self.db)
            .await?;
        if removed.rows_affected == 0 {
            return Err(FileError::ShortcutNotFound(shortcut_id));
        }
        Ok(())
    }
}
