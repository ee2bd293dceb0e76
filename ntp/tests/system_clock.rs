//! The real clock's system calls, as far as a host test may go: a slew
//! by zero (it only cancels a slew in progress). Never a step: that would
//! move this machine's clock.

use husk_ntp::{Clock, SignedDuration, SystemClock};

/// Whether this process may set the clock (CAP_SYS_TIME, bit 25).
fn may_set_time() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(caps, 16).unwrap() & (1 << 25) != 0
}

#[test]
fn a_slew_by_zero() {
    let result = SystemClock.slew(SignedDuration::ZERO);
    if may_set_time() {
        result.expect("adjtimex(ADJ_OFFSET_SINGLESHOT, 0) with CAP_SYS_TIME");
    } else {
        let e = result.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    }
}

#[test]
fn now_is_the_system_time() {
    let before = std::time::SystemTime::now();
    let now = SystemClock.now();
    assert!(now >= before);
}
