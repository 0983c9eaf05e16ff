//! A 1 GiB file through tus and through presigned multipart, with the
//! server killed (`kill -9`) halfway and started again: the client resumes
//! and the stored file has the source's SHA-256. The real binary runs here,
//! not the in-process app, so the kill is a real one.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::Stack;
use crate::process::{Server, client};

crate::on_both_stacks!(
    a_1gib_tus_upload_survives_kill_9,
    a_1gib_multipart_upload_survives_kill_9,
);

const MIB: u64 = 1 << 20;
const SIZE: u64 = 1 << 30;
const OCTETS: &str = "application/offset+octet-stream";

/// Block `i` of the test file: a fixed random MiB with its index in front,
/// so that a misplaced block changes the hash.
struct Source {
    block: Vec<u8>,
}

impl Source {
    fn new() -> Self {
        Self {
            block: crate::helpers::random_bytes(MIB as usize),
        }
    }

    fn block(&self, i: u64) -> Bytes {
        let mut b = self.block.clone();
        b[..8].copy_from_slice(&i.to_le_bytes());
        Bytes::from(b)
    }

    /// Bytes `from..to` (MiB-aligned `from`), as a stream of MiB blocks.
    fn stream(
        &self,
        from: u64,
        to: u64,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let blocks: Vec<Bytes> = (from / MIB..to.div_ceil(MIB))
            .map(|i| {
                let b = self.block(i);
                let start = if i == from / MIB {
                    (from % MIB) as usize
                } else {
                    0
                };
                let end = Ord::min(MIB, to - i * MIB) as usize;
                b.slice(start..end)
            })
            .collect();
        futures_util::stream::iter(blocks.into_iter().map(Ok))
    }

    fn sha256(&self) -> String {
        let mut sha = Sha256::new();
        for i in 0..SIZE / MIB {
            sha.update(self.block(i));
        }
        hex::encode(sha.finalize())
    }
}

