//! Outside identity: bearer JWTs from one configured OpenID Connect issuer.
//!
//! The issuer's keys come from its JWKS (the configured URL, or the
//! `jwks_uri` of its discovery document), cached, and fetched again when a
//! token names a key the cache does not hold, at most every
//! [`REFETCH_EVERY`]. Which algorithm a key verifies is decided by the key
//! itself (RSA: RS256, P-256: ES256, Ed25519: EdDSA), never by the token:
//! `alg: none`, HMAC keys and a token whose `alg` is not its key's are
//! refused. `iss`, `aud`, `exp` and `nbf` are checked with [`LEEWAY`].
//! The user for `(issuer, sub)` is created on first sight, with the
//! token's `email` when the issuer says it is verified (and no other
//! account has it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, SqlErr,
};
use serde::Deserialize;
use stowage_entity::users;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{AuthError, Caller, Via};
use crate::domain::{DisplayName, Email};
use crate::time::now;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: u64 = 30;
/// The least time between two fetches of the JWKS.
pub const REFETCH_EVERY: Duration = Duration::from_secs(5);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the issuer is and who its tokens must be for.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    /// `None`: from the issuer's discovery document.
    pub jwks_url: Option<String>,
}

#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

struct Inner {
    config: OidcConfig,
    db: DatabaseConnection,
    http: reqwest::Client,
    default_quota: Option<u64>,
    keys: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched: Option<Instant>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl Oidc {
    pub fn new(config: OidcConfig, db: DatabaseConnection, default_quota: Option<u64>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("an HTTP client with a timeout builds");
        Self {
            inner: Arc::new(Inner {
                config,
                db,
                http,
                default_quota,
                keys: Mutex::new(Cache::default()),
            }),
        }
    }

    /// Whether a bearer token looks like one of this issuer's (signed with
    /// an asymmetric algorithm), rather than a Stowage access token.
    pub fn claims_token(token: &str) -> bool {
        jsonwebtoken::decode_header(token).is_ok_and(|h| {
            !matches!(
                h.alg,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            )
        })
    }

    /// The caller an issuer's token speaks for (created on first sight).
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let result = self.authenticate_inner(token).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(AuthError::Expired) => "expired",
            Err(AuthError::Disabled) => "revoked",
            Err(AuthError::Unexpected(_)) => "error",
            Err(_) => "invalid",
        };
        crate::metrics::auth_attempt("oidc", outcome);
        result
    }

    async fn authenticate_inner(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let kid = header.kid.ok_or(AuthError::Invalid)?;
        let (alg, key) = self.key(&kid).await?;
        if header.alg != alg {
            return Err(AuthError::Invalid);
        }
        let config = &self.inner.config;
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?
            .claims;
        let user = self.user(&claims).await?;
        if user.disabled_at.is_some() {
            return Err(AuthError::Disabled);
        }
        Ok(Caller {
            user_id: user.id,
            via: Via::Identity,
        })
    }

    /// The key with id `kid` and the one algorithm it verifies.
    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), AuthError> {
        let mut cache = self.inner.keys.lock().await;
        if let Some(found) = cache.keys.get(kid) {
            return Ok(found.clone());
        }
        let due = cache.fetched.is_none_or(|t| t.elapsed() >= REFETCH_EVERY);
        if due {
            cache.fetched = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => cache.keys = keys,
                // The issuer is unreachable: tokens of the keys at hand
                // still work; this one is refused.
                Err(e) => tracing::warn!(error = %e, "the OIDC issuer's keys could not be fetched"),
            }
        }
        cache.keys.get(kid).cloned().ok_or(AuthError::Invalid)
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
        let config = &self.inner.config;
        let url = match &config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    config.issuer.trim_end_matches('/')
                );
                let d: Discovery = self
                    .inner
                    .http
                    .get(&discovery)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                d.jwks_uri
            }
        };
        let set: JwkSet = self
            .inner
            .http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            // The algorithm follows from the key; HMAC ("oct") keys and
            // other curves are never used.
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                    Algorithm::EdDSA
                }
                _ => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid.clone(), (alg, key));
            }
        }
        Ok(keys)
    }

    /// The user for `(issuer, sub)`, created on first sight.
    async fn user(&self, claims: &Claims) -> Result<users::Model, AuthError> {
        let issuer = &self.inner.config.issuer;
        let find = || {
            users::Entity::find()
                .filter(users::Column::IdentityIssuer.eq(issuer.as_str()))
                .filter(users::Column::IdentitySubject.eq(claims.sub.as_str()))
        };
        if let Some(user) = find().one(&self.inner.db).await? {
            return Ok(user);
        }
        let verified = matches!(&claims.email_verified, Some(serde_json::Value::Bool(true)))
            || matches!(&claims.email_verified, Some(serde_json::Value::String(s)) if s == "true");
        let email = claims
            .email
            .as_deref()
            .filter(|_| verified)
            .and_then(|e| Email::parse(e).ok());
        let display_name = claims
            .name
            .as_deref()
            .and_then(|n| DisplayName::parse(n).ok())
            .or_else(|| {
                email
                    .as_ref()
                    .and_then(|e| DisplayName::parse(e.local_part()).ok())
            })
            .map_or_else(|| "user".to_owned(), |d| d.as_str().to_owned());
        let insert = |email: Option<&Email>| {
            let id = Uuid::now_v7();
            let at = now();
            users::ActiveModel {
                id: Set(id),
                email: Set(email.map_or_else(String::new, |e| e.as_str().to_owned())),
                email_key: Set(email.map_or_else(|| format!("user:{id}"), |e| e.key().to_owned())),
                display_name: Set(display_name.clone()),
                password_hash: Set(String::new()),
                quota_bytes: Set(self
                    .inner
                    .default_quota
                    .map(|q| i64::try_from(q).unwrap_or(i64::MAX))),
                created_at: Set(at),
                updated_at: Set(at),
                disabled_at: Set(None),
                external_id: Set(None),
                identity_issuer: Set(Some(issuer.clone())),
                identity_subject: Set(Some(claims.sub.clone())),
            }
        };
        let db = &self.inner.db;
        match insert(email.as_ref()).insert(db).await {
            Ok(user) => return Ok(user),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
            Err(e) => return Err(e.into()),
        }
        // The same subject, first seen by two requests at once; or its
        // email belongs to another account (which it does not take over).
        if let Some(user) = find().one(db).await? {
            return Ok(user);
        }
        match insert(None).insert(db).await {
            Ok(user) => Ok(user),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                find().one(db).await?.ok_or(AuthError::Invalid)
            }
            Err(e) => Err(e.into()),
        }
    }
}
