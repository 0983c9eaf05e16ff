//! Shares (a file, a user, a role) and shortcuts (a user's pointer to a file).

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
enum Shares {
    Table,
    FileId,
    UserId,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Shortcuts {
    Table,
    Id,
    UserId,
    FileId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Shares::Table)
                    .col(ColumnDef::new(Shares::FileId).uuid().not_null())
                    .col(ColumnDef::new(Shares::UserId).uuid().not_null())
                    .col(ColumnDef::new(Shares::Role).string().not_null())
                    .col(
                        ColumnDef::new(Shares::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Shares::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().col(Shares::FileId).col(Shares::UserId))
                    .check(Expr::col(Shares::Role).is_in(["viewer", "editor"]))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_shares_file")
                            .from(Shares::Table, Shares::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_shares_user")
                            .from(Shares::Table, Shares::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // "What is shared with me" reads by user.
        manager
            .create_index(
                Index::create()
                    .name("ix_shares_user")
                    .table(Shares::Table)
                    .col(Shares::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Shortcuts::Table)
                    .col(
                        ColumnDef::new(Shortcuts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Shortcuts::UserId).uuid().not_null())
                    .col(ColumnDef::new(Shortcuts::FileId).uuid().not_null())
                    .col(
                        ColumnDef::new(Shortcuts::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_shortcuts_user")
                            .from(Shortcuts::Table, Shortcuts::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_shortcuts_file")
                            .from(Shortcuts::Table, Shortcuts::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_shortcuts_user_file")
                    .table(Shortcuts::Table)
                    .col(Shortcuts::UserId)
                    .col(Shortcuts::FileId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_shortcuts_file")
                    .table(Shortcuts::Table)
                    .col(Shortcuts::FileId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Shortcuts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Shares::Table).to_owned())
            .await
    }
}
