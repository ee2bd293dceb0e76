//! The service table: starting services, their output and readiness,
//! what happens when they exit. A fixed-size table, so init's memory does
//! not grow however often services restart.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::{MAX_SERVICES, ServiceConfig};
use crate::logger::Lossy;
use crate::output::{self, Drained, LineBuffer};
use crate::policy::{self, Decision, Outcome};
use crate::reaper::ExitKind;
use crate::sys;

/// A service's environment starts from this and nothing else.
pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Reads per wake-up from one output pipe.
const OUTPUT_READS: usize = 16;
/// Datagrams read per wake-up from one notify socket.
const NOTIFY_READS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started yet.
    Idle,
    Running {
        pid: i32,
        since: Instant,
        ready: bool,
    },
    /// Waiting out the backoff before the next start.
    Waiting { until: Instant },
    /// Exited and not to be restarted (policy, or shutdown).
    Stopped,
    /// Hit the crash-loop limit.
    GaveUp,
}

pub struct Service {
    pub config: ServiceConfig,
    pub state: State,
    failures: u32,
    notify: Option<(UnixDatagram, PathBuf)>,
    output: Option<OwnedFd>,
    lines: LineBuffer,
}

impl Service {
    pub fn name(&self) -> &str {
        self.config.name()
    }

    pub fn pid(&self) -> Option<i32> {
        match self.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

/// Which descriptor of which service became readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Notify(usize),
    Output(usize),
}

pub struct Supervisor {
    services: heapless::Vec<Service, MAX_SERVICES>,
    stopping: bool,
}

impl Supervisor {
    /// Builds the table and binds the notify sockets under `notify_dir`.
    pub fn new(configs: &[ServiceConfig], notify_dir: &Path) -> Self {
        let mut services = heapless::Vec::new();
        for config in configs {
            let notify = if config.notify {
                match crate::notify::bind(notify_dir, config.name()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        log::error!("service {}: notify socket: {e}", config.name());
                        None
                    }
                }
            } else {
                None
            };
            let service = Service {
                config: config.clone(),
                state: State::Idle,
                failures: 0,
                notify,
                output: None,
                lines: LineBuffer::new(),
            };
            if services.push(service).is_err() {
                log::error!("more than {MAX_SERVICES} services; ignoring the rest");
                break;
            }
        }
        Self {
            services,
            stopping: false,
        }
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Starts every service that has not run yet, in configuration order.
    pub fn start_all(&mut self, now: Instant) {
        for i in 0..self.services.len() {
            if self.services.get(i).is_some_and(|s| s.state == State::Idle) {
                self.start(i, now);
            }
        }
    }

    fn start(&mut self, i: usize, now: Instant) {
        let Some(svc) = self.services.get_mut(i) else {
            return;
        };
        let notify_path = svc.notify.as_ref().map(|(_, p)| p.as_path());
        match spawn(&svc.config, notify_path) {
            Ok((pid, output)) => {
                log::info!("service {}: started (pid {pid})", svc.name());
                svc.output = Some(output);
                svc.lines = LineBuffer::new();
                svc.state = State::Running {
                    pid,
                    since: now,
                    ready: false,
                };
            }
            Err(e) => {
                log::error!(
                    "service {}: cannot start {:?}: {e}",
                    svc.name(),
                    svc.config.command.first()
                );
                Self::after_run(svc, Outcome::Failed, Duration::ZERO, now, self.stopping);
            }
        }
    }

    /// Applies the restart policy after a run ended.
    fn after_run(
        svc: &mut Service,
        outcome: Outcome,
        ran_for: Duration,
        now: Instant,
        stopping: bool,
    ) {
        if stopping {
            svc.state = State::Stopped;
            return;
        }
        match policy::decide(svc.config.restart, &mut svc.failures, outcome, ran_for) {
            Decision::Restart { after } => {
                log::info!(
                    "service {}: restarting in {} ms",
                    svc.name(),
                    after.as_millis()
                );
                svc.state = State::Waiting {
                    until: now.checked_add(after).unwrap_or(now),
                };
            }
            Decision::Stop => svc.state = State::Stopped,
            Decision::GiveUp { failures } => {
                log::error!(
                    "service {}: crash loop: {failures} failures, giving up",
                    svc.name()
                );
                svc.state = State::GaveUp;
            }
        }
    }

