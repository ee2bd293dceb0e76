//! How much a layer may hold: the limits enforced while a layer streams in,
//! so that a decompression bomb, a sparse file claiming a terabyte or a
//! layer of millions of entries is refused — with an error naming the limit
//! — before it fills the disk, and not after.
//!
//! Two places count. `LimitedReader` sits on the uncompressed stream and
//! counts it (and the compressed bytes below the decompressor, for the
//! ratio); `Tally` sees each tar header before its entry is created and
//! counts entries and their sizes. Both run when unpacking and when only
//! verifying a layer (`defer_unpack`).

use std::cell::Cell;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use serde::Deserialize;

use super::compression::decompress_buffered;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The limits on one layer. In agent.toml (snake_case keys, each
/// optional):
///
/// ```toml
/// [limits.images]
/// max_layer_bytes = 68719476736
/// max_layer_entries = 1000000
/// max_path_bytes = 4095
/// max_name_bytes = 255
/// max_compression_ratio = 1000
/// compression_ratio_after_bytes = 67108864
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The most a layer may hold unpacked: the sum of its entries' sizes,
    /// a sparse file counting its logical size (its holes are written out
    /// as zeros), and the length of its uncompressed tar stream. Default
    /// 64 GiB: the largest layers of real images (CUDA and ML toolkits) are
    /// 10–20 GiB unpacked; a sparse 1 TiB file is far over.
    pub max_layer_bytes: u64,
    /// Default 1,000,000: the biggest distribution and language images
    /// have a few hundred thousand files in all their layers.
    pub max_layer_entries: u64,
    /// An entry's path in the container (`/a/b/c`) and a link's target.
    /// Default 4095: Linux's PATH_MAX less its terminating NUL, the longest
    /// path a system call takes.
    pub max_path_bytes: usize,
    /// One component of a path. Default 255: NAME_MAX, beyond which the
    /// kernel refuses to create the name anyway (with a less clear error).
    pub max_name_bytes: usize,
    /// Uncompressed bytes per compressed byte read so far, over the whole
    /// layer. Default 1000: real layers are 2–10:1; deflate cannot exceed
    /// about 1030:1 even on zeros, so a gzip layer over this is (nearly)
    /// nothing but zeros, and a zstd one can reach 30,000:1 and more. (A
    /// layer that really is one big file of zeros, a preallocated disk
    /// image say, needs this raised.)
    pub max_compression_ratio: u64,
    /// The ratio is checked only once this much has been decompressed.
    /// Default 64 MiB: real images carry small layers of zeros (empty
    /// files, padding) that compress far better than 1000:1, and 64 MiB of
    /// a bomb costs nothing to refuse.
    pub compression_ratio_after_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_layer_bytes: 64 * GIB,
            max_layer_entries: 1_000_000,
            max_path_bytes: 4095,
            max_name_bytes: 255,
            max_compression_ratio: 1000,
            compression_ratio_after_bytes: 64 * MIB,
        }
    }
}

/// Which limit a layer went over, and by how much. The stream's limits are
/// raised inside its I/O, as an [`io::Error`] carrying this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error(
        "with this entry's {} the layer's unpacked size would reach {}, over the limit of {} (limits.max_layer_bytes)",
        Size(*size), Size(*total), Size(*limit)
    )]
    LayerBytes { size: u64, total: u64, limit: u64 },
    #[error(
        "the layer's uncompressed tar stream is over the limit of {} (limits.max_layer_bytes)",
        Size(*limit)
    )]
    StreamBytes { limit: u64 },
    #[error("the layer has more than {limit} entries (limits.max_layer_entries)")]
    Entries { limit: u64 },
    #[error("its path is {len} bytes, over the limit of {limit} (limits.max_path_bytes)")]
    PathBytes { len: usize, limit: usize },
    #[error("its link target is {len} bytes, over the limit of {limit} (limits.max_path_bytes)")]
    LinkBytes { len: usize, limit: usize },
    #[error(
        "its path component `{component}` is {len} bytes, over the limit of {limit} (limits.max_name_bytes)"
    )]
    NameBytes {
        component: String,
        len: usize,
        limit: usize,
    },
    #[error(
        "decompression bomb: {} decompressed from {} so far, more than the limit of {limit}:1 (limits.max_compression_ratio)",
        Size(*uncompressed), Size(*compressed)
    )]
    Ratio {
        uncompressed: u64,
        compressed: u64,
        limit: u64,
    },
}

impl LimitExceeded {
    /// The limit an I/O error from a [`LimitedReader`] carries, or the
    /// error itself if it is another.
    pub(crate) fn from_io(error: io::Error) -> Result<Self, io::Error> {
        match error.get_ref().and_then(|e| e.downcast_ref::<Self>()) {
            Some(limit) => Ok(limit.clone()),
            None => Err(error),
        }
    }
}

