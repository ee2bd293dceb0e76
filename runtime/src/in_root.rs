//! Paths inside the container's root, resolved by the kernel: `openat2`
//! with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` from a descriptor of
//! the root, so `..`, an absolute symlink, or a symlink swapped in while
//! the container is set up can never lead outside it (runc's
//! CVE-2019-19921 and CVE-2021-30465 class). What is found is held as an
//! `O_PATH` descriptor and mounted on through `/proc/self/fd/N`, so the
//! mount lands on exactly what was checked.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::error::{Result, RuntimeError};

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// What a mount destination must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory, created when missing; symlinks on the way are
    /// followed inside the root.
    Dir,
    /// A file (the target of a file bind), created empty when missing.
    File,
    /// A directory that is one itself, not a symlink to one: where a
    /// filesystem is mounted (proc, sysfs, cgroup, tmpfs, devpts, …), so
    /// an image cannot move it (runc and crun refuse the same).
    RealDir,
}

/// The container's root, open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// A place inside the root, held open.
#[derive(Debug)]
pub struct Target {
    fd: OwnedFd,
}

impl Target {
    /// The path the kernel resolves to exactly this file: what mount(2)
    /// and friends are given. It borrows the target: the descriptor must
    /// outlive every use of the path (a closed one's number is reused).
    pub fn proc_path(&self) -> FdPath<'_> {
        FdPath {
            path: PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd())),
            _held: PhantomData,
        }
    }

    /// `name` inside this directory, by its held descriptor.
    pub fn child(&self, name: &str) -> FdPath<'_> {
        let mut path = self.proc_path();
        path.path.push(name);
        path
    }
}

/// A `/proc/self/fd/N…` path, valid while its [`Target`] is held.
#[derive(Debug)]
pub struct FdPath<'a> {
    path: PathBuf,
    _held: PhantomData<&'a Target>,
}

