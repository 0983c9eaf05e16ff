//! tus 1.0 at `/api/v1/tus`: the conformance suite, every status code and
//! header the protocol names, on both stacks.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::Response;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{
    Stack, TestApp, User, assert_problem, random_bytes, sha256_hex, spawn_app, spawn_app_with,
};

crate::on_both_stacks!(
    capabilities_and_version_rules,
    a_chunked_upload_becomes_an_available_file,
    offsets_types_and_lengths_are_checked,
    checksums_are_checked_and_bad_chunks_discarded,
    deferred_length_creation_with_upload_and_empty_uploads,
    termination_and_method_override,
    expired_uploads_answer_410_then_leave_nothing,
    a_broken_off_request_keeps_what_arrived_and_requests_never_interleave,
);

const MIB: usize = 1 << 20;
const OCTETS: &str = "application/offset+octet-stream";

fn metadata(name: &str, content_type: &str) -> String {
    format!(
        "filename {},filetype {}",
        B64.encode(name),
        B64.encode(content_type)
    )
}

/// POSTs a creation request with these headers; returns the response.
async fn post(app: &TestApp, user: &User, headers: &[(&str, &str)]) -> Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/tus"))
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Creates an upload of `length` bytes; returns its URL.
pub async fn create(app: &TestApp, user: &User, length: u64, name: &str) -> String {
    let res = post(
        app,
        user,
        &[
            ("Upload-Length", &length.to_string()),
            ("Upload-Metadata", &metadata(name, "text/plain")),
        ],
    )
    .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.headers()["location"].to_str().unwrap().to_owned()
}

