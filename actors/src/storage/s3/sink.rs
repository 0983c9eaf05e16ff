//! The S3 upload sink. The part being filled is spooled to a temp file
//! (never held in memory); when it is full it is streamed to S3 as the next
//! part of the multipart upload, hashed on the way, while the next part
//! fills: one part in flight, so an upload holds at most two parts on disk
//! and a few MiB of memory, whatever its length. Between requests the bytes
//! short of a part wait in a tail object, so any instance can go on.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::S3Store;
use crate::storage::sink::{Chunk, Durable, Resume, blocking, resumable, write_all_vectored};
use crate::storage::{StorageError, StoredPart, guarded};
use crate::uploads::{MAX_PARTS, MIN_PART_SIZE};

/// Part size of an upload whose length is deferred, doubled every thousand
/// parts so that 10,000 parts reach S3's 5 TiB.
const DEFERRED_PART_SIZE: u64 = 8 << 20;

/// Where an S3 tus upload keeps what it stores besides its parts (outside
/// `users/`, which the orphan sweep owns).
pub fn upload_prefix(upload: Uuid) -> String {
    format!("uploads/tus/{upload}/")
}

/// The tail holding bytes `start..start + len` of an upload: named by its
/// range, so a new tail never overwrites the one the database still
/// records (the old one goes once the new one is acknowledged).
pub fn tail_key(upload: Uuid, start: u64, len: u64) -> String {
    format!("{}tail-{start}-{len}", upload_prefix(upload))
}

/// The part being filled.
struct Spool {
    file: Option<std::fs::File>,
    path: TempPath,
    len: u64,
}

impl Spool {
    async fn new(dir: PathBuf) -> Result<Self, StorageError> {
        let (file, path) = blocking(move || {
            std::fs::create_dir_all(&dir)?;
            Ok(tempfile::NamedTempFile::new_in(dir)?.into_parts())
        })
        .await?;
        Ok(Self {
            file: Some(file),
            path,
            len: 0,
        })
    }
}

type PartUpload = JoinHandle<Result<(Sha256, StoredPart), StorageError>>;

pub struct S3Sink {
    store: Arc<S3Store>,
    upload: Uuid,
    key: String,
    content_type: String,
    part_size: Option<u64>,
    spool_dir: PathBuf,
    spool: Spool,
    /// The SHA-256 of the stored parts; `None` while a part in flight holds it.
    sha256: Option<Sha256>,
    /// Its saved state as of the last stored part (what is acknowledged).
    stored_hash: String,
    in_flight: Option<PartUpload>,
    s3_upload: Option<String>,
    /// A multipart upload started by this sink and not yet handed out.
    started: Option<String>,
    /// Parts stored, and the bytes in them.
    parts: u32,
    stored: u64,
    /// Parts stored since the last acknowledgement.
    new_parts: Vec<StoredPart>,
    acknowledged: u64,
    /// The tail object the database records as of the last acknowledgement.
    recorded_tail: Option<String>,
    /// Bytes acknowledged when the sink opened (a tail may have been stored).
    opened_at: u64,
}

impl Drop for S3Sink {
    /// A multipart upload this sink started but nobody recorded (the
    /// request ended before it could be) is aborted, so none is left behind.
    fn drop(&mut self) {
        let Some(upload) = self.started.take() else {
            return;
        };
        let (store, key) = (self.store.clone(), self.key.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let aborted = guarded(
                    Some(&store.circuit),
                    "abort_multipart",
                    store.abort_multipart(&key, &upload),
                )
                .await;
                if let Err(e) = aborted {
                    tracing::warn!(error = %e, "an unrecorded multipart upload could not be aborted");
                }
            });
        }
    }
}

