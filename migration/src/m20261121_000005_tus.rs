//! What a tus upload needs to resume anywhere: the SHA-256 state of the bytes
//! received so far, the bytes waiting to fill the next S3 part, a lease that
//! lets one instance at a time write, and the S3 parts already stored.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UploadSessions {
    Table,
    Id,
    HashState,
    TailSize,
    LeaseOwner,
    LeaseUntil,
}

#[derive(DeriveIden)]
enum UploadParts {
    Table,
    SessionId,
    PartNumber,
    Size,
    Etag,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(UploadSessions::HashState)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(UploadSessions::TailSize)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(UploadSessions::LeaseOwner)
                .uuid()
                .null()
                .to_owned(),
            ColumnDef::new(UploadSessions::LeaseUntil)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UploadSessions::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(UploadParts::Table)
                    .col(ColumnDef::new(UploadParts::SessionId).uuid().not_null())
                    .col(ColumnDef::new(UploadParts::PartNumber).integer().not_null())
                    .col(ColumnDef::new(UploadParts::Size).big_integer().not_null())
                    .col(ColumnDef::new(UploadParts::Etag).string().not_null())
                    .primary_key(
                        Index::create()
                            .col(UploadParts::SessionId)
                            .col(UploadParts::PartNumber),
                    )
                    .check(Expr::col(UploadParts::PartNumber).between(1, 10_000))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_upload_parts_session")
                            .from(UploadParts::Table, UploadParts::SessionId)
                            .to(UploadSessions::Table, UploadSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UploadParts::Table).to_owned())
            .await?;
        for column in [
            UploadSessions::HashState,
            UploadSessions::TailSize,
            UploadSessions::LeaseOwner,
            UploadSessions::LeaseUntil,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UploadSessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
