//! Docker's restart rules: whether an exited container starts again, and
//! after how long.

use std::time::Duration;

use husk_spec::RestartPolicy;

/// The first delay; it doubles after each quick exit.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the delay (the container was healthy).
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// After an exit with `exit_code`; `restarts` made so far.
pub fn should_restart(
    policy: RestartPolicy,
    exit_code: i32,
    manually_stopped: bool,
    restarts: u32,
) -> bool {
    if manually_stopped {
        return false;
    }
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => {
            exit_code != 0 && max_retries.is_none_or(|max| restarts < max)
        }
    }
}

/// When the agent starts (after a reboot, or after the agent itself was
/// restarted and found the container gone): Docker's daemon start rules.
pub fn start_on_boot(policy: RestartPolicy, manually_stopped: bool) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !manually_stopped,
        RestartPolicy::No | RestartPolicy::OnFailure { .. } => false,
    }
}

/// The delay before the next restart, after `quick_exits` exits in a row
/// that came before [`HEALTHY_RUN`].
pub fn delay(quick_exits: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1u32 << quick_exits.min(16))
        .min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let on_failure = |max| RestartPolicy::OnFailure { max_retries: max };
        assert!(!should_restart(RestartPolicy::No, 1, false, 0));
        assert!(should_restart(RestartPolicy::Always, 0, false, 99));
        assert!(!should_restart(RestartPolicy::Always, 0, true, 0));
        assert!(should_restart(RestartPolicy::UnlessStopped, 0, false, 0));
        assert!(!should_restart(on_failure(None), 0, false, 0));
        assert!(should_restart(on_failure(None), 137, false, 50));
        assert!(should_restart(on_failure(Some(2)), 1, false, 1));
        assert!(!should_restart(on_failure(Some(2)), 1, false, 2));
        assert!(start_on_boot(RestartPolicy::Always, true));
        assert!(!start_on_boot(RestartPolicy::UnlessStopped, true));
        assert!(start_on_boot(RestartPolicy::UnlessStopped, false));
        assert!(!start_on_boot(on_failure(None), false));
    }

    #[test]
    fn delays_double_up_to_a_minute() {
        assert_eq!(delay(0), Duration::from_millis(100));
        assert_eq!(delay(3), Duration::from_millis(800));
        assert_eq!(delay(10), MAX_DELAY);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }
}
