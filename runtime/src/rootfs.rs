//! The container's root filesystem, prepared by the init inside its new
//! mount namespace: propagation, the rootfs bound onto itself, the spec's
//! mounts, /dev, pivot_root; then (inside) masked and read-only paths.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};
use rustix::mount::{MountFlags, MountPropagationFlags};

use super::error::{Result, RuntimeError, Step};
use super::in_root::{Kind, Root};
use super::syscall::Syscall;

/// What the init knows when it prepares the rootfs.
pub struct RootfsContext<'a> {
    /// The kernel, or a test's recorder.
    pub sys: &'a dyn Syscall,
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// Devices are bound from the host instead of mknod'ed.
    pub in_user_ns: bool,
    /// A cgroup mount is a fresh cgroup2 (own cgroup namespace) rather
    /// than a bind of the container's cgroup directory.
    pub new_cgroup_ns: bool,
    pub cgroup_dir: Option<&'a Path>,
}

/// Mount options parsed the way runc and crun read them.
#[derive(Debug)]
struct Options {
    flags: MountFlags,
    clear: MountFlags,
    propagation: MountPropagationFlags,
    bind: bool,
    recursive: bool,
    /// `mount_setattr` bits for this mount and every one below it (the
    /// spec's `r…` options).
    rec_set: u64,
    rec_clear: u64,
    data: Vec<String>,
}

