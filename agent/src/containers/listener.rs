//! A listening unix socket of the agent's or a shim's: mode 0600, a
//! stale socket at its path replaced, non-blocking, removed when
//! dropped. The shim's attach and control sockets and the console
//! sockets (the shim's and an exec's) are these.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// A listening socket (0600), removed when dropped.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    pub fn bind(path: &Path) -> io::Result<Self> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The socket itself (the console socket accepts on it its own way).
    pub fn socket(&self) -> &UnixListener {
        &self.listener
    }

    /// Every connection waiting, non-blocking.
    pub fn accept_all(&self) -> Vec<UnixStream> {
        let mut accepted = Vec::new();
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        accepted.push(stream);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return accepted,
            }
        }
    }

    /// Waits (up to `timeout`) until `count` clients have connected.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<UnixStream> {
        let deadline = Instant::now() + timeout;
        let mut accepted = Vec::new();
        while accepted.len() < count {
            accepted.extend(self.accept_all());
            let left = deadline.saturating_duration_since(Instant::now());
            if accepted.len() >= count || left.is_zero() {
                break;
            }
            let timeout = Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&self.listener, PollFlags::IN)];
            let _ = poll(&mut fds, Some(&timeout));
        }
        accepted
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
