//! The S3 upload sink. The bytes after the stored parts are spooled to a
//! temp file (never held in memory) and hashed as they are written. A part
//! is planned as soon as its size is known (the request says how many
//! bytes it brings) and streamed to S3 while its bytes arrive, so a PATCH
//! is stored about when its last byte is in. At most two parts are on their
//! way at once (one full, one filling), so memory stays at a few MiB per
//! upload whatever its length. Bytes short of a part at the end of a
//! request wait in a tail object, so any instance can go on.
//!
//! Parts are as large as the request allows (a whole PATCH when it fits),
//! never smaller than S3's 5 MiB but for the last, and grow by
//! [`part_target`] so that 10,000 of them reach 5 TiB whatever the upload's
//! length: a part smaller than the schedule is cut only while the parts
//! left can still carry the rest.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::S3Store;
use super::schedule::{MAX_OBJECT, capacity_from, part_target};
use crate::storage::sink::{
    Chunk, Durable, Resume, Stand, blocking, resumable, write_all_vectored,
};
use crate::storage::{StorageError, StoredPart, guarded};
use crate::uploads::{MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE};

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

/// Bytes after the stored (and sealed) parts, in a temp file.
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

/// The part the spool streams into while it fills.
struct Streaming {
    number: u32,
    size: u64,
    filled: watch::Sender<u64>,
    task: JoinHandle<Result<String, StorageError>>,
}

/// A full part on its way; its spool goes once it is stored.
struct Sealed {
    part: StoredPart,
    /// The saved hash state at its last byte.
    hash: String,
    task: JoinHandle<Result<String, StorageError>>,
    spool: Spool,
}

pub struct S3Sink {
    store: Arc<S3Store>,
    upload: Uuid,
    key: String,
    content_type: String,
    spool_dir: PathBuf,
    /// The upload's length, or the most it may reach.
    limit: u64,
    /// Where this request's body ends, when it said so.
    expect: Option<u64>,
    /// Parts stored, and the bytes in them.
    parts: u32,
    stored: u64,
    /// The saved hash state at `stored`.
    stored_hash: String,
    /// The hash of every byte taken; `None` only while a write holds it.
    sha256: Option<Sha256>,
    sealed: Option<Sealed>,
    spool: Spool,
    streaming: Option<Streaming>,
    s3_upload: Option<String>,
    /// A multipart upload started by this sink and not yet handed out.
    started: Option<String>,
    /// Parts stored since the last acknowledgement.
    new_parts: Vec<StoredPart>,
    acknowledged: u64,
    /// The tail object the database records as of the last acknowledgement.
    recorded_tail: Option<String>,
    /// Bytes acknowledged when the sink opened (a tail may have been stored).
    opened_at: u64,
}

impl Drop for S3Sink {
    /// Parts on their way stop; a multipart upload this sink started but
    /// nobody recorded (the request ended before it could be) is aborted,
    /// so none is left behind.
    fn drop(&mut self) {
        if let Some(s) = self.streaming.take() {
            s.task.abort();
        }
        if let Some(s) = self.sealed.take() {
            s.task.abort();
        }
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
            spool_dir: resume.spool_dir.clone(),
            limit: resume.length.unwrap_or(MAX_OBJECT),
            expect: None,
            parts: resume.parts,
            stored: resume.offset - resume.tail_size,
            // Right while no tail is recorded; a tail's state is replaced by
            // the first part that lands.
            stored_hash: resumable::save(&sha256),
            sha256: Some(sha256),
            sealed: None,
            spool,
            streaming: None,
            s3_upload: resume.s3_upload.clone(),
            started: None,
            new_parts: Vec::new(),
            acknowledged: resume.offset,
            recorded_tail,
            opened_at: resume.offset,
        })
    }
}

impl S3Sink {
    /// Parts begun: stored, plus the sealed one.
    fn parts_begun(&self) -> u32 {
        self.parts + u32::from(self.sealed.is_some())
    }

    /// Where the spool's first byte sits in the upload.
    fn spool_start(&self) -> u64 {
        self.stored + self.sealed.as_ref().map_or(0, |s| s.part.size)
    }

    /// This request's body ends at `end` (its Content-Length said so); the
    /// upload's length, once known, bounds the parts.
    pub fn expect(&mut self, end: Option<u64>, length: Option<u64>) {
        self.expect = end;
        if let Some(length) = length {
            self.limit = length;
        }
    }

    /// Whether a part of `size` bytes as part `number` leaves a rest that
    /// the parts after it can still carry.
    fn may_cut(&self, number: u32, size: u64) -> bool {
        let end = self.spool_start() + size;
        size >= part_target(number - 1) || self.limit.saturating_sub(end) <= capacity_from(number)
    }

