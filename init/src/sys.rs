//! The thin layer over the kernel: every `unsafe` block of the crate is
//! here, each with its reason. Mostly rustix; nix only where rustix has no
//! call (kill(-1, …), sigaction).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid as NixPid;
use rustix::system::RebootCommand;

/// Whether this process is PID 1.
pub fn is_pid1() -> bool {
    rustix::process::getpid().is_init()
}

/// Writes `contents` to an existing file (sysctl, cgroup control files)
/// in a single `write(2)`, as those files expect.
pub fn write_file(path: &str, contents: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let n = f.write(contents.as_bytes())?;
    if n == contents.len() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::WriteZero, "short write"))
    }
}

/// The bytes of a small file, refused past `cap`.
pub fn read_capped_bytes(path: &std::path::Path, cap: u64) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut bytes = Vec::new();
    f.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {cap} bytes"),
        ));
    }
    Ok(bytes)
}

/// Reads a small text file, refusing anything larger than `cap` bytes.
pub fn read_capped(path: &std::path::Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read_capped_bytes(path, cap)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Makes Ctrl-Alt-Del send SIGINT to PID 1 instead of rebooting at once.
pub fn disable_ctrl_alt_del() -> io::Result<()> {
    rustix::system::reboot(RebootCommand::CadOff).map_err(io::Error::from)
}

/// How the machine ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    PowerOff,
    Reboot,
}

/// `reboot(2)`. Only returns on failure.
pub fn reboot(action: PowerAction) -> io::Error {
    let cmd = match action {
        PowerAction::PowerOff => RebootCommand::PowerOff,
        PowerAction::Reboot => RebootCommand::Restart,
    };
    match rustix::system::reboot(cmd) {
        Ok(()) => io::Error::other("reboot(2) returned"),
        Err(e) => e.into(),
    }
}

pub fn sync() {
    rustix::fs::sync();
}

pub fn set_hostname(name: &str) -> io::Result<()> {
    rustix::system::sethostname(name.as_bytes()).map_err(io::Error::from)
}

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// Loads a kernel module from its open file.
pub fn finit_module(file: &File, compressed: bool) -> io::Result<()> {
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    rustix::system::finit_module(file, c"", flags).map_err(io::Error::from)
}

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Sends `sig` to one process.
pub fn signal_process(pid: i32, sig: Signal) -> io::Result<()> {
    signal::kill(NixPid::from_raw(pid), sig).map_err(nix_err)
}

/// Sends `sig` to a process group (a service's session leader's group).
pub fn signal_group(pgid: i32, sig: Signal) -> io::Result<()> {
    signal::killpg(NixPid::from_raw(pgid), sig).map_err(nix_err)
}

/// Sends `sig` to every process but init itself (`kill(-1, sig)`).
pub fn signal_all(sig: Signal) -> io::Result<()> {
    signal::kill(NixPid::from_raw(-1), sig).map_err(nix_err)
}

/// Sends `sig` to PID 1 (`husk-init poweroff|reboot`).
pub fn signal_init(sig: Signal) -> io::Result<()> {
    signal_process(1, sig)
}

/// Makes a spawned service start clean: its own session, every signal
/// disposition back to default and an empty signal mask (init catches
/// and blocks things a service must not inherit).
pub fn prepare_child(cmd: &mut Command) {
    let hook = || -> io::Result<()> {
        rustix::process::setsid().map_err(io::Error::from)?;
        for sig in Signal::iterator() {
            if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
                continue;
            }
            // SAFETY: installing SIG_DFL runs no handler code, and
            // sigaction(2) is async-signal-safe, as a pre_exec hook (run
            // between fork and exec) must be.
            let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
        }
        signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
            .map_err(nix_err)?;
        cloexec_inherited_fds();
        Ok(())
    };
    // SAFETY: the hook only makes raw, async-signal-safe syscalls
    // (setsid, sigaction, sigprocmask) and neither allocates nor takes
    // locks, which is what pre_exec requires in the forked child.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Marks every descriptor above stderr close-on-exec. Init opens all of