impl Limits {
    /// An entry's path, as components under the layer root.
    pub fn check_path(&self, components: &[OsString]) -> Result<(), LimitExceeded> {
        // each component is preceded by a `/` in the container
        let len = components.iter().map(|c| c.len() + 1).sum();
        if len > self.max_path_bytes {
            return Err(LimitExceeded::PathBytes {
                len,
                limit: self.max_path_bytes,
            });
        }
        match components.iter().find(|c| c.len() > self.max_name_bytes) {
            Some(c) => Err(LimitExceeded::NameBytes {
                component: abbreviate(c.as_bytes(), 32),
                len: c.len(),
                limit: self.max_name_bytes,
            }),
            None => Ok(()),
        }
    }

    /// A symlink's or hardlink's target, as the entry gives it.
    pub fn check_link(&self, target: &[u8]) -> Result<(), LimitExceeded> {
        if target.len() > self.max_path_bytes {
            return Err(LimitExceeded::LinkBytes {
                len: target.len(),
                limit: self.max_path_bytes,
            });
        }
        Ok(())
    }
}

/// A name for an error message: at most `max` bytes of it, lossily.
pub(crate) fn abbreviate(name: &[u8], max: usize) -> String {
    match name.get(..max) {
        Some(start) if name.len() > max => format!("{}…", String::from_utf8_lossy(start)),
        _ => String::from_utf8_lossy(name).into_owned(),
    }
}

/// A layer's entries counted as their headers are read, before each entry
/// is created. Counting the header's size is enough to bound what is
/// written: the tar reader yields exactly that many bytes of an entry
/// (a GNU sparse file's holes included).
#[derive(Debug)]
pub(crate) struct Tally {
    limits: Limits,
    entries: u64,
    bytes: u64,
}

impl Tally {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: 0,
            bytes: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// One more entry, of `size` bytes unpacked.
    pub fn entry(&mut self, size: u64) -> Result<(), LimitExceeded> {
        self.entries += 1;
        if self.entries > self.limits.max_layer_entries {
            return Err(LimitExceeded::Entries {
                limit: self.limits.max_layer_entries,
            });
        }
        let total = self.bytes.saturating_add(size);
        if total > self.limits.max_layer_bytes {
            return Err(LimitExceeded::LayerBytes {
                size,
                total,
                limit: self.limits.max_layer_bytes,
            });
        }
        self.bytes = total;
        Ok(())
    }
}

/// Counts what the decompressor consumes, for the [`LimitedReader`] above
/// it: not what it has buffered ahead, so the ratio is exact.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.count.set(self.count.get() + amt as u64);
        self.inner.consume(amt);
    }
}

/// A layer's uncompressed stream, failing with a [`LimitExceeded`] (inside
/// an [`io::Error`]) as soon as it is longer than `max_layer_bytes` or has
/// decompressed more than `max_compression_ratio` times what was read.
pub(crate) struct LimitedReader<R> {
    inner: R,
    /// Compressed bytes decompressed so far.
    compressed: Rc<Cell<u64>>,
    uncompressed: u64,
    limits: Limits,
}

/// The layer blob `blob`, decompressed if it is gzip or zstd, under
/// `limits`.
pub(crate) fn open_layer<'a, R: Read + 'a>(
    blob: R,
    limits: Limits,
) -> io::Result<LimitedReader<Box<dyn Read + 'a>>> {
    let compressed = Rc::new(Cell::new(0));
    let inner = decompress_buffered(Counting {
        inner: BufReader::with_capacity(64 * 1024, blob),
        count: Rc::clone(&compressed),
    })?;
    Ok(LimitedReader {
        inner,
        compressed,
        uncompressed: 0,
        limits,
    })
}

