//! Janitor purge throughput on PostgreSQL + S3 (SeaweedFS).
//!
//! Puts N small objects (default 100,000) in a fresh bucket and N trashed
//! file rows for them in a fresh database, starts Stowage, makes every row
//! due at once, and times the janitor until the rows and the objects are
//! gone. `scripts/bench-purge.sh` starts the services and runs this.

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use stowage::Application;
use stowage::config::Cli;
use stowage_entity::files::{self, FileStatus, ItemKind, Visibility};
use uuid::Uuid;

mod common;

use common::{BenchDb, env_or, insert_owner};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = env_or("STOWAGE_BENCH_FILES", "100000").parse()?;
    let endpoint = env_or("STOWAGE_BENCH_S3_ENDPOINT", "http://127.0.0.1:8333");
    let access = env_or("STOWAGE_BENCH_S3_ACCESS_KEY", "TESTACCESSKEY123");
    let secret = env_or(
        "STOWAGE_BENCH_S3_SECRET_KEY",
        "testsecretkey_abcdefghijklmnop",
    );
    let run = Uuid::new_v4().simple().to_string();
    let bucket_name = format!("stowage-bench-{}", &run[..12]);
    let data_dir = std::env::temp_dir().join(format!("stowage-bench-{run}"));

    let bench_db = BenchDb::create(&run).await?;
    let db_url = bench_db.url.clone();

    // The objects, put 64 at a time.
    let region = Region::Custom {
        region: "us-east-1".into(),
        endpoint: endpoint.clone(),
    };
    let creds = Credentials::new(Some(&access), Some(&secret), None, None, None)?;
    Bucket::create_with_path_style(
        &bucket_name,
        region.clone(),
        creds.clone(),
        BucketConfiguration::default(),
    )
    .await?;
    let bucket = Bucket::new(&bucket_name, region, creds)?.with_path_style();
    let owner = Uuid::now_v7();
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let started = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(ids.iter().map(|id| {
        let bucket = bucket.clone();
        let key = format!("users/{owner}/files/{id}");
        async move { bucket.put_object(&key, b"purge me").await.map(|_| ()) }
    }))
    .buffer_unordered(64)
    .collect()
    .await;
    anyhow::ensure!(
        results.iter().all(Result::is_ok),
        "some objects were not stored"
    );
    println!(
        "put {count} objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let cli = Cli::try_parse_from([
        "stowage",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--database-url",
        &db_url,
        "--s3-endpoint",
        &endpoint,
        "--s3-bucket",
        &bucket_name,
        "--aws-access-key-id",
        &access,
        "--aws-secret-access-key",
        &secret,
        "--jwt-secret",
        "bench-secret-bench-secret-bench-secret-0123",
        "--janitor-interval",
        "200ms",
    ])?;
    stowage::telemetry::init_tracing(
        &env_or("STOWAGE_BENCH_LOG", "warn"),
        stowage::config::LogFormat::Text,
    );
    let app = Application::build(cli.settings).await?;
    actix_web::rt::spawn(app.run_until_stopped());
    let db = Database::connect(&db_url).await?;

    // The rows: trashed, due far in the future for now.
    let now = stowage_actors::time::now();
    let later = now + chrono::Duration::days(1);
    insert_owner(&db, owner, &run).await?;
    for chunk in ids.chunks(2000) {
        files::Entity::insert_many(chunk.iter().map(|id| files::ActiveModel {
            id: Set(*id),
            owner_id: Set(owner),
            name: Set(format!("file-{id}")),
            name_lower: Set(format!("file-{id}")),
            size: Set(8),
            content_type: Set("application/octet-stream".into()),
            sha256: Set(None),
            status: Set(FileStatus::Available),
            visibility: Set(Visibility::Private),
            public_token: Set(None),
            object_key: Set(format!("users/{owner}/files/{id}")),
            version: Set(2),
            created_at: Set(now),
            updated_at: Set(now),
            available_at: Set(Some(now)),
            expires_at: Set(None),
            deleted_at: Set(Some(now)),
            purge_at: Set(Some(later)),
            kind: Set(ItemKind::File),
            parent_id: Set(None),
            trashed_with: Set(Some(*id)),
            revision: Set(1),
            base_revision: Set(None),
            uploaded_by: Set(None),
            conflict_of: Set(None),
        }))
        .exec(&db)
        .await?;
    }
    db.execute_unprepared("ANALYZE files").await?;

    // Everything due now: time the janitor.
    let due = Instant::now();
    files::Entity::update_many()
        .col_expr(
            files::Column::PurgeAt,
            Expr::value(stowage_actors::time::now()),
        )
        .filter(files::Column::OwnerId.eq(owner))
        .exec(&db)
        .await?;
    let deadline = due + Duration::from_secs(600);
    loop {
        let left = files::Entity::find()
            .filter(files::Column::OwnerId.eq(owner))
            .count(&db)
            .await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{left} rows left after 600 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = due.elapsed();
    let (listing, _) = bucket
        .list_page(format!("users/{owner}/"), None, None, None, Some(10))
        .await?;
    println!(
        "purged {count} trashed files (objects and rows) in {:.1} s: {:.0} files/s; objects left in the bucket: {}",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        listing.contents.len()
    );

    drop(db);
    bench_db.remove().await;
    std::fs::remove_dir_all(&data_dir).ok();
    Ok(())
}
