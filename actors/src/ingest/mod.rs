//! Ingest: object-store notifications become file metadata.
//!
//! [`apply`] is the logic, over plain values: it decides each event's
//! outcome and makes the matching pending files available in one
//! transaction. [`IngestActor`] moves batches from an [`IngestSource`]
//! through it and settles each message only after the commit.

mod actor;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use stowage_entity::files::{self, FileStatus};
use stowage_entity::upload_sessions::UploadKind;
use uuid::Uuid;

pub use actor::{IngestActor, Stop};

use crate::domain::ObjectKey;
use crate::events::EventBus;
use crate::events::minio::{ObjectEvent, ObjectEventKind};
use crate::files::{FileError, Landed, mark_available, verify_object};
use crate::metrics::{INGEST_EVENTS_TOTAL, INGEST_LAG_SECONDS};
use crate::storage::{ObjectMeta, Storage};
use crate::trace::TraceParent;

/// What became of one event: the `result` label of `stowage_ingest_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A pending file became available.
    Available,
    /// The file was already available (a redelivery or a duplicate).
    Duplicate,
    /// No file of ours has this key (or it is in another bucket).
    UnknownKey,
    SizeMismatch,
    ChecksumMismatch,
    /// An object was removed from the store.
    Removed,
    /// A kind of event ingest does not act on.
    Ignored,
    /// Not a notification at all.
    Malformed,
    /// Failed too often; dropped.
    Poison,
    /// A large object whose SHA-256 is checked beside the batch, not in it.
    Verifying,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Available => "available",
            Outcome::Duplicate => "duplicate",
            Outcome::UnknownKey => "unknown_key",
            Outcome::SizeMismatch => "size_mismatch",
            Outcome::ChecksumMismatch => "checksum_mismatch",
            Outcome::Removed => "removed",
            Outcome::Ignored => "ignored",
            Outcome::Malformed => "malformed",
            Outcome::Poison => "poison",
            Outcome::Verifying => "verifying",
        }
    }

    pub fn count(self) {
        metrics::counter!(INGEST_EVENTS_TOTAL, "result" => self.label()).increment(1);
    }
}

/// What ingest works with.
#[derive(Clone)]
pub struct Ingest {
    pub db: DatabaseConnection,
    pub storage: Arc<Storage>,
    pub bus: EventBus,
    /// Events naming another bucket are not ours.
    pub bucket: String,
    /// Checks of large objects running beside the batches (at most this many).
    pub verifying: Arc<tokio::sync::Semaphore>,
}

/// A declared SHA-256 of an object larger than this is checked beside the
/// batch (streaming the object), so a few large files never hold up the
/// small ones behind them nor push a batch past JetStream's ack wait.
pub const VERIFY_INLINE_MAX: u64 = 16 << 20;
/// Large objects checked at once.
pub const VERIFY_CONCURRENCY: usize = 2;

/// How many messages one batch takes, and how long to wait for the first.
pub const BATCH_MAX: usize = 1000;
pub const BATCH_WAIT: Duration = Duration::from_millis(500);

