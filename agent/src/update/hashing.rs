//! A file's length and SHA-256, taken over exactly the bytes written:
//! what the ESP copy checks against the signed target, so that nothing
//! read after the download's own check (a file changed or swapped on the
//! data partition) can become a boot entry unnoticed.

use std::io::{self, Write};

use husk_release::hex;
use sha2::{Digest as _, Sha256};

/// A length and a lowercase hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    pub sha256: String,
}

/// What was written is not what was signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The source had more bytes than the signed length (the extra ones
    /// are not written).
    #[error("longer than the signed {signed} bytes")]
    TooLong { signed: u64 },
    #[error(
        "{} bytes with SHA-256 {}, where the signed UKI is {} bytes with SHA-256 {}",
        actual.size, actual.sha256, expected.size, expected.sha256
    )]
    Digest { expected: Digest, actual: Digest },
}

impl Digest {
    /// Ok when `self` (what was written) is `signed`.
    pub fn check(&self, signed: &Digest) -> Result<(), Mismatch> {
        if self == signed {
            return Ok(());
        }
        Err(Mismatch::Digest {
            expected: signed.clone(),
            actual: self.clone(),
        })
    }
}

/// A writer that hashes what its inner writer accepted, no more: after a
/// short write only the bytes taken count.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// The inner writer and the digest of everything it took.
    pub fn finish(self) -> (W, Digest) {
        let digest = Digest {
            size: self.written,
            sha256: hex(&self.hasher.finalize()),
        };
        (self.inner, digest)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most 3 bytes a call.
    struct Short(Vec<u8>);

    impl Write for Short {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn hashes_what_was_taken() {
        let mut writer = HashingWriter::new(Short(Vec::new()));
        assert_eq!(writer.write(b"hello").unwrap(), 3);
        writer.write_all(b"lo world").unwrap();
        let (inner, digest) = writer.finish();
        assert_eq!(inner.0, b"hello world");
        let expected = Digest {
            size: 11,
            // sha256("hello world")
            sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9".into(),
        };
        assert_eq!(digest, expected);
        assert!(digest.check(&expected).is_ok());
        let other = Digest {
            size: 11,
            sha256: "00".repeat(32),
        };
        let message = digest.check(&other).unwrap_err().to_string();
        assert!(
            message.contains(&expected.sha256) && message.contains(&other.sha256),
            "{message}"
        );
    }
}
