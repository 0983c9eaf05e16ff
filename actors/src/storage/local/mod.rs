//! The local blob store of the embedded default: a real object store on the
//! file system. Objects are written to a temporary file and moved into
//! place without replacing anything, so a reader never sees half an object
//! and an object, once stored, is never overwritten (a presigned PUT URL
//! stores once); the SHA-256 and MD5 (the ETag) are computed while the
//! bytes stream in. Every directory is 0700 and every file 0600.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use super::signing::{BlobMethod, Grant, UrlSigner};
use super::{DeleteReport, ListedObject, ObjectMeta, PresignedRequest, StorageError, expiry_secs};
use crate::events::{EventBus, minio};

mod fs;
mod multipart;
mod sink;

pub use self::sink::LocalSink;

pub use self::fs::private_dir;
use self::fs::{Replace, persist, private_dir_async, safe_relative, write_atomically};

use self::multipart::{PartMeta, no_such_upload};

/// Why a signed PUT stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("the body is longer than the {expected} bytes the URL was signed for")]
    TooLong { expected: u64 },
    #[error("the body ended after {received} of the {expected} bytes the URL was signed for")]
    TooShort { expected: u64, received: u64 },
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the URL is missing its signature parameters")]
    Malformed,
    #[error("the URL has expired")]
    Expired,
    #[error("the signature does not match this URL and method")]
    BadSignature,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredMeta {
    size: u64,
    etag: String,
    sha256: String,
    content_type: Option<String>,
}

pub struct LocalStore {
    objects: PathBuf,
    meta: PathBuf,
    tmp: PathBuf,
    multipart: PathBuf,
    /// tus uploads in progress, one file each, appended to as bytes arrive.
    staging: PathBuf,
    signer: UrlSigner,
    /// The server's public URL: signed URLs point back at it.
    base_url: String,
    /// The bucket name events report.
    bucket: String,
    events: EventBus,
}

impl LocalStore {
    pub fn open(
        root: &Path,
        signer: UrlSigner,
        base_url: &str,
        bucket: &str,
        events: EventBus,
    ) -> anyhow::Result<Self> {
        let store = Self {
            objects: root.join("objects"),
            meta: root.join("meta"),
            tmp: root.join("tmp"),
            multipart: root.join("multipart"),
            staging: root.join("staging"),
            signer,
            base_url: base_url.trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            events,
        };
        for dir in [
            &store.objects,
            &store.meta,
            &store.tmp,
            &store.multipart,
            &store.staging,
        ] {
            private_dir(dir)
                .with_context(|| format!("creating the blob directory {}", dir.display()))?;
        }
        Ok(store)
    }

    pub fn presign_put(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        ttl: Duration,
    ) -> PresignedRequest {
        let expires = Utc::now().timestamp() + i64::from(expiry_secs(ttl));
        let grant = Grant {
            method: BlobMethod::Put,
            key: key.to_owned(),
            expires,
            size: Some(size),
            disposition: None,
            content_type: Some(content_type.to_owned()),
            part: None,
        };
        let headers = BTreeMap::from([("Content-Type".to_owned(), content_type.to_owned())]);
        PresignedRequest {
            method: "PUT",
            url: self.url_for(&grant),
            headers,
            expires_at: DateTime::from_timestamp(expires, 0).unwrap_or_else(Utc::now),
        }
    }

