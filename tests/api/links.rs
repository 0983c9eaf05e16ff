//! Share links at `/s/{token}`: files by redirect with counted downloads,
//! folders as listings of what is below them, passwords, expiry, limits and
//! revocation; on both stacks.

use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, User, assert_problem, spawn_app, spawn_app_with};

crate::on_both_stacks!(
    a_password_link_with_one_download_serves_it_once,
    two_downloads_at_once_of_a_one_download_link_give_one_file,
    a_folder_link_shows_what_is_below_it_and_nothing_else,
    unlock_sets_a_cookie_that_opens_that_link_only,
    password_guesses_are_limited_per_link,
    links_are_their_owners_alone,
    a_drop_folder_takes_uploads_from_anyone_for_its_owner,
);

async fn link(app: &TestApp, user: &User, what: &str, id: &str, body: Value) -> Response {
    app.post_authed(
        &format!("/api/v1/{what}/{id}/links"),
        &user.access_token,
        &body,
    )
    .await
}

/// Creates a link; asserts 201 and returns it.
async fn make_link(app: &TestApp, user: &User, what: &str, id: &str, body: Value) -> Value {
    let res = link(app, user, what, id, body).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

/// `GET` a link URL (or a path below it) without any token.
async fn open(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = app.client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn fetch(app: &TestApp, res: Response) -> Vec<u8> {
    assert_eq!(res.status(), 302, "{:?}", res.text().await);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let res = app.client.get(location).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap().to_vec()
}

async fn mkdir(app: &TestApp, user: &User, name: &str, parent: Option<&str>) -> String {
    let res = app
        .post_authed(
            "/api/v1/folders",
            &user.access_token,
            &json!({"name": name, "parent_id": parent}),
        )
        .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn upload_into(app: &TestApp, user: &User, parent: &str, name: &str, bytes: &[u8]) -> String {
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": name, "size": bytes.len(), "parent_id": parent}),
        )
        .await;
    let res = app.put_to_ticket(&created["upload"], bytes.to_vec()).await;
    assert_eq!(res.status(), 200);
    let id = created["file"]["id"].as_str().unwrap().to_owned();
    app.announce_put(&user.id, &id, bytes.len() as u64).await;
    app.wait_available(&user.access_token, &id, 20).await;
    id
}

async fn a_password_link_with_one_download_serves_it_once(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let file = app
        .upload_file(&owner, "contract.pdf", b"signed copy")
        .await;
    let id = file["id"].as_str().unwrap();
    let before = app.metric("stowage_link_downloads_total").await;
    let created = make_link(
        &app,
        &owner,
        "files",
        id,
        json!({"password": "open sesame", "max_downloads": 1}),
    )
    .await;
    assert_eq!(created["item_id"], id);
    assert_eq!(
        (
            created["item_type"].as_str(),
            created["mode"].as_str(),
            created["has_password"].as_bool(),
            created["max_downloads"].as_i64(),
            created["downloads"].as_i64()
        ),
        (Some("file"), Some("view"), Some(true), Some(1), Some(0))
    );
    assert!(created["expires_at"].is_null() && created["created_at"].is_string());
    let url = created["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/s/")), "{url}");
    assert!(!created.to_string().contains("open sesame"));

    assert_problem(open(&app, url, &[]).await, 401, "link_password_required").await;
    assert_problem(
        open(&app, url, &[("Link-Password", "guess")]).await,
        401,
        "link_password_invalid",
    )
    .await;
    let res = open(&app, url, &[("Link-Password", "open sesame")]).await;
    assert_eq!(fetch(&app, res).await, b"signed copy");
    assert_problem(
        open(&app, url, &[("Link-Password", "open sesame")]).await,
        410,
        "link_exhausted",
    )
    .await;
    assert!(app.metric("stowage_link_downloads_total").await >= before + 1.0);
    let listed: Value = app
        .get_authed(&format!("/api/v1/files/{id}/links"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["downloads"], 1);

    // Expiry: 410 from the instant it passes.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let expiring = make_link(&app, &owner, "files", id, json!({"expires_at": soon})).await;
    let url = expiring["url"].as_str().unwrap();
    assert_eq!(open(&app, url, &[]).await.status(), 302);
    actix_web::rt::time::sleep(Duration::from_millis(1200)).await;
    assert_problem(open(&app, url, &[]).await, 410, "link_expired").await;

    // Revoked: 404.
    let plain = make_link(&app, &owner, "files", id, json!({})).await;
    let res = app
        .delete_authed(
            &format!("/api/v1/links/{}", plain["id"].as_str().unwrap()),
            &owner.access_token,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(
        open(&app, plain["url"].as_str().unwrap(), &[]).await,
        404,
        "link_not_found",
    )
    .await;
    assert_problem(
        open(&app, &app.url("/s/not-a-token"), &[]).await,
        404,
        "link_not_found",
    )
    .await;
}

async fn two_downloads_at_once_of_a_one_download_link_give_one_file(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let file = app.upload_file(&owner, "once.bin", b"only once").await;
    let created = make_link(
        &app,
        &owner,
        "files",
        file["id"].as_str().unwrap(),
        json!({"max_downloads": 1}),
    )
    .await;
    let url = created["url"].as_str().unwrap();
    let attempts = (0..8).map(|_| open(&app, url, &[]));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 302).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 410).count(),
        7,
        "{statuses:?}"
    );
}

