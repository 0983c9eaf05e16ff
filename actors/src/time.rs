//! The one clock the domain reads.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, truncated to microseconds: PostgreSQL keeps microseconds, so a value
/// read back compares equal to the one written, on SQLite as on PostgreSQL.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
