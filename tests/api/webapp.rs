//! The web app as the server serves it (its page at `/` and at client
//! routes a browser navigates to, hashed assets, its policy, a share link
//! opened in a browser), and the app itself end to end in Chromium
//! (`web/e2e/run.mjs` with playwright-core) against the real binary, on
//! both stacks.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use serde_json::json;

use crate::helpers::{Stack, spawn_app};
use crate::process::Server;

/// A browser's request for a page.
const NAVIGATE: (&str, &str) = ("sec-fetch-mode", "navigate");

#[actix_web::test]
#[cfg_attr(
    not(stowage_web_app),
    ignore = "needs the built web app: Node.js 20+ (cargo builds web/ when it is there)"
)]
async fn the_app_is_served_at_its_routes_under_a_strict_policy() {
    let app = spawn_app(Stack::Embedded).await;
    let page = app
        .client
        .get(app.url("/"))
        .header(NAVIGATE.0, NAVIGATE.1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.headers()[CACHE_CONTROL], "no-cache");
    let csp = page.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<div id="app">"#), "{html}");
    // Every script the page loads is a hashed asset: no inline script.
    assert!(!html.contains("<script>"), "{html}");
    let script = html
        .split(r#"src=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads a script");
    assert!(script.starts_with("/assets/"), "{script}");
    let asset = app.client.get(app.url(script)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert!(
        asset.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(
        asset.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );

    // A client route is the app's page to a browser, and 404 to anyone else.
    let client_route = app
        .client
        .get(app.url("/folders/0192a7c4-0000-7000-8000-000000000000"))
        .header(NAVIGATE.0, NAVIGATE.1)
        .send()
        .await
        .unwrap();
    assert_eq!(client_route.status(), 200);
    assert!(
        client_route
            .text()
            .await
            .unwrap()
            .contains(r#"<div id="app">"#)
    );
    let data = app.client.get(app.url("/folders/x")).send().await.unwrap();
    assert_eq!(data.status(), 404);
    assert_eq!(data.headers()[CONTENT_TYPE], "application/problem+json");
    // The API's addresses stay the API's, even for a browser.
    let api = app
        .client
        .get(app.url("/api/v1/no-such-route"))
        .header(NAVIGATE.0, NAVIGATE.1)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(api.headers()[CONTENT_TYPE], "application/problem+json");
    let missing = app
        .client
        .get(app.url("/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let index = app.client.get(app.url("/index.html")).send().await.unwrap();
    assert_eq!(index.status(), 404, "only / serves the page itself");
}

/// A share link opened in a browser: the app's page for a folder or a
/// password (which the app asks for), the download itself for a plain
/// file link; API clients get what they always got.
#[actix_web::test]
#[cfg_attr(
    not(stowage_web_app),
    ignore = "needs the built web app: Node.js 20+ (cargo builds web/ when it is there)"
)]
async fn a_share_link_opens_the_app_in_a_browser_and_downloads_a_plain_file() {
    let app = spawn_app(Stack::Embedded).await;
    let owner = app.new_user().await;
    let file = app.upload_file(&owner, "plain.txt", b"plain").await;
    let file_id = file["id"].as_str().unwrap();
    let link = |kind: &'static str, id: String, body: serde_json::Value| {
        let app = &app;
        let token = owner.access_token.clone();
        async move {
            let res = app
                .post_authed(&format!("/api/v1/{kind}/{id}/links"), &token, &body)
                .await;
            assert_eq!(res.status(), 201);
            let made: serde_json::Value = res.json().await.unwrap();
            made["url"].as_str().unwrap().to_owned()
        }
    };
    let plain = link("files", file_id.to_owned(), json!({})).await;
    let guarded = link("files", file_id.to_owned(), json!({"password": "pw pw pw"})).await;
    let folder = app
        .post_authed(
            "/api/v1/folders",
            &owner.access_token,
            &json!({"name": "F"}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let folder_link = link(
        "folders",
        folder["id"].as_str().unwrap().to_owned(),
        json!({}),
    )
    .await;
    let browse = |url: String| {
        let client = app.client.clone();
        async move {
            client
                .get(url)
                .header(NAVIGATE.0, NAVIGATE.1)
                .send()
                .await
                .unwrap()
        }
    };
    let res = browse(plain.clone()).await;
    assert_eq!(res.status(), 302, "a plain file link downloads");
    // Used up: the browser gets the app's page (which says so), an API
    // client the problem.
    let once = link("files", file_id.to_owned(), json!({"max_downloads": 1})).await;
    assert_eq!(browse(once.clone()).await.status(), 302);
    let spent = browse(once.clone()).await;
    assert_eq!(spent.status(), 200);
    assert!(spent.text().await.unwrap().contains(r#"<div id="app">"#));
    let res = app.client.get(&once).send().await.unwrap();
    assert_eq!(res.status(), 410);
    for url in [guarded.clone(), folder_link.clone(), format!("{plain}x")] {
        let res = browse(url.clone()).await;
        assert_eq!(res.status(), 200, "{url}");
        assert!(
            res.text().await.unwrap().contains(r#"<div id="app">"#),
            "{url}"
        );
    }
    // Without navigating, the link answers as the API always did.
    let res = app.client.get(&guarded).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app.client.get(&folder_link).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
}

/// `web/e2e/run.mjs` against the real binary: exits 0 only when every step
/// of the two people's (and the logged-out visitor's) walk worked.
async fn in_chromium(stack: Stack) {
    let server = Server::start(stack).await;
    let base = server.base.clone();
    let label = match stack {
        Stack::Embedded => "embedded",
        Stack::Services => "services",
    };
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("e2e/run.mjs")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/web"))
            .env("BASE_URL", &base)
            .env("STACK", label)
            .output()
            .expect("node runs the end-to-end walk")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the web app failed in Chromium:\n{text}"
    );
    drop(server);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_browser),
    ignore = "needs the built web app and Chromium at /usr/bin/chromium (see README)"
)]
async fn the_web_app_works_in_chromium_on_the_embedded_stack() {
    in_chromium(Stack::Embedded).await;
}

#[actix_web::test]
#[cfg_attr(
    not(all(stowage_browser, stowage_services)),
    ignore = "needs the built web app, Chromium, and PostgreSQL, S3 and NATS (see README)"
)]
async fn the_web_app_works_in_chromium_on_the_services_stack() {
    Stack::Services.require();
    in_chromium(Stack::Services).await;
}
