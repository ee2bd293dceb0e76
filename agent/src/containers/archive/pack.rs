//! A tar of a path in a container, written as it is walked: each
//! directory is entered through a descriptor of its parent with
//! `O_NOFOLLOW | O_DIRECTORY`, so a symlink the container swaps in is
//! archived as a link, never followed out; a file is found as `O_PATH`
//! and opened only once it is known to be a regular file (a device node,
//! FIFO or tty swapped in is never opened by the host's root), and
//! exactly the size the header announced is written even if the file
//! changes meanwhile. Directories on a kernel interface (the container's
//! /proc, /sys…) are archived empty, as a mount point, and files on one
//! left out. The walk is bounded: depth, entries per directory, bytes.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use husk_api::containers::UserNamespace;
use husk_store::unpack::{IdShift, is_data_filesystem};
use rustix::fs::{Dir, FileType, Mode, OFlags, Stat};

use super::resolve::{self, Found};

/// Deeper than any real tree; a bound on the descriptors held open.
const MAX_DEPTH: usize = 128;

/// Entries of one directory: a bound on the names held at once.
const MAX_ENTRIES_PER_DIR: usize = 1_000_000;

/// What one copy out may hold (a sparse file of exabytes would stream
/// zeros for ever): the most a layer may hold unpacked.
const MAX_ARCHIVE_BYTES: u64 = 64 << 30;

/// The id a file shows outside a container's range of ids.
const OVERFLOW_ID: u64 = 65534;

struct Packer<'a, W: Write> {
    tar: tar::Builder<W>,
    userns: Option<&'a UserNamespace>,
    /// The files' bytes so far.
    bytes: u64,
}

/// Writes `found` (and under it, for a directory) as a tar to `out`.
pub fn pack(found: &Found, userns: Option<&UserNamespace>, out: impl Write) -> io::Result<()> {
    let mut packer = Packer {
        tar: tar::Builder::new(out),
        userns,
        bytes: 0,
    };
    let name = Path::new(&found.name);
    match found.file_type {
        FileType::Directory => {
            let dir = resolve::reopen(found, OFlags::RDONLY | OFlags::DIRECTORY)?;
            let st = rustix::fs::fstat(&dir)?;
            packer.directory(dir, &st, name, 0)?;
        }
        FileType::RegularFile => {
            let found = resolve::reopen(found, OFlags::PATH)?;
            if !packer.file(&found, name)? {
                return Err(io::Error::other(format!(
                    "{} changed while it was archived",
                    name.display()
                )));
            }
        }
        _ => {
            let dir = resolve::reopen_parent(found)?;
            packer.other(&dir, &found.name, name)?;
        }
    }
    packer.tar.into_inner()?.flush()
}

impl<W: Write> Packer<'_, W> {
    fn header(&self, st: &Stat, kind: tar::EntryType) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(st.st_mode & 0o7777);
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        let (uid, gid) = match self.userns {
            Some(ns) => (
                IdShift::inside(ns.host_uid, ns.size, st.st_uid).map_or(OVERFLOW_ID, u64::from),
                IdShift::inside(ns.host_gid, ns.size, st.st_gid).map_or(OVERFLOW_ID, u64::from),
            ),
            None => (u64::from(st.st_uid), u64::from(st.st_gid)),
        };
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_size(0);
        header
    }

    fn directory(&mut self, dir: OwnedFd, st: &Stat, name: &Path, depth: usize) -> io::Result<()> {
        let mut header = self.header(st, tar::EntryType::Directory);
        self.tar.append_data(&mut header, name, io::empty())?;
        if !is_data_filesystem(&dir)? {
            return Ok(());
        }
        if depth >= MAX_DEPTH {
            return Err(io::Error::other(format!(
                "{} is more than {MAX_DEPTH} directories deep",
                name.display()
            )));
        }
        let mut names: Vec<OsString> = Vec::new();
        for entry in Dir::read_from(&dir)? {
            let entry = entry?;
            let child = OsStr::from_bytes(entry.file_name().to_bytes());
            if child != "." && child != ".." {
                names.push(child.to_owned());
            }
            if names.len() > MAX_ENTRIES_PER_DIR {
                return Err(io::Error::other(format!(
                    "{} holds more than {MAX_ENTRIES_PER_DIR} entries",
                    name.display()
                )));
            }
        }
        // A stable order: the same tree gives the same archive.
        names.sort();
        for child in names {
            self.entry(&dir, &child, &name.join(&child), depth + 1)?;
        }
        Ok(())
    }

    /// One entry of `dir`; one that went away meanwhile is left out.
    fn entry(&mut self, dir: &OwnedFd, child: &OsStr, name: &Path, depth: usize) -> io::Result<()> {
        let st = match resolve::stat_at(dir, child) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let open = |flags| {
            rustix::fs::openat(
                dir,
                child,
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => match open(OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(sub) => {
                    let st = rustix::fs::fstat(&sub)?;
                    self.directory(sub, &st, name, depth)
                }
                // swapped for something else: archived as what it is now
                Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                    self.other(dir, child, name)
                }
                Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(e.into()),
            },
            FileType::RegularFile => match open(OFlags::PATH) {
                Ok(found) => {
                    if !self.file(&found, name)? {
                        // swapped for something else meanwhile
                        self.other(dir, child, name)?;
                    }
                    Ok(())
                }
                Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(e.into()),
            },
            _ => self.other(dir, child, name),
        }
    }

    /// A regular file found as `O_PATH` (never opened before its type is
    /// known: a device node swapped in is not opened by the host's
    /// root); false when it is not one (any more). One on a kernel
    /// interface is left out.
    fn file(&mut self, found: &OwnedFd, name: &Path) -> io::Result<bool> {
        if !is_data_filesystem(found)? {
            return Ok(true);
        }
        let Some(file) = husk_spec::reopen_if_regular(found)? else {
            return Ok(false);
        };
        let st = rustix::fs::fstat(&file)?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > MAX_ARCHIVE_BYTES {
            return Err(io::Error::other(format!(
                "the archive would be over {MAX_ARCHIVE_BYTES} bytes"
            )));
        }
        let mut header = self.header(&st, tar::EntryType::Regular);
        header.set_size(size);
        // Exactly `size` bytes: cut if it grew, zeros if it shrank.
        let data = file.take(size).chain(io::repeat(0)).take(size);
        self.tar.append_data(&mut header, name, data)?;
        Ok(true)
    }

    /// A symlink, FIFO, device or socket at `dir/child` (sockets are left
    /// out, as tar does).
    fn other(&mut self, dir: &OwnedFd, child: &OsStr, name: &Path) -> io::Result<()> {
        let st = match resolve::stat_at(dir, child) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir.as_fd(), child, Vec::new())?;
                let mut header = self.header(&st, tar::EntryType::Symlink);
                let target = OsStr::from_bytes(target.as_bytes());
                return self.tar.append_link(&mut header, name, target);
            }
            FileType::Fifo => tar::EntryType::Fifo,
            FileType::CharacterDevice => tar::EntryType::Char,
            FileType::BlockDevice => tar::EntryType::Block,
            FileType::Directory | FileType::RegularFile => {
                // swapped back meanwhile: left out rather than chased
                return Ok(());
            }
            _ => return Ok(()),
        };
        let mut header = self.header(&st, kind);
        let dev = st.st_rdev;
        header.set_device_major(rustix::fs::major(dev))?;
        header.set_device_minor(rustix::fs::minor(dev))?;
        self.tar.append_data(&mut header, name, io::empty())
    }
}
