//! Leaving the initramfs. The kernel unpacks it into rootfs, which can
//! never be unmounted or pivot_root'ed away from, so container runtimes
//! could not pivot_root out of it. Like switch_root and LinuxKit, init
//! copies the tree into a tmpfs, frees the rootfs copy, moves the tmpfs
//! onto "/" and chroots into it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, FileType, Mode};
use rustix::mount::{MountFlags, UnmountFlags, mount, mount_move, unmount};
use thiserror::Error;

use crate::mountinfo::MountEntry;

/// Where the new root is assembled before it moves onto "/".
pub const NEW_ROOT: &str = "/.husk-newroot";
/// Directories whose contents are not copied: API filesystems, mounted
/// (or moved) separately. Their empty directories are.
const MOUNT_POINTS_ONLY: [&str; 3] = ["/proc", "/sys", "/dev"];
/// Mounts carried over into the new root when already mounted.
const MOVED_MOUNTS: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];
/// statfs magic of ramfs, what rootfs is without CONFIG_TMPFS.
const RAMFS_MAGIC: i64 = 0x8584_58f6;

#[derive(Debug, Error)]
pub enum SwitchError {
    #[error("prepare {NEW_ROOT}: {0}")]
    Prepare(io::Error),
    #[error("copy into {NEW_ROOT}: {0} entries failed")]
    Copy(usize),
    #[error("move {path} into the new root: {source}")]
    MoveMount { path: String, source: io::Error },
    #[error("switch to the new root: {0}")]
    Switch(io::Error),
}

/// Whether "/" is the initramfs (rootfs), per the mount table.
pub fn is_rootfs(mounts: &[MountEntry]) -> bool {
    // The last "/" entry is the one on top.
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == "/")
        .is_some_and(|m| m.fs_type == "rootfs")
}

/// Whether "/" is the initramfs; falls back to statfs when there is no
/// mount table to read.
pub fn root_is_initramfs() -> bool {
    let mounts = crate::mountinfo::read();
    if !mounts.is_empty() {
        return is_rootfs(&mounts);
    }
    rustix::fs::statfs("/").is_ok_and(|s| s.f_type == RAMFS_MAGIC)
}

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    pub dirs: usize,
    pub files: usize,
    pub symlinks: usize,
    pub nodes: usize,
    pub errors: usize,
}

/// Copies the tree under `src` into the existing directory `dst`,
/// preserving modes, ownership, symlinks and device nodes. Stays on
/// `src`'s filesystem: other mounts and the `skip` paths are not copied,
/// and `mount_points_only` paths become empty directories.
pub fn copy_tree(src: &Path, dst: &Path, skip: &[&Path], mount_points_only: &[&Path]) -> CopyStats {
    let mut stats = CopyStats::default();
    match fs::symlink_metadata(src) {
        Ok(meta) => copy_dir_contents(src, dst, meta.dev(), skip, mount_points_only, &mut stats),
        Err(e) => {
            log::warn!("switch_root: {}: {e}", src.display());
            stats.errors += 1;
        }
    }
    stats
}

fn copy_dir_contents(
    src: &Path,
    dst: &Path,
    dev: u64,
    skip: &[&Path],
    mount_points_only: &[&Path],
    stats: &mut CopyStats,
) {
    let entries = match fs::read_dir(src) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("switch_root: read {}: {e}", src.display());
            stats.errors += 1;
            return;
        }
    };
    for entry in entries.flatten() {
        let from = entry.path();
        let to = dst.join(entry.file_name());
        if skip.contains(&from.as_path()) {
            continue;
        }
        let meta = match fs::symlink_metadata(&from) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("switch_root: stat {}: {e}", from.display());
                stats.errors += 1;
                continue;
            }
        };
        let empty_dir =
            meta.is_dir() && (meta.dev() != dev || mount_points_only.contains(&from.as_path()));
        if let Err(e) = copy_entry(
            &from,
            &to,
            &meta,
            empty_dir,
            dev,
            skip,
            mount_points_only,
            stats,
        ) {
            log::warn!("switch_root: copy {}: {e}", from.display());
            stats.errors += 1;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn copy_entry(
    from: &Path,
    to: &Path,
    meta: &fs::Metadata,
    empty_dir: bool,
    dev: u64,
    skip: &[&Path],
    mount_points_only: &[&Path],
    stats: &mut CopyStats,
) -> io::Result<()> {
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    if ft.is_dir() {
        fs::DirBuilder::new().mode(0o700).create(to)?;
        if !empty_dir {
            copy_dir_contents(from, to, dev, skip, mount_points_only, stats);
        }
        stats.dirs += 1;
    } else if ft.is_symlink() {
        let target = fs::read_link(from)?;
        std::os::unix::fs::symlink(target, to)?;
        std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
        stats.symlinks += 1;
        return Ok(());
    } else if ft.is_file() {
        fs::copy(from, to)?;
        stats.files += 1;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            FileType::CharacterDevice
        } else if ft.is_block_device() {
            FileType::BlockDevice
        } else {
            FileType::Fifo
        };
        rustix::fs::mknodat(CWD, to, kind, Mode::from_raw_mode(mode), meta.rdev())?;
        stats.nodes += 1;
    } else {
        // Sockets belong to a process that is not running any more.
        return Ok(());
    }
    // chown clears set-uid/gid bits, so the mode goes on after it.
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Deletes everything under `dir` that lives on `dev`, except `skip`;
/// never descends into other mounts. Returns how many entries failed.
pub fn remove_tree_on_device(dir: &Path, dev: u64, skip: &[&Path]) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 1;
    };
    let mut errors = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if skip.contains(&path.as_path()) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            errors += 1;
            continue;
        };
        if meta.dev() != dev {
            continue;
        }
        let res = if meta.is_dir() {
            errors += remove_tree_on_device(&path, dev, skip);
            // A mount point below keeps its directory busy; that is fine.
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        if res.is_err() {
            errors += 1;
        }
    }
    errors
}

