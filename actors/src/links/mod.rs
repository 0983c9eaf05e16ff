//! Share links: `/s/{token}` for anyone who has it, with an optional
//! password, expiry and download limit. A file's link redirects to a signed
//! download URL (each redirect one download, counted atomically); a
//! folder's lists its children and serves what is below it, nothing else.

mod unlock;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use stowage_entity::files::{self, FileStatus, ItemKind};
use stowage_entity::links::{self, LinkMode};
use stowage_entity::upload_sessions;
use uuid::Uuid;

use crate::accounts::PasswordHasher;
use crate::domain::{Disposition, ValidationError};
use crate::files::{
    Action, FileError, FileView, Files, ListQuery, Page, Placement, Role, access_item,
};
use crate::time::now;
pub use unlock::{UNLOCK_TTL, UnlockKey};

/// What can go wrong behind a link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No such link, revoked, its item gone, or not inside its folder.
    #[error("there is no such link, or nothing at this address behind it")]
    NotFound,
    #[error("this link expired")]
    Expired,
    #[error("this link has been used as many times as it allows")]
    Exhausted,
    #[error("this link needs its password")]
    PasswordRequired,
    #[error("that is not this link's password")]
    PasswordInvalid,
    #[error("this link is a drop folder: it takes uploads and lists nothing")]
    UploadOnly,
    #[error(transparent)]
    File(#[from] FileError),
}

impl From<sea_orm::DbErr> for LinkError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::File(e.into())
    }
}

impl From<ValidationError> for LinkError {
    fn from(e: ValidationError) -> Self {
        Self::File(e.into())
    }
}

/// A link to create.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub expires_at: Option<DateTime<Utc>>,
    pub password: Option<String>,
    pub max_downloads: Option<u64>,
    pub mode: LinkMode,
}

/// A link, opened: the link and its (live) item.
#[derive(Debug, Clone)]
pub struct Opened {
    pub link: links::Model,
    pub item: files::Model,
}

#[derive(Clone)]
pub struct Links {
    db: DatabaseConnection,
    files: Files,
    hasher: PasswordHasher,
    unlock: UnlockKey,
}

impl Links {
    pub fn new(
        db: DatabaseConnection,
        files: Files,
        hasher: PasswordHasher,
        unlock: UnlockKey,
    ) -> Self {
        Self {
            db,
            files,
            hasher,
            unlock,
        }
    }

