//! The service side of the sd_notify protocol: a datagram such as
//! `READY=1` sent to the unix socket named by `$NOTIFY_SOCKET`.
//! husk-init implements the receiving side; any service written for
//! systemd's protocol works under it unchanged.

use std::io;
use std::os::unix::net::UnixDatagram;

/// The environment variable naming the notification socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Sends `state` (e.g. `"READY=1"`, `"STATUS=…"`) to the supervisor.
///
/// Returns `Ok(false)` when the process is not supervised (no
/// `$NOTIFY_SOCKET`), so callers can run the same way outside Husk.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os(NOTIFY_SOCKET_ENV) else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to(state.as_bytes(), path)?;
    Ok(true)
}

/// Tells the supervisor that the service finished starting up.
pub fn notify_ready() -> io::Result<bool> {
    notify("READY=1")
}

/// Parses one notification datagram into its `KEY=VALUE` assignments,
/// skipping malformed lines as systemd does.
pub fn parse_assignments(datagram: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    datagram.split(|&b| b == b'\n').filter_map(|line| {
        let eq = line.iter().position(|&b| b == b'=')?;
        Some((&line[..eq], &line[eq + 1..]))
    })
}

/// Whether a datagram announces readiness (`READY=1`).
pub fn is_ready(datagram: &[u8]) -> bool {
    parse_assignments(datagram).any(|(k, v)| k == b"READY" && v == b"1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_found_among_other_assignments() {
        assert!(is_ready(b"STATUS=starting\nREADY=1\n"));
        assert!(is_ready(b"READY=1"));
        assert!(!is_ready(b"READY=0"));
        assert!(!is_ready(b"STATUS=READY=1"));
        assert!(!is_ready(b"garbage"));
    }

    #[test]
    fn send_reaches_the_socket_named_by_the_environment() {
        let dir = std::env::temp_dir().join(format!("husk-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        unsafe_env_set(&path);
        assert!(notify_ready().unwrap());
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn unsafe_env_set(path: &std::path::Path) {
        // SAFETY: this is the only test in the crate touching the
        // environment, and it does not spawn threads that read it.
        unsafe { std::env::set_var(NOTIFY_SOCKET_ENV, path) };
    }
}
