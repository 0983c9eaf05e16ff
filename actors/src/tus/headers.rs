//! The protocol's own header values: `Upload-Metadata` and `Upload-Checksum`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::TusError;

/// `Upload-Metadata`: comma-separated `key base64value` pairs, the value optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pairs: Vec<(String, Option<Vec<u8>>)>,
    /// The header as the client sent it, echoed back on HEAD.
    raw: String,
}

/// The most keys one `Upload-Metadata` header may carry.
pub const MAX_METADATA_KEYS: usize = 64;
/// The longest `Upload-Metadata` header accepted, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

impl Metadata {
    /// Parses in one pass (duplicate keys found through a set), refusing a
    /// header over [`MAX_METADATA_BYTES`] or with more than
    /// [`MAX_METADATA_KEYS`] keys before any work grows with it.
    pub fn parse(header: &str) -> Result<Self, TusError> {
        let bad = |why: String| TusError::BadHeader("Upload-Metadata", why);
        if header.len() > MAX_METADATA_BYTES {
            return Err(bad(format!(
                "the header is {} bytes; at most {MAX_METADATA_BYTES} are accepted",
                header.len()
            )));
        }
        let mut pairs: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for item in header.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if pairs.len() == MAX_METADATA_KEYS {
                return Err(bad(format!(
                    "more than {MAX_METADATA_KEYS} keys; send fewer"
                )));
            }
            let mut words = item.split(' ').filter(|w| !w.is_empty());
            let key = words.next().unwrap_or_default();
            let value = words.next();
            let shown = shorten(key);
            if words.next().is_some() {
                return Err(bad(format!(
                    "the pair for {shown:?} has more than a key and a base64 value"
                )));
            }
            if !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                return Err(bad(format!("the key {shown:?} is not printable ASCII")));
            }
            if !seen.insert(key) {
                return Err(bad(format!("the key {shown:?} appears twice")));
            }
            let value = value
                .map(|v| STANDARD.decode(v))
                .transpose()
                .map_err(|_| bad(format!("the value of {shown:?} is not base64")))?;
            pairs.push((key.to_owned(), value));
        }
        Ok(Self {
            pairs,
            raw: header.trim().to_owned(),
        })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The first of `keys` present, as text.
    pub fn text(&self, keys: &[&str]) -> Result<Option<String>, TusError> {
        for key in keys {
            if let Some((_, value)) = self.pairs.iter().find(|(k, _)| k == key) {
                let value = value.clone().unwrap_or_default();
                return String::from_utf8(value).map(Some).map_err(|_| {
                    TusError::BadHeader(
                        "Upload-Metadata",
                        format!("the value of {key:?} is not UTF-8 text"),
                    )
                });
            }
        }
        Ok(None)
    }
}

/// A key as an error message may quote it: at most 64 characters.
fn shorten(key: &str) -> &str {
    key.char_indices().nth(64).map_or(key, |(at, _)| &key[..at])
}

/// `Upload-Checksum: <algorithm> <base64 digest>` of one request's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    algorithm: Algorithm,
    expected: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha1,
    Sha256,
}

impl Checksum {
    pub fn parse(header: &str) -> Result<Self, TusError> {
        let bad = |why: &str| TusError::BadHeader("Upload-Checksum", why.to_owned());
        let (name, digest) = header
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("write it as `<algorithm> <base64 digest>`"))?;
        let (algorithm, len) = match name.to_ascii_lowercase().as_str() {
            "sha1" => (Algorithm::Sha1, 20),
            "sha256" => (Algorithm::Sha256, 32),
            _ => return Err(TusError::UnsupportedChecksum(name.to_owned())),
        };
        let expected = STANDARD
            .decode(digest.trim())
            .map_err(|_| bad("the digest is not base64"))?;
        if expected.len() != len {
            return Err(bad("the digest has the wrong length for its algorithm"));
        }
        Ok(Self {
            algorithm,
            expected,
        })
    }

    pub(crate) fn hasher(&self) -> BodyHasher {
        match self.algorithm {
            Algorithm::Sha1 => BodyHasher::Sha1(Sha1::new(), self.expected.clone()),
            Algorithm::Sha256 => BodyHasher::Sha256(Sha256::new(), self.expected.clone()),
        }
    }
}

/// Hashes one request's body to check it against its `Upload-Checksum`.
pub(crate) enum BodyHasher {
    Sha1(Sha1, Vec<u8>),
    Sha256(Sha256, Vec<u8>),
}

impl BodyHasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h, _) => h.update(data),
            Self::Sha256(h, _) => h.update(data),
        }
    }

    pub fn matches(self) -> bool {
        match self {
            Self::Sha1(h, expected) => h.finalize().as_slice() == expected.as_slice(),
            Self::Sha256(h, expected) => h.finalize().as_slice() == expected.as_slice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode() {
        let m = Metadata::parse(
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential, type dGV4dC9wbGFpbg==",
        )
        .unwrap();
        assert_eq!(
            m.text(&["filename", "name"]).unwrap().as_deref(),
            Some("world_domination_plan.pdf")
        );
        assert_eq!(
            m.text(&["filetype", "type"]).unwrap().as_deref(),
            Some("text/plain")
        );
        assert_eq!(m.text(&["is_confidential"]).unwrap().as_deref(), Some(""));
        assert_eq!(m.text(&["missing"]).unwrap(), None);
        assert!(
            Metadata::parse("")
                .unwrap()
                .text(&["filename"])
                .unwrap()
                .is_none()
        );
        for bad in ["filename !!!", "a b c", "k dg==,k dg=="] {
            assert!(Metadata::parse(bad).is_err(), "{bad}");
        }
        // Bounded: too many keys, or too long a header, is refused.
        let many: Vec<String> = (0..=MAX_METADATA_KEYS).map(|i| format!("k{i}")).collect();
        assert!(Metadata::parse(&many.join(",")).is_err());
        assert!(Metadata::parse(&many[..MAX_METADATA_KEYS].join(",")).is_ok());
        let long = format!("k {}", "A".repeat(MAX_METADATA_BYTES));
        assert!(Metadata::parse(&long).is_err());
        // Valid base64, but not text.
        let m = Metadata::parse("filename /w==").unwrap();
        assert!(m.text(&["filename"]).is_err());
    }

    #[test]
    fn checksums_check() {
        let body = b"hello";
        let sha1 = STANDARD.encode(Sha1::digest(body));
        let c = Checksum::parse(&format!("sha1 {sha1}")).unwrap();
        let mut h = c.hasher();
        h.update(body);
        assert!(h.matches());
        let mut h = c.hasher();
        h.update(b"hellO");
        assert!(!h.matches());
        assert!(matches!(
            Checksum::parse("md5 AAAA"),
            Err(TusError::UnsupportedChecksum(_))
        ));
        assert!(Checksum::parse("sha256 AAAA").is_err());
        assert!(Checksum::parse("sha256").is_err());
    }
}
