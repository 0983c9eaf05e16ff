//! `/api/v1/files…` and `/public/{token}`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use stowage_actors::domain::{Disposition, FileName, ValidationError};
use stowage_actors::files::{
    Cursor, FilePatch, FileView, Files, ListQuery, Sort, View, list::DEFAULT_LIMIT, list::MAX_LIMIT,
};
use stowage_entity::files::{FileStatus, Visibility};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::PublicBase;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

/// The file object of the contract.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileBody {
    pub id: Uuid,
    /// Always `file`.
    #[serde(rename = "type")]
    #[schema(inline, value_type = crate::http::schema::FileType)]
    pub kind: &'static str,
    pub name: String,
    /// The folder it is in; null for the owner's root.
    pub parent_id: Option<Uuid>,
    /// Its current revision.
    pub revision: i64,
    /// A conflicted copy: the file whose revision this upload could not become.
    pub conflict_of: Option<Uuid>,
    pub size: i64,
    pub content_type: String,
    pub sha256: Option<String>,
    #[schema(example = "available")]
    pub status: &'static str,
    #[schema(example = "private")]
    pub visibility: &'static str,
    pub owner_id: Uuid,
    /// The caller's role on the file: owner, editor or viewer.
    #[schema(example = "owner")]
    pub role: &'static str,
    /// Grows by one on every metadata change; also the ETag.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// In the trash: when the file will be purged for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_at: Option<DateTime<Utc>>,
    /// Absolute URL of the public link while the file is public.
    pub public_url: Option<String>,
    /// In the `shortcuts` view: the caller's shortcut to the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortcut_id: Option<Uuid>,
}

