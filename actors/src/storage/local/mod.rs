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
use super::{
    DeleteReport, ListedObject, ObjectMeta, PresignedRequest, StorageError, StoredPart, expiry_secs,
};
use crate::events::{EventBus, minio};

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

/// What a multipart upload directory records about itself.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    key: String,
    content_type: String,
}

/// What is recorded next to each stored part.
#[derive(Debug, Serialize, Deserialize)]
struct PartMeta {
    size: u64,
    etag: String,
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

    pub async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        safe_relative(key)?;
        let upload_id = uuid::Uuid::new_v4().to_string();
        let dir = self.multipart.join(&upload_id);
        private_dir_async(&dir).await?;
        let manifest = Manifest {
            key: key.to_owned(),
            content_type: content_type.to_owned(),
        };
        write_atomically(
            &self.tmp,
            &dir.join("manifest.json"),
            &serde_json::to_vec(&manifest).map_err(StorageError::unavailable)?,
        )
        .await?;
        Ok(upload_id)
    }

    pub fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        size: u64,
        ttl: Duration,
    ) -> PresignedRequest {
        let expires = Utc::now().timestamp() + i64::from(expiry_secs(ttl));
        let grant = Grant {
            method: BlobMethod::Put,
            key: key.to_owned(),
            expires,
            size: Some(size),
            disposition: None,
            content_type: None,
            part: Some((upload_id.to_owned(), part)),
        };
        PresignedRequest {
            method: "PUT",
            url: self.url_for(&grant),
            headers: BTreeMap::new(),
            expires_at: DateTime::from_timestamp(expires, 0).unwrap_or_else(Utc::now),
        }
    }

    pub async fn list_parts(
        &self,
        upload_id: &str,
    ) -> Result<Option<Vec<StoredPart>>, StorageError> {
        let dir = self.upload_dir(upload_id)?;
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::unavailable(e)),
        };
        let mut parts = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(StorageError::unavailable)?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(number) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A part is there once both its bytes and its record are.
            if !tokio::fs::try_exists(dir.join(format!("{number:05}.part")))
                .await
                .unwrap_or(false)
            {
                continue;
            }
            let bytes = tokio::fs::read(entry.path())
                .await
                .map_err(StorageError::unavailable)?;
            let meta: PartMeta =
                serde_json::from_slice(&bytes).map_err(StorageError::unavailable)?;
            parts.push(StoredPart {
                part_number: number,
                size: meta.size,
                etag: meta.etag,
            });
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(Some(parts))
    }

    /// Concatenates the parts into the object, hashing as it goes, then
    /// announces it as a CompleteMultipartUpload.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<(), StorageError> {
        let dir = self.upload_dir(upload_id)?;
        let manifest = match tokio::fs::read(dir.join("manifest.json")).await {
            Ok(bytes) => {
                serde_json::from_slice::<Manifest>(&bytes).map_err(StorageError::unavailable)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_such_upload()),
            Err(e) => return Err(StorageError::unavailable(e)),
        };
        if manifest.key != key {
            return Err(StorageError::rejected(
                "upload_key_mismatch",
                format!("multipart upload {upload_id} is for another object"),
            ));
        }
        let (out, tmp) = self.temp_file()?;
        let mut out = tokio::io::BufWriter::with_capacity(512 * 1024, out);
        let (mut sha, mut etags) = (Sha256::new(), Md5::new());
        let mut size = 0u64;
        let mut buf = vec![0u8; 512 * 1024];
        for part in parts {
            use tokio::io::AsyncReadExt;
            let path = dir.join(format!("{:05}.part", part.part_number));
            let mut file = match tokio::fs::File::open(path).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StorageError::not_found(
                        "part_not_found",
                        format!("part {} has not been uploaded", part.part_number),
                    ));
                }
                Err(e) => return Err(StorageError::unavailable(e)),
            };
            loop {
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(StorageError::unavailable)?;
                if n == 0 {
                    break;
                }
                sha.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .await
                    .map_err(StorageError::unavailable)?;
                size += n as u64;
            }
            etags.update(hex::decode(&part.etag).map_err(StorageError::unavailable)?);
        }
        out.flush().await.map_err(StorageError::unavailable)?;
        out.into_inner()
            .sync_all()
            .await
            .map_err(StorageError::unavailable)?;
        let meta = StoredMeta {
            size,
            // S3's multipart ETag: MD5 of the parts' MD5s, then the count.
            etag: format!("{}-{}", hex::encode(etags.finalize()), parts.len()),
            sha256: hex::encode(sha.finalize()),
            content_type: Some(manifest.content_type),
        };
        self.commit(tmp, key, &meta).await?;
        self.announce(minio::COMPLETE_MULTIPART, key, meta, "", "stowage")
            .await;
        self.abort_multipart(upload_id).await
    }

    pub async fn abort_multipart(&self, upload_id: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_dir_all(self.upload_dir(upload_id)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }

    /// A new temp file (mode 0600) in the store, removed when its path is
    /// dropped unless persisted: a cancelled or failed upload leaves nothing.
    fn temp_file(&self) -> Result<(tokio::fs::File, TempPath), StorageError> {
        let (file, path) = tempfile::NamedTempFile::new_in(&self.tmp)
            .map_err(StorageError::unavailable)?
            .into_parts();
        Ok((tokio::fs::File::from_std(file), path))
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, StorageError> {
        uuid::Uuid::parse_str(upload_id)
            .map(|_| self.multipart.join(upload_id))
            .map_err(|_| no_such_upload())
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

    /// Where the bytes of tus upload `upload` collect until it completes.
    pub fn staging_path(&self, upload: uuid::Uuid) -> PathBuf {
        self.staging.join(upload.to_string())
    }

    /// Removes an unfinished upload's staged bytes; a missing file is fine.
    pub async fn discard_staged(&self, upload: uuid::Uuid) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.staging_path(upload)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }

    /// Makes a finished upload's staged file the object at `key` (a rename:
    /// no byte is copied). `sha256` was computed while the bytes arrived.
    /// No object-created event: the server finished this upload itself and
    /// marks the file available in the same breath.
    pub async fn adopt_staged(
        &self,
        upload: uuid::Uuid,
        key: &str,
        size: u64,
        sha256: &str,
        content_type: &str,
    ) -> Result<ObjectMeta, StorageError> {
        let object_path = self.object_path(key)?;
        let meta_path = self.meta_path(key)?;
        let staged = self.staging_path(upload);
        let tmp_dir = self.tmp.clone();
        let meta = StoredMeta {
            size,
            // Opaque, like any ETag; the upload never had an MD5.
            etag: sha256[..32.min(sha256.len())].to_owned(),
            sha256: sha256.to_owned(),
            content_type: Some(content_type.to_owned()),
        };
        let json = serde_json::to_vec(&meta).map_err(StorageError::unavailable)?;
        // One trip to the blocking pool for the few file-system calls.
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for parent in [object_path.parent(), meta_path.parent()]
                .into_iter()
                .flatten()
            {
                private_dir(parent)?;
            }
            // Metadata first: an object never appears without it.
            let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
            std::io::Write::write_all(&mut tmp, &json)?;
            tmp.persist(&meta_path)?;
            std::fs::rename(&staged, &object_path)
        })
        .await
        .map_err(StorageError::unavailable)?
        .map_err(StorageError::unavailable)?;
        Ok(ObjectMeta {
            size: meta.size,
            etag: Some(meta.etag),
            content_type: meta.content_type,
            sha256: Some(meta.sha256),
        })
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

/// Writes a small file so that readers see all of it or none of it.
async fn write_atomically(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let (tmp_dir, path, bytes) = (tmp_dir.to_owned(), path.to_owned(), bytes.to_owned());
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(path)?;
        Ok(())
    })
    .await
    .map_err(StorageError::unavailable)?;
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StorageError::not_found(
            "object_not_found",
            "the place this was to be written to is gone",
        ),
        _ => StorageError::unavailable(e),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

