//! Folders at scale, through the HTTP API, on SQLite and on PostgreSQL:
//! children pages of a folder with 100,000 children (the first page, and
//! one 50,000 items in) against a folder with 10, resolving a path 30
//! folders deep, another user's role on a folder 30 levels below the one
//! shared with them, and moving the 100,000-child folder.
//!
//! The rows are inserted straight into the database (the API would take
//! minutes to make them); every measured request goes through the server.
//! `scripts/bench-tree.sh` runs it. STOWAGE_BENCH_CHILDREN=N for another size.

use std::time::{Duration, Instant};

use clap::Parser;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set};
use serde_json::{Value, json};
use stowage::Application;
use stowage::config::Cli;
use stowage_entity::files::{self, FileStatus, ItemKind, Visibility};
use uuid::Uuid;

mod common;

use common::{BenchDb, env_or};

const DEPTH: usize = 30;
const ROUNDS: usize = 50;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let children: usize = env_or("STOWAGE_BENCH_CHILDREN", "100000").parse()?;
    stowage::telemetry::init_tracing(
        &env_or("STOWAGE_BENCH_LOG", "warn"),
        stowage::config::LogFormat::Text,
    );
    println!("| measure | SQLite | PostgreSQL |");
    println!("|---|---|---|");
    let run = Uuid::new_v4().simple().to_string();
    let sqlite_dir = std::env::temp_dir().join(format!("stowage-bench-tree-{run}"));
    std::fs::create_dir_all(&sqlite_dir)?;
    let sqlite_url = format!("sqlite://{}/tree.db?mode=rwc", sqlite_dir.display());
    let lite = measure(&sqlite_url, &sqlite_dir, children).await?;
    let bench_db = BenchDb::create(&run).await?;
    let pg_dir = std::env::temp_dir().join(format!("stowage-bench-tree-pg-{run}"));
    let pg = measure(&bench_db.url, &pg_dir, children).await;
    bench_db.remove().await;
    let _ = std::fs::remove_dir_all(&sqlite_dir);
    let _ = std::fs::remove_dir_all(&pg_dir);
    for ((what, a), (_, b)) in lite.iter().zip(pg?.iter()) {
        println!("| {what} | {a} | {b} |");
    }
    Ok(())
}