impl std::ops::Deref for FdPath<'_> {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for FdPath<'_> {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

fn os(step: String) -> impl FnOnce(Errno) -> RuntimeError {
    move |e| RuntimeError::os(step, std::io::Error::from(e))
}

impl Root {
    pub fn open(path: &Path) -> Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(os(format!("opening the rootfs {}", path.display())))?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The rootfs as the host names it (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_at(&self, inside: &Path, flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
        // The root itself: "." (openat2 refuses an empty path).
        let inside = if inside.as_os_str().is_empty() {
            Path::new(".")
        } else {
            inside
        };
        loop {
            match rustix::fs::openat2(
                self.fd.as_fd(),
                inside,
                OFlags::PATH | OFlags::CLOEXEC | flags,
                Mode::empty(),
                RESOLVE,
            ) {
                // The kernel asks to retry when a rename raced the walk.
                Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                other => return other,
            }
        }
    }

    /// `path` (absolute, as the spec names it) inside the root, made as
    /// `kind` when missing, and held open.
    pub fn target(&self, path: &Path, kind: Kind) -> Result<Target> {
        self.target_within(path, kind, 0)
    }

    /// `links`: dangling symlinks followed so far (their targets are
    /// made inside the root, as runc's securejoin does), bounded as the
    /// kernel bounds a walk.
    fn target_within(&self, path: &Path, kind: Kind, links: u32) -> Result<Target> {
        let shown = path.display().to_string();
        let parts: Vec<&OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name),
                Component::ParentDir => Some(OsStr::new("..")),
                _ => None,
            })
            .collect();
        let mut prefix = PathBuf::new();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let parent = prefix.clone();
            prefix.push(part);
            match self.open_at(&prefix, OFlags::empty()) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(os(format!("resolving {shown} in the rootfs"))(e)),
            }
            let dir = self
                .open_at(&parent, OFlags::DIRECTORY)
                .map_err(os(format!("resolving {shown} in the rootfs")))?;
            let made = if last && kind == Kind::File {
                rustix::fs::openat(
                    dir.as_fd(),
                    *part,
                    OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            } else {
                rustix::fs::mkdirat(dir.as_fd(), *part, Mode::from_raw_mode(0o755))
            };
            match made {
                Ok(()) => {}
                // A dangling symlink (or made meanwhile by someone else):
                // make what it points to, inside the root.
                Err(Errno::EXIST) => {
                    if matches!(self.open_at(&prefix, OFlags::empty()), Err(Errno::NOENT)) {
                        if links >= 40 {
                            return Err(os(format!("resolving {shown} in the rootfs"))(
                                Errno::LOOP,
                            ));
                        }
                        let link = rustix::fs::readlinkat(dir.as_fd(), *part, Vec::new())
                            .map_err(os(format!("resolving {shown} in the rootfs")))?;
                        let link = Path::new(OsStr::from_bytes(link.as_bytes()));
                        let pointed = Path::new("/").join(&parent).join(link);
                        let kind = if last { kind } else { Kind::Dir };
                        if kind != Kind::RealDir {
                            self.target_within(&pointed, kind, links + 1)?;
                        }
                    }
                }
                Err(e) => return Err(os(format!("creating {shown} in the rootfs"))(e)),
            }
        }
        let flags = match kind {
            Kind::RealDir => OFlags::NOFOLLOW,
            Kind::Dir | Kind::File => OFlags::empty(),
        };
        let fd = self
            .open_at(&prefix, flags)
            .map_err(os(format!("resolving {shown} in the rootfs")))?;
        let stat = rustix::fs::fstat(&fd).map_err(os(format!("stat of {shown}")))?;
        let found = FileType::from_raw_mode(stat.st_mode);
        let wrong = |what: &str| {
            Err(RuntimeError::Config(format!(
                "mount destination {shown} is {what} in the image: refused"
            )))
        };
        match (kind, found) {
            (Kind::RealDir, FileType::Symlink) => wrong("a symlink"),
            (Kind::Dir | Kind::RealDir, t) if t != FileType::Directory => wrong("not a directory"),
            (Kind::File, FileType::Directory) => wrong("a directory"),
            _ => Ok(Target { fd }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn real(target: &Target) -> PathBuf {
        fs::read_link(target.proc_path()).unwrap()
    }

    #[test]
    fn symlinks_and_dotdot_stay_inside_and_missing_parts_are_made() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("a/b")).unwrap();
        symlink("/etc", rootfs.join("a/escape")).unwrap();
        symlink("../../../../..", rootfs.join("a/b/up")).unwrap();
        let root = Root::open(&rootfs).unwrap();
        let t = root.target(Path::new("/a/escape/x"), Kind::Dir).unwrap();
        assert_eq!(real(&t), rootfs.join("etc/x"));
        let t = root.target(Path::new("/a/b/up/y"), Kind::Dir).unwrap();
        assert_eq!(real(&t), rootfs.join("y"));
        let t = root.target(Path::new("/../../z"), Kind::File).unwrap();
        assert_eq!(real(&t), rootfs.join("z"));
        assert!(rootfs.join("z").is_file());
        assert!(!dir.path().join("etc").exists() && !dir.path().join("y").exists());
    }

    #[test]
    fn proc_sysfs_and_cgroup_need_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("sys")).unwrap();
        symlink("sys", rootfs.join("proc")).unwrap();
        fs::write(rootfs.join("file"), "").unwrap();
        let root = Root::open(&rootfs).unwrap();
        let err = root.target(Path::new("/proc"), Kind::RealDir).unwrap_err();
        assert!(err.to_string().contains("/proc is a symlink"), "{err}");
        // Followed (inside the root) where a symlink is no threat.
        let t = root.target(Path::new("/proc"), Kind::Dir).unwrap();
        assert_eq!(real(&t), rootfs.join("sys"));
        let err = root.target(Path::new("/file"), Kind::Dir).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert_eq!(
            real(&root.target(Path::new("/"), Kind::Dir).unwrap()),
            rootfs
        );
    }
}
