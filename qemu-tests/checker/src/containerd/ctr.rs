//! Running `ctr` from the `containerd` scenario: every call bounded by a
//! deadline, so a runtime that hangs fails its check instead of the
//! boot, and, for the tty checks, on a terminal: `ctr -t` takes its
//! console from its own stdio and panics without one ("provided file is
//! not a console"), so it gets the slave of a pty the checker reads.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};

use super::{CTR_BIN, SOCKET};

/// One ctr call, however slow TCG makes containerd and the shim (a
/// second or two each here).
const CTR_TIMEOUT: Duration = Duration::from_secs(60);
/// How long output may lag behind ctr's exit (a pty drains after it).
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// What a ctr call did.
pub struct Ran {
    /// None: killed by a signal, or by us at the deadline.
    pub code: Option<i32>,
    pub timed_out: bool,
    /// On a pty: everything the terminal showed (stdout and stderr).
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// How it ended and what it said, on one line.
    pub fn describe(&self) -> String {
        let ended = match (self.timed_out, self.code) {
            (true, _) => format!("timed out after {} s", CTR_TIMEOUT.as_secs()),
            (false, Some(code)) => format!("exit {code}"),
            (false, None) => "killed by a signal".to_owned(),
        };
        let mut text = ended;
        for (name, output) in [("stderr", &self.stderr), ("stdout", &self.stdout)] {
            let output = one_line(output);
            if !output.is_empty() {
                text.push_str(&format!("; {name}: {output}"));
            }
        }
        text
    }
}

/// Output's lines joined with " | ", for one console line.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(CTR_BIN);
    command.args(["--address", SOCKET]).args(args);
    command
}

/// `ctr ARGS` with its output on pipes and stdin on /dev/null.
pub fn ctr(args: &[&str]) -> Result<Ran, String> {
    let mut command = command(args);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {CTR_BIN}: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    finish(child, stdout, Some(stderr))
}

/// `ctr ARGS` with stdin, stdout and stderr on a fresh pty's slave.
pub fn ctr_tty(args: &[&str]) -> Result<Ran, String> {
    let (master, slave) = pty().map_err(|e| format!("opening a pty for ctr -t: {e}"))?;
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("the pty's slave: {e}"));
    let mut command = command(args);
    command
        .stdin(Stdio::from(dup(&slave)?))
        .stdout(Stdio::from(dup(&slave)?))
        .stderr(Stdio::from(slave));
    let child = command
        .spawn()
        .map_err(|e| format!("starting {CTR_BIN}: {e}"))?;
    // The slave's last copies go with the command, so the master reads
    // EIO, the end, once ctr has exited.
    drop(command);
    let terminal = drain(Some(File::from(master)));
    finish(child, terminal, None)
}

/// A pty pair, 24x80 (ctr passes its terminal's size on to the task).
fn pty() -> rustix::io::Result<(OwnedFd, OwnedFd)> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let slave = ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )?;
    tcsetwinsize(
        &slave,
        Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok((master, slave))
}

/// Reads `from` to its end on a thread of its own (a pty's end is EIO,
/// after what it held).
fn drain<R: Read + Send + 'static>(from: Option<R>) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut from) = from {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = from.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

fn finish(
    mut child: Child,
    stdout: Receiver<Vec<u8>>,
    stderr: Option<Receiver<Vec<u8>>>,
) -> Result<Ran, String> {
    let deadline = Instant::now() + CTR_TIMEOUT;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for ctr: {e}"))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().map_err(|e| format!("waiting for ctr: {e}"))?;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let text = |rx: &Receiver<Vec<u8>>| {
        let bytes = rx.recv_timeout(OUTPUT_GRACE).unwrap_or_default();
        // A terminal's line ends and the NUL ctr's raw mode lets through.
        String::from_utf8_lossy(&bytes).replace(['\r', '\0'], "")
    };
    Ok(Ran {
        code: status.code(),
        timed_out,
        stdout: text(&stdout),
        stderr: stderr.as_ref().map(text).unwrap_or_default(),
    })
}
