//! The one module that talks to the kernel directly: every `unsafe` of the
//! runtime lives here, each with its argument. The rest of the runtime
//! calls these safe wrappers (or rustix's own safe API).
//!
//! Rules for callers: the runtime forks with a raw `clone3`, so it must be
//! called from a single-threaded process (the `husk-agent oci` command is;
//! the agent daemon runs that command instead of calling the library).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::process::Pid;
use rustix::thread::UnshareFlags;

/// `clone3` with namespace flags; like `fork`, the child continues from
/// here (on a copy of the stack) and gets `None`, the parent the child's pid.
///
/// A raw `clone3` and not `fork` because a new PID namespace must be made by
/// the clone itself for the child to be its PID 1, and a user namespace made
/// at the same time owns the other new namespaces (what proc needs).
pub fn clone3(namespaces: u64) -> io::Result<Option<Pid>> {
    let mut args = libc::clone_args {
        flags: namespaces,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    let size = std::mem::size_of::<libc::clone_args>();
    // SAFETY: `args` is a valid clone_args of the given size, without
    // CLONE_VM or a new stack: the child gets a copy-on-write copy of this
    // process, as with fork. The caller guarantees a single-threaded process,
    // so no lock is held by a thread that does not exist in the child.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut _, size) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Pid::from_raw(pid as i32)),
    }
}

/// `execve`; returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: path, argv and envp are NUL-terminated strings that outlive the
    // call, and both pointer arrays end with a null pointer.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: executes the file behind
/// `fd` (the runtime's sealed copy); returns only on failure.
pub fn execve_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    use std::os::fd::AsRawFd;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: the descriptor is borrowed for the call, the empty path is a
    // NUL-terminated string, argv and envp are NUL-terminated strings that
    // outlive the call, and both pointer arrays end with a null pointer.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: installs a classic-BPF
/// filter on this thread (after no_new_privs, or with CAP_SYS_ADMIN).
pub fn seccomp_filter(insns: &[libc::sock_filter], flags: u32) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(insns.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter too long"))?,
        filter: insns.as_ptr().cast_mut(),
    };
    // SAFETY: prog points at `insns`, which outlives the call; the kernel
    // copies the program and only reads through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `bpf(BPF_PROG_LOAD)` of a cgroup device program; on a verifier refusal
/// the error carries the verifier's log.
pub fn load_device_program(insns: &[super::devices::Insn]) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    #[repr(C)]
    #[derive(Default)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        // The rest of the kernel's union, zero (kern_version, prog_flags,
        // prog_name, ...).
        rest: [u64; 12],
    }
    let mut log = vec![0u8; 64 * 1024];
    let license = c"Apache-2.0";
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "program too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: attr is a bpf_attr prefix for BPF_PROG_LOAD, zero past the
    // fields set; the instruction array, license and log buffer it points
    // at outlive the call, and the log's size is its real length.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoad,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let log = String::from_utf8_lossy(&log[..end]);
        return Err(io::Error::new(e.kind(), format!("{e}: {}", log.trim())));
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `bpf(BPF_PROG_ATTACH)` of a device program to a cgroup directory,
/// alongside the programs its ancestors have (all must allow).
pub fn attach_device_program(cgroup: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    #[repr(C)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
        rest: [u32; 11],
    }
    let attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
        rest: [0; 11],
    };
    // SAFETY: attr is a bpf_attr prefix for BPF_PROG_ATTACH, zero past
    // the fields set; both descriptors are borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttach,
            std::mem::size_of::<ProgAttach>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ends the (child) process now, without running the parent's atexit
/// handlers or flushing buffers copied from it.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Marks every descriptor from `first` up close-on-exec (`close_range`).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clears close-on-exec on a descriptor passed to the container (preserve-fds).
pub fn keep_on_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: the descriptor is only borrowed for this one fcntl; if it is not
    // open the call fails with EBADF, which is reported.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
    Ok(())
}

/// `kill(pid, sig)` for any signal number (rustix's `Signal` has no
/// real-time signals).
pub fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `unshare` of new namespaces for this (single-threaded) process.
pub fn unshare(flags: UnshareFlags) -> io::Result<()> {
    // SAFETY: rustix marks unshare unsafe because CLONE_FS/CLONE_FILES
    // unsharing in a multi-threaded process breaks other threads' view; the
    // runtime's child is single-threaded.
    unsafe { rustix::thread::unshare_unsafe(flags) }?;
    Ok(())
}

