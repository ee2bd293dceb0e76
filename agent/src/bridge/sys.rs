//! The namespace and mount calls of the bridge, through rustix.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

/// Moves the calling thread into a new network namespace.
pub fn unshare_network() -> io::Result<()> {
    // SAFETY: rustix marks unshare unsafe because CLONE_FILES and CLONE_FS
    // change what other threads share; NEWNET only changes this thread's
    // network namespace, which is what the caller (a thread of its own)
    // asks for.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
    Ok(())
}

/// Moves the calling thread into the network namespace `ns`.
pub fn enter_network(ns: BorrowedFd<'_>) -> io::Result<()> {
    rustix::thread::move_into_link_name_space(
        ns,
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    Ok(())
}

pub fn bind_mount(source: &Path, target: &Path) -> io::Result<()> {
    rustix::mount::mount_bind(source, target)?;
    Ok(())
}

/// Lazily unmounts `target`.
pub fn detach_mount(target: &Path) -> io::Result<()> {
    rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?;
    Ok(())
}

/// Registers `fd` with tokio's reactor (to await an inotify descriptor's
/// readability).
pub fn async_fd(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: an OwnedFd stays open and keeps its number for as long as
    // the AsyncFd owns it, which is what `register` requires.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}
