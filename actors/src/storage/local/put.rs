//! Storing through a signed PUT URL: an object, or a part of a multipart
//! upload. The body is sealed (see [`super::crypt`]) into a temp file as it
//! streams in, hashed as plaintext, and moved into place with its
//! metadata, both under the store's lock.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use super::crypt::{Crypt, Sealer};
use super::fs::{locked, replace_file};
use super::multipart::{PartMeta, no_such_upload};
use super::rotate::{LOCK_FILE, keep_current};
use super::{LocalStore, PutError, StoredMeta};
use crate::events::minio;
use crate::storage::signing::Grant;
use crate::storage::{ObjectMeta, StorageError};

/// Sealed bytes are written a batch at a time.
const WRITE_BATCH: usize = 512 << 10;

/// What `receive` took in.
pub(super) struct Received {
    /// Removed on drop unless persisted.
    pub file: TempPath,
    pub size: u64,
    pub sha256: [u8; 32],
    pub md5: [u8; 16],
    pub crypt: Crypt,
}

impl LocalStore {
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
                crypt: Some(received.crypt),
            };
            self.store_part(&dir, *part, received.file, &meta).await?;
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
            crypt: Some(received.crypt),
        };
        self.commit(received.file, &grant.key, &meta).await?;
        Ok(self
            .announce(minio::PUT, &grant.key, meta, source_ip, user_agent)
            .await)
    }

    /// Streams a body into a temp file, sealed, hashing the plaintext,
    /// refusing any other length.
    pub(super) async fn receive<S, E>(
        &self,
        mut body: S,
        expected: u64,
    ) -> Result<Received, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let (crypt, sealing) = Crypt::fresh(&self.keyring).map_err(StorageError::unavailable)?;
        let mut sealer = Sealer::new(sealing);
        let (mut out, tmp) = self.temp_file()?;
        let mut sealed = Vec::with_capacity(WRITE_BATCH + super::crypt::SEALED);
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
            sealer
                .push(&chunk, &mut sealed)
                .map_err(StorageError::unavailable)?;
            if sealed.len() >= WRITE_BATCH {
                out.write_all(&sealed)
                    .await
                    .map_err(StorageError::unavailable)?;
                sealed.clear();
            }
        }
        if received != expected {
            return Err(PutError::TooShort { expected, received });
        }
        seal_last(sealer, sealed, &mut out).await?;
        Ok(Received {
            file: tmp,
            size: received,
            sha256: sha.finalize().into(),
            md5: md5.finalize().into(),
            crypt,
        })
    }

    /// Publishes the object-created event; a failure is logged, not returned
    /// (the object is stored; confirm and the janitor still find it).
    pub(super) async fn announce(
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
    pub(super) fn temp_file(&self) -> Result<(tokio::fs::File, TempPath), StorageError> {
        let (file, path) = tempfile::NamedTempFile::new_in(&self.tmp)
            .map_err(StorageError::unavailable)?
            .into_parts();
        Ok((tokio::fs::File::from_std(file), path))
    }

    /// Moves a finished temp file into place at `key` with its metadata,
    /// unless an object is there already (409: objects are written once).
    /// Under the store's lock, the metadata goes first: an object is never
    /// there without the key that opens it.
    pub(super) async fn commit(
        &self,
        tmp: TempPath,
        key: &str,
        meta: &StoredMeta,
    ) -> Result<(), StorageError> {
        let object_path = self.object_path(key)?;
        let meta_path = self.meta_path(key)?;
        let json = serde_json::to_vec(meta).map_err(StorageError::unavailable)?;
        let (root, tmp_dir, keyring) = (self.root.clone(), self.tmp.clone(), self.keyring.clone());
        let kek = meta.crypt.as_ref().map(|c| c.key.kek.clone());
        let moved = tokio::task::spawn_blocking(move || {
            for parent in [object_path.parent(), meta_path.parent()]
                .into_iter()
                .flatten()
            {
                super::private_dir(parent)?;
            }
            locked(&root.join(LOCK_FILE), || {
                if std::fs::symlink_metadata(&object_path).is_ok() {
                    return Err(std::io::ErrorKind::AlreadyExists.into());
                }
                replace_file(&tmp_dir, &meta_path, &json)?;
                tmp.persist_noclobber(&object_path).map_err(|e| e.error)
            })?;
            match kek {
                Some(kek) => keep_current(&root, &keyring, &kek, &meta_path),
                None => Ok(()),
            }
        })
        .await
        .map_err(StorageError::unavailable)?;
        moved.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => StorageError::conflict(
                "already_uploaded",
                "this URL has already stored its object, and an object is stored only once; \
                 start a new upload to send other bytes",
            ),
            _ => StorageError::unavailable(e),
        })
    }

    /// Stores part `number` of the multipart upload in `dir`: its record
    /// (size, ETag, key) and bytes together, under the store's lock, so a
    /// part sent twice at once never pairs one's key with the other's bytes.
    async fn store_part(
        &self,
        dir: &std::path::Path,
        number: u32,
        file: TempPath,
        meta: &PartMeta,
    ) -> Result<(), StorageError> {
        let json = serde_json::to_vec(meta).map_err(StorageError::unavailable)?;
        let name = format!("{number:05}");
        let (record, part) = (
            dir.join(format!("{name}.json")),
            dir.join(format!("{name}.part")),
        );
        let (root, tmp_dir, manifest, keyring) = (
            self.root.clone(),
            self.tmp.clone(),
            dir.join("manifest.json"),
            self.keyring.clone(),
        );
        let kek = meta.crypt.as_ref().map(|c| c.key.kek.clone());
        let stored = tokio::task::spawn_blocking(move || {
            locked(&root.join(LOCK_FILE), || {
                // Completed or aborted while the part arrived.
                if std::fs::metadata(&manifest).is_err() {
                    return Err(std::io::ErrorKind::NotFound.into());
                }
                replace_file(&tmp_dir, &record, &json)?;
                file.persist(&part).map_err(|e| e.error)
            })?;
            match kek {
                Some(kek) => keep_current(&root, &keyring, &kek, &record),
                None => Ok(()),
            }
        })
        .await
        .map_err(StorageError::unavailable)?;
        stored.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => no_such_upload(),
            _ => StorageError::unavailable(e),
        })
    }
}

/// Seals the last segment after what `sealed` holds, writes both and syncs
/// the file.
pub(super) async fn seal_last(
    sealer: Sealer,
    mut sealed: Vec<u8>,
    out: &mut tokio::fs::File,
) -> Result<(), StorageError> {
    sealer
        .finish(&mut sealed)
        .map_err(StorageError::unavailable)?;
    out.write_all(&sealed)
        .await
        .map_err(StorageError::unavailable)?;
    out.sync_all().await.map_err(StorageError::unavailable)
}
