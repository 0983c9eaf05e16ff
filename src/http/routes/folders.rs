//! `/api/v1/folders…` and `/api/v1/resolve`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::domain::{FileName, ValidationError};
use stowage_actors::files::{FilePatch, FileView, Files, ListQuery, NewFolder};
use stowage_actors::janitor::{JanitorActor, PurgeNow};
use stowage_actors::sharing::Sharing;
use stowage_entity::files::ItemKind;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::files::{FileBody, ListParams, if_match, present};
use super::shares::{ShareList, ShareRequest, list_item, revoke_item, share_item};
use crate::http::PublicBase;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

/// The folder object of the contract.
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderBody {
    pub id: Uuid,
    /// Always `folder`.
    #[serde(rename = "type")]
    #[schema(inline, value_type = crate::http::schema::FolderType)]
    pub kind: &'static str,
    pub name: String,
    /// The folder it is in; null for the owner's root.
    pub parent_id: Option<Uuid>,
    pub owner_id: Uuid,
    /// The caller's role: owner, or the highest share on it or a folder above it.
    #[schema(example = "owner")]
    pub role: &'static str,
    /// Grows by one on every change; also the ETag.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// In the trash: when it will be purged, with everything in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_at: Option<DateTime<Utc>>,
}

impl FolderBody {
    pub fn new(view: FileView) -> Self {
        let f = view.file;
        Self {
            id: f.id,
            kind: "folder",
            name: f.name,
            parent_id: f.parent_id,
            owner_id: f.owner_id,
            role: view.role.as_str(),
            version: f.version,
            created_at: f.created_at,
            updated_at: f.updated_at,
            deleted_at: f.deleted_at,
            purge_at: f.purge_at,
        }
    }
}

/// A file or a folder, told apart by `type`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ItemBody {
    Folder(FolderBody),
    File(FileBody),
}

impl ItemBody {
    pub fn new(view: FileView, base: &PublicBase) -> Self {
        match view.file.kind {
            ItemKind::Folder => Self::Folder(FolderBody::new(view)),
            ItemKind::File | ItemKind::Revision => Self::File(FileBody::new(view, base)),
        }
    }

    fn version(&self) -> i64 {
        match self {
            Self::Folder(f) => f.version,
            Self::File(f) => f.version,
        }
    }
}

fn with_etag(body: ItemBody) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", body.version())))
        .json(body)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFolderRequest {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub name: String,
    /// The folder to create it in (yours, or one shared with you as editor); default: your root.
    pub parent_id: Option<Uuid>,
}

/// Create a folder.
#[utoipa::path(post, path = "/api/v1/folders", tag = "folders", security(("bearer" = [])),
    request_body = NewFolderRequest,
    responses((status = 201, body = FolderBody), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "`folder_not_found`: the parent"),
        (status = 409, body = Problem, description = "`name_taken`")))]
pub async fn create(
    caller: Authenticated,
    files: web::Data<Files>,
    body: JsonObject<NewFolderRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewFolder {
        name: FileName::parse(&body.name)?,
        parent: body.parent_id,
    };
    let view = files.create_folder(caller.0.user_id, new).await?;
    let folder = FolderBody::new(view);
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, format!("\"{}\"", folder.version)))
        .json(folder))
}

/// One folder; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/folders/{id}", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = FolderBody, headers(("ETag" = String))), (status = 404, body = Problem)))]
pub async fn get(
    caller: Authenticated,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let view = files.folder(caller.0.user_id, *id).await?;
    Ok(with_etag(ItemBody::Folder(FolderBody::new(view))))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderPatchRequest {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub name: Option<String>,
    /// Move into this folder (of the same owner); null moves to the owner's root.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
}

/// Rename or move a folder (with everything in it: one row changes).
#[utoipa::path(patch, path = "/api/v1/folders/{id}", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "the ETag read before", pattern = "^(\\*|(W/)?\"?[0-9]{1,18}\"?)$")),
    request_body = FolderPatchRequest,
    responses((status = 200, body = FolderBody), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`name_taken`, `folder_cycle` or `cross_owner_move`"),
        (status = 412, body = Problem)))]
pub async fn patch(
    caller: Authenticated,
    req: HttpRequest,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
    body: JsonObject<FolderPatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let patch = FilePatch {
        name: body.name.as_deref().map(FileName::parse).transpose()?,
        parent: body.parent_id,
        ..FilePatch::default()
    };
    let view = files
        .update_item(caller.0.user_id, *id, ItemKind::Folder, patch, expected)
        .await?;
    Ok(with_etag(ItemBody::Folder(FolderBody::new(view))))
}

/// Move a folder and everything in it to the trash, as one unit.
#[utoipa::path(delete, path = "/api/v1/folders/{id}", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    caller: Authenticated,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    files
        .delete_item(caller.0.user_id, *id, ItemKind::Folder)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Bring a folder back from the trash, with everything that went with it.