    /// A new link to the caller's own file or folder.
    pub async fn create(
        &self,
        caller: Uuid,
        item: Uuid,
        kind: ItemKind,
        new: NewLink,
    ) -> Result<links::Model, LinkError> {
        let view = access_item(&self.db, caller, item, kind).await?;
        view.require(Action::ManageShares)?;
        if view.file.status != FileStatus::Available {
            return Err(FileError::Pending.into());
        }
        if new.mode == LinkMode::Upload && kind != ItemKind::Folder {
            return Err(
                ValidationError::new("mode", "`upload` is for folders: a drop folder").into(),
            );
        }
        if new.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(ValidationError::new("expires_at", "must be in the future").into());
        }
        let max_downloads = match new.max_downloads.map(i64::try_from) {
            Some(Ok(0)) => {
                return Err(ValidationError::new("max_downloads", "must be at least 1").into());
            }
            Some(Err(_)) => {
                return Err(ValidationError::new(
                    "max_downloads",
                    "must be at most 9223372036854775807 (leave it out for no limit)",
                )
                .into());
            }
            Some(Ok(n)) => Some(n),
            None => None,
        };
        let password_hash = match new.password {
            Some(p) if p.is_empty() => {
                return Err(ValidationError::new("password", "must not be empty").into());
            }
            Some(p) if p.len() > 1024 => {
                return Err(ValidationError::new("password", "must be at most 1024 bytes").into());
            }
            Some(p) => Some(
                self.hasher
                    .hash(p)
                    .await
                    .map_err(|e| FileError::Unexpected(e.context("hashing a link password")))?,
            ),
            None => None,
        };
        let link = links::ActiveModel {
            id: Set(Uuid::now_v7()),
            token: Set(token()),
            item_id: Set(item),
            owner_id: Set(view.file.owner_id),
            mode: Set(new.mode),
            password_hash: Set(password_hash),
            expires_at: Set(new.expires_at),
            max_downloads: Set(max_downloads),
            downloads: Set(0),
            created_at: Set(now()),
        }
        .insert(&self.db)
        .await?;
        Ok(link)
    }

    /// The links of the caller's own file or folder, newest first.
    pub async fn list(
        &self,
        caller: Uuid,
        item: Uuid,
        kind: ItemKind,
    ) -> Result<Vec<links::Model>, LinkError> {
        let view = access_item(&self.db, caller, item, kind).await?;
        view.require(Action::ManageShares)?;
        Ok(links::Entity::find()
            .filter(links::Column::ItemId.eq(item))
            .order_by_desc(links::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    /// Ends a link: from now on it answers 404.
    pub async fn revoke(&self, caller: Uuid, id: Uuid) -> Result<(), LinkError> {
        let gone = links::Entity::delete_many()
            .filter(links::Column::Id.eq(id))
            .filter(links::Column::OwnerId.eq(caller))
            .exec(&self.db)
            .await?;
        match gone.rows_affected {
            0 => Err(LinkError::NotFound),
            _ => Ok(()),
        }
    }

    /// The link behind `token` and its live item; then its password:
    /// `password` as sent, or `unlocked` from an earlier unlock.
    pub async fn open(
        &self,
        token: &str,
        password: Option<String>,
        unlocked: Option<&str>,
    ) -> Result<Opened, LinkError> {
        let opened = self.find(token).await?;
        let Some(hash) = opened.link.password_hash.clone() else {
            return Ok(opened);
        };
        if unlocked.is_some_and(|grant| self.unlock.verify(opened.link.id, grant)) {
            return Ok(opened);
        }
        let Some(password) = password else {
            return Err(LinkError::PasswordRequired);
        };
        self.check_password(password, hash).await?;
        Ok(opened)
    }

    /// Checks a password for `token`'s link; returns the grant a cookie
    /// carries so later requests need not send it.
    pub async fn unlock(
        &self,
        token: &str,
        password: String,
    ) -> Result<(Opened, String), LinkError> {
        let opened = self.find(token).await?;
        if let Some(hash) = opened.link.password_hash.clone() {
            self.check_password(password, hash).await?;
        }
        let grant = self.unlock.grant(opened.link.id);
        Ok((opened, grant))
    }

    /// The link's id, for budgets of password attempts, without checking it.
    pub async fn id_of(&self, token: &str) -> Result<Uuid, LinkError> {
        Ok(self.find(token).await?.link.id)
    }

    async fn find(&self, token: &str) -> Result<Opened, LinkError> {
        let (link, item) = links::Entity::find()
            .filter(links::Column::Token.eq(token))
            .find_also_related(files::Entity)
            .one(&self.db)
            .await?
            .ok_or(LinkError::NotFound)?;
        let item = item
            .filter(|i| i.deleted_at.is_none())
            .ok_or(LinkError::NotFound)?;
        if link.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(LinkError::Expired);
        }
        if link.max_downloads.is_some_and(|max| link.downloads >= max) {
            return Err(LinkError::Exhausted);
        }
        Ok(Opened { link, item })
    }

    async fn check_password(&self, password: String, hash: String) -> Result<(), LinkError> {
        let ok = self
            .hasher
            .verify(password, Some(hash))
            .await
            .map_err(|e| FileError::Unexpected(e.context("checking a link password")))?;
        if ok {
            Ok(())
        } else {
            Err(LinkError::PasswordInvalid)
        }
    }

    /// `item` (the link's own, or one below its folder), if the link may
    /// show it.
    pub async fn item(
        &self,
        opened: &Opened,
        item: Option<Uuid>,
    ) -> Result<files::Model, LinkError> {
        if opened.link.mode == LinkMode::Upload {
            return Err(LinkError::UploadOnly);
        }
        let Some(id) = item.filter(|id| *id != opened.item.id) else {
            return Ok(opened.item.clone());
        };
        if opened.item.kind != ItemKind::Folder {
            return Err(LinkError::NotFound);
        }
        let found = files::Entity::find_by_id(id)
            .filter(files::Column::OwnerId.eq(opened.item.owner_id))
            .filter(files::Column::DeletedAt.is_null())
            .filter(files::Column::Status.eq(FileStatus::Available))
            .filter(files::Column::Kind.ne(ItemKind::Revision))
            .one(&self.db)
            .await?
            .ok_or(LinkError::NotFound)?;
        if !crate::files::is_below(&self.db, found.id, opened.item.id).await? {
            return Err(LinkError::NotFound);
        }
        Ok(found)
    }

    /// A page of a folder's children, as the link shows them.
    pub async fn children(
        &self,
        folder: &files::Model,
        query: &ListQuery,
    ) -> Result<Page, LinkError> {
        Ok(self
            .files
            .list_children(folder.owner_id, Some(folder.id), Role::Viewer, None, query)
            .await?)
    }

    /// One download of `file` through the link: counted (refused once the
    /// limit is reached, even by downloads at the same instant), then a
    /// signed URL.
    pub async fn download(
        &self,
        opened: &Opened,
        file: &files::Model,
        disposition: Disposition,
    ) -> Result<String, LinkError> {
        if file.kind != ItemKind::File {
            return Err(LinkError::NotFound);
        }
        let counted =
            links::Entity::update_many()
                .col_expr(
                    links::Column::Downloads,
                    Expr::col(links::Column::Downloads).add(1),
                )
                .filter(links::Column::Id.eq(opened.link.id))
                .filter(links::Column::MaxDownloads.is_null().or(
                    Expr::col(links::Column::Downloads).lt(Expr::col(links::Column::MaxDownloads)),
                ))
                .exec(&self.db)
                .await?;
        if counted.rows_affected == 0 {
            return Err(LinkError::Exhausted);
        }
        metrics::counter!(crate::metrics::LINK_DOWNLOADS_TOTAL).increment(1);
        let (url, _) = self.files.signed_download(file, disposition).await?;
        Ok(url)
    }

    /// Where a drop folder's uploads go: into its folder, as its owner's
    /// (on their quota). Any other link takes no uploads: 404.
    pub fn drop_place(opened: &Opened) -> Result<Placement, LinkError> {
        if opened.link.mode != LinkMode::Upload || opened.item.kind != ItemKind::Folder {
            return Err(LinkError::NotFound);
        }
        Ok(Placement {
            owner: opened.item.owner_id,
            parent: Some(opened.item.id),
            role: Role::Editor,
            by: None,
        })
    }

    /// `Ok` if upload `id` is one of this drop folder's: its owner's, into
    /// its folder. (Another upload of the owner's is not the link's to see.)
    pub async fn check_drop_upload(&self, opened: &Opened, id: Uuid) -> Result<(), LinkError> {
        let place = Self::drop_place(opened)?;
        let found = upload_sessions::Entity::find_by_id(id)
            .filter(upload_sessions::Column::OwnerId.eq(place.owner))
            .find_also_related(files::Entity)
            .one(&self.db)
            .await?;
        match found {
            Some((_, Some(file))) if file.parent_id == place.parent => Ok(()),
            _ => Err(LinkError::NotFound),
        }
    }

    /// The file or folder behind a link, as a viewer sees it.
    pub fn view(item: files::Model) -> FileView {
        FileView::new(item, Role::Viewer)
    }
}

/// An unguessable token: 32 random bytes, URL-safe.
fn token() -> String {
    use base64::Engine;
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}
