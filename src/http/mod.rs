//! The HTTP face: routes, the cross-cutting layers, and the mapping of
//! domain errors onto problem+json.
//!
//! Layers, outermost first: request id → client address → tracing →
//! problem+json → metrics →
//! security headers → CORS → rate limiting → the route (bearer auth is an
//! extractor; body limits are per scope).

pub mod auth;
pub mod client_ip;
pub mod error;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod schema;
pub mod webapp;

use actix_cors::Cors;
use actix_web::error::JsonPayloadError;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::DefaultHeaders;
use actix_web::web;

use self::error::ApiError;
use self::routes::{
    account, admin, auth as auth_routes, blobs, drop, files, folders, keys, links, multipart, ops,
    revisions, shares, tus, uploads, webhooks,
};

/// JSON bodies of the auth routes are small.
const AUTH_BODY_LIMIT: usize = 16 * 1024;
/// Default JSON body limit of the other API routes.
const API_BODY_LIMIT: usize = 64 * 1024;
/// A batch of 100 uploads with long names.
const BATCH_BODY_LIMIT: usize = 1024 * 1024;

/// The base of the URLs the server hands out (`STOWAGE_PUBLIC_URL`).
#[derive(Debug, Clone)]
pub struct PublicBase(pub String);

/// Every route, in one place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The web app: its page, its assets (client routes: see `webapp::fallback`).
    cfg.service(
        web::resource("/")
            .route(web::get().to(webapp::root))
            .route(web::head().to(webapp::root)),
    );
    for asset in ["/assets/{file:.+}", "/favicon.svg"] {
        cfg.service(
            web::resource(asset)
                .route(web::get().to(webapp::asset))
                .route(web::head().to(webapp::asset)),
        );
    }
    cfg.service(web::resource("/healthz").route(web::get().to(ops::healthz)))
        .service(web::resource("/readyz").route(web::get().to(ops::readyz)))
        .service(web::resource("/metrics").route(web::get().to(ops::metrics)))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(json_bodies))
                .wrap(actix_web::middleware::from_fn(acting_key))
                .app_data(json_config(API_BODY_LIMIT))
                .service(
                    web::scope("/auth")
                        .app_data(json_config(AUTH_BODY_LIMIT))
                        .service(
                            web::resource("/signup").route(web::post().to(auth_routes::signup)),
                        )
                        .service(web::resource("/login").route(web::post().to(auth_routes::login)))
                        .service(
                            web::resource("/refresh").route(web::post().to(auth_routes::refresh)),
                        )
                        .service(
                            web::resource("/logout").route(web::post().to(auth_routes::logout)),
                        ),
                )
                .service(web::resource("/me").route(web::get().to(account::me)))
                .service(
                    web::resource("/keys")
                        .route(web::post().to(keys::create))
                        .route(web::get().to(keys::list)),
                )
                .service(web::resource("/keys/{id}").route(web::delete().to(keys::revoke)))
                .service(
                    web::resource("/webhooks")
                        .route(web::post().to(webhooks::create))
                        .route(web::get().to(webhooks::list)),
                )
                .service(
                    web::resource("/webhooks/{id}")
                        .route(web::get().to(webhooks::get))
                        .route(web::patch().to(webhooks::patch))
                        .route(web::delete().to(webhooks::delete)),
                )
                .service(
                    web::resource("/webhooks/{id}/deliveries")
                        .route(web::get().to(webhooks::deliveries)),
                )
                .service(
                    web::resource("/webhooks/{id}/deliveries/{delivery_id}/retry")
                        .route(web::post().to(webhooks::retry)),
                )
                .service(
                    web::resource("/admin/users")
                        .route(web::post().to(admin::create))
                        .route(web::get().to(admin::find)),
                )
                .service(
                    web::resource("/admin/users/{id}")
                        .route(web::get().to(admin::get))
                        .route(web::patch().to(admin::patch)),
                )
                .service(
                    web::resource("/uploads")
                        .route(web::post().to(uploads::create))
                        .route(web::get().to(multipart::list_sessions)),
                )
                .service(
                    web::resource("/uploads/multipart").route(web::post().to(multipart::create)),
                )
                .service(
                    web::resource("/uploads/multipart/{upload_id}")
                        .route(web::delete().to(multipart::abort)),
                )
                .service(
                    web::resource("/uploads/multipart/{upload_id}/parts")
                        .route(web::get().to(multipart::parts)),
                )
                .service(
                    web::resource("/uploads/multipart/{upload_id}/parts/{n}")
                        .route(web::get().to(multipart::part_url)),
                )
                .service(
                    web::resource("/uploads/multipart/{upload_id}/complete")
                        .app_data(json_config(BATCH_BODY_LIMIT))
                        .route(web::post().to(multipart::complete)),
                )
                .service(
                    web::resource("/uploads/batch")
                        .app_data(json_config(BATCH_BODY_LIMIT))
                        .route(web::post().to(uploads::batch)),
                )
                .service(
                    web::resource("/uploads/{id}").route(web::get().to(multipart::get_session)),
                )
                .service(web::resource("/files").route(web::get().to(files::list)))
                .service(
                    web::resource("/files/{id}")
                        .route(web::get().to(files::get))
                        .route(web::patch().to(files::patch))
                        .route(web::delete().to(files::delete)),
                )
                .service(web::resource("/files/{id}/restore").route(web::post().to(files::restore)))
                .service(
                    web::resource("/files/{id}/shares")
                        .route(web::post().to(shares::share))
                        .route(web::get().to(shares::list)),
                )
                .service(
                    web::resource("/files/{id}/shares/{user_id}")
                        .route(web::delete().to(shares::revoke)),
                )
                .service(web::resource("/shortcuts").route(web::post().to(shares::add_shortcut)))
                .service(
                    web::resource("/shortcuts/{shortcut_id}")
                        .route(web::delete().to(shares::remove_shortcut)),
                )
                .service(web::resource("/files/{id}/confirm").route(web::post().to(files::confirm)))
                .service(web::resource("/folders").route(web::post().to(folders::create)))
                .service(
                    web::resource("/folders/{id}")
                        .route(web::get().to(folders::get))
                        .route(web::patch().to(folders::patch))
                        .route(web::delete().to(folders::delete)),
                )
                .service(
                    web::resource("/folders/{id}/restore").route(web::post().to(folders::restore)),
                )
                .service(
                    web::resource("/folders/{id}/children").route(web::get().to(folders::children)),
                )
                .service(
                    web::resource("/folders/{id}/shares")
                        .route(web::post().to(folders::share))
                        .route(web::get().to(folders::shares)),
                )
                .service(
                    web::resource("/folders/{id}/shares/{user_id}")
                        .route(web::delete().to(folders::unshare)),
                )
                .service(web::resource("/resolve").route(web::get().to(folders::resolve)))
                .service(web::resource("/trash").route(web::delete().to(folders::empty_trash)))
                .service(
                    web::resource("/files/{id}/links")
                        .route(web::post().to(links::create_for_file))
                        .route(web::get().to(links::list_for_file)),
                )
                .service(
                    web::resource("/folders/{id}/links")
                        .route(web::post().to(links::create_for_folder))
                        .route(web::get().to(links::list_for_folder)),
                )
                .service(web::resource("/links/{id}").route(web::delete().to(links::revoke)))
                .service(web::resource("/files/{id}/content").route(web::get().to(files::content)))
                .service(
                    web::resource("/files/{id}/revisions").route(web::get().to(revisions::list)),
                )
                .service(
                    web::resource("/files/{id}/revisions/{n}/content")
                        .route(web::get().to(revisions::content)),
                )
                .service(
                    web::resource("/files/{id}/revisions/{n}/download-url")
                        .route(web::get().to(revisions::download_url)),
                )
                .service(
                    web::resource("/files/{id}/revisions/{n}/restore")
                        .route(web::post().to(revisions::restore)),
                )
                .service(
                    web::resource("/files/{id}/revisions/{n}")
                        .route(web::delete().to(revisions::delete)),
                )
                .service(
                    web::resource("/files/{id}/download-url")
                        .route(web::get().to(files::download_url)),
                )
                .service(
                    web::resource("/tus")
                        .route(web::method(actix_web::http::Method::OPTIONS).to(tus::options))
                        .route(web::post().to(tus::create)),
                )
                .service(
                    web::resource("/tus/{id}")
                        .route(web::method(actix_web::http::Method::OPTIONS).to(tus::options))
                        .route(web::head().to(tus::head))
                        .route(web::patch().to(tus::patch))
                        .route(web::delete().to(tus::delete))
                        .route(web::post().to(tus::overridden)),
                )
                .service(web::resource("/openapi.json").route(web::get().to(ops::openapi))),
        )
        .service(web::resource("/public/{token}").route(web::get().to(files::public)))
        .service(web::resource("/s/{token}").route(web::get().to(links::get)))
        .service(web::resource("/s/{token}/items/{id}").route(web::get().to(links::get_item)))
        .service(web::resource("/s/{token}/unlock").route(web::post().to(links::unlock)))
        .service(
            web::resource("/s/{token}/tus")
                .route(web::method(actix_web::http::Method::OPTIONS).to(tus::options))
                .route(web::post().to(drop::create)),
        )
        .service(
            web::resource("/s/{token}/tus/{id}")
                .route(web::method(actix_web::http::Method::OPTIONS).to(tus::options))
                .route(web::head().to(drop::head))
                .route(web::patch().to(drop::patch)),
        );
}