impl S3Store {
    /// Opens `resume` where it was acknowledged: the tail object's bytes
    /// (if any) are streamed back into a new spool.
    pub async fn open_sink(self: &Arc<Self>, resume: &Resume) -> Result<S3Sink, StorageError> {
        let sha256 = resumable::restore(resume.hash_state.as_deref())?;
        let mut spool = Spool::new(resume.spool_dir.clone()).await?;
        let recorded_tail = (resume.tail_size > 0).then(|| {
            tail_key(
                resume.upload,
                resume.offset - resume.tail_size,
                resume.tail_size,
            )
        });
        if let Some(key) = &recorded_tail {
            let Some(file) = spool.file.take() else {
                return Err(StorageError::unavailable(anyhow::anyhow!("no spool file")));
            };
            let mut out = tokio::fs::File::from_std(file);
            let status = guarded(Some(&self.circuit), "get_object", async {
                self.bucket
                    .get_object_to_writer(key, &mut out)
                    .await
                    .map_err(super::classify)
            })
            .await?;
            tokio::io::AsyncWriteExt::flush(&mut out)
                .await
                .map_err(StorageError::unavailable)?;
            let file = out.into_std().await;
            let len = file.metadata().map_err(StorageError::unavailable)?.len();
            if status != 200 || len != resume.tail_size {
                return Err(StorageError::unavailable(anyhow::anyhow!(
                    "upload {}'s tail object is missing or of the wrong size",
                    resume.upload
                )));
            }
            spool.file = Some(file);
            spool.len = len;
        }
        Ok(S3Sink {
            store: self.clone(),
            upload: resume.upload,
            key: resume.key.clone(),
            content_type: resume.content_type.clone(),
            part_size: resume.part_size,
            spool_dir: resume.spool_dir.clone(),
            spool,
            stored_hash: resumable::save(&sha256),
            sha256: Some(sha256),
            in_flight: None,
            s3_upload: resume.s3_upload.clone(),
            started: None,
            parts: resume.parts,
            stored: resume.offset - resume.tail_size,
            new_parts: Vec::new(),
            acknowledged: resume.offset,
            recorded_tail,
            opened_at: resume.offset,
        })
    }
}

impl S3Sink {
    /// The size of part `n + 1`.
    fn part_target(&self, n: u32) -> u64 {
        match self.part_size {
            Some(p) => p,
            None => Ord::max(DEFERRED_PART_SIZE << Ord::min(n / 1000, 10), MIN_PART_SIZE),
        }
    }

    /// Parts begun: stored, plus the one in flight.
    fn parts_begun(&self) -> u32 {
        self.parts + u32::from(self.in_flight.is_some())
    }

    pub async fn write(&mut self, chunk: Chunk) -> Result<(), StorageError> {
        let mut pieces: Vec<Bytes> = chunk.to_vec();
        while !pieces.is_empty() {
            let room = self.part_target(self.parts_begun()) - self.spool.len;
            let mut batch = Vec::new();
            let mut taken = 0u64;
            while taken < room && !pieces.is_empty() {
                let mut piece = pieces.remove(0);
                if taken + piece.len() as u64 > room {
                    let rest = piece.split_off((room - taken) as usize);
                    pieces.insert(0, rest);
                }
                taken += piece.len() as u64;
                batch.push(piece);
            }
            self.append(batch).await?;
            if self.spool.len == self.part_target(self.parts_begun()) {
                self.seal().await?;
            }
        }
        Ok(())
    }

    async fn append(&mut self, batch: Vec<Bytes>) -> Result<(), StorageError> {
        let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
        let mut file = self.spool.file.take().ok_or_else(|| {
            StorageError::unavailable(anyhow::anyhow!("the spool failed earlier"))
        })?;
        self.spool.file =
            Some(blocking(move || write_all_vectored(&mut file, &batch).map(|()| file)).await?);
        self.spool.len += len;
        Ok(())
    }

    /// Waits for the part in flight, if any, and records it.
    async fn land(&mut self) -> Result<(), StorageError> {
        if let Some(upload) = self.in_flight.take() {
            let (sha256, part) = upload.await.map_err(StorageError::unavailable)??;
            self.stored_hash = resumable::save(&sha256);
            self.sha256 = Some(sha256);
            self.parts += 1;
            self.stored += part.size;
            self.new_parts.push(part);
        }
        Ok(())
    }

    /// The full spool becomes the next part, streamed while a new spool fills.
    async fn seal(&mut self) -> Result<(), StorageError> {
        self.land().await?;
        let number = self.parts + 1;
        if u64::from(number) > MAX_PARTS {
            return Err(StorageError::rejected(
                "upload_too_large",
                "the upload needs more than S3's 10,000 parts",
            ));
        }
        let upload = match &self.s3_upload {
            Some(u) => u.clone(),
            None => {
                let store = &self.store;
                let u = guarded(
                    Some(&store.circuit),
                    "create_multipart",
                    store.create_multipart(&self.key, &self.content_type),
                )
                .await?;
                self.s3_upload = Some(u.clone());
                self.started = Some(u.clone());
                u
            }
        };
        let full = std::mem::replace(&mut self.spool, Spool::new(self.spool_dir.clone()).await?);
        let sha256 = self.sha256.take().unwrap_or_default();
        let (store, key) = (self.store.clone(), self.key.clone());
        self.in_flight = Some(tokio::spawn(async move {
            let size = full.len;
            let (sha256, etag) = store
                .upload_part_file(&key, &upload, number, full.path.to_path_buf(), size, sha256)
                .await?;
            // The spool file goes once its part is stored.
            drop(full);
            Ok((
                sha256,
                StoredPart {
                    part_number: number,
                    size,
                    etag,
                },
            ))
        }));
        Ok(())
    }