/// Moves a finished temp file to `path`. With [`Replace::No`] an existing
/// file there is left alone and the call is a 409: the move is atomic
/// (`link` + `unlink`), so of two racing writers exactly one wins. A missing
/// parent directory is "not found"; the temp file is removed on any failure.
async fn persist(tmp: TempPath, path: PathBuf, replace: Replace) -> Result<(), StorageError> {
    let moved = tokio::task::spawn_blocking(move || match replace {
        Replace::Yes => tmp.persist(&path),
        Replace::No => tmp.persist_noclobber(&path),
    })
    .await
    .map_err(StorageError::unavailable)?;
    moved.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => StorageError::conflict(
            "already_uploaded",
            "this URL has already stored its object, and an object is stored only once; \
             start a new upload to send other bytes",
        ),
        std::io::ErrorKind::NotFound => StorageError::not_found(
            "object_not_found",
            "the place this was to be stored is gone",
        ),
        _ => StorageError::unavailable(e.error),
    })
}

/// The answer for a part, listing or completion of an upload that is not
/// there (never created, completed or aborted).
fn no_such_upload() -> StorageError {
    StorageError::not_found(
        "upload_not_found",
        "this multipart upload does not exist: it was completed or aborted; start a new one",
    )
}

/// Creates `dir` and its missing parents with mode 0700, and makes `dir`
/// itself 0700 if it was there already.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

async fn private_dir_async(dir: &Path) -> Result<(), StorageError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || private_dir(&dir))
        .await
        .map_err(StorageError::unavailable)?
        .map_err(StorageError::unavailable)
}

/// A key as a relative path that cannot leave the store's directory.
fn safe_relative(key: &str) -> Result<&str, StorageError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['\0', '\\']));
    if ok {
        Ok(key)
    } else {
        Err(StorageError::rejected(
            "invalid_object_key",
            "the object key is not a safe relative path",
        ))
    }
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