impl Ingest {
    /// Applies a batch of events: one query to find the files, one
    /// transaction to change them, then one domain event per new file.
    pub async fn apply(&self, events: &[ObjectEvent]) -> Result<Vec<Outcome>, FileError> {
        let keys: Vec<Option<ObjectKey>> = events
            .iter()
            .map(|e| {
                (e.kind == ObjectEventKind::Created && e.bucket == self.bucket)
                    .then(|| ObjectKey::parse(&e.key))
                    .flatten()
            })
            .collect();
        let ids: Vec<Uuid> = keys.iter().flatten().map(ObjectKey::file_id).collect();
        let mut found: HashMap<Uuid, files::Model> = HashMap::new();
        for chunk in ids.chunks(1000) {
            for f in files::Entity::find()
                .filter(files::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?
            {
                found.insert(f.id, f);
            }
        }

        let mut outcomes = Vec::with_capacity(events.len());
        let mut ready: Vec<Landed> = Vec::new();
        let mut seen = HashSet::new();
        for (event, key) in events.iter().zip(&keys) {
            let outcome = match (event.kind, key) {
                (ObjectEventKind::Removed, _) => Outcome::Removed,
                (ObjectEventKind::Other, _) => Outcome::Ignored,
                (ObjectEventKind::Created, None) => Outcome::UnknownKey,
                (ObjectEventKind::Created, Some(key)) => match found.get(&key.file_id()) {
                    Some(f) if f.owner_id == key.owner_id() && f.object_key == event.key => {
                        if f.status == FileStatus::Available || !seen.insert(f.id) {
                            Outcome::Duplicate
                        } else if f.deleted_at.is_some() {
                            Outcome::Ignored
                        } else {
                            self.check(f, event, &mut ready).await?
                        }
                    }
                    _ => Outcome::UnknownKey,
                },
            };
            outcomes.push(outcome);
        }

        let changed = mark_available(&self.db, UploadKind::Direct, &ready).await?;
        let committed = Utc::now();
        for event in events {
            if let Some(t) = event.event_time {
                let lag = (committed - t).to_std().unwrap_or_default();
                metrics::histogram!(INGEST_LAG_SECONDS).record(lag.as_secs_f64());
            }
        }
        if !changed.is_empty() {
            self.bus.outbox_written();
        }
        Ok(outcomes)
    }

    /// Checks a large object in a task of its own (a few at a time), then
    /// makes its file available. The event is settled with the batch: if
    /// the process stops first, the janitor's reconcile sweep finds the
    /// pending file with its object and checks it then.
    fn verify_beside(&self, file: files::Model, meta: ObjectMeta, trace: Option<TraceParent>) {
        let ingest = self.clone();
        let span = tracing::debug_span!("verify", otel.name = "ingest verify object");
        if let Some(trace) = &trace {
            trace.adopt(&span);
        }
        let task = async move {
            let Ok(_permit) = ingest.verifying.clone().acquire_owned().await else {
                return;
            };
            let ready = match verify_object(&ingest.storage, &file, &meta).await {
                Ok(digest) => digest,
                Err(FileError::UploadMismatch(why)) => {
                    tracing::warn!(file_id = %file.id, why, "object does not match its file");
                    crate::metrics::upload_failed("direct", "checksum_mismatch");
                    return;
                }
                Err(e) => {
                    tracing::warn!(file_id = %file.id, error = %e, "large object not checked; the janitor will");
                    return;
                }
            };
            let landed = Landed::new(file.id, ready);
            match mark_available(&ingest.db, UploadKind::Direct, &[landed]).await {
                Ok(changed) if !changed.is_empty() => ingest.bus.outbox_written(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(file_id = %file.id, error = %e, "large object checked but not recorded; the janitor will")
                }
            }
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
    }

    /// Checks one created object against its pending file.
    async fn check(
        &self,
        file: &files::Model,
        event: &ObjectEvent,
        ready: &mut Vec<Landed>,
    ) -> Result<Outcome, FileError> {
        let meta = ObjectMeta {
            size: event.size.unwrap_or(0),
            ..ObjectMeta::default()
        };
        if event.size != Some(file.size as u64) {
            tracing::warn!(file_id = %file.id, expected = file.size, reported = ?event.size, "object size does not match its file");
            crate::metrics::upload_failed("direct", "size_mismatch");
            return Ok(Outcome::SizeMismatch);
        }
        if file.sha256.is_some() && file.size as u64 > VERIFY_INLINE_MAX {
            self.verify_beside(file.clone(), meta, event.trace.clone());
            return Ok(Outcome::Verifying);
        }
        match verify_object(&self.storage, file, &meta).await {
            Ok(digest) => {
                ready.push(Landed {
                    trace: event.trace.clone(),
                    ..Landed::new(file.id, digest)
                });
                Ok(Outcome::Available)
            }
            Err(FileError::UploadMismatch(why)) => {
                tracing::warn!(file_id = %file.id, why, "object does not match its file");
                crate::metrics::upload_failed("direct", "checksum_mismatch");
                Ok(Outcome::ChecksumMismatch)
            }
            // The object is gone again: nothing to make available.
            Err(FileError::UploadIncomplete) => Ok(Outcome::UnknownKey),
            Err(e) => Err(e),
        }
    }
}