    /// When the next restart is due, if any.
    pub fn next_timer(&self) -> Option<Instant> {
        self.services
            .iter()
            .filter_map(|s| match s.state {
                State::Waiting { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Starts the services whose backoff is over.
    pub fn run_timers(&mut self, now: Instant) {
        for i in 0..self.services.len() {
            let due = self
                .services
                .get(i)
                .is_some_and(|s| matches!(s.state, State::Waiting { until } if until <= now));
            if due && !self.stopping {
                self.start(i, now);
            }
        }
    }

    /// Handles a reaped child. False when it was not a service.
    pub fn on_exit(&mut self, pid: i32, how: ExitKind, now: Instant) -> bool {
        let stopping = self.stopping;
        let Some(svc) = self.services.iter_mut().find(|s| s.pid() == Some(pid)) else {
            return false;
        };
        let State::Running { since, .. } = svc.state else {
            return false;
        };
        // Everything it wrote is in the pipe by now; log it before the exit.
        drain_output(svc);
        svc.output = None;
        match how {
            ExitKind::Status(code) => {
                log::info!("service {}: exited with status {code}", svc.name())
            }
            ExitKind::Signal(sig) => {
                log::info!(
                    "service {}: killed by signal {}",
                    svc.name(),
                    sys::signal_name(sig)
                );
            }
        }
        let outcome = if how.success() {
            Outcome::Clean
        } else {
            Outcome::Failed
        };
        Self::after_run(
            svc,
            outcome,
            now.saturating_duration_since(since),
            now,
            stopping,
        );
        true
    }

    /// A service that gave up and whose crash loop should reboot a trial
    /// boot (`on_crash_loop = "reboot-on-trial"`).
    pub fn crash_looped_critical(&self) -> Option<&str> {
        self.services
            .iter()
            .find(|s| {
                s.state == State::GaveUp
                    && s.config.on_crash_loop == crate::config::OnCrashLoop::RebootOnTrial
            })
            .map(Service::name)
    }

    /// The descriptors to poll.
    pub fn sources(&self) -> impl Iterator<Item = (Source, BorrowedFd<'_>)> {
        self.services.iter().enumerate().flat_map(|(i, s)| {
            let notify = s
                .notify
                .as_ref()
                .map(|(sock, _)| (Source::Notify(i), sock.as_fd()));
            let output = s.output.as_ref().map(|fd| (Source::Output(i), fd.as_fd()));
            notify.into_iter().chain(output)
        })
    }

    /// Logs what service `i` wrote.
    pub fn read_output(&mut self, i: usize) {
        if let Some(svc) = self.services.get_mut(i) {
            drain_output(svc);
        }
    }

    /// Reads service `i`'s notifications. Returns the service's name and
    /// its start-up time when it just became ready.
    pub fn read_notify(&mut self, i: usize, now: Instant) -> Option<(&str, Duration)> {
        let svc = self.services.get_mut(i)?;
        let (socket, _) = svc.notify.as_ref()?;
        let ready = crate::notify::receive_ready(socket, NOTIFY_READS);
        let State::Running {
            pid,
            since,
            ready: false,
        } = svc.state
        else {
            return None;
        };
        if !ready {
            return None;
        }
        svc.state = State::Running {
            pid,
            since,
            ready: true,
        };
        let after = now.saturating_duration_since(since);
        log::info!(
            "service {}: ready after {} ms",
            svc.name(),
            after.as_millis()
        );
        Some((svc.name(), after))
    }

    /// From now on nothing is (re)started.
    pub fn begin_stopping(&mut self) {
        self.stopping = true;
        for svc in self.services.iter_mut() {
            if matches!(svc.state, State::Waiting { .. } | State::Idle) {
                svc.state = State::Stopped;
            }
        }
    }

    /// Sends `sig` to service `i`'s process group (and the process, in
    /// case it has left its group).
    pub fn signal(&self, i: usize, sig: Signal) {
        let Some(svc) = self.services.get(i) else {
            return;
        };
        if let Some(pid) = svc.pid() {
            let _ = sys::signal_group(pid, sig);
            let _ = sys::signal_process(pid, sig);
        }
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.services.get(i).is_some_and(|s| s.pid().is_some())
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

fn drain_output(svc: &mut Service) {
    let Some(fd) = svc.output.as_ref() else {
        return;
    };
    let name = svc.config.name();
    let mut emit = |line: &[u8]| log::info!("{name}: {}", Lossy(line));
    match output::drain(fd, &mut svc.lines, OUTPUT_READS, &mut emit) {
        Ok(Drained::WouldBlock) => {}
        Ok(Drained::Eof) => svc.output = None,
        Err(e) => {
            log::warn!("service {name}: output: {e}");
            svc.output = None;
        }
    }
}

/// Starts one service: a clean environment, stdin from /dev/null,
/// stdout and stderr into one pipe (returned, non-blocking), its own
/// session. Every descriptor init holds is close-on-exec.
pub fn spawn(config: &ServiceConfig, notify_socket: Option<&Path>) -> io::Result<(i32, OwnedFd)> {
    let (program, args) = config
        .command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // Only init's end: the service's stdout must stay blocking.
    rustix::fs::fcntl_setfl(&read, rustix::fs::OFlags::NONBLOCK)?;
    let write2 = write.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        .current_dir("/");
    if let Some(path) = notify_socket {
        cmd.env(husk_common::notify::NOTIFY_SOCKET_ENV, path);
    }
    for (k, v) in config.env_pairs() {
        cmd.env(k, v);
    }
    sys::prepare_child(&mut cmd);
    let child = cmd.spawn()?;
    let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
    // Dropping `cmd` closes init's copies of the write ends.
    Ok((pid, read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Restart;

    fn config(name: &str, command: &[&str], notify: bool) -> ServiceConfig {
        let text = format!(
            "[[service]]\nname = \"{name}\"\ncommand = {command:?}\nnotify = {notify}\nrestart = \"never\"\nenv = [\"GREETING=hi there\"]\n"
        );
        crate::config::parse("t", &text).unwrap().services[0].clone()
    }

    fn wait(pid: i32) -> ExitKind {
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        let (_, status) =
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .unwrap()
                .unwrap();
        ExitKind::from_wait_status(status)
    }

    fn read_all(fd: &OwnedFd) -> String {
        let mut lines = LineBuffer::new();
        let mut out = String::new();
        let mut emit = |l: &[u8]| {
            out.push_str(&String::from_utf8_lossy(l));
            out.push('\n');
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while output::drain(fd, &mut lines, 64, &mut emit).unwrap() != Drained::Eof {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        out
    }

    #[test]
    fn children_get_a_clean_environment_own_session_and_one_pipe() {
        // The masks are read by a process the shell execs: dash blocks
        // every signal of its own while it waits for a child.
        let script = "echo out; echo err >&2; env | sort; \
                      [ \"$(cut -d' ' -f6 /proc/$$/stat)\" = \"$$\" ] && echo own-session; \
                      echo fds: $(ls /proc/self/fd); \
                      exec grep -E '^Sig(Blk|Ign)' /proc/self/status";
        let cfg = config("t", &["/bin/sh", "-c", script], false);
        let (pid, out) = spawn(&cfg, Some(Path::new("/run/x.sock"))).unwrap();
        let text = read_all(&out);
        assert_eq!(wait(pid), ExitKind::Status(0));
        assert!(text.contains("out\n") && text.contains("err\n"), "{text}");
        assert!(
            text.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"),
            "{text}"
        );
        assert!(text.contains("NOTIFY_SOCKET=/run/x.sock\n"), "{text}");
        assert!(text.contains("GREETING=hi there\n"), "{text}");
        assert!(!text.contains("HOME="), "{text}");
        assert!(text.contains("own-session"), "{text}");
        assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
        // Standard signals (the low 31 bits) are back to default; the
        // test harness may ignore glibc-internal real-time ones.
        let ign = text
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:\t"))
            .unwrap();
        assert_eq!(
            u64::from_str_radix(ign, 16).unwrap() & 0x7fff_ffff,
            0,
            "{text}"
        );
        // Only 0, 1, 2 and the directory ls itself opens.
        assert!(text.contains("fds: 0 1 2 3\n"), "{text}");
    }

    #[test]
    fn missing_programs_fail_to_spawn() {
        let cfg = config("t", &["/nonexistent/program"], false);
        assert!(spawn(&cfg, None).is_err());
    }

    #[test]
    fn exits_follow_the_policy_and_give_up_on_crash_loops() {
        let mut cfg = config("crash", &["/bin/false"], false);
        cfg.restart = Restart::OnFailure;
        let mut critical = cfg.clone();
        critical.on_crash_loop = crate::config::OnCrashLoop::RebootOnTrial;
        for (cfg, critical) in [(cfg, false), (critical, true)] {
            crash_loop(cfg, critical);
        }
    }

    fn crash_loop(cfg: ServiceConfig, critical: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut sup = Supervisor::new(&[cfg], dir.path());
        let t0 = Instant::now();
        sup.start_all(t0);
        let mut now = t0;
        for round in 1..=5 {
            let pid = sup.services()[0].pid().unwrap();
            let how = wait(pid);
            assert_eq!(how, ExitKind::Status(1));
            assert!(sup.on_exit(pid, how, now));
            if round < 5 {
                let until = sup.next_timer().unwrap();
                assert_eq!(until - now, policy::backoff(round));
                now = until;
                sup.run_timers(now);
            }
        }
        assert_eq!(sup.services()[0].state, State::GaveUp);
        assert_eq!(sup.crash_looped_critical().is_some(), critical);
        assert!(sup.next_timer().is_none());
        assert!(!sup.on_exit(12345678, ExitKind::Status(0), now));
    }

    #[test]
    fn readiness_is_reported_once_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config("ready", &["/bin/sleep", "30"], true);
        let mut sup = Supervisor::new(&[cfg], dir.path());
        let t0 = Instant::now();
        sup.start_all(t0);
        let sock = dir.path().join("ready.sock");
        let client = UnixDatagram::unbound().unwrap();
        client.send_to(b"READY=1", &sock).unwrap();
        let later = t0 + Duration::from_millis(30);
        let (name, after) = sup.read_notify(0, later).unwrap();
        assert_eq!((name, after), ("ready", Duration::from_millis(30)));
        client.send_to(b"READY=1", &sock).unwrap();
        assert!(sup.read_notify(0, later).is_none());
        sup.begin_stopping();
        sup.signal(0, Signal::SIGKILL);
        let pid = sup.services()[0].pid().unwrap();
        let how = wait(pid);
        assert_eq!(how, ExitKind::Signal(9));
        assert!(sup.on_exit(pid, how, later));
        assert_eq!(sup.services()[0].state, State::Stopped);
    }
}
