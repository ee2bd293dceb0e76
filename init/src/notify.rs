//! The receiving side of sd_notify: one unix datagram socket per service
//! at `/run/husk/notify/NAME.sock`, named to the service in
//! `$NOTIFY_SOCKET`. Only readiness (`READY=1`) is acted on.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The socket path of a service.
pub fn socket_path(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("{service}.sock"))
}

/// Creates (replacing a stale one) and binds a service's socket,
/// non-blocking and close-on-exec.
pub fn bind(dir: &Path, service: &str) -> io::Result<(UnixDatagram, PathBuf)> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)?;
    let path = socket_path(dir, service);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let socket = UnixDatagram::bind(&path)?;
    socket.set_nonblocking(true)?;
    Ok((socket, path))
}

/// Reads every pending datagram (at most `max` of them); true when one
/// of them announced readiness.
pub fn receive_ready(socket: &UnixDatagram, max: usize) -> bool {
    let mut buf = [0u8; 4096];
    let mut ready = false;
    for _ in 0..max {
        match socket.recv(&mut buf) {
            Ok(n) => ready |= husk_common::notify::is_ready(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    ready
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_datagrams_are_seen_and_stale_sockets_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let notify_dir = dir.path().join("notify");
        let (first, path) = bind(&notify_dir, "svc").unwrap();
        drop(first);
        // The file is still there; binding again must replace it.
        let (socket, path2) = bind(&notify_dir, "svc").unwrap();
        assert_eq!(path, path2);
        assert!(!receive_ready(&socket, 8));

        let client = UnixDatagram::unbound().unwrap();
        client.send_to(b"STATUS=starting", &path).unwrap();
        assert!(!receive_ready(&socket, 8));
        client.send_to(b"STATUS=up\nREADY=1\n", &path).unwrap();
        assert!(receive_ready(&socket, 8));
    }
}
