//! Encryption at rest in the local store: no upload's plaintext is on disk
//! whichever way it came, Range reads cross segment boundaries, a damaged
//! object is an error and never other bytes, and `stowage keys rotate`
//! re-wraps every key (uploads in flight included) without rewriting
//! objects.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{Stack, TestApp, User, random_bytes, spawn_app, spawn_app_with};
use crate::multipart::{complete, put_part};

/// Plaintext that is easy to find: a marker every 32 bytes.
fn marked(len: usize, tag: u8) -> Vec<u8> {
    let line = format!("PLAINTEXT-MARKER-{tag:03}-0123456789");
    line.as_bytes().iter().copied().cycle().take(len).collect()
}

const MARKER: &[u8] = b"PLAINTEXT-MARKER-";

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path);
            }
        }
    }
    found
}

fn object_path(app: &TestApp, user: &User, file: &str) -> PathBuf {
    app.data_dir
        .join(format!("blobs/objects/users/{}/files/{file}", user.id))
}

/// A direct upload; the file's id.
async fn direct(app: &TestApp, user: &User, name: &str, bytes: Vec<u8>) -> String {
    let created = app
        .create_upload(
            &user.access_token,
            &json!({"name": name, "size": bytes.len(), "sha256": hex::encode(Sha256::digest(&bytes))}),
        )
        .await;
    let res = app.put_to_ticket(&created["upload"], bytes).await;
    assert_eq!(res.status(), 200);
    created["file"]["id"].as_str().unwrap().to_owned()
}

/// A multipart upload with its one part stored; its id and the file's.
async fn multipart_started(app: &TestApp, user: &User, bytes: &[u8]) -> (String, String, String) {
    let res = app
        .post_authed(
            "/api/v1/uploads/multipart",
            &user.access_token,
            &json!({"name": "parts.bin", "size": bytes.len()}),
        )
        .await;
    let session: Value = res.json().await.unwrap();
    let upload = session["upload_id"].as_str().unwrap().to_owned();
    let etag = put_part(app, user, &upload, 1, bytes).await;
    let file = session["file"]["id"].as_str().unwrap().to_owned();
    (upload, etag, file)
}

