//! Share links: an unguessable token for a file or folder, with an
//! optional password (hashed like account passwords), expiry and download
//! limit. A link goes with its item (purged) or its owner.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Files {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Links {
    Table,
    Id,
    Token,
    ItemId,
    OwnerId,
    Mode,
    PasswordHash,
    ExpiresAt,
    MaxDownloads,
    Downloads,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Links::Table)
                    .col(ColumnDef::new(Links::Id).uuid().not_null().primary_key())
                    .col(
                        ColumnDef::new(Links::Token)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Links::ItemId).uuid().not_null())
                    .col(ColumnDef::new(Links::OwnerId).uuid().not_null())
                    .col(ColumnDef::new(Links::Mode).string().not_null())
                    .col(ColumnDef::new(Links::PasswordHash).string().null())
                    .col(
                        ColumnDef::new(Links::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Links::MaxDownloads).big_integer().null())
                    .col(
                        ColumnDef::new(Links::Downloads)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Links::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .check(Expr::col(Links::Mode).is_in(["view", "upload"]))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_links_item")
                            .from(Links::Table, Links::ItemId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_links_owner")
                            .from(Links::Table, Links::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_links_item")
                    .table(Links::Table)
                    .col(Links::ItemId)
                    .to_owned(),
            )
            .await
    }
}
