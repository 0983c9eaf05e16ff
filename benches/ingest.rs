//! Ingest throughput on PostgreSQL + NATS JetStream.
//!
//! Creates N pending files (default 50,000) straight in a fresh PostgreSQL
//! database, starts Stowage against it and NATS, publishes one MinIO-format
//! object-created event per file as fast as JetStream takes them, and waits
//! until every file is available. Reports events/s and the p50/p99 of the
//! lag from each event's time to the commit that made its file available.
//!
//! `scripts/bench-ingest.sh` starts the services and runs this; or
//! `STOWAGE_BENCH_DATABASE_URL=postgres://… STOWAGE_BENCH_NATS_URL=nats://… cargo bench --bench ingest`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use clap::Parser;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use serde_json::json;
use stowage::Application;
use stowage::config::Cli;
use stowage_entity::files::{self, FileStatus, ItemKind, Visibility};
use uuid::Uuid;

mod common;

use common::{BenchDb, env_or, insert_owner};

fn event(bucket: &str, key: &str, size: i64, at: DateTime<Utc>) -> Vec<u8> {
    let escaped: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
    serde_json::to_vec(&json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{bucket}/{key}"),
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "us-east-1",
            "eventTime": at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "bench"},
            "requestParameters": {"principalId": "bench", "region": "us-east-1", "sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "0"},
            "s3": {
                "s3SchemaVersion": "1.0", "configurationId": "Config",
                "bucket": {"name": bucket, "ownerIdentity": {"principalId": "bench"}, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {"key": escaped, "size": size, "eTag": "0", "contentType": "application/octet-stream", "sequencer": "0"}
            },
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "bench"}
        }]
    }))
    .unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = env_or("STOWAGE_BENCH_FILES", "50000").parse()?;
    // Events per second to publish at; 0: as fast as JetStream takes them.
    let rate: f64 = env_or("STOWAGE_BENCH_RATE", "0").parse()?;
    let nats_url = env_or("STOWAGE_BENCH_NATS_URL", "nats://127.0.0.1:4222");
    let run = Uuid::new_v4().simple().to_string();
    let subject = format!("stowage.bench{}.ingest", &run[..12]);
    let data_dir = std::env::temp_dir().join(format!("stowage-bench-{run}"));

    let bench_db = BenchDb::create(&run).await?;
    let db_url = bench_db.url.clone();

    let cli = Cli::try_parse_from([
        "stowage",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--database-url",
        &db_url,
        "--nats-url",
        &nats_url,
        "--nats-ingest-subject",
        &subject,
        "--jwt-secret",
        "bench-secret-bench-secret-bench-secret-0123",
    ])?;
    stowage::telemetry::init_tracing(
        &env_or("STOWAGE_BENCH_LOG", "warn"),
        stowage::config::LogFormat::Text,
    );
    let app = Application::build(cli.settings).await?;
    let port = app.port();
    actix_web::rt::spawn(app.run_until_stopped());
    let db = Database::connect(&db_url).await?;

    // N pending files of one user, inserted in bulk.
    let owner = Uuid::now_v7();
    let now = stowage_actors::time::now();
    insert_owner(&db, owner, &run).await?;
    let started = Instant::now();
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    for chunk in ids.chunks(2000) {
        let rows = chunk.iter().enumerate().map(|(i, id)| files::ActiveModel {
            id: Set(*id),
            owner_id: Set(owner),
            name: Set(format!("file-{id}")),
            name_lower: Set(format!("file-{id}")),
            size: Set(1000 + i as i64),
            content_type: Set("application/octet-stream".into()),
            sha256: Set(None),
            status: Set(FileStatus::Pending),
            visibility: Set(Visibility::Private),
            public_token: Set(None),
            object_key: Set(format!("users/{owner}/files/{id}")),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            available_at: Set(None),
            expires_at: Set(None),
            deleted_at: Set(None),
            purge_at: Set(None),
            kind: Set(ItemKind::File),
            parent_id: Set(None),
            trashed_with: Set(None),
            revision: Set(1),
            base_revision: Set(None),
            uploaded_by: Set(None),
            conflict_of: Set(None),
        });
        files::Entity::insert_many(rows).exec(&db).await?;
    }
    // A live table has statistics; a freshly loaded one needs them made.
    db.execute_unprepared("ANALYZE files").await?;
    println!(
        "created {count} pending files in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Count completions from the server's own `file.available` events: no
    // polling load on the database under test.
    let client = async_nats::connect(&nats_url).await?;
    let mut available_events = client.subscribe("stowage.events.file.available").await?;
    let owner_text = owner.to_string();
    let counter = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut seen = 0usize;
        while seen < count {
            let Some(msg) = available_events.next().await else {
                break;
            };
            let event: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
            if event["owner_id"] == owner_text.as_str() {
                seen += 1;
            }
        }
        seen
    });

    // Publish every event as fast as JetStream acknowledges them.
    let js = async_nats::jetstream::new(client);
    let sizes: Vec<i64> = ids
        .chunks(2000)
        .flat_map(|c| (0..c.len()).map(|i| 1000 + i as i64))
        .collect();
    let publish_started = Instant::now();
    let mut event_times: HashMap<Uuid, DateTime<Utc>> = HashMap::with_capacity(count);
    let mut pending = Vec::with_capacity(1000);
    for (n, (id, size)) in ids.iter().zip(&sizes).enumerate() {
        if rate > 0.0 {
            let due = publish_started + Duration::from_secs_f64(n as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                // Flush what is pending before sleeping, so events go out on time.
                for ack in pending.drain(..) {
                    ack.await?;
                }
                tokio::time::sleep(wait).await;
            }
        }
        let at = Utc::now();
        event_times.insert(*id, at);
        let payload = event("stowage", &format!("users/{owner}/files/{id}"), *size, at);
        pending.push(js.publish(subject.clone(), Bytes::from(payload)).await?);
        if pending.len() == 1000 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending.drain(..) {
        ack.await?;
    }
    let published = publish_started.elapsed();
    println!(
        "published {count} events in {:.2} s ({:.0}/s)",
        published.as_secs_f64(),
        count as f64 / published.as_secs_f64()
    );

    // Wait until all are available.
    let seen = tokio::time::timeout(Duration::from_secs(600), counter).await??;
    let total = publish_started.elapsed();
    let available = files::Entity::find()
        .filter(files::Column::OwnerId.eq(owner))
        .filter(files::Column::Status.eq(FileStatus::Available))
        .count(&db)
        .await? as usize;
    anyhow::ensure!(
        seen == count && available == count,
        "{available} of {count} available ({seen} events)"
    );
    let throughput = count as f64 / total.as_secs_f64();

    // Lag of each file: its event's time to the commit that made it available.
    let rows = files::Entity::find()
        .filter(files::Column::OwnerId.eq(owner))
        .all(&db)
        .await?;
    let mut lags: Vec<f64> = rows
        .iter()
        .filter_map(|f| {
            let event_at = event_times.get(&f.id)?;
            // Event times carry milliseconds, as MinIO's do.
            let event_at = event_at.trunc_subsecs(3);
            Some((f.available_at? - event_at).num_microseconds()? as f64 / 1e6)
        })
        .collect();
    lags.sort_by(f64::total_cmp);

    // The server's own histogram of the same lag, as Prometheus would see it.
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with("stowage_ingest_lag_seconds_bucket{le=\""))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let v: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                },
                v,
            ))
        })
        .collect();
    let observed = buckets.last().map_or(0.0, |(_, v)| *v);
    let bucket_of = |q: f64| {
        buckets
            .iter()
            .find(|(_, v)| *v >= q * observed)
            .map_or(f64::NAN, |(le, _)| *le)
    };

    let mode = if rate > 0.0 {
        format!("published at {rate:.0}/s")
    } else {
        "published as fast as possible".into()
    };
    println!(
        "{mode}: all {count} available {:.2} s after the first publish: {throughput:.0} events/s",
        total.as_secs_f64()
    );
    println!(
        "ingest lag (event time → commit): p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        lags.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "server histogram stowage_ingest_lag_seconds: p50 ≤ {} s, p99 ≤ {} s ({observed} events)",
        bucket_of(0.50),
        bucket_of(0.99)
    );

    drop(db);
    bench_db.remove().await;
    std::fs::remove_dir_all(&data_dir).ok();
    Ok(())
}
