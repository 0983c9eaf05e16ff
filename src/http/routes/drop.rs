//! A drop folder: tus at `/s/{token}/tus` for anyone with an upload link.
//! Each upload is the folder owner's, lands in the folder (a taken name
//! becomes `name (1).ext`), counts against the owner's quota, and is
//! reachable only through the link that made it; the link lists nothing.

use actix_web::{HttpRequest, HttpResponse, web};
use stowage_actors::links::{Links, Opened};
use stowage_actors::tus::Tus;

use super::tus::{self, Uploader};
use crate::http::PublicBase;
use crate::http::error::ApiError;
use crate::http::rate_limit::RateLimits;

/// The drop link behind `token`, opened (its password from the header or
/// the unlock cookie, as for reading).
async fn opened(
    req: &HttpRequest,
    links: &Links,
    limits: &RateLimits,
    token: &str,
) -> Result<Opened, ApiError> {
    let opened = super::links::open(req, links, limits, token).await?;
    Links::drop_place(&opened)?;
    Ok(opened)
}

/// tus creation into the drop folder.
pub async fn create(
    req: HttpRequest,
    links: web::Data<Links>,
    limits: web::Data<RateLimits>,
    tus: web::Data<Tus>,
    base: web::Data<PublicBase>,
    token: web::Path<String>,
    body: web::Payload,
) -> HttpResponse {
    let place = match opened(&req, &links, &limits, &token).await {
        Ok(o) => match Links::drop_place(&o) {
            Ok(place) => place,
            Err(e) => return tus::failure(e.into()),
        },
        Err(e) => return tus::failure(e),
    };
    let at = format!("{}/s/{}/tus", base.0.trim_end_matches('/'), token.as_str());
    tus::create_as(req, Uploader::Drop(place), tus, &at, body).await
}

/// The upload `id` of this drop link's, and its owner; else the error.
async fn upload(
    req: &HttpRequest,
    links: &Links,
    limits: &RateLimits,
    token: &str,
    id: &str,
) -> Result<uuid::Uuid, ApiError> {
    let opened = opened(req, links, limits, token).await?;
    let id = tus::upload_id(id)?;
    links.check_drop_upload(&opened, id).await?;
    Ok(opened.item.owner_id)
}

/// tus HEAD of one of this drop link's uploads.
pub async fn head(
    req: HttpRequest,
    links: web::Data<Links>,
    limits: web::Data<RateLimits>,
    tus: web::Data<Tus>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (token, id) = path.into_inner();
    match upload(&req, &links, &limits, &token, &id).await {
        Ok(owner) => tus::head_as(req, owner, tus, &id).await,
        Err(e) => tus::failure(e),
    }
}

/// tus PATCH of one of this drop link's uploads.
pub async fn patch(
    req: HttpRequest,
    links: web::Data<Links>,
    limits: web::Data<RateLimits>,
    tus: web::Data<Tus>,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> HttpResponse {
    let (token, id) = path.into_inner();
    match upload(&req, &links, &limits, &token, &id).await {
        Ok(owner) => tus::patch_as(req, owner, tus, &id, body).await,
        Err(e) => tus::failure(e),
    }
}
