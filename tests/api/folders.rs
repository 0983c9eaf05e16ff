//! Folders: the tree, children pages, paths, moves, trash as a unit, and
//! folder shares whose role flows down; on both stacks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, User, assert_problem, spawn_app, spawn_app_with};

crate::on_both_stacks!(
    a_tree_is_made_filled_three_ways_and_resolved,
    moves_keep_the_tree_a_tree,
    children_page_folders_first_with_keyset_cursors,
    a_folder_goes_to_the_trash_and_back_as_one_unit,
    a_folder_share_flows_down_to_everything_below,
    an_editor_uploads_into_a_shared_folder_for_its_owner,
    a_trashed_folder_is_purged_with_everything_below,
    changes_to_the_tree_are_events,
    names_are_unique_per_folder_even_when_created_at_once,
    strangers_learn_nothing_about_folders,
);

async fn mkdir(app: &TestApp, user: &User, name: &str, parent: Option<&str>) -> Response {
    app.post_authed(
        "/api/v1/folders",
        &user.access_token,
        &json!({"name": name, "parent_id": parent}),
    )
    .await
}

/// Creates a folder; asserts 201 and returns its id.
async fn folder(app: &TestApp, user: &User, name: &str, parent: Option<&str>) -> String {
    let res = mkdir(app, user, name, parent).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "folder");
    assert_eq!(body["name"], name);
    assert_eq!(body["parent_id"].as_str(), parent);
    body["id"].as_str().unwrap().to_owned()
}

/// A direct upload into `parent`, PUT and made available; the file.
async fn upload_into(app: &TestApp, user: &User, parent: &str, name: &str, bytes: &[u8]) -> Value {
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": name, "size": bytes.len(), "parent_id": parent}),
        )
        .await;
    assert_eq!(created["file"]["parent_id"], parent);
    let res = app.put_to_ticket(&created["upload"], bytes.to_vec()).await;
    assert_eq!(res.status(), 200);
    let id = created["file"]["id"].as_str().unwrap();
    let owner = created["file"]["owner_id"].as_str().unwrap();
    app.announce_put(owner, id, bytes.len() as u64).await;
    app.wait_available(&user.access_token, id, 20).await
}

/// A tus creation-with-upload into `parent` (metadata `parent_id`); asserts 201.
async fn tus_into(app: &TestApp, user: &User, parent: &str, name: &str, bytes: &[u8]) {
    let meta = format!(
        "filename {},parent_id {}",
        B64.encode(name),
        B64.encode(parent)
    );
    let res = app
        .client
        .post(app.url("/api/v1/tus"))
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", bytes.len().to_string())
        .header("Upload-Metadata", meta)
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
}

async fn share_folder(
    app: &TestApp,
    owner: &User,
    folder: &str,
    with: &User,
    role: &str,
) -> Response {
    app.post_authed(
        &format!("/api/v1/folders/{folder}/shares"),
        &owner.access_token,
        &json!({"email": with.email, "role": role}),
    )
    .await
}

async fn children(app: &TestApp, user: &User, folder: &str, query: &str) -> Response {
    app.get_authed(
        &format!("/api/v1/folders/{folder}/children?{query}"),
        &user.access_token,
    )
    .await
}

