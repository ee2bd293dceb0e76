//! Extracting one layer tar into its directory — the part of the store that
//! handles hostile input.
//!
//! Every entry is resolved component by component from a descriptor of the
//! layer's root, each component opened with `O_NOFOLLOW | O_DIRECTORY`, so
//! no write, chmod, chown or link ever passes through a symlink, and `..`
//! components are refused outright: nothing can land outside the layer.
//! Leading `/` is stripped, as tar tools do. Symlinks themselves are image
//! content and are created as they are, absolute ones included (they resolve
//! inside the container's root). Whiteouts become overlayfs whiteouts.
//! Every entry is checked against the [`Limits`] before it is created, and
//! the stream is counted as it is read ([`limits`]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use super::digest::{Digest, HashingReader};
use super::limits::{self, LimitExceeded, Limits, Tally};
use super::tar_split::{self, Recorder, Recording};

/// overlayfs: a directory with this xattr hides the layers below it.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

#[derive(Debug, Clone, Copy, Default)]
pub struct UnpackOptions {
    /// Create character and block device entries (refused otherwise).
    pub allow_devices: bool,
    pub limits: Limits,
    /// An archive copied into a live tree (`docker cp`), not a layer: its
    /// `.wh.` names are refused rather than made whiteouts, and nothing is
    /// written on or under a kernel interface mounted in that tree (proc,
    /// sysfs, cgroupfs…: see [`is_data_filesystem`]), where root's writes
    /// would reach the host's kernel.
    pub live_tree: bool,
    /// Who owns what is created, before [`Self::id_shift`].
    pub owner: Owner,
    /// Ids as seen from a user namespace: each uid and gid is moved by the
    /// range's start, and one past its size is refused.
    pub id_shift: Option<IdShift>,
}

/// The owner given to created entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Owner {
    /// The archive's uid and gid (a layer; `docker cp -a`).
    #[default]
    AsArchived,
    /// These, whatever the archive says (`docker cp` without `-a`: root).
    Fixed { uid: u32, gid: u32 },
}

/// A user namespace's range of host ids: id N inside is `uid + N` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdShift {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl IdShift {
    /// The host's id for the namespace's `id`, or None past its range.
    pub fn outside(base: u32, size: u32, id: u32) -> Option<u32> {
        (id < size).then(|| base.checked_add(id)).flatten()
    }

    /// The namespace's id for the host's `id`, or None outside its range.
    pub fn inside(base: u32, size: u32, id: u32) -> Option<u32> {
        id.checked_sub(base).filter(|n| *n < size)
    }
}

/// Filesystems that hold files, as opposed to kernel interfaces: what a
/// [`UnpackOptions::live_tree`] extraction may write on (statfs magic
/// numbers of ext2/3/4, xfs, btrfs, overlayfs, tmpfs, ramfs).
pub fn is_data_filesystem(fd: impl AsFd) -> io::Result<bool> {
    const DATA: [i64; 6] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x794C_7630, // overlayfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
    ];
    let st = rustix::fs::fstatfs(fd)?;
    #[allow(clippy::unnecessary_cast)] // f_type's type differs by architecture
    Ok(DATA.contains(&(st.f_type as i64)))
}

