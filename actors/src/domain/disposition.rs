use super::ValidationError;

/// How a download is presented: shown in the browser, or saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Disposition {
    Inline,
    #[default]
    Attachment,
}

impl Disposition {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "inline" => Ok(Self::Inline),
            "attachment" => Ok(Self::Attachment),
            _ => Err(ValidationError::new(
                "disposition",
                "must be `inline` or `attachment`",
            )),
        }
    }

    /// A `Content-Disposition` value naming the file, safe for any name:
    /// an ASCII fallback plus the RFC 8187 UTF-8 form.
    pub fn header_value(self, file_name: &str) -> String {
        let kind = match self {
            Self::Inline => "inline",
            Self::Attachment => "attachment",
        };
        let fallback: String = file_name
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut encoded = String::new();
        for b in file_name.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_safe_for_any_name() {
        assert_eq!(
            Disposition::Attachment.header_value("a b.pdf"),
            "attachment; filename=\"a b.pdf\"; filename*=UTF-8''a%20b.pdf"
        );
        let v = Disposition::Inline.header_value("\"évil\"\r\n.txt");
        assert!(v.starts_with("inline; filename=\"_"), "{v}");
        assert!(!v.contains('\r') && !v.contains('\n'));
        assert!(v.contains("%C3%A9vil"));
        assert!(Disposition::parse("download").is_err());
    }
}
