//! The sizes of a tus upload's parts on S3: a schedule that reaches 5 TiB
//! within S3's 10,000 parts whatever the upload's length.

use crate::uploads::MAX_PARTS;

/// The most an upload of unknown length may reach: S3's largest object.
pub(super) const MAX_OBJECT: u64 = 5 << 40;

/// The part size the schedule asks of the part at `index` (0-based): 8 MiB,
/// doubled every thousand parts (10,000 of them make 8 TiB).
pub fn part_target(index: u32) -> u64 {
    (8u64 << 20) << Ord::min(index / 1000, 9)
}

/// What the parts from `index` on can carry at the schedule's sizes: a
/// thousand-part block at a time (asked on every piece a sink takes while
/// no part is planned, so no loop over ten thousand parts).
pub(super) fn capacity_from(index: u32) -> u64 {
    let last = MAX_PARTS as u32;
    let mut total = 0;
    let mut from = Ord::min(index, last);
    while from < last {
        let block_end = Ord::min((from / 1000 + 1) * 1000, last);
        total += u64::from(block_end - from) * part_target(from);
        from = block_end;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uploads::MAX_PART_SIZE;

    #[test]
    fn the_schedule_reaches_five_tebibytes_in_ten_thousand_parts() {
        assert_eq!(part_target(0), 8 << 20);
        assert_eq!(part_target(999), 8 << 20);
        assert_eq!(part_target(1000), 16 << 20);
        assert!(part_target(9999) <= MAX_PART_SIZE);
        assert!(capacity_from(0) >= MAX_OBJECT);
        assert_eq!(capacity_from(MAX_PARTS as u32), 0);
        for index in [0, 1, 999, 1000, 4321, 9999] {
            let summed: u64 = (index..MAX_PARTS as u32).map(part_target).sum();
            assert_eq!(capacity_from(index), summed, "from part {index}");
        }
    }
}
