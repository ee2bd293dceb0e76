//! The shim's attach and control sockets, served from its poll loop
//! (the shim stays single-threaded; everything here is non-blocking).
//!
//! `attach.sock`: each client gets the output from the moment it
//! connects, raw for a tty container and in Docker's multiplexed frames
//! (stdcopy: stream byte, three zeros, big-endian u32 length) otherwise,
//! so Docker's attach can splice it unchanged. What a client writes goes
//! to the container's stdin raw; a client's write-side shutdown (EOF)
//! closes the stdin (Docker's StdinOnce), a client that closes the whole
//! connection (a detach) leaves it open. A client that does not keep up
//! is disconnected once [`CLIENT_BUFFER`] bytes wait for it: it never
//! holds the container or the log.
//!
//! `control.sock`: JSON lines, `{"resize":{"rows":R,"cols":C}}`, each
//! answered `{}` or `{"error":"…"}`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::config::{Control, ControlReply};
use crate::containers::listener::Listener;
use husk_api::containers::Stream;

/// What may wait for one attach client before it is disconnected.
pub const CLIENT_BUFFER: usize = 1 << 20;
/// What may wait for the container's stdin before clients are not read.
const STDIN_BUFFER: usize = 64 * 1024;
/// A control line longer than this closes its connection.
const CONTROL_LINE: usize = 4096;
/// After the container exits, how long queued output may take to reach
/// the clients.
const FLUSH: Duration = Duration::from_secs(2);

struct Client {
    stream: UnixStream,
    out: VecDeque<u8>,
    /// Its write side is still open: read what it sends.
    reading: bool,
}

/// The attach socket, its clients and the container's stdin.
pub struct Attach {
    listener: Option<Listener>,
    clients: Vec<Client>,
    /// Output goes out raw (a tty), else in stdcopy frames.
    raw: bool,
    /// The container's stdin (the pipe's write end, or the pty master);
    /// None: no stdin, what clients write is dropped.
    stdin: Option<OwnedFd>,
    pending: Vec<u8>,
    /// A client sent EOF: close the stdin once `pending` is written.
    closing: bool,
    name: String,
}

