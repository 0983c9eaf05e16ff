//! `/api/v1/tus` and `/api/v1/tus/{id}`: tus 1.0 with the creation,
//! creation-with-upload, creation-defer-length, termination, expiration and
//! checksum extensions. The protocol's headers are read and written here;
//! the upload itself is [`stowage_actors::tus`]'s.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use stowage_actors::events::ACTING_KEY;
use stowage_actors::files::{Conflict, OnConflict, Placement};
use stowage_actors::tus::{self, Checksum, Metadata, NewUpload, PatchRequest, Tus, TusUpload};
use uuid::Uuid;

use crate::http::PublicBase;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};

const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION: HeaderName = HeaderName::from_static("tus-version");
const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
const TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
const METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");

/// What the server supports: 204 with `Tus-Version`, `Tus-Extension`,
/// `Tus-Max-Size` and `Tus-Checksum-Algorithm`. No token needed.
#[utoipa::path(options, path = "/api/v1/tus", tag = "uploads",
    responses((status = 204, description = "tus capabilities in the headers")))]
pub async fn options(tus: web::Data<Tus>) -> HttpResponse {
    let mut res = HttpResponse::NoContent();
    res.insert_header((TUS_RESUMABLE, tus::VERSION))
        .insert_header((TUS_VERSION, tus::VERSION))
        .insert_header((TUS_EXTENSION, tus::EXTENSIONS))
        .insert_header((TUS_MAX_SIZE, tus.max_upload_size().to_string()))
        .insert_header((TUS_CHECKSUM_ALGORITHM, tus::CHECKSUM_ALGORITHMS));
    res.finish()
}

/// Create a tus upload (`Upload-Length` or `Upload-Defer-Length: 1`,
/// `Upload-Metadata` with `filename`/`name` and `filetype`/`type`); with
/// `Content-Type: application/offset+octet-stream` the body is its first bytes.
#[utoipa::path(post, path = "/api/v1/tus", tag = "uploads", security(("bearer" = [])),
    request_body(content = inline(crate::http::schema::Octets), content_type = "application/offset+octet-stream", description = "creation-with-upload: the first bytes"),
    params(("Tus-Resumable" = String, Header, description = "1.0.0", pattern = "^1\\.0\\.0$"),
        ("Upload-Length" = Option<u64>, Header), ("Upload-Defer-Length" = Option<String>, Header, pattern = "^1$"),
        ("Upload-Metadata" = Option<String>, Header, max_length = 16384, description = "at most 64 `key base64` pairs"), ("Upload-Checksum" = Option<String>, Header, pattern = "^(sha1 [A-Za-z0-9+/]{26}|sha256 [A-Za-z0-9+/]{42})[AEIMQUYcgkosw048]=$")),
    responses((status = 201, description = "`Location` of the upload, `Upload-Expires`, `Upload-Offset` with a body"),
        (status = 400, body = Problem), (status = 403, body = Problem, description = "a viewer's folder as `parent_id`"),
        (status = 404, body = Problem, description = "`folder_not_found`: the `parent_id` in the metadata"),
        (status = 409, body = Problem, description = "`name_taken`"),
        (status = 412, body = Problem, description = "missing or unsupported `Tus-Resumable`, or `revision_conflict` (metadata `on_conflict`, `base_revision`)"),
        (status = 413, body = Problem), (status = 460, body = Problem, description = "`checksum_mismatch`")))]
pub async fn create(
    req: HttpRequest,
    auth: Authenticated,
    tus: web::Data<Tus>,
    base: web::Data<PublicBase>,
    body: web::Payload,
) -> HttpResponse {
    let at = format!("{}/api/v1/tus", base.0.trim_end_matches('/'));
    create_as(req, Uploader::Caller(auth.0.user_id), tus, &at, body).await
}

/// Who creates a tus upload.
pub enum Uploader {
    /// A signed-in caller, into their root or a folder they may add to.
    Caller(Uuid),
    /// Anyone with a drop folder's link: the folder owner's upload, into
    /// that folder, a taken name renamed.
    Drop(Placement),
}

