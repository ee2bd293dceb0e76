//! A layer's tar stream, kept so that it can be given back byte for byte
//! (`docker save`): the store keeps layers unpacked, not their blobs, and
//! an image's config names each layer by the digest of its uncompressed
//! tar (the diff_id), so a tar rebuilt from the files would not be the
//! layer the config names. As containers/storage does with tar-split,
//! unpacking records everything of the stream except the regular files'
//! contents (headers, extended headers, padding, the end blocks and what
//! follows them), and where each file's content lies in the unpacked
//! layer; [`replay`] interleaves them again and checks the result against
//! the diff_id as it goes.
//!
//! On disk, `tar-split/<diff_id hex>` beside `layers/`: a header (magic,
//! the stream's length, whether it can be replayed) and a zstd stream of
//! items: `M` + u32 length + bytes (the stream's own bytes), `F` + u32
//! length + path (relative to the layer's directory) + u64 size (that
//! many bytes of the file's content), `E` (the end).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::digest::{Digest, HashingWriter};

const MAGIC: &[u8; 8] = b"HUSKTS01";
const HEADER_LEN: usize = 24;
/// The stream's bytes are written in items of at most this much.
const META_CHUNK: usize = 64 * 1024;
/// A path in a record is a layer entry's path, which the unpack limits
/// already bound (4096 by default); this only keeps a corrupt record
/// from asking for gigabytes.
const MAX_PATH: u32 = 64 * 1024;
/// What the paths the record points to may hold in memory while a layer
/// unpacks (a million files of long names would be gigabytes): past it,
/// the layer is marked not replayable rather than tracked further.
const MAX_POINTED_BYTES: usize = 64 << 20;

/// The records' directory of the store at `root`.
pub(crate) fn dir(root: &Path) -> PathBuf {
    root.join("tar-split")
}

/// Where a layer's record lies in the store at `root`.
pub(crate) fn path(root: &Path, diff_id: &Digest) -> PathBuf {
    dir(root).join(diff_id.hex())
}

/// Where unpacking into `dest` writes its record: beside it, so that it
/// is staged (and cleaned up) with it.
pub(crate) fn staged_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".tar-split");
    PathBuf::from(name)
}

/// Moves the record staged beside `dest` (if unpacking wrote one) to the
/// store, before the layer itself is moved: a layer in the store then
/// always has its record, and a record whose layer never came is an
/// orphan gc removes.
pub(crate) fn commit(root: &Path, dest: &Path, diff_id: &Digest) -> io::Result<()> {
    let staged = staged_path(dest);
    if !staged.exists() {
        return Ok(());
    }
    std::fs::rename(&staged, path(root, diff_id))
}

/// What a layer's record says before it is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The uncompressed tar stream's length.
    pub size: u64,
    /// False when an entry of the layer replaced a file whose content the
    /// record points to: that content is gone from the unpacked layer.
    pub replayable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error(
        "layer {0} was unpacked without a record of its tar stream (before Husk kept one); pull or load its image again"
    )]
    Missing(Digest),
    #[error(
        "layer {0} cannot be given back byte for byte: one of its entries replaced a file another entry wrote"
    )]
    NotReplayable(Digest),
    #[error("the record of layer {layer}: {reason}")]
    Corrupt { layer: Digest, reason: String },
    #[error("layer {layer} changed on disk ({why}); the disk may be failing")]
    Changed { layer: Digest, why: String },
    #[error("layer {layer}: {what}")]
    Io {
        layer: Digest,
        what: String,
        #[source]
        source: io::Error,
    },
}

/// Reads a record's header.
pub(crate) fn summary(root: &Path, diff_id: &Digest) -> Result<Summary, SplitError> {
    summary_at(&dir(root), diff_id)
}

/// [`summary`] of the record in `records`, the store's `tar-split/`.
pub(crate) fn summary_at(records: &Path, diff_id: &Digest) -> Result<Summary, SplitError> {
    let file = open_at(records, diff_id)?;
    read_header(&file, diff_id)
}

fn open(root: &Path, diff_id: &Digest) -> Result<File, SplitError> {
    open_at(&dir(root), diff_id)
}

fn open_at(records: &Path, diff_id: &Digest) -> Result<File, SplitError> {
    File::open(records.join(diff_id.hex())).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SplitError::Missing(*diff_id),
        _ => SplitError::Io {
            layer: *diff_id,
            what: "opening its tar-split record".into(),
            source: e,
        },
    })
}

