//! The files API: listing, reading, changing, downloading, public links, and
//! what strangers see.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, User, assert_problem, random_bytes, sha256_hex, spawn_app};

crate::on_both_stacks!(
    listing_pages_through_every_sort_without_gaps,
    get_and_patch_follow_versions_and_etags,
    downloads_redirect_and_support_ranges,
    public_links_live_while_the_file_is_public,
    strangers_get_404_on_every_route,
    me_reports_usage_of_available_files,
);

async fn list_all(app: &TestApp, user: &User, query: &str) -> Vec<Value> {
    list_from(app, user, query, None).await
}

/// Every page of a listing, from `cursor` on.
async fn list_from(
    app: &TestApp,
    user: &User,
    query: &str,
    mut cursor: Option<String>,
) -> Vec<Value> {
    let mut items = Vec::new();
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/files?{query}&cursor={c}"),
            None => format!("/api/v1/files?{query}"),
        };
        let res = app.get_authed(&path, &user.access_token).await;
        assert_eq!(res.status(), 200, "{path}");
        let page: Value = res.json().await.unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
    panic!("listing never ended");
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn listing_pages_through_every_sort_without_gaps(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let other = app.new_user().await;
    // Sizes repeat on purpose: ties are broken by id.
    let files = [
        ("delta", 5),
        ("Alpha", 3),
        ("charlie", 3),
        ("bravo", 9),
        ("echo", 1),
        ("alpha2", 3),
        ("Foxtrot", 7),
    ];
    for (name, size) in files {
        app.create_upload(&user.access_token, &json!({"name": name, "size": size}))
            .await;
    }
    app.create_upload(
        &other.access_token,
        &json!({"name": "not-yours", "size": 1}),
    )
    .await;

    let by_name = names(&list_all(&app, &user, "sort=name&limit=2").await);
    assert_eq!(
        by_name,
        [
            "Alpha", "alpha2", "bravo", "charlie", "delta", "echo", "Foxtrot"
        ]
    );
    let mut reversed = by_name.clone();
    reversed.reverse();
    assert_eq!(
        names(&list_all(&app, &user, "sort=-name&limit=3").await),
        reversed
    );

    let by_created = names(&list_all(&app, &user, "sort=created_at&limit=2").await);
    let in_order: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(by_created, in_order);
    let newest_first = names(&list_all(&app, &user, "limit=4").await);
    assert_eq!(
        newest_first,
        in_order.iter().rev().cloned().collect::<Vec<_>>(),
        "default sort is -created_at"
    );

    for (query, descending) in [("sort=size&limit=2", false), ("sort=-size&limit=2", true)] {
        let items = list_all(&app, &user, query).await;
        assert_eq!(items.len(), files.len());
        let sizes: Vec<i64> = items.iter().map(|f| f["size"].as_i64().unwrap()).collect();
        let mut sorted = sizes.clone();
        sorted.sort();
        if descending {
            sorted.reverse();
        }
        assert_eq!(sizes, sorted, "{query}");
        let unique: HashSet<&str> = items.iter().map(|f| f["id"].as_str().unwrap()).collect();
        assert_eq!(unique.len(), files.len(), "no file twice: {query}");
    }

    // A file added mid-listing neither repeats nor hides the others.
    let first: Value = app
        .get_authed("/api/v1/files?sort=name&limit=3", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    app.create_upload(&user.access_token, &json!({"name": "aardvark", "size": 1}))
        .await;
    let cursor = first["next_cursor"].as_str().map(str::to_owned);
    let rest = list_from(&app, &user, "sort=name&limit=3", cursor).await;
    let mut seen = names(first["items"].as_array().unwrap());
    seen.extend(names(&rest));
    assert_eq!(
        seen, by_name,
        "the new file sorts before the cursor and is not seen on later pages"
    );

    // Prefix search is case-insensitive, and `%`/`_` are literal.
    assert_eq!(
        names(&list_all(&app, &user, "q=ALPHA&sort=name").await),
        ["Alpha", "alpha2"]
    );
    assert!(list_all(&app, &user, "q=%25").await.is_empty());
    assert!(list_all(&app, &user, "q=_").await.is_empty());

    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "sort=owner",
        "view=everything",
        "cursor=nonsense",
    ] {
        let res = app
            .get_authed(&format!("/api/v1/files?{bad}"), &user.access_token)
            .await;
        assert_problem(res, 400, "invalid_field").await;
    }
    // A cursor from another sort.
    let by_size: Value = app
        .get_authed("/api/v1/files?sort=size&limit=1", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    let cursor = by_size["next_cursor"].as_str().unwrap();
    let res = app
        .get_authed(
            &format!("/api/v1/files?sort=name&cursor={cursor}"),
            &user.access_token,
        )
        .await;
    assert_problem(res, 400, "invalid_field").await;
}

async fn get_and_patch_follow_versions_and_etags(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let file = app.upload_file(&user, "draft.txt", b"text").await;
    let id = file["id"].as_str().unwrap();
    app.create_upload(&user.access_token, &json!({"name": "taken.txt", "size": 1}))
        .await;

    // An empty change is no change: the version stays.
    let res = app
        .patch_file(&user.access_token, id, &json!({}), None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let res = app.get_file(&user.access_token, id).await;
    assert_eq!(res.headers()["etag"], "\"2\"");
    let v2: Value = res.json().await.unwrap();
    assert_eq!(v2["version"], 2);

    let res = app
        .patch_file(
            &user.access_token,
            id,
            &json!({"name": "final.txt"}),
            Some("\"2\""),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"3\"");
    let v3: Value = res.json().await.unwrap();
    assert_eq!(
        (v3["name"].as_str(), v3["version"].as_i64()),
        (Some("final.txt"), Some(3))
    );

    // A stale ETag changes nothing.
    assert_problem(
        app.patch_file(
            &user.access_token,
            id,
            &json!({"name": "lost.txt"}),
            Some("\"2\""),
        )
        .await,
        412,
        "version_mismatch",
    )
    .await;
    assert_problem(
        app.patch_file(
            &user.access_token,
            id,
            &json!({"name": "lost.txt"}),
            Some("garbage"),
        )
        .await,
        412,
        "version_mismatch",
    )
    .await;
    // Names: taken, malformed, unknown fields.
    assert_problem(
        app.patch_file(&user.access_token, id, &json!({"name": "taken.txt"}), None)
            .await,
        409,
        "name_taken",
    )
    .await;
    assert_problem(
        app.patch_file(&user.access_token, id, &json!({"name": "a/b"}), None)
            .await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        app.patch_file(&user.access_token, id, &json!({"owner_id": user.id}), None)
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert_problem(
        app.patch_file(
            &user.access_token,
            id,
            &json!({"visibility": "world"}),
            None,
        )
        .await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        app.patch_file(
            &user.access_token,
            id,
            &json!({"expires_at": "2001-01-01T00:00:00Z"}),
            None,
        )
        .await,
        400,
        "invalid_field",
    )
    .await;
    let unchanged: Value = app
        .get_file(&user.access_token, id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (unchanged["name"].as_str(), unchanged["version"].as_i64()),
        (Some("final.txt"), Some(3))
    );

    // Expiry set and cleared; `*` matches any version.
    let res = app
        .patch_file(
            &user.access_token,
            id,
            &json!({"expires_at": "2099-01-01T00:00:00Z"}),
            Some("*"),
        )
        .await;
    let with_expiry: Value = res.json().await.unwrap();
    assert_eq!(with_expiry["expires_at"], "2099-01-01T00:00:00Z");
    let res = app
        .patch_file(&user.access_token, id, &json!({"expires_at": null}), None)
        .await;
    let cleared: Value = res.json().await.unwrap();
    assert_eq!(cleared["expires_at"], Value::Null);
    assert_eq!(cleared["version"], 5);

    // A pending file cannot be made public.
    let pending = app
        .create_upload(
            &user.access_token,
            &json!({"name": "pending.bin", "size": 10}),
        )
        .await;
    let pid = pending["file"]["id"].as_str().unwrap();
    assert_problem(
        app.patch_file(
            &user.access_token,
            pid,
            &json!({"visibility": "public"}),
            None,
        )
        .await,
        409,
        "file_pending",
    )
    .await;
    // A malformed id.
    assert_problem(
        app.get_authed("/api/v1/files/not-a-uuid", &user.access_token)
            .await,
        400,
        "invalid_path",
    )
    .await;
}

async fn downloads_redirect_and_support_ranges(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(10_000);
    let file = app.upload_file(&user, "Report (final) é.pdf", &bytes).await;
    let id = file["id"].as_str().unwrap();

    let res = app
        .get_authed(
            &format!("/api/v1/files/{id}/content?disposition=inline"),
            &user.access_token,
        )
        .await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let res = app
        .client
        .get(&location)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 100-199/10000");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), &bytes[100..200]);
    let res = app
        .client
        .get(&location)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), &bytes[9990..]);
    if stack == Stack::Embedded {
        // The local store answers HEAD on its signed GET URLs with the same head.
        let res = app.client.head(&location).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-length"], "10000");
        let res = app
            .client
            .head(&location)
            .header("range", "bytes=0-9")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (
                res.status().as_u16(),
                res.headers()["content-length"].to_str().unwrap()
            ),
            (206, "10")
        );
    }

    let link: Value = app
        .get_authed(
            &format!("/api/v1/files/{id}/download-url"),
            &user.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(link["expires_at"].is_string());
    let res = app
        .client
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''Report%20%28final%29%20%C3%A9.pdf"),
        "{disposition}"
    );
    assert_eq!(sha256_hex(&res.bytes().await.unwrap()), sha256_hex(&bytes));

    assert_problem(
        app.get_authed(
            &format!("/api/v1/files/{id}/content?disposition=sideways"),
            &user.access_token,
        )
        .await,
        400,
        "invalid_field",
    )
    .await;
    let pending = app
        .create_upload(
            &user.access_token,
            &json!({"name": "later.bin", "size": 10}),
        )
        .await;
    let pid = pending["file"]["id"].as_str().unwrap();
    assert_problem(
        app.get_authed(&format!("/api/v1/files/{pid}/content"), &user.access_token)
            .await,
        409,
        "file_pending",
    )
    .await;
}

