//! Time as Docker's answers carry it: Unix seconds (`Created` of lists),
//! RFC 3339 strings (inspect), "Up 5 seconds" (`Status` of `ps`, which
//! the server writes, in go-units' `HumanDuration` words), and the
//! `since`/`until` of logs (Unix seconds with an optional fraction).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Go's zero time, which Docker shows for "never" (`StartedAt` of a
/// container that never ran).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Days since 1970-01-01 of a date (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of an RFC 3339 time in UTC (`2024-01-01T00:00:00Z`, with
/// or without a fraction), as image configs and the agent write them.
pub fn unix_seconds(text: &str) -> Option<i64> {
    let date = text.get(0..10)?;
    let clock = text.get(11..19)?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (c.next()??, c.next()??, c.next()??);
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// go-units' `HumanDuration`: "Less than a second", "5 seconds",
/// "About a minute", "3 hours", "2 weeks"…
pub fn human(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// How long ago `ms` (milliseconds since the epoch) was.
pub fn since_ms(ms: u64) -> Duration {
    let then = UNIX_EPOCH + Duration::from_millis(ms);
    SystemTime::now().duration_since(then).unwrap_or_default()
}

/// `since`/`until` of logs: `1700000000` or `1700000000.123456789`, as
/// the RFC 3339 text the log entries carry, so that the two compare as
/// strings (both are fixed-width UTC). None for 0 (no bound).
pub fn log_bound(text: &str) -> Result<Option<String>, String> {
    let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
    let bad = || format!("invalid timestamp {text:?}: expected Unix seconds");
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction
            .chars()
            .chain("000000000".chars())
            .take(9)
            .collect();
        digits.parse().map_err(|_| bad())?
    };
    if secs == 0 && nanos == 0 {
        return Ok(None);
    }
    Ok(Some(husk_common::civil::rfc3339(
        UNIX_EPOCH + Duration::new(secs, nanos),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_words_times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2000-02-29T00:00:00.5Z"), Some(951_782_400));
        assert_eq!(
            unix_seconds("2026-11-22T13:45:20.000000005Z"),
            Some(1_795_355_120)
        );
        assert_eq!(unix_seconds("nope"), None);
        assert_eq!(human(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human(Duration::from_secs(70)), "About a minute");
        assert_eq!(human(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human(Duration::from_secs(20 * 86_400)), "2 weeks");
        assert_eq!(log_bound("0").unwrap(), None);
        assert_eq!(
            log_bound("1795355120.5").unwrap().as_deref(),
            Some("2026-11-22T13:45:20.500000000Z")
        );
        assert!(log_bound("yesterday").is_err());
    }
}
