//! tus onto S3: each PATCH that can be a part is stored as one while it
//! arrives (no tail object, no waiting for a fixed part size); the bytes
//! short of a part wait in a tail object until a later request makes them
//! one. On the local store the same requests simply make the file.

use crate::helpers::{Stack, TestApp, User, random_bytes, sha256_hex, spawn_app};
use crate::tus::{create, patch};

crate::on_both_stacks!(
    each_request_makes_a_part_where_it_can,
    a_parked_sink_whose_files_changed_restarts_its_actor,
);

const MIB: usize = 1 << 20;

/// The objects a tus upload keeps beside its parts, with their sizes.
pub async fn tus_objects(app: &TestApp, upload: &str) -> Vec<(String, u64)> {
    let bucket = crate::janitor::s3_bucket(app);
    let listed = bucket
        .list(format!("uploads/tus/{upload}/"), None)
        .await
        .unwrap();
    listed
        .into_iter()
        .flat_map(|page| page.contents)
        .map(|o| (o.key, o.size))
        .collect()
}

/// PATCHes `chunk` at `offset`; it must be acknowledged.
async fn send(app: &TestApp, user: &User, url: &str, chunk: &[u8], offset: usize) {
    let res = patch(app, user, url, offset as u64, chunk.to_vec(), &[]).await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
}

/// The upload became an available file holding exactly `bytes`.
async fn assert_stored(app: &TestApp, user: &User, upload: &str, bytes: &[u8]) {
    let session: serde_json::Value = app
        .get_authed(&format!("/api/v1/uploads/{upload}"), &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    let file_id = session["file_id"].as_str().unwrap().to_owned();
    let file = app.wait_available(&user.access_token, &file_id, 10).await;
    assert_eq!(file["sha256"], sha256_hex(bytes));
    assert_eq!(app.download(&user.access_token, &file_id).await, bytes);
}

async fn each_request_makes_a_part_where_it_can(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(40 * MIB + 5);
    let url = create(&app, &user, bytes.len() as u64, "parts.bin").await;
    let upload = url.rsplit('/').next().unwrap().to_owned();
    // 8 MiB: a part of its own. 3 MiB: too small, the tail. 3 MiB more:
    // with the tail, a 6 MiB part. The rest (26 MiB + 5): 8, 8, and the
    // last 10 MiB + 5 (a 2 MiB rest rides along rather than making a tail).
    let steps: [(usize, Option<u64>); 4] = [
        (8 * MIB, None),
        (3 * MIB, Some(3 * MIB as u64)),
        (3 * MIB, None),
        (26 * MIB + 5, None),
    ];
    let mut offset = 0usize;
    for (len, tail) in steps {
        send(&app, &user, &url, &bytes[offset..offset + len], offset).await;
        offset += len;
        if stack == Stack::Services && offset < bytes.len() {
            let kept = tus_objects(&app, &upload).await;
            let expected: Vec<(String, u64)> = tail
                .map(|t| {
                    let start = offset as u64 - t;
                    (format!("uploads/tus/{upload}/tail-{start}-{t}"), t)
                })
                .into_iter()
                .collect();
            assert_eq!(kept, expected, "after {offset} bytes");
        }
    }
    assert_stored(&app, &user, &upload, &bytes).await;
    if stack == Stack::Services {
        assert!(tus_objects(&app, &upload).await.is_empty());
        // Five parts: 8 MiB, 6 MiB, 8 MiB, 8 MiB, 10 MiB + 5.
        let bucket = crate::janitor::s3_bucket(&app);
        let objects = bucket.list("users/".into(), None).await.unwrap();
        let object = &objects[0].contents[0];
        assert_eq!(object.size, bytes.len() as u64);
        let etag = object.e_tag.clone().unwrap_or_default();
        assert!(etag.trim_matches('"').ends_with("-5"), "{etag}");
    }
}

/// The upload-session actor keeps the upload's sink between requests. When
/// the files under a parked sink change (a staging file grows, a spool goes),
/// the actor stops itself, its supervisor restarts it (counted), and the
/// request goes on from the durable state: nothing acknowledged is lost.
async fn a_parked_sink_whose_files_changed_restarts_its_actor(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    // Metrics are the test process's: other tests count too.
    let restarts = "stowage_actor_restarts_total{actor=\"upload_session\"}";
    let before = app.metric(restarts).await;
    let bytes = random_bytes(9 * MIB + 7);
    let url = create(&app, &user, bytes.len() as u64, "restart.bin").await;
    let upload = url.rsplit('/').next().unwrap().to_owned();
    let mut offset = 0usize;
    for len in [3 * MIB, 3 * MIB] {
        send(&app, &user, &url, &bytes[offset..offset + len], offset).await;
        offset += len;
    }
    // The fault: the parked sink's file changes underneath it.
    match stack {
        Stack::Embedded => {
            use std::io::Write;
            let staged = app.data_dir.join("blobs/staging").join(&upload);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(staged)
                .unwrap();
            f.write_all(b"not acknowledged").unwrap();
        }
        Stack::Services => {
            let spool = app.data_dir.join("spool");
            let mut removed = 0;
            for entry in std::fs::read_dir(spool).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
                removed += 1;
            }
            assert_eq!(removed, 1, "one upload, one spool");
        }
    }
    let rest = bytes[offset..].to_vec();
    let res = patch(&app, &user, &url, offset as u64, rest, &[]).await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert!(app.metric(restarts).await >= before + 1.0);
    assert_stored(&app, &user, &upload, &bytes).await;
}

/// A part streamed while its PATCH arrives fails midway (the connection to
/// S3 is cut): it is sent again from its spool, and the PATCH succeeds with
/// every byte in place.
#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn a_streamed_part_cut_off_midway_is_sent_again_from_its_spool() {
    Stack::Services.require();
    let s3 = std::env::var("STOWAGE_TEST_S3_ENDPOINT").unwrap();
    let (address, cut) = crate::circuit::relay(s3.trim_start_matches("http://").to_owned()).await;
    let endpoint = format!("http://{address}");
    let app =
        crate::helpers::spawn_app_with(Stack::Services, &[("--s3-endpoint", &endpoint)]).await;
    let user = app.new_user().await;
    let bytes = random_bytes(16 * MIB);
    let url = create(&app, &user, bytes.len() as u64, "cut.bin").await;
    let upload = url.rsplit('/').next().unwrap().to_owned();

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let request = app
        .client
        .patch(&url)
        .bearer_auth(&user.access_token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Content-Length", bytes.len().to_string())
        .body(body)
        .send();
    let feeding = async {
        // The first 8 MiB part is planned at once and streams as it fills.
        for chunk in bytes[..6 * MIB].chunks(MIB) {
            tx.send(Ok(chunk.to_vec())).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        // Mid-part, every connection to S3 is cut, then S3 is back.
        cut.send_replace(true);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        cut.send_replace(false);
        for chunk in bytes[6 * MIB..].chunks(MIB) {
            tx.send(Ok(chunk.to_vec())).await.unwrap();
        }
        drop(tx);
    };
    let (res, ()) = futures_util::future::join(request, feeding).await;
    let res = res.unwrap();
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_stored(&app, &user, &upload, &bytes).await;
}
