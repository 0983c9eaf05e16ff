//! The janitor: what nobody asks for but everybody needs.
//!
//! Every `STOWAGE_JANITOR_INTERVAL` (with jitter) it runs its sweeps, each in
//! bounded batches claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//! instances that share a database never do the same work twice:
//!
//! 1. `purge`: trashed files past retention: objects (every revision's)
//!    deleted from the store
//!    in batches outside any transaction, then the rows; a file the store
//!    would not let go is retried after a back-off while the rest go on.
//!    Publishes `file.purged`.
//! 2. `expire`: files past `expires_at` go to the trash (then follow rule 1).
//! 3. `reconcile`: pending direct uploads whose object is in the store and
//!    matches become available (stores drop events under load).
//! 4. `stale_uploads`: sessions idle past `STOWAGE_UPLOAD_EXPIRY`: the store's
//!    multipart upload is aborted (a tus upload's staging file or tail
//!    object removed), the session marked expired, the pending
//!    file removed. Publishes `upload.expired`.
//! 5. `orphans`: objects under `users/` that no file row or revision knows
//!    and that are older than the grace period are deleted, one listing
//!    page per sweep, resuming where the last sweep stopped.
//! 6. `revisions`: earlier revisions past `STOWAGE_REVISIONS_KEEP` or
//!    `STOWAGE_REVISIONS_MAX_AGE` are deleted, and their objects with them
//!    unless another revision shares one.

mod actor;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, TransactionTrait,
};
use serde_json::json;
use stowage_entity::files::{self, FileStatus, ItemKind};
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};

pub use actor::{JanitorActor, PurgeNow, Shutdown};

use crate::domain::ObjectKey;
use crate::events::{DomainEvent, EventBus, Happened, item_event};
use crate::files::{
    Landed, Retention, discard, mark_available, named_keys, objects_of, past_retention,
    verify_object,
};
use crate::metrics::{JANITOR_BACKLOG, JANITOR_ITEMS_TOTAL, JANITOR_SWEEPS_TOTAL, UPLOADS_ACTIVE};
use crate::storage::Storage;
use crate::time::now;
use crate::tus::release_store;

/// Rows one batch takes.
pub const BATCH: u64 = 1000;
/// Rows one purge batch takes: four DeleteObjects requests' worth, sent
/// side by side.
const PURGE_BATCH: u64 = 4000;
/// Objects checked per reconcile sweep (each is a HEAD).
const RECONCILE_BATCH: u64 = 100;
/// The lease holder the janitor writes into the upload sessions it claims.
const JANITOR: uuid::Uuid = uuid::Uuid::from_u128(0x6a61_6e69_746f_7200_0000_0000_0000_0001);
/// How long a sweep's claim keeps its rows from other sweeps.
const CLAIM: Duration = Duration::from_secs(300);
/// The longest an item the store refused waits for its next try.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Janitor {
    pub db: DatabaseConnection,
    pub storage: Arc<Storage>,
    pub bus: EventBus,
    pub trash_retention: Duration,
    /// How many earlier revisions of a file are kept, and how long.
    pub revisions: Retention,
    /// A pending direct upload is reconciled once it is this old.
    pub reconcile_after: Duration,
    /// An object no row knows is deleted once it is this old.
    pub orphan_grace: Duration,
    /// Where the orphan sweep's listing resumes.
    pub orphan_cursor: Arc<tokio::sync::Mutex<Option<String>>>,
    /// The shortest wait before an item the store refused is tried again.
    pub retry_after: Duration,
    /// Set on shutdown: finish the batch at hand, start no other.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
}

fn count(sweep: &'static str, result: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(JANITOR_ITEMS_TOTAL, "sweep" => sweep, "result" => result).increment(n);
    }
}

