//! Signed URLs of the local blob store: HMAC-SHA256 over the method, the
//! key, the expiry and (for PUT) the exact length, checked in constant time.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a signature allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub method: BlobMethod,
    pub key: String,
    /// Unix seconds.
    pub expires: i64,
    /// PUT: the exact number of bytes.
    pub size: Option<u64>,
    /// GET: the `Content-Disposition` to answer with.
    pub disposition: Option<String>,
    /// The content type: stored on PUT, answered on GET.
    pub content_type: Option<String>,
    /// PUT of a multipart part: the upload and the part number.
    pub part: Option<(String, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobMethod {
    Get,
    Put,
}

impl BlobMethod {
    fn as_str(self) -> &'static str {
        match self {
            BlobMethod::Get => "GET",
            BlobMethod::Put => "PUT",
        }
    }
}

#[derive(Clone)]
pub struct UrlSigner {
    key: SecretSlice<u8>,
}

impl UrlSigner {
    /// A signer keyed by a secret derived from the server secret, so blob
    /// signatures and tokens never share a key.
    pub fn derive(server_secret: &SecretSlice<u8>) -> Self {
        let mut mac = HmacSha256::new_from_slice(server_secret.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(b"stowage blob url signing v1");
        Self {
            key: SecretSlice::from(mac.finalize().into_bytes().to_vec()),
        }
    }

    fn mac(&self, grant: &Grant) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes keys of any length");
        // Length-prefixed fields: no two grants share a message.
        for field in [
            grant.method.as_str(),
            &grant.key,
            &grant.expires.to_string(),
            &grant.size.map(|s| s.to_string()).unwrap_or_default(),
            grant.disposition.as_deref().unwrap_or_default(),
            grant.content_type.as_deref().unwrap_or_default(),
            &grant
                .part
                .as_ref()
                .map(|(upload, n)| format!("{upload}#{n}"))
                .unwrap_or_default(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }

    pub fn sign(&self, grant: &Grant) -> String {
        hex::encode(self.mac(grant).finalize().into_bytes())
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, grant: &Grant, signature_hex: &str) -> bool {
        match hex::decode(signature_hex) {
            Ok(sig) => self.mac(grant).verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            method: BlobMethod::Put,
            key: "users/a/files/b".into(),
            expires: 1_900_000_000,
            size: Some(10),
            disposition: None,
            content_type: Some("text/plain".into()),
            part: None,
        }
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let signer = UrlSigner::derive(&SecretSlice::from(b"server secret".to_vec()));
        let sig = signer.sign(&grant());
        assert!(signer.verify(&grant(), &sig));
        let mut other = grant();
        other.size = Some(11);
        assert!(!signer.verify(&other, &sig));
        let mut other = grant();
        other.method = BlobMethod::Get;
        assert!(!signer.verify(&other, &sig));
        let mut other = grant();
        other.expires += 1;
        assert!(!signer.verify(&other, &sig));
        let mut other = grant();
        other.key.push('x');
        assert!(!signer.verify(&other, &sig));
        let mut other = grant();
        other.part = Some(("u".into(), 1));
        assert!(!signer.verify(&other, &sig));
        assert!(!signer.verify(&grant(), "zz"));
        assert!(!signer.verify(&grant(), &sig[2..]));
        let stranger = UrlSigner::derive(&SecretSlice::from(b"another secret".to_vec()));
        assert!(!stranger.verify(&grant(), &sig));
    }
}
