//! `/api/v1/uploads/multipart…` (S3 multipart with presigned parts) and the
//! upload-session views `/api/v1/uploads` and `/api/v1/uploads/{id}`.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::domain::{ContentType, FileName, ValidationError};
use stowage_actors::uploads::{NewMultipart, SessionView, Uploads};
use stowage_entity::upload_sessions::UploadState;
use utoipa::ToSchema;
use uuid::Uuid;

use super::files::FileBody;
use super::uploads::{OnConflictBody, conflict};
use crate::http::PublicBase;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MultipartRequest {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub name: String,
    /// Total size in bytes: at least 1, at most the server's largest file (`STOWAGE_MAX_UPLOAD_SIZE`, 5 TiB by default).
    #[schema(minimum = 1, maximum = 5497558138880_u64)]
    pub size: u64,
    #[schema(
        max_length = 255,
        pattern = "^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+( *;[ -~]*)?$"
    )]
    pub content_type: Option<String>,
    /// 5 MiB to 5 GiB; default: the smallest whole MiB (at least 5) that keeps the upload within 10,000 parts.
    #[schema(minimum = 5242880, maximum = 5368709120_u64)]
    pub part_size: Option<u64>,
    /// The folder to upload into (yours, or one shared with you as editor); default: your root.
    pub parent_id: Option<Uuid>,
    /// When the name is taken: `fail` (409, the default), `rename` or `revision`.
    pub on_conflict: Option<OnConflictBody>,
    /// With `on_conflict: revision`: the revision these bytes are based on (412 if the file is past it).
    #[schema(minimum = 1)]
    pub base_revision: Option<i64>,
}

impl TryFrom<MultipartRequest> for NewMultipart {
    type Error = ValidationError;