/// Why one entry of a layer was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("its name climbs out of the layer with `..`")]
    ParentDir,
    #[error("`{0}` is a symlink: refusing to write through it")]
    ThroughSymlink(String),
    #[error("`{0}` is not a directory")]
    NotADirectory(String),
    #[error("it would replace the directory `{0}`")]
    ReplacesDirectory(String),
    #[error("hardlink target `{0}` is outside the layer")]
    HardlinkOutside(String),
    #[error("hardlink target `{0}` is not in the layer")]
    HardlinkMissing(String),
    #[error("hardlink target `{0}` is a directory")]
    HardlinkToDirectory(String),
    #[error("device node refused: this store does not allow devices")]
    DeviceNotAllowed,
    #[error("`{0}` is a whiteout name, refused in an archive copied into a container")]
    Whiteout(String),
    #[error(
        "`{0}` is not on a filesystem of files (a kernel interface such as /proc or /sys): refusing to write there"
    )]
    NotDataFilesystem(String),
    #[error(
        "extended attribute `{0}` refused in an archive copied into a container (only user.* ones are: the host's root would set what the container's may not)"
    )]
    XattrRefused(String),
    #[error("{what} {id} has no place in the user namespace (it maps {size} ids)")]
    IdOutsideNamespace {
        what: &'static str,
        id: u32,
        size: u32,
    },
    #[error("{0} needs root (CAP_MKNOD / CAP_SYS_ADMIN); the store must be written as root")]
    NeedsRoot(&'static str),
    #[error("it sets the overlayfs attribute `{0}`, which only the store may set")]
    OverlayXattr(String),
    #[error("invalid {what} `{value}` in its PAX header")]
    BadPax { what: &'static str, value: String },
    #[error("unsupported entry type {0:?}")]
    UnsupportedType(tar::EntryType),
    // The tar reader does not expand them: unpacked, the file would be its
    // sparse map and data, silently wrong.
    #[error("it is a PAX sparse file (`{0}` in its PAX header), which the store does not unpack")]
    PaxSparse(String),
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A failed entry (or the stream itself, entry `<layer>`).
#[derive(Debug, thiserror::Error)]
#[error("entry `{entry}`: {error}")]
pub struct LayerError {
    pub entry: String,
    #[source]
    pub error: UnpackError,
}

type Res<T> = Result<T, UnpackError>;

fn io_err(op: &'static str) -> impl FnOnce(Errno) -> UnpackError {
    move |e| UnpackError::Io {
        op,
        source: e.into(),
    }
}

/// An I/O error reading or copying the layer stream, which may be the
/// [`LimitedReader`](limits::LimitedReader) refusing to go on.
fn stream_err(op: &'static str) -> impl FnOnce(io::Error) -> UnpackError {
    move |e| match LimitExceeded::from_io(e) {
        Ok(limit) => UnpackError::Limit(limit),
        Err(source) => UnpackError::Io { op, source },
    }
}

/// An entry's name for an error message (a hostile one can be huge).
fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    const SHOWN: usize = 256;
    let name = entry.path_bytes();
    match name.len() {
        len if len > SHOWN => format!("{} ({len} bytes)", limits::abbreviate(&name, SHOWN)),
        _ => limits::abbreviate(&name, SHOWN),
    }
}

fn whole_layer(error: UnpackError) -> LayerError {
    LayerError {
        entry: "<layer>".into(),
        error,
    }
}

/// Unpacks the layer blob `blob` (a tar, gzip or zstd compressed or not)
/// into the empty directory `dest`. Returns the layer's diff_id: the digest
/// of the uncompressed tar stream, all of it.
pub fn unpack_layer(
    blob: impl Read,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<Digest, LayerError> {
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| whole_layer(io_err("open layer directory")(e)))?;
    unpack_into(blob, root, opts)
}

/// [`unpack_layer`], also recording the tar stream beside `dest`
/// ([`tar_split`]) so that the store can give the layer back as it came.
/// The record is removed if the unpacking fails.
pub(crate) fn unpack_layer_recorded(
    blob: impl Read,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<Digest, LayerError> {
    let record = tar_split::staged_path(dest);
    let unpacked = (|| {
        let recorder = Recorder::create(&record)
            .map_err(|e| whole_layer(stream_err("create the tar-split record")(e)))?;
        let root = rustix::fs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| whole_layer(io_err("open layer directory")(e)))?;
        let diff_id = unpack_with(blob, root, opts, Some(recorder.clone()))?;
        Recorder::finish(recorder)
            .map_err(|e| whole_layer(stream_err("write the tar-split record")(e)))?;
        Ok(diff_id)
    })();
    if unpacked.is_err() {
        let _ = std::fs::remove_file(&record);
    }
    unpacked
}

/// [`unpack_layer`] into the directory `root` is open on, which need not
/// be empty: an entry replaces a non-directory of its name, and merges
/// into a directory (`docker cp`'s extraction, with
/// [`UnpackOptions::live_tree`]).
pub fn unpack_into(
    blob: impl Read,
    root: OwnedFd,
    opts: UnpackOptions,
) -> Result<Digest, LayerError> {
    unpack_with(blob, root, opts, None)
}

fn unpack_with(
    blob: impl Read,
    root: OwnedFd,
    opts: UnpackOptions,
    split: Option<tar_split::Shared>,
) -> Result<Digest, LayerError> {
    if opts.live_tree {
        check_data_filesystem(&root, &[]).map_err(whole_layer)?;
    }
    let mut unpacker = Unpacker {
        root,
        opts,
        is_root: rustix::process::geteuid().is_root(),
        dirs: Vec::new(),
        split: split.clone(),
    };
    let diff_id = walk(blob, opts.limits, split, |entry| unpacker.entry(entry))?;
    unpacker.finish_dirs()?;
    Ok(diff_id)
}

/// Reads the layer blob `blob` as [`unpack_layer`] does, checking every
/// entry against `limits`, but writes nothing: for an import that defers
/// unpacking, so that it refuses what the unpacking would. Returns the
/// layer's diff_id.
pub fn check_layer(blob: impl Read, limits: Limits) -> Result<Digest, LayerError> {
    // Each entry's data is read here rather than skipped by the tar reader,
    // so that a limit it trips names the entry, as when unpacking.
    walk(blob, limits, None, |entry| {
        io::copy(entry, &mut io::sink())
            .map(drop)
            .map_err(stream_err("read entry"))
    })
}

/// The uncompressed layer, hashed for its diff_id.
type Stream<'a> = HashingReader<Recording<limits::LimitedReader<Box<dyn Read + 'a>>>>;

/// Hands each entry of the layer to `each`, once it is checked against
/// `limits`; returns the diff_id.
fn walk<'a>(
    blob: impl Read + 'a,
    limits: Limits,
    recorder: Option<tar_split::Shared>,
    mut each: impl FnMut(&mut tar::Entry<'_, Stream<'a>>) -> Res<()>,
) -> Result<Digest, LayerError> {
    let reader =
        limits::open_layer(blob, limits).map_err(|e| whole_layer(stream_err("decompress")(e)))?;
    let mut tally = Tally::new(limits);
    // Recorded below the hashing: what the diff_id covers is recorded,
    // the bytes after the end blocks included.
    let mut archive = tar::Archive::new(HashingReader::new(Recording {
        inner: reader,
        recorder,
    }));
    let read = |e| whole_layer(stream_err("read tar")(e));
    for entry in archive.entries().map_err(read)? {
        let mut entry = entry.map_err(read)?;
        check_entry(&mut tally, &mut entry)
            .and_then(|()| each(&mut entry))
            .map_err(|error| LayerError {
                entry: entry_name(&entry),
                error,
            })?;
    }
    let (diff_id, _) = archive.into_inner().finish().map_err(read)?;
    Ok(diff_id)
}

