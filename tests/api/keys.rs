//! Keys, scopes, admin routes and `Stowage-On-Behalf-Of`: how a product's
//! back end uses Stowage for its own users.

use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, Stack, TestApp, User, assert_problem, spawn_app, spawn_cluster};

crate::on_both_stacks!(
    a_key_acts_within_its_scopes_until_it_is_deleted_or_expires,
    keys_manage_no_keys_and_only_admins_mint_admin_keys,
    a_back_end_with_an_admin_key_uploads_for_its_users,
    a_disabled_user_is_refused_everywhere_at_once,
);

/// `stowage admin create-key` against the app's database and secret: the
/// real binary, as an operator runs it.
pub(crate) fn admin_key(app: &TestApp) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STOWAGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["--data-dir", app.data_dir.to_str().unwrap()])
        .args(["--jwt-secret", JWT_SECRET]);
    if let Some(url) = &app.database_url {
        cmd.args(["--database-url", url]);
    }
    cmd.args(["admin", "create-key", "--name", "product back end"]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("stk_"), "{key}");
    key
}

async fn new_key(app: &TestApp, token: &str, scopes: &[&str], extra: Value) -> Value {
    let mut body = json!({"name": "test key", "scopes": scopes});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let res = app.post_authed("/api/v1/keys", token, &body).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

async fn status(res: reqwest::Response) -> u16 {
    res.status().as_u16()
}

async fn a_key_acts_within_its_scopes_until_it_is_deleted_or_expires(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let file = app.upload_file(&user, "doc.txt", b"hello").await;
    let id = file["id"].as_str().unwrap();

    let read = new_key(&app, &user.access_token, &["files:read"], json!({})).await;
    let secret = read["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("stk_") && secret.starts_with(read["prefix"].as_str().unwrap()));
    assert_eq!(read["scopes"], json!(["files:read"]));
    // Reading routes work; writing ones are 403 insufficient_scope.
    assert_eq!(
        status(app.get_authed("/api/v1/files", &secret).await).await,
        200
    );
    assert_eq!(app.download(&secret, id).await, b"hello");
    let res = app
        .post_authed("/api/v1/uploads", &secret, &json!({"name": "x", "size": 1}))
        .await;
    let problem = assert_problem(res, 403, "insufficient_scope").await;
    assert!(problem["detail"].as_str().unwrap().contains("files:write"));
    let res = app
        .delete_authed(&format!("/api/v1/files/{id}"), &secret)
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app.get_authed("/api/v1/admin/users", &secret).await;
    assert_problem(res, 403, "insufficient_scope").await;
    // files:write reads and writes.
    let write = new_key(&app, &user.access_token, &["files:write"], json!({})).await;
    let writer = write["key"].as_str().unwrap();
    assert_eq!(
        status(app.get_authed("/api/v1/files", writer).await).await,
        200
    );
    let res = app
        .post_authed("/api/v1/folders", writer, &json!({"name": "by key"}))
        .await;
    assert_eq!(res.status(), 201);

    // The list shows no key material; last_used_at was recorded.
    let list: Value = app
        .get_authed("/api/v1/keys", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|k| k.get("key").is_none()));
    assert!(
        items.iter().all(|k| k["last_used_at"].is_string()),
        "{list}"
    );

    // Deleted: refused from the next request on.
    let res = app
        .delete_authed(
            &format!("/api/v1/keys/{}", read["id"].as_str().unwrap()),
            &user.access_token,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(
        app.get_authed("/api/v1/files", &secret).await,
        401,
        "invalid_key",
    )
    .await;
    let res = app
        .delete_authed(
            &format!("/api/v1/keys/{}", read["id"].as_str().unwrap()),
            &user.access_token,
        )
        .await;
    assert_problem(res, 404, "key_not_found").await;
    // Another user's key is not theirs to delete.
    let other = app.new_user().await;
    let res = app
        .delete_authed(
            &format!("/api/v1/keys/{}", write["id"].as_str().unwrap()),
            &other.access_token,
        )
        .await;
    assert_problem(res, 404, "key_not_found").await;

    // An expiry in the past is refused; one that passes ends the key.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let res = app
        .post_authed(
            "/api/v1/keys",
            &user.access_token,
            &json!({"name": "old", "scopes": ["files:read"], "expires_at": past}),
        )
        .await;
    assert_problem(res, 400, "invalid_field").await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let brief = new_key(
        &app,
        &user.access_token,
        &["files:read"],
        json!({"expires_at": soon}),
    )
    .await;
    let brief = brief["key"].as_str().unwrap();
    assert_eq!(status(app.get_authed("/api/v1/me", brief).await).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_problem(
        app.get_authed("/api/v1/me", brief).await,
        401,
        "key_expired",
    )
    .await;
    // Bad scope names and forged keys.
    let res = app
        .post_authed(
            "/api/v1/keys",
            &user.access_token,
            &json!({"name": "bad", "scopes": ["files:exec"]}),
        )
        .await;
    assert_problem(res, 400, "invalid_field").await;
    let forged = format!("stk_{}", "A".repeat(43));
    assert_problem(
        app.get_authed("/api/v1/me", &forged).await,
        401,
        "invalid_key",
    )
    .await;
}

async fn keys_manage_no_keys_and_only_admins_mint_admin_keys(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let key = new_key(&app, &user.access_token, &["files:write"], json!({})).await;
    let key = key["key"].as_str().unwrap();
    // A key does not mint, list or delete keys, nor log out.
    let res = app
        .post_authed(
            "/api/v1/keys",
            key,
            &json!({"name": "more", "scopes": ["files:read"]}),
        )
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    assert_problem(
        app.get_authed("/api/v1/keys", key).await,
        403,
        "insufficient_scope",
    )
    .await;
    let res = app
        .post_authed(
            "/api/v1/auth/logout",
            key,
            &json!({"refresh_token": user.refresh_token}),
        )
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    // A login may not mint an admin key; an admin key may.
    let res = app
        .post_authed(
            "/api/v1/keys",
            &user.access_token,
            &json!({"name": "power", "scopes": ["admin"]}),
        )
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    let admin = admin_key(&app);
    let minted = new_key(&app, &admin, &["admin", "files:read"], json!({})).await;
    assert_eq!(minted["scopes"], json!(["files:read", "admin"]));
    let listed: Value = app
        .get_authed("/api/v1/keys", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    // Acting for someone needs the admin scope.
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(key)
        .header("Stowage-On-Behalf-Of", uuid::Uuid::now_v7().to_string())
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&user.access_token)
        .header("Stowage-On-Behalf-Of", uuid::Uuid::now_v7().to_string())
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "insufficient_scope").await;
}

async fn a_back_end_with_an_admin_key_uploads_for_its_users(stack: Stack) {
    let app = spawn_app(stack).await;
    let admin = admin_key(&app);
    // The product's user: no password, known by the product's own id.
    let res = app
        .post_authed(
            "/api/v1/admin/users",
            &admin,
            &json!({"external_id": "crm-4711", "display_name": "Ada", "quota_bytes": 1000}),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let created: Value = res.json().await.unwrap();
    let user_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &created["email"],
            &created["quota_bytes"],
            &created["disabled"]
        ),
        (&Value::Null, &json!(1000), &json!(false))
    );
    let res = app
        .post_authed(
            "/api/v1/admin/users",
            &admin,
            &json!({"external_id": "crm-4711"}),
        )
        .await;
    assert_problem(res, 409, "external_id_taken").await;
    let found: Value = app
        .get_authed("/api/v1/admin/users?external_id=crm-4711", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"][0]["id"], user_id.as_str());

    // An upload created on the user's behalf is the user's, on their quota.
    let on_behalf = |req: reqwest::RequestBuilder| {
        req.bearer_auth(&admin)
            .header("Stowage-On-Behalf-Of", &user_id)
    };
    // Events name both the user and the key that acted for them.
    let mut events = app.bus.subscribe();
    let res = on_behalf(app.client.post(app.url("/api/v1/folders")))
        .json(&json!({"name": "avatars"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let keys: Value = app
        .get_authed("/api/v1/keys", &admin)
        .await
        .json()
        .await
        .unwrap();
    let admin_key_id = keys["items"][0]["id"].as_str().unwrap().to_owned();
    let event = loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .expect("folder.created arrives")
            .unwrap();
        if e.kind == "folder.created" {
            break e;
        }
    };
    assert_eq!(event.actor_id.map(|u| u.to_string()), Some(user_id.clone()));
    assert_eq!(event.via_key_id.map(|u| u.to_string()), Some(admin_key_id));
    let res = on_behalf(app.client.post(app.url("/api/v1/uploads")))
        .json(&json!({"name": "avatar.png", "size": 5, "content_type": "image/png"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let upload: Value = res.json().await.unwrap();
    assert_eq!(upload["file"]["owner_id"], user_id.as_str());
    // The user's browser PUTs to the presigned URL; the back end confirms.
    assert_eq!(
        app.put_to_ticket(&upload["upload"], b"\x89PNG!".to_vec())
            .await
            .status(),
        200
    );
    let id = upload["file"]["id"].as_str().unwrap();
    let res = on_behalf(
        app.client
            .post(app.url(&format!("/api/v1/files/{id}/confirm"))),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let res = on_behalf(app.client.post(app.url("/api/v1/uploads")))
        .json(&json!({"name": "big.bin", "size": 2000}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "quota_exceeded").await;
    let me: Value = on_behalf(app.client.get(app.url("/api/v1/me")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&me["id"], &me["usage"]["bytes"]),
        (&json!(user_id), &json!(5))
    );
    // The admin key alone is its service user, who owns nothing.
    let mine: Value = app
        .get_authed("/api/v1/files", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(mine["items"].as_array().unwrap().is_empty());
    // Acting for nobody: 404; for a malformed id: 400.
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&admin)
        .header("Stowage-On-Behalf-Of", uuid::Uuid::now_v7().to_string())
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "user_not_found").await;
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&admin)
        .header("Stowage-On-Behalf-Of", "ada")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_header").await;
    // The quota can be changed; a user without a password cannot log in.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/users/{user_id}")))
        .bearer_auth(&admin)
        .json(&json!({"quota_bytes": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["quota_bytes"],
        Value::Null
    );
    let res = app
        .client
        .get(app.url(&format!("/api/v1/admin/users/{}", uuid::Uuid::now_v7())))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "user_not_found").await;
}

async fn a_disabled_user_is_refused_everywhere_at_once(stack: Stack) {
    // Two instances on the services stack: disabled on one, refused on the other.
    let apps = match stack {
        Stack::Embedded => vec![spawn_app(stack).await],
        Stack::Services => spawn_cluster(2, &[]).await,
    };
    let (a, b) = (&apps[0], &apps[apps.len() - 1]);
    let admin = admin_key(a);
    let user: User = a.new_user().await;
    let key = new_key(a, &user.access_token, &["files:read"], json!({})).await;
    let key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        status(b.get_authed("/api/v1/me", &user.access_token).await).await,
        200
    );
    assert_eq!(status(b.get_authed("/api/v1/me", &key).await).await, 200);
    let res = a
        .client
        .patch(a.url(&format!("/api/v1/admin/users/{}", user.id)))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["disabled"], true);
    assert_problem(
        b.get_authed("/api/v1/me", &user.access_token).await,
        401,
        "session_revoked",
    )
    .await;
    assert_problem(
        b.get_authed("/api/v1/me", &key).await,
        401,
        "account_disabled",
    )
    .await;
    assert_problem(
        b.login(&user.email, crate::helpers::PASSWORD).await,
        401,
        "account_disabled",
    )
    .await;
    assert_problem(
        b.refresh(&user.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    let res = b
        .client
        .get(b.url("/api/v1/me"))
        .bearer_auth(&admin)
        .header("Stowage-On-Behalf-Of", &user.id)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "account_disabled").await;
    // Enabled again: the key works, the login needs a new password login.
    let res = a
        .client
        .patch(a.url(&format!("/api/v1/admin/users/{}", user.id)))
        .bearer_auth(&admin)
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(status(b.get_authed("/api/v1/me", &key).await).await, 200);
    // A key deleted on one instance is refused by the other at once.
    let login: Value = b
        .login(&user.email, crate::helpers::PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let keys: Value = a
        .get_authed("/api/v1/keys", token)
        .await
        .json()
        .await
        .unwrap();
    let key_id = keys["items"][0]["id"].as_str().unwrap();
    let res = a
        .delete_authed(&format!("/api/v1/keys/{key_id}"), token)
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(b.get_authed("/api/v1/me", &key).await, 401, "invalid_key").await;
}
