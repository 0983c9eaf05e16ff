use super::ValidationError;

/// An email address, as typed, with its case-folded key. Two addresses that
/// differ only in case are the same account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    key: String,
}

impl Email {
    const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| ValidationError::new("email", m);
        let s = raw.trim();
        if s.is_empty() {
            return Err(err("is empty; give an address such as ada@example.com"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(err("is longer than 254 bytes"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains spaces or control characters"));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(err("has no '@'; give an address such as ada@example.com"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(err("needs 1 to 64 characters before the '@'"));
        }
        if domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(err("has no valid domain after the '@'"));
        }
        Ok(Self {
            display: s.to_owned(),
            key: s.to_lowercase(),
        })
    }

    /// The address as typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The case-folded form that identifies the account.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The part before the '@', as typed.
    pub fn local_part(&self) -> &str {
        self.display
            .rsplit_once('@')
            .map_or(&*self.display, |(l, _)| l)
    }

    /// Folds any string the way account keys are folded, for look-ups of
    /// input that need not be a valid address (a login attempt).
    pub fn key_of(raw: &str) -> String {
        raw.trim().to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_folds_case() {
        let e = Email::parse("  Ada.Lovelace+x@Example.ORG ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace+x@Example.ORG");
        assert_eq!(e.key(), "ada.lovelace+x@example.org");
        assert_eq!(e.local_part(), "Ada.Lovelace+x");
        assert_eq!(Email::key_of(" A@B.c"), "a@b.c");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "@example.com",
            "ada@",
            "ada@.example.com",
            "ada@example..com",
            "ada@example.com.",
            "a da@example.com",
            "ada@exa\u{7}mple.com",
            &format!("{}@example.com", "a".repeat(65)),
            &format!("a@{}.com", "b".repeat(260)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
