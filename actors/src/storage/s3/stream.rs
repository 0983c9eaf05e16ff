//! Streaming a spool file to S3 through a presigned URL, a piece at a time
//! on a blocking thread while the previous piece is on the wire, so no part
//! is ever whole in memory. A spool that is still filling is followed: the
//! request starts with the part's first bytes and sends the rest as the
//! sink writes them, so a part is on its way while its bytes arrive.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::S3Store;
use crate::storage::{StorageError, guarded};

/// Bytes read at a time (a few of these per upload are all the memory a
/// part in flight takes).
const READ_SIZE: u64 = 256 << 10;

/// A request body streaming `path`'s first `len` bytes. With `filled`, the
/// file is still being written: each piece is sent once `filled` says it is
/// there; if the writer goes away first, the body fails (and S3 drops the
/// part).
pub(super) fn spool_body(
    path: PathBuf,
    len: u64,
    filled: Option<watch::Receiver<u64>>,
) -> reqwest::Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(2);
    tokio::spawn(async move {
        if let Err(e) = pump(path, len, filled, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    reqwest::Body::wrap_stream(stream)
}

async fn pump(
    path: PathBuf,
    len: u64,
    mut filled: Option<watch::Receiver<u64>>,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> std::io::Result<()> {
    let mut file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
        .await
        .map_err(std::io::Error::other)??;
    let mut sent = 0u64;
    while sent < len {
        let want = Ord::min(len - sent, READ_SIZE);
        if let Some(filled) = &mut filled {
            filled
                .wait_for(|n| *n >= sent + want)
                .await
                .map_err(|_| std::io::Error::other("the spool was abandoned mid-part"))?;
        }
        let (f, buf) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want as usize];
            file.seek(SeekFrom::Start(sent))?;
            file.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>((file, buf))
        })
        .await
        .map_err(std::io::Error::other)??;
        file = f;
        sent += want;
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

impl S3Store {
    /// PUTs `body` (`len` bytes) to a presigned `url` with its signed
    /// `headers`; returns the ETag.
    async fn put_body(
        &self,
        op: &'static str,
        url: String,
        headers: Vec<(String, String)>,
        body: reqwest::Body,
        len: u64,
    ) -> Result<String, StorageError> {
        guarded(Some(&self.circuit), op, async {
            let mut req = self
                .bucket
                .http_client()
                .put(url)
                .header(reqwest::header::CONTENT_LENGTH, len);
            for (k, v) in &headers {
                if !k.eq_ignore_ascii_case("content-length") {
                    req = req.header(k.as_str(), v.as_str());
                }
            }
            let res = req
                .body(body)
                .send()
                .await
                // The URL carries a signature: keep it out of errors and logs.
                .map_err(|e| StorageError::unavailable(e.without_url()))?;
            let status = res.status().as_u16();
            let etag = res
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(|e| e.trim_matches('"').to_owned())
                .unwrap_or_default();
            if !res.status().is_success() {
                let body = res.text().await.unwrap_or_default();
                return Err(super::classify(s3::error::S3Error::HttpFailWithBody(
                    status, body,
                )));
            }
            Ok(etag)
        })
        .await
    }

    /// Streams `len` bytes of a spool file as part `number` (following it
    /// while `filled` says it is still being written); returns the ETag.
    pub(super) async fn upload_part_spool(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        path: PathBuf,
        len: u64,
        filled: Option<watch::Receiver<u64>>,
    ) -> Result<String, StorageError> {
        let url = self
            .presign_part(
                key,
                upload,
                number,
                len,
                std::time::Duration::from_secs(3600),
            )
            .await?;
        let body = spool_body(path, len, filled);
        self.put_body("upload_part", url.url, Vec::new(), body, len)
            .await
    }

    /// Streams a spool file as the whole object (stored once: the URL
    /// carries `If-None-Match: *`).
    pub(super) async fn put_object_file(
        &self,
        key: &str,
        content_type: &str,
        path: PathBuf,
        len: u64,
    ) -> Result<(), StorageError> {
        let signed = self
            .presign_put(key, len, content_type, std::time::Duration::from_secs(3600))
            .await?;
        let body = spool_body(path, len, None);
        self.put_body(
            "put_object",
            signed.url,
            signed.headers.into_iter().collect(),
            body,
            len,
        )
        .await?;
        Ok(())
    }

    /// Streams a spool file as an upload's tail object.
    pub(super) async fn put_tail_file(
        &self,
        key: &str,
        path: PathBuf,
        len: u64,
    ) -> Result<(), StorageError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, len.into());
        let mut sent = Vec::new();
        if let Some(sse) = self.sse {
            headers.insert(
                super::Sse::HEADER,
                http::HeaderValue::from_static(sse.as_str()),
            );
            sent.push((super::Sse::HEADER.to_owned(), sse.as_str().to_owned()));
        }
        let url = self
            .bucket
            .presign_put(key, 3600, Some(headers), None)
            .await
            .map_err(super::classify)?;
        let body = spool_body(path, len, None);
        self.put_body("put_object", url, sent, body, len).await?;
        Ok(())
    }
}
