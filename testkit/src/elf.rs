//! Tiny static x86_64 programs that make one syscall through a chosen ABI
//! and exit with the low byte of its result: what a hostile binary does
//! to test a seccomp filter, without a 32-bit toolchain.
//!
//! The status reads: the syscall's return value's low byte, so 255 for
//! -EPERM, 218 for -ENOSYS, 0 for success, the pid's low byte for
//! getpid; a process the filter kills shows SIGSYS instead.

/// Which door the syscall goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// `syscall` with an x86_64 number.
    X86_64,
    /// `int 0x80`: the i386 ABI (architecture AUDIT_ARCH_I386), from a
    /// 64-bit process.
    I386,
    /// `syscall` with the x32 bit set on an x32 number.
    X32,
}

const BASE: u64 = 0x40_0000;
const HEADERS: usize = 64 + 56;

/// An ELF executable making syscall `nr` with up to three arguments.
pub fn syscall_probe(abi: Abi, nr: u32, args: [u32; 3]) -> Vec<u8> {
    let mut code = Vec::new();
    let mov = |code: &mut Vec<u8>, opcode: u8, imm: u32| {
        code.push(opcode);
        code.extend_from_slice(&imm.to_le_bytes());
    };
    let nr = if abi == Abi::X32 {
        nr | 0x4000_0000
    } else {
        nr
    };
    mov(&mut code, 0xb8, nr); // mov eax, nr (zero-extends into rax)
    match abi {
        Abi::I386 => {
            mov(&mut code, 0xbb, args[0]); // mov ebx
            mov(&mut code, 0xb9, args[1]); // mov ecx
            mov(&mut code, 0xba, args[2]); // mov edx
            code.extend_from_slice(&[0xcd, 0x80]); // int 0x80
        }
        Abi::X86_64 | Abi::X32 => {
            mov(&mut code, 0xbf, args[0]); // mov edi
            mov(&mut code, 0xbe, args[1]); // mov esi
            mov(&mut code, 0xba, args[2]); // mov edx
            code.extend_from_slice(&[0x0f, 0x05]); // syscall
        }
    }
    code.extend_from_slice(&[0x89, 0xc7]); // mov edi, eax
    mov(&mut code, 0xb8, 60); // mov eax, SYS_exit
    code.extend_from_slice(&[0x0f, 0x05]); // syscall

    let size = (HEADERS + code.len()) as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // ELF header: 64-bit, little-endian, version 1, System V.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + HEADERS as u64).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers at
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    elf.extend_from_slice(&64u16.to_le_bytes()); // header size
    elf.extend_from_slice(&56u16.to_le_bytes()); // program header size
    elf.extend_from_slice(&1u16.to_le_bytes()); // one program header
    elf.extend_from_slice(&[0; 6]); // no section headers, no names
    // One PT_LOAD of the whole file, readable and executable.
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    elf.extend_from_slice(&0u64.to_le_bytes()); // offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // paddr
    elf.extend_from_slice(&size.to_le_bytes()); // filesz
    elf.extend_from_slice(&size.to_le_bytes()); // memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // align
    debug_assert_eq!(elf.len(), HEADERS);
    elf.extend_from_slice(&code);
    elf
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;

    fn run(abi: Abi, nr: u32, args: [u32; 3]) -> std::process::ExitStatus {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        std::fs::write(&path, syscall_probe(abi, nr, args)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::process::Command::new(&path).status().unwrap()
    }

    #[test]
    fn probes_make_their_syscall() {
        // getppid (x86_64 110, i386 64) returns this process's pid.
        let me = (std::process::id() & 0xff) as i32;
        assert_eq!(run(Abi::X86_64, 110, [0; 3]).code(), Some(me));
        assert_eq!(run(Abi::I386, 64, [0; 3]).code(), Some(me));
        // close(-1): EBADF (9) → 247, through both.
        assert_eq!(run(Abi::X86_64, 3, [u32::MAX, 0, 0]).code(), Some(247));
        assert_eq!(run(Abi::I386, 6, [u32::MAX, 0, 0]).code(), Some(247));
        // x32 getppid: the pid, or ENOSYS (218) where the kernel has no x32.
        let x32 = run(Abi::X32, 110, [0; 3]);
        assert!(
            x32.code() == Some(me) || x32.code() == Some(218),
            "{x32:?} {:?}",
            x32.signal()
        );
    }
}
