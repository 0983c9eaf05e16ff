//! The shape of a multipart upload (S3's part rules) and the check of a
//! client's part list against the store's.

use crate::domain::ValidationError;
use crate::storage::StoredPart;

use super::UploadError;

/// S3's limits.
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;
pub const MAX_PARTS: u64 = 10_000;

/// The shape of a multipart upload: part size and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub size: u64,
    pub part_size: u64,
    pub part_count: u32,
}

impl PartPlan {
    /// Checks a requested part size against S3's rules, or picks the
    /// smallest whole MiB that keeps the upload within 10,000 parts.
    pub fn new(size: u64, part_size: Option<u64>) -> Result<Self, ValidationError> {
        if size == 0 {
            return Err(ValidationError::new(
                "size",
                "must be at least 1 byte (upload empty files directly)",
            ));
        }
        let part_size = match part_size {
            Some(p) if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p) => {
                return Err(ValidationError::new(
                    "part_size",
                    format!(
                        "must be between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB) bytes"
                    ),
                ));
            }
            Some(p) => p,
            None => size
                .div_ceil(MAX_PARTS)
                .div_ceil(1 << 20)
                .saturating_mul(1 << 20)
                .max(MIN_PART_SIZE),
        };
        let count = size.div_ceil(part_size);
        if count > MAX_PARTS {
            return Err(ValidationError::new(
                "part_size",
                format!(
                    "makes {count} parts; at most {MAX_PARTS} are allowed, so use parts of at least {} bytes",
                    size.div_ceil(MAX_PARTS)
                ),
            ));
        }
        Ok(Self {
            size,
            part_size,
            part_count: count as u32,
        })
    }

    /// The exact size of part `n` (1-based): the last may be smaller.
    pub fn part_len(&self, n: u32) -> u64 {
        if n < self.part_count {
            self.part_size
        } else {
            self.size - self.part_size * u64::from(self.part_count - 1)
        }
    }
}

/// The client's list must name every part, in order, with the ETag the
/// store reported; the store must hold each at its planned size.
pub fn check_parts(
    plan: &PartPlan,
    claimed: &[(u32, String)],
    stored: &[StoredPart],
) -> Result<(), UploadError> {
    let mismatch = |m: String| Err(UploadError::PartsMismatch(m));
    if claimed.len() as u32 != plan.part_count {
        return mismatch(format!(
            "{} parts were listed, the upload has {}",
            claimed.len(),
            plan.part_count
        ));
    }
    for (i, (number, etag)) in claimed.iter().enumerate() {
        let expected = i as u32 + 1;
        if *number != expected {
            return mismatch(format!(
                "part {expected} is missing or out of order (found {number})"
            ));
        }
        let Some(part) = stored.iter().find(|p| p.part_number == *number) else {
            return mismatch(format!("part {number} has not been uploaded"));
        };
        if part.etag != etag.trim_matches('"') {
            return mismatch(format!("part {number}'s ETag is {}, not {etag}", part.etag));
        }
        if part.size != plan.part_len(*number) {
            return mismatch(format!(
                "part {number} has {} bytes, {} were expected",
                part.size,
                plan.part_len(*number)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn plans_follow_s3_limits() {
        let p = PartPlan::new(12 * MIB, Some(5 * MIB)).unwrap();
        assert_eq!(
            (p.part_count, p.part_len(1), p.part_len(3)),
            (3, 5 * MIB, 2 * MIB)
        );
        let p = PartPlan::new(10 * MIB, Some(5 * MIB)).unwrap();
        assert_eq!((p.part_count, p.part_len(2)), (2, 5 * MIB));
        // Default: 5 MiB until 10,000 parts would not do.
        assert_eq!(PartPlan::new(1, None).unwrap().part_size, 5 * MIB);
        let big = PartPlan::new(5 << 40, None).unwrap();
        assert!(
            big.part_count as u64 <= MAX_PARTS && big.part_size.is_multiple_of(MIB),
            "{big:?}"
        );
        assert!(PartPlan::new(0, None).is_err());
        assert!(PartPlan::new(10 * MIB, Some(MIB)).is_err());
        assert!(PartPlan::new(10 * MIB, Some(6 << 30)).is_err());
        assert!(PartPlan::new(60_000 * MIB, Some(5 * MIB)).is_err());
    }

    #[test]
    fn parts_must_match_the_store() {
        let plan = PartPlan::new(12 * MIB, Some(5 * MIB)).unwrap();
        let stored: Vec<StoredPart> = (1..=3)
            .map(|n| StoredPart {
                part_number: n,
                size: plan.part_len(n),
                etag: format!("e{n}"),
            })
            .collect();
        let claimed = |v: &[(u32, &str)]| {
            v.iter()
                .map(|(n, e)| (*n, e.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(
            check_parts(
                &plan,
                &claimed(&[(1, "e1"), (2, "\"e2\""), (3, "e3")]),
                &stored
            )
            .is_ok()
        );
        for bad in [
            claimed(&[(1, "e1"), (2, "e2")]),
            claimed(&[(1, "e1"), (3, "e3"), (2, "e2")]),
            claimed(&[(1, "e1"), (2, "x"), (3, "e3")]),
        ] {
            assert!(check_parts(&plan, &bad, &stored).is_err(), "{bad:?}");
        }
        let mut short = stored.clone();
        short[2].size -= 1;
        assert!(check_parts(&plan, &claimed(&[(1, "e1"), (2, "e2"), (3, "e3")]), &short).is_err());
    }
}
