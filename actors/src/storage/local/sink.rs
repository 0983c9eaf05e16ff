//! The local store's upload sink: the upload's staging file, sealed
//! segment by segment as bytes arrive (see [`super::crypt`]), and hashed
//! as plaintext beside it on another blocking thread. The last byte makes
//! the file the object (a rename, no copy).
//!
//! Three files in `staging/` make an upload:
//! - `<id>`: every whole segment but the last, sealed, in order;
//! - `<id>.crypt`: the data key (wrapped) and nonce prefixes;
//! - `<id>.tail`: the unfinished last segment, sealed as a record of its
//!   own (random nonce), rewritten at each acknowledgement.
//!
//! A crash may leave whole segments past the acknowledged offset. They are
//! cut off on resume, and the segments after that are sealed under a new
//! nonce prefix: the client may send other bytes for the same positions.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::LocalStore;
use super::crypt::{Crypt, SEALED, SEGMENT, Sealer, position};
use super::fs::{locked, replace_file};
use super::keyring::damaged;
use super::rotate::{LOCK_FILE, keep_current};
use crate::storage::sink::{Chunk, Durable, Resume, Stand, blocking, resumable};
use crate::storage::{ObjectMeta, StorageError};

/// A piece this small is sealed, written and hashed on the request's own
/// thread; larger ones go to the blocking pool, sealed and written on one
/// thread and hashed on another.
const INLINE_WRITE: usize = 128 << 10;

pub struct LocalSink {
    store: Arc<LocalStore>,
    upload: Uuid,
    key: String,
    content_type: String,
    /// `None` only while a write holds it, or after one failed.
    staged: Option<Box<Staged>>,
    sha256: Option<Sha256>,
    /// Plaintext bytes taken.
    written: u64,
    acknowledged: u64,
}

/// The staging file and the sealer writing into it.
struct Staged {
    file: std::fs::File,
    sealer: Sealer,
}

impl Staged {
    /// Seals `chunk` and appends the segments it completes. Blocking.
    fn take(&mut self, chunk: &Chunk) -> std::io::Result<()> {
        let len: usize = chunk.iter().map(|b| b.len()).sum();
        let mut sealed = Vec::with_capacity(len + len / SEGMENT * 16 + SEALED);
        for piece in chunk.iter() {
            self.sealer.push(piece, &mut sealed)?;
        }
        std::io::Write::write_all(&mut self.file, &sealed)
    }
}

impl LocalStore {
    /// Where the bytes of tus upload `upload` collect until it completes.
    pub fn staging_path(&self, upload: Uuid) -> PathBuf {
        self.staging.join(upload.to_string())
    }

    fn staged_crypt_path(&self, upload: Uuid) -> PathBuf {
        self.staging.join(format!("{upload}.crypt"))
    }

    fn staged_tail_path(&self, upload: Uuid) -> PathBuf {
        self.staging.join(format!("{upload}.tail"))
    }

    /// Opens `resume`'s staging file at its acknowledged offset: bytes a
    /// crash left past it were never acknowledged and are cut off.
    pub async fn open_sink(self: &Arc<Self>, resume: &Resume) -> Result<LocalSink, StorageError> {
        let sha256 = resumable::restore(resume.hash_state.as_deref())?;
        let (store, upload, offset) = (self.clone(), resume.upload, resume.offset);
        let staged = blocking(move || store.open_staged(upload, offset)).await?;
        Ok(LocalSink {
            store: self.clone(),
            upload: resume.upload,
            key: resume.key.clone(),
            content_type: resume.content_type.clone(),
            staged: Some(staged),
            sha256: Some(sha256),
            written: offset,
            acknowledged: offset,
        })
    }