/// Refuses an entry over the limits, before anything of it is created.
fn check_entry<R: Read>(tally: &mut Tally, entry: &mut tar::Entry<'_, R>) -> Res<()> {
    // (a GNU sparse file's size is its logical size, holes included)
    tally.entry(entry.size())?;
    let kind = entry.header().entry_type();
    if kind.is_pax_global_extensions() {
        return Ok(());
    }
    if let Some(pax) = entry.pax_extensions().map_err(stream_err("read header"))? {
        for ext in pax {
            let key = ext.map_err(stream_err("read header"))?.key_bytes();
            if key.starts_with(b"GNU.sparse.") {
                return Err(UnpackError::PaxSparse(
                    String::from_utf8_lossy(key).into_owned(),
                ));
            }
        }
    }
    tally
        .limits()
        .check_path(&components(&entry.path_bytes())?)?;
    if (kind.is_symlink() || kind.is_hard_link())
        && let Some(target) = entry.link_name_bytes()
    {
        tally.limits().check_link(&target)?;
    }
    Ok(())
}

/// An entry's name as components under the layer root: empty and `.`
/// components (and so a leading `/`) dropped, `..` refused.
fn components(name: &[u8]) -> Res<Vec<OsString>> {
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(UnpackError::ParentDir),
            c => out.push(OsStr::from_bytes(c).to_owned()),
        }
    }
    Ok(out)
}

