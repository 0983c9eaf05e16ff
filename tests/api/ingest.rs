//! The ingest pipeline fed MinIO-format events through the real bus
//! (in-process on the embedded stack, NATS JetStream on the services stack).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stowage_actors::ingest::Stop;

use crate::helpers::{Stack, TestApp, User, random_bytes, sha256_hex, spawn_app};

crate::on_both_stacks!(
    redelivered_and_duplicate_events_change_nothing,
    unknown_wrong_and_hostile_events_are_counted_and_survived,
    ingest_recovers_after_its_actor_restarts,
    domain_events_follow_the_commits,
    a_large_objects_checksum_is_checked_beside_the_batch,
);

/// A pending file whose object is stored, but not yet announced (on the
/// embedded stack the local store announces it: wait for that instead).
async fn stored_pending_file(
    app: &TestApp,
    user: &User,
    name: &str,
    bytes: &[u8],
) -> (String, String) {
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": name, "size": bytes.len()}),
        )
        .await;
    let id = created["file"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.put_to_ticket(&created["upload"], bytes.to_vec())
            .await
            .status(),
        200
    );
    (id.clone(), format!("users/{}/files/{id}", user.id))
}

async fn wait_metric_above(app: &TestApp, line_start: &str, floor: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = app.metric(line_start).await;
        if v > floor {
            return v;
        }
        assert!(Instant::now() < deadline, "{line_start} stayed at {v}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn redelivered_and_duplicate_events_change_nothing(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(777);
    let (id, key) = stored_pending_file(&app, &user, "twice.bin", &bytes).await;
    // Announce it three times (on the embedded stack the store already did once).
    let duplicates = r#"stowage_ingest_events_total{result="duplicate"}"#;
    let before = app.metric(duplicates).await;
    for _ in 0..3 {
        app.publish_event(app.minio_event(&key, 777)).await;
    }
    let file = app.wait_available(&user.access_token, &id, 20).await;
    wait_metric_above(&app, duplicates, before + 1.0).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let again: Value = app
        .get_file(&user.access_token, &id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["version"], 2, "one transition, however many events");
    assert_eq!(again["updated_at"], file["updated_at"]);
}

async fn unknown_wrong_and_hostile_events_are_counted_and_survived(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let unknown = r#"stowage_ingest_events_total{result="unknown_key"}"#;
    let malformed = r#"stowage_ingest_events_total{result="malformed"}"#;
    let mismatch = r#"stowage_ingest_events_total{result="size_mismatch"}"#;
    let removed = r#"stowage_ingest_events_total{result="removed"}"#;
    let (u0, m0, s0, r0) = (
        app.metric(unknown).await,
        app.metric(malformed).await,
        app.metric(mismatch).await,
        app.metric(removed).await,
    );

    // The fixtures as MinIO published them: keys this server never made.
    for fixture in [
        include_str!("../fixtures/minio-put.json"),
        include_str!("../fixtures/minio-complete-multipart.json"),
        include_str!("../fixtures/minio-delete.json"),
    ] {
        app.publish_event(fixture.as_bytes().to_vec()).await;
    }
    // Hostile and broken payloads.
    app.publish_event(b"not json at all".to_vec()).await;
    app.publish_event(br#"{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}"#.to_vec())
        .await;
    app.publish_event(app.minio_event("../../etc/passwd", 1))
        .await;
    app.publish_event(vec![b'{'; 512 * 1024]).await;

    // The right key with the wrong size leaves the file pending.
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": "sized.bin", "size": 100}),
        )
        .await;
    let id = created["file"]["id"].as_str().unwrap();
    let key = format!("users/{}/files/{id}", user.id);
    app.publish_event(app.minio_event(&key, 99)).await;

    wait_metric_above(&app, unknown, u0 + 2.0).await;
    wait_metric_above(&app, malformed, m0 + 2.0).await;
    wait_metric_above(&app, mismatch, s0).await;
    wait_metric_above(&app, removed, r0).await;
    let file: Value = app
        .get_file(&user.access_token, id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["status"], "pending");

    // And ingest still works.
    let good = app.upload_file(&user, "after.bin", b"still alive").await;
    assert_eq!(good["status"], "available");
}

async fn ingest_recovers_after_its_actor_restarts(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let restarts = r#"stowage_actor_restarts_total{actor="ingest"}"#;
    let before = app.metric(restarts).await;
    app.upload_file(&user, "before.bin", b"one").await;

    // Events published while the actor is down wait for it.
    app.ingest.send(Stop).await.unwrap();
    let bytes = random_bytes(50);
    let (id, key) = stored_pending_file(&app, &user, "during.bin", &bytes).await;
    app.publish_event(app.minio_event(&key, 50)).await;
    app.wait_available(&user.access_token, &id, 30).await;
    wait_metric_above(&app, restarts, before).await;
    app.upload_file(&user, "after.bin", b"three").await;
}

async fn domain_events_follow_the_commits(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    // On NATS, subscribe like an outside consumer would.
    let nats = match stack {
        Stack::Services => {
            let client = crate::helpers::nats_client().await;
            Some(client.subscribe("stowage.events.>").await.unwrap())
        }
        Stack::Embedded => None,
    };
    let mut local = app.bus.subscribe();
    let file = app.upload_file(&user, "evented.txt", b"hi").await;
    let id = file["id"].as_str().unwrap();
    app.patch_file(
        &user.access_token,
        id,
        &json!({"name": "renamed.txt"}),
        None,
    )
    .await;

    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    match nats {
        Some(mut sub) => {
            use futures_util::StreamExt;
            while seen.len() < 2 && Instant::now() < deadline {
                let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await
                else {
                    break;
                };
                let event: Value = serde_json::from_slice(&msg.payload).unwrap();
                if event["file_id"] == id {
                    assert_eq!(
                        msg.subject.as_str(),
                        format!("stowage.events.{}", event["type"].as_str().unwrap())
                    );
                    seen.push(event);
                }
            }
        }
        None => {
            while seen.len() < 2 && Instant::now() < deadline {
                let Ok(Ok(event)) =
                    tokio::time::timeout(Duration::from_secs(5), local.recv()).await
                else {
                    break;
                };
                let event = serde_json::to_value(&event).unwrap();
                if event["file_id"] == id {
                    seen.push(event);
                }
            }
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0]["type"], "file.available");
    assert_eq!(seen[0]["owner_id"], user.id.as_str());
    assert_eq!(seen[1]["type"], "file.renamed");
    assert_eq!(seen[1]["actor_id"], user.id.as_str());
    assert_eq!(seen[1]["data"]["new_name"], "renamed.txt");
    for e in &seen {
        assert!(e["event_id"].is_string() && e["occurred_at"].is_string());
    }
}

/// A large object with a declared SHA-256 is checked beside the batch (the
/// event is counted `verifying`), then its file turns available; one whose
/// bytes do not match stays pending. A small file announced after them does
/// not wait for either.
async fn a_large_objects_checksum_is_checked_beside_the_batch(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let large = random_bytes((17 << 20) as usize);
    let mut wrong = large.clone();
    wrong[12345] ^= 1;
    let verifying = r#"stowage_ingest_events_total{result="verifying"}"#;
    let before = app.metric(verifying).await;
    let mut ids = Vec::new();
    for (name, bytes) in [("good.bin", &large), ("bad.bin", &wrong)] {
        let created = app
            .create_upload(
                &user.access_token,
                &json!({"name": name, "size": large.len(), "sha256": sha256_hex(&large)}),
            )
            .await;
        let id = created["file"]["id"].as_str().unwrap().to_owned();
        let res = app.put_to_ticket(&created["upload"], bytes.to_vec()).await;
        assert_eq!(res.status(), 200);
        if stack == Stack::Services {
            app.announce_put(&user.id, &id, large.len() as u64).await;
        }
        ids.push(id);
    }
    let (small, _) = stored_pending_file(&app, &user, "small.txt", b"tiny").await;
    if stack == Stack::Services {
        app.announce_put(&user.id, &small, 4).await;
    }
    app.wait_available(&user.access_token, &small, 20).await;
    let good = app.wait_available(&user.access_token, &ids[0], 30).await;
    assert_eq!(good["sha256"], sha256_hex(&large));
    assert!(wait_metric_above(&app, verifying, before + 1.0).await >= before + 2.0);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let bad: Value = app
        .get_file(&user.access_token, &ids[1])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bad["status"], "pending");
}
