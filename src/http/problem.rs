//! Makes every error response problem+json with the request id: our own
//! `ApiError`s, and whatever actix answers by itself (unknown route, wrong
//! method, a CORS refusal, an oversized payload).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

use super::error::{ApiError, PROBLEM_JSON, Problem};
use super::request_id::RequestId;

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Inner layers answer errors as responses; an `Err` would only pass
    // through untouched (and `ApiError` renders problem+json by itself).
    // The request must not be cloned here: routing needs it unshared.
    let res = next.call(req).await?.map_into_boxed_body();
    if !(res.status().is_client_error() || res.status().is_server_error()) {
        return Ok(res);
    }
    let mut problem = match res
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
    {
        Some(api) => api.problem().clone(),
        None => Problem::for_status(
            res.status(),
            res.request().method().as_str(),
            res.request().path(),
        ),
    };
    problem.request_id = res
        .request()
        .extensions()
        .get::<RequestId>()
        .map(|id| id.as_str().to_owned());
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    Ok(res.map_body(|head, _| {
        head.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        BoxBody::new(body)
    }))
}