    /// The staging file at `offset`, its sealer holding the unfinished
    /// last segment. Blocking.
    fn open_staged(&self, upload: Uuid, offset: u64) -> std::io::Result<Box<Staged>> {
        use std::os::unix::fs::OpenOptionsExt;
        let crypt_path = self.staged_crypt_path(upload);
        let lock = self.root.join(LOCK_FILE);
        let mut crypt = locked(&lock, || match std::fs::read(&crypt_path) {
            Ok(bytes) => serde_json::from_slice::<Crypt>(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })?;
        let fresh = crypt.is_none();
        if fresh {
            if offset > 0 {
                return Err(damaged(
                    "the staged upload's key file is gone: its acknowledged bytes cannot be read",
                ));
            }
            let (new, _) = Crypt::fresh(&self.keyring)?;
            crypt = Some(new);
        }
        let mut crypt = crypt.expect("set above");
        let mut file = std::fs::OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(self.staging_path(upload))?;
        // Whole segments acknowledged, and the acknowledged bytes after them.
        let full = if offset == 0 {
            0
        } else {
            (offset - 1) / SEGMENT as u64
        };
        let tail_len = (offset - full * SEGMENT as u64) as usize;
        let expected = full * SEALED as u64;
        // Fewer bytes than acknowledged means acknowledged bytes are gone
        // (a power loss before the OS wrote them back): never paper over it.
        let len = file.metadata()?.len();
        if len < expected {
            return Err(std::io::Error::other(format!(
                "the staging file holds {len} sealed bytes, less than the {expected} \
                 acknowledged"
            )));
        }
        let sealing = crypt.open(&self.keyring)?;
        let tail = if tail_len == 0 {
            Vec::new()
        } else if len >= expected + SEALED as u64 {
            // The segment was finished (unacknowledged) before a crash.
            let mut buf = vec![0u8; SEALED];
            file.read_exact_at(&mut buf, expected)?;
            sealing.open(position(full)?, false, &mut buf)?;
            buf.truncate(tail_len);
            buf
        } else {
            let record = match std::fs::read(self.staged_tail_path(upload)) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(damaged(
                        "the staged upload's tail record is gone: acknowledged bytes are lost",
                    ));
                }
                Err(e) => return Err(e),
            };
            let (index, mut plain) = sealing.open_tail(&record)?;
            if u64::from(index) != full || plain.len() < tail_len {
                return Err(damaged(
                    "the staged upload's tail record is older than its acknowledged offset",
                ));
            }
            plain.truncate(tail_len);
            plain
        };
        let mut sealing = sealing;
        if len > expected || fresh {
            if len > expected {
                // The cut-off segments' positions are sealed again, perhaps
                // over other bytes: under a new nonce prefix.
                file.set_len(expected)?;
                crypt.new_epoch(position(full)?);
                sealing = crypt.open(&self.keyring)?;
            }
            let json = serde_json::to_vec(&crypt).map_err(std::io::Error::other)?;
            locked(&lock, || replace_file(&self.tmp, &crypt_path, &json))?;
            keep_current(&self.root, &self.keyring, &crypt.key.kek, &crypt_path)?;
        }
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(expected))?;
        let mut pending = Vec::with_capacity(SEGMENT);
        pending.extend_from_slice(&tail);
        let staged = Box::new(Staged {
            file,
            sealer: Sealer::resume(sealing, full, pending),
        });
        Ok(staged)
    }

    /// Removes an unfinished upload's staged bytes; missing files are fine.
    pub async fn discard_staged(&self, upload: Uuid) -> Result<(), StorageError> {
        for path in [
            self.staging_path(upload),
            self.staged_tail_path(upload),
            self.staged_crypt_path(upload),
        ] {
            match tokio::fs::remove_file(path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::unavailable(e)),
            }
        }
        Ok(())
    }

    /// Makes a finished upload's staged file the object at `key` (a rename:
    /// no byte is copied), its metadata first, with the key file's key (as
    /// a rotation may have re-wrapped it). `sha256` was computed while the
    /// bytes arrived. No object-created event: the server finished this
    /// upload itself and marks the file available in the same breath.
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
        let (staged, crypt_path, tail_path) = (
            self.staging_path(upload),
            self.staged_crypt_path(upload),
            self.staged_tail_path(upload),
        );
        let (root, tmp_dir, keyring) = (self.root.clone(), self.tmp.clone(), self.keyring.clone());
        let mut meta = super::StoredMeta {
            size,
            // Opaque, like any ETag; the upload never had an MD5.
            etag: sha256[..32.min(sha256.len())].to_owned(),
            sha256: sha256.to_owned(),
            content_type: Some(content_type.to_owned()),
            crypt: None,
        };
        let meta = blocking(move || {
            for parent in [object_path.parent(), meta_path.parent()]
                .into_iter()
                .flatten()
            {
                super::private_dir(parent)?;
            }
            let kek = locked(&root.join(LOCK_FILE), || {
                let crypt: Crypt = serde_json::from_slice(&std::fs::read(&crypt_path)?)
                    .map_err(std::io::Error::other)?;
                let kek = crypt.key.kek.clone();
                meta.crypt = Some(crypt);
                let json = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
                // Metadata first: an object never appears without it.
                replace_file(&tmp_dir, &meta_path, &json)?;
                std::fs::rename(&staged, &object_path)?;
                for done in [&crypt_path, &tail_path] {
                    match std::fs::remove_file(done) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                Ok(kek)
            })?;
            keep_current(&root, &keyring, &kek, &meta_path)?;
            Ok(meta)
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
        let mut staged = self.staged.take().ok_or_else(broken)?;
        let mut sha256 = self.sha256.take().ok_or_else(broken)?;
        let len: usize = chunk.iter().map(|b| b.len()).sum();
        if len <= INLINE_WRITE {
            // Cheaper here than two trips to the blocking pool.
            staged.take(&chunk).map_err(StorageError::unavailable)?;
            for piece in chunk.iter() {
                sha256.update(piece);
            }
            self.staged = Some(staged);
            self.sha256 = Some(sha256);
            self.written += len as u64;
            return Ok(());
        }
        let data = chunk.clone();
        let written = blocking(move || staged.take(&data).map(|()| staged));
        let hashed = blocking(move || {
            for piece in chunk.iter() {
                sha256.update(piece);
            }
            Ok(sha256)
        });
        let (written, hashed) = futures_util::future::join(written, hashed).await;
        self.staged = Some(written?);
        self.sha256 = Some(hashed?);
        self.written += len as u64;
        Ok(())
    }

    /// Every byte written is durable once the unfinished segment is
    /// recorded: done when the caller will acknowledge now (`due`).
    pub async fn settled(&mut self, due: bool) -> Result<Option<Durable>, StorageError> {
        if self.written > self.acknowledged && due {
            self.checkpoint().await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Records the unfinished last segment: every byte taken is then in
    /// files that survive the process.
    pub async fn checkpoint(&mut self) -> Result<Durable, StorageError> {
        let staged = self.staged.as_ref().ok_or_else(|| {
            StorageError::unavailable(anyhow::anyhow!("the staging file failed earlier"))
        })?;
        let pending = staged.sealer.pending();
        if !pending.is_empty() {
            let index = position(staged.sealer.sealed()).map_err(StorageError::unavailable)?;
            let record = staged.sealer.sealing().seal_tail(index, pending);
            let (tmp_dir, path) = (
                self.store.tmp.clone(),
                self.store.staged_tail_path(self.upload),
            );
            blocking(move || replace_file(&tmp_dir, &path, &record)).await?;
        }
        Ok(Durable {
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
        })
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

    /// The staging file is still there, holding exactly the segments sealed.
    pub fn intact(&self, stand: &Stand) -> bool {
        let Some(staged) = &self.staged else {
            return false;
        };
        let path = self.store.staging_path(self.upload);
        let sealed = staged.sealer.sealed() * SEALED as u64;
        self.written == stand.offset && std::fs::metadata(path).is_ok_and(|m| m.len() == sealed)
    }

    /// Seals the last segment. Closed, not synced: like every acknowledged
    /// offset, the file survives the process, and the OS writes it back.
    pub async fn finish(mut self) -> Result<String, StorageError> {
        let failed = || StorageError::unavailable(anyhow::anyhow!("the upload failed earlier"));
        let Staged { mut file, sealer } = *self.staged.take().ok_or_else(failed)?;
        blocking(move || {
            let mut last = Vec::with_capacity(SEALED);
            sealer.finish(&mut last)?;
            std::io::Write::write_all(&mut file, &last)
        })
        .await?;
        let sha256 = self.sha256.take().ok_or_else(failed)?;
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