/// All child names of a folder, one page.
async fn names(app: &TestApp, user: &User, folder: &str) -> Vec<String> {
    let res = children(app, user, folder, "limit=1000").await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn resolve(app: &TestApp, user: &User, path: &str) -> Response {
    let q: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    app.get_authed(&format!("/api/v1/resolve?path={q}"), &user.access_token)
        .await
}

async fn patch(app: &TestApp, user: &User, what: &str, id: &str, body: Value) -> Response {
    app.client
        .patch(app.url(&format!("/api/v1/{what}/{id}")))
        .bearer_auth(&user.access_token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn a_tree_is_made_filled_three_ways_and_resolved(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let reports = folder(&app, &user, "Reports", None).await;
    let year = folder(&app, &user, "2026", Some(&reports)).await;

    // Direct.
    let q1 = upload_into(&app, &user, &year, "q1.pdf", b"first quarter").await;
    assert_eq!(
        (q1["type"].as_str(), q1["revision"].as_i64()),
        (Some("file"), Some(1))
    );
    // tus, with parent_id in the metadata, creation-with-upload.
    tus_into(&app, &user, &year, "q2.pdf", b"second quarter").await;
    // Multipart.
    let res = app
        .post_authed(
            "/api/v1/uploads/multipart",
            &user.access_token,
            &json!({"name": "q3.pdf", "size": 3, "parent_id": year}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["file"]["parent_id"], year.as_str());

    assert_eq!(names(&app, &user, "root").await, ["Reports"]);
    assert_eq!(names(&app, &user, &reports).await, ["2026"]);
    assert_eq!(
        names(&app, &user, &year).await,
        ["q1.pdf", "q2.pdf", "q3.pdf"]
    );

    let res = resolve(&app, &user, "/Reports/2026/q2.pdf").await;
    assert_eq!(res.status(), 200);
    let found: Value = res.json().await.unwrap();
    assert_eq!(found["type"], "file");
    assert_eq!(found["status"], "available");
    assert_eq!(
        app.download(&user.access_token, found["id"].as_str().unwrap())
            .await,
        b"second quarter"
    );
    let res = resolve(&app, &user, "/Reports/2026/").await;
    let found: Value = res.json().await.unwrap();
    assert_eq!(
        (found["id"].as_str(), found["type"].as_str()),
        (Some(year.as_str()), Some("folder"))
    );
    for missing in ["/Reports/2025", "/reports", "/Reports/2026/q1.pdf/x"] {
        assert_problem(resolve(&app, &user, missing).await, 404, "path_not_found").await;
    }
    for bad in ["Reports", "/", "/a//b", "/a/../b"] {
        assert_problem(resolve(&app, &user, bad).await, 400, "invalid_field").await;
    }

    // `owned` stays flat: every file, whatever folder; no folders.
    let page: Value = app
        .get_authed("/api/v1/files?view=owned&sort=name", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    let owned: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(owned, ["q1.pdf", "q2.pdf", "q3.pdf"]);
    // A folder is not a file, and a file is not a folder.
    assert_problem(
        app.get_file(&user.access_token, &year).await,
        404,
        "file_not_found",
    )
    .await;
    assert_problem(
        app.get_authed(
            &format!("/api/v1/folders/{}", q1["id"].as_str().unwrap()),
            &user.access_token,
        )
        .await,
        404,
        "folder_not_found",
    )
    .await;
    // Into a file, or a folder that is not there: 404.
    let q1_id = q1["id"].as_str().unwrap();
    assert_problem(
        mkdir(&app, &user, "x", Some(q1_id)).await,
        404,
        "folder_not_found",
    )
    .await;
    let res = app
        .post_authed(
            "/api/v1/uploads",
            &user.access_token,
            &json!({"name": "y", "size": 1, "parent_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_problem(res, 404, "folder_not_found").await;
}

async fn moves_keep_the_tree_a_tree(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let a = folder(&app, &user, "a", None).await;
    let b = folder(&app, &user, "b", Some(&a)).await;
    let c = folder(&app, &user, "c", Some(&b)).await;
    let file = upload_into(&app, &user, &c, "deep.txt", b"deep").await;
    let file_id = file["id"].as_str().unwrap();

    // Into itself, or below itself: 409.
    for target in [&a, &b, &c] {
        assert_problem(
            patch(&app, &user, "folders", &a, json!({"parent_id": target})).await,
            409,
            "folder_cycle",
        )
        .await;
    }
    // A file moves up to the root and back down: one row changes.
    let res = patch(&app, &user, "files", file_id, json!({"parent_id": null})).await;
    assert_eq!(res.status(), 200);
    let moved: Value = res.json().await.unwrap();
    assert_eq!(moved["parent_id"], Value::Null);
    assert_eq!(moved["version"], file["version"].as_i64().unwrap() + 1);
    assert_eq!(names(&app, &user, "root").await, ["a", "deep.txt"]);
    let res = patch(&app, &user, "files", file_id, json!({"parent_id": a})).await;
    assert_eq!(res.status(), 200);

    // A folder moves with everything in it.
    let res = patch(
        &app,
        &user,
        "folders",
        &c,
        json!({"parent_id": null, "name": "c2"}),
    )
    .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let res = resolve(&app, &user, "/c2").await;
    assert_eq!(res.status(), 200);
    assert_eq!(names(&app, &user, &b).await, Vec::<String>::new());

    // A clash with a file or folder of that name in the target: 409.
    folder(&app, &user, "deep.txt", Some(&c)).await;
    assert_problem(
        patch(&app, &user, "files", file_id, json!({"parent_id": c})).await,
        409,
        "name_taken",
    )
    .await;
    // Nothing changed for the refused move.
    let res = resolve(&app, &user, "/a/deep.txt").await;
    assert_eq!(res.status(), 200);

    // If-Match guards a folder like a file.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/folders/{a}")))
        .bearer_auth(&user.access_token)
        .header("If-Match", "\"999\"")
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 412, "version_mismatch").await;

    // Another owner's folder is never a target.
    let other = app.new_user().await;
    let theirs = folder(&app, &other, "theirs", None).await;
    assert_problem(
        patch(&app, &user, "files", file_id, json!({"parent_id": theirs})).await,
        404,
        "folder_not_found",
    )
    .await;
    // Even when they let the mover in.
    let res = share_folder(&app, &other, &theirs, &user, "editor").await;
    assert_eq!(res.status(), 201);
    assert_problem(
        patch(&app, &user, "files", file_id, json!({"parent_id": theirs})).await,
        409,
        "cross_owner_move",
    )
    .await;
}

async fn children_page_folders_first_with_keyset_cursors(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let top = folder(&app, &user, "top", None).await;
    for name in ["b-dir", "a-dir", "c-dir"] {
        folder(&app, &user, name, Some(&top)).await;
    }
    for name in ["b.txt", "a.txt", "d.txt", "c.txt"] {
        upload_into(&app, &user, &top, name, name.as_bytes()).await;
    }
    let expected = [
        "a-dir", "b-dir", "c-dir", "a.txt", "b.txt", "c.txt", "d.txt",
    ];
    for limit in [1, 2, 3, 7] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("limit={limit}&cursor={c}"),
                None => format!("limit={limit}"),
            };
            let res = children(&app, &user, &top, &query).await;
            assert_eq!(res.status(), 200);
            let page: Value = res.json().await.unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= limit);
            seen.extend(items.iter().map(|i| i["name"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
    }
    // Other sorts keep folders first; `q` is a name prefix.
    let res = children(&app, &user, &top, "sort=-name").await;
    let page: Value = res.json().await.unwrap();
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "c-dir", "b-dir", "a-dir", "d.txt", "c.txt", "b.txt", "a.txt"
        ]
    );
    let res = children(&app, &user, &top, "q=B").await;
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    // Bad input.
    assert_problem(
        children(&app, &user, &top, "cursor=nope").await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        children(&app, &user, &top, "limit=0").await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        children(&app, &user, "nope", "").await,
        400,
        "invalid_field",
    )
    .await;
}

async fn a_folder_goes_to_the_trash_and_back_as_one_unit(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let top = folder(&app, &user, "top", None).await;
    let sub = folder(&app, &user, "sub", Some(&top)).await;
    let kept = upload_into(&app, &user, &sub, "kept.txt", b"kept").await;
    let kept_id = kept["id"].as_str().unwrap();
    let alone = upload_into(&app, &user, &top, "alone.txt", b"alone").await;
    let alone_id = alone["id"].as_str().unwrap();
    // Deleted on its own first: it stays its own unit.
    assert_eq!(
        app.delete_authed(&format!("/api/v1/files/{alone_id}"), token)
            .await
            .status(),
        204
    );

    let res = app
        .delete_authed(&format!("/api/v1/folders/{top}"), token)
        .await;
    assert_eq!(res.status(), 204);
    // Everything below went with it: not served, not listed.
    assert_problem(app.get_file(token, kept_id).await, 404, "file_not_found").await;
    assert_problem(
        app.get_authed(&format!("/api/v1/folders/{sub}"), token)
            .await,
        404,
        "folder_not_found",
    )
    .await;
    assert_problem(
        children(&app, &user, &top, "").await,
        404,
        "folder_not_found",
    )
    .await;
    assert_eq!(names(&app, &user, "root").await, Vec::<String>::new());
    // Nothing new lands in it.
    assert_problem(
        mkdir(&app, &user, "late", Some(&sub)).await,
        404,
        "folder_not_found",
    )
    .await;
    // The trash lists units: the folder once, and the file deleted before it.
    let page: Value = app
        .get_authed("/api/v1/files?view=trash&sort=name", token)
        .await
        .json()
        .await
        .unwrap();
    let trash: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["type"].as_str().unwrap()))
        .collect();
    assert_eq!(trash, [("alone.txt", "file"), ("top", "folder")]);
    assert!(page["items"][1]["purge_at"].is_string());
    // A part of a unit comes back with its unit only.
    assert_problem(
        app.post_authed(
            &format!("/api/v1/files/{kept_id}/restore"),
            token,
            &json!({}),
        )
        .await,
        409,
        "trashed_with_folder",
    )
    .await;
    // A unit whose folder is in the trash waits for it.
    assert_problem(
        app.post_authed(
            &format!("/api/v1/files/{alone_id}/restore"),
            token,
            &json!({}),
        )
        .await,
        409,
        "parent_in_trash",
    )
    .await;

    let res = app
        .post_authed(&format!("/api/v1/folders/{top}/restore"), token, &json!({}))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(names(&app, &user, &top).await, ["sub"]);
    assert_eq!(app.download(token, kept_id).await, b"kept");
    // The file deleted on its own is still in the trash, and now restorable.
    let res = app
        .post_authed(
            &format!("/api/v1/files/{alone_id}/restore"),
            token,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(names(&app, &user, &top).await, ["sub", "alone.txt"]);

    // A restore into a clash is refused, and changes nothing.
    assert_eq!(
        app.delete_authed(&format!("/api/v1/folders/{top}"), token)
            .await
            .status(),
        204
    );
    folder(&app, &user, "top", None).await;
    assert_problem(
        app.post_authed(&format!("/api/v1/folders/{top}/restore"), token, &json!({}))
            .await,
        409,
        "name_taken",
    )
    .await;
    assert_problem(app.get_file(token, kept_id).await, 404, "file_not_found").await;
}

async fn a_folder_share_flows_down_to_everything_below(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let guest = app.new_user().await;
    let top = folder(&app, &owner, "shared-top", None).await;
    let deep = folder(&app, &owner, "deep", Some(&top)).await;
    let early = upload_into(&app, &owner, &deep, "early.txt", b"early").await;

    let res = share_folder(&app, &owner, &top, &guest, "viewer").await;
    assert_eq!(res.status(), 201);
    let res = app
        .get_authed(
            &format!("/api/v1/folders/{top}/shares"),
            &owner.access_token,
        )
        .await;
    let shares: Value = res.json().await.unwrap();
    assert_eq!(shares["items"][0]["role"], "viewer");

    // The guest sees the folder in `shared`, and everything below it.
    let page: Value = app
        .get_authed("/api/v1/files?view=shared", &guest.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], top.as_str());
    assert_eq!(page["items"][0]["type"], "folder");
    assert_eq!(names(&app, &guest, &top).await, ["deep"]);
    let early_id = early["id"].as_str().unwrap();
    let seen: Value = app
        .get_file(&guest.access_token, early_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["role"], "viewer");
    assert_eq!(app.download(&guest.access_token, early_id).await, b"early");
    // Added later: shared too.
    let late = upload_into(&app, &owner, &deep, "late.txt", b"late").await;
    let late_id = late["id"].as_str().unwrap();
    assert_eq!(app.download(&guest.access_token, late_id).await, b"late");
    // A viewer may not add or rename.
    assert_problem(
        mkdir(&app, &guest, "nope", Some(&deep)).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        patch(&app, &guest, "files", late_id, json!({"name": "mine.txt"})).await,
        403,
        "forbidden",
    )
    .await;

    // As editor: creates inside, and what they create is the owner's.
    let res = share_folder(&app, &owner, &top, &guest, "editor").await;
    assert_eq!(res.status(), 200);
    let made = folder(&app, &guest, "by-guest", Some(&deep)).await;
    let res = app
        .get_authed(&format!("/api/v1/folders/{made}"), &owner.access_token)
        .await;
    let made: Value = res.json().await.unwrap();
    assert_eq!(
        (made["owner_id"].as_str(), made["role"].as_str()),
        (Some(owner.id.as_str()), Some("owner"))
    );
    let res = app
        .get_authed(&format!("/api/v1/folders/{deep}"), &guest.access_token)
        .await;
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["role"], "editor");
    // An editor moves within the shared folder, never out to the owner's root.
    let made_id = made["id"].as_str().unwrap();
    let res = patch(&app, &guest, "folders", made_id, json!({"parent_id": top})).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_problem(
        patch(&app, &guest, "files", late_id, json!({"parent_id": null})).await,
        403,
        "forbidden",
    )
    .await;

    // A shortcut to a file reached through the folder keeps the folder's role.
    let res = app
        .post_authed(
            "/api/v1/shortcuts",
            &guest.access_token,
            &json!({"file_id": early_id}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let page: Value = app
        .get_authed("/api/v1/files?view=shortcuts", &guest.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], early_id);
    assert_eq!(page["items"][0]["role"], "editor");

    // Revoked: nothing below is visible any more.
    let res = app
        .delete_authed(
            &format!("/api/v1/folders/{top}/shares/{}", guest.id),
            &owner.access_token,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(
        app.get_file(&guest.access_token, early_id).await,
        404,
        "file_not_found",
    )
    .await;
    assert_problem(
        children(&app, &guest, &deep, "").await,
        404,
        "folder_not_found",
    )
    .await;
    let page: Value = app
        .get_authed("/api/v1/files?view=shortcuts", &guest.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"], json!([]), "the shortcut leads nowhere now");
}

async fn names_are_unique_per_folder_even_when_created_at_once(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let top = folder(&app, &user, "top", None).await;
    let other = folder(&app, &user, "other", None).await;
    let attempts = (0..8).map(|_| mkdir(&app, &user, "same", Some(&top)));
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.status() == 201).count();
    let taken = results.iter().filter(|r| r.status() == 409).count();
    assert_eq!((created, taken), (1, 7));
    // A file of that name in that folder clashes too; elsewhere it does not.
    let res = app
        .post_authed(
            "/api/v1/uploads",
            &user.access_token,
            &json!({"name": "same", "size": 1, "parent_id": top}),
        )
        .await;
    assert_problem(res, 409, "name_taken").await;
    folder(&app, &user, "same", Some(&other)).await;
    folder(&app, &user, "same", None).await;
}

async fn strangers_learn_nothing_about_folders(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let stranger = app.new_user().await;
    let top = folder(&app, &owner, "private", None).await;
    let token = &stranger.access_token;
    for path in [
        format!("/api/v1/folders/{top}"),
        format!("/api/v1/folders/{top}/children"),
        format!("/api/v1/folders/{top}/shares"),
    ] {
        assert_problem(app.get_authed(&path, token).await, 404, "folder_not_found").await;
    }
    assert_problem(
        patch(&app, &stranger, "folders", &top, json!({"name": "x"})).await,
        404,
        "folder_not_found",
    )
    .await;
    assert_problem(
        app.delete_authed(&format!("/api/v1/folders/{top}"), token)
            .await,
        404,
        "folder_not_found",
    )
    .await;
    assert_problem(
        app.post_authed(&format!("/api/v1/folders/{top}/restore"), token, &json!({}))
            .await,
        404,
        "folder_not_found",
    )
    .await;
    assert_problem(
        mkdir(&app, &stranger, "in", Some(&top)).await,
        404,
        "folder_not_found",
    )
    .await;
    assert_problem(
        share_folder(&app, &stranger, &top, &stranger, "editor").await,
        404,
        "folder_not_found",
    )
    .await;
    // Their own root is theirs alone; a path never reaches another's tree.
    assert_eq!(names(&app, &stranger, "root").await, Vec::<String>::new());
    assert_problem(
        resolve(&app, &stranger, "/private").await,
        404,
        "path_not_found",
    )
    .await;
}

async fn an_editor_uploads_into_a_shared_folder_for_its_owner(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let editor = app.new_user().await;
    let inbox = folder(&app, &owner, "inbox", None).await;
    let res = share_folder(&app, &owner, &inbox, &editor, "editor").await;
    assert_eq!(res.status(), 201);

    // Direct, confirmed by the uploader: the owner's file.
    let created = app
        .create_upload(
            &editor.access_token,
            &json!({"name": "scan.pdf", "size": 4, "parent_id": inbox}),
        )
        .await;
    assert_eq!(created["file"]["owner_id"], owner.id.as_str());
    assert_eq!(created["file"]["role"], "editor");
    let id = created["file"]["id"].as_str().unwrap();
    // Pending: the owner and the uploader see it; nobody else.
    assert_eq!(app.get_file(&editor.access_token, id).await.status(), 200);
    let third = app.new_user().await;
    assert_problem(
        app.get_file(&third.access_token, id).await,
        404,
        "file_not_found",
    )
    .await;
    let res = app
        .put_to_ticket(&created["upload"], b"scan".to_vec())
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post_authed(
            &format!("/api/v1/files/{id}/confirm"),
            &editor.access_token,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let file: Value = res.json().await.unwrap();
    assert_eq!(
        (file["status"].as_str(), file["role"].as_str()),
        (Some("available"), Some("editor"))
    );
    assert_eq!(app.download(&owner.access_token, id).await, b"scan");

    // tus: the uploader's session, the owner's file.
    tus_into(&app, &editor, &inbox, "notes.txt", b"notes").await;
    assert_eq!(names(&app, &owner, &inbox).await, ["notes.txt", "scan.pdf"]);
    let found: Value = resolve(&app, &owner, "/inbox/notes.txt")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["owner_id"], owner.id.as_str());
    assert_eq!(
        app.download(&owner.access_token, found["id"].as_str().unwrap())
            .await,
        b"notes"
    );
    // The uploader's tree has none of it.
    assert_eq!(names(&app, &editor, "root").await, Vec::<String>::new());
}

async fn a_trashed_folder_is_purged_with_everything_below(stack: Stack) {
    let app = spawn_app_with(
        stack,
        &[("--trash-retention", "1s"), ("--janitor-interval", "300ms")],
    )
    .await;
    let user = app.new_user().await;
    let token = &user.access_token;
    let top = folder(&app, &user, "top", None).await;
    let sub = folder(&app, &user, "sub", Some(&top)).await;
    let file = upload_into(&app, &user, &sub, "inside.bin", b"inside").await;
    let id = file["id"].as_str().unwrap();
    let link: Value = app
        .get_authed(&format!("/api/v1/files/{id}/download-url"), token)
        .await
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap().to_owned();
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(
        app.delete_authed(&format!("/api/v1/folders/{top}"), token)
            .await
            .status(),
        204
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page: Value = app
            .get_authed("/api/v1/files?view=trash", token)
            .await
            .json()
            .await
            .unwrap();
        if page["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not purged: {page}");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The object left the store; nothing of the tree can come back.
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 404);
    for (what, item, code) in [
        ("folders", &top, "folder_not_found"),
        ("folders", &sub, "folder_not_found"),
    ] {
        let res = app
            .post_authed(&format!("/api/v1/{what}/{item}/restore"), token, &json!({}))
            .await;
        assert_problem(res, 404, code).await;
    }
    assert_problem(
        app.post_authed(&format!("/api/v1/files/{id}/restore"), token, &json!({}))
            .await,
        404,
        "file_not_found",
    )
    .await;
}

async fn changes_to_the_tree_are_events(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let guest = app.new_user().await;
    let mut events = app.bus.subscribe();
    let top = folder(&app, &user, "top", None).await;
    let file = app.upload_file(&user, "loose.txt", b"loose").await;
    let file_id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(
        patch(&app, &user, "files", &file_id, json!({"parent_id": top}))
            .await
            .status(),
        200
    );
    assert_eq!(
        patch(&app, &user, "folders", &top, json!({"name": "top2"}))
            .await
            .status(),
        200
    );
    let res = share_folder(&app, &user, &top, &guest, "viewer").await;
    assert_eq!(res.status(), 201);
    let token = &user.access_token;
    assert_eq!(
        app.delete_authed(&format!("/api/v1/folders/{top}"), token)
            .await
            .status(),
        204
    );
    let res = app
        .post_authed(&format!("/api/v1/folders/{top}/restore"), token, &json!({}))
        .await;
    assert_eq!(res.status(), 200);

    let mut seen = Vec::new();
    while let Ok(Ok(e)) =
        tokio::time::timeout(std::time::Duration::from_secs(3), events.recv()).await
    {
        let id = e.file_id.to_string();
        if (id == top || id == file_id) && e.kind != "file.available" {
            seen.push(e);
        }
        if seen.len() == 6 {
            break;
        }
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "folder.created",
            "file.moved",
            "folder.renamed",
            "folder.shared",
            "folder.deleted",
            "folder.restored"
        ]
    );
    assert_eq!(seen[1].data["old_parent_id"], Value::Null);
    assert_eq!(seen[1].data["new_parent_id"], top.as_str());
    assert_eq!(seen[4].data["items"], 2, "the folder and the file in it");
}
