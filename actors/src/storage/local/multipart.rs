//! The local store's multipart uploads: a directory per upload with a
//! manifest and one file per part, joined on completion.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::fs::{private_dir_async, safe_relative, write_atomically};
use super::{LocalStore, StoredMeta};
use crate::events::minio;
use crate::storage::signing::{BlobMethod, Grant};
use crate::storage::{PresignedRequest, StorageError, StoredPart, expiry_secs};

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
