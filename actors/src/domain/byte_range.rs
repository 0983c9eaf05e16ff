/// One `Range: bytes=…` request resolved against an object's size:
/// `start..=end`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Why a `Range` header was not honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// Not a single `bytes=` range we understand: serve the whole object (RFC 9110 lets us).
    Ignored,
    /// Well-formed but outside the object: 416.
    Unsatisfiable,
}

impl ByteRange {
    /// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`.
    pub fn parse(header: &str, size: u64) -> Result<Self, RangeError> {
        let spec = header
            .trim()
            .strip_prefix("bytes=")
            .ok_or(RangeError::Ignored)?
            .trim();
        if spec.contains(',') {
            return Err(RangeError::Ignored);
        }
        let (first, last) = spec.split_once('-').ok_or(RangeError::Ignored)?;
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| RangeError::Ignored);
        let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, true) => return Err(RangeError::Ignored),
            (true, false) => {
                let n = num(last)?;
                if n == 0 || size == 0 {
                    return Err(RangeError::Unsatisfiable);
                }
                (size.saturating_sub(n), size - 1)
            }
            (false, true) => (num(first)?, size.saturating_sub(1)),
            (false, false) => {
                let (a, b) = (num(first)?, num(last)?);
                if b < a {
                    return Err(RangeError::Ignored);
                }
                (a, b.min(size.saturating_sub(1)))
            }
        };
        if start >= size {
            return Err(RangeError::Unsatisfiable);
        }
        Ok(Self { start, end })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |h: &str| ByteRange::parse(h, 100);
        assert_eq!(r("bytes=0-9"), Ok(ByteRange { start: 0, end: 9 }));
        assert_eq!(r("bytes=90-"), Ok(ByteRange { start: 90, end: 99 }));
        assert_eq!(r("bytes=-10"), Ok(ByteRange { start: 90, end: 99 }));
        assert_eq!(r("bytes=-500"), Ok(ByteRange { start: 0, end: 99 }));
        assert_eq!(r("bytes=50-1000"), Ok(ByteRange { start: 50, end: 99 }));
        assert_eq!(r("bytes=100-"), Err(RangeError::Unsatisfiable));
        assert_eq!(r("bytes=-0"), Err(RangeError::Unsatisfiable));
        assert_eq!(r("bytes=5-1"), Err(RangeError::Ignored));
        assert_eq!(r("bytes=0-1,5-6"), Err(RangeError::Ignored));
        assert_eq!(r("items=0-1"), Err(RangeError::Ignored));
        assert_eq!(r("bytes=x-1"), Err(RangeError::Ignored));
        assert_eq!(
            ByteRange::parse("bytes=0-", 0),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            r("bytes=10-19").unwrap().content_range(100),
            "bytes 10-19/100"
        );
        assert_eq!(r("bytes=10-19").unwrap().len(), 10);
    }
}
