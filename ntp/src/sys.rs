//! The system calls: the real clock and the nonce's randomness. The one
//! place with `unsafe` (adjtimex has no safe binding in rustix).

use std::io;
use std::time::SystemTime;

use rustix::time::{ClockId, Timespec};

use crate::discipline::Clock;
use crate::duration::SignedDuration;

/// CLOCK_REALTIME. Stepping and slewing need CAP_SYS_TIME.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// clock_settime(now + by). The kernel also cancels any slew still
    /// in progress (a step clears its NTP state), which is right: the
    /// offset measured included what that slew had yet to do.
    fn step(&self, by: SignedDuration) -> io::Result<()> {
        const NS: i128 = 1_000_000_000;
        let now = rustix::time::clock_gettime(ClockId::Realtime);
        let target =
            i128::from(now.tv_sec) * NS + i128::from(now.tv_nsec) + i128::from(by.as_nanos());
        let time = Timespec {
            tv_sec: i64::try_from(target.div_euclid(NS))
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            tv_nsec: target.rem_euclid(NS) as _,
        };
        rustix::time::clock_settime(ClockId::Realtime, time)?;
        Ok(())
    }

    /// adjtimex(ADJ_OFFSET_SINGLESHOT), adjtime(3)'s slew: the kernel
    /// runs the clock 500 ppm fast or slow until `by` is made up (128 ms
    /// in 256 s), never backwards, and it replaces whatever slew was in
    /// progress, so each sync hands over the whole offset it measured.
    /// Chosen over the PLL (ADJ_OFFSET with STA_PLL) because it keeps no
    /// state in the kernel: nothing to tune, nothing to fight with,
    /// and a slew by zero only cancels.
    fn slew(&self, by: SignedDuration) -> io::Result<()> {
        // Microseconds: this mode ignores ADJ_NANO.
        let micros = (by.as_nanos() + by.as_nanos().signum() * 500) / 1000;
        // SAFETY: `timex` is integers and padding; all zeroes is a valid
        // value (and the "change nothing" request, modes == 0).
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        tx.modes = libc::ADJ_OFFSET_SINGLESHOT;
        tx.offset = micros as _;
        // SAFETY: `tx` is a valid, exclusively borrowed `timex` for the
        // duration of the call, as adjtimex(2) requires.
        let state = unsafe { libc::adjtimex(&mut tx) };
        if state == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// 64 random bits from the kernel: the request's transmit timestamp,
/// which a spoofer off the path must not guess.
pub fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(u64::from_ne_bytes(bytes))
}
