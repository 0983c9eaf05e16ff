//! S3-style multipart uploads with presigned parts, on the local store and on S3.

use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, User, assert_problem, random_bytes, sha256_hex, spawn_app};

crate::on_both_stacks!(
    a_multipart_upload_resumes_from_the_stores_part_list,
    multipart_rules_strangers_and_abort,
    a_part_put_after_completion_or_abort_is_the_clients_mistake,
);

const MIB: usize = 1 << 20;

pub(crate) async fn part_url(
    app: &TestApp,
    user: &User,
    upload: &str,
    n: u32,
) -> reqwest::Response {
    app.get_authed(
        &format!("/api/v1/uploads/multipart/{upload}/parts/{n}"),
        &user.access_token,
    )
    .await
}

/// PUTs one part; returns its ETag.
pub(crate) async fn put_part(
    app: &TestApp,
    user: &User,
    upload: &str,
    n: u32,
    bytes: &[u8],
) -> String {
    let ticket: Value = part_url(app, user, upload, n).await.json().await.unwrap();
    assert_eq!(ticket["method"], "PUT");
    let res = app
        .client
        .put(ticket["url"].as_str().unwrap())
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "part {n}: {:?}", res.text().await);
    res.headers()["etag"].to_str().unwrap().to_owned()
}

pub(crate) async fn complete(
    app: &TestApp,
    user: &User,
    upload: &str,
    parts: &[(u32, &str)],
) -> reqwest::Response {
    let parts: Vec<Value> = parts
        .iter()
        .map(|(n, e)| json!({"part_number": n, "etag": e}))
        .collect();
    app.post_authed(
        &format!("/api/v1/uploads/multipart/{upload}/complete"),
        &user.access_token,
        &json!({"parts": parts}),
    )
    .await
}

