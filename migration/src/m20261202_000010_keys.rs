//! Keys and service access.
//!
//! - `api_keys`: personal and service keys (`stk_…`), stored only as a
//!   keyed hash (HMAC-SHA256 under a key derived from the server secret:
//!   the keys are random and long, so a fast hash is right), with the
//!   first characters kept to tell them apart, their scopes
//!   (space-separated), expiry and when they were last used (written at
//!   most once a minute).
//! - `users.disabled_at`: a disabled user is refused everywhere.
//! - `users.external_id`: the id a product's back end knows its user by
//!   (unique when set). A user an admin creates may have no email: its
//!   `email` is empty and its `email_key` is `user:<id>`, which holds no
//!   `@` and so never equals a real address.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(Clone, Copy, DeriveIden)]
enum Users {
    Table,
    Id,
    DisabledAt,
    ExternalId,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    UserId,
    Name,
    Prefix,
    KeyHash,
    Scopes,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            ColumnDef::new(Users::DisabledAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Users::ExternalId).string().null().to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_users_external_id ON users (external_id) \
                 WHERE external_id IS NOT NULL",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::UserId).uuid().not_null())
                    .col(ColumnDef::new(ApiKeys::Name).string().not_null())
                    .col(ColumnDef::new(ApiKeys::Prefix).string().not_null())
                    .col(
                        ColumnDef::new(ApiKeys::KeyHash)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(ApiKeys::Scopes).string().not_null())
                    .col(
                        ColumnDef::new(ApiKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::LastUsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_user")
                            .from(ApiKeys::Table, ApiKeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_user")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::UserId)
                    .to_owned(),
            )
            .await
    }
}
