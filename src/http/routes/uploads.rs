//! `/api/v1/uploads` and `/api/v1/uploads/batch`: direct uploads with a
//! presigned PUT.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::domain::{ContentType, FileName, Sha256Hex, ValidationError};
use stowage_actors::files::{Conflict, DirectUpload, Files, MAX_BATCH, NewUpload};
use utoipa::ToSchema;
use uuid::Uuid;

use super::files::FileBody;
use crate::http::PublicBase;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    #[schema(
        example = "report.pdf",
        min_length = 1,
        max_length = 255,
        pattern = "^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub name: String,
    /// Exact size in bytes: at most 5 GiB (larger files go through multipart or tus).
    #[schema(maximum = 5368709120_u64)]
    pub size: u64,
    /// Default `application/octet-stream`.
    #[schema(
        max_length = 255,
        pattern = "^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+( *;[ -~]*)?$"
    )]
    pub content_type: Option<String>,
    /// Hex SHA-256 of the bytes; when given, the file only becomes available if it matches.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: Option<String>,
    /// Lifetime of the upload URL: 1 to 604800 seconds, default 3600.
    #[schema(minimum = 1, maximum = 604800)]
    pub expires_in_seconds: Option<u64>,
    /// The folder to upload into (yours, or one shared with you as editor); default: your root.
    pub parent_id: Option<Uuid>,
    /// When the name is taken: `fail` (409, the default), `rename` or `revision`.
    pub on_conflict: Option<OnConflictBody>,
    /// With `on_conflict: revision`: the revision these bytes are based on (412 if the file is past it).
    #[schema(minimum = 1)]
    pub base_revision: Option<i64>,
}

/// What an upload does when its name is taken in its folder.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnConflictBody {
    /// 409 `name_taken`.
    Fail,
    /// The first free name: `report (1).pdf`, `report (2).pdf`…
    Rename,
    /// The next revision of the file there.
    Revision,
}

impl OnConflictBody {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Rename => "rename",
            Self::Revision => "revision",
        }
    }
}

/// The `on_conflict` and `base_revision` of an upload request.
pub(crate) fn conflict(
    on: Option<OnConflictBody>,
    base: Option<i64>,
) -> Result<Conflict, ValidationError> {
    Conflict::parse(on.map(OnConflictBody::as_str), base)
}

impl TryFrom<UploadRequest> for NewUpload {
    type Error = ValidationError;

    fn try_from(r: UploadRequest) -> Result<Self, ValidationError> {
        Ok(NewUpload {
            name: FileName::parse(&r.name)?,
            size: r.size,
            content_type: r
                .content_type
                .as_deref()
                .map(ContentType::parse)
                .transpose()?
                .unwrap_or_else(ContentType::octet_stream),
            sha256: r.sha256.as_deref().map(Sha256Hex::parse).transpose()?,
            url_ttl: NewUpload::url_ttl(r.expires_in_seconds)?,
            parent: r.parent_id,
            conflict: conflict(r.on_conflict, r.base_revision)?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTicket {
    #[schema(example = "PUT")]
    pub method: &'static str,
    pub url: String,
    /// Send these headers with the PUT, exactly.
    pub headers: BTreeMap<String, String>,
    /// Form fields (none for a PUT).
    pub fields: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DirectUploadBody {
    pub file: FileBody,
    pub upload: UploadTicket,
}

impl DirectUploadBody {
    fn new(d: DirectUpload, base: &PublicBase) -> Self {
        Self {
            file: FileBody::new(d.file, base),
            upload: UploadTicket {
                method: d.request.method,
                url: d.request.url,
                headers: d.request.headers,
                fields: BTreeMap::new(),
                expires_at: d.request.expires_at,
            },
        }
    }
}

/// Create a pending file and a presigned PUT for its bytes.
#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads", security(("bearer" = [])),
    request_body = UploadRequest,
    responses((status = 201, body = DirectUploadBody), (status = 400, body = Problem),
        (status = 403, body = Problem, description = "a viewer's folder as parent"),
        (status = 404, body = Problem, description = "`folder_not_found`: the parent"),
        (status = 409, body = Problem, description = "`name_taken`"),
        (status = 412, body = Problem, description = "`revision_conflict`: the file is past `base_revision`"),
        (status = 413, body = Problem, description = "`file_too_large`")))]
pub async fn create(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    body: JsonObject<UploadRequest>,
) -> Result<HttpResponse, ApiError> {
    let upload = NewUpload::try_from(body.into_inner())?;
    let mut created = files
        .create_direct_uploads(caller.0.user_id, vec![upload])
        .await?;
    let created = created
        .pop()
        .ok_or_else(|| anyhow::anyhow!("an upload was requested but none was created"))?;
    Ok(HttpResponse::Created().json(DirectUploadBody::new(created, &base)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 100 uploads.
    #[schema(min_items = 1, max_items = 100)]
    pub files: Vec<UploadRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchBody {
    pub items: Vec<DirectUploadBody>,
}

/// Create up to 100 direct uploads at once: all of them, or none.
#[utoipa::path(post, path = "/api/v1/uploads/batch", tag = "uploads", security(("bearer" = [])),
    request_body = BatchRequest,
    responses((status = 201, body = BatchBody), (status = 400, body = Problem),
        (status = 403, body = Problem, description = "a viewer's folder as parent"),
        (status = 404, body = Problem, description = "`folder_not_found`: a parent"), (status = 409, body = Problem)))]
pub async fn batch(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    body: JsonObject<BatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let requests = body.into_inner().files;
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return Err(
            ValidationError::new("files", format!("must hold 1 to {MAX_BATCH} uploads")).into(),
        );
    }
    let uploads = requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            NewUpload::try_from(r).map_err(|e| {
                ApiError::from(ValidationError::new(
                    "files",
                    format!("[{i}].{}: {}", e.field, e.message),
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let created = files
        .create_direct_uploads(caller.0.user_id, uploads)
        .await?;
    Ok(HttpResponse::Created().json(BatchBody {
        items: created
            .into_iter()
            .map(|d| DirectUploadBody::new(d, &base))
            .collect(),
    }))
}