async fn public_links_live_while_the_file_is_public(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let file = app
        .upload_file(&user, "poster.png", b"not really a png")
        .await;
    let id = file["id"].as_str().unwrap();
    assert_eq!(file["public_url"], Value::Null);

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
    assert_eq!(public["visibility"], "public");
    let public_url = public["public_url"].as_str().unwrap().to_owned();
    assert!(public_url.starts_with(&app.address), "{public_url}");
    let token = public_url.rsplit('/').next().unwrap();
    assert!(token.len() >= 22, "unguessable: {token}");

    // Anyone, without a token.
    let res = app.client.get(&public_url).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let res = app
        .client
        .get(res.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"not really a png");

    let private: Value = app
        .patch_file(
            &user.access_token,
            id,
            &json!({"visibility": "private"}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(private["public_url"], Value::Null);
    assert_problem(
        app.client.get(&public_url).send().await.unwrap(),
        404,
        "public_link_not_found",
    )
    .await;
    // Public again: a new token; the old one stays dead.
    let again: Value = app
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
    assert_ne!(again["public_url"].as_str().unwrap(), public_url);
    assert_eq!(
        app.client.get(&public_url).send().await.unwrap().status(),
        404
    );
    assert_problem(
        app.client
            .get(app.url("/public/guess"))
            .send()
            .await
            .unwrap(),
        404,
        "public_link_not_found",
    )
    .await;
}

async fn strangers_get_404_on_every_route(stack: Stack) {
    let app = spawn_app(stack).await;
    let owner = app.new_user().await;
    let stranger = app.new_user().await;
    let available = app.upload_file(&owner, "mine.txt", b"private").await;
    let pending = app
        .create_upload(
            &owner.access_token,
            &json!({"name": "pending.txt", "size": 3}),
        )
        .await;
    for file in [&available, &pending["file"]] {
        let id = file["id"].as_str().unwrap();
        let t = &stranger.access_token;
        assert_problem(app.get_file(t, id).await, 404, "file_not_found").await;
        assert_problem(
            app.patch_file(t, id, &json!({"name": "stolen"}), None)
                .await,
            404,
            "file_not_found",
        )
        .await;
        assert_problem(
            app.post_authed(&format!("/api/v1/files/{id}/confirm"), t, &json!({}))
                .await,
            404,
            "file_not_found",
        )
        .await;
        assert_problem(
            app.get_authed(&format!("/api/v1/files/{id}/content"), t)
                .await,
            404,
            "file_not_found",
        )
        .await;
        assert_problem(
            app.get_authed(&format!("/api/v1/files/{id}/download-url"), t)
                .await,
            404,
            "file_not_found",
        )
        .await;
    }
    // An id that exists nowhere answers the same.
    let nobody = uuid::Uuid::now_v7().to_string();
    let body = assert_problem(
        app.get_file(&stranger.access_token, &nobody).await,
        404,
        "file_not_found",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains(&nobody));
    let listed: Value = app
        .get_authed("/api/v1/files", &stranger.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    // The owner's file is untouched.
    let mine: Value = app
        .get_file(&owner.access_token, available["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["name"], "mine.txt");
}

async fn me_reports_usage_of_available_files(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    app.upload_file(&user, "a", &random_bytes(1000)).await;
    app.upload_file(&user, "b", &random_bytes(234)).await;
    app.create_upload(
        &user.access_token,
        &json!({"name": "pending", "size": 5000}),
    )
    .await;
    let me: Value = app
        .get_authed("/api/v1/me", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    // The pending upload's declared size is reserved.
    assert_eq!(
        me["usage"],
        json!({"files": 2, "bytes": 1234, "reserved_bytes": 5000})
    );
}