fn parse_options(options: &[String]) -> Options {
    let mut o = Options {
        flags: MountFlags::empty(),
        clear: MountFlags::empty(),
        propagation: MountPropagationFlags::empty(),
        bind: false,
        recursive: false,
        rec_set: 0,
        rec_clear: 0,
        data: Vec::new(),
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MountFlags::RDONLY, MountFlags::empty()),
            "rw" => (MountFlags::empty(), MountFlags::RDONLY),
            "nosuid" => (MountFlags::NOSUID, MountFlags::empty()),
            "suid" => (MountFlags::empty(), MountFlags::NOSUID),
            "nodev" => (MountFlags::NODEV, MountFlags::empty()),
            "dev" => (MountFlags::empty(), MountFlags::NODEV),
            "noexec" => (MountFlags::NOEXEC, MountFlags::empty()),
            "exec" => (MountFlags::empty(), MountFlags::NOEXEC),
            "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty()),
            "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS),
            "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty()),
            "mand" | "nomand" => continue, // mandatory locking is gone from Linux
            "noatime" => (MountFlags::NOATIME, MountFlags::empty()),
            "atime" => (MountFlags::empty(), MountFlags::NOATIME),
            "nodiratime" => (MountFlags::NODIRATIME, MountFlags::empty()),
            "diratime" => (MountFlags::empty(), MountFlags::NODIRATIME),
            "relatime" => (MountFlags::RELATIME, MountFlags::empty()),
            "norelatime" => (MountFlags::empty(), MountFlags::RELATIME),
            "strictatime" => (MountFlags::STRICTATIME, MountFlags::empty()),
            "nostrictatime" => (MountFlags::empty(), MountFlags::STRICTATIME),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "lazytime" => (MountFlags::LAZYTIME, MountFlags::empty()),
            "nolazytime" => (MountFlags::empty(), MountFlags::LAZYTIME),
            "silent" => (MountFlags::SILENT, MountFlags::empty()),
            "loud" => (MountFlags::empty(), MountFlags::SILENT),
            "nosymfollow" => (MountFlags::NOSYMFOLLOW, MountFlags::empty()),
            "symfollow" => (MountFlags::empty(), MountFlags::NOSYMFOLLOW),
            "iversion" => (
                MountFlags::from_bits_retain(libc::MS_I_VERSION as _),
                MountFlags::empty(),
            ),
            "noiversion" => (
                MountFlags::empty(),
                MountFlags::from_bits_retain(libc::MS_I_VERSION as _),
            ),
            "tmpcopyup" | "defaults" => continue,
            recursive if recursive_attr(recursive).is_some() => {
                let (set, clear) = recursive_attr(recursive).unwrap_or_default();
                // Clear, then set: the atime modes clear a field and set
                // a value inside it.
                o.rec_set = (o.rec_set & !clear) | set;
                o.rec_clear = (o.rec_clear & !set) | clear;
                continue;
            }
            other => {
                if let Some(p) = propagation_flags(other) {
                    o.propagation |= p;
                } else {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags = (o.flags | set) - clear;
        o.clear = (o.clear | clear) - set;
    }
    o
}

/// The spec's recursive options as `mount_setattr` (set, clear) bits.
fn recursive_attr(option: &str) -> Option<(u64, u64)> {
    use super::sys::mount_attr as A;
    Some(match option {
        "rro" => (A::RDONLY, 0),
        "rrw" => (0, A::RDONLY),
        "rnosuid" => (A::NOSUID, 0),
        "rsuid" => (0, A::NOSUID),
        "rnodev" => (A::NODEV, 0),
        "rdev" => (0, A::NODEV),
        "rnoexec" => (A::NOEXEC, 0),
        "rexec" => (0, A::NOEXEC),
        "rnodiratime" => (A::NODIRATIME, 0),
        "rdiratime" => (0, A::NODIRATIME),
        "rrelatime" => (A::RELATIME, A::ATIME),
        "rnoatime" => (A::NOATIME, A::ATIME),
        "rstrictatime" => (A::STRICTATIME, A::ATIME),
        // What follows the others' defaults: relatime.
        "ratime" | "rnorelatime" | "rnostrictatime" => (A::RELATIME, A::ATIME),
        "rnosymfollow" => (A::NOSYMFOLLOW, 0),
        "rsymfollow" => (0, A::NOSYMFOLLOW),
        _ => return None,
    })
}

/// True when `option` is a mount flag or propagation this runtime
/// applies itself, not data handed to the filesystem.
pub fn knows_option(option: &str) -> bool {
    let o = parse_options(&[option.to_string()]);
    o.data.is_empty()
}

fn propagation_flags(name: &str) -> Option<MountPropagationFlags> {
    use MountPropagationFlags as P;
    Some(match name {
        "private" => P::PRIVATE,
        "rprivate" => P::PRIVATE | P::REC,
        "slave" => P::DOWNSTREAM,
        "rslave" => P::DOWNSTREAM | P::REC,
        "shared" => P::SHARED,
        "rshared" => P::SHARED | P::REC,
        "unbindable" => P::UNBINDABLE,
        "runbindable" => P::UNBINDABLE | P::REC,
        _ => return None,
    })
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Step 1 (before pivot_root): everything that needs the host's paths.
pub fn prepare(ctx: &RootfsContext) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    let propagation = linux
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    // Nothing the container mounts may reach the host: slave (the default)
    // or private, everywhere. A shared propagation is set after pivot_root.
    let root_flags = match propagation.as_str() {
        "private" | "rprivate" => MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        "" | "slave" | "rslave" | "shared" | "rshared" | "unbindable" | "runbindable" => {
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC
        }
        other => {
            return Err(RuntimeError::Config(format!(
                "unknown rootfsPropagation {other:?}"
            )));
        }
    };
    ctx.sys
        .propagation(Path::new("/"), root_flags)
        .step(|| "making / rslave")?;
    // pivot_root needs the new root to be a mount point.
    ctx.sys
        .bind(ctx.rootfs, ctx.rootfs, true)
        .step(|| format!("binding the rootfs {} onto itself", ctx.rootfs.display()))?;
    // Opened on the bind just made (the mount pivot_root will use): every
    // destination below is found from it by the kernel.
    let root = Root::open(ctx.rootfs)?;
    for m in ctx.spec.mounts().iter().flatten() {
        mount_one(ctx, &root, m)?;
    }
    create_devices(ctx, &root)?;
    dev_symlinks(&root)?;
    Ok(())
}

/// What a mount of `typ` must land on: a filesystem of its own goes on a
/// real directory (a symlink there is the image's attempt to move it, and
/// crun and runc refuse it too); a bind follows links, inside the root.
fn destination_kind(_typ: &str) -> Kind {
    Kind::RealDir
}

fn mount_one(ctx: &RootfsContext, root: &Root, m: &Mount) -> Result<()> {
    let typ = m.typ().clone().unwrap_or_else(|| "none".into());
    let options = parse_options(m.options().as_deref().unwrap_or_default());
    let shown = m.destination().display();
    let bind = options.bind || typ == "bind";
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, root, m.destination(), &options);
    }
    // After the mount, flags and propagation apply to the new mount on
    // top: the destination is found again.
    let mounted = |kind| root.target(m.destination(), kind);
    let kind = if bind {
        let source = m.source().clone().unwrap_or_default();
        let source = if source.is_absolute() {
            source
        } else {
            ctx.bundle.join(source)
        };
        let kind = if source.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        let target = root.target(m.destination(), kind)?;
        ctx.sys
            .bind(&source, &target.proc_path(), options.recursive)
            .step(|| format!("binding {} on {shown}", source.display()))?;
        let wanted = options.flags - MountFlags::BIND;
        if !wanted.is_empty() {
            let on_top = mounted(kind)?;
            remount_bind(ctx.sys, &on_top.proc_path(), wanted, options.clear)
                .step(|| format!("remounting {shown} ({:?})", wanted))?;
        }
        kind
    } else {
        let kind = destination_kind(&typ);
        let target = root.target(m.destination(), kind)?;
        let dest = target.proc_path();
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.clone());
        let data = cstring(&options.data.join(","));
        let result = ctx
            .sys
            .mount(&source, &dest, &typ, options.flags, Some(&data));
        match result {
            // sysfs and mqueue cannot be mounted fresh in a user namespace
            // without its own network / ipc namespace: bind the host's
            // (runc does the same).
            Err(e)
                if ctx.in_user_ns
                    && e.raw_os_error() == Some(libc::EPERM)
                    && (typ == "sysfs" || typ == "mqueue") =>
            {
                let host = if typ == "sysfs" {
                    "/sys"
                } else {
                    "/dev/mqueue"
                };
                ctx.sys
                    .bind(Path::new(host), &dest, true)
                    .step(|| format!("binding {host} on {shown}"))?;
                let on_top = mounted(kind)?;
                remount_bind(ctx.sys, &on_top.proc_path(), options.flags, options.clear)
                    .step(|| format!("remounting {shown}"))?;
            }
            other => other.step(|| format!("mounting {typ} on {shown}"))?,
        }
        kind
    };
    if options.rec_set != 0 || options.rec_clear != 0 {
        let on_top = mounted(kind)?;
        ctx.sys
            .setattr_recursive(&on_top.proc_path(), options.rec_set, options.rec_clear)
            .step(|| format!("setting the recursive options of {shown}"))?;
    }
    if !options.propagation.is_empty() {
        let on_top = mounted(kind)?;
        ctx.sys
            .propagation(&on_top.proc_path(), options.propagation)
            .step(|| format!("setting propagation of {shown}"))?;
    }
    Ok(())
}