/// Brings the loopback interface up (a new network namespace has it down).
pub fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket takes plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into
    // `req`, which is a valid ifreq that lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled ifru_flags, the union member SIOCGIFFLAGS uses.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS reads the name and flags from `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Joins the namespace at `path`, which must be of the kind `flag`
/// (`CLONE_NEW*`): the kernel refuses another kind (EINVAL).
pub fn setns(path: &Path, flag: u64) -> io::Result<()> {
    use rustix::thread::LinkNameSpaceType as T;
    let kind = [
        T::Mount,
        T::ControlGroup,
        T::HostNameAndNISDomainName,
        T::InterProcessCommunication,
        T::User,
        T::ProcessID,
        T::Network,
        T::Time,
    ]
    .into_iter()
    .find(|t| *t as u64 == flag)
    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a namespace kind"))?;
    let fd = std::fs::File::open(path)?;
    rustix::thread::move_into_link_name_space(std::os::fd::AsFd::as_fd(&fd), Some(kind))?;
    Ok(())
}

/// The kind of the namespace at `path` (`CLONE_NEW*`, from
/// `NS_GET_NSTYPE`); an error when it is no namespace.
pub fn namespace_kind(path: &Path) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let fd = std::fs::File::open(path)?;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the kind; the
    // descriptor is open for the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret as u64)
}

pub fn mknod(path: &Path, kind: rustix::fs::FileType, mode: u32, dev: u64) -> io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        kind,
        rustix::fs::Mode::from_raw_mode(mode),
        dev,
    )?;
    Ok(())
}

/// Every catchable signal back to its default action and an empty signal
/// mask, as a new program expects (ignored signals and the mask survive
/// execve). The raw rt_sigaction, because glibc's wrappers refuse the two
/// real-time signals it reserves, which an ancestor may have ignored.
pub fn reset_signals() {
    /// The kernel's `struct sigaction` on x86_64.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a valid kernel sigaction of the size given (8: the
        // kernel's sigset), no old action asked for; SIG_DFL runs no code.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    let empty: u64 = 0;
    // SAFETY: an 8-byte mask as the kernel expects, no old mask asked for.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: a new session keyring
/// for this process (and what it execs), so containers do not share the
/// host user's session keyring; then `KEYCTL_SETPERM` to runc's
/// permissions. Joining a name that exists joins that keyring (what
/// `exec` does).
/// Neither rustix nor nix has keyctl.
pub fn join_session_keyring(name: &CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEYCTL_SETPERM: libc::c_long = 5;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of
    // the call; the other arguments are integers.
    let id = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            name.as_ptr(),
            0,
            0,
            0,
        )
    };
    if id == -1 {
        return Err(io::Error::last_os_error());
    }
    // runc's: the possessor may do everything; the owning user may
    // view, read, search and link it (so an exec into the container can
    // find it by name); group and others nothing.
    const PERM: libc::c_long = 0x3f1b_0000;
    // SAFETY: integers only.
    if unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, id, PERM, 0, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mount_setattr`'s attribute bits (linux/mount.h): the spec's
/// recursive mount options (`rro`, `rnosuid`, …) and idmapped mounts.
pub mod mount_attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    /// The atime mode's field: clear it to set one of the three below.
    pub const ATIME: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const IDMAP: u64 = 0x0010_0000;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// `struct mount_attr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    /// A user namespace's descriptor, with [`mount_attr::IDMAP`].
    pub userns_fd: u64,
}

/// `mount_setattr(dirfd, path, flags, attr)` (dirfd None: the cwd).
/// Neither rustix nor nix has it. The agent's idmapped layers use it
/// too.
pub fn mount_setattr(
    dirfd: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: libc::c_int,
    attr: &MountAttr,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dirfd = dirfd.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
    // SAFETY: `path` is a NUL-terminated string and `attr` a mount_attr
    // of the size passed, both alive for the call; the kernel only reads
    // them, and checks the descriptors.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets and clears attributes on the mount at `path` and every mount
/// below it (`AT_RECURSIVE`), which no `mount(2)` flag can (a recursive
/// bind's submounts keep their own flags).
pub fn mount_setattr_recursive(path: &Path, set: u64, clear: u64) -> io::Result<()> {
    let path = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        ..MountAttr::default()
    };
    mount_setattr(None, &path, libc::AT_RECURSIVE, &attr)
}
