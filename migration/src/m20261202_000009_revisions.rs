//! Revisions: every completed upload is a revision of a file.
//!
//! - The `files` row holds the current revision (its object, size, digest,
//!   type; `revision` its number, `uploaded_by` who sent it).
//! - `file_revisions` holds the earlier ones, each a real object in the
//!   store; a restored revision shares its object with the revision it
//!   came from, so an object goes only when no row names it.
//! - An upload of a new revision is a hidden row of `files` with
//!   `kind = 'revision'`, under the file it revises (`parent_id`), named by
//!   its own id (so it takes no name in any folder), with the revision it
//!   was based on (`base_revision`). When its bytes are in, it becomes the
//!   file's next revision, or, when another revision landed first, a new
//!   file that is the original's conflicted copy (`conflict_of`).
//! - A file whose current object is not at `users/<owner>/files/<its id>`
//!   has `revision > 1`: a partial index finds those by object key.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(Clone, Copy, DeriveIden)]
enum Files {
    Table,
    Id,
    BaseRevision,
    UploadedBy,
    ConflictOf,
}

#[derive(DeriveIden)]
enum FileRevisions {
    Table,
    Id,
    FileId,
    OwnerId,
    Number,
    ObjectKey,
    Size,
    Sha256,
    ContentType,
    CreatedAt,
    CreatedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for col in [
            ColumnDef::new(Files::BaseRevision)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Files::UploadedBy).uuid().null().to_owned(),
            ColumnDef::new(Files::ConflictOf).uuid().null().to_owned(),
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
        manager
            .create_table(
                Table::create()
                    .table(FileRevisions::Table)
                    .col(
                        ColumnDef::new(FileRevisions::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(FileRevisions::FileId).uuid().not_null())
                    .col(ColumnDef::new(FileRevisions::OwnerId).uuid().not_null())
                    .col(
                        ColumnDef::new(FileRevisions::Number)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(FileRevisions::ObjectKey).string().not_null())
                    .col(ColumnDef::new(FileRevisions::Size).big_integer().not_null())
                    .col(ColumnDef::new(FileRevisions::Sha256).string().null())
                    .col(
                        ColumnDef::new(FileRevisions::ContentType)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FileRevisions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(FileRevisions::CreatedBy).uuid().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_file_revisions_file")
                            .from(FileRevisions::Table, FileRevisions::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols, unique) in [
            (
                "ux_file_revisions_number",
                vec![FileRevisions::FileId, FileRevisions::Number],
                true,
            ),
            (
                "ix_file_revisions_owner",
                vec![FileRevisions::OwnerId],
                false,
            ),
            (
                "ix_file_revisions_created",
                vec![FileRevisions::CreatedAt],
                false,
            ),
            (
                "ix_file_revisions_key",
                vec![FileRevisions::ObjectKey],
                false,
            ),
        ] {
            let mut index = Index::create()
                .name(name)
                .table(FileRevisions::Table)
                .to_owned();
            for col in cols {
                index.col(col);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index).await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_files_revised_key ON files (object_key) WHERE revision > 1",
            )
            .await?;
        Ok(())
    }
}
