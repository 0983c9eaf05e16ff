//! `/api/v1/files/{id}/revisions…`: a file's revisions, listed, downloaded,
//! restored as a new revision and deleted one by one.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use stowage_actors::files::{Files, Revision};
use utoipa::ToSchema;
use uuid::Uuid;

use super::files::{DownloadParams, DownloadUrl, FileBody, redirect};
use crate::http::PublicBase;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};

#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionBody {
    pub number: i64,
    pub size: i64,
    pub sha256: Option<String>,
    pub content_type: String,
    /// When it was uploaded (or restored).
    pub created_at: DateTime<Utc>,
    /// Who uploaded (or restored) it.
    pub created_by: Option<Uuid>,
    /// Whether it is the file's content now.
    pub current: bool,
}

impl From<Revision> for RevisionBody {
    fn from(r: Revision) -> Self {
        Self {
            number: r.number,
            size: r.size,
            sha256: r.sha256,
            content_type: r.content_type,
            created_at: r.created_at,
            created_by: r.created_by,
            current: r.current,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionList {
    /// Newest first; the first is the current one.
    pub items: Vec<RevisionBody>,
}

/// A file's revisions, newest first.
#[utoipa::path(get, path = "/api/v1/files/{id}/revisions", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RevisionList), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`file_pending`")))]
pub async fn list(
    caller: Authenticated,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
) -> Result<web::Json<RevisionList>, ApiError> {
    let items = files.revisions(caller.0.user_id, *id).await?;
    Ok(web::Json(RevisionList {
        items: items.into_iter().map(RevisionBody::from).collect(),
    }))
}

/// Redirect (302) to a short-lived signed download URL of one revision.
#[utoipa::path(get, path = "/api/v1/files/{id}/revisions/{n}/content", tag = "files",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("n" = i64, Path, minimum = 1), DownloadParams),
    responses((status = 302, description = "Location: the signed URL"),
        (status = 404, body = Problem, description = "`file_not_found` or `revision_not_found`"),
        (status = 409, body = Problem, description = "`file_pending`")))]
pub async fn content(
    caller: Authenticated,
    files: web::Data<Files>,
    path: web::Path<(Uuid, i64)>,
    params: web::Query<DownloadParams>,
) -> Result<HttpResponse, ApiError> {
    let (id, n) = path.into_inner();
    let (url, _) = files
        .revision_url(caller.0.user_id, id, n, params.disposition()?)
        .await?;
    Ok(redirect(&url))
}

/// A short-lived signed download URL of one revision, as JSON (what
/// `…/content` redirects to), for a browser that downloads by navigating.
#[utoipa::path(get, path = "/api/v1/files/{id}/revisions/{n}/download-url", tag = "files",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("n" = i64, Path, minimum = 1), DownloadParams),
    responses((status = 200, body = DownloadUrl),
        (status = 404, body = Problem, description = "`file_not_found` or `revision_not_found`"),
        (status = 409, body = Problem, description = "`file_pending`")))]
pub async fn download_url(
    caller: Authenticated,
    files: web::Data<Files>,
    path: web::Path<(Uuid, i64)>,
    params: web::Query<DownloadParams>,
) -> Result<web::Json<DownloadUrl>, ApiError> {
    let (id, n) = path.into_inner();
    let (url, expires_at) = files
        .revision_url(caller.0.user_id, id, n, params.disposition()?)
        .await?;
    Ok(web::Json(DownloadUrl { url, expires_at }))
}

/// Make a revision's content the file's next revision (nothing is lost).
#[utoipa::path(post, path = "/api/v1/files/{id}/revisions/{n}/restore", tag = "files",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("n" = i64, Path, minimum = 1)),
    responses((status = 200, body = FileBody),
        (status = 403, body = Problem, description = "a viewer"),
        (status = 404, body = Problem, description = "`file_not_found` or `revision_not_found`"),
        (status = 409, body = Problem, description = "`file_pending`"),
        (status = 413, body = Problem, description = "`quota_exceeded`")))]
pub async fn restore(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    path: web::Path<(Uuid, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, n) = path.into_inner();
    let view = files.restore_revision(caller.0.user_id, id, n).await?;
    Ok(super::files::with_etag(FileBody::new(view, &base)))
}

/// Delete an earlier revision (the owner only).
#[utoipa::path(delete, path = "/api/v1/files/{id}/revisions/{n}", tag = "files",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("n" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 403, body = Problem, description = "not the owner"),
        (status = 404, body = Problem, description = "`file_not_found` or `revision_not_found`"),
        (status = 409, body = Problem, description = "`current_revision` or `file_pending`")))]
pub async fn delete(
    caller: Authenticated,
    files: web::Data<Files>,
    path: web::Path<(Uuid, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, n) = path.into_inner();
    files.delete_revision(caller.0.user_id, id, n).await?;
    Ok(HttpResponse::NoContent().finish())
}
