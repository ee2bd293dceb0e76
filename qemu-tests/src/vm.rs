//! A running QEMU: serial waits with deadlines, QMP, its exit; killed on drop.
//!
//! ```no_run
//! # use qemu_tests::*;
//! # use std::time::Duration;
//! # fn main() -> Result<()> {
//! let dir = TestDir::new("example")?;
//! let initrd = GuestImage::builder().build(dir.path())?;
//! let mut vm = VmBuilder::new(dir).kernel(&Kernel::get()?.image).initrd(initrd).launch()?;
//! vm.wait_for_line("husk-init: boot: agent ready", Duration::from_secs(60))?;
//! vm.qmp().system_powerdown()?;
//! vm.wait_for_exit(Duration::from_secs(30))?;
//! # Ok(()) }
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use crate::deadline::scaled;
use crate::error::{Error, IoContext, Result};
use crate::log_lines;
use crate::qmp::Qmp;
use crate::serial::{Found, SerialCursor, SerialLog, TAIL_LINES, describe};
use crate::slots::Slot;
use crate::test_dir::TestDir;

/// A line that ends every wait early: after it nothing the test waits
/// for can come (unless the test waits for the panic itself).
const PANIC_MARKER: &str = "Kernel panic - not syncing";
const EXIT_POLL: Duration = Duration::from_millis(50);

/// A running QEMU. Dropping it kills QEMU (also when a test panics), so
/// no machine outlives its test.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    exit: Option<ExitStatus>,
    serial: SerialLog,
    /// Always set once `launch` returns.
    qmp: Option<Qmp>,
    qemu_log: PathBuf,
    started: Instant,
    // Dropped after `Drop::drop` has killed QEMU, in this order.
    dir: TestDir,
    _slot: Slot,
}

impl Vm {
    /// Wraps a QEMU just spawned by `VmBuilder::launch`.
    pub(crate) fn started(
        child: Child,
        serial: PathBuf,
        qemu_log: PathBuf,
        dir: TestDir,
        slot: Slot,
    ) -> Vm {
        Vm {
            child,
            exit: None,
            serial: SerialLog::new(serial),
            qmp: None,
            qemu_log,
            started: Instant::now(),
            dir,
            _slot: slot,
        }
    }

    pub(crate) fn set_qmp(&mut self, qmp: Qmp) {
        self.qmp = Some(qmp);
    }

