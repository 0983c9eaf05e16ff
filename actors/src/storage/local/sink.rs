//! The local store's upload sink: the upload's staging file, appended to at
//! the acknowledged offset; each piece is written and hashed side by side
//! on two blocking threads. The last byte makes the file the object (a
//! rename, no copy).

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::LocalStore;
use crate::storage::sink::{
    Chunk, Durable, Resume, Stand, blocking, resumable, write_all_vectored,
};
use crate::storage::{ObjectMeta, StorageError};

/// A piece this small is written and hashed on the request's own thread
/// (tens of microseconds into the page cache); larger ones go to the
/// blocking pool, written and hashed side by side.
const INLINE_WRITE: usize = 128 << 10;

pub struct LocalSink {
    store: Arc<LocalStore>,
    upload: Uuid,
    key: String,
    content_type: String,
    /// `None` only while a write holds them, or after one failed.
    file: Option<std::fs::File>,
    sha256: Option<Sha256>,
    /// Bytes in the staging file.
    written: u64,
    acknowledged: u64,
}

impl LocalStore {
    /// Where the bytes of tus upload `upload` collect until it completes.
    pub fn staging_path(&self, upload: Uuid) -> PathBuf {
        self.staging.join(upload.to_string())
    }

    /// Opens `resume`'s staging file at its acknowledged offset: bytes a
    /// crash left past it were never acknowledged and are cut off.
    pub async fn open_sink(self: &Arc<Self>, resume: &Resume) -> Result<LocalSink, StorageError> {
        let sha256 = resumable::restore(resume.hash_state.as_deref())?;
        let path = self.staging_path(resume.upload);
        let offset = resume.offset;
        let file = blocking(move || {
            use std::io::{Seek, SeekFrom};
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .mode(0o600)
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            // Bytes past the offset were never acknowledged: cut them off
            // (only when there are: truncating waits for the page cache's
            // writeback of the file's last page). Fewer bytes than the
            // offset means acknowledged bytes are gone (a power loss before
            // the OS wrote them back): never paper over that with zeros.
            let len = f.metadata()?.len();
            if len < offset {
                return Err(std::io::Error::other(format!(
                    "the staging file holds {len} bytes, less than the {offset} acknowledged"
                )));
            }
            if len > offset {
                f.set_len(offset)?;
            }
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        })
        .await?;
        Ok(LocalSink {
            store: self.clone(),
            upload: resume.upload,
            key: resume.key.clone(),
            content_type: resume.content_type.clone(),
            file: Some(file),
            sha256: Some(sha256),
            written: offset,
            acknowledged: offset,
        })
    }

    /// Removes an unfinished upload's staged bytes; a missing file is fine.
    pub async fn discard_staged(&self, upload: Uuid) -> Result<(), StorageError> {
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
    async fn adopt_staged(
        &self,
        upload: Uuid,
        key: &str,
        size: u64,
        sha256: &str,
        content_type: &str,
    ) -> Result<ObjectMeta, StorageError> {
        let object_path = self.object_path(key)?;
        let meta_path = self.meta_path(key)?;
        let staged = self.staging_path(upload);
        let tmp_dir = self.tmp.clone();
        let meta = super::StoredMeta {
            size,
            // Opaque, like any ETag; the upload never had an MD5.
            etag: sha256[..32.min(sha256.len())].to_owned(),
            sha256: sha256.to_owned(),
            content_type: Some(content_type.to_owned()),
        };
        let json = serde_json::to_vec(&meta).map_err(StorageError::unavailable)?;
        // One trip to the blocking pool for the few file-system calls.
        blocking(move || {
            for parent in [object_path.parent(), meta_path.parent()]
                .into_iter()
                .flatten()
            {
                super::private_dir(parent)?;
            }
            // Metadata first: an object never appears without it.
            let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
            std::io::Write::write_all(&mut tmp, &json)?;
            tmp.persist(&meta_path)?;
            std::fs::rename(&staged, &object_path)
        })
        .await?;
        Ok(ObjectMeta {
            size: meta.size,
            etag: Some(meta.etag),
            content_type: meta.content_type,
            sha256: Some(meta.sha256),
        })
    }
}

impl LocalSink {
    pub async fn write(&mut self, chunk: Chunk) -> Result<(), StorageError> {
        let broken =
            || StorageError::unavailable(anyhow::anyhow!("the staging file failed earlier"));
        let mut file = self.file.take().ok_or_else(broken)?;
        let mut sha256 = self.sha256.take().ok_or_else(broken)?;
        let len: usize = chunk.iter().map(|b| b.len()).sum();
        if len <= INLINE_WRITE {
            // Cheaper here than two trips to the blocking pool.
            write_all_vectored(&mut file, &chunk).map_err(StorageError::unavailable)?;
            for piece in chunk.iter() {
                sha256.update(piece);
            }
            self.file = Some(file);
            self.sha256 = Some(sha256);
            self.written += len as u64;
            return Ok(());
        }
        let data = chunk.clone();
        let written = blocking(move || write_all_vectored(&mut file, &data).map(|()| file));
        let hashed = blocking(move || {
            for piece in chunk.iter() {
                sha256.update(piece);
            }
            Ok(sha256)
        });
        let (written, hashed) = futures_util::future::join(written, hashed).await;
        self.file = Some(written?);
        self.sha256 = Some(hashed?);
        self.written += len as u64;
        Ok(())
    }

    /// Every written byte is in the file, which survives the process.
    pub fn settled(&self) -> Option<Durable> {
        (self.written > self.acknowledged).then(|| self.checkpoint())
    }

    pub fn checkpoint(&self) -> Durable {
        Durable {
            offset: self.written,
            hash_state: self
                .sha256
                .as_ref()
                .map(resumable::save)
                .unwrap_or_default(),
            tail_size: 0,
            parts: 0,
            new_parts: Vec::new(),
            s3_upload: None,
        }
    }

    pub fn acknowledged(&mut self, durable: &Durable) {
        self.acknowledged = durable.offset;
    }

    pub fn stand(&self) -> Stand {
        Stand {
            offset: self.acknowledged,
            tail_size: 0,
            parts: 0,
            s3_upload: None,
        }
    }

    /// The staging file is still there, holding exactly the bytes taken.
    pub fn intact(&self, stand: &Stand) -> bool {
        let path = self.store.staging_path(self.upload);
        self.written == stand.offset
            && std::fs::metadata(path).is_ok_and(|m| m.len() == self.written)
    }

    /// Closed, not synced: like every acknowledged offset, the file
    /// survives the process, and the OS writes it back.
    pub async fn finish(mut self) -> Result<String, StorageError> {
        drop(self.file.take());
        let sha256 = self
            .sha256
            .take()
            .ok_or_else(|| StorageError::unavailable(anyhow::anyhow!("the hash failed earlier")))?;
        let digest = hex::encode(sha256.finalize());
        let store = self.store.clone();
        super::super::guarded(
            None,
            "put_object",
            store.adopt_staged(
                self.upload,
                &self.key,
                self.written,
                &digest,
                &self.content_type,
            ),
        )
        .await?;
        Ok(digest)
    }
}
