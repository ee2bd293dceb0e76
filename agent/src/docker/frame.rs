//! Docker's multiplexed stream (`stdcopy`): each chunk of output behind an
//! 8-byte header, `[stream, 0, 0, 0, length as big-endian u32]`, stream 1
//! for stdout and 2 for stderr. A terminal's stream (a tty container's
//! attach, a tty exec) is sent raw instead.

use husk_api::containers::Stream;

/// What logs and attach answer with on API 1.41 (1.42's clients also
/// accept `application/vnd.docker.multiplexed-stream`).
pub const CONTENT_TYPE: &str = "application/vnd.docker.raw-stream";

/// One chunk, framed.
pub fn frame(stream: Stream, payload: &[u8]) -> Vec<u8> {
    let kind = match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    };
    // Chunks are log lines (16 KiB at most): the length always fits.
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&payload[..length as usize]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_stdcopy_reads_them() {
        assert_eq!(
            frame(Stream::Stderr, b"oops\n"),
            [2, 0, 0, 0, 0, 0, 0, 5, b'o', b'o', b'p', b's', b'\n']
        );
        assert_eq!(frame(Stream::Stdout, b"")[..8], [1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
