//! Upload sinks: where the bytes of a resumable upload (tus) go, one kind
//! per backend, so that the protocol above never asks which store it talks
//! to. A sink is opened at the upload's acknowledged offset with the hash
//! state saved there, takes the request's body piece by piece, says what may
//! be acknowledged, and at the last byte becomes the object.
//!
//! Memory stays flat whatever the upload's length: the local sink appends
//! to a staging file; the S3 sink spools the part it is filling to a temp
//! file and streams it to S3 while it fills.

use std::io::{IoSlice, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

pub use super::local::LocalSink;
pub use super::s3::S3Sink;
use super::{StorageError, StoredPart};

/// A piece of a request body, as the chunks came off the socket (never
/// copied into one buffer).
pub type Chunk = Arc<[Bytes]>;

/// Where an upload stands, as its session row records it.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The upload (names its staging file, spool and tail object).
    pub upload: Uuid,
    /// The object the upload becomes.
    pub key: String,
    pub content_type: String,
    /// Bytes acknowledged.
    pub offset: u64,
    /// The saved SHA-256 state of the bytes the store holds durably:
    /// `offset` of them, less `tail_size` on S3.
    pub hash_state: Option<String>,
    /// S3: bytes after the last stored part, kept in the tail object.
    pub tail_size: u64,
    /// S3: parts stored.
    pub parts: u32,
    /// The upload's length, `None` while deferred (S3 sizes its parts by it).
    pub length: Option<u64>,
    /// S3: the multipart upload, once started.
    pub s3_upload: Option<String>,
    /// Where spool files go (the data dir's).
    pub spool_dir: PathBuf,
}

/// What may be acknowledged: every byte up to `offset` is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable {
    pub offset: u64,
    /// The saved SHA-256 state to record with the offset.
    pub hash_state: String,
    pub tail_size: u64,
    pub parts: u32,
    /// Parts stored since the last acknowledgement, to record.
    pub new_parts: Vec<StoredPart>,
    pub s3_upload: Option<String>,
}

/// Where a sink stands once its last [`Durable`] was acknowledged: what the
/// upload's row must say for the sink to go on with the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stand {
    pub offset: u64,
    pub tail_size: u64,
    pub parts: u32,
    pub s3_upload: Option<String>,
}

/// A resumable upload's sink, for the store in use.
pub enum UploadSink {
    Local(LocalSink),
    S3(Box<S3Sink>),
}

impl UploadSink {
    /// Takes a piece of the body (in order).
    pub async fn write(&mut self, chunk: Chunk) -> Result<(), StorageError> {
        match self {
            UploadSink::Local(s) => s.write(chunk).await,
            UploadSink::S3(s) => s.write(chunk).await,
        }
    }

    /// This request's body ends at `end` (from its Content-Length), and the
    /// upload's length is `length` (a deferred one may have become known
    /// since the sink opened), so that S3 can size the part it streams
    /// while the bytes arrive.
    pub fn expect(&mut self, end: Option<u64>, length: Option<u64>) {
        if let UploadSink::S3(s) = self {
            s.expect(end, length);
        }
    }

    /// What is durable now with little work (local: every byte written,
    /// once its unfinished segment is recorded, which is done only when the
    /// caller will record it now, `due`; S3: the parts stored so far), if
    /// it moved since the last [`UploadSink::acknowledged`].
    pub async fn settled(&mut self, due: bool) -> Result<Option<Durable>, StorageError> {
        match self {
            UploadSink::Local(s) => s.settled(due).await,
            UploadSink::S3(s) => s.settled().await,
        }
    }

    /// A multipart upload the sink just started: record it at once, so the
    /// janitor can abort it whatever happens next.
    pub fn take_started_upload(&mut self) -> Option<String> {
        match self {
            UploadSink::Local(_) => None,
            UploadSink::S3(s) => s.take_started_upload(),
        }
    }

    /// Makes every byte taken so far durable (S3: waits for the part in
    /// flight and stores the bytes short of a part as the tail).
    pub async fn checkpoint(&mut self) -> Result<Durable, StorageError> {
        match self {
            UploadSink::Local(s) => s.checkpoint().await,
            UploadSink::S3(s) => s.checkpoint().await,
        }
    }

    /// `durable` was recorded: later [`Durable`]s start from it (and what
    /// it superseded in the store goes).
    pub async fn acknowledged(&mut self, durable: &Durable) {
        match self {
            UploadSink::Local(s) => s.acknowledged(durable),
            UploadSink::S3(s) => s.acknowledged(durable).await,
        }
    }

    /// The last byte is in: the bytes become the object at the upload's
    /// key. `prior_parts` are the parts recorded before this request (S3).
    /// Returns the object's SHA-256 (hex).
    pub async fn finish(self, prior_parts: Vec<StoredPart>) -> Result<String, StorageError> {
        match self {
            UploadSink::Local(s) => s.finish().await,
            UploadSink::S3(s) => (*s).finish(prior_parts).await,
        }
    }

    /// Where the sink stands (see [`Stand`]).
    pub fn stand(&self) -> Stand {
        match self {
            UploadSink::Local(s) => s.stand(),
            UploadSink::S3(s) => s.stand(),
        }
    }

    /// Whether the files the sink holds open still match `stand` (nobody
    /// changed them underneath it). A cheap `stat`.
    pub fn intact(&self, stand: &Stand) -> bool {
        match self {
            UploadSink::Local(s) => s.intact(stand),
            UploadSink::S3(s) => s.intact(),
        }
    }

    /// Whether finishing needs the parts recorded before this request.
    pub fn needs_prior_parts(&self) -> bool {
        matches!(self, UploadSink::S3(s) if s.has_parts())
    }
}

/// The SHA-256 of a whole upload, saved with each acknowledged offset so
/// that hashing resumes on any instance after any restart.
pub mod resumable {
    use sha2::Sha256;
    use sha2::digest::common::hazmat::{SerializableState, SerializedState};

    use crate::storage::StorageError;

    pub fn save(hasher: &Sha256) -> String {
        hex::encode(hasher.serialize())
    }

    pub fn restore(saved: Option<&str>) -> Result<Sha256, StorageError> {
        let Some(saved) = saved else {
            return Ok(<Sha256 as sha2::Digest>::new());
        };
        let corrupt = || {
            StorageError::unavailable(anyhow::anyhow!(
                "a saved SHA-256 state does not deserialize"
            ))
        };
        let bytes = hex::decode(saved).map_err(|_| corrupt())?;
        let state = SerializedState::<Sha256>::try_from(bytes.as_slice()).map_err(|_| corrupt())?;
        Sha256::deserialize(&state).map_err(|_| corrupt())
    }
}

/// One `writev` per piece of the body where the kernel takes it all.
pub(crate) fn write_all_vectored(file: &mut std::fs::File, data: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = data.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs blocking work (file writes, hashing) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(StorageError::unavailable)?
        .map_err(StorageError::unavailable)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::resumable;

    #[test]
    fn hashing_resumes_from_a_saved_state() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut first = resumable::restore(None).unwrap();
        first.update(&data[..4_321]);
        let mut second = resumable::restore(Some(&resumable::save(&first))).unwrap();
        second.update(&data[4_321..]);
        assert_eq!(second.finalize(), Sha256::digest(&data));
        assert!(resumable::restore(Some("00")).is_err());
    }
}
