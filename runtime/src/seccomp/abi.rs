//! The syscall ABIs of an x86_64 machine, and a syscall's number in each.

use std::str::FromStr;

use super::x32;

/// `seccomp_data.arch` values (linux/audit.h).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    X86_64,
    /// 32-bit x86 (`int 0x80`, ia32 binaries).
    I386,
    /// x86_64 with 32-bit pointers.
    X32,
}

impl Abi {
    /// The number `seccomp_data.nr` holds for `name` in this ABI.
    pub fn number(self, name: &str) -> Option<u32> {
        match self {
            Abi::X86_64 => syscalls::x86_64::Sysno::from_str(name)
                .ok()
                .map(|s| s.id() as u32),
            Abi::I386 => syscalls::x86::Sysno::from_str(name)
                .ok()
                .map(|s| s.id() as u32),
            Abi::X32 => {
                let native = syscalls::x86_64::Sysno::from_str(name).ok()?;
                x32::number(name, native.id() as u32)
            }
        }
    }
}