fn mount_cgroup(ctx: &RootfsContext, root: &Root, at: &Path, options: &Options) -> Result<()> {
    let shown = at.display();
    let target = root.target(at, Kind::RealDir)?;
    let dest = target.proc_path();
    if ctx.new_cgroup_ns {
        // In its own cgroup namespace a fresh cgroup2 shows the container's
        // cgroup as the root (what runc does with nsdelegate semantics).
        let fresh = ctx
            .sys
            .mount("cgroup2", &dest, "cgroup2", options.flags, None);
        match fresh {
            // In a user namespace whose network namespace is not its own
            // (a bridged container joins the one the engine made), /sys is
            // the host's bound (above), with the host's cgroup2 on
            // /sys/fs/cgroup: the kernel refuses the same filesystem again
            // on the same mount point (EBUSY), or the mount (EPERM). Bind
            // the container's own cgroup instead, as runc does.
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EPERM))
                    && ctx.cgroup_dir.is_some() =>
            {
                bind_cgroup_dir(ctx, root, at, options)
            }
            other => other.step(|| format!("mounting cgroup2 on {shown}")),
        }
    } else {
        bind_cgroup_dir(ctx, root, at, options)
    }
}

/// The container's cgroup directory bound on `at`.
fn bind_cgroup_dir(ctx: &RootfsContext, root: &Root, at: &Path, options: &Options) -> Result<()> {
    let shown = at.display();
    let target = root.target(at, Kind::RealDir)?;
    let dest = target.proc_path();
    let Some(dir) = ctx.cgroup_dir else {
        return Ok(());
    };
    ctx.sys
        .bind(dir, &dest, false)
        .step(|| format!("binding {} on {shown}", dir.display()))?;
    let on_top = root.target(at, Kind::RealDir)?;
    remount_bind(ctx.sys, &on_top.proc_path(), options.flags, options.clear)
        .step(|| format!("remounting {shown}"))
}