pub async fn patch(
    app: &TestApp,
    user: &User,
    url: &str,
    offset: u64,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Response {
    let offset = offset.to_string();
    let mut all = vec![("Content-Type", OCTETS), ("Upload-Offset", offset.as_str())];
    all.extend_from_slice(headers);
    raw_patch(app, user, url, body, &all).await
}

/// A PATCH with only the token, `Tus-Resumable` and these headers.
async fn raw_patch(
    app: &TestApp,
    user: &User,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Response {
    let mut req = app
        .client
        .patch(url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.unwrap()
}

pub async fn head(app: &TestApp, user: &User, url: &str) -> Response {
    app.client
        .head(url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap()
}

pub async fn offset_of(app: &TestApp, user: &User, url: &str) -> u64 {
    let res = head(app, user, url).await;
    assert_eq!(res.status(), 200);
    header(&res, "upload-offset").parse().unwrap()
}

fn header(res: &Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from {:?}", res.headers()))
        .to_str()
        .unwrap()
        .to_owned()
}

fn upload_id(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// The session behind a tus URL, as `/api/v1/uploads/{id}` shows it.
async fn session(app: &TestApp, user: &User, url: &str) -> Value {
    let res = app
        .get_authed(
            &format!("/api/v1/uploads/{}", upload_id(url)),
            &user.access_token,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn capabilities_and_version_rules(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/tus"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "tus-resumable"), "1.0.0");
    assert_eq!(header(&res, "tus-version"), "1.0.0");
    assert_eq!(header(&res, "tus-max-size"), (5u64 << 40).to_string());
    assert_eq!(header(&res, "tus-checksum-algorithm"), "sha1,sha256");
    let extensions = header(&res, "tus-extension");
    for ext in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(extensions.split(',').any(|e| e == ext), "{ext}");
    }
    // Tus-Resumable missing or of another version: 412 with Tus-Version.
    for version in [None, Some("0.2.2")] {
        let mut req = app
            .client
            .post(app.url("/api/v1/tus"))
            .bearer_auth(&user.access_token)
            .header("Upload-Length", "10");
        if let Some(v) = version {
            req = req.header("Tus-Resumable", v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(header(&res, "tus-version"), "1.0.0");
        assert_problem(
            res,
            412,
            if version.is_some() {
                "tus_version_unsupported"
            } else {
                "tus_version_missing"
            },
        )
        .await;
    }
    // No token: 401, as everywhere under /api/v1.
    let res = app
        .client
        .post(app.url("/api/v1/tus"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Over STOWAGE_MAX_UPLOAD_SIZE: 413, nothing created.
    let small = spawn_app_with(stack, &[("--max-upload-size", "1MiB")]).await;
    let user = small.new_user().await;
    let res = post(&small, &user, &[("Upload-Length", &(MIB + 1).to_string())]).await;
    assert_problem(res, 413, "upload_too_large").await;
    let sessions: Value = small
        .get_authed("/api/v1/uploads", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["items"].as_array().unwrap().len(), 0);
}

async fn a_chunked_upload_becomes_an_available_file(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    // 12 MiB in 3 MiB requests: on S3 the first part (5 MiB or more) is cut
    // across requests, the bytes short of a part wait in the tail object.
    let bytes = random_bytes(12 * MIB + 123);
    let url = create(&app, &user, bytes.len() as u64, "notes.txt").await;
    assert!(url.starts_with(&app.address), "{url}");
    let res = head(&app, &user, &url).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "upload-offset"), "0");
    assert_eq!(header(&res, "upload-length"), bytes.len().to_string());
    assert_eq!(header(&res, "cache-control"), "no-store");
    assert_eq!(header(&res, "tus-resumable"), "1.0.0");
    assert_eq!(
        header(&res, "upload-metadata"),
        metadata("notes.txt", "text/plain")
    );
    assert!(header(&res, "upload-expires").ends_with(" GMT"));
    let mut offset = 0;
    for chunk in bytes.chunks(3 * MIB) {
        let res = patch(&app, &user, &url, offset, chunk.to_vec(), &[]).await;
        assert_eq!(res.status(), 204, "{:?}", res.text().await);
        offset += chunk.len() as u64;
        assert_eq!(header(&res, "upload-offset"), offset.to_string());
        assert_eq!(header(&res, "tus-resumable"), "1.0.0");
        if offset < bytes.len() as u64 {
            assert!(header(&res, "upload-expires").ends_with(" GMT"));
            assert_eq!(offset_of(&app, &user, &url).await, offset);
        }
    }
    let s = session(&app, &user, &url).await;
    assert_eq!(s["kind"], "tus");
    assert_eq!(s["state"], "completed");
    assert_eq!(s["offset"], bytes.len() as u64);
    let file_id = s["file_id"].as_str().unwrap().to_owned();
    let file: Value = app
        .get_file(&user.access_token, &file_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["status"], "available");
    assert_eq!(file["name"], "notes.txt");
    assert_eq!(file["content_type"], "text/plain");
    assert_eq!(file["size"], bytes.len() as u64);
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    assert_eq!(app.download(&user.access_token, &file_id).await, bytes);
    // A finished upload is no longer among the unfinished.
    let list: Value = app
        .get_authed("/api/v1/uploads", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    assert!(
        app.metric("stowage_uploads_completed_total{kind=\"tus\"}")
            .await
            >= 1.0
    );
    assert!(app.metric("stowage_upload_bytes_total{kind=\"tus\"}").await >= bytes.len() as f64);
    // HEAD on the finished upload still answers, offset = length.
    assert_eq!(offset_of(&app, &user, &url).await, bytes.len() as u64);
    // The last tail went with the upload.
    assert_staged_nothing(&app, upload_id(&url)).await;
}

async fn offsets_types_and_lengths_are_checked(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let url = create(&app, &user, 100, "a.txt").await;
    assert_eq!(
        patch(&app, &user, &url, 0, vec![1; 40], &[]).await.status(),
        204
    );
    // Wrong offset: 409, nothing written.
    let res = patch(&app, &user, &url, 10, vec![2; 10], &[]).await;
    assert_eq!(header(&res, "tus-resumable"), "1.0.0");
    assert_problem(res, 409, "offset_mismatch").await;
    // Wrong content type: 415.
    let res = raw_patch(
        &app,
        &user,
        &url,
        vec![3; 10],
        &[
            ("Upload-Offset", "40"),
            ("Content-Type", "application/octet-stream"),
        ],
    )
    .await;
    assert_problem(res, 415, "unsupported_media_type").await;
    // Missing or malformed Upload-Offset: 400.
    let res = raw_patch(&app, &user, &url, vec![3; 10], &[("Content-Type", OCTETS)]).await;
    assert_problem(res, 400, "invalid_header").await;
    for bad in ["-1", "abc", "1e3", " "] {
        let headers = [("Content-Type", OCTETS), ("Upload-Offset", bad)];
        let res = raw_patch(&app, &user, &url, vec![3; 10], &headers).await;
        assert_problem(res, 400, "invalid_header").await;
    }
    // Past the upload's length: 413, nothing written.
    let res = patch(&app, &user, &url, 40, vec![4; 61], &[]).await;
    assert_problem(res, 413, "past_upload_length").await;
    // Another length than declared: 400.
    let res = patch(
        &app,
        &user,
        &url,
        40,
        vec![4; 10],
        &[("Upload-Length", "99")],
    )
    .await;
    assert_problem(res, 400, "length_mismatch").await;
    assert_eq!(offset_of(&app, &user, &url).await, 40);
    // Creation needs a length and well-formed metadata.
    assert_problem(post(&app, &user, &[]).await, 400, "invalid_header").await;
    for bad in [
        ("Upload-Length", "ten"),
        ("Upload-Defer-Length", "2"),
        ("Upload-Metadata", "filename !!notbase64"),
        ("Upload-Metadata", "filename /w=="),
    ] {
        let mut headers = vec![bad];
        if bad.0 != "Upload-Length" {
            headers.push(("Upload-Length", "5"));
        }
        if bad.0 == "Upload-Defer-Length" {
            headers.pop();
        }
        assert_problem(post(&app, &user, &headers).await, 400, "invalid_header").await;
    }
    // An unknown upload, a malformed id and another user's upload: 404.
    let stranger = app.new_user().await;
    let unknown = format!("{}/api/v1/tus/{}", app.address, uuid::Uuid::now_v7());
    let malformed = format!("{}/api/v1/tus/not-an-id", app.address);
    for (who, target) in [(&user, &unknown), (&user, &malformed), (&stranger, &url)] {
        assert_eq!(head(&app, who, target).await.status(), 404);
        let res = patch(&app, who, target, 40, vec![5; 10], &[]).await;
        assert_problem(res, 404, "upload_not_found").await;
    }
    // The owner finishes it.
    let res = patch(&app, &user, &url, 40, vec![6; 60], &[]).await;
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "upload-offset"), "100");
}

async fn checksums_are_checked_and_bad_chunks_discarded(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(6 * MIB + 7);
    let url = create(&app, &user, bytes.len() as u64, "c.bin").await;
    let (first, rest) = bytes.split_at(3 * MIB);
    let sha1 = |b: &[u8]| format!("sha1 {}", B64.encode(sha1::Sha1::digest(b)));
    let sha256 = |b: &[u8]| format!("sha256 {}", B64.encode(Sha256::digest(b)));
    let res = patch(
        &app,
        &user,
        &url,
        0,
        first.to_vec(),
        &[("Upload-Checksum", &sha1(first))],
    )
    .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    // A corrupted chunk: 460, discarded.
    let mut corrupted = rest.to_vec();
    corrupted[12345] ^= 0xff;
    let res = patch(
        &app,
        &user,
        &url,
        first.len() as u64,
        corrupted,
        &[("Upload-Checksum", &sha256(rest))],
    )
    .await;
    assert_eq!(res.status(), 460);
    assert_eq!(header(&res, "tus-resumable"), "1.0.0");
    let body = assert_problem(res, 460, "checksum_mismatch").await;
    assert_eq!(body["title"], "Checksum Mismatch");
    assert_eq!(offset_of(&app, &user, &url).await, first.len() as u64);
    // Unsupported algorithm, malformed digest: 400.
    for (value, code) in [
        ("md5 1B2M2Y8AsgTpgAmY7PhCfg==", "unsupported_checksum"),
        ("sha256 not-base64!", "invalid_header"),
        ("sha256", "invalid_header"),
    ] {
        let res = patch(
            &app,
            &user,
            &url,
            first.len() as u64,
            rest.to_vec(),
            &[("Upload-Checksum", value)],
        )
        .await;
        assert_problem(res, 400, code).await;
    }
    assert_eq!(offset_of(&app, &user, &url).await, first.len() as u64);
    let res = patch(
        &app,
        &user,
        &url,
        first.len() as u64,
        rest.to_vec(),
        &[("Upload-Checksum", &sha256(rest))],
    )
    .await;
    assert_eq!(res.status(), 204);
    let file_id = session(&app, &user, &url).await["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file: Value = app
        .get_file(&user.access_token, &file_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    assert_eq!(app.download(&user.access_token, &file_id).await, bytes);
    assert!(
        app.metric("stowage_uploads_failed_total{kind=\"tus\",reason=\"checksum_mismatch\"}")
            .await
            >= 1.0
    );
}

async fn deferred_length_creation_with_upload_and_empty_uploads(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    // Deferred length: HEAD says so until a PATCH declares it.
    let res = post(
        &app,
        &user,
        &[
            ("Upload-Defer-Length", "1"),
            ("Upload-Metadata", &metadata("stream.log", "text/plain")),
        ],
    )
    .await;
    assert_eq!(res.status(), 201);
    assert!(header(&res, "upload-expires").ends_with(" GMT"));
    let url = header(&res, "location");
    let res = head(&app, &user, &url).await;
    assert_eq!(header(&res, "upload-defer-length"), "1");
    assert!(res.headers().get("upload-length").is_none());
    let bytes = random_bytes(6 * MIB + 5);
    let (a, b) = bytes.split_at(5 * MIB + 1);
    assert_eq!(
        patch(&app, &user, &url, 0, a.to_vec(), &[]).await.status(),
        204
    );
    assert_eq!(offset_of(&app, &user, &url).await, a.len() as u64);
    let res = patch(
        &app,
        &user,
        &url,
        a.len() as u64,
        b.to_vec(),
        &[("Upload-Length", &bytes.len().to_string())],
    )
    .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    let s = session(&app, &user, &url).await;
    assert_eq!(s["state"], "completed");
    let file_id = s["file_id"].as_str().unwrap();
    assert_eq!(app.download(&user.access_token, file_id).await, bytes);

    // creation-with-upload: the POST carries the first bytes.
    let bytes = random_bytes(1000);
    let res = app
        .client
        .post(app.url("/api/v1/tus"))
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "1000")
        .header(
            "Upload-Metadata",
            metadata("inline.bin", "application/x-test"),
        )
        .header("Content-Type", OCTETS)
        .body(bytes[..600].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "upload-offset"), "600");
    let url = header(&res, "location");
    assert_eq!(
        patch(&app, &user, &url, 600, bytes[600..].to_vec(), &[])
            .await
            .status(),
        204
    );
    let file_id = session(&app, &user, &url).await["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.download(&user.access_token, &file_id).await, bytes);

    // An empty upload is complete at once.
    let url = create(&app, &user, 0, "empty.txt").await;
    let s = session(&app, &user, &url).await;
    assert_eq!(s["state"], "completed");
    let file: Value = app
        .get_file(&user.access_token, s["file_id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["status"], "available");
    assert_eq!(file["sha256"], sha256_hex(b""));
}

async fn termination_and_method_override(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(6 * MIB);
    let url = create(&app, &user, bytes.len() as u64, "gone.bin").await;
    // PATCH through POST + X-HTTP-Method-Override.
    let res = app
        .client
        .post(&url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("X-HTTP-Method-Override", "PATCH")
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "0")
        .body(bytes[..5 * MIB + 1].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "upload-offset"), (5 * MIB + 1).to_string());
    let file_id = session(&app, &user, &url).await["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A stranger cannot terminate it.
    let stranger = app.new_user().await;
    let res = app
        .client
        .delete(&url)
        .bearer_auth(&stranger.access_token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "upload_not_found").await;
    // DELETE through the override.
    let res = app
        .client
        .post(&url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("X-HTTP-Method-Override", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "tus-resumable"), "1.0.0");
    assert_eq!(head(&app, &user, &url).await.status(), 404);
    let res = patch(&app, &user, &url, 5 * MIB as u64 + 1, vec![0; 10], &[]).await;
    assert_problem(res, 404, "upload_not_found").await;
    assert_eq!(
        app.get_file(&user.access_token, &file_id).await.status(),
        404
    );
    assert_staged_nothing(&app, upload_id(&url)).await;
    // A finished upload is a file: termination refuses.
    let url = create(&app, &user, 3, "kept.txt").await;
    assert_eq!(
        patch(&app, &user, &url, 0, b"abc".to_vec(), &[])
            .await
            .status(),
        204
    );
    let res = app
        .client
        .delete(&url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "upload_completed").await;
}

/// Nothing of the upload is left in the store: no staging file (local),
/// no multipart upload or tail object (S3).
async fn assert_staged_nothing(app: &TestApp, upload: &str) {
    match app.stack {
        Stack::Embedded => {
            let staged = app.data_dir.join("blobs/staging").join(upload);
            assert!(!staged.exists(), "{} is left", staged.display());
        }
        Stack::Services => {
            let kept = crate::tus_parts::tus_objects(app, upload).await;
            assert!(kept.is_empty(), "{kept:?} are left");
            assert_eq!(crate::janitor::s3_multipart_uploads(app, "users/").await, 0);
        }
    }
}

async fn expired_uploads_answer_410_then_leave_nothing(stack: Stack) {
    let app = spawn_app_with(
        stack,
        &[("--upload-expiry", "1s"), ("--janitor-interval", "60s")],
    )
    .await;
    let user = app.new_user().await;
    let url = create(&app, &user, (6 * MIB) as u64, "late.bin").await;
    let res = patch(&app, &user, &url, 0, random_bytes(5 * MIB + 3), &[]).await;
    assert_eq!(res.status(), 204);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(head(&app, &user, &url).await.status(), 410);
    let res = patch(&app, &user, &url, 5 * MIB as u64 + 3, vec![0; 10], &[]).await;
    assert_problem(res, 410, "upload_expired").await;
    // The janitor's sweep frees the store and forgets the upload.
    let janitor = stowage_actors::janitor::Janitor {
        db: sea_orm::Database::connect(database_url(&app))
            .await
            .unwrap(),
        storage: std::sync::Arc::new(storage_of(&app).await),
        bus: app.bus.clone(),
        trash_retention: Duration::from_secs(60),
        revisions: Default::default(),
        reconcile_after: Duration::from_secs(60),
        orphan_grace: Duration::from_secs(60),
        orphan_cursor: Default::default(),
        retry_after: std::time::Duration::from_secs(1),
        stopping: Default::default(),
    };
    assert_eq!(janitor.stale_uploads().await.unwrap(), 1);
    assert_eq!(head(&app, &user, &url).await.status(), 404);
    assert_staged_nothing(&app, upload_id(&url)).await;
}

fn database_url(app: &TestApp) -> String {
    match app.stack {
        Stack::Embedded => format!(
            "sqlite://{}?mode=rwc",
            app.data_dir.join("stowage.db").display()
        ),
        Stack::Services => app.database_url.clone().expect("services have a database"),
    }
}

async fn storage_of(app: &TestApp) -> stowage_actors::storage::Storage {
    use stowage_actors::storage::{S3Config, S3Store, Storage};
    match app.stack {
        Stack::Embedded => {
            let signer = stowage_actors::storage::signing::UrlSigner::derive(
                &secrecy::SecretSlice::from(b"unused by these sweeps".to_vec()),
            );
            Storage::Local(std::sync::Arc::new(
                stowage_actors::storage::LocalStore::open(
                    &app.data_dir.join("blobs"),
                    signer,
                    &app.address,
                    "stowage",
                    app.bus.clone(),
                    None,
                )
                .unwrap(),
            ))
        }
        Stack::Services => Storage::S3(std::sync::Arc::new(
            S3Store::connect(&S3Config {
                endpoint: std::env::var("STOWAGE_TEST_S3_ENDPOINT").unwrap(),
                bucket: app.bucket.clone(),
                region: "us-east-1".into(),
                access_key: std::env::var("STOWAGE_TEST_S3_ACCESS_KEY").unwrap().into(),
                secret_key: std::env::var("STOWAGE_TEST_S3_SECRET_KEY").unwrap().into(),
                sse: None,
            })
            .await
            .unwrap(),
        )),
    }
}

async fn a_broken_off_request_keeps_what_arrived_and_requests_never_interleave(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(12 * MIB);
    let url = create(&app, &user, bytes.len() as u64, "flaky.bin").await;
    // A PATCH whose body arrives slowly: 7 MiB, then nothing.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let slow = {
        let req = app
            .client
            .patch(&url)
            .bearer_auth(&user.access_token)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", OCTETS)
            .header("Upload-Offset", "0")
            .body(body);
        actix_web::rt::spawn(async move { req.send().await })
    };
    for chunk in bytes[..7 * MIB].chunks(MIB) {
        tx.send(Ok(chunk.to_vec())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While it is open, a second PATCH of the same upload is refused.
    let res = patch(&app, &user, &url, 0, bytes[..MIB].to_vec(), &[]).await;
    assert_eq!(header(&res, "tus-resumable"), "1.0.0");
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 423, "upload_locked").await;
    // The client goes away mid-body.
    tx.send(Err(std::io::Error::other("network gone")))
        .await
        .unwrap();
    drop(tx);
    let _ = slow.await;
    // What arrived is acknowledged (on S3: the whole parts and the tail),
    // and the first HEAD after the break already says so: it waits for
    // the broken request to finish storing (a reloaded page resumes from
    // there, not from 0).
    let res = head(&app, &user, &url).await;
    assert_eq!(res.status(), 200);
    let offset: u64 = header(&res, "upload-offset").parse().unwrap();
    assert!(
        offset > 0 && offset <= 7 * MIB as u64,
        "offset {offset} after a broken request"
    );
    // The client resumes from there, as tus clients do: on 409 or 423 it
    // asks for the offset again (the broken request may still be writing).
    let res = loop {
        let offset = offset_of(&app, &user, &url).await;
        let res = patch(
            &app,
            &user,
            &url,
            offset,
            bytes[offset as usize..].to_vec(),
            &[],
        )
        .await;
        if res.status() != 423 && res.status() != 409 {
            break res;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    let file_id = session(&app, &user, &url).await["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file: Value = app
        .get_file(&user.access_token, &file_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(file["sha256"], sha256_hex(&bytes));
}
