//! Creating a tus upload: the pending file (the reservation against its
//! owner's quota) and the upload session, in one transaction.

use bytes::Bytes;
use sea_orm::{ActiveModelTrait, Set, TransactionTrait};
use stowage_entity::upload_sessions::{self, UploadKind, UploadState};
use uuid::Uuid;

use super::{NewUpload, PatchRequest, Tus, TusError, TusUpload};
use crate::domain::{ContentType, FileName};
use crate::files::{Placement, enter, free_name, insert_file, pending_file, placement, reserve};
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
        let place = placement(&self.inner.db, owner, parent).await?;
        self.create_in(owner, place, new, false).await
    }

    /// Creates an upload of `owner`'s (whose requests continue it) into
    /// `place`; with `rename`, a name taken there becomes `name (1).ext`,
    /// `name (2).ext`… instead of 409 (a drop folder's uploads).
    pub async fn create_in(
        &self,
        owner: Uuid,
        place: Placement,
        new: NewUpload,
        rename: bool,
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
        let name = match rename {
            true => free_name(&txn, &place, name).await?,
            false => name,
        };
        insert_file(
            &txn,
            pending_file(
                file_id,
                &place,
                &name,
                new.length.unwrap_or(0),
                &content_type,
                None,
                at,
            ),
            name.as_str(),
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
