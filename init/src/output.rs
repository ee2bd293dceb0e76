//! Service output: the bytes a service writes to stdout/stderr, cut into
//! lines for the log. The buffer is fixed: a line longer than it is
//! logged in pieces rather than growing memory.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// Longest line kept whole (the log line adds the service name).
pub const LINE_CAP: usize = 768;

/// Collects bytes until a newline.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: heapless::Vec<u8, LINE_CAP>,
}

impl LineBuffer {
    pub const fn new() -> Self {
        Self {
            buf: heapless::Vec::new(),
        }
    }

    /// Feeds `data`, calling `emit` with each complete line (without its
    /// newline or a trailing `\r`).
    pub fn feed(&mut self, data: &[u8], emit: &mut impl FnMut(&[u8])) {
        for &b in data {
            if b == b'\n' {
                self.emit(emit);
            } else if self.buf.push(b).is_err() {
                self.emit(emit);
                let _ = self.buf.push(b);
            }
        }
    }

    /// Emits what is left (output that did not end in a newline).
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            self.emit(emit);
        }
    }

    fn emit(&mut self, emit: &mut impl FnMut(&[u8])) {
        let line = self.buf.strip_suffix(b"\r").unwrap_or(&self.buf);
        emit(line);
        self.buf.clear();
    }
}

/// The state of one read from a non-blocking pipe.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Nothing more for now.
    WouldBlock,
    /// The writers are all gone.
    Eof,
}

/// Reads from `fd` until it would block, hits EOF, or `max_reads` reads
/// were done (so one chatty service cannot starve the loop).
pub fn drain(
    fd: &OwnedFd,
    lines: &mut LineBuffer,
    max_reads: usize,
    emit: &mut impl FnMut(&[u8]),
) -> io::Result<Drained> {
    let mut chunk = [0u8; 4096];
    for _ in 0..max_reads {
        match rustix::io::read(fd.as_fd(), &mut chunk) {
            Ok(0) => {
                lines.flush(emit);
                return Ok(Drained::Eof);
            }
            Ok(n) => lines.feed(chunk.get(..n).unwrap_or_default(), emit),
            Err(rustix::io::Errno::AGAIN) => return Ok(Drained::WouldBlock),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Drained::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<String> {
        let mut lb = LineBuffer::new();
        let mut out = Vec::new();
        let mut emit = |l: &[u8]| out.push(String::from_utf8_lossy(l).into_owned());
        for c in chunks {
            lb.feed(c, &mut emit);
        }
        lb.flush(&mut emit);
        out
    }

    #[test]
    fn lines_split_across_reads() {
        assert_eq!(
            collect(&[b"hel", b"lo\nwor", b"ld\r\n", b"tail"]),
            ["hello", "world", "tail"]
        );
        assert_eq!(collect(&[b"a\n\nb\n"]), ["a", "", "b"]);
    }

    #[test]
    fn overlong_lines_come_in_pieces() {
        let long = vec![b'x'; LINE_CAP * 2 + 10];
        let out = collect(&[&long, b"\n"]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), LINE_CAP);
        assert_eq!(out[2].len(), 10);
    }

    #[test]
    fn drain_reads_a_pipe_to_eof() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, b"one\ntwo").unwrap();
        let mut lb = LineBuffer::new();
        let mut out = Vec::new();
        let mut emit = |l: &[u8]| out.push(l.to_vec());
        rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK).unwrap();
        assert_eq!(
            drain(&r, &mut lb, 16, &mut emit).unwrap(),
            Drained::WouldBlock
        );
        drop(w);
        assert_eq!(drain(&r, &mut lb, 16, &mut emit).unwrap(), Drained::Eof);
        assert_eq!(out, [b"one".to_vec(), b"two".to_vec()]);
    }
}