async fn a_folder_link_shows_what_is_below_it_and_nothing_else(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let shared = mkdir(&app, &owner, "Shared", None).await;
    let sub = mkdir(&app, &owner, "sub", Some(&shared)).await;
    let inside = upload_into(&app, &owner, &sub, "inside.txt", b"inside").await;
    let top_file = upload_into(&app, &owner, &shared, "top.txt", b"top").await;
    let outside = app.upload_file(&owner, "outside.txt", b"outside").await;
    let outside = outside["id"].as_str().unwrap();
    let created = make_link(&app, &owner, "folders", &shared, json!({})).await;
    assert_eq!(created["item_type"], "folder");
    let url = created["url"].as_str().unwrap().to_owned();

    let res = open(&app, &url, &[]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["folder"]["id"], shared.as_str());
    assert_eq!(body["folder"]["role"], "viewer");
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sub", "top.txt"]);
    let res = open(&app, &format!("{url}/items/{sub}"), &[]).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["items"][0]["id"], inside.as_str());
    let res = open(&app, &format!("{url}/items/{inside}"), &[]).await;
    assert_eq!(fetch(&app, res).await, b"inside");
    let res = open(&app, &format!("{url}/items/{top_file}"), &[]).await;
    assert_eq!(fetch(&app, res).await, b"top");
    // Outside the folder, or nothing at all: 404, the same answer.
    for other in [outside.to_owned(), uuid::Uuid::now_v7().to_string()] {
        assert_problem(
            open(&app, &format!("{url}/items/{other}"), &[]).await,
            404,
            "link_not_found",
        )
        .await;
    }
    // A file's link has nothing below it.
    let file_link = make_link(&app, &owner, "files", &top_file, json!({})).await;
    assert_problem(
        open(
            &app,
            &format!("{}/items/{inside}", file_link["url"].as_str().unwrap()),
            &[],
        )
        .await,
        404,
        "link_not_found",
    )
    .await;
    // Trashed with its folder: the link leads nowhere.
    let res = app
        .delete_authed(&format!("/api/v1/folders/{sub}"), &owner.access_token)
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(
        open(&app, &format!("{url}/items/{inside}"), &[]).await,
        404,
        "link_not_found",
    )
    .await;
    // An upload-only link is for folders, and lists nothing.
    assert_problem(
        link(&app, &owner, "files", &top_file, json!({"mode": "upload"})).await,
        400,
        "invalid_field",
    )
    .await;
    let drop = make_link(&app, &owner, "folders", &shared, json!({"mode": "upload"})).await;
    assert_eq!(drop["mode"], "upload");
    assert_problem(
        open(&app, drop["url"].as_str().unwrap(), &[]).await,
        404,
        "link_upload_only",
    )
    .await;
}