/// its own with O_CLOEXEC; this catches any it inherited without it.
/// Marking rather than closing keeps std's exec-error pipe working.
fn cloexec_inherited_fds() {
    use nix::libc;
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors; a raw syscall is async-signal-safe.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Kernels before 5.11: the common range, one descriptor at a time.
    for fd in 3..1024 {
        // SAFETY: F_SETFD on a number that may not be an open descriptor
        // at worst fails with EBADF; it touches no memory.
        let _ = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// `KEY_MAX` is 0x2ff, so the key bitmap is 0x300 bits.
const KEY_BITS_LEN: usize = 0x300 / 8;
type KeyBits = [u8; KEY_BITS_LEN];
/// `EVIOCGBIT(EV_KEY, sizeof(KeyBits))`: `_IOR('E', 0x20 + EV_KEY, len)`.
const EVIOCGBIT_KEY: rustix::ioctl::Opcode = rustix::ioctl::opcode::read::<KeyBits>(b'E', 0x21);

/// Whether an evdev device can report key `code`.
pub fn device_has_key<Fd: AsFd>(fd: Fd, code: u16) -> io::Result<bool> {
    // SAFETY: EVIOCGBIT(EV_KEY, len) writes at most `len` bytes of key
    // bitmap, and the getter's output type is exactly that many bytes.
    let getter = unsafe { rustix::ioctl::Getter::<EVIOCGBIT_KEY, KeyBits>::new() };
    // SAFETY: the opcode and output type agree (see above), and `fd` is a
    // valid open descriptor for the duration of the call.
    let bits = unsafe { rustix::ioctl::ioctl(fd, getter) }.map_err(io::Error::from)?;
    let byte = bits.get(usize::from(code / 8)).copied().unwrap_or(0);
    Ok(byte & (1 << (code % 8)) != 0)
}

/// Opens a whole disk for rewriting its partition table: O_SYNC, so each
/// write is on the disk before the next (the GPT's crash safety rests on
/// that order), O_CLOEXEC like every descriptor init holds.
pub fn open_disk(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags((rustix::fs::OFlags::SYNC | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
}

/// Mounts `source` on `target`.
pub fn mount_fs(
    source: &str,
    target: &str,
    fs_type: &str,
    flags: rustix::mount::MountFlags,
    data: Option<&std::ffi::CStr>,
) -> io::Result<()> {
    rustix::mount::mount(source, target, fs_type, flags, data).map_err(io::Error::from)
}

/// `BLKPG`: `_IO(0x12, 105)`; the argument is a `struct blkpg_ioctl_arg *`.
const BLKPG: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 105);
const BLKPG_RESIZE_PARTITION: i32 = 3;
const BLKPG_DEVNAMELTH: usize = 64;
const BLKPG_VOLNAMELTH: usize = 64;

/// `struct blkpg_partition` (linux/blkpg.h). Offsets in bytes.
#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: i32,
    devname: [u8; BLKPG_DEVNAMELTH],
    volname: [u8; BLKPG_VOLNAMELTH],
}

/// `struct blkpg_ioctl_arg` (linux/blkpg.h).
#[repr(C)]
struct BlkpgIoctlArg {
    op: i32,
    flags: i32,
    datalen: i32,
    data: *mut BlkpgPartition,
}

/// Tells the kernel that partition `number` of the disk open as `disk`
/// now spans `length` bytes from `start` (what `resizepart` does). The
/// kernel only allows growing into free space and keeps the start.
pub fn blkpg_resize_partition<Fd: AsFd>(
    disk: Fd,
    number: u32,
    start: u64,
    length: u64,
) -> io::Result<()> {
    let invalid = |_| io::Error::from(io::ErrorKind::InvalidInput);
    let mut partition = BlkpgPartition {
        start: i64::try_from(start).map_err(invalid)?,
        length: i64::try_from(length).map_err(invalid)?,
        pno: i32::try_from(number).map_err(invalid)?,
        devname: [0; BLKPG_DEVNAMELTH],
        volname: [0; BLKPG_VOLNAMELTH],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as i32,
        data: &mut partition,
    };
    // SAFETY: BLKPG takes a pointer to a `struct blkpg_ioctl_arg`, which
    // `BlkpgIoctlArg` lays out (repr(C)); the kernel only reads it.
    let setter = unsafe { rustix::ioctl::Setter::<BLKPG, BlkpgIoctlArg>::new(arg) };
    // SAFETY: the opcode and argument type agree (above); `arg.data`
    // points at `partition`, alive and `datalen` bytes long for the whole
    // call; `disk` is an open descriptor.
    unsafe { rustix::ioctl::ioctl(disk, setter) }.map_err(io::Error::from)
}

/// `EXT4_IOC_RESIZE_FS`: `_IOW('f', 16, __u64)`.
const EXT4_IOC_RESIZE_FS: rustix::ioctl::Opcode = rustix::ioctl::opcode::write::<u64>(b'f', 16);

/// Grows a mounted ext4 filesystem (any descriptor on it) to `blocks`
/// blocks, online, as `resize2fs` does for a mounted filesystem.
pub fn ext4_resize_fs<Fd: AsFd>(fs: Fd, blocks: u64) -> io::Result<()> {
    // SAFETY: EXT4_IOC_RESIZE_FS reads one `__u64` through its pointer
    // argument, which is exactly the input type given.
    let setter = unsafe { rustix::ioctl::Setter::<EXT4_IOC_RESIZE_FS, u64>::new(blocks) };
    // SAFETY: the opcode and input type agree (above), and `fs` is an
    // open descriptor for the duration of the call.
    unsafe { rustix::ioctl::ioctl(fs, setter) }.map_err(io::Error::from)
}

/// Time since the kernel started (CLOCK_BOOTTIME, counts suspend).
pub fn since_boot() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// This process's resident set size in KiB (`VmRSS` of /proc/self/status).
pub fn rss_kib() -> Option<u64> {
    let status = read_capped(std::path::Path::new("/proc/self/status"), 64 * 1024).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// A signal's name for logs (`SIGKILL`), or its number when unknown.
pub fn signal_name(sig: i32) -> SignalName {
    SignalName(sig)
}

pub struct SignalName(i32);

impl std::fmt::Display for SignalName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Signal::try_from(self.0) {
            Ok(s) => f.write_str(s.as_str()),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_parsed() {
        let s = "Name:\tx\nVmPeak:\t 1 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(parse_vm_rss(s), Some(1234));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kib().unwrap() > 0);
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9).to_string(), "SIGKILL");
        assert_eq!(signal_name(15).to_string(), "SIGTERM");
        assert_eq!(signal_name(99).to_string(), "99");
    }

    #[test]
    fn evdev_opcode_matches_the_c_macro() {
        // _IOR('E', 0x21, 96) = (2 << 30) | (96 << 16) | ('E' << 8) | 0x21
        assert_eq!(
            EVIOCGBIT_KEY as u64,
            (2u64 << 30) | (96 << 16) | (0x45 << 8) | 0x21
        );
    }

    #[test]
    fn block_ioctls_match_the_c_headers() {
        // _IO(0x12, 105) and _IOW('f', 16, __u64).
        assert_eq!(BLKPG as u64, 0x1269);
        assert_eq!(EXT4_IOC_RESIZE_FS as u64, 0x4008_6610);
        // sizeof(struct blkpg_partition) = 152, blkpg_ioctl_arg = 24 on
        // x86_64 (the kernel checks datalen against the first).
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
    }

    #[test]
    fn boottime_advances() {
        assert!(since_boot() > Duration::ZERO);
    }
}