/// A tus creation; the upload's URL is `<at>/<id>`.
pub async fn create_as(
    req: HttpRequest,
    uploader: Uploader,
    tus: web::Data<Tus>,
    at: &str,
    body: web::Payload,
) -> HttpResponse {
    let owner = match &uploader {
        Uploader::Caller(owner) => *owner,
        Uploader::Drop(place) => place.owner,
    };
    let result = async {
        check_version(req.headers())?;
        let length = match (
            header_u64(req.headers(), &UPLOAD_LENGTH)?,
            header_str(req.headers(), &UPLOAD_DEFER_LENGTH)?,
        ) {
            (Some(_), Some(_)) => {
                return Err(bad_header(
                    "Upload-Defer-Length",
                    "send either Upload-Length or Upload-Defer-Length, not both",
                ));
            }
            (Some(l), None) => Some(l),
            (None, Some("1")) => None,
            (None, Some(_)) => {
                return Err(bad_header("Upload-Defer-Length", "the only value is 1"));
            }
            (None, None) => {
                return Err(tus::TusError::MissingHeader(
                    "Upload-Length (or Upload-Defer-Length: 1)",
                )
                .into());
            }
        };
        let metadata = Metadata::parse(header_str(req.headers(), &UPLOAD_METADATA)?.unwrap_or(""))?;
        let with_body = is_offset_stream(req.headers());
        // creation-with-upload: the checksum and length are checked before anything is created.
        let checksum = if with_body {
            checksum(req.headers())?
        } else {
            None
        };
        let new = NewUpload { length, metadata };
        let upload = match uploader {
            Uploader::Caller(owner) => tus.create(owner, new).await?,
            Uploader::Drop(place) => {
                let rename = Conflict {
                    on: OnConflict::Rename,
                    base: None,
                };
                tus.create_in(place.owner, place, new, rename).await?
            }
        };
        Ok::<_, ApiError>((upload, with_body, checksum))
    }
    .await;
    let (upload, with_body, checksum) = match result {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let location = format!("{at}/{}", upload.id);
    let upload = if with_body && upload.length != Some(0) {
        let patch = PatchRequest {
            offset: 0,
            length: None,
            content_length: content_length(req.headers()),
            checksum,
        };
        match run_patch(tus, owner, upload.id, patch, body).await {
            Ok(u) => u,
            Err(e) => {
                let mut res = failure(e);
                insert(res.headers_mut(), header::LOCATION, &location);
                return res;
            }
        }
    } else {
        upload
    };
    let mut res = HttpResponse::Created();
    res.insert_header((TUS_RESUMABLE, tus::VERSION))
        .insert_header((header::LOCATION, location));
    if with_body {
        res.insert_header((UPLOAD_OFFSET, upload.offset.to_string()));
    }
    if let Some(at) = upload.expires_at {
        res.insert_header((UPLOAD_EXPIRES, http_date(at)));
    }
    res.finish()
}

/// An upload's `Upload-Offset`, `Upload-Length` (or `Upload-Defer-Length`),
/// `Upload-Metadata` and `Upload-Expires`.
#[utoipa::path(head, path = "/api/v1/tus/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0", pattern = "^1\\.0\\.0$")),
    responses((status = 200, description = "the upload's state in the headers"),
        (status = 404, body = Problem), (status = 410, body = Problem, description = "`upload_expired`"),
        (status = 412, body = Problem)))]
pub async fn head(
    req: HttpRequest,
    auth: Authenticated,
    tus: web::Data<Tus>,
    id: web::Path<String>,
) -> HttpResponse {
    head_as(req, auth.0.user_id, tus, &id).await
}

