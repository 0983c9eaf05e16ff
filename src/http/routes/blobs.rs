//! The local blob store's signed URLs: PUT stores the body streaming, GET
//! and HEAD serve it with `Range` and `ETag`. Not under `/api/v1`: these
//! move bytes and are never rate limited. Registered only when the local
//! store is the store (see [`crate::http::configure_blobs`]).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::Arc;
use stowage_actors::domain::{ByteRange, RangeError};
use stowage_actors::storage::signing::BlobMethod;

use stowage_actors::storage::{LocalStore, PutError};

use crate::http::error::ApiError;

/// What blob responses may do in a browser: nothing active. The web app
/// on this origin may show one in a frame (a preview): sandboxed, it runs
/// no script and has no origin of its own.
const BLOB_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'self'";

fn refused(e: stowage_actors::storage::GrantError) -> ApiError {
    let code = match e {
        stowage_actors::storage::GrantError::Expired => "url_expired",
        stowage_actors::storage::GrantError::Malformed => "url_malformed",
        stowage_actors::storage::GrantError::BadSignature => "signature_mismatch",
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        code,
        format!("{e}; ask the API for a new URL"),
    )
}

pub async fn put(
    req: HttpRequest,
    key: web::Path<String>,
    store: web::Data<Arc<LocalStore>>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let grant = store
        .verify(BlobMethod::Put, &key, req.query_string())
        .map_err(refused)?;
    let expected = grant.size.unwrap_or(0);
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len: Option<u64> = len.to_str().ok().and_then(|v| v.parse().ok());
        if len != Some(expected) {
            return Err(ApiError::bad_request(
                "size_mismatch",
                format!("this URL accepts exactly {expected} bytes; Content-Length says otherwise"),
            ));
        }
    }
    let ip = crate::http::client_ip::ClientIp::of(&req).to_string();
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match store.put_stream(&grant, body, &ip, &agent).await {
        Ok(meta) => {
            let mut res = HttpResponse::Ok();
            if let Some(etag) = meta.etag {
                res.insert_header((header::ETAG, format!("\"{etag}\"")));
            }
            Ok(res.finish())
        }
        Err(e @ (PutError::TooLong { .. } | PutError::TooShort { .. })) => Err(
            ApiError::bad_request("size_mismatch", format!("{e}; nothing was stored")),
        ),
        Err(e @ PutError::Interrupted(_)) => {
            Err(ApiError::bad_request("upload_interrupted", e.to_string()))
        }
        Err(PutError::Storage(e)) => Err(e.into()),
    }
}

pub async fn get(
    req: HttpRequest,
    key: web::Path<String>,
    store: web::Data<Arc<LocalStore>>,
) -> Result<HttpResponse, ApiError> {
    let grant = store
        .verify(BlobMethod::Get, &key, req.query_string())
        .map_err(refused)?;
    let Some(object) = store.read(&key).await? else {
        return Err(ApiError::not_found(
            "object_not_found",
            "no object is stored at this URL",
        ));
    };
    let meta = object.meta.clone();
    let size = meta.size;
    let etag = meta.etag.map(|e| format!("\"{e}\""));
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_holds(&req, etag.as_deref()))
        .map(|h| ByteRange::parse(h, size));

    let mut res = HttpResponse::build(StatusCode::OK);
    res.insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_SECURITY_POLICY, BLOB_CSP))
        .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"));
    if let Some(etag) = &etag {
        res.insert_header((header::ETAG, etag.as_str()));
    }
    let content_type = grant
        .content_type
        .or(meta.content_type)
        .unwrap_or_else(|| "application/octet-stream".into());
    res.insert_header((header::CONTENT_TYPE, content_type));
    if let Some(d) = grant
        .disposition
        .and_then(|d| HeaderValue::from_str(&d).ok())
    {
        res.insert_header((header::CONTENT_DISPOSITION, d));
    }
    let (start, len) = match range {
        None | Some(Err(RangeError::Ignored)) => (0, size),
        Some(Err(RangeError::Unsatisfiable)) => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish());
        }
        Some(Ok(r)) => {
            res.status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_RANGE, r.content_range(size)));
            (r.start, r.len())
        }
    };
    // HEAD gets the same head; actix sends no body for it.
    if req.method() == actix_web::http::Method::HEAD || len == 0 {
        let nothing =
            futures_util::stream::empty::<Result<actix_web::web::Bytes, std::io::Error>>();
        return Ok(res.no_chunking(len).streaming(nothing));
    }
    // The first piece is read (and opened) before answering: a damaged
    // object is a 500, never a body of other bytes.
    let stream = object.range(start, len).await.map_err(|e| {
        tracing::error!(key = %key, error = %e, "a stored object does not read back");
        ApiError::internal(e.into())
    })?;
    Ok(res.no_chunking(len).streaming(stream))
}

/// `If-Range` with an ETag: honour the range only if the object is unchanged.
fn if_range_holds(req: &HttpRequest, etag: Option<&str>) -> bool {
    match req
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(v) => Some(v) == etag,
    }
}
