//! NTP's 64-bit timestamps (RFC 5905 §6): 32 bits of seconds since
//! 1900-01-01 and 32 bits of fraction. The seconds wrap every 2^32 s
//! (136 years; the first wrap is 2036-02-07T06:28:16Z), and the era
//! number is not on the wire, so a timestamp is read as the instant
//! nearest a local clock reading: right whenever the two are less than
//! 68 years apart. Times are nanoseconds since the Unix epoch as `i128`,
//! which holds every era and the products of the conversions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from NTP's prime epoch (1900-01-01) to Unix's (1970-01-01).
pub const UNIX_EPOCH_NTP_SECS: i128 = 2_208_988_800;

const UNITS_PER_SEC: i128 = 1 << 32;
const NANOS_PER_SEC: i128 = 1_000_000_000;
const UNIX_EPOCH_UNITS: i128 = UNIX_EPOCH_NTP_SECS << 32;

/// A timestamp as it travels: seconds modulo 2^32, then the fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// "Unset" on the wire: RFC 5905 gives 0 that meaning in every era.
    pub const ZERO: Self = Self(0);

    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// The timestamp of `unix_nanos`, rounded to the nearest 2^-32 s
    /// (0.23 ns, so every nanosecond has its own fraction and
    /// [`to_unix_nanos`](Self::to_unix_nanos) gives it back exactly).
    pub fn from_unix_nanos(unix_nanos: i128) -> Self {
        // `as u64` keeps the low 64 bits: the era is dropped, as on the wire.
        Self(units(unix_nanos) as u64)
    }

    /// The instant this timestamp names in the era that puts it nearest
    /// `pivot` (RFC 5905 §6: the 64-bit difference read as signed).
    pub fn to_unix_nanos(self, pivot_unix_nanos: i128) -> i128 {
        let pivot = units(pivot_unix_nanos);
        let diff = self.0.wrapping_sub(pivot as u64) as i64;
        let full = pivot + i128::from(diff);
        div_round((full - UNIX_EPOCH_UNITS) * NANOS_PER_SEC, UNITS_PER_SEC)
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        Self::from_unix_nanos(unix_nanos(time))
    }

    pub fn to_system_time(self, pivot: SystemTime) -> SystemTime {
        system_time(self.to_unix_nanos(unix_nanos(pivot)))
    }
}

/// 2^-32 s units since 1900, with the era (can be negative).
fn units(unix_nanos: i128) -> i128 {
    div_round(unix_nanos * UNITS_PER_SEC, NANOS_PER_SEC) + UNIX_EPOCH_UNITS
}

/// `n / d` rounded to nearest, halves up, for `d > 0` and any sign of
/// `n` (`/` would truncate towards zero and bias negative times).
fn div_round(n: i128, d: i128) -> i128 {
    (n + d / 2).div_euclid(d)
}

