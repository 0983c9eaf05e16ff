//! Object storage: one interface, two real backends, chosen at start-up.
//!
//! - [`LocalStore`] keeps objects under the data dir and serves its own
//!   signed URLs through the server; after each upload it publishes the same
//!   object-created event MinIO would.
//! - [`S3Store`] talks to S3, MinIO or SeaweedFS (path-style) with SigV4
//!   presigned URLs.
//!
//! Every call is counted in `stowage_storage_requests_total{op,result}` and
//! timed in `stowage_storage_request_duration_seconds{op}`.

mod local;
mod s3;
pub mod signing;
pub mod sink;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub use local::{
    GrantError, LocalStore, PutError, Rotation, StoredObject, private_dir, rotate_keys,
};
pub use s3::{S3Config, S3Store, Sse, upload_prefix};
pub use sink::{Chunk, Durable, Resume, Stand, UploadSink};

use crate::metrics::{STORAGE_REQUEST_DURATION_SECONDS, STORAGE_REQUESTS_TOTAL};

/// What a client needs to upload or download without the server in the way.
#[derive(Debug, Clone)]
pub struct PresignedRequest {
    pub method: &'static str,
    pub url: String,
    /// Headers the client must send as given (they are part of the signature).
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// What the store knows about a stored object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    /// Lower-case hex, when the store computed it while writing.
    pub sha256: Option<String>,
}

/// What went wrong with a storage call, by class: what the caller asked for
/// is missing, conflicts with what is stored, or was refused as malformed
/// (each the client's to mend, so each maps to a 4xx and leaves the circuit
/// breaker alone), or the store itself is failing (503, and counted toward
/// opening the circuit).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No such object, part or upload.
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    /// The store holds something that forbids the call: the object exists
    /// already, a precondition failed.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The store refused the request itself (an unsafe key, parts too small).
    #[error("{detail}")]
    Rejected { code: &'static str, detail: String },
    #[error("the object store is unavailable: {0:#}")]
    Unavailable(#[source] anyhow::Error),
    /// Recent calls failed; this one was not tried.
    #[error(transparent)]
    CircuitOpen(#[from] crate::circuit::Open),
}

impl StorageError {
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(e.into())
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn rejected(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Rejected {
            code,
            detail: detail.into(),
        }
    }

    /// Whether the store itself failed (and the circuit should hear of it).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::CircuitOpen(_))
    }
}

/// A part of a multipart upload, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub part_number: u32,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
}

/// An object found by listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub last_modified: DateTime<Utc>,
}

/// A batch delete's outcome: the keys that could not be deleted.
#[derive(Debug, Default)]
pub struct DeleteReport {
    pub failed: Vec<String>,
}

pub enum Storage {
    Local(Arc<LocalStore>),
    S3(Arc<S3Store>),
}

