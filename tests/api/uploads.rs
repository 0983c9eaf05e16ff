//! Direct uploads: presigned PUT, confirmation, and what the signed URLs refuse.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Stack, assert_problem, random_bytes, sha256_hex, spawn_app, spawn_app_with};

crate::on_both_stacks!(
    presign_put_then_the_file_turns_available_by_itself,
    confirm_checks_size_and_sha256_against_the_store,
    a_put_of_the_wrong_length_stores_nothing,
    tampered_expired_and_wrong_method_urls_get_403,
    batch_uploads_are_all_or_nothing,
    bad_upload_requests_are_4xx_and_create_nothing,
    a_presigned_put_url_stores_exactly_once,
);

async fn presign_put_then_the_file_turns_available_by_itself(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(300_000);
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": "holiday.jpg", "size": bytes.len(), "content_type": "image/jpeg", "sha256": sha256_hex(&bytes)}),
        )
        .await;
    let file = &created["file"];
    assert_eq!(file["status"], "pending");
    assert_eq!(file["name"], "holiday.jpg");
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["content_type"], "image/jpeg");
    assert_eq!(file["role"], "owner");
    assert_eq!(file["visibility"], "private");
    assert_eq!(file["version"], 1);
    assert_eq!(file["public_url"], Value::Null);
    assert_eq!(file["owner_id"], user.id.as_str());
    let upload = &created["upload"];
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["fields"], json!({}));
    assert!(upload["expires_at"].is_string());
    let url = upload["url"].as_str().unwrap();
    assert!(url.starts_with("http"), "{url}");
    assert!(
        !url.contains("holiday"),
        "keys are never derived from names: {url}"
    );

    // A plain HTTP client PUTs the bytes; no confirm call.
    let res = app.put_to_ticket(upload, bytes.clone()).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("etag"));
    let id = file["id"].as_str().unwrap();
    app.announce_put(&user.id, id, bytes.len() as u64).await;
    let available = app.wait_available(&user.access_token, id, 20).await;
    assert_eq!(available["version"], 2);
    assert_eq!(available["sha256"], sha256_hex(&bytes));

    let downloaded = app.download(&user.access_token, id).await;
    assert_eq!(sha256_hex(&downloaded), sha256_hex(&bytes));
}

async fn confirm_checks_size_and_sha256_against_the_store(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let good = random_bytes(4096);
    let mut bad = good.clone();
    bad[100] ^= 0xff;
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": "data.bin", "size": good.len(), "sha256": sha256_hex(&good)}),
        )
        .await;
    let id = created["file"]["id"].as_str().unwrap();
    let confirm = async || {
        app.post_authed(
            &format!("/api/v1/files/{id}/confirm"),
            &user.access_token,
            &json!({}),
        )
        .await
    };

    // Nothing stored yet.
    assert_problem(confirm().await, 409, "upload_incomplete").await;

    // Right size, wrong bytes: refused, and the file stays pending.
    assert_eq!(
        app.put_to_ticket(&created["upload"], bad).await.status(),
        200
    );
    assert_problem(confirm().await, 422, "upload_mismatch").await;
    let file: Value = app
        .get_file(&user.access_token, id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["status"], "pending");

    // The right bytes to the same URL: confirmed.
    assert_eq!(
        app.put_to_ticket(&created["upload"], good.clone())
            .await
            .status(),
        200
    );
    let res = confirm().await;
    assert_eq!(res.status(), 200);
    let file: Value = res.json().await.unwrap();
    assert_eq!(file["status"], "available");
    assert_eq!(file["sha256"], sha256_hex(&good));
    // Confirming again changes nothing.
    let again: Value = confirm().await.json().await.unwrap();
    assert_eq!(again["version"], file["version"]);
    assert_eq!(app.download(&user.access_token, id).await, good);
}

async fn a_put_of_the_wrong_length_stores_nothing(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": "exact.bin", "size": 1000}),
        )
        .await;
    let id = created["file"]["id"].as_str().unwrap();
    for len in [999, 1001, 0] {
        let res = app
            .put_to_ticket(&created["upload"], random_bytes(len))
            .await;
        assert!(
            res.status().is_client_error(),
            "{len} bytes answered {}",
            res.status()
        );
    }
    let res = app
        .post_authed(
            &format!("/api/v1/files/{id}/confirm"),
            &user.access_token,
            &json!({}),
        )
        .await;
    assert_problem(res, 409, "upload_incomplete").await;
}

