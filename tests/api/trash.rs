//! Soft delete to the trash, and restore.

use serde_json::{Value, json};

use crate::helpers::{Stack, assert_problem, spawn_app, spawn_app_with};

crate::on_both_stacks!(
    deleted_files_wait_in_the_trash_until_restored,
    emptying_the_trash_deletes_for_good_and_only_ones_own
);

async fn deleted_files_wait_in_the_trash_until_restored(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let stranger = app.new_user().await;
    let file = app.upload_file(&user, "report.pdf", b"quarterly").await;
    let id = file["id"].as_str().unwrap();
    let public: Value = app
        .patch_file(
            &user.access_token,
            id,
            &json!({"visibility": "public"}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let public_url = public["public_url"].as_str().unwrap().to_owned();
    let delete = async |token: &str, id: &str| {
        app.client
            .delete(app.url(&format!("/api/v1/files/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    };

    // Strangers cannot delete it.
    assert_problem(
        delete(&stranger.access_token, id).await,
        404,
        "file_not_found",
    )
    .await;
    let res = delete(&user.access_token, id).await;
    assert_eq!(res.status(), 204);

    // Gone from every route but the trash.
    assert_problem(
        app.get_file(&user.access_token, id).await,
        404,
        "file_not_found",
    )
    .await;
    assert_problem(
        app.get_authed(&format!("/api/v1/files/{id}/content"), &user.access_token)
            .await,
        404,
        "file_not_found",
    )
    .await;
    assert_eq!(
        app.client.get(&public_url).send().await.unwrap().status(),
        404
    );
    assert_problem(delete(&user.access_token, id).await, 404, "file_not_found").await;
    let owned: Value = app
        .get_authed("/api/v1/files", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(owned["items"], json!([]));
    let me: Value = app
        .get_authed("/api/v1/me", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    // Gone from the drive, but its bytes still count until purged.
    assert_eq!(
        me["usage"],
        json!({"files": 0, "bytes": 9, "reserved_bytes": 0})
    );
    let trash: Value = app
        .get_authed("/api/v1/files?view=trash", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    let item = &trash["items"][0];
    assert_eq!(item["id"], id);
    assert!(
        item["deleted_at"].is_string() && item["purge_at"].is_string(),
        "{item}"
    );
    let deleted_at =
        chrono::DateTime::parse_from_rfc3339(item["deleted_at"].as_str().unwrap()).unwrap();
    let purge_at =
        chrono::DateTime::parse_from_rfc3339(item["purge_at"].as_str().unwrap()).unwrap();
    assert_eq!((purge_at - deleted_at).num_days(), 7, "default retention");
    let strangers_trash: Value = app
        .get_authed("/api/v1/files?view=trash", &stranger.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(strangers_trash["items"], json!([]));

    // The name is free while the file is in the trash...
    let newer = app.upload_file(&user, "report.pdf", b"a newer one").await;
    // ...so restoring it now collides, and changes nothing.
    let restore = async |token: &str, id: &str| {
        app.post_authed(&format!("/api/v1/files/{id}/restore"), token, &json!({}))
            .await
    };
    assert_problem(restore(&user.access_token, id).await, 409, "name_taken").await;
    assert_problem(
        restore(&stranger.access_token, id).await,
        404,
        "file_not_found",
    )
    .await;
    app.patch_file(
        &user.access_token,
        newer["id"].as_str().unwrap(),
        &json!({"name": "report (new).pdf"}),
        None,
    )
    .await;

    let res = restore(&user.access_token, id).await;
    assert_eq!(res.status(), 200);
    let restored: Value = res.json().await.unwrap();
    assert_eq!(restored["deleted_at"], Value::Null);
    assert!(restored.get("purge_at").is_none());
    assert_eq!(restored["name"], "report.pdf");
    assert_eq!(app.download(&user.access_token, id).await, b"quarterly");
    assert_problem(restore(&user.access_token, id).await, 409, "not_in_trash").await;
    let trash: Value = app
        .get_authed("/api/v1/files?view=trash", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(trash["items"], json!([]));
}

/// `DELETE /api/v1/trash`: everything the caller trashed (a folder with
/// what is in it counts each) is past restoring at once, leaves the trash
/// view, and the janitor's next sweep releases it, usage included; another
/// person's trash is untouched.
async fn emptying_the_trash_deletes_for_good_and_only_ones_own(stack: Stack) {
    let app = spawn_app_with(stack, &[("--janitor-interval", "1h")]).await;
    let user = app.new_user().await;
    let other = app.new_user().await;
    let file = app.upload_file(&user, "old.txt", b"old bytes").await;
    let file_id = file["id"].as_str().unwrap();
    let folder: Value = app
        .post_authed(
            "/api/v1/folders",
            &user.access_token,
            &json!({"name": "Box"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let folder_id = folder["id"].as_str().unwrap();
    let res = app
        .post_authed(
            "/api/v1/uploads",
            &user.access_token,
            &json!({"name": "inner.txt", "size": 5, "parent_id": folder_id}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let theirs = app.upload_file(&other, "theirs.txt", b"keep me").await;
    let theirs_id = theirs["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/files/{file_id}"),
        format!("/api/v1/folders/{folder_id}"),
    ] {
        assert_eq!(
            app.delete_authed(&path, &user.access_token).await.status(),
            204
        );
    }
    let res = app
        .delete_authed(&format!("/api/v1/files/{theirs_id}"), &other.access_token)
        .await;
    assert_eq!(res.status(), 204);

    let res = app.delete_authed("/api/v1/trash", &user.access_token).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["emptied"], 3,
        "the file, the folder and what was in it"
    );
    assert_problem(
        app.post_authed(
            &format!("/api/v1/files/{file_id}/restore"),
            &user.access_token,
            &json!({}),
        )
        .await,
        404,
        "file_not_found",
    )
    .await;
    // Emptying again finds nothing; the other person's trash is as it was.
    let again: Value = app
        .delete_authed("/api/v1/trash", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["emptied"], 0);
    let theirs_trash: Value = app
        .get_authed("/api/v1/files?view=trash", &other.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs_trash["items"][0]["id"], theirs_id);

    // The janitor purges it at once (its sweeps are an hour apart here):
    // the trash empties and the usage goes down to nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let me: Value = app
            .get_authed("/api/v1/me", &user.access_token)
            .await
            .json()
            .await
            .unwrap();
        let trash: Value = app
            .get_authed("/api/v1/files?view=trash", &user.access_token)
            .await
            .json()
            .await
            .unwrap();
        if me["usage"]["bytes"] == 0 && trash["items"] == json!([]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never purged: {me} {trash}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_problem(
        app.delete_authed("/api/v1/trash", "not-a-token").await,
        401,
        "invalid_token",
    )
    .await;
}
