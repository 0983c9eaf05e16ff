//! Several instances on one PostgreSQL + S3 + NATS behave as one service.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Stack, User, random_bytes, spawn_cluster};

/// Counts `stowage.events.<kind>` per file id until `expected` distinct
/// files were seen and the stream has been quiet for a second.
async fn count_events(
    sub: &mut async_nats::Subscriber,
    files: &[String],
    expected: usize,
) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let wait = if seen.len() >= expected {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        let Ok(Some(msg)) = tokio::time::timeout(wait, sub.next()).await else {
            break;
        };
        let event: Value = serde_json::from_slice(&msg.payload).unwrap();
        let id = event["file_id"].as_str().unwrap().to_owned();
        if files.contains(&id) {
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn three_instances_ingest_each_event_once_and_purge_each_file_once() {
    Stack::Services.require();
    // Sweeps every 50 ms: the three janitors overlap all the time.
    let apps = spawn_cluster(
        3,
        &[("--trash-retention", "1s"), ("--janitor-interval", "50ms")],
    )
    .await;
    let nats = crate::helpers::nats_client().await;
    let mut available = nats
        .subscribe("stowage.events.file.available")
        .await
        .unwrap();
    let mut purged = nats.subscribe("stowage.events.file.purged").await.unwrap();
    // A user signs up on one instance and works on the others.
    let user = apps[0].new_user().await;

    // 60 direct uploads, created round-robin, each announced by MinIO once.
    let mut ids = Vec::new();
    for i in 0..60 {
        let app = &apps[i % 3];
        let created = app
            .create_upload(
                &user.access_token,
                &json!({"name": format!("f{i}"), "size": 5}),
            )
            .await;
        assert_eq!(
            app.put_to_ticket(&created["upload"], b"12345".to_vec())
                .await
                .status(),
            200
        );
        let id = created["file"]["id"].as_str().unwrap().to_owned();
        app.announce_put(&user.id, &id, 5).await;
        ids.push(id);
    }
    let seen = count_events(&mut available, &ids, ids.len()).await;
    assert_eq!(seen.len(), ids.len(), "every file became available");
    assert!(
        seen.values().all(|n| *n == 1),
        "each exactly once: {seen:?}"
    );
    for (i, id) in ids.iter().enumerate() {
        let file: Value = apps[(i + 1) % 3]
            .get_file(&user.access_token, id)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (file["status"].as_str(), file["version"].as_i64()),
            (Some("available"), Some(2))
        );
    }

    // Delete them all: three janitors race for the purge; each file goes once.
    for (i, id) in ids.iter().enumerate() {
        let app = &apps[i % 3];
        let res = app
            .client
            .delete(app.url(&format!("/api/v1/files/{id}")))
            .bearer_auth(&user.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let seen = count_events(&mut purged, &ids, ids.len()).await;
    assert_eq!(seen.len(), ids.len(), "every file was purged");
    assert!(
        seen.values().all(|n| *n == 1),
        "each purged exactly once: {seen:?}"
    );
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn a_multipart_upload_moves_between_instances() {
    Stack::Services.require();
    let apps = spawn_cluster(2, &[]).await;
    let user: User = apps[0].new_user().await;
    let bytes = random_bytes(6 << 20);
    let created: Value = apps[0]
        .post_authed(
            "/api/v1/uploads/multipart",
            &user.access_token,
            &json!({"name": "roaming.bin", "size": bytes.len()}),
        )
        .await
        .json()
        .await
        .unwrap();
    let upload = created["upload_id"].as_str().unwrap().to_owned();
    let mut etags = Vec::new();
    for (n, range) in [(1u32, 0..5 << 20), (2, 5 << 20..bytes.len())] {
        // Each part's URL comes from another instance than the last.
        let app = &apps[n as usize % 2];
        let ticket: Value = app
            .get_authed(
                &format!("/api/v1/uploads/multipart/{upload}/parts/{n}"),
                &user.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        let res = app
            .client
            .put(ticket["url"].as_str().unwrap())
            .body(bytes[range].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        etags.push(json!({"part_number": n, "etag": res.headers()["etag"].to_str().unwrap()}));
    }
    let res = apps[1]
        .post_authed(
            &format!("/api/v1/uploads/multipart/{upload}/complete"),
            &user.access_token,
            &json!({"parts": etags}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let id = created["file"]["id"].as_str().unwrap();
    assert_eq!(apps[0].download(&user.access_token, id).await, bytes);
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn rate_limits_hold_across_instances() {
    Stack::Services.require();
    let apps = spawn_cluster(
        2,
        &[
            ("--rate-limit-auth", "4/min"),
            ("--rate-limit-api", "4/min"),
        ],
    )
    .await;
    // Auth: one budget per client address, whichever instance answers.
    let user = apps[0].new_user().await;
    for app in [&apps[1], &apps[0], &apps[1]] {
        assert_eq!(
            app.login(&user.email, crate::helpers::PASSWORD)
                .await
                .status(),
            200
        );
    }
    let refused = apps[0].login(&user.email, crate::helpers::PASSWORD).await;
    assert!(refused.headers().contains_key("retry-after"));
    crate::helpers::assert_problem(refused, 429, "rate_limited").await;
    // API: one budget per user.
    for app in [&apps[0], &apps[1], &apps[0], &apps[1]] {
        assert_eq!(
            app.get_authed("/api/v1/me", &user.access_token)
                .await
                .status(),
            200
        );
    }
    let refused = apps[1].get_authed("/api/v1/me", &user.access_token).await;
    crate::helpers::assert_problem(refused, 429, "rate_limited").await;
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn a_tus_upload_alternates_between_instances_and_completes() {
    Stack::Services.require();
    use crate::tus::{create, offset_of, patch};
    let apps = spawn_cluster(2, &[]).await;
    let user = apps[0].new_user().await;
    // 23 MiB in 2 MiB requests, each to the other instance than the last:
    // parts are cut across requests and instances, the tail object and the
    // SHA-256 state travel through S3 and PostgreSQL.
    let bytes = random_bytes(23 << 20);
    let url = create(&apps[0], &user, bytes.len() as u64, "both.bin").await;
    let path = url.split_once("/api/").unwrap().1.to_owned();
    let mut offset = 0u64;
    for (i, chunk) in bytes.chunks(2 << 20).enumerate() {
        let app = &apps[(i + 1) % 2];
        let here = app.url(&format!("/api/{path}"));
        assert_eq!(offset_of(app, &user, &here).await, offset);
        let res = patch(app, &user, &here, offset, chunk.to_vec(), &[]).await;
        assert_eq!(res.status(), 204, "request {i}: {:?}", res.text().await);
        offset += chunk.len() as u64;
    }
    let upload_id = path.rsplit('/').next().unwrap();
    let session: Value = apps[1]
        .get_authed(&format!("/api/v1/uploads/{upload_id}"), &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["state"], "completed");
    let file_id = session["file_id"].as_str().unwrap();
    let file: Value = apps[0]
        .get_file(&user.access_token, file_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["sha256"], crate::helpers::sha256_hex(&bytes));
    assert_eq!(apps[1].download(&user.access_token, file_id).await, bytes);
}
