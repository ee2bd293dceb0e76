//! The API filesystems and tmpfs mounts every Husk machine has, the
//! cgroup2 controllers for containers, and making "/" read-only.
//!
//! Anything the kernel (or an earlier stage) already mounted is fine:
//! a target that is already a mount point, or EBUSY, counts as done.

use std::ffi::CStr;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use rustix::mount::{MountFlags, mount, mount_remount};
use thiserror::Error;

/// One mount: what to mount where, how.
#[derive(Debug, Clone, Copy)]
pub struct MountSpec {
    pub target: &'static str,
    pub fs_type: &'static str,
    pub flags: MountFlags,
    pub data: Option<&'static CStr>,
}

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);
const NOSUID_NODEV: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV);

/// What init needs before anything else: /proc (cmdline, mountinfo) and
/// /dev (kmsg, console).
pub const EARLY: [MountSpec; 2] = [
    MountSpec {
        target: "/proc",
        fs_type: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        target: "/dev",
        fs_type: "devtmpfs",
        flags: MountFlags::NOSUID,
        data: Some(c"mode=0755"),
    },
];

/// The rest, mounted once "/" is the final root.
pub const LATE: [MountSpec; 6] = [
    MountSpec {
        target: "/sys",
        fs_type: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        target: "/dev/pts",
        fs_type: "devpts",
        flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
        data: Some(c"mode=0620,ptmxmode=0666"),
    },
    MountSpec {
        target: "/dev/shm",
        fs_type: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some(c"mode=1777"),
    },
    MountSpec {
        target: "/run",
        fs_type: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some(c"mode=0755"),
    },
    MountSpec {
        target: "/tmp",
        fs_type: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some(c"mode=1777"),
    },
    MountSpec {
        target: "/sys/fs/cgroup",
        fs_type: "cgroup2",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    // /var/lib/husk is not here: crate::data_partition mounts the data
    // partition (or a tmpfs) there once the disk drivers are loaded.
];

#[derive(Debug, Error)]
#[error("mount {fs_type} on {target}: {source}")]
pub struct MountError {
    pub target: &'static str,
    pub fs_type: &'static str,
    pub source: io::Error,
}

/// Whether `path` is the root of a mount (its device differs from its
/// parent's). "/" always is.
pub fn is_mount_point(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return true;
    };
    match (rustix::fs::lstat(path), rustix::fs::stat(parent)) {
        (Ok(p), Ok(q)) => p.st_dev != q.st_dev,
        _ => false,
    }
}

/// Mounts one spec, creating the target directory when it is missing.
pub fn mount_one(spec: &MountSpec) -> Result<(), MountError> {
    let target = Path::new(spec.target);
    if is_mount_point(target) {
        return Ok(());
    }
    // Fails on a read-only parent; the mount below then reports why.
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(target);
    match mount(spec.fs_type, target, spec.fs_type, spec.flags, spec.data) {
        Ok(()) | Err(rustix::io::Errno::BUSY) => Ok(()),
        Err(e) => Err(MountError {
            target: spec.target,
            fs_type: spec.fs_type,
            source: e.into(),
        }),
    }
}

/// Mounts every spec in order; failures are returned, not fatal.
pub fn mount_all(specs: &[MountSpec]) -> Vec<MountError> {
    specs.iter().filter_map(|s| mount_one(s).err()).collect()
}

/// The controllers containers need, enabled for the root's children.
const CONTROLLERS: [&str; 4] = ["cpu", "memory", "io", "pids"];

/// What to write into `cgroup.subtree_control`, given the contents of
/// `cgroup.controllers`: `+cpu +memory +io +pids`, minus the missing.
pub fn subtree_control_line(available: &str) -> String {
    let have: Vec<&str> = available.split_ascii_whitespace().collect();
    CONTROLLERS
        .iter()
        .filter(|c| have.contains(c))
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Enables the container controllers in the root cgroup.
pub fn enable_cgroup_controllers() {
    let root = "/sys/fs/cgroup";
    let available = match std::fs::read_to_string(format!("{root}/cgroup.controllers")) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cgroup: cannot read {root}/cgroup.controllers: {e}");
            return;
        }
    };
    let line = subtree_control_line(&available);
    if line.is_empty() {
        return;
    }
    let control = format!("{root}/cgroup.subtree_control");
    if crate::sys::write_file(&control, &line).is_ok() {
        log::debug!("cgroup: enabled {line}");
        return;
    }
    // One controller that cannot be enabled fails the whole write; try
    // them one by one so the others still work.
    for c in line.split(' ') {
        if let Err(e) = crate::sys::write_file(&control, c) {
            log::warn!("cgroup: cannot enable {c}: {e}");
        }
    }
}

/// Makes "/" read-only: the superblock if possible, else the mount.
pub fn remount_root_read_only() -> io::Result<()> {
    match mount_remount("/", MountFlags::RDONLY, "") {
        Ok(()) => Ok(()),
        Err(first) => mount_remount("/", MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(|_| io::Error::from(first)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_present_are_enabled_in_order() {
        assert_eq!(
            subtree_control_line("cpuset cpu io memory hugetlb pids rdma misc\n"),
            "+cpu +memory +io +pids"
        );
        assert_eq!(subtree_control_line("memory pids"), "+memory +pids");
        assert_eq!(subtree_control_line(""), "");
    }

    #[test]
    fn root_and_proc_are_mount_points() {
        assert!(is_mount_point(Path::new("/")));
        assert!(is_mount_point(Path::new("/proc")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(&dir.path().join("missing")));
    }

    #[test]
    fn specs_keep_suid_and_devices_off_writable_mounts() {
        for spec in EARLY.iter().chain(LATE.iter()) {
            assert!(spec.flags.contains(MountFlags::NOSUID), "{}", spec.target);
            if spec.fs_type == "tmpfs" {
                assert!(spec.flags.contains(MountFlags::NODEV), "{}", spec.target);
            }
        }
    }
}
