//! What a link's unlock cookie carries: `<expiry>.<HMAC of link id and
//! expiry>`, under a key derived from the server secret for this alone.
//! It opens one link for [`UNLOCK_TTL`], and nothing else.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// How long an unlock lasts.
pub const UNLOCK_TTL: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct UnlockKey {
    key: SecretSlice<u8>,
}

impl UnlockKey {
    pub fn derive(server_secret: &SecretSlice<u8>) -> Self {
        let mut mac = HmacSha256::new_from_slice(server_secret.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(b"stowage link unlock v1");
        Self {
            key: SecretSlice::from(mac.finalize().into_bytes().to_vec()),
        }
    }

    fn mac(&self, link: Uuid, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(link.as_bytes());
        mac.update(&expires.to_be_bytes());
        mac
    }

    /// A grant that opens `link` for [`UNLOCK_TTL`].
    pub fn grant(&self, link: Uuid) -> String {
        let expires = chrono::Utc::now().timestamp() + UNLOCK_TTL.as_secs() as i64;
        let tag = self.mac(link, expires).finalize().into_bytes();
        format!("{expires}.{}", hex::encode(tag))
    }

    /// Whether `grant` opens `link` now (compared in constant time).
    pub fn verify(&self, link: Uuid, grant: &str) -> bool {
        let Some((expires, tag)) = grant.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
            return false;
        };
        expires > chrono::Utc::now().timestamp()
            && self.mac(link, expires).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_opens_its_link_only() {
        let key = UnlockKey::derive(&SecretSlice::from(b"server secret".to_vec()));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let grant = key.grant(a);
        assert!(key.verify(a, &grant));
        assert!(!key.verify(b, &grant));
        let other = UnlockKey::derive(&SecretSlice::from(b"another secret".to_vec()));
        assert!(!other.verify(a, &grant));
        let (expires, tag) = grant.split_once('.').unwrap();
        let later = format!("{}.{tag}", expires.parse::<i64>().unwrap() + 1);
        assert!(!key.verify(a, &later));
        let past = format!("1.{tag}");
        assert!(!key.verify(a, &past));
        assert!(!key.verify(a, "garbage"));
    }
}
