//! The one loop: a single poll() over the signal pipe, every notify
//! socket, every service output pipe and every power button, with the
//! nearest restart as its timeout. Nothing spins: with no timer pending
//! it sleeps until something happens.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use thiserror::Error;

use crate::config::MAX_SERVICES;
use crate::power_button::{self, Buttons, MAX_BUTTONS};
use crate::reaper;
use crate::signals::Signals;
use crate::supervisor::{Source, Supervisor};
use crate::sys::{self, PowerAction};

/// The service whose first readiness marks the end of the boot.
pub const AGENT: &str = "husk-agent";
const MAX_FDS: usize = 1 + 2 * MAX_SERVICES + MAX_BUTTONS;

#[derive(Debug, Error)]
pub enum LoopError {
    #[error("poll: {0}")]
    Poll(#[from] rustix::io::Errno),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Signal,
    Service(Source),
    Button(usize),
}

/// Adds one descriptor to the poll set (the table is sized for all).
fn add<'a>(
    tokens: &mut heapless::Vec<Token, MAX_FDS>,
    fds: &mut heapless::Vec<PollFd<'a>, MAX_FDS>,
    token: Token,
    fd: BorrowedFd<'a>,
) {
    if tokens.push(token).is_ok()
        && fds
            .push(PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .is_err()
    {
        tokens.pop();
    }
}

/// Everything the running system needs.
pub struct Init {
    pub signals: Signals,
    pub supervisor: Supervisor,
    pub buttons: Buttons,
    /// When init started (CLOCK_MONOTONIC).
    pub started: Instant,
    agent_ready: bool,
    shutdown: Option<PowerAction>,
    children_left: bool,
    /// The boot entry on trial (systemd-boot's boot counting), if any.
    trial: Option<crate::boot_count::EntryPath>,
}

impl Init {
    pub fn new(
        signals: Signals,
        supervisor: Supervisor,
        buttons: Buttons,
        started: Instant,
    ) -> Self {
        Self {
            signals,
            supervisor,
            buttons,
            started,
            agent_ready: false,
            shutdown: None,
            children_left: true,
            trial: None,
        }
    }

    /// This boot is a trial of `entry`: a critical service's crash loop
    /// reboots it.
    pub fn set_trial(&mut self, entry: Option<crate::boot_count::EntryPath>) {
        self.trial = entry;
    }

    /// Starts the services and runs until a shutdown is requested.
    pub fn run(&mut self) -> Result<PowerAction, LoopError> {
        self.supervisor.start_all(Instant::now());
        loop {
            let timeout = self
                .supervisor
                .next_timer()
                .map(|t| t.saturating_duration_since(Instant::now()));
            self.pump(timeout)?;
            self.supervisor.run_timers(Instant::now());
            self.judge_trial();
            if let Some(action) = self.shutdown.take() {
                return Ok(action);
            }
        }
    }

    /// Waits up to `timeout` (forever if None) for something to happen
    /// and handles it. Signals and reaping are handled on every call.
    pub fn pump(&mut self, timeout: Option<Duration>) -> Result<(), LoopError> {
        let mut ready: heapless::Vec<Token, MAX_FDS> = heapless::Vec::new();
        {
            let mut tokens: heapless::Vec<Token, MAX_FDS> = heapless::Vec::new();
            let mut fds: heapless::Vec<PollFd<'_>, MAX_FDS> = heapless::Vec::new();
            add(&mut tokens, &mut fds, Token::Signal, self.signals.fd());
            for (source, fd) in self.supervisor.sources() {
                add(&mut tokens, &mut fds, Token::Service(source), fd);
            }
            for (i, b) in self.buttons.iter().enumerate() {
                add(&mut tokens, &mut fds, Token::Button(i), b.as_fd());
            }
            let ts = timeout.map(|d| Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            match poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            for (fd, token) in fds.iter().zip(tokens.iter()) {
                if !fd.revents().is_empty() {
                    let _ = ready.push(*token);
                }
            }
        }
        for token in ready {
            match token {
                // Handled below, every time.
                Token::Signal => {}
                Token::Service(Source::Output(i)) => self.supervisor.read_output(i),
                Token::Service(Source::Notify(i)) => self.on_notify(i),
                Token::Button(i) => self.on_button(i),
            }
        }
        self.on_signals();
        Ok(())
    }

    fn on_notify(&mut self, i: usize) {
        let Some((name, _)) = self.supervisor.read_notify(i, Instant::now()) else {
            return;
        };
        if name == AGENT && !self.agent_ready {
            self.agent_ready = true;
            log::info!(
                "boot: agent ready {} ms after init start ({} ms since kernel start); rss {} KiB",
                self.started.elapsed().as_millis(),
                sys::since_boot().as_millis(),
                sys::rss_kib().unwrap_or(0)
            );
        }
    }

    fn on_button(&mut self, i: usize) {
        let Some(file) = self.buttons.get(i) else {
            return;
        };
        match power_button::read_pressed(file) {
            Ok(true) => self.request_shutdown(PowerAction::PowerOff),
            Ok(false) => {}
            Err(e) => {
                // A device that errors (unplugged) would wake poll forever.
                log::warn!("power button: {e}; no longer watched");
                self.buttons.remove(i);
            }
        }
    }

    fn on_signals(&mut self) {
        let pending = self.signals.take();
        if let Some(action) = pending.shutdown {
            self.request_shutdown(action);
        }
        // Reaping on every wake-up costs one syscall and cannot miss a
        // child whose SIGCHLD was coalesced with another.
        let _ = pending.child;
        self.reap();
    }

    /// Reaps all exited children.
    pub fn reap(&mut self) {
        let now = Instant::now();
        let supervisor = &mut self.supervisor;
        self.children_left = reaper::reap(|pid, how| {
            if !supervisor.on_exit(pid, how, now) {
                log::info!("reaped orphan pid {pid}");
            }
        });
    }

    /// False once waitpid reported that init has no children at all.
    pub fn children_left(&self) -> bool {
        self.children_left
    }

    /// On a trial boot, a critical service that gave up means the new
    /// version is bad: reboot, and let the boot loader count the try.
    fn judge_trial(&mut self) {
        let Some(entry) = &self.trial else {
            return;
        };
        if self.shutdown.is_some() {
            return;
        }
        if let Some(name) = self.supervisor.crash_looped_critical() {
            log::error!(
                "boot: {name} crash-loops on a trial boot of {entry}: rebooting to spend the try"
            );
            self.request_shutdown(PowerAction::Reboot);
        }
    }

    fn request_shutdown(&mut self, action: PowerAction) {
        // The first request wins; during shutdown further ones are moot.
        if self.shutdown.is_none() {
            self.shutdown = Some(action);
        }
    }

    /// Whether a shutdown was requested (and not yet taken by `run`).
    pub fn take_shutdown(&mut self) -> Option<PowerAction> {
        self.shutdown.take()
    }
}