    /// A multipart upload this sink started, to be recorded at once (so the
    /// janitor can abort it whatever happens next); once.
    pub fn take_started_upload(&mut self) -> Option<String> {
        self.started.take()
    }

    /// Parts stored since the last acknowledgement (a part in flight that
    /// has finished is landed first).
    pub async fn settled(&mut self) -> Result<Option<Durable>, StorageError> {
        if self.in_flight.as_ref().is_some_and(|u| u.is_finished()) {
            self.land().await?;
        }
        Ok((self.stored > self.acknowledged).then(|| self.durable(self.stored, 0)))
    }

    fn durable(&self, offset: u64, tail_size: u64) -> Durable {
        Durable {
            offset,
            hash_state: self.stored_hash.clone(),
            tail_size,
            parts: self.parts,
            new_parts: self.new_parts.clone(),
            s3_upload: self.s3_upload.clone(),
        }
    }

    /// Lands the part in flight and stores the rest as the tail object.
    pub async fn checkpoint(&mut self) -> Result<Durable, StorageError> {
        self.land().await?;
        let tail = self.spool.len;
        if tail > 0 {
            let key = tail_key(self.upload, self.stored, tail);
            self.store
                .put_tail_file(&key, self.spool.path.to_path_buf(), tail)
                .await?;
        }
        Ok(self.durable(self.stored + tail, tail))
    }

    /// `durable` is recorded: a tail it no longer names is deleted.
    pub async fn acknowledged(&mut self, durable: &Durable) {
        self.acknowledged = durable.offset;
        self.new_parts.clear();
        let now_recorded = (durable.tail_size > 0).then(|| {
            tail_key(
                self.upload,
                durable.offset - durable.tail_size,
                durable.tail_size,
            )
        });
        if now_recorded != self.recorded_tail
            && let Some(old) = std::mem::replace(&mut self.recorded_tail, now_recorded)
        {
            let store = &self.store;
            if let Err(e) = guarded(Some(&store.circuit), "delete", store.delete(&old)).await {
                tracing::warn!(error = %e, "a superseded tail object was not deleted");
            }
        }
    }

    /// Whether a part was stored or is on its way (then finishing joins
    /// parts; otherwise the spool is the whole object).
    pub fn has_parts(&self) -> bool {
        self.parts_begun() > 0
    }

    /// The rest becomes the last part and the parts the object (or, if no
    /// part was ever cut, the spool is the object, in one PUT).
    pub async fn finish(mut self, prior: Vec<StoredPart>) -> Result<String, StorageError> {
        self.land().await?;
        let store = self.store.clone();
        let sha256 = self.sha256.take().unwrap_or_default();
        let digest = if self.parts == 0 {
            let sha256 = store
                .put_object_file(
                    &self.key,
                    &self.content_type,
                    self.spool.path.to_path_buf(),
                    self.spool.len,
                    sha256,
                )
                .await?;
            hex::encode(sha256.finalize())
        } else {
            let mut sha256 = sha256;
            if self.spool.len > 0 {
                let number = self.parts + 1;
                let upload = self.s3_upload.clone().unwrap_or_default();
                let (hashed, etag) = store
                    .upload_part_file(
                        &self.key,
                        &upload,
                        number,
                        self.spool.path.to_path_buf(),
                        self.spool.len,
                        sha256,
                    )
                    .await?;
                sha256 = hashed;
                self.parts = number;
                self.new_parts.push(StoredPart {
                    part_number: number,
                    size: self.spool.len,
                    etag,
                });
            }
            let mut parts: Vec<StoredPart> = prior;
            for p in &self.new_parts {
                parts.retain(|q| q.part_number != p.part_number);
                parts.push(p.clone());
            }
            parts.retain(|p| p.part_number <= self.parts);
            parts.sort_by_key(|p| p.part_number);
            let upload = self.s3_upload.clone().unwrap_or_default();
            guarded(
                Some(&store.circuit),
                "complete_multipart",
                store.complete_multipart(&self.key, &upload, &parts),
            )
            .await?;
            hex::encode(sha256.finalize())
        };
        if self.opened_at > 0 {
            // Whatever tail objects an earlier request left.
            store.delete_prefix(&upload_prefix(self.upload)).await;
        }
        Ok(digest)
    }
}