fn tus_id(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// The file a tus upload makes.
async fn file_of_tus(app: &TestApp, user: &User, url: &str) -> String {
    let res = app
        .get_authed(
            &format!("/api/v1/uploads/{}", tus_id(url)),
            &user.access_token,
        )
        .await;
    let session: Value = res.json().await.unwrap();
    session["file_id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn no_upload_leaves_its_plaintext_on_disk() {
    let app = spawn_app(Stack::Embedded).await;
    let user = app.new_user().await;
    let mut files = Vec::new();

    let bytes = marked(200_000, 1);
    files.push((
        direct(&app, &user, "direct.txt", bytes.clone()).await,
        bytes,
    ));

    let bytes = marked(150_000, 2);
    let (upload, etag, file) = multipart_started(&app, &user, &bytes).await;
    // A stored part, before completion.
    assert_eq!(files_holding(&app.data_dir, MARKER), Vec::<PathBuf>::new());
    assert_eq!(
        complete(&app, &user, &upload, &[(1, &etag)]).await.status(),
        200
    );
    files.push((file, bytes));

    // tus in three PATCHes: staged segments and an unfinished tail between them.
    let bytes = marked(300_000, 3);
    let url = crate::tus::create(&app, &user, bytes.len() as u64, "tus.txt").await;
    for (from, to) in [(0, 100_000), (100_000, 200_001)] {
        let res = crate::tus::patch(
            &app,
            &user,
            &url,
            from,
            bytes[from as usize..to].to_vec(),
            &[],
        )
        .await;
        assert_eq!(res.status(), 204);
        assert_eq!(files_holding(&app.data_dir, MARKER), Vec::<PathBuf>::new());
    }
    let res = crate::tus::patch(&app, &user, &url, 200_001, bytes[200_001..].to_vec(), &[]).await;
    assert_eq!(res.status(), 204);
    files.push((file_of_tus(&app, &user, &url).await, bytes));

    assert_eq!(
        files_holding(&app.data_dir, MARKER),
        Vec::<PathBuf>::new(),
        "plaintext on disk"
    );
    for (id, bytes) in files {
        app.wait_available(&user.access_token, &id, 10).await;
        assert!(object_path(&app, &user, &id).exists());
        assert_eq!(app.download(&user.access_token, &id).await, bytes, "{id}");
        let file: Value = app
            .get_file(&user.access_token, &id)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            file["sha256"],
            hex::encode(Sha256::digest(&bytes)),
            "the recorded hash is of the plaintext"
        );
    }
}

/// The signed URL a file downloads from.
async fn download_url(app: &TestApp, user: &User, id: &str) -> String {
    let res = app
        .get_authed(&format!("/api/v1/files/{id}/content"), &user.access_token)
        .await;
    assert_eq!(res.status(), 302);
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn get_range(app: &TestApp, url: &str, range: &str) -> (u16, Vec<u8>) {
    let res = app
        .client
        .get(url)
        .header("Range", range)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
}

#[actix_web::test]
async fn range_reads_cross_segment_boundaries() {
    let app = spawn_app(Stack::Embedded).await;
    let user = app.new_user().await;
    let bytes = random_bytes(3 * 65_536 + 1234);
    let id = direct(&app, &user, "ranges.bin", bytes.clone()).await;
    app.wait_available(&user.access_token, &id, 10).await;
    let url = download_url(&app, &user, &id).await;
    let len = bytes.len();
    for (range, want) in [
        ("bytes=65530-65545".to_owned(), &bytes[65_530..65_546]),
        ("bytes=0-0".to_owned(), &bytes[..1]),
        ("bytes=65536-131071".to_owned(), &bytes[65_536..131_072]),
        ("bytes=60000-150000".to_owned(), &bytes[60_000..150_001]),
        ("bytes=-10".to_owned(), &bytes[len - 10..]),
        (format!("bytes={}-", len - 1300), &bytes[len - 1300..]),
    ] {
        let (status, got) = get_range(&app, &url, &range).await;
        assert_eq!(status, 206, "{range}");
        assert!(got == want, "{range}: other bytes");
    }
    let (status, got) = get_range(&app, &url, "bytes=0-").await;
    assert_eq!((status, got.len()), (206, len));
    assert!(got == bytes);
}

#[actix_web::test]
async fn a_damaged_object_is_an_error_never_other_bytes() {
    let app = spawn_app(Stack::Embedded).await;
    let user = app.new_user().await;
    let bytes = random_bytes(600_000);
    let id = direct(&app, &user, "fragile.bin", bytes.clone()).await;
    app.wait_available(&user.access_token, &id, 10).await;
    let path = object_path(&app, &user, &id);
    let stored = std::fs::read(&path).unwrap();
    let url = download_url(&app, &user, &id).await;

    // A flipped byte in the first segment: refused before any byte is sent.
    let mut flipped = stored.clone();
    flipped[10] ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 500);
    assert!(!res.text().await.unwrap().contains("fragile"));

    // In the sixth segment, past the first piece read: what comes before
    // it is served; the body then breaks off short of its Content-Length,
    // so no client takes it as the file.
    let mut flipped = stored.clone();
    flipped[6 * 65_552 + 100] ^= 0x80;
    std::fs::write(&path, &flipped).unwrap();
    let (status, first) = get_range(&app, &url, "bytes=0-65535").await;
    assert_eq!(status, 206);
    assert!(first == bytes[..65_536]);
    let whole = app.client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    if let Ok(got) = whole.bytes().await {
        panic!("a damaged object was served whole: {} bytes", got.len());
    }

    // Cut short: refused.
    std::fs::write(&path, &stored[..stored.len() - 100]).unwrap();
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 500);

    // Put back: served again.
    std::fs::write(&path, &stored).unwrap();
    assert_eq!(app.download(&user.access_token, &id).await, bytes);
}

