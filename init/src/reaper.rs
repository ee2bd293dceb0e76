//! Reaping: every exited child, a service or an orphan the kernel
//! reparented to PID 1, is collected so no zombie stays behind.

use rustix::process::{WaitOptions, WaitStatus, wait};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Status(i32),
    Signal(i32),
}

impl ExitKind {
    pub fn from_wait_status(status: WaitStatus) -> Self {
        match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => ExitKind::Status(code),
            (None, Some(sig)) => ExitKind::Signal(sig),
            // Stopped/continued are not reported without WUNTRACED.
            (None, None) => ExitKind::Status(-1),
        }
    }

    pub fn success(self) -> bool {
        self == ExitKind::Status(0)
    }
}

/// Reaps every child that has exited, calling `on_exit(pid, how)` for
/// each. Returns false when init has no children left at all.
pub fn reap(mut on_exit: impl FnMut(i32, ExitKind)) -> bool {
    loop {
        // wait(), i.e. waitpid(-1): rustix's waitpid(None) is waitpid(0),
        // which only sees children in init's own process group, and every
        // service has its own session.
        match wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                on_exit(
                    pid.as_raw_nonzero().get(),
                    ExitKind::from_wait_status(status),
                );
            }
            Ok(None) => return true,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::CHILD) => return false,
            Err(e) => {
                log::warn!("waitpid: {e}");
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_kinds() {
        assert!(ExitKind::Status(0).success());
        assert!(!ExitKind::Status(1).success());
        assert!(!ExitKind::Signal(9).success());
    }
}