impl Janitor {
    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// All sweeps, once (fewer if shutdown begins).
    /// Runs each sweep once; a failed one is logged and counted, and the
    /// rest go on. Returns how many failed of how many ran.
    pub async fn sweep(&self) -> (usize, usize) {
        let (mut failed, mut ran) = (0, 0);
        for name in [
            "expire",
            "purge",
            "revisions",
            "reconcile",
            "stale_uploads",
            "orphans",
            "active_uploads",
        ] {
            if self.stopping() {
                break;
            }
            let result = match name {
                "expire" => self.expire().await,
                "purge" => self.purge().await,
                "revisions" => self.revisions().await,
                "reconcile" => self.reconcile().await,
                "stale_uploads" => self.stale_uploads().await,
                "orphans" => self.orphans().await,
                _ => self.report_active_uploads().await,
            };
            metrics::counter!(JANITOR_SWEEPS_TOTAL, "sweep" => name).increment(1);
            ran += 1;
            if let Err(e) = result {
                tracing::error!(sweep = name, error = ?e, "janitor sweep failed; it runs again next time");
                count(name, "error", 1);
                failed += 1;
            }
        }
        (failed, ran)
    }

    /// Claims rows: locked for this transaction, skipped by the others.
    fn claim<E: EntityTrait>(&self, select: Select<E>) -> Select<E> {
        match self.db.get_database_backend() {
            DbBackend::Postgres => {
                select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            }
            // SQLite has one writer: the transaction is the claim.
            _ => select,
        }
    }

    async fn backlog(
        &self,
        sweep: &'static str,
        select: Select<files::Entity>,
    ) -> Result<(), sea_orm::DbErr> {
        let n = select.count(&self.db).await?;
        metrics::gauge!(JANITOR_BACKLOG, "sweep" => sweep).set(n as f64);
        Ok(())
    }

    /// Rule 2: files past their expiry move to the trash.
    pub async fn expire(&self) -> anyhow::Result<u64> {
        let due = || {
            files::Entity::find()
                .filter(files::Column::DeletedAt.is_null())
                .filter(files::Column::ExpiresAt.lte(now()))
        };
        self.backlog("expire", due()).await?;
        let mut total = 0;
        while !self.stopping() {
            let txn = self.db.begin().await?;
            let batch = self.claim(due().limit(BATCH)).all(&txn).await?;
            if batch.is_empty() {
                break;
            }
            let at = now();
            let purge_at = at + self.trash_retention;
            let ids: Vec<_> = batch.iter().map(|f| f.id).collect();
            files::Entity::update_many()
                .col_expr(files::Column::DeletedAt, Expr::value(at))
                .col_expr(files::Column::PurgeAt, Expr::value(purge_at))
                .col_expr(
                    files::Column::Version,
                    Expr::col(files::Column::Version).add(1),
                )
                .col_expr(files::Column::UpdatedAt, Expr::value(at))
                .filter(files::Column::Id.is_in(ids))
                .exec(&txn)
                .await?;
            let events: Vec<DomainEvent> = batch
                .iter()
                .map(|f| {
                    DomainEvent::new(
                        "file.deleted",
                        f.id,
                        f.owner_id,
                        None,
                        json!({"name": f.name, "purge_at": purge_at, "reason": "expired"}),
                    )
                })
                .collect();
            crate::outbox::record(&txn, &events).await?;
            txn.commit().await?;
            self.bus.outbox_written();
            count("expire", "trashed", batch.len() as u64);
            total += batch.len() as u64;
        }
        Ok(total)
    }

