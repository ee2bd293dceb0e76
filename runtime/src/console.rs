//! `process.terminal`: the container's process gets a pty, and the
//! caller gets its master as an `SCM_RIGHTS` message on the unix socket
//! it named with `--console-socket` (runc's protocol, which
//! containerd-shim-runc-v2, CRI-O's conmon and podman read).
//!
//! The pty is made inside the container, from its own devpts instance
//! (`/dev/ptmx` after pivot_root), so the container's `/dev/pts` knows
//! it; the peer is opened from the master with `TIOCGPTPEER` rather than
//! by its path, which a container process could have replaced. The
//! socket is connected by the runtime before the clone, from the host's
//! view of the path, and the descriptor (close-on-exec) is inherited.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use oci_spec::runtime::Process;
use rustix::fs::{Mode, OFlags};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::error::{Result, RuntimeError, Step};

/// The name sent with the master (runc sends the same; receivers use it
/// as the file's name).
const MASTER_NAME: &[u8] = b"/dev/ptmx";

/// Connects to the caller's console socket.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let stream = UnixStream::connect(path)
        .step(|| format!("connecting to the console socket {}", path.display()))?;
    Ok(OwnedFd::from(stream))
}

/// What `create`, `run` and `exec` need: a socket exactly when the
/// process asks for a terminal.
pub fn check(terminal: bool, socket: Option<&Path>) -> Result<()> {
    match (terminal, socket) {
        (true, None) => Err(RuntimeError::Config(
            "process.terminal is true but no --console-socket was given to receive the pty".into(),
        )),
        (false, Some(path)) => Err(RuntimeError::Config(format!(
            "--console-socket {} given but process.terminal is false",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// In the container's process, inside its mount namespace, before the
/// uid change: a new session whose controlling terminal is a fresh pty,
/// stdio on its peer, and the master sent to `socket`.
pub fn attach(socket: BorrowedFd<'_>, process: &Process) -> Result<()> {
    let master = rustix::fs::open(
        "/dev/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .step(|| "opening the container's /dev/ptmx")?;
    rustix::pty::unlockpt(&master).step(|| "unlocking the pty")?;
    let peer = rustix::pty::ioctl_tiocgptpeer(
        &master,
        rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY,
    )
    .step(|| "opening the pty's peer")?;
    if let Some(size) = process.console_size() {
        let size = rustix::termios::Winsize {
            ws_row: u16::try_from(size.height()).unwrap_or(u16::MAX),
            ws_col: u16::try_from(size.width()).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&peer, size).step(|| "setting the console size")?;
    }
    send_master(socket, &master)?;
    drop(master);
    rustix::process::setsid().step(|| "setsid")?;
    rustix::process::ioctl_tiocsctty(&peer).step(|| "making the pty the controlling terminal")?;
    rustix::stdio::dup2_stdin(&peer).step(|| "pty as stdin")?;
    rustix::stdio::dup2_stdout(&peer).step(|| "pty as stdout")?;
    rustix::stdio::dup2_stderr(&peer).step(|| "pty as stderr")?;
    Ok(())
}

fn send_master(socket: BorrowedFd<'_>, master: &OwnedFd) -> Result<()> {
    let fds = [master.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(RuntimeError::Other(
            "the pty master does not fit its control message".into(),
        ));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(MASTER_NAME)],
        &mut control,
        SendFlags::empty(),
    )
    .step(|| "sending the pty master to the console socket")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_needs_a_socket_and_a_socket_a_terminal() {
        assert!(
            check(true, None)
                .unwrap_err()
                .to_string()
                .contains("--console-socket")
        );
        assert!(
            check(false, Some(Path::new("/tmp/s")))
                .unwrap_err()
                .to_string()
                .contains("terminal is false")
        );
        assert!(check(true, Some(Path::new("/tmp/s"))).is_ok());
        assert!(check(false, None).is_ok());
    }
}
