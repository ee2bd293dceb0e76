//! The x32 ABI's syscall numbers (x86_64 processes with 32-bit pointers:
//! architecture AUDIT_ARCH_X86_64, number | `X32_SYSCALL_BIT`).
//!
//! x32 shares x86_64's numbers for every syscall but these: the ones
//! whose arguments hold pointers or structures of another size have their
//! own numbers from 512 (`COMPAT`), and a few x86_64 syscalls do not exist
//! for x32 at all (`MISSING`). Both lists are the kernel's fixed ABI
//! (arch/x86/entry/syscalls/syscall_64.tbl; checked against Debian's
//! linux-libc-dev `asm/unistd_x32.h`).

/// The bit that marks an x32 syscall number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// x32's own numbers (without the x32 bit).
pub const COMPAT: &[(&str, u32)] = &[
    ("rt_sigaction", 512),
    ("rt_sigreturn", 513),
    ("ioctl", 514),
    ("readv", 515),
    ("writev", 516),
    ("recvfrom", 517),
    ("sendmsg", 518),
    ("recvmsg", 519),
    ("execve", 520),
    ("ptrace", 521),
    ("rt_sigpending", 522),
    ("rt_sigtimedwait", 523),
    ("rt_sigqueueinfo", 524),
    ("sigaltstack", 525),
    ("timer_create", 526),
    ("mq_notify", 527),
    ("kexec_load", 528),
    ("waitid", 529),
    ("set_robust_list", 530),
    ("get_robust_list", 531),
    ("vmsplice", 532),
    ("move_pages", 533),
    ("preadv", 534),
    ("pwritev", 535),
    ("rt_tgsigqueueinfo", 536),
    ("recvmmsg", 537),
    ("sendmmsg", 538),
    ("process_vm_readv", 539),
    ("process_vm_writev", 540),
    ("setsockopt", 541),
    ("getsockopt", 542),
    ("io_setup", 543),
    ("io_submit", 544),
    ("execveat", 545),
    ("preadv2", 546),
    ("pwritev2", 547),
];

/// x86_64 syscalls x32 does not have.
pub const MISSING: &[&str] = &[
    "_sysctl",
    "create_module",
    "epoll_ctl_old",
    "epoll_wait_old",
    "get_kernel_syms",
    "get_thread_area",
    "nfsservctl",
    "query_module",
    "set_thread_area",
    "uselib",
    "vserver",
];

/// The x32 number of a syscall known by its x86_64 number, bit included.
pub fn number(name: &str, x86_64: u32) -> Option<u32> {
    if let Some((_, nr)) = COMPAT.iter().find(|(n, _)| *n == name) {
        return Some(nr | X32_SYSCALL_BIT);
    }
    if MISSING.contains(&name) {
        return None;
    }
    Some(x86_64 | X32_SYSCALL_BIT)
}