fn display(components: &[OsString]) -> String {
    components
        .iter()
        .map(|c| c.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// What tar records about an entry besides its content.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Res<Self> {
        let header = entry.header();
        let bad_header = |source| UnpackError::Io {
            op: "read header",
            source,
        };
        let mut uid = header.uid().map_err(bad_header)?;
        let mut gid = header.gid().map_err(bad_header)?;
        let mut mtime = Timespec {
            tv_sec: header.mtime().map_err(bad_header)? as i64,
            tv_nsec: 0,
        };
        let mode = header.mode().map_err(bad_header)? & 0o7777;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(bad_header)? {
            for ext in pax {
                let ext = ext.map_err(bad_header)?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                // (`path` and `linkpath` are applied by the tar crate)
                match key {
                    b"uid" => uid = parse_id("uid", value)?,
                    b"gid" => gid = parse_id("gid", value)?,
                    b"mtime" => mtime = parse_time(value)?,
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            xattrs.push((OsStr::from_bytes(name).to_owned(), value.to_vec()));
                        }
                    }
                }
            }
        }
        let uid = u32::try_from(uid).map_err(|_| UnpackError::BadPax {
            what: "uid",
            value: uid.to_string(),
        })?;
        let gid = u32::try_from(gid).map_err(|_| UnpackError::BadPax {
            what: "gid",
            value: gid.to_string(),
        })?;
        for (name, _) in &xattrs {
            let n = name.as_bytes();
            if n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay.") {
                return Err(UnpackError::OverlayXattr(
                    name.to_string_lossy().into_owned(),
                ));
            }
        }
        Ok(Self {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    fn timestamps(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

fn parse_id(what: &'static str, value: &[u8]) -> Res<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| UnpackError::BadPax {
            what,
            value: String::from_utf8_lossy(value).into_owned(),
        })
}

fn parse_time(value: &[u8]) -> Res<Timespec> {
    let bad = || UnpackError::BadPax {
        what: "mtime",
        value: String::from_utf8_lossy(value).into_owned(),
    };
    let s = std::str::from_utf8(value).map_err(|_| bad())?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().map_err(|_| bad())?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        let n: i64 = digits.parse().map_err(|_| bad())?;
        n * 10i64.pow(9 - digits.len() as u32)
    };
    Ok(Timespec { tv_sec, tv_nsec })
}

struct Unpacker {
    root: OwnedFd,
    opts: UnpackOptions,
    /// Ownership can only be given away by root; as another user the files
    /// stay the caller's (such a store serves tests and tools, not
    /// containers).
    is_root: bool,
    /// Directories whose mode and times are set once everything inside
    /// them is written (writing a child changes a directory's mtime).
    dirs: Vec<(Vec<OsString>, Meta)>,
    /// Records the stream for [`tar_split`] (a store's layer).
    split: Option<tar_split::Shared>,
}

