// Each benchmark uses part of this.
#![allow(dead_code)]

//! What the benchmarks share: settings from the environment, a throw-away
//! PostgreSQL database, and the user whose files they make.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set};
use stowage_entity::users;
use uuid::Uuid;

pub fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// A fresh database on the server at `STOWAGE_BENCH_DATABASE_URL`.
pub struct BenchDb {
    admin: DatabaseConnection,
    name: String,
    pub url: String,
}

impl BenchDb {
    pub async fn create(run: &str) -> anyhow::Result<Self> {
        let admin_url = env_or(
            "STOWAGE_BENCH_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        );
        let name = format!("stowage_bench_{}", &run[..12]);
        let admin = Database::connect(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Ok(Self { admin, name, url })
    }

    /// Drops the database (closing whatever still uses it).
    pub async fn remove(self) {
        self.admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .ok();
    }
}

/// Inserts `owner`, the user whose files a benchmark makes.
pub async fn insert_owner(db: &DatabaseConnection, owner: Uuid, run: &str) -> anyhow::Result<()> {
    let now = stowage_actors::time::now();
    users::Entity::insert(users::ActiveModel {
        id: Set(owner),
        email: Set(format!("bench-{run}@example.com")),
        email_key: Set(format!("bench-{run}@example.com")),
        display_name: Set("bench".into()),
        password_hash: Set("$pbkdf2-sha256$i=1000$x$x".into()),
        quota_bytes: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        disabled_at: Set(None),
        external_id: Set(None),
        identity_issuer: Set(None),
        identity_subject: Set(None),
    })
    .exec(db)
    .await?;
    Ok(())
}
