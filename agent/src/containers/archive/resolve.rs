//! Paths inside a container's root, resolved by the kernel: `openat2`
//! with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` from a descriptor of
//! `/proc/PID/root`, so `..`, absolute symlinks and symlinks the
//! container swaps in meanwhile all stay inside it (the class of
//! Docker's CVE-2018-15664, a `docker cp` raced with a symlink swap).
//! The last component is never followed: a symlink is itself.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use serde::Serialize;

use super::super::error::{ManagerError, Result};

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// What a path is, as Docker's `X-Docker-Container-Path-Stat` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode`: the permission bits and Go's type bits.
    pub mode: u32,
    pub mtime: String,
    /// A symlink's target as an absolute path in the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// A path found in the root.
pub struct Found {
    /// The path, absolute and clean.
    pub path: PathBuf,
    /// Its last component: the name of the archive's top entry.
    pub name: OsString,
    pub stat: PathStat,
    pub file_type: FileType,
    /// It is on a filesystem of files, not a kernel interface.
    pub on_data_filesystem: bool,
    /// The container's root, for opening it again.
    pub root: OwnedFd,
}

/// `/proc/PID/root`: the container's root directory as its init sees it,
/// once PID is known to be in the container's cgroup `cgroup` (as
/// `/proc/PID/cgroup` names it, `/husk/NAME`). The manager's pid may be
/// stale (the init exited and was reaped, its exit not yet recorded) and
/// the number given to another process, the host's or another
/// container's: its root is never opened. The check and the open go
/// through one descriptor of `/proc/PID`, which stays that process's.
pub fn open_root(pid: i32, cgroup: &str) -> io::Result<OwnedFd> {
    let process = rustix::fs::open(
        format!("/proc/{pid}"),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let file = rustix::fs::openat(
        &process,
        "cgroup",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut text = String::new();
    std::fs::File::from(file)
        .take(64 * 1024)
        .read_to_string(&mut text)?;
    if !super::super::usage::in_cgroup(&text, cgroup) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("process {pid} is no longer the container's"),
        ));
    }
    Ok(rustix::fs::openat(
        &process,
        "root",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `path` as Docker takes it: absolute in the container (a relative one
/// is from its root), `.` and `..` resolved lexically, as the CLI does.
fn clean(path: &str) -> Result<PathBuf> {
    if path.is_empty() || path.as_bytes().contains(&0) {
        return Err(ManagerError::Invalid(format!(
            "`{path}` is not a path in the container"
        )));
    }
    let mut clean = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => clean.push(c),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(clean)
}

/// Opens `path` in `root`; `flags` say whether its last component is
/// followed (`O_NOFOLLOW`).
fn open_in(root: &OwnedFd, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    loop {
        match rustix::fs::openat2(
            root,
            relative,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        ) {
            // The kernel asks for a retry when a rename raced the lookup.
            Err(Errno::AGAIN | Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Opens what `found` is again, to read it (not followed).
pub fn reopen(found: &Found, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(open_in(&found.root, &found.path, flags | OFlags::NOFOLLOW)?)
}

/// The directory `found` is in.
pub fn reopen_parent(found: &Found) -> io::Result<OwnedFd> {
    let parent = found.path.parent().unwrap_or(Path::new("/"));
    Ok(open_in(
        &found.root,
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY,
    )?)
}

fn not_found(path: &Path) -> ManagerError {
    ManagerError::NoSuchPath {
        container: String::new(),
        path: path.display().to_string(),
    }
}

/// Finds `path` in the container.
pub fn find(root: &OwnedFd, path: &str) -> Result<Found> {
    let path = clean(path)?;
    let fd = match open_in(root, &path, OFlags::PATH | OFlags::NOFOLLOW) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Err(not_found(&path)),
        Err(e) => {
            return Err(ManagerError::io(
                format!("opening {}", path.display()),
                e.into(),
            ));
        }
    };
    let st = rustix::fs::fstat(&fd)
        .map_err(|e| ManagerError::io(format!("stat {}", path.display()), e.into()))?;
    let file_type = FileType::from_raw_mode(st.st_mode);
    let on_data_filesystem = husk_store::unpack::is_data_filesystem(&fd)
        .map_err(|e| ManagerError::io(format!("statfs {}", path.display()), e))?;
    let name = path
        .file_name()
        .map_or_else(|| OsString::from("/"), ToOwned::to_owned);
    let link_target = if file_type == FileType::Symlink {
        let target = rustix::fs::readlinkat(&fd, "", Vec::new())
            .map_err(|e| ManagerError::io(format!("readlink {}", path.display()), e.into()))?;
        let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
        let parent = path.parent().unwrap_or(Path::new("/"));
        clean(&parent.join(target).to_string_lossy())?
            .display()
            .to_string()
    } else {
        String::new()
    };
    let stat = PathStat {
        name: name.to_string_lossy().into_owned(),
        size: st.st_size,
        mode: go_file_mode(&st),
        mtime: husk_common::civil::rfc3339(mtime(&st)),
        link_target,
    };
    Ok(Found {
        path,
        name,
        stat,
        file_type,
        on_data_filesystem,
        root: root.try_clone().map_err(|e| ManagerError::io("dup", e))?,
    })
}

/// The directory `path` (symlinks on the way, and a last one, followed
/// inside the root), open for extracting into: Docker's extraction point
/// must be an existing directory.
pub fn directory(root: &OwnedFd, path: &str) -> Result<OwnedFd> {
    let clean = clean(path)?;
    // (no O_NOFOLLOW: a last symlink is followed, inside the root)
    let opened = open_in(root, &clean, OFlags::RDONLY | OFlags::DIRECTORY);
    match opened {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) => Err(not_found(&clean)),
        Err(Errno::NOTDIR) => Err(ManagerError::Invalid(format!(
            "extraction point {} is not a directory",
            clean.display()
        ))),
        Err(e) => Err(ManagerError::io(
            format!("opening {}", clean.display()),
            e.into(),
        )),
    }
}

/// An entry of an open directory, not followed.
pub fn stat_at(dir: impl AsFd, name: &std::ffi::OsStr) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

pub fn mtime(st: &Stat) -> std::time::SystemTime {
    let secs = u64::try_from(st.st_mtime).unwrap_or(0);
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// Go's `os.FileMode` of a stat, which the Docker CLI decodes.
pub fn go_file_mode(st: &Stat) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let raw = st.st_mode;
    let mut mode = raw & 0o777;
    for (bit, go) in [(0o4000, SETUID), (0o2000, SETGID), (0o1000, STICKY)] {
        if raw & bit != 0 {
            mode |= go;
        }
    }
    mode | match FileType::from_raw_mode(raw) {
        FileType::Directory => DIR,
        FileType::Symlink => SYMLINK,
        FileType::Fifo => NAMED_PIPE,
        FileType::Socket => SOCKET,
        FileType::BlockDevice => DEVICE,
        FileType::CharacterDevice => DEVICE | CHAR_DEVICE,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_the_cli_does() {
        assert_eq!(
            clean("/etc/../etc/./hosts").unwrap(),
            Path::new("/etc/hosts")
        );
        assert_eq!(clean("../../..").unwrap(), Path::new("/"));
        assert_eq!(clean("tmp/x/").unwrap(), Path::new("/tmp/x"));
        assert!(clean("").is_err());
        assert!(clean("/a\0b").is_err());
    }

    #[test]
    fn a_hostile_symlink_stays_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/inside"), "in").unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../etc", dir.path().join("climb")).unwrap();
        let root =
            rustix::fs::open(dir.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        // Through either link, /etc is the root's own, never the host's.
        for path in ["/escape/etc/inside", "/climb/inside"] {
            let found = find(&root, path).unwrap();
            assert_eq!(found.stat.size, 2, "{path}");
        }
        assert!(matches!(
            find(&root, "/escape/etc/passwd"),
            Err(ManagerError::NoSuchPath { .. })
        ));
        let link = find(&root, "/climb").unwrap();
        assert_eq!(link.file_type, FileType::Symlink);
        assert_eq!(link.stat.link_target, "/etc");
        assert_eq!(link.stat.mode & (1 << 27), 1 << 27);
        let dir_fd = directory(&root, "/escape/etc").unwrap();
        let st = rustix::fs::fstat(&dir_fd).unwrap();
        let own = std::fs::metadata(dir.path().join("etc")).unwrap();
        assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&own));
        assert!(matches!(
            directory(&root, "/etc/inside"),
            Err(ManagerError::Invalid(_))
        ));
    }

    #[test]
    fn go_modes_carry_the_type_bits() {
        let dir = tempfile::tempdir().unwrap();
        let st = rustix::fs::stat(dir.path()).unwrap();
        assert_eq!(go_file_mode(&st) >> 31, 1);
        std::fs::write(dir.path().join("f"), "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("f"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        let st = rustix::fs::stat(dir.path().join("f")).unwrap();
        assert_eq!(go_file_mode(&st), 0o755 | (1 << 23));
    }
}
