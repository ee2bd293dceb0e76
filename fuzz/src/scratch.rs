//! Directories for the targets that write (a layer unpacked, a store
//! filled): on a tmpfs when there is one, since a run writes and removes
//! thousands of them a second; fresh for each input and emptied after it,
//! whatever the input left there.

use std::ffi::{CString, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// One input's directory, emptied and removed on drop.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("husk-fuzz-")
            .tempdir_in(base())
            .expect("creating a scratch directory");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // `remove_dir_all` cannot empty a directory a layer left at mode
        // 0 (when not root), nor reach one deeper than PATH_MAX: walk by
        // descriptors, making each directory ours first.
        if let Ok(dir) = open_dir(rustix::fs::CWD, self.0.path().as_os_str()) {
            empty(&dir);
        }
    }
}

fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let writable = tempfile::tempdir_in(shm).is_ok();
        if writable {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        }
    })
}

fn open_dir(at: impl std::os::fd::AsFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Removes everything in `dir`, never following a symlink.
fn empty(dir: &OwnedFd) {
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return;
    };
    let names: Vec<CString> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let name = OsStr::from_bytes(name.as_bytes());
        let is_dir = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if is_dir {
            let _ = rustix::fs::chmodat(dir, name, Mode::RWXU, AtFlags::empty());
            if let Ok(child) = open_dir(dir, name) {
                empty(&child);
            }
            let _ = rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR);
        } else {
            let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
        }
    }
}