impl Attach {
    pub fn new(
        name: &str,
        listener: Option<Listener>,
        first: Vec<UnixStream>,
        raw: bool,
        stdin: Option<OwnedFd>,
    ) -> Self {
        if let Some(fd) = &stdin
            && let Err(e) = rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)
        {
            log::warn!("{name}: O_NONBLOCK on the container's stdin: {e}");
        }
        let mut attach = Self {
            listener,
            clients: Vec::new(),
            raw,
            stdin,
            pending: Vec::new(),
            closing: false,
            name: name.to_string(),
        };
        attach.add(first);
        attach
    }

    fn add(&mut self, streams: Vec<UnixStream>) {
        self.clients
            .extend(streams.into_iter().map(|stream| Client {
                stream,
                out: VecDeque::new(),
                reading: true,
            }));
    }

    /// Queues output for every client; a client with too much queued
    /// already is disconnected.
    pub fn broadcast(&mut self, stream: Stream, data: &[u8]) {
        if self.clients.is_empty() || data.is_empty() {
            return;
        }
        let header = (!self.raw).then(|| frame_header(stream, data.len()));
        let name = &self.name;
        self.clients.retain_mut(|client| {
            let len = header.map_or(0, |h| h.len()) + data.len();
            if client.out.len() + len > CLIENT_BUFFER {
                log::info!("{name}: an attach client does not keep up: disconnected");
                return false;
            }
            if let Some(h) = &header {
                client.out.extend(h);
            }
            client.out.extend(data);
            true
        });
        self.flush_clients();
    }

    /// The descriptors to poll and for what.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::new();
        if let Some(listener) = &self.listener {
            fds.push(PollFd::new(listener.socket(), PollFlags::IN));
        }
        let take_input = self.pending.len() < STDIN_BUFFER;
        for client in &self.clients {
            let mut flags = PollFlags::empty();
            if client.reading && take_input {
                flags |= PollFlags::IN;
            }
            if !client.out.is_empty() {
                flags |= PollFlags::OUT;
            }
            if !flags.is_empty() {
                fds.push(PollFd::new(&client.stream, flags));
            }
        }
        if let Some(stdin) = &self.stdin
            && !self.pending.is_empty()
        {
            fds.push(PollFd::new(stdin, PollFlags::OUT));
        }
        fds
    }

    /// After a poll: new clients, what they sent, what waits for them and
    /// for the stdin. Every call is non-blocking.
    pub fn ready(&mut self) {
        if let Some(listener) = &self.listener {
            let accepted = listener.accept_all();
            self.add(accepted);
        }
        self.read_clients();
        self.write_stdin();
        self.flush_clients();
    }

    fn read_clients(&mut self) {
        let mut eof = false;
        let mut buf = [0u8; 16 * 1024];
        for client in &mut self.clients {
            while client.reading && self.pending.len() < STDIN_BUFFER {
                match client.stream.read(&mut buf) {
                    Ok(0) => {
                        client.reading = false;
                        // A whole close (a detach, a client gone) leaves
                        // the stdin open; a write-side shutdown is EOF.
                        if !peer_closed(client.stream.as_fd()) {
                            eof = true;
                        }
                    }
                    Ok(n) => {
                        if self.stdin.is_some() && !self.closing {
                            self.pending.extend_from_slice(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => client.reading = false,
                }
            }
        }
        if eof && self.stdin.is_some() {
            self.closing = true;
        }
        // Clients that neither send nor wait for anything are kept: the
        // next output shows whether they are still there.
    }

    fn write_stdin(&mut self) {
        let Some(stdin) = &self.stdin else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match rustix::io::write(stdin, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                Err(e) => {
                    // The container closed its stdin (EPIPE): nothing more
                    // can go there.
                    log::debug!("{}: writing the container's stdin: {e}", self.name);
                    self.pending.clear();
                    self.stdin = None;
                    return;
                }
            }
        }
        if self.closing {
            self.stdin = None;
        }
    }

    fn flush_clients(&mut self) {
        self.clients.retain_mut(|client| {
            while !client.out.is_empty() {
                let (front, _) = client.out.as_slices();
                match client.stream.write(front) {
                    Ok(0) => return false,
                    Ok(n) => {
                        client.out.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
            true
        });
    }

    /// The container exited: no more clients; what is queued gets
    /// [`FLUSH`] to go out, then every connection is closed.
    pub fn finish(mut self) {
        self.listener = None;
        self.stdin = None;
        let deadline = Instant::now() + FLUSH;
        loop {
            self.flush_clients();
            let left = deadline.saturating_duration_since(Instant::now());
            if self.clients.iter().all(|c| c.out.is_empty()) || left.is_zero() {
                return;
            }
            let mut fds: Vec<PollFd> = self
                .clients
                .iter()
                .filter(|c| !c.out.is_empty())
                .map(|c| PollFd::new(&c.stream, PollFlags::OUT))
                .collect();
            let timeout = Timespec {
                tv_sec: 0,
                tv_nsec: left.subsec_nanos().max(1_000_000).into(),
            };
            let _ = poll(&mut fds, Some(&timeout));
        }
    }
}

/// Docker's stdcopy header: stream (1 stdout, 2 stderr), three zeros,
/// the length big-endian.
pub fn frame_header(stream: Stream, len: usize) -> [u8; 8] {
    let kind = match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    };
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [kind, 0, 0, 0, len[0], len[1], len[2], len[3]]
}

/// Whether the peer closed its whole socket (POLLHUP: both directions
/// shut) rather than only its write side (POLLRDHUP alone).
fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::RDHUP)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero)).is_ok() && fds[0].revents().contains(PollFlags::HUP)
}

