//! The seam between the rootfs logic and the kernel, as youki's
//! `Syscall` trait is: every mount, pivot and device node the runtime
//! makes goes through [`Syscall`], so the order, targets and flags of
//! what it mounts can be unit-tested without root (`Recorder`), and
//! [`Linux`] is the real thing: rustix's safe calls.
//!
//! Ordinary file operations (mkdir, symlink, chmod of a node just made)
//! stay direct: a test can do them in a temporary directory.

use std::ffi::CStr;
use std::io;
use std::path::Path;

use rustix::fs::FileType;
use rustix::mount::{MountFlags, MountPropagationFlags};

use super::sys;

/// What the rootfs setup asks of the kernel.
pub trait Syscall {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: Option<&CStr>,
    ) -> io::Result<()>;
    fn bind(&self, source: &Path, target: &Path, recursive: bool) -> io::Result<()>;
    fn remount(&self, target: &Path, flags: MountFlags, data: &CStr) -> io::Result<()>;
    fn propagation(&self, target: &Path, flags: MountPropagationFlags) -> io::Result<()>;
    fn unmount_detach(&self, target: &Path) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    /// `--no-pivot`: moves the mount at `.` (the new root, the cwd) onto
    /// `/` and chroots into it.
    fn move_root(&self) -> io::Result<()>;
    /// `mount_setattr(AT_RECURSIVE)` on the mount at `target`.
    fn setattr_recursive(&self, target: &Path, set: u64, clear: u64) -> io::Result<()>;
    /// The flags `path` is mounted with (a bind remount keeps the locked
    /// ones).
    fn mount_flags_of(&self, path: &Path) -> io::Result<MountFlags>;
    fn mknod(&self, path: &Path, kind: FileType, mode: u32, dev: u64) -> io::Result<()>;
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    /// The filesystem type (`statfs`'s magic number) `path` is on.
    fn fs_magic(&self, path: &Path) -> io::Result<i64>;
}

/// The kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Linux;

impl Syscall for Linux {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: Option<&CStr>,
    ) -> io::Result<()> {
        Ok(rustix::mount::mount(source, target, fstype, flags, data)?)
    }
    fn bind(&self, source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
        if recursive {
            rustix::mount::mount_bind_recursive(source, target)?;
        } else {
            rustix::mount::mount_bind(source, target)?;
        }
        Ok(())
    }
    fn remount(&self, target: &Path, flags: MountFlags, data: &CStr) -> io::Result<()> {
        Ok(rustix::mount::mount_remount(target, flags, data)?)
    }
    fn propagation(&self, target: &Path, flags: MountPropagationFlags) -> io::Result<()> {
        Ok(rustix::mount::mount_change(target, flags)?)
    }
    fn unmount_detach(&self, target: &Path) -> io::Result<()> {
        Ok(rustix::mount::unmount(
            target,
            rustix::mount::UnmountFlags::DETACH,
        )?)
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        Ok(rustix::process::pivot_root(new_root, put_old)?)
    }
    fn move_root(&self) -> io::Result<()> {
        rustix::mount::mount_move(".", "/")?;
        Ok(rustix::process::chroot(".")?)
    }
    fn setattr_recursive(&self, target: &Path, set: u64, clear: u64) -> io::Result<()> {
        sys::mount_setattr_recursive(target, set, clear)
    }
    fn mount_flags_of(&self, path: &Path) -> io::Result<MountFlags> {
        use rustix::fs::StatVfsMountFlags as V;
        let vfs = rustix::fs::statvfs(path)?;
        let pairs = [
            (V::RDONLY, MountFlags::RDONLY),
            (V::NOSUID, MountFlags::NOSUID),
            (V::NODEV, MountFlags::NODEV),
            (V::NOEXEC, MountFlags::NOEXEC),
            (V::NOATIME, MountFlags::NOATIME),
            (V::NODIRATIME, MountFlags::NODIRATIME),
            (V::RELATIME, MountFlags::RELATIME),
        ];
        Ok(pairs
            .iter()
            .filter(|(v, _)| vfs.f_flag.contains(*v))
            .fold(MountFlags::empty(), |acc, (_, m)| acc | *m))
    }
    fn mknod(&self, path: &Path, kind: FileType, mode: u32, dev: u64) -> io::Result<()> {
        sys::mknod(path, kind, mode, dev)
    }
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }
    fn fs_magic(&self, path: &Path) -> io::Result<i64> {
        Ok(rustix::fs::statfs(path)?.f_type as i64)
    }
}

#[cfg(test)]
pub use self::recorder::{Call, Recorder};

#[cfg(test)]
mod recorder {
    use std::cell::RefCell;
    use std::path::PathBuf;

    use super::*;

