//! The container manager's raw system calls: the shim's fork and its
//! private mount namespace. Everything else goes through rustix's safe
//! wrappers.

use std::io;

/// Which side of a [`fork`] we are on.
pub enum Forked {
    Parent,
    Child,
}

/// `fork(2)`.
///
/// Only for single-threaded callers (the shim, before it starts anything):
/// a child forked from a threaded process may only call async-signal-safe
/// functions, and the shim's child goes on to do everything else.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the shim calls this from its main thread before any other
    // thread exists, so the child inherits a consistent process (no lock
    // held by a thread that does not exist in the child).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        _ => Ok(Forked::Parent),
    }
}

/// A private mount namespace for the calling (single-threaded) process, in
/// which mounts from the host still propagate in but ours never leak out.
pub fn private_mount_namespace() -> io::Result<()> {
    // SAFETY: NEWNS only: the file descriptor table is not unshared, so
    // no descriptor becomes invalid for another thread (and the shim has
    // no other thread).
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    )?;
    Ok(())
}

/// Sets `signal`'s disposition to ignored. Ignored signals are inherited
/// by children and kept across execve: call it only once the children
/// that must not inherit it exist.
pub fn ignore_signal(signal: i32) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler, so no code runs in signal
    // context; `signal` is a plain integer the kernel validates.
    let previous = unsafe { libc::signal(signal, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Registers `fd` with tokio's reactor (to await a pidfd's readability,
/// an exec's pty master's).
pub fn async_fd(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: an OwnedFd stays open and keeps its number for as long as
    // the AsyncFd owns it, which is what `register` requires.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// A user namespace with `map` (container ids 0..size are host ids from
/// host_uid / host_gid), as a descriptor: what an idmapped mount takes.
///
/// A child unshares a user namespace and waits; the shim writes its maps
/// and opens `/proc/CHILD/ns/user`, then lets it exit. Only for the
/// single-threaded shim (it forks).
pub fn user_namespace(
    map: &husk_api::containers::UserNamespace,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::OwnedFd;
    let (ready_read, ready_write) = rustix::pipe::pipe()?;
    let (done_read, done_write) = rustix::pipe::pipe()?;
    // SAFETY: the shim is single-threaded here (see above), and the child
    // only makes async-signal-safe calls (unshare, write, read, _exit) on
    // descriptors it inherited, then exits without returning.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        userns_child(&ready_read, &ready_write, &done_read, &done_write);
    }
    drop(ready_write);
    drop(done_read);
    let result = (|| {
        let mut buf = [0u8; 1];
        if rustix::io::read(&ready_read, &mut buf)? != 1 {
            return Err(io::Error::other("unshare(CLONE_NEWUSER) failed"));
        }
        std::fs::write(
            format!("/proc/{pid}/uid_map"),
            format!("0 {} {}\n", map.host_uid, map.size),
        )?;
        std::fs::write(
            format!("/proc/{pid}/gid_map"),
            format!("0 {} {}\n", map.host_gid, map.size),
        )?;
        Ok(OwnedFd::from(std::fs::File::open(format!(
            "/proc/{pid}/ns/user"
        ))?))
    })();
    drop(done_write);
    let mut status = 0;
    // SAFETY: waits for the child forked above; status is a valid int.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

/// The forked child of [`user_namespace`]: unshares, says so, waits for
/// EOF, exits. Async-signal-safe calls only.
fn userns_child(
    ready_read: &std::os::fd::OwnedFd,
    ready_write: &std::os::fd::OwnedFd,
    done_read: &std::os::fd::OwnedFd,
    done_write: &std::os::fd::OwnedFd,
) -> ! {
    use std::os::fd::AsRawFd;
    // The shim's ends: the read below sees EOF only once no process
    // holds the write end.
    // SAFETY: close takes a descriptor number this process holds.
    unsafe { libc::close(done_write.as_raw_fd()) };
    // SAFETY: as above.
    unsafe { libc::close(ready_read.as_raw_fd()) };
    // SAFETY: unshare takes a flag.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        // SAFETY: _exit never returns and has no preconditions.
        unsafe { libc::_exit(1) };
    }
    let byte = [1u8];
    // SAFETY: a valid one-byte buffer, on a descriptor this process holds.
    unsafe { libc::write(ready_write.as_raw_fd(), byte.as_ptr().cast(), 1) };
    let mut buf = [0u8; 1];
    // SAFETY: as above; returns at EOF, when the shim is done.
    unsafe { libc::read(done_read.as_raw_fd(), buf.as_mut_ptr().cast(), 1) };
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(0) }
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_IDMAP)`:
/// makes the detached mount `tree` show its files through `userns`.
pub fn idmap(
    tree: std::os::fd::BorrowedFd<'_>,
    userns: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = husk_runtime::MountAttr {
        attr_set: husk_runtime::mount_attr::IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    husk_runtime::mount_setattr(
        Some(tree),
        c"",
        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
        &attr,
    )
}

/// `struct fsxattr` (linux/fs.h).
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

const FS_XFLAG_PROJINHERIT: u32 = 0x200;
/// `_IOR('X', 31, struct fsxattr)` and `_IOW('X', 32, struct fsxattr)`.
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;

/// Puts the directory `dir` in project `projid`, inherited by everything
/// made in it later (FS_XFLAG_PROJINHERIT).
pub fn set_project(dir: std::os::fd::BorrowedFd<'_>, projid: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut attr = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR writes one fsxattr into `attr`, which is
    // one and lives across the call; the descriptor is borrowed for it.
    if unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            FS_IOC_FSGETXATTR,
            &mut attr as *mut FsXattr,
        )
    } == -1
    {
        return Err(io::Error::last_os_error());
    }
    attr.projid = projid;
    attr.xflags |= FS_XFLAG_PROJINHERIT;
    // SAFETY: FS_IOC_FSSETXATTR reads one fsxattr from `attr`.
    if unsafe { libc::ioctl(dir.as_raw_fd(), FS_IOC_FSSETXATTR, &attr as *const FsXattr) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct if_dqblk` (linux/quota.h); space in bytes, limits in 1 KiB
/// blocks.
#[repr(C)]
#[derive(Default)]
pub struct DqBlk {
    pub bhardlimit: u64,
    pub bsoftlimit: u64,
    pub curspace: u64,
    pub ihardlimit: u64,
    pub isoftlimit: u64,
    pub curinodes: u64,
    pub btime: u64,
    pub itime: u64,
    pub valid: u32,
}

const PRJQUOTA: u32 = 2;
const Q_GETQUOTA: u32 = 0x80_0007;
const Q_SETQUOTA: u32 = 0x80_0008;
pub const QIF_BLIMITS: u32 = 1;

fn quotactl(fs: std::os::fd::BorrowedFd<'_>, cmd: u32, id: u32, dq: *mut DqBlk) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // QCMD(cmd, PRJQUOTA).
    let command = (cmd << 8) | PRJQUOTA;
    // SAFETY: quotactl_fd reads (SETQUOTA) or writes (GETQUOTA) one
    // if_dqblk at `dq`, which the callers pass from a live DqBlk; the
    // descriptor is borrowed for the call.
    let ret = unsafe { libc::syscall(libc::SYS_quotactl_fd, fs.as_raw_fd(), command, id, dq) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A project's usage and limits on the filesystem of `fs`.
pub fn project_quota(fs: std::os::fd::BorrowedFd<'_>, projid: u32) -> io::Result<DqBlk> {
    let mut dq = DqBlk::default();
    quotactl(fs, Q_GETQUOTA, projid, &mut dq)?;
    Ok(dq)
}

/// Sets a project's hard limit on space (`bytes`, rounded up to KiB; 0:
/// none).
pub fn set_project_limit(
    fs: std::os::fd::BorrowedFd<'_>,
    projid: u32,
    bytes: u64,
) -> io::Result<()> {
    let mut dq = DqBlk {
        bhardlimit: bytes.div_ceil(1024),
        bsoftlimit: 0,
        valid: QIF_BLIMITS,
        ..Default::default()
    };
    quotactl(fs, Q_SETQUOTA, projid, &mut dq)
}
