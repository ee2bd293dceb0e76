//! The runtime runs from a sealed copy of itself whenever it puts a process
//! into a container (the CVE-2019-5736 class).
//!
//! A process that enters a container (the init during `create`, the
//! process `exec` starts) is the runtime binary until it calls `execve`.
//! Any process in the container can open that process's `/proc/PID/exe`
//! (or make the container's entrypoint `#!/proc/self/exe`, which has the
//! kernel run the runtime binary itself inside the container), hold the
//! descriptor until the runtime exits and then reopen it for writing
//! through `/proc/self/fd/N`: the next runtime run on the host is the
//! attacker's. A read-only root does not close this everywhere:
//! `husk-agent oci` also runs under containerd on ordinary hosts, from a
//! writable filesystem.
//!
//! So `create`, `run` and `exec` first make sure the binary they run from
//! cannot be opened for writing by anyone: a binary on a read-only mount
//! (Husk's own root, which is never made writable again) already cannot,
//! since the kernel refuses a writer there with EROFS whatever path or
//! descriptor leads to it; anywhere else they copy the binary into a memfd, seal
//! it against every change (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW`,
//! then `F_SEAL_SEAL` so the seals stay), and re-execute from it: every
//! `/proc/PID/exe` a container can reach is that memfd, which no one can
//! write, and the memfd is gone when the last process using it is. This
//! is runc's first fix (its `cloned_binary`) and crun's; runc 1.2 also
//! knows a cheaper overlayfs trick, which needs a mount on the host for
//! every start. The copy costs what `cargo xtask bench runtime` measures.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;

use super::error::{Result, RuntimeError};
use super::sys;

/// The seals that make the copy immutable.
const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

fn failed(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Other(format!(
        "sealing the runtime binary against containers: {what}: {e}"
    ))
}

/// True when this process already runs from a sealed copy.
fn open_exe() -> Result<File> {
    File::open("/proc/self/exe").map_err(|e| failed("/proc/self/exe", e))
}

/// True when `exe` (this process's binary) is a sealed copy.
fn is_sealed(exe: &File) -> Result<bool> {
    match rustix::fs::fcntl_get_seals(exe) {
        Ok(seals) => Ok(seals.contains(SEALS)),
        // Not a memfd (a file on a filesystem).
        Err(Errno::INVAL) => Ok(false),
        Err(e) => Err(failed("reading the seals of /proc/self/exe", e)),
    }
}

/// True when the binary of this process is on a read-only mount.
fn is_on_read_only_mount(exe: &File) -> Result<bool> {
    let stat = rustix::fs::fstatvfs(exe).map_err(|e| failed("statvfs of /proc/self/exe", e))?;
    Ok(stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Returns when this process runs from a binary nobody can write (a
/// sealed copy, or one on a read-only mount); else
/// makes one and re-executes from it with the same arguments and
/// environment (and never returns).
pub fn ensure() -> Result<()> {
    let exe = open_exe()?;
    if is_sealed(&exe)? || is_on_read_only_mount(&exe)? {
        return Ok(());
    }
    let copy = sealed_copy(&exe)?;
    let argv: Vec<CString> = std::env::args_os().map(c_string).collect::<Result<_>>()?;
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            c_string(kv)
        })
        .collect::<Result<_>>()?;
    Err(failed(
        "re-executing from the sealed copy",
        sys::execve_fd(copy.as_fd(), &argv, &envp),
    ))
}

fn c_string(s: OsString) -> Result<CString> {
    CString::new(s.into_vec()).map_err(|e| failed("an argument", e))
}

/// A sealed memfd holding this process's binary.
fn sealed_copy(exe: &File) -> Result<OwnedFd> {
    let size = exe
        .metadata()
        .map_err(|e| failed("/proc/self/exe", e))?
        .len();
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) keeps the copy executable where
    // vm.memfd_noexec asks memfds to be noexec by default; older kernels
    // refuse the unknown flag.
    let memfd = match rustix::fs::memfd_create("husk-runtime", flags | MemfdFlags::EXEC) {
        Err(Errno::INVAL) => rustix::fs::memfd_create("husk-runtime", flags),
        other => other,
    }
    .map_err(|e| failed("memfd_create", e))?;
    let mut copied = 0u64;
    while copied < size {
        // sendfile copies in the kernel from the page cache; a regular
        // file to a memfd is the case it has always handled.
        let left = usize::try_from(size - copied).unwrap_or(usize::MAX);
        match rustix::fs::sendfile(&memfd, exe, None, left) {
            Ok(0) => break,
            Ok(n) => copied += n as u64,
            Err(Errno::INTR) => {}
            Err(e) => return Err(failed("copying the binary", e)),
        }
    }
    if copied != size {
        return Err(failed(
            "copying the binary",
            format!("{copied} of {size} bytes"),
        ));
    }
    add_seals(&memfd)?;
    Ok(memfd)
}

/// Seals the copy. F_SEAL_WRITE fails with EBUSY while a page of the
/// memfd still has an extra reference: the kernel waits a little for
/// them itself, but a page just written can sit in another CPU's LRU
/// batch for longer on a loaded machine (seen once in a full test run,
/// right after an agent restart). A few more tries, a few milliseconds
/// apart, let it drain.
fn add_seals(memfd: &OwnedFd) -> Result<()> {
    let mut pause = std::time::Duration::from_millis(5);
    for _ in 0..8 {
        match rustix::fs::fcntl_add_seals(memfd, SEALS) {
            Err(Errno::BUSY) => {
                std::thread::sleep(pause);
                pause = pause.saturating_mul(2);
            }
            other => return other.map_err(|e| failed("sealing the copy", e)),
        }
    }
    rustix::fs::fcntl_add_seals(memfd, SEALS).map_err(|e| failed("sealing the copy", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_the_binary_and_cannot_change() {
        use std::io::{Read, Seek, Write};
        let copy = sealed_copy(&open_exe().unwrap()).unwrap();
        let mut copy = File::from(copy);
        let mut got = Vec::new();
        copy.rewind().unwrap();
        copy.read_to_end(&mut got).unwrap();
        let exe = std::fs::read("/proc/self/exe").unwrap();
        assert!(
            got == exe,
            "the copy differs ({} of {} bytes)",
            got.len(),
            exe.len()
        );
        // Every way to change it is refused, through this descriptor and
        // through a reopened one.
        copy.rewind().unwrap();
        assert!(copy.write_all(b"x").is_err());
        assert!(copy.set_len(1).is_err());
        assert!(copy.set_len(got.len() as u64 + 1).is_err());
        let reopened = std::fs::OpenOptions::new().write(true).open(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&copy)
        ));
        if let Ok(mut f) = reopened {
            assert!(f.write_all(b"x").is_err());
        }
        assert_eq!(
            rustix::fs::fcntl_add_seals(&copy, SealFlags::empty()),
            Err(Errno::PERM),
            "F_SEAL_SEAL keeps the seals"
        );
        // A file on a filesystem is not sealed.
        assert!(!is_sealed(&open_exe().unwrap()).unwrap());
        assert!(is_sealed(&copy).unwrap());
    }
}
