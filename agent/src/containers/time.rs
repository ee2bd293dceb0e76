//! Timestamps as the API and the log files write them: RFC 3339 in UTC
//! with nanoseconds, as Docker's json-file logs do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub use husk_common::civil::rfc3339;

/// `rfc3339` of milliseconds since the epoch.
pub fn rfc3339_ms(ms: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_ms(951_782_400_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::new(1_795_355_120, 5)),
            "2026-11-22T13:45:20.000000005Z"
        );
        assert_eq!(
            rfc3339_ms(4_107_542_399_999),
            "2100-02-28T23:59:59.999000000Z"
        );
    }
}
