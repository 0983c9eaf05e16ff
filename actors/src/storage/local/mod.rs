//! The local blob store of the embedded default: a real object store on the
//! file system. Objects are written to a temporary file and moved into
//! place without replacing anything, so a reader never sees half an object
//! and an object, once stored, is never overwritten (a presigned PUT URL
//! stores once); the SHA-256 and MD5 (the ETag) are computed while the
//! bytes stream in. Every directory is 0700 and every file 0600. Every
//! object is sealed with a data key of its own (see [`crypt`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::signing::{BlobMethod, Grant, UrlSigner};
use super::{DeleteReport, ListedObject, PresignedRequest, StorageError, expiry_secs};
use crate::events::EventBus;

mod crypt;
mod fs;
mod gcm;
mod keyring;
mod multipart;
mod put;
mod read;
mod rotate;
mod sink;

pub use self::read::StoredObject;
pub use self::rotate::{Rotation, rotate_keys};
pub use self::sink::LocalSink;

use self::crypt::Crypt;
pub use self::fs::private_dir;
use self::fs::safe_relative;
use self::keyring::Keyring;

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
    /// Of the plaintext.
    size: u64,
    etag: String,
    sha256: String,
    content_type: Option<String>,
    /// How the object is sealed; absent for one stored before encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crypt: Option<Crypt>,
}

pub struct LocalStore {
    /// The store's directory: its key file and lock are here.
    root: PathBuf,
    objects: PathBuf,
    meta: PathBuf,
    tmp: PathBuf,
    multipart: PathBuf,
    /// tus uploads in progress, one file each, appended to as bytes arrive.
    staging: PathBuf,
    /// The key-encryption keys that wrap every object's data key.
    keyring: Arc<Keyring>,
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
        encryption_key: Option<&SecretString>,
    ) -> anyhow::Result<Self> {
        private_dir(root)
            .with_context(|| format!("creating the blob directory {}", root.display()))?;
        let store = Self {
            root: root.to_owned(),
            keyring: Arc::new(Keyring::open(root, encryption_key)?),
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
