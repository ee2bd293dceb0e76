//! For the small HTTP servers tests run on loopback for their guests.

use std::io::Read;

/// A request's head (through the blank line), read whole. Answering and
/// closing with part of it still unread would make the kernel reset the
/// connection instead of closing it, and the forward into the guest may
/// pass the guest's bytes on in several pieces.
pub fn read_request_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_arrives_in_pieces() {
        let mut pieces = std::io::Cursor::new(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n".to_vec())
            .chain(std::io::Cursor::new(b"".to_vec()));
        assert_eq!(
            read_request_head(&mut pieces),
            "GET / HTTP/1.0\r\nHost: x\r\n\r\n"
        );
        let mut cut = std::io::Cursor::new(b"GET / HT".to_vec());
        assert_eq!(read_request_head(&mut cut), "GET / HT");
    }
}
