//! Just enough ELF to tell whether a binary can run as `/init`: the
//! kernel starts PID 1 before any file system but the initramfs exists,
//! so a dynamically linked husk-init (one with a `PT_INTERP` program
//! header naming `ld-linux`) panics the kernel with "No working init
//! found", without a word about why. The image builder refuses such a
//! binary instead, naming it and the fix.
//!
//! Only the ELF header and the program header table are read (ELF-64,
//! little-endian, x86-64: the one target images are built for); neither
//! `goblin` nor `object` is in the dependency tree, and two tables do not
//! warrant one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_INTERP: u32 = 3;
/// The ELF-64 header's size, and a program header's.
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// More program headers than any linker writes: a corrupt file.
const MAX_PHDRS: u16 = 256;

/// How an executable is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linking {
    /// No program interpreter: the kernel runs it as it is (static, or
    /// static-pie as `+crt-static` builds it).
    Static,
    /// Needs its program interpreter (`PT_INTERP`) and shared libraries.
    Dynamic { interpreter: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an x86-64 ELF executable: {reason}")]
    NotExecutable { path: PathBuf, reason: String },
}

/// Reads `path`'s headers and says how it is linked.
pub fn linking(path: &Path) -> Result<Linking, ElfError> {
    let read_error = |source| ElfError::Read {
        path: path.to_owned(),
        source,
    };
    let not = |reason: String| ElfError::NotExecutable {
        path: path.to_owned(),
        reason,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut header = [0u8; EHDR_SIZE];
    let mut got = 0;
    while got < EHDR_SIZE {
        match file.read(&mut header[got..]).map_err(read_error)? {
            0 => break,
            n => got += n,
        }
    }
    // A script or text file is told as such before its length matters.
    if got < ELF_MAGIC.len() || header[..4] != ELF_MAGIC {
        return Err(not("no ELF magic".into()));
    }
    if got < EHDR_SIZE {
        return Err(not("shorter than an ELF header".into()));
    }
    let header = Header::parse(&header).map_err(not)?;

    let table_len = usize::from(header.phnum) * PHDR_SIZE;
    let mut table = vec![0u8; table_len];
    file.seek(SeekFrom::Start(header.phoff))
        .map_err(read_error)?;
    if !read_fully(&mut file, &mut table).map_err(read_error)? {
        return Err(not(
            "the program header table runs past the file's end".into()
        ));
    }
    for phdr in table.chunks_exact(PHDR_SIZE) {
        if u32_at(phdr, 0) != PT_INTERP {
            continue;
        }
        let (offset, size) = (u64_at(phdr, 8), u64_at(phdr, 32));
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= 4096)
            .ok_or_else(|| not("PT_INTERP is implausibly large".into()))?;
        let mut name = vec![0u8; size];
        file.seek(SeekFrom::Start(offset)).map_err(read_error)?;
        if !read_fully(&mut file, &mut name).map_err(read_error)? {
            return Err(not("PT_INTERP runs past the file's end".into()));
        }
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        return Ok(Linking::Dynamic {
            interpreter: String::from_utf8_lossy(&name[..end]).into_owned(),
        });
    }
    Ok(Linking::Static)
}

/// The ELF header fields this needs.
struct Header {
    phoff: u64,
    phnum: u16,
}

impl Header {
    fn parse(bytes: &[u8; EHDR_SIZE]) -> Result<Header, String> {
        if bytes[..4] != ELF_MAGIC {
            return Err("no ELF magic".into());
        }
        if bytes[4] != ELFCLASS64 || bytes[5] != ELFDATA2LSB {
            return Err("not 64-bit little-endian".into());
        }
        let machine = u16_at(bytes, 18);
        if machine != EM_X86_64 {
            return Err(format!("built for machine {machine}, not x86-64 (62)"));
        }
        let kind = u16_at(bytes, 16);
        if kind != ET_EXEC && kind != ET_DYN {
            return Err(format!("ELF type {kind} is not an executable"));
        }
        let (phoff, phentsize, phnum) = (u64_at(bytes, 32), u16_at(bytes, 54), u16_at(bytes, 56));
        if phnum == 0 {
            return Err("no program headers".into());
        }
        if usize::from(phentsize) != PHDR_SIZE || phnum > MAX_PHDRS {
            return Err(format!(
                "malformed program header table ({phnum} entries of {phentsize} bytes)"
            ));
        }
        Ok(Header { phoff, phnum })
    }
}

/// Fills `buf`; false when the file ends first.
fn read_fully(file: &mut File, buf: &mut [u8]) -> std::io::Result<bool> {
    match file.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// A minimal static x86-64 executable: an ELF header and one `PT_LOAD`
/// program header, then `payload`. For tests that need a stand-in
/// binary the builder accepts without building the real ones.
pub fn stand_in_static(payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; EHDR_SIZE + PHDR_SIZE];
    bytes[..4].copy_from_slice(&ELF_MAGIC);
    bytes[4] = ELFCLASS64;
    bytes[5] = ELFDATA2LSB;
    bytes[6] = 1; // EV_CURRENT
    bytes[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    bytes[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    bytes[20..24].copy_from_slice(&1u32.to_le_bytes());
    bytes[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
    bytes[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    bytes[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
    bytes[EHDR_SIZE..EHDR_SIZE + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    bytes.extend_from_slice(payload);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_names_its_interpreter() {
        // Debian's coreutils are dynamically linked PIEs.
        match linking(Path::new("/bin/true")).unwrap() {
            Linking::Dynamic { interpreter } => {
                assert!(interpreter.contains("ld-linux"), "{interpreter}")
            }
            Linking::Static => panic!("/bin/true is dynamically linked"),
        }
    }

    #[test]
    fn a_static_binary_is_static() {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.is_file(),
            "no /bin/busybox: apt-get install busybox-static"
        );
        assert_eq!(linking(busybox).unwrap(), Linking::Static);
        assert_eq!(
            linking(Path::new(crate::build::E2FSCK_STATIC)).unwrap(),
            Linking::Static,
            "apt-get install e2fsck-static"
        );
    }

    #[test]
    fn the_stand_in_is_static() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stand-in");
        std::fs::write(&path, stand_in_static(b"payload")).unwrap();
        assert_eq!(linking(&path).unwrap(), Linking::Static);
    }

    #[test]
    fn what_is_no_executable_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, Vec<u8>, &str); 5] = [
            ("script", b"#!/bin/sh\necho hi\n".to_vec(), "no ELF magic"),
            ("short", b"\x7fELF\x02\x01".to_vec(), "shorter than"),
            (
                "arm",
                {
                    let mut b = stand_in_static(b"");
                    b[18] = 183; // EM_AARCH64
                    b
                },
                "machine 183",
            ),
            (
                "object",
                {
                    let mut b = stand_in_static(b"");
                    b[16] = 1; // ET_REL
                    b
                },
                "not an executable",
            ),
            (
                "truncated",
                stand_in_static(b"")[..EHDR_SIZE + 8].to_vec(),
                "past the file's end",
            ),
        ];
        for (name, bytes, words) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let e = linking(&path).unwrap_err();
            let shown = e.to_string();
            assert!(
                shown.contains(name) && shown.contains(words),
                "{name}: {shown}"
            );
        }
        let e = linking(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, ElfError::Read { .. }), "{e}");
    }
}