impl Unpacker {
    /// The owner the options give an entry, in the host's ids.
    fn own(&self, meta: &mut Meta) -> Res<()> {
        if self.opts.live_tree {
            // security.capability, trusted.*, system.posix_acl_*: set by
            // the host's root, each could grant more than the container
            // could give itself.
            if let Some((name, _)) = meta
                .xattrs
                .iter()
                .find(|(n, _)| !n.as_bytes().starts_with(b"user."))
            {
                return Err(UnpackError::XattrRefused(
                    name.to_string_lossy().into_owned(),
                ));
            }
        }
        if let Owner::Fixed { uid, gid } = self.opts.owner {
            (meta.uid, meta.gid) = (uid, gid);
        }
        if let Some(shift) = self.opts.id_shift {
            let outside = |what, base, id| {
                IdShift::outside(base, shift.size, id).ok_or(UnpackError::IdOutsideNamespace {
                    what,
                    id,
                    size: shift.size,
                })
            };
            meta.uid = outside("uid", shift.uid, meta.uid)?;
            meta.gid = outside("gid", shift.gid, meta.gid)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Res<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let path = components(&entry.path_bytes())?;
        let mut meta = Meta::of(entry)?;
        self.own(&mut meta)?;
        let Some((name, parents)) = path.split_last() else {
            // `./`: the layer's root directory itself.
            return match kind {
                tar::EntryType::Directory => {
                    self.dirs.push((Vec::new(), meta));
                    Ok(())
                }
                _ => Err(UnpackError::ReplacesDirectory(".".into())),
            };
        };
        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX) {
            if self.opts.live_tree {
                return Err(UnpackError::Whiteout(display(&path)));
            }
            if name.as_bytes() != OPAQUE_MARKER {
                let mut hidden_path = parents.to_vec();
                hidden_path.push(OsStr::from_bytes(hidden).to_owned());
                self.changes(&hidden_path, true);
            }
            let parent = self.dir(parents, true)?;
            return self.whiteout(&parent, name.as_bytes(), hidden);
        }
        let parent = self.dir(parents, true)?;
        // A directory merges into one already there; anything else
        // replaces what was there.
        self.changes(&path, kind != tar::EntryType::Directory);
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err("mkdir")(e)),
                }
                // an existing symlink is refused here, never followed
                let dir = self.dir(&path, false)?;
                self.set_xattrs(&dir, &meta)?;
                self.dirs.push((path, meta));
                Ok(())
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                clear(&parent, name, &path)?;
                let fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_err("create file"))?;
                let mut file = File::from(fd);
                // the stream's limits fail the copy (see `stream_err`)
                if kind == tar::EntryType::GNUSparse {
                    // (its stream holds the data without the holes: the
                    // record keeps it as it came)
                    copy_sparse(entry, &mut file).map_err(stream_err("write file"))?;
                } else {
                    if let Some(split) = &self.split {
                        split.borrow_mut().content(&joined(&path), entry.size());
                    }
                    io::copy(entry, &mut file).map_err(stream_err("write file"))?;
                }
                self.apply(file.as_fd(), &meta)
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                clear(&parent, name, &path)?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, name)
                    .map_err(io_err("symlink"))?;
                self.chown_nofollow(&parent, name, &meta, "chown symlink")?;
                rustix::fs::utimensat(&parent, name, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err("set symlink times"))
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                self.hardlink(&parent, name, &path, &target)
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if file_type != FileType::Fifo && !self.opts.allow_devices {
                    return Err(UnpackError::DeviceNotAllowed);
                }
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                clear(&parent, name, &path)?;
                rustix::fs::mknodat(
                    &parent,
                    name,
                    file_type,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| match e {
                    Errno::PERM => UnpackError::NeedsRoot("creating a device node"),
                    e => io_err("mknod")(e),
                })?;
                // Just created by us, and not a symlink: O_PATH is enough to
                // chown it; the mode goes through the *at call.
                self.chown_nofollow(&parent, name, &meta, "chown node")?;
                rustix::fs::chmodat(
                    &parent,
                    name,
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )
                .map_err(io_err("chmod node"))?;
                rustix::fs::utimensat(&parent, name, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err("set node times"))
            }
            other => Err(UnpackError::UnsupportedType(other)),
        }
    }

    /// Tells the recorder that an entry changes `path` (and what is below
    /// it when `below`).
    fn changes(&self, path: &[OsString], below: bool) {
        if let Some(split) = &self.split {
            split.borrow_mut().changes(&joined(path), below);
        }
    }

    /// `.wh..wh..opq` marks its directory opaque; `.wh.NAME` hides NAME of
    /// the layers below with a 0/0 character device; other `.wh..wh.` names
    /// are aufs bookkeeping and are dropped.
    fn whiteout(&self, parent: &OwnedFd, name: &[u8], hidden: &[u8]) -> Res<()> {
        if name == OPAQUE_MARKER {
            return rustix::fs::fsetxattr(parent, OPAQUE_XATTR, b"y", XattrFlags::empty()).map_err(
                |e| match e {
                    Errno::PERM => UnpackError::NeedsRoot("setting trusted.overlay.opaque"),
                    e => io_err("set opaque xattr")(e),
                },
            );
        }
        if hidden.starts_with(WHITEOUT_PREFIX) {
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(UnpackError::ParentDir);
        }
        let hidden = OsStr::from_bytes(hidden);
        clear(parent, hidden, &[hidden.to_owned()])?;
        rustix::fs::mknodat(
            parent,
            hidden,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| match e {
            Errno::PERM => {
                UnpackError::NeedsRoot("creating an overlayfs whiteout (a 0/0 character device)")
            }
            e => io_err("mknod whiteout")(e),
        })
    }

    fn hardlink(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        path: &[OsString],
        target: &[u8],
    ) -> Res<()> {
        let shown = String::from_utf8_lossy(target).into_owned();
        let target = components(target).map_err(|_| UnpackError::HardlinkOutside(shown.clone()))?;
        let Some((target_name, target_parents)) = target.split_last() else {
            return Err(UnpackError::HardlinkToDirectory(shown));
        };
        if target == path {
            return Err(UnpackError::HardlinkMissing(shown));
        }
        let target_parent = self.dir(target_parents, false).map_err(|e| match e {
            UnpackError::Io { .. } => UnpackError::HardlinkMissing(shown.clone()),
            e => e,
        })?;
        match rustix::fs::statat(&target_parent, target_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(UnpackError::HardlinkToDirectory(shown));
            }
            Ok(_) => {}
            Err(_) => return Err(UnpackError::HardlinkMissing(shown)),
        }
        clear(parent, name, path)?;
        // flags 0: a symlink target is linked itself, never followed
        rustix::fs::linkat(&target_parent, target_name, parent, name, AtFlags::empty())
            .map_err(io_err("link"))
    }

    /// Opens the directory `path` under the root without following any
    /// symlink, creating missing components (mode 0755) when `create`.
    fn dir(&self, path: &[OsString], create: bool) -> Res<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut dir = rustix::fs::openat(&self.root, ".", flags, Mode::empty())
            .map_err(io_err("open layer root"))?;
        for (i, c) in path.iter().enumerate() {
            let mut opened = rustix::fs::openat(&dir, c, flags, Mode::empty());
            if matches!(opened, Err(Errno::NOENT)) && create {
                match rustix::fs::mkdirat(&dir, c, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err("mkdir parent")(e)),
                }
                opened = rustix::fs::openat(&dir, c, flags, Mode::empty());
            }
            dir = match opened {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let shown = display(&path[..=i]);
                    let st = rustix::fs::statat(&dir, c, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(io_err("stat"))?;
                    return Err(
                        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                            UnpackError::ThroughSymlink(shown)
                        } else {
                            UnpackError::NotADirectory(shown)
                        },
                    );
                }
                Err(e) => return Err(io_err("open directory")(e)),
            };
            if self.opts.live_tree {
                check_data_filesystem(&dir, &path[..=i])?;
            }
        }
        Ok(dir)
    }

    /// Owner, mode, xattrs and times, in that order (chown clears setuid
    /// bits and file capabilities).
    /// Owner of a link or node created at `parent/name` (never followed);
    /// only root can give files away.
    fn chown_nofollow(
        &self,
        parent: impl AsFd,
        name: &OsStr,
        meta: &Meta,
        op: &'static str,
    ) -> Res<()> {
        if !self.is_root {
            return Ok(());
        }
        rustix::fs::chownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io_err(op))
    }

    fn apply(&self, fd: BorrowedFd<'_>, meta: &Meta) -> Res<()> {
        if self.is_root {
            rustix::fs::fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(io_err("chown"))?;
        }
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(io_err("chmod"))?;
        self.set_xattrs(fd, meta)?;
        rustix::fs::futimens(fd, &meta.timestamps()).map_err(io_err("set times"))
    }

    fn set_xattrs(&self, fd: impl AsFd, meta: &Meta) -> Res<()> {
        for (name, value) in &meta.xattrs {
            rustix::fs::fsetxattr(&fd, name.as_os_str(), value, XattrFlags::empty())
                .map_err(io_err("set xattr"))?;
        }
        Ok(())
    }

    /// Directories get their mode, owner and times last, deepest first.
    fn finish_dirs(&mut self) -> Result<(), LayerError> {
        for (path, meta) in self.dirs.iter().rev() {
            let fail = |error| LayerError {
                entry: display(path),
                error,
            };
            let dir = self.dir(path, false).map_err(fail)?;
            self.apply(dir.as_fd(), meta).map_err(fail)?;
        }
        Ok(())
    }
}