fn read_header(file: &File, diff_id: &Digest) -> Result<Summary, SplitError> {
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, 0)
        .map_err(|e| corrupt(diff_id, format!("its header: {e}")))?;
    // (a header is written last: a record a crash cut short has none)
    if &header[..8] != MAGIC {
        return Err(corrupt(diff_id, "not a tar-split record"));
    }
    let size = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    let flags = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
    Ok(Summary {
        size,
        replayable: flags & 1 == 1,
    })
}

fn corrupt(layer: &Digest, reason: impl ToString) -> SplitError {
    SplitError::Corrupt {
        layer: *layer,
        reason: reason.to_string(),
    }
}

/// Writes the layer's tar stream to `out`, the files' contents read from
/// the unpacked layer at `layer_dir`; fails (having written part of it)
/// if what it wrote is not `diff_id`. Returns the length written.
pub(crate) fn replay(
    root: &Path,
    layer_dir: &Path,
    diff_id: &Digest,
    out: &mut dyn Write,
) -> Result<u64, SplitError> {
    let file = open(root, diff_id)?;
    let summary = read_header(&file, diff_id)?;
    if !summary.replayable {
        return Err(SplitError::NotReplayable(*diff_id));
    }
    let io_err = |what: &str| {
        let what = what.to_owned();
        move |source| SplitError::Io {
            layer: *diff_id,
            what,
            source,
        }
    };
    let layer = File::open(layer_dir).map_err(io_err("opening the layer"))?;
    let mut file = file;
    file.seek(SeekFrom::Start(HEADER_LEN as u64))
        .map_err(io_err("reading its record"))?;
    let mut items =
        zstd::Decoder::with_buffer(BufReader::new(file)).map_err(io_err("reading its record"))?;
    let mut hashing = HashingWriter::new(out);
    loop {
        let mut tag = [0u8; 1];
        items
            .read_exact(&mut tag)
            .map_err(|e| corrupt(diff_id, format!("no end item: {e}")))?;
        match tag[0] {
            b'M' => {
                let len = read_u32(&mut items, diff_id)?;
                let copied = io::copy(&mut (&mut items).take(u64::from(len)), &mut hashing)
                    .map_err(io_err("replaying its headers"))?;
                if copied != u64::from(len) {
                    return Err(corrupt(diff_id, "an item ends early"));
                }
            }
            b'F' => {
                let len = read_u32(&mut items, diff_id)?;
                if len > MAX_PATH {
                    return Err(corrupt(diff_id, format!("a path of {len} bytes")));
                }
                let mut name = vec![0u8; len as usize];
                items
                    .read_exact(&mut name)
                    .map_err(|e| corrupt(diff_id, e))?;
                let mut size = [0u8; 8];
                items
                    .read_exact(&mut size)
                    .map_err(|e| corrupt(diff_id, e))?;
                let size = u64::from_le_bytes(size);
                let shown = String::from_utf8_lossy(&name).into_owned();
                let content =
                    open_beneath(&layer, &name).map_err(io_err(&format!("opening {shown}")))?;
                let copied = io::copy(&mut File::from(content).take(size), &mut hashing)
                    .map_err(io_err(&format!("reading {shown}")))?;
                if copied != size {
                    return Err(SplitError::Changed {
                        layer: *diff_id,
                        why: format!("{shown} is shorter than the {size} bytes its entry had"),
                    });
                }
            }
            b'E' => break,
            other => return Err(corrupt(diff_id, format!("an unknown item {other:#x}"))),
        }
    }
    let (_, actual, len) = hashing.finish();
    if actual != *diff_id || len != summary.size {
        return Err(SplitError::Changed {
            layer: *diff_id,
            why: format!("its replayed stream is {actual}, {len} bytes"),
        });
    }
    Ok(len)
}

/// A file of the layer, never through a symlink nor out of the layer
/// (the unpacking refused both, but the record is read back from disk).
fn open_beneath(layer: &File, name: &[u8]) -> io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let fd = rustix::fs::openat2(
        layer,
        std::ffi::OsStr::from_bytes(name),
        // (non-blocking: a FIFO put there must not hold the thread)
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode);
    if kind != rustix::fs::FileType::RegularFile {
        return Err(io::Error::other(format!(
            "not a regular file but a {kind:?}"
        )));
    }
    Ok(fd)
}

fn read_u32(items: &mut impl Read, diff_id: &Digest) -> Result<u32, SplitError> {
    let mut bytes = [0u8; 4];
    items
        .read_exact(&mut bytes)
        .map_err(|e| corrupt(diff_id, e))?;
    Ok(u32::from_le_bytes(bytes))
}

