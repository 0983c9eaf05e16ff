use super::ValidationError;

/// A file's name: 1 to 255 bytes of UTF-8, no `/`, no NUL or other control
/// characters, not `.` or `..`. Names are kept as given (no trimming): a
/// name with a leading space is a different name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    pub const MAX_BYTES: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| ValidationError::new("name", m);
        if raw.is_empty() {
            return Err(err("is empty"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(err("is longer than 255 bytes"));
        }
        if raw == "." || raw == ".." {
            return Err(err("cannot be `.` or `..`"));
        }
        if raw.contains('/') {
            return Err(err("cannot contain `/`"));
        }
        if raw.chars().any(char::is_control) {
            return Err(err("cannot contain NUL or other control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased form prefix searches compare.
    pub fn lower(&self) -> String {
        self.0.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "report.pdf",
            "Quarterly Report (final).pdf",
            " leading space",
            "ümlaut ✓.txt",
            "...",
            ".hidden",
        ] {
            assert_eq!(FileName::parse(ok).unwrap().as_str(), ok);
        }
        assert!(FileName::parse(&"a".repeat(255)).is_ok());
        // 255 bytes of two-byte characters is fine; one more byte is not.
        assert!(FileName::parse(&"é".repeat(127)).is_ok());
        assert!(FileName::parse(&format!("{}a", "é".repeat(127))).is_ok());
        assert!(FileName::parse(&"é".repeat(128)).is_err());
    }

    #[test]
    fn rejects_what_the_contract_forbids() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "/",
            "a\0b",
            "tab\there",
            "new\nline",
            "\u{7f}",
            &"a".repeat(256),
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lower_folds_unicode() {
        assert_eq!(FileName::parse("ÄBC.TXT").unwrap().lower(), "äbc.txt");
    }
}
