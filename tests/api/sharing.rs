//! Sharing, shortcuts and the views; the permission table, role by role.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, User, assert_problem, spawn_app};

crate::on_both_stacks!(
    share_as_viewer_then_editor_shortcut_then_revoke,
    every_role_meets_the_permission_table,
    sharing_refuses_what_makes_no_sense,
    shares_and_renames_at_once_all_succeed,
);

async fn share(
    app: &TestApp,
    owner: &User,
    file: &str,
    email: &str,
    role: &str,
) -> reqwest::Response {
    app.post_authed(
        &format!("/api/v1/files/{file}/shares"),
        &owner.access_token,
        &json!({"email": email, "role": role}),
    )
    .await
}

async fn view(app: &TestApp, user: &User, name: &str) -> Vec<Value> {
    let page: Value = app
        .get_authed(&format!("/api/v1/files?view={name}"), &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn share_as_viewer_then_editor_shortcut_then_revoke(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let sharee = app.new_user().await;
    let mut events = app.bus.subscribe();
    let file = app.upload_file(&owner, "plans.txt", b"the plans").await;
    let id = file["id"].as_str().unwrap();

    let res = share(&app, &owner, id, &sharee.email.to_uppercase(), "viewer").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["user_id"].as_str(), body["role"].as_str()),
        (Some(sharee.id.as_str()), Some("viewer"))
    );
    assert_eq!(body["email"], sharee.email.as_str());
    assert!(body["created_at"].is_string());

    let shared = view(&app, &sharee, "shared").await;
    assert_eq!(shared.len(), 1);
    assert_eq!(
        (shared[0]["id"].as_str(), shared[0]["role"].as_str()),
        (Some(id), Some("viewer"))
    );
    assert_eq!(app.download(&sharee.access_token, id).await, b"the plans");
    assert_problem(
        app.patch_file(&sharee.access_token, id, &json!({"name": "mine.txt"}), None)
            .await,
        403,
        "forbidden",
    )
    .await;
    assert!(
        view(&app, &owner, "shared").await.is_empty(),
        "the owner's own files are not 'shared with me'"
    );

    // Again, as editor: the role changes (200), and renaming is allowed.
    let res = share(&app, &owner, id, &sharee.email, "editor").await;
    assert_eq!(res.status(), 200);
    let renamed: Value = app
        .patch_file(
            &sharee.access_token,
            id,
            &json!({"name": "plans v2.txt"}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (renamed["name"].as_str(), renamed["role"].as_str()),
        (Some("plans v2.txt"), Some("editor"))
    );
    let listed: Value = app
        .get_authed(&format!("/api/v1/files/{id}/shares"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["role"], "editor");

    // A shortcut, once.
    let res = app
        .post_authed(
            "/api/v1/shortcuts",
            &sharee.access_token,
            &json!({"file_id": id}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let shortcut: Value = res.json().await.unwrap();
    assert_eq!(shortcut["file"]["id"], id);
    let shortcut_id = shortcut["shortcut_id"].as_str().unwrap().to_owned();
    assert_problem(
        app.post_authed(
            "/api/v1/shortcuts",
            &sharee.access_token,
            &json!({"file_id": id}),
        )
        .await,
        409,
        "shortcut_exists",
    )
    .await;
    let shortcuts = view(&app, &sharee, "shortcuts").await;
    assert_eq!(
        (shortcuts.len(), shortcuts[0]["shortcut_id"].as_str()),
        (1, Some(shortcut_id.as_str()))
    );

    // The owner revokes: the file and the shortcut are gone for the sharee.
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/files/{id}/shares/{}", sharee.id)))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(view(&app, &sharee, "shared").await.is_empty());
    assert!(view(&app, &sharee, "shortcuts").await.is_empty());
    assert_problem(
        app.get_file(&sharee.access_token, id).await,
        404,
        "file_not_found",
    )
    .await;
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/shortcuts/{shortcut_id}")))
        .bearer_auth(&sharee.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "shortcut_not_found").await;

    // The changes were announced, in order.
    let mut kinds = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(2), events.recv()).await {
        if e.file_id.to_string() == id && e.kind != "file.available" {
            kinds.push((e.kind, e.data["role"].as_str().map(str::to_owned)));
        }
        if kinds.len() == 4 {
            break;
        }
    }
    let kinds: Vec<(&str, Option<String>)> =
        kinds.iter().map(|(k, r)| (k.as_str(), r.clone())).collect();
    assert_eq!(
        kinds,
        [
            ("file.shared", Some("viewer".to_owned())),
            ("file.shared", Some("editor".to_owned())),
            ("file.renamed", None),
            ("file.unshared", None),
        ]
    );
}

/// Expected status for the owner, an editor, a viewer and a stranger.
type Row = (&'static str, Method, &'static str, Value, [u16; 4]);

async fn every_role_meets_the_permission_table(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let editor = app.new_user().await;
    let viewer = app.new_user().await;
    let stranger = app.new_user().await;
    let third = app.new_user().await;
    // Destructive rows come last; each role gets a file of its own.
    let table: Vec<Row> = vec![
        (
            "read",
            Method::GET,
            "/api/v1/files/{id}",
            Value::Null,
            [200, 200, 200, 404],
        ),
        (
            "content",
            Method::GET,
            "/api/v1/files/{id}/content",
            Value::Null,
            [302, 302, 302, 404],
        ),
        (
            "download url",
            Method::GET,
            "/api/v1/files/{id}/download-url",
            Value::Null,
            [200, 200, 200, 404],
        ),
        (
            "rename",
            Method::PATCH,
            "/api/v1/files/{id}",
            json!({"name": "renamed"}),
            [200, 200, 403, 404],
        ),
        (
            "visibility",
            Method::PATCH,
            "/api/v1/files/{id}",
            json!({"visibility": "public"}),
            [200, 403, 403, 404],
        ),
        (
            "expiry",
            Method::PATCH,
            "/api/v1/files/{id}",
            json!({"expires_at": "2099-01-01T00:00:00Z"}),
            [200, 403, 403, 404],
        ),
        (
            "confirm",
            Method::POST,
            "/api/v1/files/{id}/confirm",
            json!({}),
            [200, 403, 403, 404],
        ),
        (
            "list shares",
            Method::GET,
            "/api/v1/files/{id}/shares",
            Value::Null,
            [200, 403, 403, 404],
        ),
        (
            "share",
            Method::POST,
            "/api/v1/files/{id}/shares",
            json!({"email": third.email, "role": "viewer"}),
            [201, 403, 403, 404],
        ),
        (
            "revoke another",
            Method::DELETE,
            "/api/v1/files/{id}/shares/{third}",
            Value::Null,
            [204, 403, 403, 404],
        ),
        (
            "shortcut",
            Method::POST,
            "/api/v1/shortcuts",
            json!({"file_id": "{id}"}),
            [201, 201, 201, 404],
        ),
        (
            "delete",
            Method::DELETE,
            "/api/v1/files/{id}",
            Value::Null,
            [204, 403, 403, 404],
        ),
    ];
    for (column, caller) in [&owner, &editor, &viewer, &stranger]
        .into_iter()
        .enumerate()
    {
        let file = app
            .upload_file(&owner, &format!("table-{column}"), b"x")
            .await;
        let id = file["id"].as_str().unwrap();
        assert_eq!(
            share(&app, &owner, id, &editor.email, "editor")
                .await
                .status(),
            201
        );
        assert_eq!(
            share(&app, &owner, id, &viewer.email, "viewer")
                .await
                .status(),
            201
        );
        for (what, method, path, body, expected) in &table {
            let path = path.replace("{id}", id).replace("{third}", &third.id);
            let mut req = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&caller.access_token);
            if !body.is_null() {
                let mut body = body.clone();
                if body.get("name").is_some() {
                    body["name"] = json!(format!("renamed-{column}"));
                }
                if body.get("file_id").is_some() {
                    body["file_id"] = json!(id);
                }
                req = req.json(&body);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            assert_eq!(
                status,
                expected[column],
                "{what} as {}",
                ["owner", "editor", "viewer", "stranger"][column]
            );
            if status >= 400 {
                let code = if status == 404 {
                    "file_not_found"
                } else {
                    "forbidden"
                };
                assert_problem(res, status, code).await;
            }
        }
    }
}

async fn sharing_refuses_what_makes_no_sense(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let other = app.new_user().await;
    let file = app.upload_file(&owner, "f", b"x").await;
    let id = file["id"].as_str().unwrap();
    assert_problem(
        share(&app, &owner, id, "nobody@example.com", "viewer").await,
        404,
        "user_not_found",
    )
    .await;
    assert_problem(
        share(&app, &owner, id, &owner.email, "viewer").await,
        400,
        "invalid_share",
    )
    .await;
    assert_problem(
        share(&app, &owner, id, &other.email, "admin").await,
        400,
        "invalid_field",
    )
    .await;
    let res = app
        .post_authed(
            &format!("/api/v1/files/{id}/shares"),
            &owner.access_token,
            &json!({"email": other.email, "role": "viewer", "x": 1}),
        )
        .await;
    assert_problem(res, 400, "invalid_body").await;
    let pending = app
        .create_upload(&owner.access_token, &json!({"name": "pending", "size": 3}))
        .await;
    let pid = pending["file"]["id"].as_str().unwrap();
    assert_problem(
        share(&app, &owner, pid, &other.email, "viewer").await,
        409,
        "file_pending",
    )
    .await;
    // Revoking what was never shared.
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/files/{id}/shares/{}", other.id)))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "share_not_found").await;
    // A sharee may leave on their own.
    assert_eq!(
        share(&app, &owner, id, &other.email, "viewer")
            .await
            .status(),
        201
    );
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/files/{id}/shares/{}", other.id)))
        .bearer_auth(&other.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_problem(
        app.get_file(&other.access_token, id).await,
        404,
        "file_not_found",
    )
    .await;
    // Shortcuts only to what one can see.
    assert_problem(
        app.post_authed(
            "/api/v1/shortcuts",
            &other.access_token,
            &json!({"file_id": id}),
        )
        .await,
        404,
        "file_not_found",
    )
    .await;
}

/// Shares and renames of several files at once: every one succeeds (on
/// SQLite a share that read before it wrote failed with "database is
/// locked" whenever another write came in between: a 500).
async fn shares_and_renames_at_once_all_succeed(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let mut sharees = Vec::new();
    for _ in 0..4 {
        sharees.push(app.new_user().await);
    }
    let mut ids = Vec::new();
    for i in 0..4 {
        let file = app
            .upload_file(&owner, &format!("f{i}.txt"), b"shared")
            .await;
        ids.push(file["id"].as_str().unwrap().to_owned());
    }
    let mut calls = Vec::new();
    for round in 0..3 {
        for (i, id) in ids.iter().enumerate() {
            let (client, token) = (app.client.clone(), owner.access_token.clone());
            let share_url = app.url(&format!("/api/v1/files/{id}/shares"));
            let email = sharees[(i + round) % sharees.len()].email.clone();
            calls.push(actix_web::rt::spawn(async move {
                client
                    .post(share_url)
                    .bearer_auth(&token)
                    .json(&json!({"email": email, "role": "viewer"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
            let (client, token) = (app.client.clone(), owner.access_token.clone());
            let file_url = app.url(&format!("/api/v1/files/{id}"));
            calls.push(actix_web::rt::spawn(async move {
                client
                    .patch(file_url)
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("f{i}-r{round}.txt")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
    }
    for call in calls {
        let status = call.await.unwrap();
        assert!((200..300).contains(&status) || status == 409, "{status}");
    }
}
