//! Signals, turned into flags plus a self-pipe that wakes the poll loop.
//!
//! Handlers (not SIG_IGN) are installed even for what init ignores
//! (SIGHUP): the kernel resets handlers on exec, so services start with
//! default dispositions, and PID 1 only receives signals it handles.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::libc::SIGPWR;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR2};

use crate::sys::PowerAction;

/// Signal state shared with the handlers.
pub struct Signals {
    child: Arc<AtomicBool>,
    reboot: Arc<AtomicBool>,
    power_off: Arc<AtomicBool>,
    wake: UnixStream,
}

/// What arrived since the last look.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub child: bool,
    pub shutdown: Option<PowerAction>,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> io::Result<Self> {
        let (wake, write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        let this = Self {
            child: Arc::new(AtomicBool::new(false)),
            reboot: Arc::new(AtomicBool::new(false)),
            power_off: Arc::new(AtomicBool::new(false)),
            wake,
        };
        let ignored = Arc::new(AtomicBool::new(false));
        let table = [
            (SIGCHLD, &this.child),
            (SIGTERM, &this.reboot),
            (SIGINT, &this.reboot),
            (SIGUSR2, &this.power_off),
            (SIGPWR, &this.power_off),
            (SIGHUP, &ignored),
        ];
        for (sig, flag) in table {
            // The flag first: handlers run in registration order, so the
            // flag is set before the wake-up byte is written.
            signal_hook::flag::register(sig, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(this)
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Empties the wake-up pipe and takes the flags.
    pub fn take(&self) -> Pending {
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        let child = self.child.swap(false, Ordering::SeqCst);
        let power_off = self.power_off.swap(false, Ordering::SeqCst);
        let reboot = self.reboot.swap(false, Ordering::SeqCst);
        let shutdown = if power_off {
            Some(PowerAction::PowerOff)
        } else if reboot {
            Some(PowerAction::Reboot)
        } else {
            None
        };
        Pending { child, shutdown }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_set_flags_and_wake_the_pipe() {
        let s = Signals::install().unwrap();
        signal_hook::low_level::raise(SIGUSR2).unwrap();
        let mut fds = [rustix::event::PollFd::new(
            &s.wake,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        assert_eq!(rustix::event::poll(&mut fds, Some(&timeout)).unwrap(), 1);
        let p = s.take();
        assert_eq!(p.shutdown, Some(PowerAction::PowerOff));
        assert_eq!(s.take(), Pending::default());
    }
}