/// `stowage keys rotate` on the app's data dir: the real binary.
async fn rotate(app: &TestApp, configured: Option<&str>) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STOWAGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["--data-dir", app.data_dir.to_str().unwrap()]);
    if let Some(keys) = configured {
        cmd.env("STOWAGE_ENCRYPTION_KEY", keys);
    }
    cmd.args(["keys", "rotate"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn key_file(app: &TestApp) -> Vec<String> {
    std::fs::read_to_string(app.data_dir.join("blobs/encryption.key"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The KEK fingerprint of every wrapped key in the store.
fn wrapped_by(app: &TestApp) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![app.data_dir.join("blobs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.to_string_lossy();
            if !(name.ends_with(".json") || name.ends_with(".crypt")) {
                continue;
            }
            let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let kek = doc["crypt"]["key"]["kek"]
                .as_str()
                .or(doc["key"]["kek"].as_str())
                .map(str::to_owned);
            if let Some(kek) = kek {
                found.push((path, kek));
            }
        }
    }
    found
}

#[actix_web::test]
async fn rotation_rewraps_every_key_with_uploads_in_flight() {
    let app = spawn_app(Stack::Embedded).await;
    let user = app.new_user().await;
    let mut files = Vec::new();
    let bytes = random_bytes(100_000);
    files.push((
        direct(&app, &user, "before.bin", bytes.clone()).await,
        bytes,
    ));
    // In flight: a multipart upload with a part, a tus upload half sent.
    let parts = random_bytes(70_000);
    let (upload, etag, parts_file) = multipart_started(&app, &user, &parts).await;
    let tus = random_bytes(200_000);
    let url = crate::tus::create(&app, &user, tus.len() as u64, "tus.bin").await;
    let res = crate::tus::patch(&app, &user, &url, 0, tus[..90_000].to_vec(), &[]).await;
    assert_eq!(res.status(), 204);
    let tus_file = file_of_tus(&app, &user, &url).await;
    let before = key_file(&app);
    assert_eq!(before.len(), 1);
    let old_kek = wrapped_by(&app)[0].1.clone();
    assert_eq!(wrapped_by(&app).len(), 3, "{:?}", wrapped_by(&app));

    let done = rotate(&app, None).await;
    assert_eq!(done["rewrapped"], 3, "{done}");
    let kek = done["kek"].as_str().unwrap().to_owned();
    assert_ne!(kek, old_kek);
    let after = key_file(&app);
    assert_eq!(after.len(), 1, "the old key leaves the file");
    assert_ne!(after, before);

    // The running server goes on: the uploads in flight finish, new ones
    // are wrapped by the new key.
    let res = crate::tus::patch(&app, &user, &url, 90_000, tus[90_000..].to_vec(), &[]).await;
    assert_eq!(res.status(), 204);
    files.push((tus_file, tus));
    assert_eq!(
        complete(&app, &user, &upload, &[(1, &etag)]).await.status(),
        200
    );
    files.push((parts_file, parts));
    let bytes = random_bytes(5_000);
    files.push((direct(&app, &user, "after.bin", bytes.clone()).await, bytes));
    for (path, by) in wrapped_by(&app) {
        assert_eq!(by, kek, "{} is wrapped by an old key", path.display());
    }
    for (id, bytes) in &files {
        app.wait_available(&user.access_token, id, 10).await;
        assert!(app.download(&user.access_token, id).await == *bytes, "{id}");
    }

    // Interrupted after its first step (the new key put first): run again,
    // the rotation goes on with that key rather than making another.
    let next = crate::helpers::random_key_b64();
    let file = app.data_dir.join("blobs/encryption.key");
    std::fs::write(&file, format!("{next}\n{}\n", after[0])).unwrap();
    let done = rotate(&app, None).await;
    assert_eq!(done["rewrapped"], 4, "{done}");
    assert_eq!(key_file(&app), vec![next]);
    let again = rotate(&app, None).await;
    assert_eq!(
        again["rewrapped"], 4,
        "a finished rotation starts a new one"
    );
    for (id, bytes) in &files {
        assert!(app.download(&user.access_token, id).await == *bytes, "{id}");
    }
}

#[actix_web::test]
async fn a_configured_key_wraps_and_rotates_to_the_next_one() {
    let first = crate::helpers::random_key_b64();
    let app = spawn_app_with(Stack::Embedded, &[("--encryption-key", &first)]).await;
    let user = app.new_user().await;
    let bytes = random_bytes(80_000);
    let id = direct(&app, &user, "configured.bin", bytes.clone()).await;
    app.wait_available(&user.access_token, &id, 10).await;
    assert!(
        !app.data_dir.join("blobs/encryption.key").exists(),
        "no key is generated when one is configured"
    );
    let old = wrapped_by(&app);
    assert_eq!(old.len(), 1);
    // Not base64 of 32 bytes: the rotation refuses to start.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"));
    cmd.env_clear()
        .args(["--data-dir", app.data_dir.to_str().unwrap()])
        .args(["keys", "rotate"])
        .env("STOWAGE_ENCRYPTION_KEY", "c2hvcnQ=");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("STOWAGE_ENCRYPTION_KEY"));

    let second = crate::helpers::random_key_b64();
    let done = rotate(&app, Some(&format!("{second},{first}"))).await;
    assert_eq!(done["rewrapped"], 1, "{done}");
    let now = wrapped_by(&app);
    assert_ne!(now[0].1, old[0].1);
    assert_eq!(now[0].1, done["kek"].as_str().unwrap());
    // The running server has only the old key configured: it refuses (and
    // logs which key it lacks) rather than serving other bytes.
    let url = download_url(&app, &user, &id).await;
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(
        !res.text()
            .await
            .unwrap()
            .contains(done["kek"].as_str().unwrap())
    );
}