/// Remounts a bind mount with new flags, keeping the flags the kernel locks
/// in a user namespace (nosuid, nodev, noexec, atime) unless cleared.
fn remount_bind(
    sys: &dyn Syscall,
    dest: &Path,
    flags: MountFlags,
    clear: MountFlags,
) -> std::io::Result<()> {
    let current = sys.mount_flags_of(dest)? - MountFlags::RDONLY;
    let flags = ((current - clear) | flags) | MountFlags::BIND;
    sys.remount(dest, flags, c"")
}

struct Device {
    path: PathBuf,
    kind: rustix::fs::FileType,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
}

const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn create_devices(ctx: &RootfsContext, root: &Root) -> Result<()> {
    use rustix::fs::FileType;
    let mut devices: Vec<Device> = DEFAULT_DEVICES
        .iter()
        .map(|(p, major, minor)| Device {
            path: PathBuf::from(p),
            kind: FileType::CharacterDevice,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for d in ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
    {
        let kind = match d.typ() {
            LinuxDeviceType::B => FileType::BlockDevice,
            LinuxDeviceType::P => FileType::Fifo,
            _ => FileType::CharacterDevice,
        };
        devices.retain(|x| x.path != *d.path());
        devices.push(Device {
            path: d.path().clone(),
            kind,
            major: u32::try_from(d.major()).unwrap_or(0),
            minor: u32::try_from(d.minor()).unwrap_or(0),
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    for d in devices {
        let shown = d.path.display();
        let name =
            d.path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                RuntimeError::Config(format!("device path {shown} names no file"))
            })?;
        let parent = d.path.parent().unwrap_or(Path::new("/"));
        let parent = root.target(parent, Kind::Dir)?;
        let dest = parent.child(name);
        if ctx.in_user_ns {
            // mknod is refused in a user namespace: bind the host's node.
            let node = root.target(&d.path, Kind::File)?;
            let dest = node.proc_path();
            ctx.sys
                .bind(&d.path, &dest, false)
                .step(|| format!("binding device {shown}"))?;
        } else {
            let _ = fs::remove_file(&dest);
            let dev = rustix::fs::makedev(d.major, d.minor);
            ctx.sys
                .mknod(&dest, d.kind, d.mode, dev)
                .step(|| format!("creating device {shown}"))?;
            // mknod obeys the umask: set the mode the spec asked for.
            fs::set_permissions(&dest, fs::Permissions::from_mode(d.mode))
                .step(|| format!("chmod {shown}"))?;
            ctx.sys
                .chown(&dest, d.uid, d.gid)
                .step(|| format!("chown {shown}"))?;
        }
    }
    Ok(())
}

fn dev_symlinks(root: &Root) -> Result<()> {
    let dev = root.target(Path::new("/dev"), Kind::Dir)?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let path = dev.child(link);
        if fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        symlink(target, &path).step(|| format!("symlinking /dev/{link}"))?;
    }
    Ok(())
}

/// Step 2: pivot_root(".", ".") then detach the old root, as runc does: no
/// put_old directory is needed and the old root is gone from the
/// namespace before the container runs.
pub fn pivot(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    std::env::set_current_dir(rootfs).step(|| format!("chdir {}", rootfs.display()))?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .step(|| "pivot_root")?;
    // The old root is stacked on "."; make it rslave so detaching it cannot
    // propagate an unmount to the host.
    sys.propagation(
        Path::new("."),
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .step(|| "making the old root rslave")?;
    sys.unmount_detach(Path::new("."))
        .step(|| "detaching the old root")?;
    std::env::set_current_dir("/").step(|| "chdir /")?;
    Ok(())
}

/// Step 2 with `--no-pivot` (runc's msMoveRoot), for a root that
/// pivot_root refuses (a rootfs on the initramfs's ramfs): every mount
/// outside the new root is detached first, as nothing of the host may
/// stay reachable below it, then the new root is moved onto `/` and
/// chrooted into. Weaker than pivot_root (a process with CAP_SYS_CHROOT
/// can climb out of a chroot), which is why it is only on request.
pub fn move_root(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    let mut outside: Vec<PathBuf> = husk_common::mountinfo::read()
        .into_iter()
        .map(|m| PathBuf::from(m.mount_point))
        .filter(|p| p != Path::new("/") && !p.starts_with(rootfs) && !rootfs.starts_with(p))
        .collect();
    // Deepest first, so a parent is not busy with its children.
    outside.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for path in &outside {
        // Already gone with a parent, or locked in a user namespace: the
        // chroot hides what is left.
        let _ = sys.unmount_detach(path);
    }
    std::env::set_current_dir(rootfs).step(|| format!("chdir {}", rootfs.display()))?;
    sys.move_root()
        .step(|| format!("moving {} onto / (--no-pivot)", rootfs.display()))?;
    std::env::set_current_dir("/").step(|| "chdir /")?;
    Ok(())
}

/// `statfs` magic numbers (linux/magic.h).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// Fails closed before masking: where the spec mounts proc or sysfs at
/// /proc or /sys, that is what must be there now, or the masked and
/// read-only paths below would protect some other tree while the real
/// one stayed writable.
fn check_kernel_filesystems(
    sys: &dyn Syscall,
    spec: &Spec,
    inside: &dyn Fn(&str) -> PathBuf,
) -> Result<()> {
    for (dest, typ, magic) in [
        ("/proc", "proc", PROC_SUPER_MAGIC),
        ("/sys", "sysfs", SYSFS_MAGIC),
    ] {
        let mounted = spec
            .mounts()
            .iter()
            .flatten()
            .any(|m| m.destination() == Path::new(dest) && m.typ().as_deref() == Some(typ));
        if !mounted {
            continue;
        }
        let found = sys
            .fs_magic(&inside(dest))
            .step(|| format!("statfs {dest}"))?;
        if found != magic {
            return Err(RuntimeError::Config(format!(
                "{dest} is not {typ} after the mounts (filesystem {found:#x}): refused"
            )));
        }
    }
    Ok(())
}

/// Step 3 (inside the new root, `root`: "/" after the pivot): propagation,
/// sysctls, read-only and masked paths, then the read-only root.
pub fn finish(sys: &dyn Syscall, spec: &Spec, root: &Path) -> Result<()> {
    let inside = |p: &str| root.join(p.trim_start_matches('/'));
    check_kernel_filesystems(sys, spec, &inside)?;
    let linux = spec.linux().as_ref();
    let propagation = linux
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    if let Some(p @ ("shared" | "rshared" | "unbindable" | "runbindable")) =
        Some(propagation.as_str())
    {
        sys.propagation(
            root,
            propagation_flags(p).unwrap_or(MountPropagationFlags::empty()),
        )
        .step(|| format!("setting rootfsPropagation {p}"))?;
    }
    for (key, value) in linux.and_then(|l| l.sysctl().clone()).unwrap_or_default() {
        let path = inside("/proc/sys").join(super::sysctl::proc_path(&key)?);
        fs::write(&path, &value).step(|| format!("setting sysctl {key}={value}"))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        let path = &inside(&p);
        if !path.exists() {
            continue;
        }
        sys.bind(path, path, true)
            .step(|| format!("binding readonly path {p}"))?;
        remount_bind(
            sys,
            path,
            MountFlags::RDONLY | MountFlags::REC,
            MountFlags::empty(),
        )
        .step(|| format!("remounting {p} read-only"))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        let path = &inside(&p);
        let result = match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Ok(meta) if meta.is_dir() => {
                sys.mount("tmpfs", path, "tmpfs", MountFlags::RDONLY, None)
            }
            _ => sys.bind(&inside("/dev/null"), path, false),
        };
        result.step(|| format!("masking {p}"))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        remount_bind(sys, root, MountFlags::RDONLY, MountFlags::empty())
            .step(|| "remounting / read-only")?;
    }
    Ok(())
}

/// Creates process.cwd if the image lacks it (runc does), inside the
/// root.
pub fn ensure_dir(rootfs: &Path, dir: &Path) -> Result<()> {
    Root::open(rootfs)?.target(dir, Kind::Dir).map(drop)
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxBuilder, MountBuilder, RootBuilder, SpecBuilder};
    use rustix::fs::FileType;

    use super::*;
    use crate::syscall::{Call, Recorder};

    fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    #[test]
    fn recursive_options_become_mount_setattr_bits() {
        use crate::sys::mount_attr as A;
        let opts =
            |list: &[&str]| parse_options(&list.iter().map(|o| o.to_string()).collect::<Vec<_>>());
        let o = opts(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(o.rec_set, A::RDONLY | A::NOSUID | A::NOATIME);
        assert_eq!(o.rec_clear, A::ATIME);
        assert!(o.data.is_empty(), "{:?}", o.data);
        // The last word wins, as with the plain flags.
        let o = opts(&["rro", "rrw"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, A::RDONLY));
        assert!(
            opts(&["nosymfollow"])
                .flags
                .contains(MountFlags::NOSYMFOLLOW)
        );
    }

    fn spec_with(mounts: Vec<Mount>) -> Spec {
        SpecBuilder::default().mounts(mounts).build().unwrap()
    }

    fn context<'a>(sys: &'a Recorder, spec: &'a Spec, rootfs: &'a Path) -> RootfsContext<'a> {
        RootfsContext {
            sys,
            spec,
            rootfs,
            bundle: rootfs,
            in_user_ns: false,
            new_cgroup_ns: true,
            cgroup_dir: None,
        }
    }

    fn targets(calls: &[Call]) -> Vec<PathBuf> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount { target, .. } | Call::Bind { target, .. } => Some(target.clone()),
                Call::Mknod { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn prepare_isolates_binds_mounts_in_order_then_makes_devices() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path();
        let spec = spec_with(vec![
            mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755"],
            ),
            mount("/sys/fs/cgroup", "cgroup", "cgroup", &["ro", "nosuid"]),
        ]);
        let sys = Recorder::default();
        prepare(&context(&sys, &spec, rootfs)).unwrap();
        let calls = sys.calls();
        // Nothing mounted inside may propagate to the host: / goes rslave
        // first, then the rootfs becomes a mount point for pivot_root.
        assert_eq!(
            calls[0],
            Call::Propagation {
                target: "/".into(),
                flags: MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
            }
        );
        assert_eq!(
            calls[1],
            Call::Bind {
                source: rootfs.into(),
                target: rootfs.into(),
                recursive: true,
            }
        );
        assert_eq!(
            calls[2],
            Call::Mount {
                source: "proc".into(),
                target: rootfs.join("proc"),
                fstype: "proc".into(),
                flags: MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV,
                data: String::new(),
            }
        );
        assert_eq!(
            calls[3],
            Call::Mount {
                source: "tmpfs".into(),
                target: rootfs.join("dev"),
                fstype: "tmpfs".into(),
                flags: MountFlags::NOSUID | MountFlags::STRICTATIME,
                data: "mode=755".into(),
            }
        );
        // Its own cgroup namespace: a fresh cgroup2, read-only as asked.
        assert_eq!(
            calls[4],
            Call::Mount {
                source: "cgroup2".into(),
                target: rootfs.join("sys/fs/cgroup"),
                fstype: "cgroup2".into(),
                flags: MountFlags::RDONLY | MountFlags::NOSUID,
                data: String::new(),
            }
        );
        let nodes: Vec<(PathBuf, u64)> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Mknod {
                    path, kind, dev, ..
                } if *kind == FileType::CharacterDevice => Some((path.clone(), *dev)),
                _ => None,
            })
            .collect();
        assert_eq!(nodes.len(), DEFAULT_DEVICES.len(), "{calls:#?}");
        assert!(nodes.contains(&(rootfs.join("dev/null"), rustix::fs::makedev(1, 3))));
        assert!(calls.contains(&Call::Chown(rootfs.join("dev/tty"), 0, 0)));
        assert_eq!(
            fs::read_link(rootfs.join("dev/fd")).unwrap(),
            Path::new("/proc/self/fd")
        );
        assert!(targets(&calls).iter().all(|t| t.starts_with(rootfs)));
    }

    #[test]
    fn destinations_behind_the_images_symlinks_stay_in_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("data")).unwrap();
        // A hostile image: absolute and climbing links at several depths.
        symlink("/../../../../etc", rootfs.join("data/abs")).unwrap();
        symlink("../../../../../../tmp", rootfs.join("data/up")).unwrap();
        let spec = spec_with(vec![
            mount("/data/abs/x", "tmpfs", "tmpfs", &[]),
            mount("/data/up/x", "tmpfs", "tmpfs", &[]),
            mount("/data/bound", "bind", "/var/empty", &["rbind"]),
        ]);
        let sys = Recorder::default();
        prepare(&context(&sys, &spec, &rootfs)).unwrap();
        let calls = sys.calls();
        let targets = targets(&calls);
        assert!(targets.contains(&rootfs.join("etc/x")), "{calls:#?}");
        assert!(targets.contains(&rootfs.join("tmp/x")), "{calls:#?}");
        assert!(targets.iter().all(|t| t.starts_with(&rootfs)), "{calls:#?}");
        assert!(!dir.path().join("etc").exists() && !dir.path().join("tmp").exists());
    }

    #[test]
    fn proc_sysfs_and_cgroup_refuse_a_symlinked_destination() {
        for (dest, typ) in [
            ("/proc", "proc"),
            ("/sys", "sysfs"),
            ("/sys/fs/cgroup", "cgroup"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let rootfs = dir.path().join("rootfs");
            let link = rootfs.join(dest.trim_start_matches('/'));
            fs::create_dir_all(link.parent().unwrap()).unwrap();
            fs::create_dir_all(rootfs.join("elsewhere")).unwrap();
            symlink("/elsewhere", &link).unwrap();
            let spec = spec_with(vec![mount(dest, typ, typ, &[])]);
            let sys = Recorder::default();
            let err = prepare(&context(&sys, &spec, &rootfs)).unwrap_err();
            assert!(err.to_string().contains("is a symlink"), "{dest}: {err}");
            assert!(
                !sys.calls().iter().any(|c| matches!(c, Call::Mount { .. })),
                "{dest}: {:#?}",
                sys.calls()
            );
        }
    }

    #[test]
    fn in_a_user_namespace_sysfs_and_devices_come_from_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path();
        let spec = spec_with(vec![mount("/sys", "sysfs", "sysfs", &["ro", "nosuid"])]);
        let sys = Recorder {
            refuse_fstypes: vec!["sysfs"],
            mounted_with: MountFlags::NODEV | MountFlags::NOEXEC,
            ..Recorder::default()
        };
        let mut ctx = context(&sys, &spec, rootfs);
        ctx.in_user_ns = true;
        prepare(&ctx).unwrap();
        let calls = sys.calls();
        assert!(calls.contains(&Call::Bind {
            source: "/sys".into(),
            target: rootfs.join("sys"),
            recursive: true,
        }));
        // The flags the kernel locks in a user namespace are kept.
        assert!(calls.contains(&Call::Remount {
            target: rootfs.join("sys"),
            flags: MountFlags::RDONLY
                | MountFlags::NOSUID
                | MountFlags::NODEV
                | MountFlags::NOEXEC
                | MountFlags::BIND,
        }));
        assert!(calls.contains(&Call::Bind {
            source: "/dev/null".into(),
            target: rootfs.join("dev/null"),
            recursive: false,
        }));
        assert!(
            !calls.iter().any(|c| matches!(c, Call::Mknod { .. })),
            "{calls:#?}"
        );
    }

    #[test]
    fn finish_write_protects_and_masks_inside_the_new_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["proc/sys", "proc/acpi", "dev"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("proc/kcore"), b"").unwrap();
        let linux = LinuxBuilder::default()
            .readonly_paths(vec!["/proc/sys".to_string()])
            .masked_paths(vec!["/proc/kcore".to_string(), "/proc/acpi".to_string()])
            .build()
            .unwrap();
        let spec = SpecBuilder::default()
            .linux(linux)
            .root(
                RootBuilder::default()
                    .path("rootfs")
                    .readonly(true)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let kernel_filesystems = vec![
            (root.join("proc"), PROC_SUPER_MAGIC),
            (root.join("sys"), SYSFS_MAGIC),
        ];
        // What an image that moved procfs elsewhere leaves at /proc:
        // refused before anything is masked.
        let moved = Recorder {
            magic: kernel_filesystems[1..].to_vec(),
            ..Recorder::default()
        };
        let err = finish(&moved, &spec, root).unwrap_err();
        assert!(err.to_string().contains("/proc is not proc"), "{err}");
        assert!(moved.calls().is_empty(), "{:#?}", moved.calls());
        let sys = Recorder {
            magic: kernel_filesystems,
            ..Recorder::default()
        };
        finish(&sys, &spec, root).unwrap();
        assert_eq!(
            sys.calls(),
            [
                Call::Bind {
                    source: root.join("proc/sys"),
                    target: root.join("proc/sys"),
                    recursive: true,
                },
                Call::Remount {
                    target: root.join("proc/sys"),
                    flags: MountFlags::RDONLY | MountFlags::REC | MountFlags::BIND,
                },
                Call::Bind {
                    source: root.join("dev/null"),
                    target: root.join("proc/kcore"),
                    recursive: false,
                },
                Call::Mount {
                    source: "tmpfs".into(),
                    target: root.join("proc/acpi"),
                    fstype: "tmpfs".into(),
                    flags: MountFlags::RDONLY,
                    data: String::new(),
                },
                Call::Remount {
                    target: root.into(),
                    flags: MountFlags::RDONLY | MountFlags::BIND,
                },
            ]
        );
    }

    #[test]
    fn options() {
        let o = parse_options(&[
            "nosuid".into(),
            "ro".into(),
            "mode=755".into(),
            "rbind".into(),
            "rslave".into(),
        ]);
        assert_eq!(o.flags, MountFlags::NOSUID | MountFlags::RDONLY);
        assert!(o.bind && o.recursive);
        assert_eq!(o.data, ["mode=755"]);
        assert_eq!(
            o.propagation,
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC
        );
    }
}