    /// One call, as the kernel would have received it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Mount {
            source: String,
            target: PathBuf,
            fstype: String,
            flags: MountFlags,
            data: String,
        },
        Bind {
            source: PathBuf,
            target: PathBuf,
            recursive: bool,
        },
        Remount {
            target: PathBuf,
            flags: MountFlags,
        },
        Propagation {
            target: PathBuf,
            flags: MountPropagationFlags,
        },
        UnmountDetach(PathBuf),
        PivotRoot(PathBuf, PathBuf),
        MoveRoot,
        SetattrRecursive {
            target: PathBuf,
            set: u64,
            clear: u64,
        },
        Mknod {
            path: PathBuf,
            kind: FileType,
            mode: u32,
            dev: u64,
        },
        Chown(PathBuf, u32, u32),
    }

    /// Records every call and answers as a kernel that accepts them all,
    /// except the fstypes told to fail with EPERM (as sysfs does in a user
    /// namespace without its own network namespace).
    #[derive(Debug)]
    pub struct Recorder {
        pub calls: RefCell<Vec<Call>>,
        pub refuse_fstypes: Vec<&'static str>,
        /// What `mount_flags_of` reports for every path.
        pub mounted_with: MountFlags,
        /// What `fs_magic` reports, by path; others: 0.
        pub magic: Vec<(PathBuf, i64)>,
    }

    impl Default for Recorder {
        fn default() -> Self {
            Self {
                calls: RefCell::default(),
                refuse_fstypes: Vec::new(),
                mounted_with: MountFlags::empty(),
                magic: Vec::new(),
            }
        }
    }

    /// What the kernel would resolve `path` to: the runtime hands it
    /// `/proc/self/fd/N[/name]` for what it found inside the root.
    fn real(path: &Path) -> PathBuf {
        let Ok(rest) = path.strip_prefix("/proc/self/fd") else {
            return path.to_owned();
        };
        let mut parts = rest.components();
        let Some(fd) = parts.next() else {
            return path.to_owned();
        };
        match std::fs::read_link(Path::new("/proc/self/fd").join(fd)) {
            Ok(found) => found.join(parts.as_path()),
            Err(_) => path.to_owned(),
        }
    }

    impl Recorder {
        pub fn calls(&self) -> Vec<Call> {
            self.calls.borrow().clone()
        }

        fn record(&self, call: Call) -> io::Result<()> {
            self.calls.borrow_mut().push(call);
            Ok(())
        }
    }

    impl Syscall for Recorder {
        fn mount(
            &self,
            source: &str,
            target: &Path,
            fstype: &str,
            flags: MountFlags,
            data: Option<&CStr>,
        ) -> io::Result<()> {
            if self.refuse_fstypes.contains(&fstype) {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            self.record(Call::Mount {
                source: source.to_owned(),
                target: real(target),
                fstype: fstype.to_owned(),
                flags,
                data: data
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            })
        }
        fn bind(&self, source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
            self.record(Call::Bind {
                source: source.to_owned(),
                target: real(target),
                recursive,
            })
        }
        fn remount(&self, target: &Path, flags: MountFlags, _data: &CStr) -> io::Result<()> {
            self.record(Call::Remount {
                target: real(target),
                flags,
            })
        }
        fn propagation(&self, target: &Path, flags: MountPropagationFlags) -> io::Result<()> {
            self.record(Call::Propagation {
                target: real(target),
                flags,
            })
        }
        fn unmount_detach(&self, target: &Path) -> io::Result<()> {
            self.record(Call::UnmountDetach(real(target)))
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
            self.record(Call::PivotRoot(new_root.to_owned(), put_old.to_owned()))
        }
        fn move_root(&self) -> io::Result<()> {
            self.record(Call::MoveRoot)
        }
        fn setattr_recursive(&self, target: &Path, set: u64, clear: u64) -> io::Result<()> {
            self.record(Call::SetattrRecursive {
                target: real(target),
                set,
                clear,
            })
        }
        fn mount_flags_of(&self, _path: &Path) -> io::Result<MountFlags> {
            Ok(self.mounted_with)
        }
        fn mknod(&self, path: &Path, kind: FileType, mode: u32, dev: u64) -> io::Result<()> {
            // A plain file stands for the node, so chmod and chown after
            // it find something.
            std::fs::write(path, b"")?;
            self.record(Call::Mknod {
                path: real(path),
                kind,
                mode,
                dev,
            })
        }
        fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
            self.record(Call::Chown(real(path), uid, gid))
        }
        fn fs_magic(&self, path: &Path) -> io::Result<i64> {
            let path = real(path);
            Ok(self
                .magic
                .iter()
                .find(|(p, _)| *p == path)
                .map_or(0, |(_, m)| *m))
        }
    }
}
