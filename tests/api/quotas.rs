//! Quotas: reserved when an upload is created, on every upload kind, and
//! never passed by concurrent creations, on one instance or several.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::helpers::{
    Stack, TestApp, User, assert_problem, random_bytes, spawn_app_with, spawn_cluster,
};

crate::on_both_stacks!(
    the_quota_holds_for_every_kind_of_upload,
    a_deferred_tus_upload_stops_at_the_quota_and_keeps_what_came_before,
    uploads_created_at_once_never_reserve_past_the_quota,
);

const QUOTA: &str = "10000";

async fn me(app: &TestApp, user: &User) -> Value {
    app.get_authed("/api/v1/me", &user.access_token)
        .await
        .json()
        .await
        .unwrap()
}

/// `stowage_quota_rejections_total` for direct, multipart and tus.
async fn rejections_now(app: &TestApp) -> Vec<f64> {
    let mut counts = Vec::new();
    for kind in ["direct", "multipart", "tus"] {
        let line = format!(r#"stowage_quota_rejections_total{{kind="{kind}"}}"#);
        counts.push(app.metric(&line).await);
    }
    counts
}

async fn tus_create(app: &TestApp, user: &User, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/tus"))
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header(
            "Upload-Metadata",
            format!("filename {}", B64.encode("t.bin")),
        );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn tus_patch(
    app: &TestApp,
    user: &User,
    url: &str,
    offset: usize,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .patch(url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn the_quota_holds_for_every_kind_of_upload(stack: Stack) {
    let app = spawn_app_with(stack, &[("--default-quota", QUOTA)]).await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let account = me(&app, &user).await;
    assert_eq!(account["quota_bytes"], 10000);
    assert_eq!(
        account["usage"],
        json!({"files": 0, "bytes": 0, "reserved_bytes": 0})
    );

    // A reservation is made at creation.
    let first = app
        .create_upload(token, &json!({"name": "big.bin", "size": 6000}))
        .await;
    assert_eq!(me(&app, &user).await["usage"]["reserved_bytes"], 6000);
    let before = rejections_now(&app).await;

    // What would pass the quota is refused, whatever the kind.
    let res = app
        .post_authed(
            "/api/v1/uploads",
            token,
            &json!({"name": "more.bin", "size": 4001}),
        )
        .await;
    let problem = assert_problem(res, 413, "quota_exceeded").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("10000") && detail.contains("6000"),
        "{detail}"
    );
    let res = app
        .post_authed(
            "/api/v1/uploads/batch",
            token,
            &json!({"files": [{"name": "a", "size": 2000}, {"name": "b", "size": 2001}]}),
        )
        .await;
    assert_problem(res, 413, "quota_exceeded").await;
    let res = app
        .post_authed(
            "/api/v1/uploads/multipart",
            token,
            &json!({"name": "more.bin", "size": 4001}),
        )
        .await;
    assert_problem(res, 413, "quota_exceeded").await;
    let res = tus_create(&app, &user, &[("Upload-Length", "4001")]).await;
    assert_problem(res, 413, "quota_exceeded").await;
    let after = rejections_now(&app).await;
    assert!(
        after[0] >= before[0] + 2.0,
        "direct: {before:?} -> {after:?}"
    );
    assert!(
        after[1] > before[1] && after[2] > before[2],
        "{before:?} -> {after:?}"
    );
    // Nothing was reserved by the refusals; exactly what fits still fits.
    assert_eq!(me(&app, &user).await["usage"]["reserved_bytes"], 6000);
    let res = app
        .post_authed(
            "/api/v1/uploads/multipart",
            token,
            &json!({"name": "fits.bin", "size": 4000}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let multipart: Value = res.json().await.unwrap();
    // An abort gives its reservation back.
    let upload = multipart["upload_id"].as_str().unwrap();
    let res = app
        .delete_authed(&format!("/api/v1/uploads/multipart/{upload}"), token)
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(me(&app, &user).await["usage"]["reserved_bytes"], 6000);

    // Completion turns the reservation into stored bytes.
    let res = app
        .put_to_ticket(&first["upload"], random_bytes(6000))
        .await;
    assert_eq!(res.status(), 200);
    let id = first["file"]["id"].as_str().unwrap();
    app.announce_put(&user.id, id, 6000).await;
    app.wait_available(token, id, 20).await;
    assert_eq!(
        me(&app, &user).await["usage"],
        json!({"files": 1, "bytes": 6000, "reserved_bytes": 0})
    );
    // The trash still counts.
    let res = app
        .delete_authed(&format!("/api/v1/files/{id}"), token)
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        me(&app, &user).await["usage"],
        json!({"files": 0, "bytes": 6000, "reserved_bytes": 0})
    );
    let res = app
        .post_authed(
            "/api/v1/uploads",
            token,
            &json!({"name": "again.bin", "size": 4001}),
        )
        .await;
    assert_problem(res, 413, "quota_exceeded").await;
    // A folder costs nothing.
    let res = app
        .post_authed("/api/v1/folders", token, &json!({"name": "free"}))
        .await;
    assert_eq!(res.status(), 201);
}

async fn a_deferred_tus_upload_stops_at_the_quota_and_keeps_what_came_before(stack: Stack) {
    let app = spawn_app_with(stack, &[("--default-quota", QUOTA)]).await;
    let user = app.new_user().await;
    let res = tus_create(&app, &user, &[("Upload-Defer-Length", "1")]).await;
    assert_eq!(res.status(), 201);
    let url = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(me(&app, &user).await["usage"]["reserved_bytes"], 0);
    let res = tus_patch(&app, &user, &url, 0, random_bytes(6000)).await;
    assert_eq!(res.status(), 204);
    // The next 4001 bytes would pass the quota: refused, the first kept.
    let res = tus_patch(&app, &user, &url, 6000, random_bytes(4001)).await;
    assert_problem(res, 413, "quota_exceeded").await;
    let head = app
        .client
        .head(&url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["upload-offset"], "6000");
    // Declaring a length past the quota is refused too; one that fits ends it.
    let res = app
        .client
        .patch(&url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "6000")
        .header("Upload-Length", "10001")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "quota_exceeded").await;
    let res = app
        .client
        .patch(&url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "6000")
        .header("Upload-Length", "10000")
        .body(random_bytes(4000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_eq!(
        me(&app, &user).await["usage"],
        json!({"files": 1, "bytes": 10000, "reserved_bytes": 0})
    );
}

/// Creates `n` direct uploads of `size` bytes at once, spread over `apps`;
/// returns how many were created and how many refused for the quota.
async fn create_at_once(apps: &[TestApp], user: &User, n: usize, size: u64) -> (usize, usize) {
    let attempts = (0..n).map(|i| {
        let app = &apps[i % apps.len()];
        let body = json!({"name": format!("race-{i}.bin"), "size": size});
        async move {
            app.post_authed("/api/v1/uploads", &user.access_token, &body)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 413).count();
    assert_eq!(created + refused, n, "{statuses:?}");
    (created, refused)
}

async fn uploads_created_at_once_never_reserve_past_the_quota(stack: Stack) {
    let app = spawn_app_with(stack, &[("--default-quota", QUOTA)]).await;
    let user = app.new_user().await;
    let apps = [app];
    assert_eq!(create_at_once(&apps, &user, 50, 1000).await, (10, 40));
    assert_eq!(me(&apps[0], &user).await["usage"]["reserved_bytes"], 10000);
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn fifty_uploads_on_three_instances_never_reserve_past_the_quota() {
    Stack::Services.require();
    let apps = spawn_cluster(3, &[("--default-quota", QUOTA)]).await;
    let user = apps[0].new_user().await;
    assert_eq!(create_at_once(&apps, &user, 50, 1000).await, (10, 40));
    for app in &apps {
        assert_eq!(me(app, &user).await["usage"]["reserved_bytes"], 10000);
    }
}
