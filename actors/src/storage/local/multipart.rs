//! The local store's multipart uploads: a directory per upload with a
//! manifest and one file per part, joined on completion.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::crypt::{Crypt, SEALED, Sealer};
use super::fs::{locked, private_dir_async, safe_relative, write_atomically};
use super::read::StoredObject;
use super::rotate::LOCK_FILE;
use super::{LocalStore, StoredMeta};
use crate::events::minio;
use crate::storage::signing::{BlobMethod, Grant};
use crate::storage::{PresignedRequest, StorageError, StoredPart, expiry_secs};

/// Plaintext a completion reads from a part at a time.
const PIECE: usize = 512 << 10;

/// What a multipart upload directory records about itself.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    key: String,
    content_type: String,
}

/// What is recorded next to each stored part.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PartMeta {
    pub(super) size: u64,
    pub(super) etag: String,
    /// How the part is sealed; absent for one stored before encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) crypt: Option<Crypt>,
}

impl LocalStore {
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
        let (crypt, sealing) = Crypt::fresh(&self.keyring).map_err(StorageError::unavailable)?;
        let mut sealer = Sealer::new(sealing);
        let (mut out, tmp) = self.temp_file()?;
        let (mut sha, mut etags) = (Sha256::new(), Md5::new());
        let mut size = 0u64;
        let mut sealed = Vec::with_capacity(PIECE + SEALED);
        for part in parts {
            let stored = Arc::new(self.open_part(&dir, part.part_number).await?);
            let mut at = 0;
            while at < stored.meta.size {
                let part = stored.clone();
                let piece = tokio::task::spawn_blocking(move || part.read_at(at, PIECE))
                    .await
                    .map_err(StorageError::unavailable)?
                    .map_err(|e| {
                        tracing::error!(upload_id, error = %e, "a stored part does not read back");
                        StorageError::unavailable(e)
                    })?;
                if piece.is_empty() {
                    return Err(StorageError::unavailable(anyhow::anyhow!(
                        "a stored part ended early"
                    )));
                }
                at += piece.len() as u64;
                sha.update(&piece);
                sealer
                    .push(&piece, &mut sealed)
                    .map_err(StorageError::unavailable)?;
                out.write_all(&sealed)
                    .await
                    .map_err(StorageError::unavailable)?;
                sealed.clear();
            }
            size += stored.meta.size;
            etags.update(hex::decode(&part.etag).map_err(StorageError::unavailable)?);
        }
        super::put::seal_last(sealer, sealed, &mut out).await?;
        let meta = StoredMeta {
            size,
            // S3's multipart ETag: MD5 of the parts' MD5s, then the count.
            etag: format!("{}-{}", hex::encode(etags.finalize()), parts.len()),
            sha256: hex::encode(sha.finalize()),
            content_type: Some(manifest.content_type),
            crypt: Some(crypt),
        };
        self.commit(tmp, key, &meta).await?;
        self.announce(minio::COMPLETE_MULTIPART, key, meta, "", "stowage")
            .await;
        self.abort_multipart(upload_id).await
    }

    /// Opens a stored part with its record, under the store's lock (so the
    /// two belong together even while the part is being sent again).
    async fn open_part(
        &self,
        dir: &std::path::Path,
        number: u32,
    ) -> Result<StoredObject, StorageError> {
        let (record, part) = (
            dir.join(format!("{number:05}.json")),
            dir.join(format!("{number:05}.part")),
        );
        let (lock, keyring) = (self.root.join(LOCK_FILE), self.keyring.clone());
        let opened = tokio::task::spawn_blocking(move || {
            let (meta, file) = locked(&lock, || {
                let meta: PartMeta = serde_json::from_slice(&std::fs::read(&record)?)
                    .map_err(std::io::Error::other)?;
                Ok((meta, std::fs::File::open(&part)?))
            })?;
            let sealing = meta.crypt.as_ref().map(|c| c.open(&keyring)).transpose()?;
            Ok::<_, std::io::Error>(StoredObject::new(file, meta.size, sealing))
        })
        .await
        .map_err(StorageError::unavailable)?;
        opened.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::not_found(
                "part_not_found",
                format!("part {number} has not been uploaded"),
            ),
            _ => StorageError::unavailable(e),
        })
    }

    pub async fn abort_multipart(&self, upload_id: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_dir_all(self.upload_dir(upload_id)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }

    pub(super) fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, StorageError> {
        uuid::Uuid::parse_str(upload_id)
            .map(|_| self.multipart.join(upload_id))
            .map_err(|_| no_such_upload())
    }
}

/// The answer for a part, listing or completion of an upload that is not
/// there (never created, completed or aborted).
pub(super) fn no_such_upload() -> StorageError {
    StorageError::not_found(
        "upload_not_found",
        "this multipart upload does not exist: it was completed or aborted; start a new one",
    )
}