/// Nanoseconds since the Unix epoch, negative before it.
pub fn unix_nanos(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// The inverse of [`unix_nanos`]. Saturates at what `SystemTime` holds
/// (it holds far more than the ±68 years a timestamp can be read in).
pub fn system_time(unix_nanos: i128) -> SystemTime {
    let magnitude = unix_nanos.unsigned_abs();
    let secs = u64::try_from(magnitude / NANOS_PER_SEC as u128).unwrap_or(u64::MAX);
    let by = Duration::new(secs, (magnitude % NANOS_PER_SEC as u128) as u32);
    let time = if unix_nanos >= 0 {
        UNIX_EPOCH.checked_add(by)
    } else {
        UNIX_EPOCH.checked_sub(by)
    };
    time.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i128 = NANOS_PER_SEC;
    /// 2036-02-07T06:28:16Z: NTP seconds wrap to 0 (era 1 begins).
    const ERA1_UNIX: i128 = (1 << 32) - UNIX_EPOCH_NTP_SECS;
    /// 2026-01-01T00:00:00Z.
    const Y2026: i128 = 1_767_225_600;

    fn ts(seconds: u32, fraction: u32) -> NtpTimestamp {
        NtpTimestamp((u64::from(seconds) << 32) | u64::from(fraction))
    }

    #[test]
    fn the_epochs() {
        // 1970 is NTP second 2 208 988 800; 1900 is the zero timestamp.
        assert_eq!(NtpTimestamp::from_unix_nanos(0), ts(2_208_988_800, 0));
        assert_eq!(
            NtpTimestamp::from_unix_nanos(-UNIX_EPOCH_NTP_SECS * NS),
            NtpTimestamp::ZERO
        );
        assert_eq!(ts(2_208_988_800, 0).to_unix_nanos(0), 0);
        // Near 1900 the zero timestamp is 1900 itself, not 2036.
        let near_1900 = (-UNIX_EPOCH_NTP_SECS + 1000) * NS;
        assert_eq!(
            NtpTimestamp::ZERO.to_unix_nanos(near_1900),
            -UNIX_EPOCH_NTP_SECS * NS
        );
        assert_eq!(
            NtpTimestamp::from_system_time(UNIX_EPOCH),
            ts(2_208_988_800, 0)
        );
    }

    #[test]
    fn the_2036_rollover() {
        // Either side of the wrap, read with a clock right at it.
        let pivot = ERA1_UNIX * NS;
        assert_eq!(ts(u32::MAX, 0).to_unix_nanos(pivot), (ERA1_UNIX - 1) * NS);
        assert_eq!(ts(0, 0).to_unix_nanos(pivot), ERA1_UNIX * NS);
        assert_eq!(
            ts(1, 1 << 31).to_unix_nanos(pivot),
            ERA1_UNIX * NS + 3 * NS / 2
        );
        // And with a clock on the other side of it.
        assert_eq!(
            ts(1, 0).to_unix_nanos((ERA1_UNIX - 5) * NS),
            (ERA1_UNIX + 1) * NS
        );
        assert_eq!(
            ts(u32::MAX - 1, 0).to_unix_nanos((ERA1_UNIX + 5) * NS),
            (ERA1_UNIX - 2) * NS
        );
        // From 2026, a small seconds value is 2036 (10 years on), not 1900.
        assert_eq!(ts(100, 0).to_unix_nanos(Y2026 * NS), (ERA1_UNIX + 100) * NS);
        // Writing: the era is dropped.
        assert_eq!(NtpTimestamp::from_unix_nanos(ERA1_UNIX * NS), ts(0, 0));
        assert_eq!(
            NtpTimestamp::from_unix_nanos((ERA1_UNIX + 7) * NS + NS / 4),
            ts(7, 1 << 30)
        );
        assert_eq!(
            NtpTimestamp::from_unix_nanos(ERA1_UNIX * NS - 1).seconds(),
            u32::MAX
        );
    }

    #[test]
    fn the_68_year_window() {
        // A clock left at 1970 still reads 2026 right (56 years on)...
        let t2026 = NtpTimestamp::from_unix_nanos(Y2026 * NS);
        assert_eq!(t2026.to_unix_nanos(0), Y2026 * NS);
        // ...and a 2026 clock reads 1990 right (36 years back).
        let t1990 = NtpTimestamp::from_unix_nanos(631_152_000 * NS);
        assert_eq!(t1990.to_unix_nanos(Y2026 * NS), 631_152_000 * NS);
        // Beyond 68 years the nearest era wins: 1905 read from 2026 is 2041.
        let t1905 = NtpTimestamp::from_unix_nanos(-2_051_222_400 * NS);
        let read = t1905.to_unix_nanos(Y2026 * NS);
        assert_eq!(read, -2_051_222_400 * NS + (1 << 32) * NS);
    }

    #[test]
    fn fractions_are_exact_to_the_nanosecond() {
        let base = Y2026 * NS;
        let mut ns = 0;
        while ns < NS {
            let t = NtpTimestamp::from_unix_nanos(base + ns);
            assert_eq!(t.to_unix_nanos(base), base + ns, "{ns} ns");
            ns += 7919;
        }
        for ns in [
            1,
            2,
            3,
            499_999_999,
            500_000_000,
            500_000_001,
            NS - 2,
            NS - 1,
        ] {
            let t = NtpTimestamp::from_unix_nanos(base + ns);
            assert_eq!(t.to_unix_nanos(base), base + ns, "{ns} ns");
        }
        // Known fractions.
        assert_eq!(
            NtpTimestamp::from_unix_nanos(base + NS / 2).fraction(),
            1 << 31
        );
        assert_eq!(NtpTimestamp::from_unix_nanos(base + 1).fraction(), 4); // 4.29
        // 999 999 999.9 ns rounds into the next second: the carry is kept.
        let almost = ts(3_976_214_400, u32::MAX);
        assert_eq!(almost.to_unix_nanos(base), base + NS);
        assert_eq!(
            NtpTimestamp::from_unix_nanos(base + NS - 1).fraction(),
            4_294_967_292 // 4 294 967 291.7
        );
        // Before 1970 too (negative Unix times round the same way).
        let before = -123 * NS - 1;
        assert_eq!(
            NtpTimestamp::from_unix_nanos(before).to_unix_nanos(0),
            before
        );
    }

    #[test]
    fn system_times() {
        for ns in [
            0,
            1,
            -1,
            Y2026 * NS + 123_456_789,
            -UNIX_EPOCH_NTP_SECS * NS,
        ] {
            assert_eq!(unix_nanos(system_time(ns)), ns);
        }
        let now = SystemTime::now();
        assert_eq!(NtpTimestamp::from_system_time(now).to_system_time(now), now);
    }
}