/// The control socket: resizes of the pty.
pub struct ControlServer {
    listener: Option<Listener>,
    clients: Vec<(UnixStream, Vec<u8>)>,
    /// The pty master; None: no tty, resizes are refused.
    master: Option<OwnedFd>,
}

impl ControlServer {
    pub fn new(listener: Option<Listener>, master: Option<OwnedFd>) -> Self {
        Self {
            listener,
            clients: Vec::new(),
            master,
        }
    }

    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds: Vec<PollFd> = self
            .listener
            .iter()
            .map(|l| PollFd::new(l.socket(), PollFlags::IN))
            .collect();
        fds.extend(
            self.clients
                .iter()
                .map(|(s, _)| PollFd::new(s, PollFlags::IN)),
        );
        fds
    }

    pub fn ready(&mut self) {
        if let Some(listener) = &self.listener {
            let accepted = listener.accept_all();
            self.clients
                .extend(accepted.into_iter().map(|s| (s, Vec::new())));
        }
        let master = self.master.as_ref();
        self.clients.retain_mut(|(stream, line)| {
            let mut buf = [0u8; 512];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => line.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            while let Some(end) = line.iter().position(|&b| b == b'\n') {
                let request: Vec<u8> = line.drain(..=end).collect();
                let reply = answer(master, &request[..end]);
                let mut text = serde_json::to_vec(&reply).unwrap_or_default();
                text.push(b'\n');
                // A reply is a few bytes into an empty socket buffer; a
                // client that does not read them loses them.
                let _ = stream.write(&text);
            }
            line.len() <= CONTROL_LINE
        });
    }
}

fn answer(master: Option<&OwnedFd>, request: &[u8]) -> ControlReply {
    let error = match serde_json::from_slice::<Control>(request) {
        Err(e) => Some(format!("bad control request: {e}")),
        Ok(Control::Resize { rows, cols }) => match master {
            None => Some("the container has no terminal".to_string()),
            Some(master) => crate::containers::console::resize(master, rows, cols)
                .err()
                .map(|e| format!("resizing the terminal: {e}")),
        },
    };
    ControlReply { error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_dockers_stdcopy_headers() {
        assert_eq!(frame_header(Stream::Stdout, 5), [1, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(
            frame_header(Stream::Stderr, 0x0102_0304),
            [2, 0, 0, 0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn control_lines_parse_as_documented() {
        let resize: Control = serde_json::from_str(r#"{"resize":{"rows":24,"cols":80}}"#).unwrap();
        assert_eq!(resize, Control::Resize { rows: 24, cols: 80 });
        let reply = answer(None, br#"{"resize":{"rows":1,"cols":2}}"#);
        assert!(reply.error.unwrap().contains("no terminal"));
        assert!(answer(None, b"{}").error.unwrap().contains("bad control"));
    }

    #[test]
    fn a_client_that_does_not_read_is_disconnected_not_waited_for() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut attach = Attach::new("t", None, vec![ours], true, None);
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..64 {
            attach.broadcast(Stream::Stdout, &chunk);
        }
        assert!(attach.clients.is_empty());
        drop(theirs);
    }

    #[test]
    fn a_half_close_closes_stdin_and_a_whole_close_does_not() {
        for (half, closed) in [(true, true), (false, false)] {
            let (ours, theirs) = UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            let (read, write) = rustix::pipe::pipe().unwrap();
            let mut attach = Attach::new("t", None, vec![ours], false, Some(write));
            let mut theirs = Some(theirs);
            theirs.as_mut().unwrap().write_all(b"hi").unwrap();
            if half {
                theirs
                    .as_ref()
                    .unwrap()
                    .shutdown(std::net::Shutdown::Write)
                    .unwrap();
            } else {
                theirs = None;
            }
            attach.ready();
            let mut got = [0u8; 2];
            assert_eq!(rustix::io::read(&read, &mut got).unwrap(), 2);
            assert_eq!(&got, b"hi");
            assert_eq!(attach.stdin.is_none(), closed, "half close: {half}");
            drop(theirs);
        }
    }
}
