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
        if let Some(path) = sqlite_file(url.expose()) {
            private_sqlite_files(path)?;
        }
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
        if let Some(port) = tcp_port(url.expose()) {
            opts.map_sqlx_postgres_pool_opts(move |pool| {
                pool.after_connect(move |_conn, _meta| {
                    Box::pin(async move {
                        nodelay::set_on_sockets_to(port);
                        Ok(())
                    })
                })
            });
        }
    }
    Database::connect(opts)
        .await
        .with_context(|| format!("connecting to the {} database", url.kind()))
}

/// The file of a `sqlite:` URL; `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::Path::new(path))
}

/// Creates the SQLite file 0600 before SQLite does (its WAL and shared-memory
/// files take the database file's mode), and makes an existing one, and
/// those files, 0600 too: the database holds every user's metadata.
fn private_sqlite_files(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening the SQLite file {}", path.display()))?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", file.display()))?;
            }
            _ => {}
        }
    }
    Ok(())
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

/// The TCP port of a `postgres://` URL (5432 unless given); `None` for a
/// Unix-socket URL (no host, or a percent-encoded path as the host).
fn tcp_port(url: &str) -> Option<u16> {
    let url = url::Url::parse(url).ok()?;
    match url.host_str() {
        None | Some("") => None,
        Some(host) if host.starts_with('%') => None,
        Some(_) => Some(url.port().unwrap_or(5432)),
    }
}

/// sqlx 0.9.0 no longer sets `TCP_NODELAY` on its sockets (sqlx issue
/// #4335, fixed upstream by #4336 but not yet released). A query whose
/// messages leave in two writes then waits ~40 ms for the server's delayed
/// ACK: a third of ingest's time went there. Until a release carries the
/// fix, every new pool connection sets it on this process's TCP sockets to
/// the database's port. Remove with the sqlx upgrade.
mod nodelay {
    #[cfg(target_os = "linux")]
    pub fn set_on_sockets_to(port: u16) {
        use std::os::fd::BorrowedFd;

        let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in fds.flatten() {
            let is_socket = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
            let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if !is_socket {
                continue;
            }
            // SAFETY: the descriptor was open a moment ago; if another thread
            // closed it since, the calls below fail with EBADF and nothing
            // happens. If its number was reused for another socket, setting
            // TCP_NODELAY on that socket is harmless.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let socket = socket2::SockRef::from(&fd);
            let to_db = socket
                .peer_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some_and(|a| a.port() == port);
            if to_db {
                let _ = socket.set_tcp_nodelay(true);
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn set_on_sockets_to(_port: u16) {}
}

#[cfg(test)]
mod tests {
    use super::tcp_port;

    #[test]
    fn ports_of_database_urls() {
        assert_eq!(tcp_port("postgres://u@127.0.0.1:55432/test"), Some(55432));
        assert_eq!(
            tcp_port("postgres://u:p@db.example.com/test?sslmode=require"),
            Some(5432)
        );
        assert_eq!(tcp_port("postgresql://db:6543"), Some(6543));
        assert_eq!(
            tcp_port("postgres://u@%2Fvar%2Frun%2Fpostgresql/test"),
            None
        );
        assert_eq!(tcp_port("postgres:///test?host=/run/postgresql"), None);
        assert_eq!(tcp_port("postgres://[::1]:5433/test"), Some(5433));
        assert_eq!(tcp_port("postgres://[::1]/test"), Some(5432));
    }
}
