//! Reading the local store: metadata, and an object's plaintext by range,
//! opening only the segments a range touches.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};

use super::crypt::{Sealing, read_sealed};
use super::{LocalStore, StoredMeta};
use crate::storage::{ObjectMeta, StorageError};

/// Plaintext bytes a read hands on at a time.
const READ_BATCH: usize = 256 << 10;

/// An object opened for reading.
pub struct StoredObject {
    file: Arc<std::fs::File>,
    pub meta: ObjectMeta,
    /// `None` for an object stored before encryption.
    sealing: Option<Arc<Sealing>>,
}

impl StoredObject {
    pub(super) fn new(file: std::fs::File, size: u64, sealing: Option<Sealing>) -> Self {
        Self {
            file: Arc::new(file),
            meta: ObjectMeta {
                size,
                ..ObjectMeta::default()
            },
            sealing: sealing.map(Arc::new),
        }
    }

    /// Up to `max` bytes from `start`. Blocking.
    pub(super) fn read_at(&self, start: u64, max: usize) -> std::io::Result<Vec<u8>> {
        match &self.sealing {
            Some(sealing) => read_sealed(&self.file, self.meta.size, sealing, start, max),
            None => {
                use std::os::unix::fs::FileExt;
                let len = (self.meta.size.saturating_sub(start)).min(max as u64) as usize;
                let mut buf = vec![0u8; len];
                self.file.read_exact_at(&mut buf, start)?;
                Ok(buf)
            }
        }
    }

    /// The first piece of `len` bytes from `start` (read before answering,
    /// so that a damaged object is an error rather than a cut-off body),
    /// and the stream of the rest.
    pub async fn range(
        self,
        start: u64,
        len: u64,
    ) -> std::io::Result<impl Stream<Item = std::io::Result<Bytes>> + use<>> {
        let this = Arc::new(self);
        let end = start + len;
        let first = read_piece(this.clone(), start, end).await?;
        let next = start + first.len() as u64;
        let rest = futures_util::stream::try_unfold(next, move |at| {
            let this = this.clone();
            async move {
                if at >= end {
                    return Ok(None);
                }
                let piece = read_piece(this, at, end).await?;
                let next = at + piece.len() as u64;
                Ok(Some((piece, next)))
            }
        });
        let first = (!first.is_empty()).then_some(Ok(first));
        Ok(futures_util::StreamExt::chain(
            futures_util::stream::iter(first),
            rest,
        ))
    }
}

async fn read_piece(object: Arc<StoredObject>, at: u64, end: u64) -> std::io::Result<Bytes> {
    let max = (end - at).min(READ_BATCH as u64) as usize;
    let piece = tokio::task::spawn_blocking(move || object.read_at(at, max))
        .await
        .map_err(std::io::Error::other)??;
    if piece.is_empty() && max > 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "a stored object ended early",
        ));
    }
    Ok(Bytes::from(piece))
}

impl LocalStore {
    /// Opens an object for reading.
    pub async fn read(&self, key: &str) -> Result<Option<StoredObject>, StorageError> {
        let Some((meta, stored)) = self.stored_meta(key).await? else {
            return Ok(None);
        };
        let sealing = match stored.and_then(|m| m.crypt) {
            Some(crypt) => {
                let keyring = self.keyring.clone();
                let sealing = tokio::task::spawn_blocking(move || crypt.open(&keyring))
                    .await
                    .map_err(StorageError::unavailable)?
                    .map_err(|e| {
                        tracing::error!(key, error = %e, "a stored object's key does not open");
                        StorageError::unavailable(e)
                    })?;
                Some(Arc::new(sealing))
            }
            None => None,
        };
        match tokio::fs::File::open(self.object_path(key)?).await {
            Ok(file) => Ok(Some(StoredObject {
                file: Arc::new(file.into_std().await),
                meta,
                sealing,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self.stored_meta(key).await?.map(|(meta, _)| meta))
    }

    /// What is known of the object at `key`, and its metadata file if any
    /// (an object put there by other means has only its size).
    async fn stored_meta(
        &self,
        key: &str,
    ) -> Result<Option<(ObjectMeta, Option<StoredMeta>)>, StorageError> {
        let object_path = self.object_path(key)?;
        let on_disk = match tokio::fs::metadata(&object_path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::unavailable(e)),
        };
        match tokio::fs::read(self.meta_path(key)?).await {
            Ok(bytes) => {
                let stored: StoredMeta =
                    serde_json::from_slice(&bytes).map_err(StorageError::unavailable)?;
                let meta = ObjectMeta {
                    // Sealed, the file is longer than the object.
                    size: if stored.crypt.is_some() {
                        stored.size
                    } else {
                        on_disk
                    },
                    etag: Some(stored.etag.clone()),
                    content_type: stored.content_type.clone(),
                    sha256: Some(stored.sha256.clone()),
                };
                Ok(Some((meta, Some(stored))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some((
                ObjectMeta {
                    size: on_disk,
                    ..ObjectMeta::default()
                },
                None,
            ))),
            Err(e) => Err(StorageError::unavailable(e)),
        }
    }

    /// The SHA-256 of the object's plaintext: recorded while it was
    /// written, or (an object put there by other means) computed.
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
}