async fn a_multipart_upload_resumes_from_the_stores_part_list(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(11 * MIB);
    let res = app
        .post_authed(
            "/api/v1/uploads/multipart",
            &user.access_token,
            &json!({"name": "video.mp4", "size": bytes.len(), "content_type": "video/mp4", "part_size": 5 * MIB}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["part_size"], 5 * MIB);
    assert_eq!(created["part_count"], 3);
    assert_eq!(created["file"]["status"], "pending");
    let upload = created["upload_id"].as_str().unwrap().to_owned();
    let file_id = created["file"]["id"].as_str().unwrap().to_owned();

    // The session is listed among the caller's unfinished uploads.
    let sessions: Value = app
        .get_authed("/api/v1/uploads", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    let listed = &sessions["items"][0];
    assert_eq!(
        (
            listed["id"].as_str(),
            listed["kind"].as_str(),
            listed["state"].as_str()
        ),
        (Some(upload.as_str()), Some("multipart"), Some("active"))
    );
    assert_eq!(listed["file_id"], file_id.as_str());

    // Parts 1 and 3 arrive; the connection drops before part 2.
    let e1 = put_part(&app, &user, &upload, 1, &bytes[..5 * MIB]).await;
    let e3 = put_part(&app, &user, &upload, 3, &bytes[10 * MIB..]).await;
    let listed: Value = app
        .get_authed(
            &format!("/api/v1/uploads/multipart/{upload}/parts"),
            &user.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    let numbers: Vec<u64> = listed["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["part_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 3]);
    assert_eq!(listed["parts"][1]["size"], MIB);
    assert_eq!(listed["parts"][0]["etag"], e1.trim_matches('"'));
    let session: Value = app
        .get_authed(&format!("/api/v1/uploads/{upload}"), &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            session["parts_received"].as_u64(),
            session["offset"].as_u64()
        ),
        (Some(2), Some(6 * MIB as u64))
    );

    // Completing too early is refused and changes nothing.
    assert_problem(
        complete(&app, &user, &upload, &[(1, &e1), (3, &e3)]).await,
        400,
        "parts_mismatch",
    )
    .await;
    // Resume: the missing part, then complete.
    let e2 = put_part(&app, &user, &upload, 2, &bytes[5 * MIB..10 * MIB]).await;
    assert_problem(
        complete(&app, &user, &upload, &[(1, &e1), (2, &e3), (3, &e2)]).await,
        400,
        "parts_mismatch",
    )
    .await;
    let res = complete(&app, &user, &upload, &[(1, &e1), (2, &e2), (3, &e3)]).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let file: Value = res.json().await.unwrap();
    assert_eq!(file["status"], "available");
    assert_eq!(file["size"], bytes.len());
    if stack == Stack::Embedded {
        assert_eq!(file["sha256"], sha256_hex(&bytes));
    }
    assert_eq!(
        sha256_hex(&app.download(&user.access_token, &file_id).await),
        sha256_hex(&bytes)
    );

    let session: Value = app
        .get_authed(&format!("/api/v1/uploads/{upload}"), &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (session["state"].as_str(), session["offset"].as_u64()),
        (Some("completed"), Some(bytes.len() as u64))
    );
    let sessions: Value = app
        .get_authed("/api/v1/uploads", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["items"], json!([]));
    assert_problem(
        part_url(&app, &user, &upload, 1).await,
        409,
        "upload_completed",
    )
    .await;
    assert_problem(
        complete(&app, &user, &upload, &[(1, &e1), (2, &e2), (3, &e3)]).await,
        409,
        "upload_completed",
    )
    .await;
}

async fn multipart_rules_strangers_and_abort(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let stranger = app.new_user().await;
    let start = async |body: Value| {
        app.post_authed("/api/v1/uploads/multipart", &user.access_token, &body)
            .await
    };

    assert_problem(
        start(json!({"name": "a", "size": 10 * MIB, "part_size": MIB})).await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        start(json!({"name": "a", "size": 0})).await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        start(json!({"name": "a", "size": 100_000 * MIB, "part_size": 5 * MIB})).await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        start(json!({"name": "a/b", "size": 10})).await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        start(json!({"name": "a", "size": 10, "parts": 2})).await,
        400,
        "invalid_body",
    )
    .await;

    let created: Value = start(json!({"name": "big.bin", "size": 6 * MIB}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            created["part_size"].as_u64(),
            created["part_count"].as_u64()
        ),
        (Some(5 * MIB as u64), Some(2))
    );
    let upload = created["upload_id"].as_str().unwrap().to_owned();
    let file_id = created["file"]["id"].as_str().unwrap().to_owned();
    assert_problem(
        start(json!({"name": "big.bin", "size": 6 * MIB})).await,
        409,
        "name_taken",
    )
    .await;

    assert_problem(
        part_url(&app, &user, &upload, 0).await,
        400,
        "invalid_part_number",
    )
    .await;
    assert_problem(
        part_url(&app, &user, &upload, 3).await,
        400,
        "invalid_part_number",
    )
    .await;

    // A part of the wrong length is refused by the store.
    let ticket: Value = part_url(&app, &user, &upload, 2)
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .client
        .put(ticket["url"].as_str().unwrap())
        .body(random_bytes(MIB - 1))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());

    // Strangers see nothing.
    for res in [
        part_url(&app, &stranger, &upload, 1).await,
        app.get_authed(
            &format!("/api/v1/uploads/multipart/{upload}/parts"),
            &stranger.access_token,
        )
        .await,
        complete(&app, &stranger, &upload, &[(1, "x")]).await,
        app.client
            .delete(app.url(&format!("/api/v1/uploads/multipart/{upload}")))
            .bearer_auth(&stranger.access_token)
            .send()
            .await
            .unwrap(),
        app.get_authed(&format!("/api/v1/uploads/{upload}"), &stranger.access_token)
            .await,
    ] {
        assert_problem(res, 404, "upload_not_found").await;
    }

    // Abort: the parts and the pending file go.
    put_part(&app, &user, &upload, 1, &random_bytes(5 * MIB)).await;
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/uploads/multipart/{upload}")))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_problem(
        app.get_file(&user.access_token, &file_id).await,
        404,
        "file_not_found",
    )
    .await;
    assert_problem(
        part_url(&app, &user, &upload, 1).await,
        404,
        "upload_not_found",
    )
    .await;
    // The name is free again.
    assert_eq!(
        start(json!({"name": "big.bin", "size": 6 * MIB}))
            .await
            .status(),
        201
    );
}

/// A part URL used after its upload completed or was aborted: 404, never
/// 503 (the store is fine; the upload is gone).
async fn a_part_put_after_completion_or_abort_is_the_clients_mistake(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    for finish in ["complete", "abort"] {
        let bytes = random_bytes(MIB);
        let started: Value = app
            .post_authed(
                "/api/v1/uploads/multipart",
                &user.access_token,
                &json!({"name": format!("late-{finish}.bin"), "size": bytes.len()}),
            )
            .await
            .json()
            .await
            .unwrap();
        let upload = started["upload_id"].as_str().unwrap();
        let ticket: Value = part_url(&app, &user, upload, 1).await.json().await.unwrap();
        let etag = put_part(&app, &user, upload, 1, &bytes).await;
        if finish == "complete" {
            let res = complete(&app, &user, upload, &[(1, &etag)]).await;
            assert_eq!(res.status(), 200, "{:?}", res.text().await);
        } else {
            let res = app
                .delete_authed(
                    &format!("/api/v1/uploads/multipart/{upload}"),
                    &user.access_token,
                )
                .await;
            assert_eq!(res.status(), 204);
        }
        let late = app
            .client
            .put(ticket["url"].as_str().unwrap())
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            late.status(),
            404,
            "after {finish}: {:?}",
            late.text().await
        );
    }
}
