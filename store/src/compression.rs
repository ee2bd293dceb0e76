//! Recognising gzip and zstd streams by their magic bytes (archives and
//! layers both come either way; media types are hints at best, and a
//! `docker save` archive has none).

use std::io::{self, BufRead, BufReader, Read};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Which compression a stream starting with `head` uses.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(GZIP_MAGIC) {
            Self::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// `reader`, decompressed if it is gzip or zstd.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    decompress_buffered(BufReader::with_capacity(64 * 1024, reader))
}

/// [`decompress`] on a buffered reader: the decompressors take their input
/// through `fill_buf`/`consume`, so what `reader` is asked to consume is
/// exactly what was decompressed.
pub fn decompress_buffered<'a, R: BufRead + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = reader.fill_buf()?;
    Ok(match Compression::sniff(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::None => Box::new(reader),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn decompresses_what_it_recognises() {
        let data = b"some tar bytes".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(&data[..], 3).unwrap();
        for (input, kind) in [
            (&data[..], Compression::None),
            (&gz[..], Compression::Gzip),
            (&zst[..], Compression::Zstd),
        ] {
            assert_eq!(Compression::sniff(input), kind);
            let mut out = Vec::new();
            decompress(input).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{kind:?}");
        }
    }
}