#[utoipa::path(post, path = "/api/v1/folders/{id}/restore", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = FolderBody), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`not_in_trash`, `name_taken`, `parent_in_trash` or `trashed_with_folder`")))]
pub async fn restore(
    caller: Authenticated,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let view = files
        .restore_item(caller.0.user_id, *id, ItemKind::Folder)
        .await?;
    Ok(with_etag(ItemBody::Folder(FolderBody::new(view))))
}

/// A page of children: `/api/v1/files`'s parameters, without `view`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChildrenParams {
    /// 1 to 1000, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Name prefix, case-insensitive.
    pub q: Option<String>,
    /// name (default), -name, created_at, -created_at, size, -size; folders come first in each.
    #[param(inline, value_type = Option<crate::http::schema::Sort>)]
    pub sort: Option<String>,
}

impl TryFrom<ChildrenParams> for ListQuery {
    type Error = ValidationError;

    fn try_from(p: ChildrenParams) -> Result<Self, ValidationError> {
        ListQuery::try_from(ListParams {
            view: None,
            limit: p.limit,
            cursor: p.cursor,
            q: p.q,
            // Children read best by name unless asked otherwise.
            sort: Some(p.sort.unwrap_or_else(|| "name".to_owned())),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<ItemBody>,
    /// Pass back as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A folder's children, folders first; `root` is the caller's root.
#[utoipa::path(get, path = "/api/v1/folders/{id}/children", tag = "folders", security(("bearer" = [])),
    params(("id" = String, Path, description = "a folder id, or `root`"), ChildrenParams),
    responses((status = 200, body = ItemPage), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn children(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    id: web::Path<String>,
    params: web::Query<ChildrenParams>,
) -> Result<web::Json<ItemPage>, ApiError> {
    let folder =
        match id.as_str() {
            "root" => None,
            raw => Some(Uuid::parse_str(raw).map_err(|_| {
                ValidationError::new("id", "must be a folder id (a UUID) or `root`")
            })?),
        };
    let query = ListQuery::try_from(params.into_inner())?;
    let page = files.children(caller.0.user_id, folder, &query).await?;
    Ok(web::Json(ItemPage {
        items: page
            .items
            .into_iter()
            .map(|v| ItemBody::new(v, &base))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResolveParams {
    /// `/Reports/2026/q1.pdf`: names from the caller's root.
    #[param(pattern = "^(/(?!\\.\\.?(/|$))[^/\\u0000-\\u001f\\u007f-\\u009f]{1,255})+/?$")]
    pub path: String,
}

/// The file or folder at a path in the caller's own tree.
#[utoipa::path(get, path = "/api/v1/resolve", tag = "folders", security(("bearer" = [])),
    params(ResolveParams),
    responses((status = 200, body = ItemBody), (status = 400, body = Problem),
        (status = 404, body = Problem, description = "`path_not_found`")))]
pub async fn resolve(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    params: web::Query<ResolveParams>,
) -> Result<HttpResponse, ApiError> {
    let view = files.resolve(caller.0.user_id, &params.path).await?;
    Ok(with_etag(ItemBody::new(view, &base)))
}

/// Share a folder: the role flows to everything below it.
#[utoipa::path(post, path = "/api/v1/folders/{id}/shares", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ShareRequest,
    responses((status = 201, body = super::shares::ShareBody), (status = 200, body = super::shares::ShareBody, description = "already shared: role set"),
        (status = 400, body = Problem, description = "`invalid_share`: the owner themself"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn share(
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    id: web::Path<Uuid>,
    body: JsonObject<ShareRequest>,
) -> Result<HttpResponse, ApiError> {
    share_item(ItemKind::Folder, caller, sharing, *id, body.into_inner()).await
}

/// Who the folder is shared with (owner only).
#[utoipa::path(get, path = "/api/v1/folders/{id}/shares", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ShareList), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn shares(
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ShareList>, ApiError> {
    list_item(ItemKind::Folder, caller, sharing, *id).await
}

/// End a folder share: the owner revoking, or the sharee leaving.
#[utoipa::path(delete, path = "/api/v1/folders/{id}/shares/{user_id}", tag = "folders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unshare(
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, user_id) = path.into_inner();
    revoke_item(ItemKind::Folder, caller, sharing, id, user_id).await
}

/// What emptying the trash did.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmptiedTrash {
    /// Items that left the trash for good (files, folders and what was in them).
    emptied: u64,
}

/// Empty the caller's trash: nothing in it can be restored from now on, and
/// the janitor purges it at once (the trash view empties within moments).
#[utoipa::path(delete, path = "/api/v1/trash", tag = "files", security(("bearer" = [])),
    responses((status = 200, body = EmptiedTrash)))]
pub async fn empty_trash(
    caller: Authenticated,
    files: web::Data<Files>,
    janitor: web::Data<actix::Addr<JanitorActor>>,
) -> Result<HttpResponse, ApiError> {
    let emptied = files.empty_trash(caller.0.user_id).await?;
    if emptied > 0 {
        janitor.do_send(PurgeNow);
    }
    Ok(HttpResponse::Ok().json(EmptiedTrash { emptied }))
}
