//! Folders: a folder is a row of `files` with `kind = 'folder'`, so files
//! and folders share one namespace per parent, enforced by one unique index.
//!
//! - `parent_id`: the folder an item is in; null is the owner's root.
//! - `trashed_with`: the item whose deletion sent this row to the trash
//!   (itself, or the folder it was deleted with); the trash lists units,
//!   and a restore brings back what went with it.
//! - `revision`: the file's current revision number.
//!
//! Existing files become the root's children.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(Clone, Copy, DeriveIden)]
enum Files {
    Table,
    Kind,
    ParentId,
    TrashedWith,
    Revision,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for col in [
            ColumnDef::new(Files::Kind)
                .string()
                .not_null()
                .default("file")
                .to_owned(),
            ColumnDef::new(Files::ParentId).uuid().null().to_owned(),
            ColumnDef::new(Files::TrashedWith).uuid().null().to_owned(),
            ColumnDef::new(Files::Revision)
                .big_integer()
                .not_null()
                .default(1)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Files::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        // Partial and expression indexes: sea-query has no builder for
        // them, and these statements read the same in both dialects. A
        // unique index treats nulls as distinct, so the root (null parent)
        // is spelled as the owner's id.
        for sql in [
            "UPDATE files SET trashed_with = id WHERE deleted_at IS NOT NULL",
            "DROP INDEX ux_files_owner_live_name",
            "CREATE UNIQUE INDEX ux_files_live_name \
             ON files (owner_id, COALESCE(parent_id, owner_id), name) WHERE deleted_at IS NULL",
            "CREATE INDEX ix_files_children_name \
             ON files (owner_id, parent_id, kind, name_lower, id) WHERE deleted_at IS NULL",
            "CREATE INDEX ix_files_children_created \
             ON files (owner_id, parent_id, kind, created_at, id) WHERE deleted_at IS NULL",
            "CREATE INDEX ix_files_children_size \
             ON files (owner_id, parent_id, kind, size, id) WHERE deleted_at IS NULL",
            "CREATE INDEX ix_files_parent ON files (parent_id) WHERE parent_id IS NOT NULL",
            "CREATE INDEX ix_files_trashed_with ON files (trashed_with) \
             WHERE trashed_with IS NOT NULL",
        ] {
            manager.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
