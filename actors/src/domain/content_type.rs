use super::ValidationError;

/// A media type such as `application/pdf` or `text/plain; charset=utf-8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType(String);

impl ContentType {
    pub const DEFAULT: &'static str = "application/octet-stream";

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let err = || {
            ValidationError::new(
                "content_type",
                "is not a media type such as application/pdf or text/plain; charset=utf-8",
            )
        };
        let s = raw.trim();
        if s.is_empty() || s.len() > 255 || !s.is_ascii() || s.chars().any(|c| c.is_ascii_control())
        {
            return Err(err());
        }
        let essence = s.split(';').next().unwrap_or_default().trim();
        let (kind, sub) = essence.split_once('/').ok_or_else(err)?;
        let token = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
        };
        if !token(kind) || !token(sub) {
            return Err(err());
        }
        Ok(Self(canonical(s)))
    }

    pub fn octet_stream() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One spelling per media type: parameters trimmed and joined by `"; "`,
/// empty ones dropped, runs of white space inside one made a single space.
/// (Stores sign the value as sent; SigV4 compares it with runs of white
/// space collapsed, so a value with such runs would never verify.)
fn canonical(raw: &str) -> String {
    raw.split(';')
        .map(|part| part.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert!(ContentType::parse("application/pdf").is_ok());
        assert!(ContentType::parse("text/plain; charset=utf-8").is_ok());
        // One spelling: what a store signs is what it verifies.
        let spelled = |raw: &str| ContentType::parse(raw).unwrap().as_str().to_owned();
        assert_eq!(spelled("fZzl9n0Ld/$     ;"), "fZzl9n0Ld/$");
        assert_eq!(
            spelled("text/plain ;  charset=utf-8 ;;"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(spelled("text/plain; a=\"x   y\""), "text/plain; a=\"x y\"");
        assert!(
            ContentType::parse(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            )
            .is_ok()
        );
        for bad in [
            "",
            "pdf",
            "/pdf",
            "text/",
            "text/plain\r\nX-Injected: 1",
            "tëxt/plain",
            "a b/c",
        ] {
            assert!(ContentType::parse(bad).is_err(), "{bad:?}");
        }
    }
}
