//! Downloads: short-lived signed URLs, for the caller or behind a public link.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use stowage_entity::files::{self, FileStatus, Visibility};
use uuid::Uuid;

use super::{DOWNLOAD_URL_TTL, FileError, Files, has_expired};
use crate::domain::Disposition;

impl Files {
    /// A short-lived signed URL that downloads the file.
    pub async fn download_url(
        &self,
        caller: Uuid,
        id: Uuid,
        disposition: Disposition,
    ) -> Result<(String, DateTime<Utc>), FileError> {
        let view = self.access(caller, id).await?;
        self.signed_download(&view.file, disposition).await
    }

    /// The signed URL behind a public link, while the file is public.
    pub async fn public_download(
        &self,
        token: &str,
        disposition: Disposition,
    ) -> Result<String, FileError> {
        let file = files::Entity::find()
            .filter(files::Column::PublicToken.eq(token))
            .filter(files::Column::Visibility.eq(Visibility::Public))
            .filter(files::Column::DeletedAt.is_null())
            .one(&self.db)
            .await?
            .filter(|f| f.status == FileStatus::Available && !has_expired(f))
            .ok_or(FileError::NotFound(Uuid::nil()))?;
        Ok(self.signed_download(&file, disposition).await?.0)
    }

    pub(crate) async fn signed_download(
        &self,
        file: &files::Model,
        disposition: Disposition,
    ) -> Result<(String, DateTime<Utc>), FileError> {
        if file.status != FileStatus::Available {
            return Err(FileError::Pending);
        }
        if has_expired(file) {
            return Err(FileError::Expired);
        }
        Ok(self
            .storage
            .presign_get(
                &file.object_key,
                DOWNLOAD_URL_TTL,
                &disposition.header_value(&file.name),
                &file.content_type,
            )
            .await?)
    }
}