impl<R: Read> LimitedReader<R> {
    fn check(&self) -> Result<(), LimitExceeded> {
        let limits = &self.limits;
        if self.uncompressed > limits.max_layer_bytes {
            return Err(LimitExceeded::StreamBytes {
                limit: limits.max_layer_bytes,
            });
        }
        let compressed = self.compressed.get();
        if self.uncompressed > limits.compression_ratio_after_bytes
            && self.uncompressed > compressed.saturating_mul(limits.max_compression_ratio)
        {
            return Err(LimitExceeded::Ratio {
                uncompressed: self.uncompressed,
                compressed,
                limit: limits.max_compression_ratio,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.uncompressed += n as u64;
        // Checked on every read, so the error sticks: once over, every
        // later read fails too.
        self.check().map_err(io::Error::other)?;
        Ok(n)
    }
}

/// A size for people: `64 GiB`, `1.5 MiB`, `512 bytes`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", GIB),
            ("MiB", MIB),
            ("KiB", 1 << 10),
        ];
        for (unit, n) in UNITS {
            if self.0 >= n {
                return if self.0.is_multiple_of(n) {
                    write!(f, "{} {unit}", self.0 / n)
                } else {
                    write!(f, "{:.1} {unit}", self.0 as f64 / n as f64)
                };
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip_zeros(len: usize) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&vec![0; len]).unwrap();
        gz.finish().unwrap()
    }

    fn read_all(r: &mut impl Read) -> Result<u64, LimitExceeded> {
        io::copy(r, &mut io::sink()).map_err(|e| LimitExceeded::from_io(e).unwrap())
    }

    #[test]
    fn within_the_limits_the_stream_is_unchanged() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        for blob in [&data[..], &gz[..]] {
            let mut out = Vec::new();
            open_layer(blob, Limits::default())
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn counts_compressed_and_uncompressed_bytes() {
        let blob = gzip_zeros(1 << 20);
        let mut r = open_layer(&blob[..], Limits::default()).unwrap();
        assert_eq!(read_all(&mut r), Ok(1 << 20));
        assert_eq!(r.uncompressed, 1 << 20);
        assert_eq!(r.compressed.get(), blob.len() as u64);
    }

    #[test]
    fn a_stream_over_the_byte_limit_fails_with_the_limit() {
        let limits = Limits {
            max_layer_bytes: 1000,
            ..Limits::default()
        };
        let data = [7u8; 1000];
        let mut r = open_layer(&data[..], limits).unwrap();
        assert_eq!(read_all(&mut r), Ok(1000), "exactly the limit passes");
        let data = [7u8; 1001];
        let mut r = open_layer(&data[..], limits).unwrap();
        let err = read_all(&mut r).unwrap_err();
        assert_eq!(err, LimitExceeded::StreamBytes { limit: 1000 });
        // and it sticks
        let mut buf = [0; 16];
        assert!(r.read(&mut buf).is_err());
    }

    #[test]
    fn the_ratio_is_checked_only_past_the_threshold() {
        let blob = gzip_zeros(4 << 20);
        let ratio = (4 << 20) / blob.len() as u64;
        assert!(ratio > 500, "zeros compress {ratio}:1");
        let limits = Limits {
            max_compression_ratio: 100,
            compression_ratio_after_bytes: 8 << 20,
            ..Limits::default()
        };
        let mut r = open_layer(&blob[..], limits).unwrap();
        assert_eq!(read_all(&mut r), Ok(4 << 20), "under the threshold");

        let limits = Limits {
            compression_ratio_after_bytes: 1 << 20,
            ..limits
        };
        let mut r = open_layer(&blob[..], limits).unwrap();
        match read_all(&mut r) {
            Err(LimitExceeded::Ratio {
                uncompressed,
                compressed,
                limit: 100,
            }) => {
                // refused just past the threshold, not at the end
                assert!(
                    uncompressed > 1 << 20 && uncompressed < 2 << 20,
                    "{uncompressed}"
                );
                assert!(uncompressed > 100 * compressed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_io_errors_are_not_limits() {
        let e = io::Error::other("disk on fire");
        assert_eq!(
            LimitExceeded::from_io(e).unwrap_err().to_string(),
            "disk on fire"
        );
    }

    #[test]
    fn tally_counts_entries_and_sizes() {
        let limits = Limits {
            max_layer_entries: 3,
            max_layer_bytes: 100,
            ..Limits::default()
        };
        let mut t = Tally::new(limits);
        t.entry(60).unwrap();
        t.entry(40).unwrap();
        assert_eq!(
            t.entry(1),
            Err(LimitExceeded::LayerBytes {
                size: 1,
                total: 101,
                limit: 100
            })
        );
        let mut t = Tally::new(limits);
        for _ in 0..3 {
            t.entry(0).unwrap();
        }
        assert_eq!(t.entry(0), Err(LimitExceeded::Entries { limit: 3 }));
        // a size near u64::MAX does not wrap around
        let mut t = Tally::new(limits);
        t.entry(1).unwrap();
        assert!(t.entry(u64::MAX).is_err());
    }

    #[test]
    fn paths_are_measured_as_the_container_sees_them() {
        let limits = Limits {
            max_path_bytes: 8,
            max_name_bytes: 3,
            ..Limits::default()
        };
        let path = |s: &str| s.split('/').map(OsString::from).collect::<Vec<_>>();
        assert_eq!(limits.check_path(&path("abc/def")), Ok(()), "`/abc/def`");
        assert_eq!(
            limits.check_path(&path("abc/defg")),
            Err(LimitExceeded::PathBytes { len: 9, limit: 8 })
        );
        let err = limits.check_path(&path("a/bcde")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "its path component `bcde` is 4 bytes, over the limit of 3 (limits.max_name_bytes)"
        );
        assert!(limits.check_link(b"12345678").is_ok());
        assert!(limits.check_link(b"123456789").is_err());
    }

    #[test]
    fn defaults_and_names_from_config() {
        let limits: Limits = serde_json::from_str(r#"{"max_layer_entries": 5}"#).unwrap();
        assert_eq!(
            limits,
            Limits {
                max_layer_entries: 5,
                ..Limits::default()
            }
        );
        let err = serde_json::from_str::<Limits>(r#"{"max_layer_size": 5}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(Size(64 << 30).to_string(), "64 GiB");
        assert_eq!(Size(1 << 40).to_string(), "1 TiB");
        assert_eq!(Size(3 << 19).to_string(), "1.5 MiB");
        assert_eq!(Size(512).to_string(), "512 bytes");
        assert_eq!(abbreviate(b"abc", 3), "abc");
        assert_eq!(abbreviate(b"abcd", 3), "abc…");
    }
}
