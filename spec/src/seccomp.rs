//! The default seccomp profile: Docker's `profiles/seccomp/default.json`
//! resolved for Husk's default capabilities on x86, in the OCI runtime
//! spec's own format (`seccomp_default.json`, embedded).
//!
//! Docker's file is a template: groups of syscalls allowed only when the
//! container has a capability (`includes.caps`) or lacks one
//! (`excludes.caps`), or on some architectures. The default capability set
//! has none of CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_SYS_BOOT,
//! CAP_SYS_TIME, CAP_SYS_NICE, CAP_SYSLOG, CAP_BPF, CAP_PERFMON,
//! CAP_SYS_RAWIO, CAP_SYS_PACCT, CAP_SYS_TTY_CONFIG, CAP_DAC_READ_SEARCH, so
//! their groups are left out, and the file says what Docker's profile
//! becomes for a default container:
//!
//! - default action `SCMP_ACT_ERRNO` with errno 1 (EPERM);
//! - the big unconditional allow list;
//! - `personality` only with the domains Docker allows (PER_LINUX,
//!   PER_LINUX32, UNAME26 and their combination, and 0xffffffff, the query);
//! - `arch_prctl` and `modify_ldt` (x86), `chroot` (CAP_SYS_CHROOT is a
//!   default capability);
//! - `socket` for every family but AF_VSOCK (40), which reaches the host;
//! - `clone` only without namespace flags (the CAP_SYS_ADMIN exclusion:
//!   `flags & (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET)
//!   == 0`);
//! - `clone3` fails with ENOSYS, not EPERM: its flags are behind a pointer
//!   seccomp cannot read, and ENOSYS makes glibc fall back to `clone`.
//!
//! Husk's differences from Docker, each stricter except one:
//! - `ptrace`, `process_vm_readv` and `process_vm_writev` are denied
//!   (Docker allows them on kernels ≥ 4.8);
//! - `io_uring_*` are denied (as Docker ≥ 25 does);
//! - `unshare` is allowed without namespace flags, with the same mask as
//!   `clone` (Docker denies it entirely without CAP_SYS_ADMIN; unsharing
//!   the file table or fs attributes gives nothing away).
//!
//! Denied by omission, among others: mount, umount2, pivot_root, the new
//! mount API, kexec_load, kexec_file_load, bpf, keyctl, add_key,
//! request_key, init_module, finit_module, delete_module, setns, reboot,
//! swapon, swapoff, open_by_handle_at, perf_event_open, userfaultfd,
//! sethostname, setdomainname, syslog, acct, settimeofday, clock_settime.
//!
//! The profile lists the x86_64, x86 and x32 architectures as Docker's
//! does, and names 32-bit syscalls too (`chown32`, `_llseek`,
//! `socketcall`…): the runtime compiles each ABI with its own numbers, so
//! a 32-bit program runs under the same rules as a 64-bit one.

use std::sync::OnceLock;

use oci_spec::runtime::LinuxSeccomp;

const PROFILE_JSON: &str = include_str!("seccomp_default.json");

/// The embedded profile does not parse (a build that the tests fail).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the built-in seccomp profile is invalid: {0}")]
pub struct SeccompProfileError(String);

/// Docker's default profile for a container with the default capabilities.
pub fn default_profile() -> Result<LinuxSeccomp, SeccompProfileError> {
    // Parsed once per process; every container gets its own copy.
    static PROFILE: OnceLock<Result<LinuxSeccomp, SeccompProfileError>> = OnceLock::new();
    PROFILE
        .get_or_init(|| {
            serde_json::from_str(PROFILE_JSON).map_err(|e| SeccompProfileError(e.to_string()))
        })
        .clone()
}

#[cfg(test)]
pub(crate) mod tests {
    use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompOperator};

    use super::*;

    /// How a profile treats a syscall, as far as a test needs to know.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Verdict {
        Allowed,
        /// Allowed only when its arguments match.
        AllowedIf,
        /// The default action (or an explicit errno).
        Denied,
    }

    pub fn verdict(profile: &LinuxSeccomp, name: &str) -> Verdict {
        let rules = profile.syscalls().as_deref().unwrap_or_default();
        let mut verdict = Verdict::Denied;
        for rule in rules.iter().filter(|r| r.names().iter().any(|n| n == name)) {
            if rule.action() != LinuxSeccompAction::ScmpActAllow {
                continue;
            }
            if rule.args().as_ref().is_none_or(Vec::is_empty) {
                return Verdict::Allowed;
            }
            verdict = Verdict::AllowedIf;
        }
        verdict
    }

    #[test]
    fn the_embedded_profile_parses_and_is_dockers() {
        let p = default_profile().unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        let names: Vec<&String> = p
            .syscalls()
            .as_deref()
            .unwrap()
            .iter()
            .flat_map(|r| r.names())
            .collect();
        assert!(names.len() > 350, "{}", names.len());

        for allowed in [
            "read",
            "write",
            "execve",
            "openat",
            "mmap",
            "exit_group",
            "chroot",
            "setuid",
            "futex",
            "rt_sigreturn",
        ] {
            assert_eq!(verdict(&p, allowed), Verdict::Allowed, "{allowed}");
        }
        for conditional in ["clone", "unshare", "personality", "socket"] {
            assert_eq!(
                verdict(&p, conditional),
                Verdict::AllowedIf,
                "{conditional}"
            );
        }
        for denied in [
            "mount",
            "umount2",
            "pivot_root",
            "fsopen",
            "move_mount",
            "kexec_load",
            "kexec_file_load",
            "bpf",
            "keyctl",
            "add_key",
            "request_key",
            "ptrace",
            "process_vm_readv",
            "init_module",
            "finit_module",
            "delete_module",
            "setns",
            "reboot",
            "swapon",
            "swapoff",
            "open_by_handle_at",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "sethostname",
            "syslog",
            "clock_settime",
            "clone3",
        ] {
            assert_eq!(verdict(&p, denied), Verdict::Denied, "{denied}");
        }
    }

    #[test]
    fn clone_may_not_create_namespaces_and_clone3_is_enosys() {
        let p = default_profile().unwrap();
        let rules = p.syscalls().as_deref().unwrap();
        let clone = rules
            .iter()
            .find(|r| r.names() == &["clone".to_string()])
            .unwrap();
        let arg = clone.args().as_deref().unwrap()[0];
        assert_eq!(arg.index(), 0);
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        // CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
        let mask = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000;
        let mask = mask | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;
        assert_eq!(arg.value(), mask);
        assert_eq!(arg.value_two(), Some(0));

        let clone3 = rules
            .iter()
            .find(|r| r.names() == &["clone3".to_string()])
            .unwrap();
        assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3.errno_ret(), Some(38), "ENOSYS");

        // No syscall is listed twice in the unconditional list.
        let mut all: Vec<&String> = rules[0].names().iter().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
