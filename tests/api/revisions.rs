//! Revisions and conflicts: `on_conflict` on every upload kind, the
//! conflicted copy, the revision routes, and the janitor's retention.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::helpers::{
    Stack, TestApp, User, assert_problem, sha256_hex, spawn_app, spawn_app_with, spawn_cluster,
};
use crate::multipart::{complete, put_part};

crate::on_both_stacks!(
    every_upload_kind_takes_on_conflict,
    a_base_revision_the_file_moved_past_is_refused_or_becomes_a_conflicted_copy,
    revisions_are_listed_downloaded_restored_and_deleted,
    who_may_do_what_with_revisions,
    the_janitor_keeps_revisions_within_retention,
    a_purged_file_takes_every_revision_with_it,
    the_orphan_sweep_leaves_every_revision_alone,
    revisions_count_against_the_quota,
);

/// A direct upload with extra fields (`on_conflict`, `base_revision`…),
/// PUT and confirmed; the confirmation's answer.
async fn direct(app: &TestApp, user: &User, name: &str, bytes: &[u8], extra: Value) -> Value {
    let mut body = json!({"name": name, "size": bytes.len(), "content_type": "text/plain"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let created = app.create_upload(&user.access_token, &body).await;
    let res = app.put_to_ticket(&created["upload"], bytes.to_vec()).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    confirm(app, user, created["file"]["id"].as_str().unwrap()).await
}

async fn confirm(app: &TestApp, user: &User, id: &str) -> Value {
    let res = app
        .post_authed(
            &format!("/api/v1/files/{id}/confirm"),
            &user.access_token,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    res.json().await.unwrap()
}

/// A tus creation-with-upload with extra metadata; the response.
async fn tus(
    app: &TestApp,
    user: &User,
    name: &str,
    bytes: &[u8],
    meta: &[(&str, &str)],
) -> reqwest::Response {
    let mut pairs = vec![format!("filename {}", B64.encode(name))];
    pairs.extend(meta.iter().map(|(k, v)| format!("{k} {}", B64.encode(v))));
    app.client
        .post(app.url("/api/v1/tus"))
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", bytes.len().to_string())
        .header("Upload-Metadata", pairs.join(","))
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

/// POST …/revisions/{n}/restore.
async fn restore(app: &TestApp, token: &str, id: &str, n: i64) -> reqwest::Response {
    app.post_authed(
        &format!("/api/v1/files/{id}/revisions/{n}/restore"),
        token,
        &json!({}),
    )
    .await
}

/// DELETE …/revisions/{n}.
async fn delete_revision(app: &TestApp, token: &str, id: &str, n: i64) -> reqwest::Response {
    app.delete_authed(&format!("/api/v1/files/{id}/revisions/{n}"), token)
        .await
}

/// A file uploaded as `first`, then revised to `second`: the first
/// upload's answer, and the file's id.
async fn revised(
    app: &TestApp,
    user: &User,
    name: &str,
    first: &[u8],
    second: &[u8],
) -> (Value, String) {
    let file = app.upload_file(user, name, first).await;
    let id = file["id"].as_str().unwrap().to_owned();
    direct(app, user, name, second, json!({"on_conflict": "revision"})).await;
    (file, id)
}

async fn revisions(app: &TestApp, user: &User, id: &str) -> Vec<Value> {
    let res = app
        .get_authed(&format!("/api/v1/files/{id}/revisions"), &user.access_token)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

/// Follows a revision's content route to its bytes.
async fn revision_bytes(app: &TestApp, user: &User, id: &str, n: i64) -> Vec<u8> {
    let res = app
        .get_authed(
            &format!("/api/v1/files/{id}/revisions/{n}/content"),
            &user.access_token,
        )
        .await;
    assert_eq!(res.status(), 302, "revision {n}");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let res = app.client.get(location).send().await.unwrap();
    assert_eq!(res.status(), 200, "revision {n}'s object");
    let bytes = res.bytes().await.unwrap().to_vec();
    // The same URL as JSON, for a browser that downloads by navigating.
    let res = app
        .get_authed(
            &format!("/api/v1/files/{id}/revisions/{n}/download-url"),
            &user.access_token,
        )
        .await;
    assert_eq!(res.status(), 200, "revision {n}'s download URL");
    let signed: Value = res.json().await.unwrap();
    assert!(signed["expires_at"].is_string());
    let res = app
        .client
        .get(signed["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().to_vec(), bytes, "revision {n}");
    bytes
}

async fn root_names(app: &TestApp, user: &User) -> Vec<String> {
    let page: Value = app
        .get_authed(
            "/api/v1/folders/root/children?limit=100",
            &user.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn every_upload_kind_takes_on_conflict(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let first = app.upload_file(&user, "r.txt", b"one").await;
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        (first["revision"].as_i64(), &first["conflict_of"]),
        (Some(1), &Value::Null)
    );

    // fail (the default, and said outright) is 409 as before.
    for extra in [json!({}), json!({"on_conflict": "fail"})] {
        let mut body = json!({"name": "r.txt", "size": 3});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let res = app.post_authed("/api/v1/uploads", token, &body).await;
        assert_problem(res, 409, "name_taken").await;
    }
    // rename: the first free name.
    let renamed = direct(
        &app,
        &user,
        "r.txt",
        b"renamed",
        json!({"on_conflict": "rename"}),
    )
    .await;
    assert_eq!(renamed["name"], "r (1).txt");
    assert_ne!(renamed["id"], id);

    // revision, direct: the same file, one revision on.
    let created = app
        .create_upload(
            token,
            &json!({"name": "r.txt", "size": 3, "on_conflict": "revision",
                    "sha256": sha256_hex(b"two")}),
        )
        .await;
    assert_eq!(
        created["file"]["id"], id,
        "the upload is the file's next revision"
    );
    assert_eq!(created["file"]["revision"], 1);
    // Its session names the file, not a hidden row.
    let sessions: Value = app
        .get_authed("/api/v1/uploads", token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        sessions["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["file_id"] == id),
        "{sessions}"
    );
    assert_eq!(
        app.put_to_ticket(&created["upload"], b"two".to_vec())
            .await
            .status(),
        200
    );
    let two = confirm(&app, &user, id).await;
    assert_eq!(
        (two["id"].as_str(), two["revision"].as_i64()),
        (Some(id), Some(2))
    );
    assert_eq!(two["sha256"], sha256_hex(b"two"));
    assert_eq!(app.download(token, id).await, b"two");

    // revision, multipart.
    let res = app
        .post_authed(
            "/api/v1/uploads/multipart",
            token,
            &json!({"name": "r.txt", "size": 5, "on_conflict": "revision"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["file"]["id"], id);
    let upload = session["upload_id"].as_str().unwrap();
    let etag = put_part(&app, &user, upload, 1, b"three").await;
    let res = complete(&app, &user, upload, &[(1, &etag)]).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let three: Value = res.json().await.unwrap();
    assert_eq!(
        (three["id"].as_str(), three["revision"].as_i64()),
        (Some(id), Some(3))
    );

    // revision, tus (metadata keys).
    let res = tus(
        &app,
        &user,
        "r.txt",
        b"four",
        &[("on_conflict", "revision")],
    )
    .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let file: Value = app.get_file(token, id).await.json().await.unwrap();
    assert_eq!(file["revision"], 4);
    assert_eq!(app.download(token, id).await, b"four");
    let res = tus(&app, &user, "r.txt", b"x", &[("on_conflict", "merge")]).await;
    assert_problem(res, 400, "invalid_field").await;
    let res = tus(
        &app,
        &user,
        "r.txt",
        b"x",
        &[("on_conflict", "revision"), ("base_revision", "x")],
    )
    .await;
    assert_problem(res, 400, "invalid_field").await;

    // revision where nothing has the name: a new file.
    let fresh = direct(
        &app,
        &user,
        "new.txt",
        b"new",
        json!({"on_conflict": "revision"}),
    )
    .await;
    assert_eq!(fresh["revision"], 1);
    // A folder's name cannot take a revision.
    let res = app
        .post_authed("/api/v1/folders", token, &json!({"name": "dir"}))
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .post_authed(
            "/api/v1/uploads",
            token,
            &json!({"name": "dir", "size": 1, "on_conflict": "revision"}),
        )
        .await;
    assert_problem(res, 409, "name_taken").await;
    // Bad rules are 400 and create nothing.
    for bad in [
        json!({"name": "z", "size": 1, "on_conflict": "merge"}),
        json!({"name": "z", "size": 1, "base_revision": 1}),
        json!({"name": "z", "size": 1, "on_conflict": "revision", "base_revision": 0}),
    ] {
        let res = app.post_authed("/api/v1/uploads", token, &bad).await;
        assert_eq!(res.status(), 400, "{bad}");
    }

    // Every revision is there, newest first, and counts toward usage.
    let all = revisions(&app, &user, id).await;
    let numbers: Vec<i64> = all.iter().map(|r| r["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [4, 3, 2, 1]);
    assert_eq!(all[0]["current"], true);
    assert!(all[1..].iter().all(|r| r["current"] == false));
    assert_eq!(all[3]["sha256"], first["sha256"]);
    assert!(all.iter().all(|r| r["created_by"] == user.id.as_str()));
    for (n, bytes) in [(1, &b"one"[..]), (2, b"two"), (3, b"three"), (4, b"four")] {
        assert_eq!(revision_bytes(&app, &user, id, n).await, bytes);
    }
    let me: Value = app
        .get_authed("/api/v1/me", token)
        .await
        .json()
        .await
        .unwrap();
    let stored = 3 + 3 + 5 + 4 + "renamed".len() + "new".len();
    assert_eq!(me["usage"]["bytes"], stored as u64);
    assert_eq!(me["usage"]["reserved_bytes"], 0);
    assert_eq!(me["usage"]["files"], 3);
    let mut names = root_names(&app, &user).await;
    names.sort();
    assert_eq!(names, ["dir", "new.txt", "r (1).txt", "r.txt"]);
}

async fn a_base_revision_the_file_moved_past_is_refused_or_becomes_a_conflicted_copy(stack: Stack) {
    // Two instances on the services stack: the race crosses them.
    let apps = match stack {
        Stack::Embedded => vec![spawn_app(stack).await],
        Stack::Services => spawn_cluster(2, &[]).await,
    };
    let (a, b) = (&apps[0], &apps[apps.len() - 1]);
    let user = a.new_user().await;
    let token = &user.access_token;
    let file = a.upload_file(&user, "report.pdf", b"base").await;
    let id = file["id"].as_str().unwrap();
    let mut events = a.bus.subscribe();

    // Two clients start from revision 1 at once; both are accepted...
    let revise =
        json!({"name": "report.pdf", "size": 5, "on_conflict": "revision", "base_revision": 1});
    let first = a.create_upload(token, &revise).await;
    let second = b.create_upload(token, &revise).await;
    assert_eq!(
        a.put_to_ticket(&first["upload"], b"mine!".to_vec())
            .await
            .status(),
        200
    );
    assert_eq!(
        b.put_to_ticket(&second["upload"], b"your!".to_vec())
            .await
            .status(),
        200
    );
    // ...and finish at once: one becomes revision 2, the other a copy.
    let (x, y) = tokio::join!(confirm(a, &user, id), confirm(b, &user, id));
    let file: Value = a.get_file(token, id).await.json().await.unwrap();
    assert_eq!(file["revision"], 2);
    let won = a.download(token, id).await;
    let lost: &[u8] = if won == b"mine!" { b"your!" } else { b"mine!" };
    assert!(won == b"mine!" || won == b"your!");
    let page: Value = a
        .get_authed("/api/v1/folders/root/children", token)
        .await
        .json()
        .await
        .unwrap();
    let copies: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["conflict_of"] == id)
        .collect();
    assert_eq!(copies.len(), 1, "{page}");
    let copy = copies[0];
    let today = chrono::Utc::now().format("%Y-%m-%d");
    assert_eq!(
        copy["name"],
        format!("report (conflicted copy {today}).pdf")
    );
    assert_eq!(copy["revision"], 1);
    assert_eq!(a.download(token, copy["id"].as_str().unwrap()).await, lost);
    for answer in [&x, &y] {
        assert!(
            answer["id"] == id || answer["id"] == copy["id"],
            "a confirmation answers with its file or what its upload became: {answer}"
        );
    }
    // Nothing was lost, nothing is reserved.
    let me: Value = a
        .get_authed("/api/v1/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["usage"]["bytes"], 4 + 5 + 5);
    assert_eq!(me["usage"]["reserved_bytes"], 0);

    // Starting from a revision the file is past is refused at once, on every kind.
    let res = a.post_authed("/api/v1/uploads", token, &revise).await;
    let problem = assert_problem(res, 412, "revision_conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("revision 2"),
        "{problem}"
    );
    let res = a
        .post_authed(
            "/api/v1/uploads/multipart",
            token,
            &json!({"name": "report.pdf", "size": 5, "on_conflict": "revision", "base_revision": 1}),
        )
        .await;
    assert_problem(res, 412, "revision_conflict").await;
    let res = tus(
        a,
        &user,
        "report.pdf",
        b"late",
        &[("on_conflict", "revision"), ("base_revision", "1")],
    )
    .await;
    assert_problem(res, 412, "revision_conflict").await;
    let res = tus(
        a,
        &user,
        "report.pdf",
        b"right",
        &[("on_conflict", "revision"), ("base_revision", "2")],
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(a.download(token, id).await, b"right");

    // file.revised, with the new revision's number.
    let mut revised = Vec::new();
    while let Ok(Ok(e)) =
        tokio::time::timeout(std::time::Duration::from_secs(3), events.recv()).await
    {
        if e.kind == "file.revised" && e.file_id.to_string() == id {
            revised.push(e.data["revision"].as_i64().unwrap());
            if revised.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(revised, [2, 3]);
}

async fn revisions_are_listed_downloaded_restored_and_deleted(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let (file, id) = revised(&app, &user, "notes.txt", b"first", b"second").await;
    let id = id.as_str();

    // Restoring 1 makes revision 3 with its content; nothing is lost.
    let res = restore(&app, token, id, 1).await;
    assert_eq!(res.status(), 200);
    let restored: Value = res.json().await.unwrap();
    assert_eq!(restored["revision"], 3);
    assert_eq!(restored["sha256"], file["sha256"]);
    assert_eq!(app.download(token, id).await, b"first");
    assert_eq!(revision_bytes(&app, &user, id, 2).await, b"second");
    // Restoring the current revision changes nothing.
    let res = restore(&app, token, id, 3).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["revision"], 3);

    // Revision 1 goes; revision 3 shares its object, which stays.
    let res = delete_revision(&app, token, id, 1).await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.download(token, id).await, b"first");
    let numbers: Vec<i64> = revisions(&app, &user, id)
        .await
        .iter()
        .map(|r| r["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2]);
    let res = delete_revision(&app, token, id, 1).await;
    assert_problem(res, 404, "revision_not_found").await;
    let res = app
        .get_authed(&format!("/api/v1/files/{id}/revisions/1/content"), token)
        .await;
    assert_problem(res, 404, "revision_not_found").await;
    let res = restore(&app, token, id, 9).await;
    assert_problem(res, 404, "revision_not_found").await;
    let res = delete_revision(&app, token, id, 3).await;
    assert_problem(res, 409, "current_revision").await;
    // Revision 2 goes with its object; the file is unchanged.
    let res = delete_revision(&app, token, id, 2).await;
    assert_eq!(res.status(), 204);
    assert_eq!(revisions(&app, &user, id).await.len(), 1);
    let me: Value = app
        .get_authed("/api/v1/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["usage"]["bytes"], 5);
    // A revision number that is not a number is the client's mistake.
    let res = app
        .get_authed(&format!("/api/v1/files/{id}/revisions/x/content"), token)
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
}

async fn who_may_do_what_with_revisions(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let editor = app.new_user().await;
    let viewer = app.new_user().await;
    let stranger = app.new_user().await;
    let res = app
        .post_authed(
            "/api/v1/folders",
            &owner.access_token,
            &json!({"name": "team"}),
        )
        .await;
    let folder = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (who, role) in [(&editor, "editor"), (&viewer, "viewer")] {
        let res = app
            .post_authed(
                &format!("/api/v1/folders/{folder}/shares"),
                &owner.access_token,
                &json!({"email": who.email, "role": role}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let file = direct(
        &app,
        &owner,
        "plan.txt",
        b"v1",
        json!({"parent_id": folder}),
    )
    .await;
    let id = file["id"].as_str().unwrap();
    // The editor uploads a revision inside the shared folder.
    let two = direct(
        &app,
        &editor,
        "plan.txt",
        b"v2!",
        json!({"parent_id": folder, "on_conflict": "revision", "base_revision": 1}),
    )
    .await;
    assert_eq!(
        (two["id"].as_str(), two["revision"].as_i64()),
        (Some(id), Some(2))
    );
    assert_eq!(two["owner_id"], owner.id.as_str(), "the owner's file still");
    // Confirming again is no mistake of the uploader's.
    assert_eq!(confirm(&app, &editor, id).await["revision"], 2);
    let all = revisions(&app, &owner, id).await;
    assert_eq!(all[0]["created_by"], editor.id.as_str());
    assert_eq!(all[1]["created_by"], owner.id.as_str());
    // Everyone it is shared with reads them; the viewer changes nothing.
    assert_eq!(revisions(&app, &viewer, id).await.len(), 2);
    assert_eq!(revision_bytes(&app, &viewer, id, 1).await, b"v1");
    let restore = format!("/api/v1/files/{id}/revisions/1/restore");
    let delete = format!("/api/v1/files/{id}/revisions/1");
    let res = app
        .post_authed(&restore, &viewer.access_token, &json!({}))
        .await;
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .post_authed(
            "/api/v1/uploads",
            &viewer.access_token,
            &json!({"name": "plan.txt", "size": 1, "parent_id": folder, "on_conflict": "revision"}),
        )
        .await;
    assert_problem(res, 403, "forbidden").await;
    // The editor restores; only the owner deletes.
    let res = app
        .post_authed(&restore, &editor.access_token, &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let res = app.delete_authed(&delete, &editor.access_token).await;
    assert_problem(res, 403, "forbidden").await;
    // A stranger learns nothing: 404 everywhere.
    let t = &stranger.access_token;
    for res in [
        app.get_authed(&format!("/api/v1/files/{id}/revisions"), t)
            .await,
        app.get_authed(&format!("/api/v1/files/{id}/revisions/1/content"), t)
            .await,
        app.get_authed(&format!("/api/v1/files/{id}/revisions/1/download-url"), t)
            .await,
        app.post_authed(&restore, t, &json!({})).await,
        app.delete_authed(&delete, t).await,
    ] {
        assert_problem(res, 404, "file_not_found").await;
    }
    let res = app.delete_authed(&delete, &owner.access_token).await;
    assert_eq!(res.status(), 204);
}

async fn the_janitor_keeps_revisions_within_retention(stack: Stack) {
    let app = spawn_app_with(
        stack,
        &[("--janitor-interval", "500ms"), ("--revisions-keep", "2")],
    )
    .await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let file = app.upload_file(&user, "log.txt", b"r1").await;
    let id = file["id"].as_str().unwrap();
    for n in 2..=5 {
        let body = format!("r{n}");
        direct(
            &app,
            &user,
            "log.txt",
            body.as_bytes(),
            json!({"on_conflict": "revision"}),
        )
        .await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let numbers: Vec<i64> = revisions(&app, &user, id)
            .await
            .iter()
            .map(|r| r["number"].as_i64().unwrap())
            .collect();
        if numbers == [5, 4, 3] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {numbers:?}");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(revision_bytes(&app, &user, id, 3).await, b"r3");
    let me: Value = app
        .get_authed("/api/v1/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["usage"]["bytes"], 6);
    assert!(
        app.metric(r#"stowage_janitor_items_total{sweep="revisions",result="deleted"}"#)
            .await
            >= 2.0
    );

    // By age: with a maximum age of 1 s, only the current one stays.
    let app = spawn_app_with(
        stack,
        &[
            ("--janitor-interval", "500ms"),
            ("--revisions-max-age", "1s"),
        ],
    )
    .await;
    let user = app.new_user().await;
    let (_, id) = revised(&app, &user, "old.txt", b"a", b"b").await;
    let id = id.as_str();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while revisions(&app, &user, id).await.len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "revision 1 outlived its age"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(app.download(&user.access_token, id).await, b"b");
}

async fn a_purged_file_takes_every_revision_with_it(stack: Stack) {
    let app = spawn_app_with(
        stack,
        &[("--janitor-interval", "500ms"), ("--trash-retention", "1s")],
    )
    .await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let (_, id) = revised(&app, &user, "gone.txt", b"one", b"two").await;
    let id = id.as_str();
    let mut urls = Vec::new();
    for n in [1, 2] {
        let res = app
            .get_authed(&format!("/api/v1/files/{id}/revisions/{n}/content"), token)
            .await;
        urls.push(res.headers()["location"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        app.delete_authed(&format!("/api/v1/files/{id}"), token)
            .await
            .status(),
        204
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let trash: Value = app
            .get_authed("/api/v1/files?view=trash", token)
            .await
            .json()
            .await
            .unwrap();
        if trash["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not purged");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(app.get_file(token, id).await.status(), 404);
    for url in urls {
        assert_eq!(
            app.client.get(&url).send().await.unwrap().status(),
            404,
            "{url}"
        );
    }
    let me: Value = app
        .get_authed("/api/v1/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["usage"]["bytes"], 0);
}

async fn the_orphan_sweep_leaves_every_revision_alone(stack: Stack) {
    // Objects older than a second that no row knows go at every sweep.
    let app = spawn_app_with(
        stack,
        &[("--janitor-interval", "300ms"), ("--upload-expiry", "1s")],
    )
    .await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let (_, id) = revised(&app, &user, "keep.txt", b"one", b"two").await;
    let id = id.as_str();
    let res = restore(&app, token, id, 1).await;
    assert_eq!(res.status(), 200);
    // Past the grace period, and a few sweeps on.
    let swept = r#"stowage_janitor_sweeps_total{sweep="orphans"}"#;
    let before = app.metric(swept).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    while app.metric(swept).await < before + 4.0 {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(app.download(token, id).await, b"one");
    assert_eq!(revision_bytes(&app, &user, id, 2).await, b"two");
    assert_eq!(revision_bytes(&app, &user, id, 1).await, b"one");
}

async fn revisions_count_against_the_quota(stack: Stack) {
    let app = spawn_app_with(stack, &[("--default-quota", "10")]).await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let file = app.upload_file(&user, "q.txt", b"123456").await;
    let id = file["id"].as_str().unwrap();
    let res = app
        .post_authed(
            "/api/v1/uploads",
            token,
            &json!({"name": "q.txt", "size": 5, "on_conflict": "revision"}),
        )
        .await;
    assert_problem(res, 413, "quota_exceeded").await;
    direct(
        &app,
        &user,
        "q.txt",
        b"1234",
        json!({"on_conflict": "revision"}),
    )
    .await;
    // Restoring revision 1 would store its 6 bytes once more: over.
    let res = restore(&app, token, id, 1).await;
    assert_problem(res, 413, "quota_exceeded").await;
    let file: Value = app.get_file(token, id).await.json().await.unwrap();
    assert_eq!(file["revision"], 2, "nothing changed");
    // Deleting revision 1 makes room.
    let res = delete_revision(&app, token, id, 1).await;
    assert_eq!(res.status(), 204);
    let me: Value = app
        .get_authed("/api/v1/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["usage"]["bytes"], 4);
}
