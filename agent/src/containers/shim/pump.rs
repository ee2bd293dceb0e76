//! The shim's loop: container output into the log and to the attach
//! clients, their input into the container's stdin, resizes, until the
//! container's init exits; returns its exit code.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, WaitOptions, pidfd_open, waitpid};

use super::ShimConfig;
use super::attach::{Attach, ControlServer};
use husk_api::containers::Stream;

use crate::containers::logs::{LineSplitter, LogWriter};

/// After the init exits, how long output still in the pipes is read.
const DRAIN: Duration = Duration::from_secs(2);

struct Output {
    fd: Option<OwnedFd>,
    stream: Stream,
    lines: LineSplitter,
}

/// What the loop serves besides the log.
pub struct Io {
    /// The outputs: the two pipes, or the pty master (as stdout).
    pub outputs: Vec<(OwnedFd, Stream)>,
    pub attach: Attach,
    pub control: ControlServer,
}

pub fn run(config: &ShimConfig, init_pid: i32, io: Io) -> i32 {
    let Io {
        outputs,
        mut attach,
        mut control,
    } = io;
    let mut log = match LogWriter::open(&config.log) {
        Ok(log) => Some(log),
        Err(e) => {
            log::error!(
                "{}: opening {}: {e}",
                config.name,
                config.log.path.display()
            );
            None
        }
    };
    let mut outputs: Vec<Output> = outputs
        .into_iter()
        .map(|(fd, stream)| {
            // Non-blocking on our side only: reads after poll drain the pipe
            // without ever waiting; the container's end stays blocking.
            if let Err(e) = rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK) {
                log::warn!("{}: O_NONBLOCK on the output pipe: {e}", config.name);
            }
            Output {
                fd: Some(fd),
                stream,
                lines: LineSplitter::default(),
            }
        })
        .collect();
    let Some(pid) = Pid::from_raw(init_pid) else {
        return 255;
    };
    let pidfd = pidfd_open(pid, PidfdFlags::empty()).ok();
    let mut exit_code = None;
    let mut drain_until = None;
    loop {
        if exit_code.is_none() {
            exit_code = reap(pid);
            if exit_code.is_some() {
                drain_until = Some(Instant::now() + DRAIN);
            }
        }
        let open = outputs.iter().any(|o| o.fd.is_some());
        match (exit_code, drain_until) {
            (Some(_), Some(until)) if !open || Instant::now() >= until => break,
            _ => {}
        }
        let mut fds: Vec<PollFd> = outputs
            .iter()
            .filter_map(|o| o.fd.as_ref())
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        if exit_code.is_none()
            && let Some(pidfd) = &pidfd
        {
            fds.push(PollFd::new(pidfd, PollFlags::IN));
        }
        fds.extend(attach.poll_fds());
        fds.extend(control.poll_fds());
        // Without a pidfd (old kernels) poll the init's state 5 times a
        // second; after its exit, bound the drain.
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        let wait = (pidfd.is_none() || exit_code.is_some()).then_some(&timeout);
        if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        if let Err(e) = poll(&mut fds, wait)
            && e != rustix::io::Errno::INTR
        {
            log::error!("{}: poll: {e}", config.name);
            std::thread::sleep(Duration::from_millis(200));
        }
        drop(fds);
        for output in &mut outputs {
            read_ready(output, log.as_mut(), &mut attach, &config.name);
        }
        attach.ready();
        control.ready();
    }
    attach.finish();
    for output in &mut outputs {
        let stream = output.stream;
        output
            .lines
            .finish(|line| write(log.as_mut(), stream, line, &config.name));
    }
    exit_code.unwrap_or(255)
}

/// The init's exit code (128 + signal when killed) once it has exited.
fn reap(pid: Pid) -> Option<i32> {
    loop {
        match waitpid(Some(pid), WaitOptions::NOHANG) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return Some(255),
            Ok(None) => return None,
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Some(code);
                }
                if let Some(signal) = status.terminating_signal() {
                    return Some(128 + signal);
                }
                return None;
            }
        }
    }
}

/// Reads what the pipe (or the pty) holds without blocking, into the log
/// and to the attach clients; closes it at end of file.
fn read_ready(
    output: &mut Output,
    mut log: Option<&mut LogWriter>,
    attach: &mut Attach,
    name: &str,
) {
    let Some(fd) = &output.fd else {
        return;
    };
    let mut buf = [0u8; 64 * 1024];
    let stream = output.stream;
    loop {
        match rustix::io::read(fd.as_fd(), &mut buf[..]) {
            Ok(0) => {
                output.fd = None;
                return;
            }
            Ok(n) => {
                attach.broadcast(stream, &buf[..n]);
                output.lines.feed(&buf[..n], |line| {
                    write(log.as_deref_mut(), stream, line, name)
                });
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return,
            // A pty master once no process holds the terminal: its end.
            Err(rustix::io::Errno::IO) => {
                output.fd = None;
                return;
            }
            Err(e) => {
                log::warn!("{name}: reading the container's output: {e}");
                output.fd = None;
                return;
            }
        }
    }
}

fn write(log: Option<&mut LogWriter>, stream: Stream, line: &[u8], name: &str) {
    if let Some(log) = log
        && let Err(e) = log.write(stream, line)
    {
        log::warn!("{name}: writing the log: {e}");
    }
}
