//! The receiving side of runc's `--console-socket` contract, the shim's
//! (a container's terminal) and the agent's (an exec's): it listens on a
//! socket of its own, the runtime connects to it before the process is
//! cloned, and the process sends its pty master over it (`SCM_RIGHTS`)
//! before it execs the command.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// How long the master may take to arrive: for the shim, once the create
/// returned (it is sent before the init waits for the start, so it is
/// there already); for an exec, once the runtime runs (it joins the
/// container and sends it before anything slow).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The console socket: bound as the attach sockets are (0600, a stale
/// socket replaced, non-blocking, removed when dropped).
pub struct ConsoleSocket(super::listener::Listener);

impl ConsoleSocket {
    pub fn bind(path: &Path) -> io::Result<Self> {
        super::listener::Listener::bind(path).map(Self)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The pty master the container's process sent.
    pub fn receive_master(&self) -> io::Result<OwnedFd> {
        self.receive_master_unless(None)
    }

    /// The pty master, or an error as soon as `gone` is readable (a pidfd
    /// of the runtime: it exited without sending one, as it does when
    /// the exec fails before the clone).
    pub fn receive_master_unless(&self, gone: Option<BorrowedFd<'_>>) -> io::Result<OwnedFd> {
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        let stream = loop {
            match self.0.socket().accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_readable(self.0.socket().as_fd(), gone, deadline)?
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
                Err(rustix::io::Errno::AGAIN) => wait_readable(stream.as_fd(), None, deadline)?,
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

/// Waits for `fd` (or `gone`, which is an error) until the deadline.
/// Once the runtime connected, its end closing is the connection's EOF:
/// only the accept needs `gone`.
fn wait_readable(
    fd: BorrowedFd<'_>,
    gone: Option<BorrowedFd<'_>>,
    deadline: Instant,
) -> io::Result<()> {
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
    let mut fds = vec![PollFd::new(&fd, PollFlags::IN)];
    if let Some(gone) = &gone {
        fds.push(PollFd::new(gone, PollFlags::IN));
    }
    match poll(&mut fds, Some(&timeout)) {
        // A connection that came just before the exit is still taken.
        Ok(_)
            if fds[0].revents().is_empty()
                && fds.get(1).is_some_and(|g| !g.revents().is_empty()) =>
        {
            Err(io::Error::other(
                "the runtime exited before it sent the pty master",
            ))
        }
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// TIOCSWINSZ on the master: the processes on the pty get SIGWINCH.
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