/// Moves "/" from rootfs to a tmpfs copy of it and chroots there.
pub fn leave_initramfs() -> Result<CopyStats, SwitchError> {
    let new_root = Path::new(NEW_ROOT);
    let root_dev = fs::symlink_metadata("/")
        .map_err(SwitchError::Prepare)?
        .dev();
    match fs::DirBuilder::new().mode(0o755).create(new_root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(SwitchError::Prepare(e)),
    }
    mount(
        "tmpfs",
        new_root,
        "tmpfs",
        MountFlags::empty(),
        c"mode=0755",
    )
    .map_err(|e| SwitchError::Prepare(e.into()))?;

    let mount_points_only: Vec<&Path> = MOUNT_POINTS_ONLY.iter().map(Path::new).collect();
    let stats = copy_tree(Path::new("/"), new_root, &[new_root], &mount_points_only);
    if stats.errors > 0 {
        // Boot on from rootfs rather than from an incomplete copy.
        let _ = unmount(new_root, UnmountFlags::DETACH);
        let _ = fs::remove_dir(new_root);
        return Err(SwitchError::Copy(stats.errors));
    }

    for path in MOVED_MOUNTS {
        if !crate::mounts::is_mount_point(Path::new(path)) {
            continue;
        }
        let to: PathBuf = new_root.join(path.trim_start_matches('/'));
        let _ = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&to);
        mount_move(path, &to).map_err(|e| SwitchError::MoveMount {
            path: path.to_owned(),
            source: e.into(),
        })?;
    }

    // Free the memory rootfs holds; the copy is complete.
    let leftovers = remove_tree_on_device(Path::new("/"), root_dev, &[new_root]);
    if leftovers > 0 {
        log::debug!("switch_root: {leftovers} entries left in rootfs");
    }

    let switch = || -> rustix::io::Result<()> {
        rustix::process::chdir(new_root)?;
        mount_move(".", "/")?;
        rustix::process::chroot(".")?;
        rustix::process::chdir("/")
    };
    switch().map_err(|e| SwitchError::Switch(e.into()))?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse;

    #[test]
    fn rootfs_is_recognised_from_mountinfo() {
        let initramfs = parse("1 1 0:2 / / rw - rootfs rootfs rw\n");
        assert!(is_rootfs(&initramfs));
        let switched =
            parse("1 1 0:2 / / rw - rootfs rootfs rw\n30 1 0:30 / / ro - tmpfs tmpfs ro\n");
        assert!(!is_rootfs(&switched));
        let disk = parse("25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n");
        assert!(!is_rootfs(&disk));
    }

    #[test]
    fn tree_copy_preserves_files_dirs_symlinks_and_modes() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("usr/bin")).unwrap();
        fs::write(s.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(s.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(s.join("secret"), b"x").unwrap();
        fs::set_permissions(s.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::create_dir(s.join("private")).unwrap();
        fs::set_permissions(s.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir(s.join("sticky")).unwrap();
        fs::set_permissions(s.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::symlink("usr/bin/tool", s.join("link")).unwrap();
        std::os::unix::fs::symlink("/nowhere", s.join("dangling")).unwrap();
        fs::create_dir(s.join("proc")).unwrap();
        fs::write(s.join("proc/not-copied"), b"").unwrap();
        fs::create_dir(s.join("skipped")).unwrap();
        let fifo = s.join("fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o640), 0).unwrap();

        let skipped = s.join("skipped");
        let proc_dir = s.join("proc");
        let stats = copy_tree(s, dst.path(), &[&skipped], &[&proc_dir]);
        assert_eq!(stats.errors, 0, "{stats:?}");
        assert_eq!(stats.files, 2);
        assert_eq!(stats.symlinks, 2);
        assert_eq!(stats.nodes, 1);

        let d = dst.path();
        assert_eq!(fs::read(d.join("usr/bin/tool")).unwrap(), b"#!/bin/sh\n");
        let mode = |p: &str| fs::symlink_metadata(d.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("usr/bin/tool"), 0o755);
        assert_eq!(mode("secret"), 0o600);
        assert_eq!(mode("private"), 0o700);
        assert_eq!(mode("sticky"), 0o1777);
        assert_eq!(mode("fifo"), 0o640);
        assert!(
            fs::symlink_metadata(d.join("fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert_eq!(
            fs::read_link(d.join("link")).unwrap(),
            Path::new("usr/bin/tool")
        );
        assert_eq!(
            fs::read_link(d.join("dangling")).unwrap(),
            Path::new("/nowhere")
        );
        assert!(d.join("proc").is_dir());
        assert!(!d.join("proc/not-copied").exists());
        assert!(!d.join("skipped").exists());
        let uid = fs::metadata(s.join("secret")).unwrap().uid();
        assert_eq!(fs::metadata(d.join("secret")).unwrap().uid(), uid);
    }

    #[test]
    fn removal_frees_everything_but_the_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("a/b/c")).unwrap();
        fs::write(d.join("a/b/c/f"), b"x").unwrap();
        std::os::unix::fs::symlink("a", d.join("l")).unwrap();
        fs::create_dir(d.join("keep")).unwrap();
        fs::write(d.join("keep/f"), b"x").unwrap();
        let dev = fs::metadata(d).unwrap().dev();
        let keep = d.join("keep");
        assert_eq!(remove_tree_on_device(d, dev, &[&keep]), 0);
        let left: Vec<_> = fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["keep"]);
        assert!(d.join("keep/f").exists());
    }
}