    /// The test's directory (serial.log, qemu.log, qmp.sock, …).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn serial_path(&self) -> &Path {
        self.serial.path()
    }

    /// Time since QEMU was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn qmp(&mut self) -> &mut Qmp {
        self.qmp.as_mut().expect("launch always connects QMP")
    }

    /// Where the next [`Self::wait_for_line`] starts looking: just after
    /// the last line any wait matched.
    pub fn serial_cursor(&self) -> SerialCursor {
        self.serial.cursor()
    }

    /// After all output so far; pass to [`Self::wait_for_line_after`] to
    /// ignore everything already printed.
    pub fn serial_end(&mut self) -> Result<SerialCursor> {
        self.serial
            .end()
            .context(|| format!("reading {}", self.serial.path().display()))
    }

    /// The last `n` lines of the console.
    pub fn serial_tail(&mut self, n: usize) -> String {
        self.serial.tail(n)
    }

    /// How many console lines so far contain `needle`.
    pub fn count_lines(&mut self, needle: &str) -> Result<usize> {
        self.serial
            .count(needle)
            .context(|| format!("reading {}", self.serial.path().display()))
    }

    /// Waits for a line containing `needle` after the cursor (i.e. one
    /// not matched by an earlier wait) and returns it. `timeout` is
    /// scaled by `HUSK_TIMEOUT_SCALE`; a kernel panic ends it early.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        Ok(self.wait_for_any(&[needle], timeout)?.line)
    }

    /// Like [`Self::wait_for_line`], but also finds lines printed before
    /// earlier waits' matches.
    pub fn wait_for_line_from_start(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        Ok(self
            .wait_for_any_after(SerialCursor::START, &[needle], timeout)?
            .line)
    }

    /// Waits for a line containing `needle` after `from` (a cursor from
    /// an earlier [`Found::after`] or [`Self::serial_end`]).
    pub fn wait_for_line_after(
        &mut self,
        from: SerialCursor,
        needle: &str,
        timeout: Duration,
    ) -> Result<Found> {
        self.wait_for_any_after(from, &[needle], timeout)
    }

    /// Waits for the first line (after the cursor) containing any of
    /// `needles`; [`Found::needle`] says which.
    pub fn wait_for_any(&mut self, needles: &[&str], timeout: Duration) -> Result<Found> {
        let from = self.serial.cursor();
        self.wait_for_any_after(from, needles, timeout)
    }

    /// Waits for the first line after `from` containing any of `needles`.
    pub fn wait_for_any_after(
        &mut self,
        from: SerialCursor,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<Found> {
        let mut with_panic = needles.to_vec();
        with_panic.push(PANIC_MARKER);
        let Vm {
            child,
            exit,
            serial,
            qemu_log,
            ..
        } = self;
        let found = serial
            .wait_for(
                from,
                &with_panic,
                scaled(timeout),
                || poll_exit(child, exit),
                || read_tail(qemu_log),
            )
            .map_err(|e| e.waiting_for(describe(needles)))?;
        if found.needle == needles.len() {
            return Err(Error::GuestPanicked {
                what: describe(needles),
                line: found.line,
                tail: self.serial.tail(TAIL_LINES),
                serial: self.serial.path().to_path_buf(),
            });
        }
        Ok(found)
    }

    /// Waits for husk-check's verdict on `scenario` (printed at any time
    /// since boot) and turns a FAIL into an error carrying its reason.
    pub fn expect_check(&mut self, scenario: &str, timeout: Duration) -> Result<()> {
        let pass = log_lines::check_passed(scenario);
        let fail = log_lines::check_failed(scenario);
        let found = self.wait_for_any_after(SerialCursor::START, &[&pass, &fail], timeout)?;
        if found.needle == 0 {
            return Ok(());
        }
        Err(Error::CheckFailed {
            scenario: scenario.to_owned(),
            line: found.line,
            tail: self.serial.tail(TAIL_LINES),
            serial: self.serial.path().to_path_buf(),
        })
    }

    /// Waits for QEMU to exit by itself (guest power off, or reboot with
    /// `VmBuilder::no_reboot`).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = poll_exit(&mut self.child, &mut self.exit)
                .context(|| "checking on QEMU".to_owned())?
            {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "QEMU to exit".to_owned(),
                    waited: timeout,
                    tail: self.serial.tail(TAIL_LINES),
                    serial: self.serial.path().to_path_buf(),
                });
            }
            thread::sleep(EXIT_POLL);
        }
    }

    /// Whether QEMU has exited, and how.
    pub fn exit_status(&mut self) -> Result<Option<ExitStatus>> {
        poll_exit(&mut self.child, &mut self.exit).context(|| "checking on QEMU".to_owned())
    }

    /// SIGKILLs QEMU and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if self.exit.is_some() {
            return;
        }
        // Fails only if QEMU already exited, which wait() then reports.
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exit = Some(status);
        }
    }

    /// Errors if QEMU is gone; used while waiting for it to come up.
    pub(crate) fn check_alive(&mut self, what: &str) -> Result<()> {
        match poll_exit(&mut self.child, &mut self.exit)
            .context(|| "checking on QEMU".to_owned())?
        {
            None => Ok(()),
            Some(status) => Err(Error::QemuExited {
                what: what.to_owned(),
                status,
                tail: self.serial.tail(TAIL_LINES),
                serial: self.serial.path().to_path_buf(),
                qemu_log: read_tail(&self.qemu_log),
            }),
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `try_wait`, remembering the status (a reaped child cannot be waited
/// for twice).
fn poll_exit(child: &mut Child, exit: &mut Option<ExitStatus>) -> io::Result<Option<ExitStatus>> {
    if exit.is_none() {
        *exit = child.try_wait()?;
    }
    Ok(*exit)
}

/// The end of QEMU's own stdout/stderr, for error messages.
fn read_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => "(QEMU printed nothing)".to_owned(),
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
