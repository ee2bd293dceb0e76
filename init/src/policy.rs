//! When to restart a service: the restart policy, exponential backoff
//! and the crash-loop limit, as pure functions of what happened.

use std::time::Duration;

use crate::config::Restart;

/// The first restart delay; each further failure doubles it.
pub const BACKOFF_START: Duration = Duration::from_millis(200);
/// The longest restart delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A run at least this long counts as stable and resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Consecutive unstable runs after which init gives up on a service.
pub const CRASH_LOOP_LIMIT: u32 = 5;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Clean,
    /// Non-zero status, killed by a signal, or could not be started.
    Failed,
}

/// What to do after a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Restart {
        after: Duration,
    },
    /// The policy says not to restart.
    Stop,
    /// Too many unstable runs in a row.
    GiveUp {
        failures: u32,
    },
}

/// The delay before the restart that follows `failures` consecutive
/// unstable runs: 200 ms, 400 ms, 800 ms, … capped at 30 s.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    BACKOFF_START
        .checked_mul(1u32 << doublings)
        .map_or(BACKOFF_CAP, |d| d.min(BACKOFF_CAP))
}

/// Decides what follows a run of `ran_for` that ended with `outcome`.
/// `failures` counts consecutive unstable runs and is updated: a stable
/// run resets it, any run shorter than [`STABLE_AFTER`] that leads to a
/// restart adds one (under `always` that includes a quick clean exit).
pub fn decide(
    policy: Restart,
    failures: &mut u32,
    outcome: Outcome,
    ran_for: Duration,
) -> Decision {
    let restart = match policy {
        Restart::Always => true,
        Restart::OnFailure => outcome == Outcome::Failed,
        Restart::Never => false,
    };
    if ran_for >= STABLE_AFTER {
        *failures = 0;
    }
    if !restart {
        return Decision::Stop;
    }
    if ran_for < STABLE_AFTER {
        *failures = failures.saturating_add(1);
        if *failures >= CRASH_LOOP_LIMIT {
            return Decision::GiveUp {
                failures: *failures,
            };
        }
    }
    Decision::Restart {
        after: backoff(*failures),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(50);
    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(8), Duration::from_millis(25_600));
        assert_eq!(backoff(9), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn crash_loop_gives_up_after_five_quick_failures() {
        let mut f = 0;
        let mut delays = Vec::new();
        loop {
            match decide(Restart::Always, &mut f, Outcome::Failed, QUICK) {
                Decision::Restart { after } => delays.push(after.as_millis()),
                Decision::GiveUp { failures } => {
                    assert_eq!(failures, 5);
                    break;
                }
                Decision::Stop => panic!("always must not stop"),
            }
        }
        assert_eq!(delays, [200, 400, 800, 1600]);
    }

    #[test]
    fn a_stable_run_resets_the_count() {
        let mut f = 0;
        for _ in 0..4 {
            decide(Restart::OnFailure, &mut f, Outcome::Failed, QUICK);
        }
        assert_eq!(f, 4);
        let d = decide(Restart::OnFailure, &mut f, Outcome::Failed, LONG);
        assert_eq!(f, 0);
        assert_eq!(
            d,
            Decision::Restart {
                after: BACKOFF_START
            }
        );
        let d = decide(Restart::OnFailure, &mut f, Outcome::Failed, QUICK);
        assert_eq!(
            d,
            Decision::Restart {
                after: BACKOFF_START
            }
        );
        assert_eq!(f, 1);
    }

    #[test]
    fn policies() {
        let mut f = 0;
        assert_eq!(
            decide(Restart::Never, &mut f, Outcome::Failed, QUICK),
            Decision::Stop
        );
        assert_eq!(
            decide(Restart::OnFailure, &mut f, Outcome::Clean, QUICK),
            Decision::Stop
        );
        assert_eq!(f, 0);
        assert!(matches!(
            decide(Restart::OnFailure, &mut f, Outcome::Failed, QUICK),
            Decision::Restart { .. }
        ));
        let mut f = 0;
        assert_eq!(
            decide(Restart::Always, &mut f, Outcome::Clean, QUICK),
            Decision::Restart {
                after: BACKOFF_START
            }
        );
        assert_eq!(f, 1, "a quick clean exit under always backs off too");
        let mut f = 3;
        assert_eq!(
            decide(Restart::Always, &mut f, Outcome::Clean, LONG),
            Decision::Restart {
                after: BACKOFF_START
            }
        );
        assert_eq!(f, 0);
    }
}
