//! A container's network namespace, made by the agent before the
//! container and kept as a bind mount of its nsfs file (as `ip netns`
//! and CRI-O's pinns do), so that its links can be set up before the
//! container's first process runs and the runtime only joins it (the
//! spec's network namespace `path`). A namespace is made, entered and
//! configured on a thread of its own: the agent's other threads never
//! change namespace.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The sysctls every container namespace gets. The first two as Docker
/// sets them since 20.10: binding ports below 1024 and ICMP echo sockets
/// need no capability inside a namespace that is the container's alone
/// (and a container in a user namespace has no capability in this one).
const SYSCTLS: [(&str, &str); 3] = [
    ("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0"),
    ("/proc/sys/net/ipv4/ping_group_range", "0 2147483647"),
    // The container's IPv6 address is the agent's to give: no duplicate
    // address detection holding it tentative for its first seconds.
    ("/proc/sys/net/ipv6/conf/default/accept_dad", "0"),
];

/// Makes a namespace pinned at `path` (a stale one there is removed first).
pub fn create(path: &Path) -> io::Result<()> {
    remove(path)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> io::Result<()> {
        super::sys::unshare_network()?;
        for (file, value) in SYSCTLS {
            // Older kernels lack the first; nothing depends on it.
            if let Err(e) = std::fs::write(file, value) {
                log::debug!("bridge: {file}: {e}");
            }
        }
        super::sys::bind_mount(Path::new("/proc/thread-self/ns/net"), &target)
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?;
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// Runs `f` on a thread inside the namespace pinned at `path`.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let ns = std::fs::File::open(path)?;
    std::thread::spawn(move || -> io::Result<T> {
        super::sys::enter_network(ns.as_fd())?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// Unpins and deletes the namespace at `path`; the kernel frees it (and
/// the container's end of its veth, and so the host's end) once nothing
/// else holds it. Nothing there is no error.
pub fn remove(path: &Path) -> io::Result<()> {
    match super::sys::detach_mount(path) {
        Ok(()) => {}
        // Not a mount point (a file left by a crash before the mount), or
        // nothing there.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The names pinned in `dir`.
pub fn pinned(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect()
}