    pub fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_disposition: &str,
        content_type: &str,
    ) -> (String, DateTime<Utc>) {
        let expires = Utc::now().timestamp() + i64::from(expiry_secs(ttl));
        let grant = Grant {
            method: BlobMethod::Get,
            key: key.to_owned(),
            expires,
            size: None,
            disposition: Some(content_disposition.to_owned()),
            content_type: Some(content_type.to_owned()),
            part: None,
        };
        (
            self.url_for(&grant),
            DateTime::from_timestamp(expires, 0).unwrap_or_else(Utc::now),
        )
    }

    fn url_for(&self, grant: &Grant) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("expires", &grant.expires.to_string());
        if let Some(size) = grant.size {
            query.append_pair("size", &size.to_string());
        }
        if let Some(d) = &grant.disposition {
            query.append_pair("disposition", d);
        }
        if let Some(ct) = &grant.content_type {
            query.append_pair("content_type", ct);
        }
        if let Some((upload_id, part)) = &grant.part {
            query.append_pair("upload_id", upload_id);
            query.append_pair("part", &part.to_string());
        }
        query.append_pair("sig", &self.signer.sign(grant));
        format!("{}/blobs/{}?{}", self.base_url, grant.key, query.finish())
    }

    /// Checks a signed URL's query against the method and key it was used with.
    pub fn verify(&self, method: BlobMethod, key: &str, query: &str) -> Result<Grant, GrantError> {
        let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let expires: i64 = params
            .get("expires")
            .and_then(|v| v.parse().ok())
            .ok_or(GrantError::Malformed)?;
        let sig = params.get("sig").ok_or(GrantError::Malformed)?;
        let size = match params.get("size") {
            Some(v) => Some(v.parse().map_err(|_| GrantError::Malformed)?),
            None => None,
        };
        let part = match (params.get("upload_id"), params.get("part")) {
            (Some(upload), Some(n)) => Some((
                upload.clone(),
                n.parse().map_err(|_| GrantError::Malformed)?,
            )),
            (None, None) => None,
            _ => return Err(GrantError::Malformed),
        };
        let grant = Grant {
            method,
            key: key.to_owned(),
            expires,
            size,
            disposition: params.get("disposition").cloned(),
            content_type: params.get("content_type").cloned(),
            part,
        };
        if !self.signer.verify(&grant, sig) {
            return Err(GrantError::BadSignature);
        }
        if Utc::now().timestamp() > expires {
            return Err(GrantError::Expired);
        }
        if method == BlobMethod::Put && grant.size.is_none() {
            return Err(GrantError::Malformed);
        }
        Ok(grant)
    }

    /// Stores exactly `grant.size` bytes from `body`: the object at the
    /// grant's key (then announces it like MinIO would), or a part of a
    /// multipart upload. Too many or too few bytes store nothing.
    pub async fn put_stream<S, E>(
        &self,
        grant: &Grant,
        body: S,
        source_ip: &str,
        user_agent: &str,
    ) -> Result<ObjectMeta, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let expected = grant.size.unwrap_or(0);
        if let Some((upload_id, part)) = &grant.part {
            let dir = self.upload_dir(upload_id)?;
            if !tokio::fs::try_exists(dir.join("manifest.json"))
                .await
                .unwrap_or(false)
            {
                return Err(PutError::Storage(no_such_upload()));
            }
            let received = self.receive(body, expected).await?;
            let etag = hex::encode(received.md5);
            let meta = PartMeta {
                size: received.size,
                etag: etag.clone(),
            };
            let name = format!("{part:05}");
            write_atomically(
                &self.tmp,
                &dir.join(format!("{name}.json")),
                &serde_json::to_vec(&meta).map_err(StorageError::unavailable)?,
            )
            .await?;
            persist(
                received.file,
                dir.join(format!("{name}.part")),
                Replace::Yes,
            )
            .await
            .map_err(|e| match e {
                // Completed or aborted while the part arrived.
                StorageError::NotFound { .. } => no_such_upload(),
                e => e,
            })?;
            return Ok(ObjectMeta {
                size: meta.size,
                etag: Some(etag),
                content_type: None,
                sha256: None,
            });
        }
        let received = self.receive(body, expected).await?;
        let meta = StoredMeta {
            size: received.size,
            etag: hex::encode(received.md5),
            sha256: hex::encode(received.sha256),
            content_type: grant.content_type.clone(),
        };
        self.commit(received.file, &grant.key, &meta).await?;
        Ok(self
            .announce(minio::PUT, &grant.key, meta, source_ip, user_agent)
            .await)
    }

    /// Streams a body into a temp file, hashing it, refusing any other length.
    async fn receive<S, E>(&self, mut body: S, expected: u64) -> Result<Received, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let (file, tmp) = self.temp_file()?;
        let mut out = tokio::io::BufWriter::with_capacity(512 * 1024, file);
        let (mut sha, mut md5) = (Sha256::new(), Md5::new());
        let mut received: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| PutError::Interrupted(e.to_string()))?;
            received += chunk.len() as u64;
            if received > expected {
                return Err(PutError::TooLong { expected });
            }
            sha.update(&chunk);
            md5.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(StorageError::unavailable)?;
        }
        if received != expected {
            return Err(PutError::TooShort { expected, received });
        }
        out.flush().await.map_err(StorageError::unavailable)?;
        out.into_inner()
            .sync_all()
            .await
            .map_err(StorageError::unavailable)?;
        Ok(Received {
            file: tmp,
            size: received,
            sha256: sha.finalize().into(),
            md5: md5.finalize().into(),
        })
    }

    /// Publishes the object-created event; a failure is logged, not returned
    /// (the object is stored; confirm and the janitor still find it).
    async fn announce(
        &self,
        event_name: &str,
        key: &str,
        meta: StoredMeta,
        source_ip: &str,
        user_agent: &str,
    ) -> ObjectMeta {
        let object = ObjectMeta {
            size: meta.size,
            etag: Some(meta.etag),
            content_type: meta.content_type,
            sha256: Some(meta.sha256),
        };
        let event = minio::object_created_event(
            event_name,
            &self.bucket,
            key,
            &object,
            source_ip,
            user_agent,
        );
        if let Err(e) = self.events.publish_object_event(event).await {
            tracing::error!(key, error = ?e, "object stored but its event was not published");
        }
        object
    }

    /// A new temp file (mode 0600) in the store, removed when its path is
    /// dropped unless persisted: a cancelled or failed upload leaves nothing.
    fn temp_file(&self) -> Result<(tokio::fs::File, TempPath), StorageError> {
        let (file, path) = tempfile::NamedTempFile::new_in(&self.tmp)
            .map_err(StorageError::unavailable)?
            .into_parts();
        Ok((tokio::fs::File::from_std(file), path))
    }

    /// Moves a finished temp file into place at `key`, unless an object is
    /// there already (409: objects are written once), and records its
    /// metadata.
    async fn commit(
        &self,
        tmp: TempPath,
        key: &str,
        meta: &StoredMeta,
    ) -> Result<(), StorageError> {
        let object_path = self.object_path(key)?;
        let meta_path = self.meta_path(key)?;
        for parent in [object_path.parent(), meta_path.parent()]
            .into_iter()
            .flatten()
        {
            private_dir_async(parent).await?;
        }
        persist(tmp, object_path, Replace::No).await?;
        let json = serde_json::to_vec(meta).map_err(StorageError::unavailable)?;
        write_atomically(&self.tmp, &meta_path, &json).await
    }

    /// Opens an object for reading.
    pub async fn read(
        &self,
        key: &str,
    ) -> Result<Option<(tokio::fs::File, ObjectMeta)>, StorageError> {
        let Some(meta) = self.head(key).await? else {
            return Ok(None);
        };
        match tokio::fs::File::open(self.object_path(key)?).await {
            Ok(file) => Ok(Some((file, meta))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let object_path = self.object_path(key)?;
        let size = match tokio::fs::metadata(&object_path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::unavailable(e)),
        };
        match tokio::fs::read(self.meta_path(key)?).await {
            Ok(bytes) => {
                let meta: StoredMeta =
                    serde_json::from_slice(&bytes).map_err(StorageError::unavailable)?;
                Ok(Some(ObjectMeta {
                    size,
                    etag: Some(meta.etag),
                    content_type: meta.content_type,
                    sha256: Some(meta.sha256),
                }))
            }
            // Stored by something other than `put_stream`: size only.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(ObjectMeta {
                size,
                ..ObjectMeta::default()
            })),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }

    pub async fn sha256(&self, key: &str) -> Result<Option<String>, StorageError> {
        match self.head(key).await? {
            None => Ok(None),
            Some(ObjectMeta {
                sha256: Some(d), ..
            }) => Ok(Some(d)),
            Some(_) => {
                let path = self.object_path(key)?;
                tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                    use std::io::Read;
                    let mut file = std::fs::File::open(path)?;
                    let (mut sha, mut buf) = (Sha256::new(), vec![0; 1 << 16]);
                    loop {
                        match file.read(&mut buf)? {
                            0 => return Ok(hex::encode(sha.finalize())),
                            n => sha.update(&buf[..n]),
                        }
                    }
                })
                .await
                .map_err(StorageError::unavailable)?
                .map(Some)
                .map_err(StorageError::unavailable)
            }
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        for path in [self.object_path(key)?, self.meta_path(key)?] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::unavailable(e)),
            }
        }
        Ok(())
    }

    pub async fn delete_many(&self, keys: &[String]) -> Result<DeleteReport, StorageError> {
        let mut report = DeleteReport::default();
        for key in keys {
            if let Err(e) = self.delete(key).await {
                tracing::warn!(key, error = %e, "local delete failed");
                report.failed.push(key.clone());
            }
        }
        Ok(report)
    }

    /// Walks the object tree; fine for the sizes a local store holds.
    pub async fn list_page(
        &self,
        prefix: &str,
        token: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StorageError> {
        let root = self.objects.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut found = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    let meta = entry.metadata()?;
                    if meta.is_dir() {
                        stack.push(entry.path());
                        continue;
                    }
                    let Ok(rel) = entry
                        .path()
                        .strip_prefix(&root)
                        .map(|p| p.to_string_lossy().into_owned())
                    else {
                        continue;
                    };
                    if rel.starts_with(&prefix) && token.as_deref().is_none_or(|t| rel.as_str() > t)
                    {
                        let modified: DateTime<Utc> = meta.modified()?.into();
                        found.push(ListedObject {
                            key: rel,
                            last_modified: modified,
                        });
                    }
                }
            }
            found.sort_by(|a, b| a.key.cmp(&b.key));
            let next = (found.len() > 1000).then(|| found[999].key.clone());
            found.truncate(1000);
            Ok((found, next))
        })
        .await
        .map_err(StorageError::unavailable)?
        .map_err(StorageError::unavailable)
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        let meta = tokio::fs::metadata(&self.objects)
            .await
            .map_err(StorageError::unavailable)?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(StorageError::unavailable(anyhow::anyhow!(
                "{} is not a directory",
                self.objects.display()
            )))
        }
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        Ok(self.objects.join(safe_relative(key)?))
    }

    fn meta_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        Ok(self.meta.join(format!("{}.json", safe_relative(key)?)))
    }
}

/// What `receive` took in.
struct Received {
    /// Removed on drop unless persisted.
    file: TempPath,
    size: u64,
    sha256: [u8; 32],
    md5: [u8; 16],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_store() {
        for bad in [
            "",
            "../x",
            "a/../../x",
            "a//b",
            "/abs",
            "a/./b",
            "a\\b",
            "a\0b",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
        assert!(safe_relative("users/a/files/b").is_ok());
    }
}
