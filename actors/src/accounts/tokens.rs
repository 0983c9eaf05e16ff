//! Access tokens (HS256 JWTs) and refresh tokens (random, stored hashed).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AuthError;

/// How long an access token lives.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// How long an unused refresh token stays exchangeable.
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Clock skew tolerated between instances when checking `exp`.
const LEEWAY_SECS: u64 = 5;
const REFRESH_PREFIX: &str = "srt_";

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// The login session (refresh-token family) the token belongs to.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// Who a valid access token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// Signs and checks access tokens with one HMAC secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &SecretSlice<u8>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.expose_secret()),
            decoding: DecodingKey::from_secret(secret.expose_secret()),
            validation,
        }
    }

    /// Mints an access token for a user's login session.
    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            iat: now,
            exp: now + ACCESS_TOKEN_TTL.as_secs() as i64,
            jti: Uuid::now_v7(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| anyhow::anyhow!("signing an access token failed: {e}"))
    }

    /// Checks signature, algorithm (HS256 only: `none` and every other
    /// algorithm are refused) and expiry. Says nothing about revocation.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(Principal {
                user_id: data.claims.sub,
                session_id: data.claims.sid,
            }),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(AuthError::Expired),
            Err(_) => Err(AuthError::Invalid),
        }
    }
}

/// A fresh refresh token: what the client gets, and the hash that is stored.
pub fn new_refresh_token() -> (String, String) {
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    let token = format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// The stored form of a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> TokenKeys {
        TokenKeys::new(&SecretSlice::from(secret.to_vec()))
    }

    #[test]
    fn a_token_verifies_with_its_own_key_only() {
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let token = keys(b"one secret of enough length....")
            .issue(user, session)
            .unwrap();
        let p = keys(b"one secret of enough length....")
            .verify(&token)
            .unwrap();
        assert_eq!((p.user_id, p.session_id), (user, session));
        assert!(matches!(
            keys(b"another secret entirely........").verify(&token),
            Err(AuthError::Invalid)
        ));
    }

    #[test]
    fn unsigned_and_expired_tokens_are_refused() {
        let k = keys(b"one secret of enough length....");
        let claims = |exp: i64| Claims {
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            iat: exp - 900,
            exp,
            jti: Uuid::now_v7(),
        };
        // alg "none": header and claims, no signature.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims(chrono::Utc::now().timestamp() + 600)).unwrap());
        assert!(matches!(
            k.verify(&format!("{header}.{body}.")),
            Err(AuthError::Invalid)
        ));

        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(chrono::Utc::now().timestamp() - 3600),
            &EncodingKey::from_secret(b"one secret of enough length...."),
        )
        .unwrap();
        assert!(matches!(k.verify(&expired), Err(AuthError::Expired)));
        assert!(matches!(k.verify("not.a.jwt"), Err(AuthError::Invalid)));
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert!(a.starts_with(REFRESH_PREFIX));
        assert_eq!(ha, hash_refresh_token(&a));
        assert_eq!(ha.len(), 64);
        assert!(!ha.contains(&a));
    }
}
