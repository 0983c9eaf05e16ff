//! Streaming a spool file to S3 through a presigned URL: read a MiB at a
//! time (and hashed, when asked) on a blocking thread while the previous
//! MiB is on the wire, so no part is ever whole in memory.

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::S3Store;
use crate::storage::{StorageError, guarded};

/// Bytes read (and hashed) at a time.
const READ_SIZE: usize = 1 << 20;

/// A request body streaming `path`'s first `len` bytes; hashed into
/// `sha256` on the way, which comes back once the last byte was read.
fn file_body(
    path: PathBuf,
    len: u64,
    sha256: Option<Sha256>,
) -> (reqwest::Body, oneshot::Receiver<Option<Sha256>>) {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(2);
    let (done, hashed) = oneshot::channel();
    tokio::spawn(async move {
        let opened = tokio::task::spawn_blocking(move || std::fs::File::open(path)).await;
        let mut file = match opened {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return drop(tx.send(Err(e)).await),
            Err(e) => return drop(tx.send(Err(std::io::Error::other(e))).await),
        };
        let mut sha256 = sha256;
        let mut left = len;
        while left > 0 {
            let want = Ord::min(left, READ_SIZE as u64) as usize;
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                file.read_exact(&mut buf)?;
                if let Some(h) = &mut sha256 {
                    h.update(&buf);
                }
                Ok::<_, std::io::Error>((file, sha256, buf))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            match read {
                Ok((f, h, buf)) => {
                    (file, sha256) = (f, h);
                    left -= buf.len() as u64;
                    if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                        return;
                    }
                }
                Err(e) => return drop(tx.send(Err(e)).await),
            }
        }
        let _ = done.send(sha256);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (reqwest::Body::wrap_stream(stream), hashed)
}

impl S3Store {
    /// PUTs `len` bytes of `path` to a presigned `url` with its signed
    /// `headers`; returns the hash (if one was given) and the ETag.
    async fn put_file(
        &self,
        op: &'static str,
        url: String,
        headers: Vec<(String, String)>,
        path: PathBuf,
        len: u64,
        sha256: Option<Sha256>,
    ) -> Result<(Option<Sha256>, String), StorageError> {
        guarded(Some(&self.circuit), op, async {
            let (body, hashed) = file_body(path, len, sha256);
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
                .map_err(StorageError::unavailable)?;
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
            let sha256 = hashed.await.map_err(StorageError::unavailable)?;
            Ok((sha256, etag))
        })
        .await
    }

    /// Streams a spool file as part `number`, hashing it into `sha256`.
    pub(super) async fn upload_part_file(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        path: PathBuf,
        len: u64,
        sha256: Sha256,
    ) -> Result<(Sha256, String), StorageError> {
        let url = self
            .presign_part(
                key,
                upload,
                number,
                len,
                std::time::Duration::from_secs(3600),
            )
            .await?;
        let (hashed, etag) = self
            .put_file("upload_part", url.url, Vec::new(), path, len, Some(sha256))
            .await?;
        Ok((hashed.unwrap_or_default(), etag))
    }

    /// Streams a spool file as the whole object (stored once: the URL
    /// carries `If-None-Match: *`), hashing it into `sha256`.
    pub(super) async fn put_object_file(
        &self,
        key: &str,
        content_type: &str,
        path: PathBuf,
        len: u64,
        sha256: Sha256,
    ) -> Result<Sha256, StorageError> {
        let signed = self
            .presign_put(key, len, content_type, std::time::Duration::from_secs(3600))
            .await?;
        let (hashed, _) = self
            .put_file(
                "put_object",
                signed.url,
                signed.headers.into_iter().collect(),
                path,
                len,
                Some(sha256),
            )
            .await?;
        Ok(hashed.unwrap_or_default())
    }

    /// Streams a spool file as an upload's tail object, replacing the last one.
    pub(super) async fn put_tail_file(
        &self,
        key: &str,
        path: PathBuf,
        len: u64,
    ) -> Result<(), StorageError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, len.into());
        let url = self
            .bucket
            .presign_put(key, 3600, Some(headers), None)
            .await
            .map_err(super::classify)?;
        self.put_file("put_object", url, Vec::new(), path, len, None)
            .await?;
        Ok(())
    }
}