async fn unlock_sets_a_cookie_that_opens_that_link_only(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let file = app.upload_file(&owner, "secret.txt", b"secret").await;
    let id = file["id"].as_str().unwrap();
    let first = make_link(&app, &owner, "files", id, json!({"password": "pw one"})).await;
    let second = make_link(&app, &owner, "files", id, json!({"password": "pw two"})).await;
    let url = first["url"].as_str().unwrap();
    let unlock = |body: Value| {
        let url = format!("{url}/unlock");
        let client = app.client.clone();
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    assert_problem(
        unlock(json!({"password": "nope"})).await,
        401,
        "link_password_invalid",
    )
    .await;
    let res = unlock(json!({"password": "pw one"})).await;
    assert_eq!(res.status(), 204);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    let path = format!("Path=/s/{}", url.rsplit('/').next().unwrap());
    assert!(set.contains(&path), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let res = open(&app, url, &[("Cookie", &cookie)]).await;
    assert_eq!(fetch(&app, res).await, b"secret");
    // The same cookie does not open another link.
    assert_problem(
        open(
            &app,
            second["url"].as_str().unwrap(),
            &[("Cookie", &cookie)],
        )
        .await,
        401,
        "link_password_required",
    )
    .await;
    // A forged one opens nothing.
    assert_problem(
        open(&app, url, &[("Cookie", "stowage_link=99999999999.00ff")]).await,
        401,
        "link_password_required",
    )
    .await;
}

async fn password_guesses_are_limited_per_link(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let file = app.upload_file(&owner, "vault.txt", b"vault").await;
    let created = make_link(
        &app,
        &owner,
        "files",
        file["id"].as_str().unwrap(),
        json!({"password": "correct horse"}),
    )
    .await;
    let url = created["url"].as_str().unwrap();
    let mut limited = None;
    for i in 0..20 {
        // A cookie, forged or not, buys no extra guesses.
        let cookie = if i % 2 == 0 {
            "stowage_link=1.00"
        } else {
            "x=y"
        };
        let res = open(&app, url, &[("Link-Password", "wrong"), ("Cookie", cookie)]).await;
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
            limited = Some(i);
            break;
        }
        assert_eq!(res.status(), 401);
    }
    assert_eq!(limited, Some(10), "ten guesses a minute, then 429");
    // Even the right password waits now.
    assert_eq!(
        open(&app, url, &[("Link-Password", "correct horse")])
            .await
            .status(),
        429
    );
}

async fn links_are_their_owners_alone(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let viewer = app.new_user().await;
    let stranger = app.new_user().await;
    let file = app.upload_file(&owner, "mine.txt", b"mine").await;
    let id = file["id"].as_str().unwrap();
    let folder = mkdir(&app, &owner, "mine", None).await;
    let res = app
        .post_authed(
            &format!("/api/v1/files/{id}/shares"),
            &owner.access_token,
            &json!({"email": viewer.email, "role": "editor"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created = make_link(&app, &owner, "files", id, json!({})).await;
    let link_id = created["id"].as_str().unwrap();

    // A sharee sees the file but may not link it.
    assert_problem(
        link(&app, &viewer, "files", id, json!({})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get_authed(&format!("/api/v1/files/{id}/links"), &viewer.access_token)
            .await,
        403,
        "forbidden",
    )
    .await;
    // A stranger learns nothing.
    assert_problem(
        link(&app, &stranger, "files", id, json!({})).await,
        404,
        "file_not_found",
    )
    .await;
    assert_problem(
        link(&app, &stranger, "folders", &folder, json!({})).await,
        404,
        "folder_not_found",
    )
    .await;
    for who in [&viewer, &stranger] {
        assert_problem(
            app.delete_authed(&format!("/api/v1/links/{link_id}"), &who.access_token)
                .await,
            404,
            "link_not_found",
        )
        .await;
    }
    // Bad input changes nothing.
    for body in [
        json!({"max_downloads": 0}),
        // Past what a signed 64-bit count holds (it was clamped once).
        json!({"max_downloads": 9_223_372_036_854_775_808_u64}),
        json!({"password": ""}),
        json!({"expires_at": "2001-01-01T00:00:00Z"}),
        json!({"mode": "edit"}),
        json!({"nonsense": true}),
    ] {
        let res = link(&app, &owner, "files", id, body.clone()).await;
        assert_eq!(res.status(), 400, "{body}");
    }
    let listed: Value = app
        .get_authed(&format!("/api/v1/files/{id}/links"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn a_one_download_link_raced_on_three_instances_serves_once() {
    crate::helpers::Stack::Services.require();
    let apps = crate::helpers::spawn_cluster(3, &[]).await;
    let owner = apps[0].new_user().await;
    let file = apps[0].upload_file(&owner, "once.bin", b"only once").await;
    for round in 0..5 {
        let created = make_link(
            &apps[0],
            &owner,
            "files",
            file["id"].as_str().unwrap(),
            json!({"max_downloads": 1}),
        )
        .await;
        let token = created["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let attempts = (0..30).map(|i| {
            let app = &apps[i % apps.len()];
            let url = app.url(&format!("/s/{token}"));
            async move { app.client.get(url).send().await.unwrap().status().as_u16() }
        });
        let statuses = futures_util::future::join_all(attempts).await;
        assert_eq!(
            statuses.iter().filter(|s| **s == 302).count(),
            1,
            "round {round}: {statuses:?}"
        );
    }
}

/// A tus request to a drop link, with no token.
async fn drop_tus(
    app: &TestApp,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Response {
    let mut req = app
        .client
        .request(method, url)
        .header("Tus-Resumable", "1.0.0");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.body(body).send().await.unwrap()
}

async fn a_drop_folder_takes_uploads_from_anyone_for_its_owner(stack: Stack) {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let app = spawn_app_with(stack, &[("--default-quota", "100")]).await;
    let owner = app.new_user().await;
    let inbox = mkdir(&app, &owner, "Inbox", None).await;
    upload_into(&app, &owner, &inbox, "report.pdf", b"mine").await;
    let drop = make_link(&app, &owner, "folders", &inbox, json!({"mode": "upload"})).await;
    let tus_url = format!("{}/tus", drop["url"].as_str().unwrap());
    let meta = format!("filename {}", b64("report.pdf"));

    // Creation with upload: the owner's file, renamed past the clash.
    let res = drop_tus(
        &app,
        reqwest::Method::POST,
        &tus_url,
        &[
            ("Upload-Length", "5".into()),
            ("Upload-Metadata", meta.clone()),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
        b"first".to_vec(),
    )
    .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&tus_url), "{location}");
    // Chunked: created, then PATCHed and HEADed through the link.
    let res = drop_tus(
        &app,
        reqwest::Method::POST,
        &tus_url,
        &[
            ("Upload-Length", "6".into()),
            ("Upload-Metadata", meta.clone()),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(res.status(), 201);
    let second = res.headers()["location"].to_str().unwrap().to_owned();
    let res = drop_tus(
        &app,
        reqwest::Method::PATCH,
        &second,
        &[
            ("Upload-Offset", "0".into()),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
        b"second".to_vec(),
    )
    .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    let res = drop_tus(&app, reqwest::Method::HEAD, &second, &[], Vec::new()).await;
    assert_eq!(res.headers()["upload-offset"], "6");

    let page: Value = app
        .get_authed(
            &format!("/api/v1/folders/{inbox}/children"),
            &owner.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["owner_id"].as_str().unwrap()))
        .collect();
    let me = owner.id.as_str();
    assert_eq!(
        names,
        [
            ("report (1).pdf", me),
            ("report (2).pdf", me),
            ("report.pdf", me)
        ]
    );
    let id = page["items"][1]["id"].as_str().unwrap();
    assert_eq!(app.download(&owner.access_token, id).await, b"second");
    // It lists nothing, and its uploads are the link's alone.
    assert_problem(
        open(&app, drop["url"].as_str().unwrap(), &[]).await,
        404,
        "link_upload_only",
    )
    .await;
    let view = make_link(&app, &owner, "folders", &inbox, json!({})).await;
    let upload_id = second.rsplit('/').next().unwrap();
    let elsewhere = format!("{}/tus/{upload_id}", view["url"].as_str().unwrap());
    let res = drop_tus(&app, reqwest::Method::HEAD, &elsewhere, &[], Vec::new()).await;
    assert_eq!(res.status(), 404);
    // The owner's quota holds: 4 + 5 + 6 of 100 are used.
    let res = drop_tus(
        &app,
        reqwest::Method::POST,
        &tus_url,
        &[
            ("Upload-Length", "86".into()),
            ("Upload-Metadata", meta.clone()),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(res.status(), 413);
    // Revoked: nothing more comes in.
    let res = app
        .delete_authed(
            &format!("/api/v1/links/{}", drop["id"].as_str().unwrap()),
            &owner.access_token,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = drop_tus(
        &app,
        reqwest::Method::POST,
        &tus_url,
        &[("Upload-Length", "1".into()), ("Upload-Metadata", meta)],
        Vec::new(),
    )
    .await;
    assert_eq!(res.status(), 404);
}
