//! What to do with a measured offset, and doing it through a [`Clock`]
//! (the real one in `sys.rs`; tests use a recording fake, so none of
//! this needs CAP_SYS_TIME to be tested).

use std::io;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::duration::SignedDuration;
use crate::error::NtpError;

/// Offsets from here on are stepped: ntpd's STEPT and chrony's usual
/// `makestep` threshold. Below it a slew is quick enough (at 500 ppm,
/// 128 ms takes about four minutes) and time never jumps.
pub const DEFAULT_STEP_THRESHOLD: Duration = Duration::from_millis(128);
/// Offsets under this are left alone: below what one exchange over a
/// network can tell apart from noise, and the slew's microsecond grain.
pub const NEGLIGIBLE: Duration = Duration::from_micros(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    /// Set the clock to now + offset at once.
    Step(SignedDuration),
    /// Let the kernel run the clock slightly fast or slow until the
    /// offset is made up.
    Slew(SignedDuration),
    None,
}

/// A correction's kind, as reports say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorrectionKind {
    Step,
    Slew,
    None,
}

impl Correction {
    pub fn kind(self) -> CorrectionKind {
        match self {
            Self::Step(_) => CorrectionKind::Step,
            Self::Slew(_) => CorrectionKind::Slew,
            Self::None => CorrectionKind::None,
        }
    }
}

/// Step when |offset| >= `step_threshold`, nothing when it is under
/// [`NEGLIGIBLE`], slew in between.
pub fn decide(offset: SignedDuration, step_threshold: Duration) -> Correction {
    let magnitude = offset.abs();
    if magnitude >= step_threshold {
        Correction::Step(offset)
    } else if magnitude < NEGLIGIBLE {
        Correction::None
    } else {
        Correction::Slew(offset)
    }
}

/// The clock being disciplined.
pub trait Clock {
    fn now(&self) -> SystemTime;
    /// Moves the clock by `by` at once.
    fn step(&self, by: SignedDuration) -> io::Result<()>;
    /// Moves the clock by `by` gradually, replacing any slew in progress.
    fn slew(&self, by: SignedDuration) -> io::Result<()>;
}

/// Applies `correction` to `clock`.
pub fn apply(clock: &(impl Clock + ?Sized), correction: Correction) -> Result<(), NtpError> {
    let (op, offset, result) = match correction {
        Correction::Step(by) => ("stepping", by, clock.step(by)),
        Correction::Slew(by) => ("slewing", by, clock.slew(by)),
        Correction::None => return Ok(()),
    };
    result.map_err(|source| NtpError::Clock { op, offset, source })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A clock that records what it is told and can be told to fail.
    #[derive(Debug, Default)]
    pub(crate) struct RecordingClock {
        pub calls: Mutex<Vec<Correction>>,
        pub fail: bool,
    }

    impl RecordingClock {
        pub fn calls(&self) -> Vec<Correction> {
            self.calls.lock().unwrap().clone()
        }

        fn record(&self, c: Correction) -> io::Result<()> {
            self.calls.lock().unwrap().push(c);
            if self.fail {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        }
    }

    impl Clock for RecordingClock {
        fn now(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
        }
        fn step(&self, by: SignedDuration) -> io::Result<()> {
            self.record(Correction::Step(by))
        }
        fn slew(&self, by: SignedDuration) -> io::Result<()> {
            self.record(Correction::Slew(by))
        }
    }

    fn ms(ms: i64) -> SignedDuration {
        SignedDuration::from_millis(ms)
    }

    #[test]
    fn thresholds() {
        let t = DEFAULT_STEP_THRESHOLD;
        assert_eq!(decide(ms(128), t), Correction::Step(ms(128)));
        assert_eq!(decide(ms(-128), t), Correction::Step(ms(-128)));
        assert_eq!(decide(ms(-3_600_000), t), Correction::Step(ms(-3_600_000)));
        let just_under = SignedDuration::from_nanos(127_999_999);
        assert_eq!(decide(just_under, t), Correction::Slew(just_under));
        assert_eq!(decide(ms(-1), t), Correction::Slew(ms(-1)));
        let five_us = SignedDuration::from_nanos(5_000);
        assert_eq!(decide(five_us, t), Correction::Slew(five_us));
        assert_eq!(
            decide(SignedDuration::from_nanos(-4_999), t),
            Correction::None
        );
        assert_eq!(decide(SignedDuration::ZERO, t), Correction::None);
        // The threshold is the caller's.
        assert_eq!(
            decide(ms(50), Duration::from_millis(10)),
            Correction::Step(ms(50))
        );
        assert_eq!(
            decide(ms(500), Duration::from_secs(1)),
            Correction::Slew(ms(500))
        );
    }

    #[test]
    fn apply_calls_the_clock() {
        let clock = RecordingClock::default();
        apply(&clock, Correction::Step(ms(-2000))).unwrap();
        apply(&clock, Correction::Slew(ms(3))).unwrap();
        apply(&clock, Correction::None).unwrap();
        assert_eq!(
            clock.calls(),
            [Correction::Step(ms(-2000)), Correction::Slew(ms(3))]
        );
        // Through a trait object too.
        let dynamic: &dyn Clock = &clock;
        apply(dynamic, Correction::Slew(ms(1))).unwrap();
        assert_eq!(clock.calls().len(), 3);
    }

    #[test]
    fn a_failing_clock_is_an_error_with_its_cause() {
        let clock = RecordingClock {
            fail: true,
            ..RecordingClock::default()
        };
        let e = apply(&clock, Correction::Step(ms(1500))).unwrap_err();
        assert!(matches!(e, NtpError::Clock { op: "stepping", .. }));
        assert!(
            e.to_string()
                .starts_with("stepping the clock by +1.500000s: "),
            "{e}"
        );
        let source = std::error::Error::source(&e).unwrap();
        assert_eq!(
            source.downcast_ref::<io::Error>().unwrap().raw_os_error(),
            Some(libc::EPERM)
        );
    }

    #[test]
    fn kinds_serialise_as_words() {
        assert_eq!(
            serde_json::to_string(&CorrectionKind::Step).unwrap(),
            "\"step\""
        );
        assert_eq!(Correction::Slew(ms(1)).kind(), CorrectionKind::Slew);
        assert_eq!(Correction::None.kind(), CorrectionKind::None);
    }
}
