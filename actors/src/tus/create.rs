//! Creating a tus upload: the pending file (the reservation against its
//! owner's quota) and the upload session, in one transaction.

use bytes::Bytes;
use sea_orm::{ActiveModelTrait, Set, TransactionTrait};
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};
use uuid::Uuid;

use super::{NewUpload, PatchRequest, Tus, TusError, TusUpload};
use crate::domain::{ContentType, FileName};
use crate::files::{Conflict, Placement, enter, insert_upload, land, placement, reserve};
use crate::time::now;
use crate::uploads::PartPlan;

impl Tus {
    /// Creates the pending file and the upload session, in the folder the
    /// metadata's `parent_id` names (the caller's root without one).
    #[tracing::instrument(skip_all, fields(owner_id = %owner))]
    pub async fn create(&self, owner: Uuid, new: NewUpload) -> Result<TusUpload, TusError> {
        let parent = match new.metadata.text(&["parent_id"])? {
            Some(raw) => Some(Uuid::parse_str(raw.trim()).map_err(|_| {
                TusError::BadHeader(
                    "Upload-Metadata",
                    "parent_id must be a folder id (a UUID)".to_owned(),
                )
            })?),
            None => None,
        };
        let on = new.metadata.text(&["on_conflict"])?;
        let base = new.metadata.text(&["base_revision"])?;
        let conflict = Conflict::parse_text(on.as_deref(), base.as_deref())?;
        let place = placement(&self.inner.db, owner, parent).await?;
        self.create_in(owner, place, new, conflict).await
    }

    /// Creates an upload of `owner`'s (whose requests continue it) into
    /// `place`, a taken name handled by `conflict` (a drop folder's
    /// uploads are renamed: `name (1).ext`, `name (2).ext`…).
    pub async fn create_in(
        &self,
        owner: Uuid,
        place: Placement,
        new: NewUpload,
        conflict: Conflict,
    ) -> Result<TusUpload, TusError> {
        let inner = &self.inner;
        if let Some(length) = new.length {
            self.check_size(length)?;
        }
        let id = Uuid::now_v7();
        let file_id = Uuid::now_v7();
        let name = match new.metadata.text(&["filename", "name"])? {
            Some(n) => FileName::parse(&n)?,
            None => FileName::parse(&format!("upload-{id}"))?,
        };
        let content_type = match new.metadata.text(&["filetype", "type"])? {
            Some(t) if !t.is_empty() => ContentType::parse(&t)?,
            _ => ContentType::octet_stream(),
        };
        let at = now();
        // The part size a store with parts uses (fixed by the length, when
        // it is known).
        let part_size = match new.length {
            Some(l) => Some(PartPlan::new(Ord::max(l, 1), None)?.part_size as i64),
            None => None,
        };
        let txn = inner.db.begin().await?;
        reserve(&txn, place.owner, new.length.unwrap_or(0), "tus").await?;
        enter(&txn, &place).await?;
        let landing = land(&txn, &place, name, conflict).await?;
        insert_upload(
            &txn,
            file_id,
            &place,
            landing,
            conflict.base,
            new.length.unwrap_or(0),
            &content_type,
            None,
            at,
        )
        .await?;
        let session = upload_sessions::ActiveModel {
            id: Set(id),
            owner_id: Set(owner),
            file_id: Set(file_id),
            kind: Set(UploadKind::Tus),
            state: Set(UploadState::Active),
            size: Set(new.length.map(|l| l as i64)),
            offset: Set(0),
            parts_received: Set(0),
            part_size: Set(part_size),
            s3_upload_id: Set(None),
            metadata: Set(Some(new.metadata.raw().to_owned()).filter(|m| !m.is_empty())),
            hash_state: Set(None),
            tail_size: Set(0),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            expires_at: Set(at + inner.idle_expiry),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        if new.length == Some(0) {
            // Nothing to wait for: an empty upload is complete at once.
            return self
                .patch(
                    owner,
                    id,
                    PatchRequest {
                        offset: 0,
                        length: None,
                        content_length: Some(0),
                        checksum: None,
                    },
                    futures_util::stream::empty::<Result<Bytes, std::convert::Infallible>>(),
                )
                .await;
        }
        Ok(TusUpload::of(&session))
    }
}