impl Storage {
    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Local(_) => "local",
            Storage::S3(_) => "s3",
        }
    }

    /// A URL that accepts one PUT of exactly `size` bytes at `key` until `ttl` runs out.
    pub async fn presign_put(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        self.call("presign_put", async {
            match self {
                Storage::Local(s) => Ok(s.presign_put(key, size, content_type, ttl)),
                Storage::S3(s) => s.presign_put(key, size, content_type, ttl).await,
            }
        })
        .await
    }

    /// A URL that serves `key` (with `Range`) until `ttl` runs out, presented
    /// with this `Content-Disposition` and content type.
    pub async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_disposition: &str,
        content_type: &str,
    ) -> Result<(String, DateTime<Utc>), StorageError> {
        self.call("presign_get", async {
            match self {
                Storage::Local(s) => Ok(s.presign_get(key, ttl, content_disposition, content_type)),
                Storage::S3(s) => {
                    s.presign_get(key, ttl, content_disposition, content_type)
                        .await
                }
            }
        })
        .await
    }

    /// The object's metadata, or `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        self.call("head", async {
            match self {
                Storage::Local(s) => s.head(key).await,
                Storage::S3(s) => s.head(key).await,
            }
        })
        .await
    }

    /// The SHA-256 of the stored bytes: what the store recorded while
    /// writing, or computed by streaming the object.
    pub async fn sha256(&self, key: &str) -> Result<Option<String>, StorageError> {
        self.call("sha256", async {
            match self {
                Storage::Local(s) => s.sha256(key).await,
                Storage::S3(s) => s.sha256(key).await,
            }
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.call("delete", async {
            match self {
                Storage::Local(s) => s.delete(key).await,
                Storage::S3(s) => s.delete(key).await,
            }
        })
        .await
    }

    /// Deletes many objects (S3: DeleteObjects, 1,000 keys a request).
    pub async fn delete_many(&self, keys: &[String]) -> Result<DeleteReport, StorageError> {
        self.call("delete_many", async {
            match self {
                Storage::Local(s) => s.delete_many(keys).await,
                Storage::S3(s) => s.delete_many(keys).await,
            }
        })
        .await
    }

    /// Starts a multipart upload; returns the store's upload id.
    pub async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        self.call("create_multipart", async {
            match self {
                Storage::Local(s) => s.create_multipart(key, content_type).await,
                Storage::S3(s) => s.create_multipart(key, content_type).await,
            }
        })
        .await
    }

    /// A URL that accepts one PUT of exactly `size` bytes as part `part`.
    pub async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        size: u64,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        self.call("presign_part", async {
            match self {
                Storage::Local(s) => Ok(s.presign_part(key, upload_id, part, size, ttl)),
                Storage::S3(s) => s.presign_part(key, upload_id, part, size, ttl).await,
            }
        })
        .await
    }

    /// The parts stored so far, by number; `None` when there is no such upload.
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<StoredPart>>, StorageError> {
        self.call("list_parts", async {
            match self {
                Storage::Local(s) => s.list_parts(upload_id).await,
                Storage::S3(s) => s.list_parts(key, upload_id).await,
            }
        })
        .await
    }

    /// Joins the parts, in order, into the object at `key`.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<(), StorageError> {
        self.call("complete_multipart", async {
            match self {
                Storage::Local(s) => s.complete_multipart(key, upload_id, parts).await,
                Storage::S3(s) => s.complete_multipart(key, upload_id, parts).await,
            }
        })
        .await
    }

    /// Drops a multipart upload and its parts; a missing one is fine.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.call("abort_multipart", async {
            match self {
                Storage::Local(s) => s.abort_multipart(upload_id).await,
                Storage::S3(s) => s.abort_multipart(key, upload_id).await,
            }
        })
        .await
    }

    /// One page (up to 1,000) of the objects under `prefix`, in key order,
    /// after `token` (the previous page's `next`).
    pub async fn list_page(
        &self,
        prefix: &str,
        token: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StorageError> {
        self.call("list", async {
            match self {
                Storage::Local(s) => s.list_page(prefix, token).await,
                Storage::S3(s) => s.list_page(prefix, token).await,
            }
        })
        .await
    }

    /// A sink for the bytes of the resumable upload `resume` describes,
    /// open at its acknowledged offset.
    pub async fn open_sink(&self, resume: &Resume) -> Result<UploadSink, StorageError> {
        Ok(match self {
            Storage::Local(s) => UploadSink::Local(s.open_sink(resume).await?),
            Storage::S3(s) => UploadSink::S3(Box::new(s.open_sink(resume).await?)),
        })
    }

    /// Frees what an unfinished resumable upload holds: its multipart
    /// upload (`s3_upload`, also a multipart upload's own), its tail objects
    /// (when it has `received` any bytes) or staging file.
    pub async fn release_upload(
        &self,
        upload: uuid::Uuid,
        key: &str,
        s3_upload: Option<&str>,
        received: u64,
    ) -> Result<(), StorageError> {
        if let Some(s3_upload) = s3_upload {
            self.abort_multipart(key, s3_upload).await?;
        }
        match self {
            Storage::Local(local) => local.discard_staged(upload).await,
            Storage::S3(s3) if received > 0 => {
                s3.delete_prefix(&upload_prefix(upload)).await;
                Ok(())
            }
            Storage::S3(_) => Ok(()),
        }
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.call("ping", async {
            match self {
                Storage::Local(s) => s.ping().await,
                Storage::S3(s) => s.ping().await,
            }
        })
        .await
    }
}

impl Storage {
    /// Every call to the store: through S3's circuit breaker, counted and timed.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        // Presigning is arithmetic, not a call: it neither waits for nor
        // vouches for the store.
        let circuit = match self {
            Storage::S3(s) if !op.starts_with("presign") => Some(&s.circuit),
            _ => None,
        };
        guarded(circuit, op, f).await
    }
}

/// One call to the store: through `circuit` (S3's), counted and timed.
/// Only an outage counts against the circuit.
pub(crate) async fn guarded<T>(
    circuit: Option<&crate::circuit::Circuit>,
    op: &'static str,
    f: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    if let Some(c) = circuit {
        c.allow()?;
    }
    let result = timed(op, f).await;
    if let Some(c) = circuit {
        c.record(!matches!(&result, Err(e) if e.is_outage()));
    }
    result
}

async fn timed<T>(
    op: &'static str,
    f: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    use tracing::Instrument;
    let started = Instant::now();
    // A span for traces (debug: made only when traces are exported).
    let span = tracing::debug_span!(
        "storage",
        otel.name = %format_args!("storage {op}"),
        otel.kind = "client",
        storage.operation = op,
    );
    let result = f.instrument(span).await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(STORAGE_REQUESTS_TOTAL, "op" => op, "result" => outcome).increment(1);
    metrics::histogram!(STORAGE_REQUEST_DURATION_SECONDS, "op" => op)
        .record(started.elapsed().as_secs_f64());
    result
}

/// Seconds until expiry for a presigned URL, within what SigV4 allows.
fn expiry_secs(ttl: Duration) -> u32 {
    ttl.as_secs().clamp(1, 604_800) as u32
}