    /// Rule 1: trashed files past retention leave the store, then the
    /// database. A batch is claimed (its `purge_at` pushed past [`CLAIM`],
    /// so no other sweep on any instance takes it), released from the store
    /// outside any transaction, and what was released is deleted and
    /// announced in one transaction; a file the store would not let go
    /// stays in the trash, is counted as failed and comes back after a
    /// back-off, while the rest of the sweep goes on.
    pub async fn purge(&self) -> anyhow::Result<u64> {
        let due = || {
            files::Entity::find()
                .filter(files::Column::DeletedAt.is_not_null())
                .filter(files::Column::PurgeAt.lte(now()))
        };
        self.backlog("purge", due()).await?;
        let mut total = 0;
        while !self.stopping() {
            let batch = self
                .claim_files(
                    due()
                        .order_by_asc(files::Column::PurgeAt)
                        .limit(PURGE_BATCH),
                )
                .await?;
            if batch.is_empty() {
                break;
            }
            // Unfinished multipart and tus uploads of these files go first.
            let ids: Vec<_> = batch.iter().map(|f| f.id).collect();
            let sessions = upload_sessions::Entity::find()
                .filter(upload_sessions::Column::FileId.is_in(ids))
                .filter(upload_sessions::Column::State.eq(UploadState::Active))
                .filter(upload_sessions::Column::Kind.ne(UploadKind::Direct))
                .all(&self.db)
                .await?;
            let mut failed: Vec<uuid::Uuid> = Vec::new();
            for s in &sessions {
                if let Some(f) = batch.iter().find(|f| f.id == s.file_id)
                    && let Err(e) = release_store(&self.storage, s, &f.object_key).await
                {
                    tracing::warn!(file_id = %f.id, error = %e, "purge: an upload could not be released");
                    failed.push(f.id);
                }
            }
            // A folder has no object: only its row goes. A file's earlier
            // revisions go with it.
            let mut keys: Vec<(uuid::Uuid, String)> = batch
                .iter()
                .filter(|f| !failed.contains(&f.id) && f.kind != ItemKind::Folder)
                .map(|f| (f.id, f.object_key.clone()))
                .collect();
            let files: Vec<_> = keys.iter().map(|(id, _)| *id).collect();
            keys.extend(objects_of(&self.db, &files).await?);
            keys.sort();
            keys.dedup();
            let objects: Vec<String> = keys.iter().map(|(_, k)| k.clone()).collect();
            match self.storage.delete_many(&objects).await {
                Ok(report) => failed.extend(
                    keys.iter()
                        .filter(|(_, k)| report.failed.contains(k))
                        .map(|(id, _)| *id),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "purge: the store refused the batch");
                    failed.extend(batch.iter().map(|f| f.id));
                }
            }
            let gone: Vec<_> = batch
                .iter()
                .map(|f| f.id)
                .filter(|id| !failed.contains(id))
                .collect();
            let txn = self.db.begin().await?;
            // Only the rows this transaction removed are announced.
            let purged = files::Entity::delete_many()
                .filter(files::Column::Id.is_in(gone))
                .exec_with_returning(&txn)
                .await?;
            // A revision upload's row goes with its file, unannounced.
            let events: Vec<DomainEvent> = purged
                .iter()
                .filter(|f| f.kind != ItemKind::Revision)
                .map(|f| {
                    DomainEvent::new(
                        item_event(f.kind, Happened::Purged),
                        f.id,
                        f.owner_id,
                        None,
                        json!({"name": f.name}),
                    )
                })
                .collect();
            crate::outbox::record(&txn, &events).await?;
            txn.commit().await?;
            self.bus.outbox_written();
            self.retry_later(&batch, &failed).await?;
            count("purge", "purged", events.len() as u64);
            count("purge", "failed", failed.len() as u64);
            total += purged.len() as u64;
            if !failed.is_empty() && purged.is_empty() {
                // The store refuses everything: try again next sweep, not in a loop now.
                break;
            }
        }
        Ok(total)
    }

    /// Takes due files for this sweep: their `purge_at` moves [`CLAIM`] on,
    /// in one short transaction, so no other sweep takes them meanwhile
    /// (and a sweep that dies lets them go when the claim runs out).
    async fn claim_files(&self, due: Select<files::Entity>) -> anyhow::Result<Vec<files::Model>> {
        let txn = self.db.begin().await?;
        let batch = self.claim(due).all(&txn).await?;
        if !batch.is_empty() {
            files::Entity::update_many()
                .col_expr(files::Column::PurgeAt, Expr::value(now() + CLAIM))
                .filter(files::Column::Id.is_in(batch.iter().map(|f| f.id)))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(batch)
    }

    /// The files the store would not let go come back after a back-off that
    /// grows with how long they have been due (at least a sweep interval,
    /// at most an hour).
    async fn retry_later(
        &self,
        batch: &[files::Model],
        failed: &[uuid::Uuid],
    ) -> anyhow::Result<()> {
        let at = now();
        for f in batch.iter().filter(|f| failed.contains(&f.id)) {
            let due_since = f.deleted_at.map_or(at, |d| d + self.trash_retention);
            let overdue = (at - due_since).to_std().unwrap_or_default();
            let delay = overdue.clamp(self.retry_after, MAX_RETRY_DELAY);
            files::Entity::update_many()
                .col_expr(files::Column::PurgeAt, Expr::value(at + delay))
                .filter(files::Column::Id.eq(f.id))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// Rule 4a: pending direct uploads whose object arrived without an event.
    pub async fn reconcile(&self) -> anyhow::Result<u64> {
        let cutoff = now() - self.reconcile_after;
        let candidates = files::Entity::find()
            .filter(files::Column::Status.eq(FileStatus::Pending))
            .filter(files::Column::DeletedAt.is_null())
            .filter(files::Column::CreatedAt.lte(cutoff))
            .filter(
                files::Column::Id.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(upload_sessions::Column::FileId)
                        .from(upload_sessions::Entity)
                        .and_where(upload_sessions::Column::Kind.eq(UploadKind::Direct))
                        .and_where(upload_sessions::Column::State.eq(UploadState::Active))
                        .to_owned(),
                ),
            )
            .order_by_asc(files::Column::CreatedAt)
            .limit(RECONCILE_BATCH)
            .all(&self.db)
            .await?;
        let mut ready = Vec::new();
        for f in &candidates {
            let Some(meta) = self.storage.head(&f.object_key).await? else {
                continue;
            };
            match verify_object(&self.storage, f, &meta).await {
                Ok(digest) => ready.push(Landed::new(f.id, digest)),
                Err(e) => {
                    tracing::debug!(file_id = %f.id, error = %e, "reconcile: object does not match yet")
                }
            }
        }
        let changed = mark_available(&self.db, UploadKind::Direct, &ready).await?;
        if !changed.is_empty() {
            self.bus.outbox_written();
        }
        count("reconcile", "confirmed", changed.len() as u64);
        Ok(changed.len() as u64)
    }

    /// Sets `stowage_uploads_active{kind}` from the database, for every kind.
    pub async fn report_active_uploads(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for kind in [UploadKind::Direct, UploadKind::Multipart, UploadKind::Tus] {
            let n = upload_sessions::Entity::find()
                .filter(upload_sessions::Column::State.eq(UploadState::Active))
                .filter(upload_sessions::Column::Kind.eq(kind))
                .count(&self.db)
                .await?;
            metrics::gauge!(UPLOADS_ACTIVE, "kind" => kind.as_str()).set(n as f64);
            total += n;
        }
        Ok(total)
    }

    /// Rule 4b: objects that belong to no file.
    pub async fn orphans(&self) -> anyhow::Result<u64> {
        let mut cursor = self.orphan_cursor.lock().await;
        let (objects, next) = self
            .storage
            .list_page(ObjectKey::PREFIX, cursor.take())
            .await?;
        *cursor = next;
        drop(cursor);
        let cutoff = now() - self.orphan_grace;
        let ids: Vec<_> = objects
            .iter()
            .filter_map(|o| ObjectKey::parse(&o.key))
            .map(|k| k.file_id())
            .collect();
        let known: std::collections::HashMap<_, _> = files::Entity::find()
            .filter(files::Column::Id.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|f| (f.id, f.object_key))
            .collect();
        let unknown: Vec<String> = objects
            .into_iter()
            .filter(|o| o.last_modified < cutoff)
            .filter(|o| {
                ObjectKey::parse(&o.key)
                    .and_then(|k| known.get(&k.file_id()))
                    .is_none_or(|key| key != &o.key)
            })
            .map(|o| o.key)
            .collect();
        // A revised file's object, or an earlier revision's, is named by
        // its key, not by the id in it.
        let named = named_keys(&self.db, &unknown).await?;
        let orphans: Vec<String> = unknown.into_iter().filter(|k| !named.contains(k)).collect();
        if orphans.is_empty() {
            return Ok(0);
        }
        let report = self.storage.delete_many(&orphans).await?;
        let deleted = (orphans.len() - report.failed.len()) as u64;
        tracing::info!(
            deleted,
            failed = report.failed.len(),
            "janitor removed orphaned objects"
        );
        count("orphans", "deleted", deleted);
        count("orphans", "failed", report.failed.len() as u64);
        Ok(deleted)
    }

    /// Rule 6: earlier revisions past retention (older than
    /// `STOWAGE_REVISIONS_MAX_AGE`, or beyond the newest
    /// `STOWAGE_REVISIONS_KEEP` of their file) leave the database and,
    /// unless another revision shares it, the store.
    pub async fn revisions(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        while !self.stopping() {
            let due = past_retention(&self.db, self.revisions, BATCH).await?;
            if due.is_empty() {
                break;
            }
            let n = discard(&self.db, &self.storage, due).await?;
            count("revisions", "deleted", n);
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Rule 3: sessions idle past their expiry. Claimed through their lease
    /// (held by the janitor for [`CLAIM`]: no tus request writes them
    /// meanwhile, and their `expires_at` stays past, so they answer 410),
    /// released from the store outside any transaction, then marked expired
    /// (their pending files removed, `upload.expired` announced) in one
    /// transaction; one the store would not release keeps the janitor's
    /// lease for a back-off and is tried again.
    pub async fn stale_uploads(&self) -> anyhow::Result<u64> {
        let due = || {
            upload_sessions::Entity::find()
                .filter(upload_sessions::Column::State.eq(UploadState::Active))
                .filter(upload_sessions::Column::ExpiresAt.lte(now()))
                .filter(
                    upload_sessions::Column::LeaseUntil
                        .is_null()
                        .or(upload_sessions::Column::LeaseUntil.lt(now())),
                )
        };
        let backlog = due().count(&self.db).await?;
        metrics::gauge!(JANITOR_BACKLOG, "sweep" => "stale_uploads").set(backlog as f64);
        let mut total = 0;
        while !self.stopping() {
            let txn = self.db.begin().await?;
            let batch = self.claim(due().limit(BATCH)).all(&txn).await?;
            if batch.is_empty() {
                break;
            }
            upload_sessions::Entity::update_many()
                .col_expr(upload_sessions::Column::LeaseOwner, Expr::value(JANITOR))
                .col_expr(
                    upload_sessions::Column::LeaseUntil,
                    Expr::value(now() + CLAIM),
                )
                .filter(upload_sessions::Column::Id.is_in(batch.iter().map(|s| s.id)))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            let keys: std::collections::HashMap<_, _> = files::Entity::find()
                .filter(files::Column::Id.is_in(batch.iter().map(|s| s.file_id)))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|f| (f.id, f.object_key))
                .collect();
            let mut released = Vec::new();
            let mut failed = Vec::new();
            for s in &batch {
                let result = match keys.get(&s.file_id) {
                    Some(key) => release_store(&self.storage, s, key).await,
                    None => Ok(()),
                };
                match result {
                    Ok(()) => released.push(s),
                    Err(e) => {
                        tracing::warn!(upload_id = %s.id, error = %e, "stale upload could not be released");
                        failed.push(s);
                    }
                }
            }
            let txn = self.db.begin().await?;
            upload_sessions::Entity::update_many()
                .col_expr(
                    upload_sessions::Column::State,
                    Expr::value(UploadState::Expired),
                )
                .col_expr(upload_sessions::Column::UpdatedAt, Expr::value(now()))
                .filter(upload_sessions::Column::Id.is_in(released.iter().map(|s| s.id)))
                .filter(upload_sessions::Column::LeaseOwner.eq(JANITOR))
                .exec(&txn)
                .await?;
            // Their pending files go: an unfinished upload leaves nothing behind.
            files::Entity::delete_many()
                .filter(files::Column::Id.is_in(released.iter().map(|s| s.file_id)))
                .filter(files::Column::Status.eq(FileStatus::Pending))
                .exec(&txn)
                .await?;
            let events: Vec<DomainEvent> = released
                .iter()
                .map(|s| {
                    DomainEvent::new(
                        "upload.expired",
                        s.file_id,
                        s.owner_id,
                        None,
                        json!({"upload_id": s.id, "kind": s.kind.as_str()}),
                    )
                })
                .collect();
            crate::outbox::record(&txn, &events).await?;
            txn.commit().await?;
            self.bus.outbox_written();
            for s in &failed {
                let overdue = (now() - s.expires_at).to_std().unwrap_or_default();
                let delay = overdue.clamp(self.retry_after, MAX_RETRY_DELAY);
                upload_sessions::Entity::update_many()
                    .col_expr(
                        upload_sessions::Column::LeaseUntil,
                        Expr::value(now() + delay),
                    )
                    .filter(upload_sessions::Column::Id.eq(s.id))
                    .exec(&self.db)
                    .await?;
            }
            count("stale_uploads", "expired", released.len() as u64);
            count("stale_uploads", "failed", failed.len() as u64);
            for s in &released {
                crate::metrics::upload_failed(s.kind.as_str(), "expired");
            }
            total += released.len() as u64;
            if released.is_empty() {
                break;
            }
        }
        Ok(total)
    }
}