    /// The size of the part the spool becomes, once it is known: the whole
    /// body of this request where it makes a part, else the schedule's size.
    /// `None`: the spool stays a tail (or waits to learn more).
    fn plan(&self) -> Option<u64> {
        let number = self.parts_begun() + 1;
        let start = self.spool_start();
        let left = self.limit.saturating_sub(start);
        let target = Ord::min(part_target(number - 1), left);
        let Some(end) = self.expect else {
            return (target >= MIN_PART_SIZE).then_some(target);
        };
        let coming = end.saturating_sub(start);
        let last = start + coming == self.limit && self.parts_begun() > 0;
        if coming > target {
            let rest = coming - target;
            // A rest too small to be a part of its own rides along.
            return Some(if rest < MIN_PART_SIZE && coming <= MAX_PART_SIZE {
                coming
            } else {
                target
            });
        }
        ((coming >= MIN_PART_SIZE || last) && coming > 0 && self.may_cut(number, coming))
            .then_some(coming)
    }

    /// The multipart upload, started on the first part.
    async fn multipart(&mut self) -> Result<String, StorageError> {
        if let Some(u) = &self.s3_upload {
            return Ok(u.clone());
        }
        let store = &self.store;
        let u = guarded(
            Some(&store.circuit),
            "create_multipart",
            store.create_multipart(&self.key, &self.content_type),
        )
        .await?;
        self.s3_upload = Some(u.clone());
        self.started = Some(u.clone());
        Ok(u)
    }

    /// Starts streaming the spool as part `number` of `size` bytes.
    async fn stream(&mut self, size: u64) -> Result<(), StorageError> {
        let number = self.parts_begun() + 1;
        if u64::from(number) > MAX_PARTS {
            return Err(StorageError::rejected(
                "upload_too_large",
                "the upload needs more than S3's 10,000 parts",
            ));
        }
        let upload = self.multipart().await?;
        let (filled, follower) = watch::channel(self.spool.len);
        let (store, key) = (self.store.clone(), self.key.clone());
        let path = self.spool.path.to_path_buf();
        let task = tokio::spawn(async move {
            store
                .upload_part_spool(&key, &upload, number, path, size, Some(follower))
                .await
        });
        self.streaming = Some(Streaming {
            number,
            size,
            filled,
            task,
        });
        Ok(())
    }

    pub async fn write(&mut self, chunk: Chunk) -> Result<(), StorageError> {
        let mut pieces: Vec<Bytes> = chunk.to_vec();
        pieces.reverse();
        while !pieces.is_empty() {
            if self.streaming.is_none()
                && let Some(size) = self.plan()
            {
                self.stream(size).await?;
            }
            let cap = match &self.streaming {
                Some(s) => s.size,
                None => part_target(self.parts_begun()),
            };
            let room = cap - self.spool.len;
            let mut batch = Vec::new();
            let mut taken = 0u64;
            while taken < room
                && let Some(mut piece) = pieces.pop()
            {
                if taken + piece.len() as u64 > room {
                    pieces.push(piece.split_off((room - taken) as usize));
                }
                taken += piece.len() as u64;
                batch.push(piece);
            }
            self.append(batch).await?;
            if self.spool.len == cap {
                self.seal().await?;
            }
        }
        Ok(())
    }

    /// Writes and hashes a batch into the spool.
    async fn append(&mut self, batch: Vec<Bytes>) -> Result<(), StorageError> {
        let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
        let failed = || StorageError::unavailable(anyhow::anyhow!("the spool failed earlier"));
        let mut file = self.spool.file.take().ok_or_else(failed)?;
        let mut sha256 = self.sha256.take().ok_or_else(failed)?;
        let (file, sha256) = blocking(move || {
            write_all_vectored(&mut file, &batch)?;
            for piece in &batch {
                sha256.update(piece);
            }
            Ok((file, sha256))
        })
        .await?;
        self.spool.file = Some(file);
        self.sha256 = Some(sha256);
        self.spool.len += len;
        if let Some(s) = &self.streaming {
            s.filled.send_replace(self.spool.len);
        }
        Ok(())
    }

