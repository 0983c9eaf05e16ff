//! The bearer-token extractor: a handler that takes `Authenticated` only runs
//! for a caller with a valid, unrevoked access token.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use stowage_actors::accounts::{Accounts, AuthError, Principal};

use super::error::ApiError;

/// The caller of an authenticated route.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let accounts = req.app_data::<web::Data<Accounts>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let accounts =
                accounts.ok_or_else(|| anyhow::anyhow!("accounts service not registered"))?;
            let token = token.ok_or(AuthError::Missing)?;
            Ok(Authenticated(accounts.authenticate(&token).await?))
        })
    }
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}
