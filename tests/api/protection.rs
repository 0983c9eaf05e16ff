//! Protection at rest on S3: `STOWAGE_S3_SSE` on every write, whichever
//! way the bytes come (the store says so on HEAD).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::helpers::{Stack, random_bytes, spawn_app_with};
use crate::janitor::s3_bucket;
use crate::multipart::{complete, put_part};

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn every_s3_write_asks_for_server_side_encryption() {
    Stack::Services.require();
    let app = spawn_app_with(Stack::Services, &[("--s3-sse", "AES256")]).await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let mut keys = Vec::new();

    // A presigned PUT: the header is signed, so it must be sent.
    let created = app
        .create_upload(token, &json!({"name": "direct.bin", "size": 4}))
        .await;
    assert_eq!(
        created["upload"]["headers"]["x-amz-server-side-encryption"],
        "AES256"
    );
    let mut without = app
        .client
        .put(created["upload"]["url"].as_str().unwrap())
        .body(b"four".to_vec());
    for (k, v) in created["upload"]["headers"].as_object().unwrap() {
        if k != "x-amz-server-side-encryption" && !k.eq_ignore_ascii_case("content-length") {
            without = without.header(k, v.as_str().unwrap());
        }
    }
    assert_eq!(
        without.send().await.unwrap().status(),
        403,
        "unsigned SSE header left out"
    );
    let res = app
        .put_to_ticket(&created["upload"], b"four".to_vec())
        .await;
    assert_eq!(res.status(), 200);
    keys.push(created["file"]["id"].as_str().unwrap().to_owned());

    // A multipart upload, presigned parts.
    let res = app
        .post_authed(
            "/api/v1/uploads/multipart",
            token,
            &json!({"name": "parts.bin", "size": 6}),
        )
        .await;
    let session: Value = res.json().await.unwrap();
    let upload = session["upload_id"].as_str().unwrap();
    let etag = put_part(&app, &user, upload, 1, b"sixsix").await;
    assert_eq!(
        complete(&app, &user, upload, &[(1, &etag)]).await.status(),
        200
    );
    keys.push(session["file"]["id"].as_str().unwrap().to_owned());

    // tus, small (one PUT) and past a part (multipart through the server).
    for (name, len) in [("small.bin", 10usize), ("large.bin", (5 << 20) + 7)] {
        let res = app
            .client
            .post(app.url("/api/v1/tus"))
            .bearer_auth(token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", len.to_string())
            .header("Upload-Metadata", format!("filename {}", B64.encode(name)))
            .header("Content-Type", "application/offset+octet-stream")
            .body(random_bytes(len))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{name}: {:?}", res.text().await);
    }
    let page: Value = app
        .get_authed("/api/v1/files?limit=100", token)
        .await
        .json()
        .await
        .unwrap();
    for item in page["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap().to_owned();
        if !keys.contains(&id) {
            keys.push(id);
        }
    }
    assert_eq!(keys.len(), 4);
    let bucket = s3_bucket(&app);
    for id in keys {
        let key = format!("users/{}/files/{id}", user.id);
        let (head, status) = bucket.head_object(&key).await.unwrap();
        assert_eq!(status, 200, "{key}");
        assert_eq!(
            head.server_side_encryption.as_deref(),
            Some("AES256"),
            "{key} is not encrypted at rest"
        );
    }
}