/// The local store's signed URLs, served when it is the store.
pub fn configure_blobs(
    cfg: &mut web::ServiceConfig,
    store: web::Data<std::sync::Arc<stowage_actors::storage::LocalStore>>,
) {
    cfg.service(
        web::resource("/blobs/{key:.+}")
            .app_data(store)
            .route(web::put().to(blobs::put))
            .route(web::get().to(blobs::get))
            .route(web::head().to(blobs::get)),
    );
}

/// API bodies are JSON. A body sent without any content type is taken as
/// Opens the request's [`ACTING_KEY`](stowage_actors::events::ACTING_KEY):
/// the bearer extractor fills it, the events the request causes name it.
async fn acting_key(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    stowage_actors::events::ACTING_KEY
        .scope(std::cell::Cell::new(None), next.call(req))
        .await
}

/// JSON (curl without `-H`, load-test scripts); an explicit other type is
/// 415. Browsers cannot send a cross-site form without a content type, so
/// this keeps the CSRF guard of requiring JSON.
async fn json_bodies(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    use actix_web::http::Method;
    let carries_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    // tus bodies are application/offset+octet-stream.
    if carries_body && !req.match_info().as_str().starts_with("/api/v1/tus") {
        match req.headers().get(header::CONTENT_TYPE) {
            None => {
                req.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
            }
            Some(value) => {
                let essence = value
                    .to_str()
                    .unwrap_or_default()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim();
                let json = essence.eq_ignore_ascii_case("application/json")
                    || essence.to_ascii_lowercase().ends_with("+json");
                if !json {
                    let err = ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        "send the body as JSON with `Content-Type: application/json`",
                    );
                    return Ok(req.error_response(err).map_into_right_body());
                }
            }
        }
    }
    next.call(req)
        .await
        .map(actix_web::dev::ServiceResponse::map_into_left_body)
}

