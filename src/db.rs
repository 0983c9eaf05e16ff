//! Connecting to the database, SQLite or PostgreSQL, tuned for each.

use std::time::Duration;

use anyhow::Context;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};
use stowage_migration::{Migrator, MigratorTrait};

use crate::config::DatabaseUrl;

/// Opens a pool. SQLite runs in WAL mode with a busy timeout, so readers never
/// block the writer and concurrent writers wait instead of failing with
/// "database is locked".
pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.expose().to_owned());
    opts.sqlx_logging_level(log::LevelFilter::Debug)
        .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5));
    if url.is_sqlite() {
        opts.max_connections(8)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
    } else {
        opts.max_connections(32).min_connections(1);
    }
    Database::connect(opts)
        .await
        .with_context(|| format!("connecting to the {} database", url.kind()))
}

/// Applies every pending migration. On PostgreSQL this runs in one
/// transaction under an advisory lock, so instances that start together
/// migrate one after the other and none sees half a schema.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None)
            .await
            .context("applying database migrations");
    }
    let txn = db.begin().await?;
    txn.execute_unprepared("SELECT pg_advisory_xact_lock(7478937120443245)")
        .await
        .context("taking the migration lock")?;
    Migrator::up(&txn, None)
        .await
        .context("applying database migrations")?;
    txn.commit().await.context("committing database migrations")
}