/// The file's recorded SHA-256 and the SHA-256 of its downloaded bytes.
async fn stored_digests(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    file: &str,
) -> (String, String) {
    let meta: Value = client
        .get(format!("{base}/api/v1/files/{file}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["status"], "available", "{meta}");
    assert_eq!(meta["size"], SIZE);
    let res = client
        .get(format!("{base}/api/v1/files/{file}/content"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let mut body = client.get(location).send().await.unwrap().bytes_stream();
    let mut sha = Sha256::new();
    while let Some(chunk) = body.next().await {
        sha.update(chunk.unwrap());
    }
    (
        meta["sha256"].as_str().unwrap_or_default().to_owned(),
        hex::encode(sha.finalize()),
    )
}

async fn a_1gib_tus_upload_survives_kill_9(stack: Stack) {
    let source = Source::new();
    let expected = source.sha256();
    let mut server = Server::start(stack).await;
    let client = client();
    let token = server.sign_up().await;
    let res = client
        .post(format!("{}/api/v1/tus", server.base))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", SIZE.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let path = res.headers()["location"]
        .to_str()
        .unwrap()
        .split_once("/api/")
        .unwrap()
        .1
        .to_owned();

    // The whole file in one PATCH; the server dies when 400 MiB have gone.
    let sent = 400 * MIB;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let request = client
        .patch(format!("{}/api/{path}", server.base))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", OCTETS)
        .header("Content-Length", SIZE.to_string())
        .body(reqwest::Body::wrap_stream(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        )))
        .send();
    let request = tokio::spawn(request);
    let mut blocks = source.stream(0, sent);
    while let Some(block) = blocks.next().await {
        tx.send(block).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill_9();
    drop(tx);
    // The request died with the server.
    let _ = request.await;

    server.restart();
    let head = |base: String| {
        let (client, token, path) = (client.clone(), token.clone(), path.clone());
        async move {
            let res = client
                .head(format!("{base}/api/{path}"))
                .bearer_auth(&token)
                .header("Tus-Resumable", "1.0.0")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.headers()["upload-offset"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    let offset = head(server.base.clone()).await;
    assert!(
        offset <= sent,
        "offset {offset} beyond the {sent} bytes sent"
    );
    assert!(offset > 0, "nothing of 400 MiB was acknowledged");
    if stack == Stack::Embedded {
        // Never more acknowledged than stored: whole sealed segments of
        // 64 KiB (+16 bytes each), then the unfinished one's record.
        let staging = server.data_dir.join("blobs/staging");
        let upload = path.rsplit('/').next().unwrap();
        let sealed = std::fs::metadata(staging.join(upload)).unwrap().len();
        let tail = std::fs::metadata(staging.join(format!("{upload}.tail")))
            .map_or(0, |m| m.len().saturating_sub(4 + 12 + 16));
        let staged = sealed / 65_552 * 65_536 + tail;
        assert!(offset <= staged, "offset {offset}, staged {staged}");
    }

    // Resume from the acknowledged offset. On PostgreSQL the dead
    // instance's lease on the upload runs out first (423 until then).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let offset = head(server.base.clone()).await;
        let res = client
            .patch(format!("{}/api/{path}", server.base))
            .bearer_auth(&token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", OCTETS)
            .header("Content-Length", (SIZE - offset).to_string())
            .body(reqwest::Body::wrap_stream(source.stream(offset, SIZE)))
            .send()
            .await
            .unwrap();
        if res.status() == 204 {
            assert_eq!(res.headers()["upload-offset"], SIZE.to_string().as_str());
            break;
        }
        assert_eq!(res.status(), 423, "{:?}", res.text().await);
        assert!(Instant::now() < deadline, "the upload stayed locked");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rss = server.peak_rss();
    eprintln!("peak RSS during the resumed 1 GiB PATCH: {} MiB", rss / MIB);
    if stack == Stack::Embedded {
        // The body streams: memory does not follow the file's size.
        assert!(rss < 128 * MIB, "peak RSS {} MiB", rss / MIB);
    }
    let id = path.rsplit('/').next().unwrap();
    let session: Value = client
        .get(format!("{}/api/v1/uploads/{id}", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["state"], "completed");
    let (recorded, downloaded) = stored_digests(
        &client,
        &server.base,
        &token,
        session["file_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(recorded, expected);
    assert_eq!(downloaded, expected);
}

async fn a_1gib_multipart_upload_survives_kill_9(stack: Stack) {
    let source = Source::new();
    let expected = source.sha256();
    let mut server = Server::start(stack).await;
    let client = client();
    let token = server.sign_up().await;
    let part_size = 64 * MIB;
    let res = client
        .post(format!("{}/api/v1/uploads/multipart", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "big.bin", "size": SIZE, "part_size": part_size}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let upload = created["upload_id"].as_str().unwrap().to_owned();
    let file = created["file"]["id"].as_str().unwrap().to_owned();
    let parts = SIZE / part_size;
    let put_part = |base: String, n: u64| {
        let (client, token, upload) = (client.clone(), token.clone(), upload.clone());
        let body = source.stream((n - 1) * part_size, n * part_size);
        async move {
            let ticket: Value = client
                .get(format!(
                    "{base}/api/v1/uploads/multipart/{upload}/parts/{n}"
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut req = client.put(ticket["url"].as_str().unwrap());
            for (k, v) in ticket["headers"].as_object().unwrap() {
                req = req.header(k.as_str(), v.as_str().unwrap());
            }
            let res = req
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "part {n}: {:?}", res.text().await);
        }
    };
    let list_parts = |base: String| {
        let (client, token, upload) = (client.clone(), token.clone(), upload.clone());
        async move {
            let res = client
                .get(format!("{base}/api/v1/uploads/multipart/{upload}/parts"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            res.json::<Value>().await.unwrap()
        }
    };
    for n in 1..=parts / 2 {
        put_part(server.base.clone(), n).await;
    }
    server.kill_9();
    server.restart();
    let listed = list_parts(server.base.clone()).await;
    let listed = listed["parts"].as_array().unwrap().clone();
    assert_eq!(listed.len() as u64, parts / 2, "{listed:?}");
    for n in parts / 2 + 1..=parts {
        put_part(server.base.clone(), n).await;
    }
    let listed = list_parts(server.base.clone()).await;
    let claimed: Vec<Value> = listed["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!({"part_number": p["part_number"], "etag": p["etag"]}))
        .collect();
    let res = client
        .post(format!(
            "{}/api/v1/uploads/multipart/{upload}/complete",
            server.base
        ))
        .bearer_auth(&token)
        .json(&json!({ "parts": claimed }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let (recorded, downloaded) = stored_digests(&client, &server.base, &token, &file).await;
    if !recorded.is_empty() {
        assert_eq!(recorded, expected);
    }
    assert_eq!(downloaded, expected);
}

/// After a power loss the staging file may hold fewer bytes than were
/// acknowledged: the next PATCH is refused (and says so in the log), never
/// filled up with zeros that the file would then be made of.
#[actix_web::test]
async fn a_staging_file_shorter_than_its_offset_is_never_zero_filled() {
    use crate::helpers::{random_bytes, spawn_app};
    let app = spawn_app(Stack::Embedded).await;
    let user = app.new_user().await;
    // Three whole sealed segments in the staging file, and then some.
    let url = crate::tus::create(&app, &user, 300_000, "torn.bin").await;
    let first = crate::tus::patch(&app, &user, &url, 0, random_bytes(200_000), &[]).await;
    assert_eq!(first.status(), 204);
    let staged = app
        .data_dir
        .join("blobs/staging")
        .join(url.rsplit('/').next().unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let next = crate::tus::patch(&app, &user, &url, 200_000, random_bytes(100_000), &[]).await;
    assert_eq!(next.status(), 503, "{:?}", next.text().await);
    assert_eq!(std::fs::metadata(&staged).unwrap().len(), 1000);
}