/// A JSON extractor configuration whose failures are problem+json: 413 over
/// `limit`, 415 unless the content type is JSON (see [`json_bodies`]), 400 for
/// malformed JSON or JSON of the wrong shape (unknown fields, wrong types,
/// missing fields).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    use actix_web::error::PayloadError;
    let too_large = |limit: usize| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the {limit} bytes this route accepts"),
        )
    };
    match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => too_large(limit),
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::bad_request(
            "invalid_body",
            format!("the JSON does not fit this route: {e}"),
        ),
        JsonPayloadError::Deserialize(e) if e.is_eof() && e.line() == 1 && e.column() == 0 => {
            ApiError::bad_request(
                "empty_body",
                "the request body is empty; send a JSON object",
            )
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => too_large(0),
        JsonPayloadError::Payload(_) => {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        }
        _ => ApiError::bad_request(
            "invalid_body",
            "the request body could not be parsed as JSON",
        ),
    }
}

/// Malformed path segments (an id that is not a UUID) and query strings.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        ApiError::bad_request("invalid_path", format!("the URL path is malformed: {err}")).into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request(
            "invalid_query",
            format!("the query string is malformed: {err}"),
        )
        .into()
    })
}

/// Headers every response carries unless a route sets its own.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// Headers a browser client may read from responses.
pub const EXPOSED_HEADERS: &[&str] = &[
    "etag",
    "location",
    "x-request-id",
    "retry-after",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-expires",
    "upload-defer-length",
];

/// CORS for the configured origins.
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allow_any_header()
        .expose_headers(EXPOSED_HEADERS.iter().copied())
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}
