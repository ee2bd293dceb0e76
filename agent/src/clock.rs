//! A clock that is obviously wrong (a VM without an RTC battery, a host
//! that booted at the epoch) breaks what depends on time: TUF metadata
//! expiry, TLS, log times. The agent cannot know the right time without
//! the network, but it knows a time that has certainly passed: when the
//! image was built (`HUSK_BUILD_EPOCH` in /etc/os-release), or at least
//! when the kernel was (the date `/proc/version` ends with). A clock
//! before that is set forward to it, loudly.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not before the floor.
    Plausible,
    /// Before the floor: set it to the floor.
    SetForward { now: u64, floor: u64 },
    /// No floor known: nothing to compare with.
    Unknown,
}

/// Compares `now` with `floor` (seconds since the epoch).
pub fn judge(now: u64, floor: Option<u64>) -> Verdict {
    match floor {
        None => Verdict::Unknown,
        Some(floor) if now < floor => Verdict::SetForward { now, floor },
        Some(_) => Verdict::Plausible,
    }
}

/// `HUSK_BUILD_EPOCH=<seconds>` of an os-release file.
pub fn floor_from_os_release(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("HUSK_BUILD_EPOCH="))
        .and_then(|v| v.trim().trim_matches('"').parse().ok())
}

/// The last `(YYYY-MM-DD)` of /proc/version (Debian's kernels end with
/// their release date), as seconds since the epoch.
pub fn floor_from_proc_version(text: &str) -> Option<u64> {
    let bytes = text.trim_end().as_bytes();
    (0..bytes.len().saturating_sub(11)).rev().find_map(|i| {
        let candidate = std::str::from_utf8(bytes.get(i..i + 12)?).ok()?;
        let date = candidate.strip_prefix('(')?.strip_suffix(')')?;
        parse_date(date)
    })
}

fn parse_date(date: &str) -> Option<u64> {
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400).ok()
}

/// The floor from the files of this machine.
pub fn floor(os_release: &Path, proc_version: &Path) -> Option<u64> {
    let build = std::fs::read_to_string(os_release)
        .ok()
        .and_then(|t| floor_from_os_release(&t));
    let kernel = std::fs::read_to_string(proc_version)
        .ok()
        .and_then(|t| floor_from_proc_version(&t));
    build.max(kernel)
}

/// Checks the clock at startup and sets it forward when it is before the
/// floor. Returns the verdict for the log and the API.
pub fn ensure_plausible(os_release: &Path, proc_version: &Path) -> Verdict {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let verdict = judge(now, floor(os_release, proc_version));
    if let Verdict::SetForward { now, floor } = verdict {
        log::error!(
            "the clock says {} (epoch {now}), before this system was built ({}): \
             setting it forward; signed update metadata and TLS need the right time",
            crate::containers::time::rfc3339(UNIX_EPOCH + Duration::from_secs(now)),
            crate::containers::time::rfc3339(UNIX_EPOCH + Duration::from_secs(floor)),
        );
        let time = rustix::time::Timespec {
            tv_sec: floor as i64,
            tv_nsec: 0,
        };
        if let Err(e) = rustix::time::clock_settime(rustix::time::ClockId::Realtime, time) {
            log::error!("setting the clock: {e}");
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_from_files() {
        let debian = "Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) \
                      (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC \
                      Debian 6.1.158-1 (2025-11-22)\n";
        assert_eq!(floor_from_proc_version(debian), Some(1_763_769_600));
        assert_eq!(
            floor_from_proc_version("Linux version 6.18 #1 SMP @0"),
            None
        );
        assert_eq!(
            floor_from_os_release("ID=husk\nHUSK_BUILD_EPOCH=1795355120\n"),
            Some(1_795_355_120)
        );
        assert_eq!(floor_from_os_release("ID=husk\n"), None);
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_date("2000-13-01"), None);
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            judge(10, Some(20)),
            Verdict::SetForward { now: 10, floor: 20 }
        );
        assert_eq!(judge(20, Some(20)), Verdict::Plausible);
        assert_eq!(judge(5, None), Verdict::Unknown);
    }
}
