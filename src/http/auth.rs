//! The bearer extractor: a handler that takes `Authenticated` only runs for
//! a caller with a valid, unrevoked access token or key whose scopes reach
//! the route, acting for another user only with an admin key and
//! `Stowage-On-Behalf-Of`.

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use stowage_actors::accounts::{Accounts, AuthError, Caller, Need, Oidc, Via};
use stowage_actors::events::ACTING_KEY;
use stowage_actors::keys::{KEY_PREFIX, Keys};
use uuid::Uuid;

use super::error::ApiError;
use crate::tls::{PeerNames, Services};

/// The header with which an admin key acts for one of the users.
pub const ON_BEHALF_OF: HeaderName = HeaderName::from_static("stowage-on-behalf-of");

/// The OpenID Connect issuer whose tokens are accepted, if one is configured.
pub struct Identity(pub Option<Oidc>);

/// The caller of an authenticated route.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Caller);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let accounts = req.app_data::<web::Data<Accounts>>().cloned();
        let keys = req.app_data::<web::Data<Keys>>().cloned();
        let identity = req
            .app_data::<web::Data<Identity>>()
            .and_then(|i| i.0.clone());
        let token = bearer_token(req);
        // A verified client certificate of a named service, when no bearer
        // token is sent.
        let service = req
            .conn_data::<PeerNames>()
            .zip(req.app_data::<web::Data<Services>>())
            .and_then(|(peer, services)| services.of(peer));
        let need = need_of(req);
        let on_behalf = req
            .headers()
            .get(&ON_BEHALF_OF)
            .map(|v| v.to_str().ok().and_then(|s| Uuid::parse_str(s.trim()).ok()));
        Box::pin(async move {
            let (accounts, keys) = accounts
                .zip(keys)
                .ok_or_else(|| anyhow::anyhow!("accounts or keys not registered"))?;
            let mut caller = match (token, service) {
                (Some(token), _) => match &identity {
                    _ if token.starts_with(KEY_PREFIX) => keys.authenticate(&token).await?,
                    Some(oidc) if Oidc::claims_token(&token) => oidc.authenticate(&token).await?,
                    _ => accounts.authenticate(&token).await?,
                },
                (None, Some((name, scopes))) => {
                    let user = accounts.service_user(&name).await?;
                    if user.disabled_at.is_some() {
                        return Err(AuthError::Disabled.into());
                    }
                    Caller {
                        user_id: user.id,
                        via: Via::Certificate {
                            scopes,
                            holder: user.id,
                        },
                    }
                }
                (None, None) => return Err(AuthError::Missing.into()),
            };
            if let Some(target) = on_behalf {
                let target = target.ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_header",
                        "Stowage-On-Behalf-Of must be a user id (a UUID)",
                    )
                })?;
                caller = keys.on_behalf_of(caller, target).await?;
            }
            caller.require(need)?;
            let _ = ACTING_KEY.try_with(|k| k.set(caller.key_id()));
            let span = tracing::Span::current();
            span.record("user_id", tracing::field::display(caller.user_id));
            if let Some(key) = caller.key_id() {
                span.record("key_id", tracing::field::display(key));
            }
            Ok(Authenticated(caller))
        })
    }
}

/// What the matched route needs of a key: the admin routes `admin`,
/// reading routes `files:read`, every other route `files:write`. (From the
/// route's pattern, so no spelling of a path changes the answer.)
fn need_of(req: &HttpRequest) -> Need {
    let pattern = req.match_pattern().unwrap_or_default();
    if pattern.starts_with("/api/v1/admin") {
        Need::Admin
    } else if matches!(*req.method(), Method::GET | Method::HEAD) {
        Need::Read
    } else {
        Need::Write
    }
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}