/// Refuses a directory of a live tree that is not on a filesystem of files.
fn check_data_filesystem(dir: &OwnedFd, path: &[OsString]) -> Res<()> {
    match is_data_filesystem(dir) {
        Ok(true) => Ok(()),
        Ok(false) => Err(UnpackError::NotDataFilesystem(format!(
            "/{}",
            display(path)
        ))),
        Err(source) => Err(UnpackError::Io {
            op: "statfs",
            source,
        }),
    }
}

/// Makes room for a non-directory entry: removes whatever non-directory is
/// at `name` (a symlink is removed, not followed); a directory is refused.
fn clear(parent: &OwnedFd, name: &OsStr, path: &[OsString]) -> Res<()> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err("stat")(e)),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            Err(UnpackError::ReplacesDirectory(display(path)))
        }
        Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err("unlink")),
    }
}

/// A path's components as the record names it, relative to the layer.
fn joined(path: &[OsString]) -> Vec<u8> {
    path.iter()
        .map(|c| c.as_bytes())
        .collect::<Vec<_>>()
        .join(&b'/')
}

/// Copies a sparse entry keeping its holes: the tar reader hands the
/// holes over as zeros, and a block of nothing but zeros is skipped
/// (sought past) instead of written, so a sparse file of many GiB that
/// holds a few KiB costs a few KiB of the disk, as `tar -S` extracts it.
fn copy_sparse(from: &mut impl Read, to: &mut File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom, Write};
    const BLOCK: usize = 4096;
    let mut buf = vec![0u8; 16 * BLOCK];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for block in buf[..n].chunks(BLOCK) {
            if block.iter().all(|b| *b == 0) {
                to.seek(SeekFrom::Current(block.len() as i64))?;
            } else {
                to.write_all(block)?;
            }
        }
        total += n as u64;
    }
    // A hole at the end: the size says where the file ends.
    to.set_len(total)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_strip_root_and_refuse_dotdot() {
        let c = components(b"/usr//./bin/sh").unwrap();
        assert_eq!(display(&c), "usr/bin/sh");
        assert!(components(b"./").unwrap().is_empty());
        assert!(matches!(
            components(b"../../etc/x"),
            Err(UnpackError::ParentDir)
        ));
        assert!(matches!(components(b"a/../b"), Err(UnpackError::ParentDir)));
    }

    #[test]
    fn pax_times() {
        let t = parse_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        assert!(parse_time(b"x").is_err());
    }
}
