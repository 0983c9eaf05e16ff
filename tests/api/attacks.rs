//! Regression tests for what an attacker found: each failed before its fix.

use serde_json::{Value, json};

use crate::helpers::{Stack, assert_problem, spawn_app, spawn_app_with};

crate::on_both_stacks!(
    a_tus_metadata_flood_is_refused_cheaply,
    no_spelling_of_a_path_escapes_its_budget,
    forwarded_for_names_the_client_only_behind_a_trusted_proxy,
    an_expired_file_is_not_served_before_the_janitor_comes,
);

/// An `Upload-Metadata` header of ~34,000 keys once cost seconds of CPU on
/// an HTTP worker (a quadratic duplicate check); now it is refused at once,
/// and so is a header over the key or size cap.
async fn a_tus_metadata_flood_is_refused_cheaply(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let post = async |metadata: String| {
        app.client
            .post(app.url("/api/v1/tus"))
            .bearer_auth(&user.access_token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "10")
            .header("Upload-Metadata", metadata)
            .send()
            .await
            .unwrap()
    };
    let keys = |n: usize| -> String {
        (0..n)
            .map(|i| format!("k{i} dg=="))
            .collect::<Vec<_>>()
            .join(",")
    };
    // 34,000 unique short keys in ~130 KB, so only the caps can refuse it
    // (it was 201, after seconds of CPU, before them).
    let short = |mut i: usize| {
        let mut key = String::new();
        loop {
            key.push(char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]));
            i /= 36;
            if i == 0 {
                break key;
            }
        }
    };
    let flood = (0..34_000).map(short).collect::<Vec<_>>().join(",");
    assert!((100_000..140_000).contains(&flood.len()), "{}", flood.len());
    assert_problem(post(flood).await, 400, "invalid_header").await;
    assert_problem(post(keys(65)).await, 400, "invalid_header").await;
    let fine = post(format!("filename {},{}", "YS50eHQ=", keys(63))).await;
    assert_eq!(fine.status(), 201, "{:?}", fine.text().await);
}

/// `/%61pi/v1/auth/login` reached login without spending the login budget,
/// and `/%61pi/v1/me` the user's. Every spelling the router accepts now
/// spends the budget of the route it reaches.
async fn no_spelling_of_a_path_escapes_its_budget(stack: Stack) {
    let app = spawn_app_with(
        stack,
        &[
            ("--rate-limit-auth", "4/min"),
            ("--rate-limit-api", "4/min"),
        ],
    )
    .await;
    let user = app.new_user().await; // signup: one of the four
    let login = async |path: &str| {
        app.client
            .post(format!("{}{path}", app.address))
            .json(&json!({"email": user.email, "password": "wrong password"}))
            .send()
            .await
            .unwrap()
    };
    let spellings = [
        "/%61pi/v1/auth/login",
        "/api/v1/auth/%6Cogin",
        "/api/%76%31/%61%75%74%68/login",
        "/api/v1/auth/login",
    ];
    for path in &spellings[..3] {
        assert_eq!(login(path).await.status(), 401, "{path}");
    }
    for path in spellings {
        assert_problem(login(path).await, 429, "rate_limited").await;
    }

    let me = async |path: &str| {
        app.client
            .get(format!("{}{path}", app.address))
            .bearer_auth(&user.access_token)
            .send()
            .await
            .unwrap()
    };
    for path in [
        "/%61pi/v1/me",
        "/api/v1/%6De",
        "/api/v1/me",
        "/api/%76%31/me",
    ] {
        assert_eq!(me(path).await.status(), 200, "{path}");
    }
    for path in ["/%61pi/v1/me", "/api/v1/%6De", "/api/v1/me"] {
        assert_problem(me(path).await, 429, "rate_limited").await;
    }
}

/// Behind a trusted proxy each client has its own login budget; without
/// one, a client cannot escape its budget by writing `X-Forwarded-For`.
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy(stack: Stack) {
    let login = async |app: &crate::helpers::TestApp, forwarded: &str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("X-Forwarded-For", forwarded)
            .json(&json!({"email": "nobody@example.com", "password": "wrong password"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let behind = spawn_app_with(
        stack,
        &[
            ("--rate-limit-auth", "2/min"),
            ("--trusted-proxies", "127.0.0.0/8"),
        ],
    )
    .await;
    // A client's own claim stands left of what the proxy appended.
    assert_eq!(login(&behind, "6.6.6.6, 198.51.100.1").await, 401);
    assert_eq!(login(&behind, "7.7.7.7, 198.51.100.1").await, 401);
    assert_eq!(login(&behind, "8.8.8.8, 198.51.100.1").await, 429);
    assert_eq!(login(&behind, "198.51.100.2").await, 401);

    let direct = spawn_app_with(stack, &[("--rate-limit-auth", "2/min")]).await;
    assert_eq!(login(&direct, "198.51.100.1").await, 401);
    assert_eq!(login(&direct, "198.51.100.2").await, 401);
    assert_eq!(login(&direct, "198.51.100.3").await, 429);
}

/// A file past its `expires_at` was served (content, download URL, public
/// link) until the next janitor sweep; expiry now holds at once.
async fn an_expired_file_is_not_served_before_the_janitor_comes(stack: Stack) {
    let app = spawn_app_with(stack, &[("--janitor-interval", "1h")]).await;
    let user = app.new_user().await;
    let file = app.upload_file(&user, "brief.txt", b"for a moment").await;
    let id = file["id"].as_str().unwrap();
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let res = app
        .patch_file(
            &user.access_token,
            id,
            &json!({"visibility": "public", "expires_at": soon.to_rfc3339()}),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let public_url = res.json::<Value>().await.unwrap()["public_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let content = async || {
        no_redirects
            .get(app.url(&format!("/api/v1/files/{id}/content")))
            .bearer_auth(&user.access_token)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(content().await.status(), 302);
    assert_eq!(
        no_redirects.get(&public_url).send().await.unwrap().status(),
        302
    );

    actix_web::rt::time::sleep((soon - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    assert_problem(content().await, 410, "file_expired").await;
    let url = app
        .get_authed(
            &format!("/api/v1/files/{id}/download-url"),
            &user.access_token,
        )
        .await;
    assert_problem(url, 410, "file_expired").await;
    let public = no_redirects.get(&public_url).send().await.unwrap();
    assert_problem(public, 404, "public_link_not_found").await;
}

/// The data dir, the SQLite file and the blobs were world-readable
/// (0755/0644). Now nothing under the data dir is open to group or others.
#[actix_web::test]
async fn the_data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app(Stack::Embedded).await;
    let user = app.new_user().await;
    app.upload_file(&user, "secret.txt", b"for my eyes only")
        .await;
    crate::tus::create(&app, &user, 100, "staged.txt").await;
    let mut seen = 0;
    let mut todo = vec![app.data_dir.clone()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        seen += 1;
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(seen > 10, "only {seen} paths under the data dir");
    assert!(app.data_dir.join("stowage.db").exists());
}
