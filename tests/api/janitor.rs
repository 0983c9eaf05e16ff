//! The janitor, with durations short enough to watch.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, assert_problem, random_bytes, spawn_app_with};

crate::on_both_stacks!(
    the_trash_is_purged_from_the_store_after_retention,
    expired_files_move_to_the_trash,
    abandoned_uploads_leave_nothing_behind,
    a_direct_upload_whose_event_was_lost_is_reconciled,
    objects_no_file_knows_are_removed_after_the_grace_period,
    the_janitor_restarts_when_its_database_goes_and_then_goes_on,
);

async fn eventually<F: AsyncFn() -> bool>(what: &str, secs: u64, check: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not after {secs} s");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

fn fast(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut options = vec![("--janitor-interval", "500ms")];
    options.extend_from_slice(extra);
    options
}

async fn the_trash_is_purged_from_the_store_after_retention(stack: Stack) {
    let app = spawn_app_with(stack, &fast(&[("--trash-retention", "2s")])).await;
    let user = app.new_user().await;
    let file = app.upload_file(&user, "old.bin", &random_bytes(2000)).await;
    let id = file["id"].as_str().unwrap();
    let link: Value = app
        .get_authed(
            &format!("/api/v1/files/{id}/download-url"),
            &user.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap().to_owned();
    let res = app
        .delete_authed(&format!("/api/v1/files/{id}"), &user.access_token)
        .await;
    assert_eq!(res.status(), 204);
    let trash = async || {
        let page: Value = app
            .get_authed("/api/v1/files?view=trash", &user.access_token)
            .await
            .json()
            .await
            .unwrap();
        page["items"].as_array().unwrap().len()
    };
    assert_eq!(trash().await, 1, "restorable for now");
    eventually("purged from the trash", 20, async || trash().await == 0).await;
    // The object is gone from the store: the signed URL finds nothing.
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 404);
    let res = app
        .post_authed(
            &format!("/api/v1/files/{id}/restore"),
            &user.access_token,
            &json!({}),
        )
        .await;
    assert_problem(res, 404, "file_not_found").await;
    assert!(
        app.metric(r#"stowage_janitor_items_total{sweep="purge",result="purged"}"#)
            .await
            >= 1.0
    );
    assert!(
        app.metric(r#"stowage_janitor_sweeps_total{sweep="purge"}"#)
            .await
            >= 1.0
    );
}

async fn expired_files_move_to_the_trash(stack: Stack) {
    let app = spawn_app_with(stack, &fast(&[])).await;
    let user = app.new_user().await;
    let file = app.upload_file(&user, "temp.txt", b"short-lived").await;
    let id = file["id"].as_str().unwrap();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let res = app
        .patch_file(&user.access_token, id, &json!({"expires_at": soon}), None)
        .await;
    assert_eq!(res.status(), 200);
    eventually("moved to the trash", 20, async || {
        app.get_file(&user.access_token, id).await.status() == 404
    })
    .await;
    let page: Value = app
        .get_authed("/api/v1/files?view=trash", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], id);
}

/// The test's S3 bucket, reached directly (services stack only).
pub(crate) fn s3_bucket(app: &TestApp) -> Box<s3::Bucket> {
    use s3::creds::Credentials;
    use s3::{Bucket, Region};
    let region = Region::Custom {
        region: "us-east-1".into(),
        endpoint: std::env::var("STOWAGE_TEST_S3_ENDPOINT").unwrap(),
    };
    let creds = Credentials::new(
        Some(&std::env::var("STOWAGE_TEST_S3_ACCESS_KEY").unwrap()),
        Some(&std::env::var("STOWAGE_TEST_S3_SECRET_KEY").unwrap()),
        None,
        None,
        None,
    )
    .unwrap();
    Bucket::new(&app.bucket, region, creds)
        .unwrap()
        .with_path_style()
}

/// Multipart uploads the store still holds for this key prefix (S3 only).
pub(crate) async fn s3_multipart_uploads(app: &TestApp, prefix: &str) -> usize {
    let bucket = s3_bucket(app);
    // ListMultipartUploads, signed by rust-s3 (whose own parser wants a
    // StorageClass that SeaweedFS leaves out).
    let queries = std::collections::HashMap::from([
        ("uploads".to_owned(), String::new()),
        ("prefix".to_owned(), prefix.to_owned()),
    ]);
    let url = bucket.presign_get("/", 60, Some(queries)).await.unwrap();
    let xml = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.contains("ListMultipartUploadsResult"), "{xml}");
    xml.matches("<Upload>").count()
}

async fn abandoned_uploads_leave_nothing_behind(stack: Stack) {
    let app = spawn_app_with(stack, &fast(&[("--upload-expiry", "2s")])).await;
    let user = app.new_user().await;
    let created: Value = app
        .post_authed(
            "/api/v1/uploads/multipart",
            &user.access_token,
            &json!({"name": "abandoned.bin", "size": 6 << 20}),
        )
        .await
        .json()
        .await
        .unwrap();
    let upload = created["upload_id"].as_str().unwrap().to_owned();
    let file_id = created["file"]["id"].as_str().unwrap().to_owned();
    let ticket: Value = app
        .get_authed(
            &format!("/api/v1/uploads/multipart/{upload}/parts/1"),
            &user.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .client
        .put(ticket["url"].as_str().unwrap())
        .body(random_bytes(5 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let prefix = format!("users/{}/files/{file_id}", user.id);
    if stack == Stack::Services {
        assert_eq!(s3_multipart_uploads(&app, &prefix).await, 1);
    }
    let direct = app
        .create_upload(
            &user.access_token,
            &json!({"name": "never-sent.bin", "size": 10, "expires_in_seconds": 1}),
        )
        .await;
    let direct_id = direct["file"]["id"].as_str().unwrap().to_owned();

    eventually("the multipart session expired", 20, async || {
        app.get_file(&user.access_token, &file_id).await.status() == 404
    })
    .await;
    eventually("the direct upload expired", 20, async || {
        app.get_file(&user.access_token, &direct_id).await.status() == 404
    })
    .await;
    let res = app
        .get_authed(
            &format!("/api/v1/uploads/multipart/{upload}/parts"),
            &user.access_token,
        )
        .await;
    assert!(
        matches!(res.status().as_u16(), 404 | 410),
        "{}",
        res.status()
    );
    let sessions: Value = app
        .get_authed("/api/v1/uploads", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["items"], json!([]));
    if stack == Stack::Services {
        assert_eq!(
            s3_multipart_uploads(&app, &prefix).await,
            0,
            "the S3 multipart upload was aborted"
        );
    }
    // Both names are free again.
    app.create_upload(
        &user.access_token,
        &json!({"name": "abandoned.bin", "size": 1}),
    )
    .await;
    app.create_upload(
        &user.access_token,
        &json!({"name": "never-sent.bin", "size": 1}),
    )
    .await;
}

async fn a_direct_upload_whose_event_was_lost_is_reconciled(stack: Stack) {
    let app = spawn_app_with(stack, &fast(&[])).await;
    let user = app.new_user().await;
    let bytes = random_bytes(4321);
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": "quiet.bin", "size": bytes.len()}),
        )
        .await;
    let res = app.put_to_ticket(&created["upload"], bytes).await;
    assert_eq!(res.status(), 200);
    // No event is published on the services stack: only the janitor can notice.
    let id = created["file"]["id"].as_str().unwrap();
    let file = app.wait_available(&user.access_token, id, 20).await;
    assert_eq!(file["version"], 2);
}

async fn objects_no_file_knows_are_removed_after_the_grace_period(stack: Stack) {
    let app = spawn_app_with(stack, &fast(&[("--upload-expiry", "1s")])).await;
    let user = app.new_user().await;
    let kept = app.upload_file(&user, "kept.bin", b"keep me").await;
    let orphan = format!(
        "users/{}/files/{}",
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7()
    );
    let exists = async || match stack {
        Stack::Embedded => app.data_dir.join("blobs/objects").join(&orphan).exists(),
        Stack::Services => s3_bucket(&app).head_object(&orphan).await.is_ok(),
    };
    match stack {
        Stack::Embedded => {
            let path = app.data_dir.join("blobs/objects").join(&orphan);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"nobody's").unwrap();
        }
        Stack::Services => {
            s3_bucket(&app)
                .put_object(&orphan, b"nobody's")
                .await
                .unwrap();
        }
    }
    assert!(exists().await);
    eventually("the orphan was removed", 20, async || !exists().await).await;
    assert_eq!(
        app.download(&user.access_token, kept["id"].as_str().unwrap())
            .await,
        b"keep me"
    );
}

/// A file the store will not let go (here its object's path is a directory,
/// which no delete removes) stays in the trash and is counted as failed;
/// the other files of the same sweep are purged. Once the store lets go,
/// a later try purges it too.
#[actix_web::test]
async fn a_file_the_store_will_not_let_go_does_not_hold_the_others_up() {
    let app = spawn_app_with(
        Stack::Embedded,
        &[("--trash-retention", "1s"), ("--janitor-interval", "200ms")],
    )
    .await;
    let user = app.new_user().await;
    let failed = r#"stowage_janitor_items_total{sweep="purge",result="failed"}"#;
    let failed_before = app.metric(failed).await;
    let mut ids = Vec::new();
    for name in ["a.bin", "stuck.bin", "c.bin"] {
        let file = app.upload_file(&user, name, &random_bytes(1000)).await;
        ids.push(file["id"].as_str().unwrap().to_owned());
    }
    let stuck = app
        .data_dir
        .join(format!("blobs/objects/users/{}/files/{}", user.id, ids[1]));
    std::fs::remove_file(&stuck).unwrap();
    std::fs::create_dir(&stuck).unwrap();
    std::fs::write(stuck.join("holds on"), b"x").unwrap();
    for id in &ids {
        let res = app
            .delete_authed(&format!("/api/v1/files/{id}"), &user.access_token)
            .await;
        assert_eq!(res.status(), 204);
    }
    let trash = async || -> Vec<String> {
        let page: Value = app
            .get_authed("/api/v1/files?view=trash", &user.access_token)
            .await
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    eventually("the others are purged", 20, async || {
        trash().await == [ids[1].clone()]
    })
    .await;
    assert!(app.metric(failed).await > failed_before);

    std::fs::remove_dir_all(&stuck).unwrap();
    eventually(
        "the stuck file is purged once the store lets go",
        20,
        async || trash().await.is_empty(),
    )
    .await;
}

/// Every sweep fails while the janitor's tables are gone: it stops itself
/// and its supervisor restarts it (counted). Once they are back, it purges
/// what is due as before.
async fn the_janitor_restarts_when_its_database_goes_and_then_goes_on(stack: Stack) {
    let app = spawn_app_with(stack, &fast(&[("--trash-retention", "1s")])).await;
    let user = app.new_user().await;
    // Metrics are the test process's: other tests count too.
    let restarts = r#"stowage_actor_restarts_total{actor="janitor"}"#;
    let before = app.metric(restarts).await;
    let file = app
        .upload_file(&user, "kept.bin", &random_bytes(1000))
        .await;
    let id = file["id"].as_str().unwrap().to_owned();

    use sea_orm::ConnectionTrait;
    let db = crate::outbox::database(&app).await;
    for (from, to) in [
        ("files", "files_gone"),
        ("upload_sessions", "upload_sessions_gone"),
        ("file_revisions", "file_revisions_gone"),
    ] {
        db.execute_unprepared(&format!("ALTER TABLE {from} RENAME TO {to}"))
            .await
            .unwrap();
    }
    eventually("the janitor restarts", 30, async || {
        app.metric(restarts).await >= before + 1.0
    })
    .await;
    for (from, to) in [
        ("files_gone", "files"),
        ("upload_sessions_gone", "upload_sessions"),
        ("file_revisions_gone", "file_revisions"),
    ] {
        db.execute_unprepared(&format!("ALTER TABLE {from} RENAME TO {to}"))
            .await
            .unwrap();
    }

    let res = app
        .delete_authed(&format!("/api/v1/files/{id}"), &user.access_token)
        .await;
    assert_eq!(res.status(), 204);
    eventually("the restarted janitor purges the trash", 30, async || {
        let page: Value = app
            .get_authed("/api/v1/files?view=trash", &user.access_token)
            .await
            .json()
            .await
            .unwrap();
        page["items"].as_array().unwrap().is_empty()
    })
    .await;
}