impl FileBody {
    pub fn new(view: FileView, base: &PublicBase) -> Self {
        let f = view.file;
        Self {
            shortcut_id: view.shortcut_id,
            public_url: f
                .public_token
                .as_ref()
                .map(|t| format!("{}/public/{t}", base.0)),
            id: f.id,
            kind: "file",
            name: f.name,
            parent_id: f.parent_id,
            revision: f.revision,
            conflict_of: f.conflict_of,
            size: f.size,
            content_type: f.content_type,
            sha256: f.sha256,
            status: match f.status {
                FileStatus::Pending => "pending",
                FileStatus::Available => "available",
            },
            visibility: match f.visibility {
                Visibility::Private => "private",
                Visibility::Public => "public",
            },
            owner_id: f.owner_id,
            role: view.role.as_str(),
            version: f.version,
            created_at: f.created_at,
            updated_at: f.updated_at,
            expires_at: f.expires_at,
            deleted_at: f.deleted_at,
            purge_at: f.purge_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `owned` (default), `shared`, `shortcuts` or `trash`.
    #[param(inline, value_type = Option<crate::http::schema::View>)]
    pub view: Option<String>,
    /// 1 to 1000, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Name prefix, case-insensitive.
    pub q: Option<String>,
    /// name, -name, created_at, -created_at (default), size, -size.
    #[param(inline, value_type = Option<crate::http::schema::Sort>)]
    pub sort: Option<String>,
}

impl TryFrom<ListParams> for ListQuery {
    type Error = ValidationError;

    fn try_from(p: ListParams) -> Result<Self, ValidationError> {
        let sort = p
            .sort
            .as_deref()
            .map(Sort::parse)
            .transpose()?
            .unwrap_or_default();
        let limit = match p.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ValidationError::new("limit", format!("must be a number from 1 to {MAX_LIMIT}"))
                })?,
        };
        Ok(ListQuery {
            view: p
                .view
                .as_deref()
                .map(View::parse)
                .transpose()?
                .unwrap_or_default(),
            limit,
            cursor: p
                .cursor
                .as_deref()
                // An empty cursor is the first page, like no cursor.
                .filter(|c| !c.is_empty())
                .map(|c| Cursor::decode(c, sort))
                .transpose()?,
            prefix: p.q.filter(|q| !q.is_empty()).map(|q| q.to_lowercase()),
            sort,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FilePage {
    /// Files; in the `shared` and `trash` views, folders too.
    pub items: Vec<super::folders::ItemBody>,
    /// Pass back as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// List files.
#[utoipa::path(get, path = "/api/v1/files", tag = "files", params(ListParams), security(("bearer" = [])),
    responses((status = 200, body = FilePage), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    params: web::Query<ListParams>,
) -> Result<web::Json<FilePage>, ApiError> {
    let query = ListQuery::try_from(params.into_inner())?;
    let page = files.list(caller.0.user_id, &query).await?;
    Ok(web::Json(FilePage {
        items: page
            .items
            .into_iter()
            .map(|v| super::folders::ItemBody::new(v, &base))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

pub(crate) fn with_etag(body: FileBody) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", body.version)))
        .json(body)
}

/// One file; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = FileBody, headers(("ETag" = String))), (status = 404, body = Problem)))]
pub async fn get(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let view = files.get(caller.0.user_id, *id).await?;
    Ok(with_etag(FileBody::new(view, &base)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub name: Option<String>,
    /// `private` or `public`.
    #[schema(inline, value_type = Option<crate::http::schema::Visibility>)]
    pub visibility: Option<String>,
    /// RFC 3339 time in the future, or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Move into this folder (of the same owner); null moves to the owner's root.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
}

/// Tells an explicit `null` (Some(None)) from an absent field (None).
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl TryFrom<PatchRequest> for FilePatch {
    type Error = ValidationError;

    fn try_from(r: PatchRequest) -> Result<Self, ValidationError> {
        Ok(FilePatch {
            name: r.name.as_deref().map(FileName::parse).transpose()?,
            visibility: match r.visibility.as_deref() {
                None => None,
                Some("private") => Some(Visibility::Private),
                Some("public") => Some(Visibility::Public),
                Some(_) => {
                    return Err(ValidationError::new(
                        "visibility",
                        "must be `private` or `public`",
                    ));
                }
            },
            expires_at: r.expires_at,
            parent: r.parent_id,
        })
    }
}

/// The version an `If-Match` names; `None` for `*` or no header. A value
/// that is no version of ours can never match.
pub(crate) fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(raw) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw.to_str().unwrap_or_default().trim();
    if raw == "*" {
        return Ok(None);
    }
    raw.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| {
            ApiError::new(
                actix_web::http::StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                "If-Match must be the file's ETag, e.g. \"3\"",
            )
        })
}

/// Rename, change visibility or expiry.
#[utoipa::path(patch, path = "/api/v1/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "the ETag read before", pattern = "^(\\*|(W/)?\"?[0-9]{1,18}\"?)$")),
    request_body = PatchRequest,
    responses((status = 200, body = FileBody), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`name_taken`"), (status = 412, body = Problem)))]
pub async fn patch(
    caller: Authenticated,
    req: HttpRequest,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    id: web::Path<Uuid>,
    body: JsonObject<PatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let expected = if_match(&req)?;
    let patch = FilePatch::try_from(body.into_inner())?;
    let view = files.update(caller.0.user_id, *id, patch, expected).await?;
    Ok(with_etag(FileBody::new(view, &base)))
}

/// Move the file to the trash (restorable until its `purge_at`).
#[utoipa::path(delete, path = "/api/v1/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    caller: Authenticated,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    files.delete(caller.0.user_id, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Bring a file back from the trash.
#[utoipa::path(post, path = "/api/v1/files/{id}/restore", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = FileBody), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`not_in_trash`, or `name_taken` by a live file")))]
pub async fn restore(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let view = files.restore(caller.0.user_id, *id).await?;
    Ok(with_etag(FileBody::new(view, &base)))
}

/// Check the uploaded object now and make the file available.
#[utoipa::path(post, path = "/api/v1/files/{id}/confirm", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = FileBody), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`upload_incomplete`"),
        (status = 422, body = Problem, description = "`upload_mismatch`")))]
pub async fn confirm(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let view = files.confirm(caller.0.user_id, *id).await?;
    Ok(with_etag(FileBody::new(view, &base)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadParams {
    /// `attachment` (default) or `inline`.
    #[param(inline, value_type = Option<crate::http::schema::Disposition>)]
    pub disposition: Option<String>,
}

impl DownloadParams {
    pub(crate) fn disposition(&self) -> Result<Disposition, ValidationError> {
        self.disposition
            .as_deref()
            .map(Disposition::parse)
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

pub(crate) fn redirect(url: &str) -> HttpResponse {
    match HeaderValue::from_str(url) {
        Ok(v) => HttpResponse::Found()
            .insert_header((header::LOCATION, v))
            .finish(),
        Err(_) => ApiError::internal(anyhow::anyhow!("signed URL is not a header value")).into(),
    }
}

impl From<ApiError> for HttpResponse {
    fn from(e: ApiError) -> Self {
        actix_web::ResponseError::error_response(&e)
    }
}

/// Redirect (302) to a short-lived signed download URL.
#[utoipa::path(get, path = "/api/v1/files/{id}/content", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path), DownloadParams),
    responses((status = 302, description = "Location: the signed URL"), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`file_pending`")))]
pub async fn content(
    caller: Authenticated,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
    params: web::Query<DownloadParams>,
) -> Result<HttpResponse, ApiError> {
    let (url, _) = files
        .download_url(caller.0.user_id, *id, params.disposition()?)
        .await?;
    Ok(redirect(&url))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadUrl {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// A short-lived signed download URL.
#[utoipa::path(get, path = "/api/v1/files/{id}/download-url", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path), DownloadParams),
    responses((status = 200, body = DownloadUrl), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn download_url(
    caller: Authenticated,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
    params: web::Query<DownloadParams>,
) -> Result<web::Json<DownloadUrl>, ApiError> {
    let (url, expires_at) = files
        .download_url(caller.0.user_id, *id, params.disposition()?)
        .await?;
    Ok(web::Json(DownloadUrl { url, expires_at }))
}

/// A public link: redirect to the file while it is public.
pub async fn public(
    files: web::Data<Files>,
    token: web::Path<String>,
    params: web::Query<DownloadParams>,
) -> Result<HttpResponse, ApiError> {
    match files.public_download(&token, params.disposition()?).await {
        Ok(url) => Ok(redirect(&url)),
        Err(stowage_actors::files::FileError::NotFound(_)) => Err(ApiError::not_found(
            "public_link_not_found",
            "this public link does not exist, or its file is no longer public",
        )),
        Err(e) => Err(e.into()),
    }
}
