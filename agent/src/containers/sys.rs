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

/// Registers `fd` with tokio's reactor (to await a pidfd's readability).
pub fn async_fd(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: an OwnedFd stays open and keeps its number for as long as
    // the AsyncFd owns it, which is what `register` requires.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}
