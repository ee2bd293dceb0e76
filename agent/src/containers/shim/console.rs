//! The shim's side of runc's `--console-socket` contract: it listens on a
//! socket of its own, the runtime connects to it before the container's
//! init is cloned, and the init sends the pty master over it
//! (`SCM_RIGHTS`) before the create returns.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// How long the master may take to arrive once the create returned (it is
/// sent before the init waits for the start, so it is there already).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The console socket: bound as the attach sockets are (0600, a stale
/// socket replaced, non-blocking, removed when dropped).
pub struct ConsoleSocket(super::attach::Listener);

impl ConsoleSocket {
    pub fn bind(path: &Path) -> io::Result<Self> {
        super::attach::Listener::bind(path).map(Self)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The pty master the container's init sent.
    pub fn receive_master(&self) -> io::Result<OwnedFd> {
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        let stream = loop {
            match self.0.socket().accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_readable(self.0.socket().as_fd(), deadline)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(true)?;
        loop {
            let mut name = [0u8; 64];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let received = rustix::net::recvmsg(
                &stream,
                &mut [io::IoSliceMut::new(&mut name)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            );
            match received {
                Err(rustix::io::Errno::AGAIN) => wait_readable(stream.as_fd(), deadline)?,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    let master = control.drain().find_map(|message| match message {
                        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
                        _ => None,
                    });
                    return master.ok_or_else(|| {
                        io::Error::other("the console socket's message carried no descriptor")
                    });
                }
            }
        }
    }
}

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the container's pty master never came on the console socket",
        ));
    }
    let timeout = Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// TIOCSWINSZ on the master: the container's processes get SIGWINCH.
pub fn resize(master: &OwnedFd, rows: u16, cols: u16) -> io::Result<()> {
    let size = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(master, size)?;
    Ok(())
}
