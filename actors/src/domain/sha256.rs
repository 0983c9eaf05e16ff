use super::ValidationError;

/// A SHA-256 digest as 64 lower-case hex digits (upper case is accepted and folded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValidationError::new(
                "sha256",
                "must be 64 hexadecimal digits (the SHA-256 of the file's bytes)",
            ));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    pub fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digests() {
        let d = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(
            Sha256Hex::parse(d).unwrap().as_str(),
            d.to_ascii_lowercase()
        );
        assert!(Sha256Hex::parse(&d[1..]).is_err());
        assert!(Sha256Hex::parse(&d.replace('E', "g")).is_err());
    }
}
