//! A signed span of time: a clock offset is ahead or behind, which
//! `std::time::Duration` cannot say. Nanoseconds in an `i64` hold
//! ±292 years, more than the ±68 years an NTP timestamp can be read in.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SignedDuration {
    nanos: i64,
}

impl SignedDuration {
    pub const ZERO: Self = Self { nanos: 0 };

    pub const fn from_nanos(nanos: i64) -> Self {
        Self { nanos }
    }

    pub const fn from_millis(millis: i64) -> Self {
        Self {
            nanos: millis.saturating_mul(1_000_000),
        }
    }

    /// From a wider computation, saturating (an offset that does not fit
    /// 292 years is not one an NTP reply can produce).
    pub fn from_nanos_i128(nanos: i128) -> Self {
        Self {
            nanos: i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX }),
        }
    }

    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 / 1e9
    }

    pub fn as_millis_f64(self) -> f64 {
        self.nanos as f64 / 1e6
    }

    pub const fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// The magnitude.
    pub const fn abs(self) -> Duration {
        Duration::from_nanos(self.nanos.unsigned_abs())
    }
}

/// `+1.234567s`, `-0.000120s`: signed, microseconds, the unit fixed so
/// that log lines line up and compare at a glance.
impl fmt::Display for SignedDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { '-' } else { '+' };
        let abs = self.abs();
        write!(f, "{sign}{}.{:06}s", abs.as_secs(), abs.subsec_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_magnitudes() {
        let behind = SignedDuration::from_millis(-1500);
        assert!(behind.is_negative());
        assert_eq!(behind.abs(), Duration::from_millis(1500));
        assert_eq!(behind.as_secs_f64(), -1.5);
        assert_eq!(behind.to_string(), "-1.500000s");
        assert_eq!(
            SignedDuration::from_nanos(120_999).to_string(),
            "+0.000120s"
        );
        assert_eq!(
            SignedDuration::from_nanos(i64::MIN).abs().as_nanos(),
            1 << 63
        );
        assert_eq!(
            SignedDuration::from_nanos_i128(-(1 << 100)),
            SignedDuration::from_nanos(i64::MIN)
        );
        assert_eq!(
            SignedDuration::from_nanos_i128(1 << 100).as_nanos(),
            i64::MAX
        );
    }
}
