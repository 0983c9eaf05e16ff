//! Schema migrations. Each migration names its tables and columns with
//! `DeriveIden` enums (never entity types), so the schema history stays fixed
//! while the models in `entity/` move on. Every statement here runs unchanged on
//! SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_accounts;
mod m20261121_000002_files;
mod m20261121_000003_sharing;
mod m20261121_000004_rate_limits;
mod m20261121_000005_tus;
mod m20261202_000006_outbox;
mod m20261202_000007_folders;
mod m20261202_000008_links;
mod m20261202_000009_revisions;
mod m20261202_000010_keys;
mod m20261202_000011_identity;
mod m20261202_000012_webhooks;
mod m20261206_000013_trace_context;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_accounts::Migration),
            Box::new(m20261121_000002_files::Migration),
            Box::new(m20261121_000003_sharing::Migration),
            Box::new(m20261121_000004_rate_limits::Migration),
            Box::new(m20261121_000005_tus::Migration),
            Box::new(m20261202_000006_outbox::Migration),
            Box::new(m20261202_000007_folders::Migration),
            Box::new(m20261202_000008_links::Migration),
            Box::new(m20261202_000009_revisions::Migration),
            Box::new(m20261202_000010_keys::Migration),
            Box::new(m20261202_000011_identity::Migration),
            Box::new(m20261202_000012_webhooks::Migration),
            Box::new(m20261206_000013_trace_context::Migration),
        ]
    }
}
