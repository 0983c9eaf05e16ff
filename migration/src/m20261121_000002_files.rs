//! Files and upload sessions.
//!
//! Live names are unique per owner through a partial unique index (a file in
//! the trash frees its name), enforced by the database on SQLite and
//! PostgreSQL alike.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(Clone, Copy, DeriveIden)]
enum Files {
    Table,
    Id,
    OwnerId,
    Name,
    NameLower,
    Size,
    ContentType,
    Sha256,
    Status,
    Visibility,
    PublicToken,
    ObjectKey,
    Version,
    CreatedAt,
    UpdatedAt,
    AvailableAt,
    ExpiresAt,
    DeletedAt,
    PurgeAt,
}

#[derive(Clone, Copy, DeriveIden)]
enum UploadSessions {
    Table,
    Id,
    OwnerId,
    FileId,
    Kind,
    State,
    Size,
    Offset,
    PartsReceived,
    PartSize,
    S3UploadId,
    Metadata,
    CreatedAt,
    UpdatedAt,
    ExpiresAt,
}

/// Creates plain (non-unique) indexes on a table.
async fn create_indexes<T: IntoIden + Copy + 'static, C: IntoIden + 'static>(
    manager: &SchemaManager<'_>,
    table: T,
    indexes: impl IntoIterator<Item = (&str, Vec<C>)>,
) -> Result<(), DbErr> {
    for (name, cols) in indexes {
        let mut index = Index::create().name(name).table(table).to_owned();
        for col in cols {
            index.col(col);
        }
        manager.create_index(index).await?;
    }
    Ok(())
}

fn timestamp(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn timestamp_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Files::Table)
                    .col(ColumnDef::new(Files::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Files::OwnerId).uuid().not_null())
                    .col(ColumnDef::new(Files::Name).string().not_null())
                    // Lower-cased name, for case-insensitive prefix search.
                    .col(ColumnDef::new(Files::NameLower).string().not_null())
                    .col(ColumnDef::new(Files::Size).big_integer().not_null())
                    .col(ColumnDef::new(Files::ContentType).string().not_null())
                    .col(ColumnDef::new(Files::Sha256).string().null())
                    .col(ColumnDef::new(Files::Status).string().not_null())
                    .col(ColumnDef::new(Files::Visibility).string().not_null())
                    .col(ColumnDef::new(Files::PublicToken).string().null())
                    .col(ColumnDef::new(Files::ObjectKey).string().not_null())
                    .col(ColumnDef::new(Files::Version).big_integer().not_null())
                    .col(timestamp(Files::CreatedAt))
                    .col(timestamp(Files::UpdatedAt))
                    .col(timestamp_null(Files::AvailableAt))
                    .col(timestamp_null(Files::ExpiresAt))
                    .col(timestamp_null(Files::DeletedAt))
                    .col(timestamp_null(Files::PurgeAt))
                    .check(Expr::col(Files::Status).is_in(["pending", "available"]))
                    .check(Expr::col(Files::Visibility).is_in(["private", "public"]))
                    .check(Expr::col(Files::Size).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_files_owner")
                            .from(Files::Table, Files::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Rows change status, version and times often (ingest makes
        // thousands available a second): no index covers those columns, and
        // on PostgreSQL pages keep room so that such updates can stay
        // heap-only (HOT) and touch no index.
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE files SET (fillfactor = 80)")
                .await?;
        }
        // Partial index: sea-query has no builder for the WHERE clause, and
        // this statement reads the same in both dialects.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_files_owner_live_name ON files (owner_id, name) \
                 WHERE deleted_at IS NULL",
            )
            .await?;
        create_indexes(
            manager,
            Files::Table,
            [
                (
                    "ix_files_owner_created",
                    vec![Files::OwnerId, Files::CreatedAt, Files::Id],
                ),
                (
                    "ix_files_owner_size",
                    vec![Files::OwnerId, Files::Size, Files::Id],
                ),
                (
                    "ix_files_owner_name_lower",
                    vec![Files::OwnerId, Files::NameLower, Files::Id],
                ),
                (
                    "ix_files_status_created",
                    vec![Files::Status, Files::CreatedAt],
                ),
            ],
        )
        .await?;
        // Columns that are null for most files get partial indexes: a row
        // with nulls there costs those indexes nothing when it changes.
        for sql in [
            "CREATE UNIQUE INDEX ux_files_public_token ON files (public_token) WHERE public_token IS NOT NULL",
            "CREATE INDEX ix_files_purge_at ON files (purge_at) WHERE purge_at IS NOT NULL",
            "CREATE INDEX ix_files_expires_at ON files (expires_at) WHERE expires_at IS NOT NULL",
        ] {
            manager.get_connection().execute_unprepared(sql).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(UploadSessions::Table)
                    .col(
                        ColumnDef::new(UploadSessions::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(UploadSessions::OwnerId).uuid().not_null())
                    .col(ColumnDef::new(UploadSessions::FileId).uuid().not_null())
                    .col(ColumnDef::new(UploadSessions::Kind).string().not_null())
                    .col(ColumnDef::new(UploadSessions::State).string().not_null())
                    // Null while a tus upload defers its length.
                    .col(ColumnDef::new(UploadSessions::Size).big_integer().null())
                    .col(
                        ColumnDef::new(UploadSessions::Offset)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(UploadSessions::PartsReceived)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(UploadSessions::PartSize)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(UploadSessions::S3UploadId).string().null())
                    .col(ColumnDef::new(UploadSessions::Metadata).text().null())
                    .col(timestamp(UploadSessions::CreatedAt))
                    .col(timestamp(UploadSessions::UpdatedAt))
                    .col(timestamp(UploadSessions::ExpiresAt))
                    .check(Expr::col(UploadSessions::Kind).is_in(["direct", "multipart", "tus"]))
                    .check(Expr::col(UploadSessions::State).is_in([
                        "active",
                        "completed",
                        "aborted",
                        "expired",
                    ]))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_upload_sessions_owner")
                            .from(UploadSessions::Table, UploadSessions::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_upload_sessions_file")
                            .from(UploadSessions::Table, UploadSessions::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            UploadSessions::Table,
            [
                (
                    "ix_upload_sessions_owner_state",
                    vec![UploadSessions::OwnerId, UploadSessions::State],
                ),
                (
                    "ix_upload_sessions_state_expires",
                    vec![UploadSessions::State, UploadSessions::ExpiresAt],
                ),
                ("ix_upload_sessions_file", vec![UploadSessions::FileId]),
            ],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UploadSessions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Files::Table).to_owned())
            .await
    }
}