    fn try_from(r: MultipartRequest) -> Result<Self, ValidationError> {
        Ok(NewMultipart {
            name: FileName::parse(&r.name)?,
            size: r.size,
            content_type: r
                .content_type
                .as_deref()
                .map(ContentType::parse)
                .transpose()?
                .unwrap_or_else(ContentType::octet_stream),
            part_size: r.part_size,
            parent: r.parent_id,
            conflict: conflict(r.on_conflict, r.base_revision)?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MultipartBody {
    pub file: FileBody,
    /// Use in the other multipart routes.
    pub upload_id: Uuid,
    pub part_size: u64,
    pub part_count: u32,
    /// When the session ends if nothing happens (each call renews it).
    pub expires_at: DateTime<Utc>,
}

/// Start a multipart upload.
#[utoipa::path(post, path = "/api/v1/uploads/multipart", tag = "uploads", security(("bearer" = [])),
    request_body = MultipartRequest,
    responses((status = 201, body = MultipartBody), (status = 400, body = Problem),
        (status = 403, body = Problem, description = "a viewer's folder as parent"),
        (status = 404, body = Problem, description = "`folder_not_found`: the parent"),
        (status = 409, body = Problem, description = "`name_taken`"), (status = 412, body = Problem, description = "`revision_conflict`"), (status = 413, body = Problem)))]
pub async fn create(
    caller: Authenticated,
    uploads: web::Data<Uploads>,
    base: web::Data<PublicBase>,
    body: JsonObject<MultipartRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewMultipart::try_from(body.into_inner())?;
    let (file, session) = uploads.create_multipart(caller.0.user_id, new).await?;
    let plan = session
        .plan
        .ok_or_else(|| anyhow::anyhow!("a multipart session without a plan"))?;
    Ok(HttpResponse::Created().json(MultipartBody {
        file: FileBody::new(file, &base),
        upload_id: session.session.id,
        part_size: plan.part_size,
        part_count: plan.part_count,
        expires_at: session.session.expires_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrl {
    pub url: String,
    #[schema(example = "PUT")]
    pub method: &'static str,
    /// Send these with the PUT; the answer's `ETag` header is the part's ETag.
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// A presigned URL for one part.
#[utoipa::path(get, path = "/api/v1/uploads/multipart/{upload_id}/parts/{n}", tag = "uploads", security(("bearer" = [])),
    params(("upload_id" = Uuid, Path), ("n" = u32, Path, description = "1 to part_count", minimum = 1, maximum = 10000)),
    responses((status = 200, body = PartUrl), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 410, body = Problem, description = "`upload_expired`")))]
pub async fn part_url(
    caller: Authenticated,
    uploads: web::Data<Uploads>,
    path: web::Path<(Uuid, u32)>,
) -> Result<web::Json<PartUrl>, ApiError> {
    let (upload, n) = path.into_inner();
    let request = uploads.part_url(caller.0.user_id, upload, n).await?;
    Ok(web::Json(PartUrl {
        url: request.url,
        method: request.method,
        headers: request.headers,
        expires_at: request.expires_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartBody {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartList {
    pub parts: Vec<PartBody>,
}

/// The parts the store holds so far: what to resume from.
#[utoipa::path(get, path = "/api/v1/uploads/multipart/{upload_id}/parts", tag = "uploads", security(("bearer" = [])),
    params(("upload_id" = Uuid, Path)),
    responses((status = 200, body = PartList), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn parts(
    caller: Authenticated,
    uploads: web::Data<Uploads>,
    upload: web::Path<Uuid>,
) -> Result<web::Json<PartList>, ApiError> {
    let parts = uploads.parts(caller.0.user_id, *upload).await?;
    Ok(web::Json(PartList {
        parts: parts
            .into_iter()
            .map(|p| PartBody {
                part_number: p.part_number,
                size: p.size,
                etag: p.etag,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    #[schema(minimum = 1, maximum = 10000)]
    pub part_number: u32,
    pub etag: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// Every part, in order, with the ETag its PUT answered.
    pub parts: Vec<CompletedPart>,
}

/// Join the parts: the file becomes available.
#[utoipa::path(post, path = "/api/v1/uploads/multipart/{upload_id}/complete", tag = "uploads", security(("bearer" = [])),
    params(("upload_id" = Uuid, Path)), request_body = CompleteRequest,
    responses((status = 200, body = FileBody), (status = 400, body = Problem, description = "`parts_mismatch`"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 410, body = Problem)))]
pub async fn complete(
    caller: Authenticated,
    uploads: web::Data<Uploads>,
    base: web::Data<PublicBase>,
    upload: web::Path<Uuid>,
    body: JsonObject<CompleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let claimed = body
        .into_inner()
        .parts
        .into_iter()
        .map(|p| (p.part_number, p.etag))
        .collect();
    let file = uploads.complete(caller.0.user_id, *upload, claimed).await?;
    Ok(HttpResponse::Ok().json(FileBody::new(file, &base)))
}

/// Abort: the parts are removed, and the pending file with them.
#[utoipa::path(delete, path = "/api/v1/uploads/multipart/{upload_id}", tag = "uploads", security(("bearer" = [])),
    params(("upload_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn abort(
    caller: Authenticated,
    uploads: web::Data<Uploads>,
    upload: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    uploads.abort(caller.0.user_id, *upload).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadSession {
    pub id: Uuid,
    #[schema(example = "multipart")]
    pub kind: &'static str,
    pub file_id: Uuid,
    pub size: Option<i64>,
    /// Bytes received so far.
    pub offset: i64,
    pub parts_received: i32,
    #[schema(example = "active")]
    pub state: &'static str,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<SessionView> for UploadSession {
    fn from(v: SessionView) -> Self {
        let s = v.session;
        Self {
            id: s.id,
            kind: s.kind.as_str(),
            file_id: s.file_id,
            size: s.size,
            offset: if s.state == UploadState::Completed {
                s.size.unwrap_or(s.offset)
            } else {
                s.offset
            },
            parts_received: s.parts_received,
            state: match s.state {
                UploadState::Active => "active",
                UploadState::Completed => "completed",
                UploadState::Aborted => "aborted",
                UploadState::Expired => "expired",
            },
            created_at: s.created_at,
            updated_at: s.updated_at,
            expires_at: s.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<UploadSession>,
}

/// The caller's unfinished uploads, of every kind.
#[utoipa::path(get, path = "/api/v1/uploads", tag = "uploads", security(("bearer" = [])),
    responses((status = 200, body = SessionList)))]
pub async fn list_sessions(
    caller: Authenticated,
    uploads: web::Data<Uploads>,
) -> Result<web::Json<SessionList>, ApiError> {
    let items = uploads.list(caller.0.user_id).await?;
    Ok(web::Json(SessionList {
        items: items.into_iter().map(UploadSession::from).collect(),
    }))
}

/// One upload session.
#[utoipa::path(get, path = "/api/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UploadSession), (status = 404, body = Problem)))]
pub async fn get_session(
    caller: Authenticated,
    uploads: web::Data<Uploads>,
    id: web::Path<Uuid>,
) -> Result<web::Json<UploadSession>, ApiError> {
    Ok(web::Json(uploads.get(caller.0.user_id, *id).await?.into()))
}