/// Records a layer's stream while it is unpacked: every byte read
/// through a [`Recording`] is kept, except those [`Recorder::content`]
/// says are a file's content.
pub(crate) struct Recorder {
    file: File,
    items: zstd::Encoder<'static, BufWriter<File>>,
    meta: Vec<u8>,
    /// The file whose content is being read, and how much of it is left.
    content: Option<u64>,
    total: u64,
    /// The paths whose content the record points to, and their bytes.
    pointed: BTreeSet<Vec<u8>>,
    pointed_bytes: usize,
    replayable: bool,
    failed: Option<io::Error>,
}

pub(crate) type Shared = Rc<RefCell<Recorder>>;

impl Recorder {
    pub(crate) fn create(path: &Path) -> io::Result<Shared> {
        let mut file = File::options().write(true).create_new(true).open(path)?;
        file.write_all(&[0u8; HEADER_LEN])?;
        let items = zstd::Encoder::new(BufWriter::new(file.try_clone()?), 3)?;
        Ok(Rc::new(RefCell::new(Recorder {
            file,
            items,
            meta: Vec::new(),
            content: None,
            total: 0,
            pointed: BTreeSet::new(),
            pointed_bytes: 0,
            replayable: true,
            failed: None,
        })))
    }

    /// The next `size` bytes of the stream are the content of the file
    /// at `path` (relative to the layer's root).
    pub(crate) fn content(&mut self, path: &[u8], size: u64) {
        if size == 0 {
            return;
        }
        self.flush_meta();
        self.item(|w| {
            w.write_all(b"F")?;
            w.write_all(&(path.len() as u32).to_le_bytes())?;
            w.write_all(path)?;
            w.write_all(&size.to_le_bytes())
        });
        if self.replayable {
            self.pointed_bytes += path.len();
            if self.pointed_bytes > MAX_POINTED_BYTES {
                // Too many to tell whether a later entry replaces one.
                self.replayable = false;
                self.pointed = BTreeSet::new();
            } else {
                self.pointed.insert(path.to_vec());
            }
        }
        self.content = Some(size);
    }

    /// An entry is about to change `path` in the layer (and what is
    /// under it, when `below`): content pointed to there is lost.
    pub(crate) fn changes(&mut self, path: &[u8], below: bool) {
        if !self.replayable {
            return;
        }
        let mut under = path.to_vec();
        under.push(b'/');
        let lost = self.pointed.contains(path)
            || (below
                && self
                    .pointed
                    .range(under.clone()..)
                    .next()
                    .is_some_and(|p| p.starts_with(&under)));
        if lost {
            self.replayable = false;
        }
    }

    fn saw(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        while !bytes.is_empty() {
            match self.content {
                Some(left) => {
                    let n = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    bytes = &bytes[n..];
                    self.content = Some(left - n as u64).filter(|&l| l > 0);
                }
                None => {
                    // In items of at most a chunk, however much one read
                    // brought (a pax header is read whole).
                    let n = bytes.len().min(META_CHUNK - self.meta.len());
                    self.meta.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.meta.len() >= META_CHUNK {
                        self.flush_meta();
                    }
                }
            }
        }
    }

    fn flush_meta(&mut self) {
        if self.meta.is_empty() {
            return;
        }
        let meta = std::mem::take(&mut self.meta);
        self.item(|w| {
            w.write_all(b"M")?;
            w.write_all(&(meta.len() as u32).to_le_bytes())?;
            w.write_all(&meta)
        });
    }

    fn item(&mut self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
        if self.failed.is_none()
            && let Err(e) = write(&mut self.items)
        {
            self.failed = Some(e);
        }
    }

    /// Ends the record once the whole stream went through (the caller
    /// has checked it against its diff_id), and syncs nothing: the
    /// store's commit syncs the filesystem once.
    pub(crate) fn finish(shared: Shared) -> io::Result<()> {
        let recorder = Rc::try_unwrap(shared)
            .map_err(|_| io::Error::other("the tar-split recorder is still in use"))?
            .into_inner();
        recorder.end()
    }

    fn end(mut self) -> io::Result<()> {
        if self.content.is_some() {
            return Err(io::Error::other("the stream ended inside a file's content"));
        }
        self.flush_meta();
        self.item(|w| w.write_all(b"E"));
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.items.finish()?.flush()?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&self.total.to_le_bytes());
        header[16..24].copy_from_slice(&u64::from(self.replayable).to_le_bytes());
        self.file.write_all_at(&header, 0)
    }
}

/// A reader whose bytes go through a [`Recorder`] (when there is one).
pub(crate) struct Recording<R> {
    pub(crate) inner: R,
    pub(crate) recorder: Option<Shared>,
}

impl<R: Read> Read for Recording<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(recorder) = &self.recorder {
            recorder.borrow_mut().saw(&buf[..n]);
        }
        Ok(n)
    }
}
