//! Outside identity: a user who arrived with a token of the configured
//! OpenID Connect issuer is found by that issuer and the token's `sub`,
//! unique together.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(Clone, Copy, DeriveIden)]
enum Users {
    Table,
    IdentityIssuer,
    IdentitySubject,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Users::IdentityIssuer, Users::IdentitySubject] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(ColumnDef::new(col).string().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_users_identity ON users (identity_issuer, identity_subject) \
                 WHERE identity_subject IS NOT NULL",
            )
            .await?;
        Ok(())
    }
}
