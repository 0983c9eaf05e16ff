//! Access tokens (HS256 JWTs) and refresh tokens (random, stored hashed).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
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

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks access tokens with one HMAC secret, and derives each
/// refresh token's successor.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Keys [`TokenKeys::successor`]; derived from the secret, never the secret.
    successor_key: SecretSlice<u8>,
}

impl TokenKeys {
    pub fn new(secret: &SecretSlice<u8>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        let mut mac = hmac_sha256(secret.expose_secret());
        mac.update(b"stowage refresh token successor v1");
        Self {
            encoding: EncodingKey::from_secret(secret.expose_secret()),
            decoding: DecodingKey::from_secret(secret.expose_secret()),
            validation,
            successor_key: SecretSlice::from(mac.finalize().into_bytes().to_vec()),
        }
    }

    /// Mints an access token for a user's login session.
    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> anyhow::Result<String> {
        self.issue_at(
            user_id,
            session_id,
            chrono::Utc::now().timestamp(),
            Uuid::now_v7(),
        )
    }

    /// The refresh token that a refresh of `presented` issues: derived, not
    /// drawn, so that a concurrent refresh of the same token within the grace
    /// period can be handed the very same one. Unguessable without both the
    /// presented token and the server secret.
    pub fn successor(&self, presented: &str) -> String {
        let mut mac = hmac_sha256(self.successor_key.expose_secret());
        mac.update(presented.as_bytes());
        format!(
            "{REFRESH_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// The access token that goes with a refresh token: issued at `iat`,
    /// identified by the refresh token, so it can be minted again unchanged.
    pub fn issue_for_refresh(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        refresh_token: &str,
        iat: i64,
    ) -> anyhow::Result<String> {
        let digest = Sha256::digest(format!("access token of {refresh_token}").as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        self.issue_at(
            user_id,
            session_id,
            iat,
            uuid::Builder::from_random_bytes(id).into_uuid(),
        )
    }

    fn issue_at(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        iat: i64,
        jti: Uuid,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            iat,
            exp: iat + ACCESS_TOKEN_TTL.as_secs() as i64,
            jti,
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

fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
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
    fn a_successor_and_its_access_token_are_the_same_every_time_and_secret_bound() {
        let (k1, k2) = (
            keys(b"first-secret-0123456789abcdef0123"),
            keys(b"other-secret-0123456789abcdef0123"),
        );
        let (token, _) = new_refresh_token();
        assert_eq!(k1.successor(&token), k1.successor(&token));
        assert_ne!(k1.successor(&token), k2.successor(&token));
        assert_ne!(k1.successor(&token), k1.successor(&k1.successor(&token)));
        assert!(k1.successor(&token).starts_with(REFRESH_PREFIX));
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let next = k1.successor(&token);
        let a = k1
            .issue_for_refresh(user, session, &next, 1_800_000_000)
            .unwrap();
        let b = k1
            .issue_for_refresh(user, session, &next, 1_800_000_000)
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            k1.issue_for_refresh(user, session, &token, 1_800_000_000)
                .unwrap()
        );
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
