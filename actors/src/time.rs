//! The one clock the domain reads.

use chrono::{DateTime, SubsecRound, Utc};

/// How long a supervised actor waits before stopping itself to be restarted
/// (or trying again) after `failures` failures in a row: 100 ms, doubling,
/// at most 10 s.
pub fn backoff(failures: u32) -> std::time::Duration {
    std::time::Duration::from_millis(100u64.saturating_mul(1 << failures.min(7)))
        .min(std::time::Duration::from_secs(10))
}

/// Now, truncated to microseconds: PostgreSQL keeps microseconds, so a value
/// read back compares equal to the one written, on SQLite as on PostgreSQL.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::backoff;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(20), Duration::from_secs(10));
    }
}