    /// Waits for the sealed part, if any, and records it. A part that
    /// failed while it followed its filling spool (a client pausing longer
    /// than the store waits for a request's body, say) is sent once more
    /// from the full spool.
    async fn land(&mut self) -> Result<(), StorageError> {
        if let Some(sealed) = self.sealed.take() {
            let streamed = sealed
                .task
                .await
                .map_err(StorageError::unavailable)
                .and_then(|r| r);
            let etag = match streamed {
                Ok(etag) => etag,
                Err(e @ StorageError::CircuitOpen(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(part = sealed.part.part_number, error = %e, "a streamed part failed; sending it again from its spool");
                    let upload = self.multipart().await?;
                    self.store
                        .upload_part_spool(
                            &self.key,
                            &upload,
                            sealed.part.part_number,
                            sealed.spool.path.to_path_buf(),
                            sealed.part.size,
                            None,
                        )
                        .await?
                }
            };
            self.stored_hash = sealed.hash;
            self.parts = sealed.part.part_number;
            self.stored += sealed.part.size;
            self.new_parts.push(StoredPart {
                etag,
                ..sealed.part
            });
        }
        Ok(())
    }

    /// The full spool is a part: it finishes its way to S3 while a new
    /// spool fills (after the part before it landed).
    async fn seal(&mut self) -> Result<(), StorageError> {
        self.land().await?;
        let streaming = match self.streaming.take() {
            Some(s) if s.size == self.spool.len => s,
            other => {
                if let Some(s) = other {
                    s.task.abort();
                }
                self.stream(self.spool.len).await?;
                self.streaming.take().ok_or_else(|| {
                    StorageError::unavailable(anyhow::anyhow!("no part was started"))
                })?
            }
        };
        let hash = resumable::save(self.sha256.as_ref().ok_or_else(|| {
            StorageError::unavailable(anyhow::anyhow!("the spool failed earlier"))
        })?);
        let spool = std::mem::replace(&mut self.spool, Spool::new(self.spool_dir.clone()).await?);
        self.sealed = Some(Sealed {
            part: StoredPart {
                part_number: streaming.number,
                size: streaming.size,
                etag: String::new(),
            },
            hash,
            task: streaming.task,
            spool,
        });
        Ok(())
    }

    /// A multipart upload this sink started, to be recorded at once (so the
    /// janitor can abort it whatever happens next); once.
    pub fn take_started_upload(&mut self) -> Option<String> {
        self.started.take()
    }

    /// Parts stored since the last acknowledgement (a sealed part that has
    /// finished is landed first).
    pub async fn settled(&mut self) -> Result<Option<Durable>, StorageError> {
        if self.sealed.as_ref().is_some_and(|s| s.task.is_finished()) {
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

    /// The request's bytes are all in: a part still filling stops (its
    /// bytes are in the spool), the sealed part lands, and the spool becomes
    /// a part if it may, else the tail object.
    pub async fn checkpoint(&mut self) -> Result<Durable, StorageError> {
        if let Some(s) = self.streaming.take() {
            s.task.abort();
        }
        self.land().await?;
        let tail = self.spool.len;
        if tail >= MIN_PART_SIZE && self.may_cut(self.parts + 1, tail) {
            self.seal().await?;
            self.land().await?;
            return Ok(self.durable(self.stored, 0));
        }
        if tail > 0 {
            let key = tail_key(self.upload, self.stored, tail);
            self.store
                .put_tail_file(&key, self.spool.path.to_path_buf(), tail)
                .await?;
        }
        let mut durable = self.durable(self.stored + tail, tail);
        durable.hash_state = resumable::save(self.sha256.as_ref().ok_or_else(|| {
            StorageError::unavailable(anyhow::anyhow!("the spool failed earlier"))
        })?);
        Ok(durable)
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

    pub fn stand(&self) -> Stand {
        Stand {
            offset: self.acknowledged,
            tail_size: self.acknowledged - self.stored,
            parts: self.parts,
            s3_upload: self.s3_upload.clone(),
        }
    }

    /// The spool is still there, holding exactly the bytes after the
    /// stored parts.
    pub fn intact(&self) -> bool {
        self.sealed.is_none()
            && self.streaming.is_none()
            && std::fs::metadata(&self.spool.path).is_ok_and(|m| m.len() == self.spool.len)
    }

    /// Whether a part was stored or is on its way (then finishing joins
    /// parts; otherwise the spool is the whole object).
    pub fn has_parts(&self) -> bool {
        self.parts_begun() > 0 || self.streaming.is_some()
    }

    /// The rest becomes the last part and the parts the object (or, if no
    /// part was ever cut, the spool is the object, in one PUT).
    pub async fn finish(mut self, prior: Vec<StoredPart>) -> Result<String, StorageError> {
        let store = self.store.clone();
        if self.parts_begun() == 0 && self.streaming.is_none() {
            store
                .put_object_file(
                    &self.key,
                    &self.content_type,
                    self.spool.path.to_path_buf(),
                    self.spool.len,
                )
                .await?;
        } else {
            if self.spool.len > 0 {
                self.seal().await?;
            }
            self.land().await?;
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
            // Completed: nothing for the drop to abort.
            self.started = None;
        }
        if self.opened_at > 0 || self.recorded_tail.is_some() {
            // Whatever tail objects an earlier request left.
            store.delete_prefix(&upload_prefix(self.upload)).await;
        }
        let sha256 = self.sha256.take().ok_or_else(|| {
            StorageError::unavailable(anyhow::anyhow!("the spool failed earlier"))
        })?;
        Ok(hex::encode(sha256.finalize()))
    }
}