async fn tampered_expired_and_wrong_method_urls_get_403(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(64);
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": "a.txt", "size": 64, "expires_in_seconds": 1}),
        )
        .await;
    let url = created["upload"]["url"].as_str().unwrap().to_owned();

    // A changed signature.
    let tampered = tamper_signature(&url);
    let res = app
        .client
        .put(&tampered)
        .body(bytes.clone())
        .header("content-type", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "tampered URL");

    // Used for GET instead of PUT.
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 403, "wrong method");

    // Expired.
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    let res = app.put_to_ticket(&created["upload"], bytes).await;
    assert_eq!(res.status(), 403, "expired URL");

    // And the download URL of an available file, tampered.
    let file = app.upload_file(&user, "b.txt", b"hello").await;
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
    let res = app
        .client
        .get(tamper_signature(link["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"hello");
}

/// Flips one hex digit of the signature (`sig=` locally, `X-Amz-Signature=` on S3).
fn tamper_signature(url: &str) -> String {
    let marker = ["X-Amz-Signature=", "sig="]
        .into_iter()
        .find(|m| url.contains(m))
        .expect("a signature parameter");
    let at = url.find(marker).unwrap() + marker.len();
    let mut out = url.to_owned();
    let c = &url[at..=at];
    out.replace_range(at..=at, if c == "0" { "1" } else { "0" });
    out
}

async fn batch_uploads_are_all_or_nothing(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let batch = async |files: Value| {
        app.post_authed(
            "/api/v1/uploads/batch",
            &user.access_token,
            &json!({"files": files}),
        )
        .await
    };

    let res = batch(json!([{"name": "one", "size": 1}, {"name": "two", "size": 2}, {"name": "three", "size": 3}])).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[1]["file"]["name"], "two");
    assert!(items[2]["upload"]["url"].is_string());

    // A name used twice in the batch, or already taken: nothing is created.
    assert_problem(
        batch(json!([{"name": "four", "size": 1}, {"name": "four", "size": 1}])).await,
        409,
        "name_taken",
    )
    .await;
    assert_problem(
        batch(json!([{"name": "five", "size": 1}, {"name": "one", "size": 1}])).await,
        409,
        "name_taken",
    )
    .await;
    // One bad entry: nothing is created, and the entry is named.
    let problem = assert_problem(
        batch(json!([{"name": "six", "size": 1}, {"name": "a/b", "size": 1}])).await,
        400,
        "invalid_field",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("[1]"),
        "{problem}"
    );
    assert_problem(batch(json!([])).await, 400, "invalid_field").await;
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"name": format!("f{i}"), "size": 1}))
        .collect();
    assert_problem(batch(json!(many)).await, 400, "invalid_field").await;

    let listed: Value = app
        .get_authed("/api/v1/files?limit=100", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    let mut names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["one", "three", "two"]);
}

async fn bad_upload_requests_are_4xx_and_create_nothing(stack: Stack) {
    let app = spawn_app_with(stack, &[("--max-upload-size", "1MiB")]).await;
    let user = app.new_user().await;
    let post = async |body: Value| {
        app.post_authed("/api/v1/uploads", &user.access_token, &body)
            .await
    };
    for (body, status, code) in [
        (json!({"name": "a/b", "size": 1}), 400, "invalid_field"),
        (json!({"name": "", "size": 1}), 400, "invalid_field"),
        (json!({"name": "..", "size": 1}), 400, "invalid_field"),
        (json!({"name": "x", "size": -1}), 400, "invalid_body"),
        (json!({"name": "x", "size": "big"}), 400, "invalid_body"),
        (json!({"name": "x"}), 400, "invalid_body"),
        (
            json!({"name": "x", "size": 1, "owner_id": user.id}),
            400,
            "invalid_body",
        ),
        (
            json!({"name": "x", "size": 1, "sha256": "abc"}),
            400,
            "invalid_field",
        ),
        (
            json!({"name": "x", "size": 1, "content_type": "not a type"}),
            400,
            "invalid_field",
        ),
        (
            json!({"name": "x", "size": 1, "expires_in_seconds": 0}),
            400,
            "invalid_field",
        ),
        (
            json!({"name": "x", "size": 1, "expires_in_seconds": 9_999_999}),
            400,
            "invalid_field",
        ),
        (
            json!({"name": "x", "size": 2 * 1024 * 1024}),
            413,
            "file_too_large",
        ),
    ] {
        assert_problem(post(body.clone()).await, status, code).await;
    }
    // Without a token.
    let res = app
        .post_json("/api/v1/uploads", &json!({"name": "x", "size": 1}))
        .await;
    assert_problem(res, 401, "missing_token").await;

    let listed: Value = app
        .get_authed("/api/v1/files", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    // A taken name.
    app.create_upload(&user.access_token, &json!({"name": "x", "size": 1}))
        .await;
    assert_problem(
        post(json!({"name": "x", "size": 1})).await,
        409,
        "name_taken",
    )
    .await;
}

/// A second PUT to a used URL is refused (the local store: 409; S3: the
/// store's own 412 for `If-None-Match: *`) and changes nothing: the file's
/// bytes, digest and version stay what was confirmed.
async fn a_presigned_put_url_stores_exactly_once(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let first = random_bytes(50_000);
    let second = random_bytes(50_000);
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": "once.bin", "size": first.len(), "sha256": sha256_hex(&first)}),
        )
        .await;
    let id = created["file"]["id"].as_str().unwrap();
    let upload = &created["upload"];
    assert_eq!(app.put_to_ticket(upload, first.clone()).await.status(), 200);

    // Before confirmation and after it, the URL stores nothing more.
    let again = app.put_to_ticket(upload, second.clone()).await;
    assert!(
        [403, 409, 412].contains(&again.status().as_u16()),
        "{:?}",
        again.text().await
    );
    let confirmed = app
        .post_authed(
            &format!("/api/v1/files/{id}/confirm"),
            &user.access_token,
            &json!({}),
        )
        .await;
    assert_eq!(confirmed.status(), 200, "{:?}", confirmed.text().await);
    let confirmed: Value = confirmed.json().await.unwrap();
    assert_eq!(confirmed["sha256"], sha256_hex(&first));
    let again = app.put_to_ticket(upload, second.clone()).await;
    assert!(
        [403, 409, 412].contains(&again.status().as_u16()),
        "{:?}",
        again.text().await
    );
    if stack == Stack::Embedded {
        assert_problem(again, 409, "already_uploaded").await;
    }
    let downloaded = app.download(&user.access_token, id).await;
    assert_eq!(sha256_hex(&downloaded), sha256_hex(&first));
    let file: Value = app
        .get_authed(&format!("/api/v1/files/{id}"), &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["sha256"], sha256_hex(&first));
    assert_eq!(file["version"], confirmed["version"]);
}