/// HEAD of `owner`'s upload `id`.
pub async fn head_as(req: HttpRequest, owner: Uuid, tus: web::Data<Tus>, id: &str) -> HttpResponse {
    let result = async {
        check_version(req.headers())?;
        let id = upload_id(id)?;
        Ok::<_, ApiError>(tus.head(owner, id).await?)
    }
    .await;
    let upload = match result {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    let mut res = HttpResponse::Ok();
    res.insert_header((TUS_RESUMABLE, tus::VERSION))
        .insert_header((UPLOAD_OFFSET, upload.offset.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match upload.length {
        Some(l) => res.insert_header((UPLOAD_LENGTH, l.to_string())),
        None => res.insert_header((UPLOAD_DEFER_LENGTH, "1")),
    };
    if let Some(m) = &upload.metadata {
        res.insert_header((UPLOAD_METADATA, m.as_str()));
    }
    if let Some(at) = upload.expires_at {
        res.insert_header((UPLOAD_EXPIRES, http_date(at)));
    }
    res.finish()
}

/// Append the body (`application/offset+octet-stream`) at `Upload-Offset`.
#[utoipa::path(patch, path = "/api/v1/tus/{id}", tag = "uploads", security(("bearer" = [])),
    request_body(content = inline(crate::http::schema::Octets), content_type = "application/offset+octet-stream", description = "the bytes from `Upload-Offset` on"),
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0", pattern = "^1\\.0\\.0$"),
        ("Upload-Offset" = u64, Header), ("Upload-Length" = Option<u64>, Header, description = "for a deferred length"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1 <base64>` or `sha256 <base64>`", pattern = "^(sha1 [A-Za-z0-9+/]{26}|sha256 [A-Za-z0-9+/]{42})[AEIMQUYcgkosw048]=$")),
    responses((status = 204, description = "`Upload-Offset` and `Upload-Expires`"),
        (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`offset_mismatch`"),
        (status = 410, body = Problem, description = "`upload_expired`"), (status = 412, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 423, body = Problem, description = "`upload_locked`: another request holds it; retry"),
        (status = 460, body = Problem, description = "`checksum_mismatch`: the chunk was discarded")))]
pub async fn patch(
    req: HttpRequest,
    auth: Authenticated,
    tus: web::Data<Tus>,
    id: web::Path<String>,
    body: web::Payload,
) -> HttpResponse {
    patch_as(req, auth.0.user_id, tus, &id, body).await
}

/// PATCH of `owner`'s upload `id`.
pub async fn patch_as(
    req: HttpRequest,
    owner: Uuid,
    tus: web::Data<Tus>,
    id: &str,
    body: web::Payload,
) -> HttpResponse {
    let parsed = async {
        check_version(req.headers())?;
        let id = upload_id(id)?;
        if !is_offset_stream(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("a PATCH body must be sent as {OFFSET_OCTET_STREAM}"),
            ));
        }
        let offset = header_u64(req.headers(), &UPLOAD_OFFSET)?
            .ok_or(tus::TusError::MissingHeader("Upload-Offset"))?;
        let patch = PatchRequest {
            offset,
            length: header_u64(req.headers(), &UPLOAD_LENGTH)?,
            content_length: content_length(req.headers()),
            checksum: checksum(req.headers())?,
        };
        Ok::<_, ApiError>((id, patch))
    }
    .await;
    let (id, patch) = match parsed {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    match run_patch(tus, owner, id, patch, body).await {
        Ok(upload) => {
            let mut res = HttpResponse::NoContent();
            res.insert_header((TUS_RESUMABLE, tus::VERSION))
                .insert_header((UPLOAD_OFFSET, upload.offset.to_string()));
            if let Some(at) = upload.expires_at {
                res.insert_header((UPLOAD_EXPIRES, http_date(at)));
            }
            res.finish()
        }
        Err(e) => failure(e),
    }
}

/// Terminate an unfinished upload: its bytes and its pending file go.
#[utoipa::path(delete, path = "/api/v1/tus/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0", pattern = "^1\\.0\\.0$")),
    responses((status = 204), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`upload_completed`"), (status = 412, body = Problem)))]
pub async fn delete(
    req: HttpRequest,
    auth: Authenticated,
    tus: web::Data<Tus>,
    id: web::Path<String>,
) -> HttpResponse {
    let result = async {
        check_version(req.headers())?;
        let id = upload_id(&id)?;
        Ok::<_, ApiError>(tus.terminate(auth.0.user_id, id).await?)
    }
    .await;
    match result {
        Ok(()) => HttpResponse::NoContent()
            .insert_header((TUS_RESUMABLE, tus::VERSION))
            .finish(),
        Err(e) => failure(e),
    }
}

/// `POST` with `X-HTTP-Method-Override`, for clients that cannot send
/// PATCH or DELETE.
pub async fn overridden(
    req: HttpRequest,
    auth: Authenticated,
    tus: web::Data<Tus>,
    id: web::Path<String>,
    body: web::Payload,
) -> HttpResponse {
    let method = req
        .headers()
        .get(&METHOD_OVERRIDE)
        .and_then(|v| v.to_str().ok())
        .and_then(|m| Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).ok());
    match method {
        Some(Method::PATCH) => patch(req, auth, tus, id, body).await,
        Some(Method::DELETE) => delete(req, auth, tus, id).await,
        Some(Method::HEAD) => head(req, auth, tus, id).await,
        _ => {
            let mut res = failure(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "POST on an upload needs X-HTTP-Method-Override: PATCH, DELETE or HEAD",
            ));
            insert(
                res.headers_mut(),
                actix_web::http::header::ALLOW,
                "OPTIONS, HEAD, PATCH, DELETE",
            );
            res
        }
    }
}

/// Runs the PATCH in its own task on this worker: if the client goes away
/// the handler is dropped, but the task still acknowledges the bytes that
/// arrived.
async fn run_patch(
    tus: web::Data<Tus>,
    owner: Uuid,
    id: Uuid,
    patch: PatchRequest,
    body: web::Payload,
) -> Result<TusUpload, ApiError> {
    let tus = tus.into_inner();
    // The task's events name the request's key, and its logs and spans
    // are the request's, as the handler's would be.
    let key = ACTING_KEY.try_with(std::cell::Cell::get).ok().flatten();
    let work = async move { tus.patch(owner, id, patch, body).await };
    let work = tracing::Instrument::in_current_span(work);
    actix_web::rt::spawn(ACTING_KEY.scope(std::cell::Cell::new(key), work))
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("the upload task failed: {e}")))?
        .map_err(ApiError::from)
}

/// An error answer that still speaks tus.
pub(crate) fn failure(e: ApiError) -> HttpResponse {
    let precondition = e.problem().status == StatusCode::PRECONDITION_FAILED.as_u16();
    let mut res = HttpResponse::from_error(e);
    insert(res.headers_mut(), TUS_RESUMABLE, tus::VERSION);
    if precondition {
        insert(res.headers_mut(), TUS_VERSION, tus::VERSION);
    }
    res
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(&TUS_RESUMABLE).and_then(|v| v.to_str().ok()) {
        Some(v) if v.trim() == tus::VERSION => Ok(()),
        Some(v) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "tus_version_unsupported",
            format!(
                "Tus-Resumable {v:?} is not supported; this server speaks {}",
                tus::VERSION
            ),
        )),
        None => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "tus_version_missing",
            format!("send Tus-Resumable: {}", tus::VERSION),
        )),
    }
}

pub(crate) fn upload_id(raw: &str) -> Result<Uuid, ApiError> {
    // A malformed id names no upload.
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::not_found("upload_not_found", format!("upload {raw:?} does not exist"))
    })
}

fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| bad_header(name.as_str(), "it is not ASCII text"))
        })
        .transpose()
}

fn header_u64(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ApiError> {
    header_str(headers, name)?
        .map(|v| {
            // Digits only: no sign, no spaces, no hex.
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_header(
                    name.as_str(),
                    "it must be a non-negative integer",
                ));
            }
            v.parse()
                .map_err(|_| bad_header(name.as_str(), "the number is too large"))
        })
        .transpose()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    Ok(header_str(headers, &UPLOAD_CHECKSUM)?
        .map(Checksum::parse)
        .transpose()?)
}

fn bad_header(name: &str, why: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_header",
        format!("the {name} header is malformed: {why}"),
    )
}

/// RFC 9110's date format, as `Upload-Expires` wants.
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_http_dates() {
        let at = DateTime::parse_from_rfc3339("2014-06-25T16:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(at), "Wed, 25 Jun 2014 16:00:00 GMT");
    }
}