/// Median and 95th percentile of `ROUNDS` timings of `f`.
async fn time<F, Fut>(mut f: F) -> anyhow::Result<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut took: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        f().await?;
        took.push(started.elapsed());
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(format!(
        "{:.2} ms (p95 {:.2})",
        ms(took[ROUNDS / 2]),
        ms(took[ROUNDS * 95 / 100])
    ))
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn signup(&self, email: &str) -> anyhow::Result<(Uuid, String)> {
        let res: Value = self
            .client
            .post(format!("{}/api/v1/auth/signup", self.base))
            .json(&json!({"email": email, "password": "benchmark password"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = res["user"]["id"].as_str().unwrap_or_default().parse()?;
        Ok((
            id,
            res["access_token"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    async fn get(&self, token: &str, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        Ok(self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}

fn row(
    id: Uuid,
    owner: Uuid,
    parent: Option<Uuid>,
    name: String,
    kind: ItemKind,
) -> files::ActiveModel {
    let now = stowage_actors::time::now();
    files::ActiveModel {
        id: Set(id),
        owner_id: Set(owner),
        name_lower: Set(name.to_lowercase()),
        name: Set(name),
        size: Set(if kind == ItemKind::File { 1000 } else { 0 }),
        content_type: Set("application/octet-stream".into()),
        sha256: Set(None),
        status: Set(FileStatus::Available),
        visibility: Set(Visibility::Private),
        public_token: Set(None),
        object_key: Set(match kind {
            ItemKind::Folder => String::new(),
            ItemKind::File | ItemKind::Revision => format!("users/{owner}/files/{id}"),
        }),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        available_at: Set(Some(now)),
        expires_at: Set(None),
        deleted_at: Set(None),
        purge_at: Set(None),
        kind: Set(kind),
        parent_id: Set(parent),
        trashed_with: Set(None),
        revision: Set(1),
        base_revision: Set(None),
        uploaded_by: Set(None),
        conflict_of: Set(None),
    }
}

async fn insert(db: &DatabaseConnection, rows: Vec<files::ActiveModel>) -> anyhow::Result<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(1000).collect();
        files::Entity::insert_many(chunk).exec(db).await?;
    }
    Ok(())
}

async fn measure(
    db_url: &str,
    data_dir: &std::path::Path,
    children: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let cli = Cli::try_parse_from([
        "stowage",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap_or_default(),
        "--database-url",
        db_url,
        "--jwt-secret",
        "bench-secret-bench-secret-bench-secret-0123",
        "--pbkdf2-rounds",
        "1000",
        "--rate-limit-api",
        "1000000/min",
        "--rate-limit-auth",
        "1000000/min",
    ])?;
    let app = Application::build(cli.settings).await?;
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{}", app.port()),
    };
    actix_web::rt::spawn(app.run_until_stopped());
    let db = Database::connect(db_url).await?;
    let run = Uuid::new_v4().simple().to_string();
    let (owner, token) = api.signup(&format!("owner-{run}@example.com")).await?;
    let (_, guest) = api.signup(&format!("guest-{run}@example.com")).await?;

    // A folder of `children` files, one of ten, and a chain 30 deep.
    let big = Uuid::now_v7();
    let small = Uuid::now_v7();
    let mut rows = vec![
        row(big, owner, None, "big".into(), ItemKind::Folder),
        row(small, owner, None, "small".into(), ItemKind::Folder),
    ];
    for i in 0..children {
        rows.push(row(
            Uuid::now_v7(),
            owner,
            Some(big),
            format!("file-{i:07}"),
            ItemKind::File,
        ));
    }
    for i in 0..10 {
        rows.push(row(
            Uuid::now_v7(),
            owner,
            Some(small),
            format!("file-{i:07}"),
            ItemKind::File,
        ));
    }
    let mut chain = Vec::with_capacity(DEPTH);
    let mut parent = None;
    for depth in 1..=DEPTH {
        let id = Uuid::now_v7();
        rows.push(row(
            id,
            owner,
            parent,
            format!("d{depth}"),
            ItemKind::Folder,
        ));
        chain.push(id);
        parent = Some(id);
    }
    let started = Instant::now();
    insert(&db, rows).await?;
    db.execute_unprepared("ANALYZE").await?;
    eprintln!(
        "{db_url}: {} rows in {:.1} s",
        children + DEPTH + 12,
        started.elapsed().as_secs_f64()
    );

    let mut out = Vec::new();
    let page = |folder: Uuid, cursor: Option<String>| {
        let path = match cursor {
            Some(c) => format!("/api/v1/folders/{folder}/children?limit=100&cursor={c}"),
            None => format!("/api/v1/folders/{folder}/children?limit=100"),
        };
        let (api, token) = (&api, &token);
        async move { api.get(token, &path).await }
    };
    out.push((
        "children of a 10-child folder, first page".into(),
        time(|| async { page(small, None).await.map(drop) }).await?,
    ));
    out.push((
        format!("children of a {children}-child folder, first page of 100"),
        time(|| async { page(big, None).await.map(drop) }).await?,
    ));
    // A cursor half-way in.
    let mut cursor: Option<String> = None;
    for _ in 0..children / 200 {
        let body = page(big, cursor.clone()).await?;
        cursor = body["next_cursor"].as_str().map(str::to_owned);
    }
    let deep = cursor.clone();
    out.push((
        format!("same, the page {} items in", children / 2),
        time(|| async { page(big, deep.clone()).await.map(drop) }).await?,
    ));

    let path: String = (1..=DEPTH).map(|d| format!("/d{d}")).collect();
    let q: String = form_urlencoded_path(&path);
    out.push((
        format!("resolve a path {DEPTH} folders deep"),
        time(|| async {
            api.get(&token, &format!("/api/v1/resolve?path={q}"))
                .await
                .map(drop)
        })
        .await?,
    ));

    // The guest's role on the deepest folder comes from the top one.
    api.send(
        &token,
        reqwest::Method::POST,
        &format!("/api/v1/folders/{}/shares", chain[0]),
        json!({"email": format!("guest-{run}@example.com"), "role": "viewer"}),
    )
    .await?;
    let deepest = chain[DEPTH - 1];
    let seen = api
        .get(&guest, &format!("/api/v1/folders/{deepest}"))
        .await?;
    anyhow::ensure!(seen["role"] == "viewer", "the guest's role: {seen}");
    out.push((
        format!("another user's role {DEPTH} levels below their share"),
        time(|| async {
            api.get(&guest, &format!("/api/v1/folders/{deepest}"))
                .await
                .map(drop)
        })
        .await?,
    ));

    // Moving the big folder: into the chain and back, one row each time.
    let mut into_chain = true;
    out.push((
        format!("move the {children}-child folder"),
        time(|| {
            let target = if into_chain {
                json!({"parent_id": deepest})
            } else {
                json!({"parent_id": null})
            };
            into_chain = !into_chain;
            let (api, token) = (&api, &token);
            async move {
                api.send(
                    token,
                    reqwest::Method::PATCH,
                    &format!("/api/v1/folders/{big}"),
                    target,
                )
                .await
                .map(drop)
            }
        })
        .await?,
    ));
    Ok(out)
}

/// A path as a query value.
fn form_urlencoded_path(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
