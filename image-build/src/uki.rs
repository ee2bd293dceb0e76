//! Assembles a Unified Kernel Image (UKI): systemd's EFI stub with the
//! kernel, the initramfs, the command line and os-release added as PE
//! sections, the way systemd's `ukify` does it.
//!
//! Layout (ukify's): the new section headers go into the free space after
//! the stub's section table (the stub leaves room; if it did not, this is
//! an error, as in ukify). The section contents are appended after the
//! stub's last section, in increasing file offset and virtual address
//! order `.osrel`, `.cmdline`, `.uname`, `.initrd`, `.linux`: `.linux` is
//! last so nothing sits above the kernel. Virtual addresses are aligned to
//! 4 KiB (a multiple of the stub's SectionAlignment), file offsets to
//! FileAlignment. The stub's COFF symbol table (deprecated in images; the
//! PE spec says PointerToSymbolTable should be zero) is dropped rather than
//! overwritten. The header checksum is recomputed.
//!
//! Determinism: the output depends only on the stub and the section
//! contents; nothing is timestamped.

use std::path::{Path, PathBuf};

/// Debian's systemd EFI stub (package [`STUB_PACKAGE`]).
pub const DEFAULT_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// The Debian package shipping [`DEFAULT_STUB`].
pub const STUB_PACKAGE: &str = "systemd-boot-efi";

const PE32_PLUS_MAGIC: u16 = 0x20b;
const SECTION_HEADER_LEN: usize = 40;
/// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ, as ukify sets.
const DATA_SECTION_FLAGS: u32 = 0x4000_0040;
/// Virtual addresses of added sections are page aligned.
const PAGE: u32 = 4096;

/// What goes into a UKI besides the stub.
#[derive(Debug, Clone, Copy)]
pub struct UkiSections<'a> {
    /// `.osrel`: os-release text (see [`os_release`]).
    pub os_release: &'a str,
    /// `.cmdline`: the kernel command line, plain text as ukify writes it.
    pub cmdline: &'a str,
    /// `.uname`: the kernel release, if known.
    pub uname: Option<&'a str>,
    /// `.initrd`: the initramfs.
    pub initrd: &'a [u8],
    /// `.linux`: the kernel (an x86 bzImage).
    pub linux: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    #[error("reading {path}: {source} (the systemd stub is in Debian's {STUB_PACKAGE})")]
    ReadStub {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the stub is not a PE32+ image: {0}")]
    BadStub(&'static str),
    #[error(
        "the stub has no room for {needed} more section headers (table ends at {table_end:#x}, \
         first section data at {first_data:#x})"
    )]
    NoHeaderRoom {
        needed: usize,
        table_end: usize,
        first_data: usize,
    },
    #[error("the kernel is not an x86 bzImage (no 'HdrS' setup header)")]
    BadKernel,
    #[error("the {0} section contains a NUL byte")]
    NulInText(&'static str),
    #[error("the image would exceed 4 GiB")]
    TooLarge,
}

/// One section header, as read back by [`sections`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub raw_size: u32,
    pub raw_offset: u32,
    pub characteristics: u32,
}

impl Section {
    /// The section's contents (its virtual size of its raw data).
    pub fn data<'a>(&self, image: &'a [u8]) -> Option<&'a [u8]> {
        let start = self.raw_offset as usize;
        let len = self.virtual_size.min(self.raw_size) as usize;
        image.get(start..start.checked_add(len)?)
    }
}

/// The os-release text Husk puts in `.osrel`: systemd-boot shows
/// PRETTY_NAME and orders entries by IMAGE_VERSION/VERSION_ID.
pub fn os_release(version: &str) -> String {
    format!(
        "NAME=\"Husk\"\nID=husk\nPRETTY_NAME=\"Husk {version}\"\nVERSION_ID=\"{version}\"\n\
         IMAGE_ID=husk\nIMAGE_VERSION=\"{version}\"\n"
    )
}

/// Offsets of the headers that [`assemble`] edits.
struct Headers {
    coff: usize,
    optional: usize,
    table: usize,
    sections: Vec<Section>,
    file_alignment: u32,
    section_alignment: u32,
    size_of_headers: u32,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, UkiError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(UkiError::BadStub("truncated headers"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, UkiError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(UkiError::BadStub("truncated headers"))
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn parse(image: &[u8]) -> Result<Headers, UkiError> {
    if image.get(..2) != Some(b"MZ") {
        return Err(UkiError::BadStub("no MZ signature"));
    }
    let pe = u32_at(image, 0x3c)? as usize;
    if image.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(UkiError::BadStub("no PE signature"));
    }
    let coff = pe + 4;
    let count = u16_at(image, coff + 2)? as usize;
    let optional_len = u16_at(image, coff + 16)? as usize;
    let optional = coff + 20;
    if u16_at(image, optional)? != PE32_PLUS_MAGIC {
        return Err(UkiError::BadStub("not PE32+"));
    }
    let table = optional + optional_len;
    let mut sections = Vec::with_capacity(count);
    for i in 0..count {
        let at = table + i * SECTION_HEADER_LEN;
        let raw_name = image
            .get(at..at + 8)
            .ok_or(UkiError::BadStub("truncated section table"))?;
        let name_len = raw_name.iter().position(|&c| c == 0).unwrap_or(8);
        sections.push(Section {
            name: String::from_utf8_lossy(&raw_name[..name_len]).into_owned(),
            virtual_size: u32_at(image, at + 8)?,
            virtual_address: u32_at(image, at + 12)?,
            raw_size: u32_at(image, at + 16)?,
            raw_offset: u32_at(image, at + 20)?,
            characteristics: u32_at(image, at + 36)?,
        });
    }
    let file_alignment = u32_at(image, optional + 36)?;
    let section_alignment = u32_at(image, optional + 32)?;
    if !file_alignment.is_power_of_two() || !section_alignment.is_power_of_two() {
        return Err(UkiError::BadStub("alignment is not a power of two"));
    }
    Ok(Headers {
        coff,
        optional,
        table,
        sections,
        file_alignment,
        section_alignment,
        size_of_headers: u32_at(image, optional + 60)?,
    })
}

/// The section table of a PE image.
pub fn sections(image: &[u8]) -> Result<Vec<Section>, UkiError> {
    parse(image).map(|h| h.sections)
}

fn align(value: u64, to: u32) -> u64 {
    value.div_ceil(u64::from(to)) * u64::from(to)
}

/// Builds the UKI in memory from the stub's bytes.
pub fn assemble(stub: &[u8], parts: &UkiSections<'_>) -> Result<Vec<u8>, UkiError> {
    if parts.linux.get(0x202..0x206) != Some(b"HdrS") {
        return Err(UkiError::BadKernel);
    }
    for (name, text) in [
        ("os-release", parts.os_release),
        ("cmdline", parts.cmdline),
        ("uname", parts.uname.unwrap_or("")),
    ] {
        if text.contains('\0') {
            return Err(UkiError::NulInText(name));
        }
    }
    let mut added: Vec<(&str, &[u8])> = vec![
        (".osrel", parts.os_release.as_bytes()),
        (".cmdline", parts.cmdline.as_bytes()),
    ];
    if let Some(uname) = parts.uname {
        added.push((".uname", uname.as_bytes()));
    }
    added.push((".initrd", parts.initrd));
    added.push((".linux", parts.linux));

    let h = parse(stub)?;
    let table_end = h.table + h.sections.len() * SECTION_HEADER_LEN;
    let first_data = h
        .sections
        .iter()
        .filter(|s| s.raw_size > 0)
        .map(|s| s.raw_offset as usize)
        .min()
        .unwrap_or(h.size_of_headers as usize)
        .min(h.size_of_headers as usize);
    let needed_end = table_end + added.len() * SECTION_HEADER_LEN;
    if needed_end > first_data {
        return Err(UkiError::NoHeaderRoom {
            needed: added.len(),
            table_end,
            first_data,
        });
    }
    if stub[table_end..needed_end].iter().any(|&b| b != 0) {
        return Err(UkiError::BadStub(
            "the space after the section table is not free",
        ));
    }

    // The stub up to the end of its last section's raw data; anything
    // after it (the COFF symbol table) is dropped.
    let stub_end = h
        .sections
        .iter()
        .map(|s| u64::from(s.raw_offset) + u64::from(s.raw_size))
        .max()
        .unwrap_or(u64::from(h.size_of_headers));
    let mut file_pos = align(stub_end, h.file_alignment);
    let mut vma = h
        .sections
        .iter()
        .map(|s| u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.raw_size)))
        .max()
        .unwrap_or(0);
    let vma_alignment = h.section_alignment.max(PAGE);

    let mut out = stub
        .get(..stub_end as usize)
        .ok_or(UkiError::BadStub("section data past the end"))?
        .to_vec();
    let mut initialized_data = u64::from(u32_at(stub, h.optional + 8)?);
    for (i, (name, data)) in added.iter().enumerate() {
        vma = align(vma, vma_alignment);
        let raw_size = align(data.len() as u64, h.file_alignment);
        let fits = |v: u64| u32::try_from(v).map_err(|_| UkiError::TooLarge);
        let header = h.table + (h.sections.len() + i) * SECTION_HEADER_LEN;
        let mut name_bytes = [0u8; 8];
        name_bytes[..name.len()].copy_from_slice(name.as_bytes());
        out[header..header + 8].copy_from_slice(&name_bytes);
        put_u32(&mut out, header + 8, fits(data.len() as u64)?);
        put_u32(&mut out, header + 12, fits(vma)?);
        put_u32(&mut out, header + 16, fits(raw_size)?);
        put_u32(&mut out, header + 20, fits(file_pos)?);
        out[header + 24..header + 36].fill(0); // relocations, line numbers
        put_u32(&mut out, header + 36, DATA_SECTION_FLAGS);

        out.resize(file_pos as usize, 0);
        out.extend_from_slice(data);
        out.resize((file_pos + raw_size) as usize, 0);
        file_pos += raw_size;
        vma += data.len() as u64;
        initialized_data += raw_size;
    }
    let size_of_image = align(vma, h.section_alignment);
    let count = (h.sections.len() + added.len()) as u16;
    put_u16(&mut out, h.coff + 2, count);
    put_u32(&mut out, h.coff + 8, 0); // PointerToSymbolTable
    put_u32(&mut out, h.coff + 12, 0); // NumberOfSymbols
    put_u32(
        &mut out,
        h.optional + 8,
        u32::try_from(initialized_data).map_err(|_| UkiError::TooLarge)?,
    );
    put_u32(
        &mut out,
        h.optional + 56,
        u32::try_from(size_of_image).map_err(|_| UkiError::TooLarge)?,
    );
    let checksum_at = h.optional + 64;
    put_u32(&mut out, checksum_at, 0);
    let checksum = pe_checksum(&out, checksum_at);
    put_u32(&mut out, checksum_at, checksum);
    Ok(out)
}

/// The PE image checksum (as `imagehlp!CheckSumMappedFile` computes it):
/// the 16-bit one's-complement-style sum of the file with the checksum
/// field taken as zero, plus the file length.
pub fn pe_checksum(image: &[u8], checksum_at: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in image.chunks(2).enumerate() {
        let offset = i * 2;
        if offset >= checksum_at && offset < checksum_at + 4 {
            continue;
        }
        let word = u16::from_le_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u64::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(image.len() as u32)
}

/// Reads the stub at `stub` and assembles the UKI.
pub fn assemble_from(stub: &Path, parts: &UkiSections<'_>) -> Result<Vec<u8>, UkiError> {
    let bytes = std::fs::read(stub).map_err(|e| UkiError::ReadStub {
        path: stub.to_owned(),
        source: e,
    })?;
    assemble(&bytes, parts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    pub(crate) fn stub() -> Vec<u8> {
        std::fs::read(DEFAULT_STUB)
            .unwrap_or_else(|e| panic!("{DEFAULT_STUB}: {e}: apt-get install {STUB_PACKAGE}"))
    }

    /// A stand-in bzImage: the setup header magic where the stub looks,
    /// then patterned bytes.
    pub(crate) fn fake_kernel(len: usize) -> Vec<u8> {
        let mut k: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        k[..2].copy_from_slice(b"MZ");
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k
    }

    pub(crate) fn sample_uki() -> Vec<u8> {
        let initrd: Vec<u8> = (0..3_000_001u32).map(|i| (i % 13) as u8).collect();
        let osrel = os_release("1.2.3");
        let parts = UkiSections {
            os_release: &osrel,
            cmdline: "console=ttyS0 quiet",
            uname: Some("6.1.0-56-cloud-amd64"),
            initrd: &initrd,
            linux: &fake_kernel(5_000_003),
        };
        assemble(&stub(), &parts).unwrap()
    }

    fn objdump_sections(path: &Path) -> Vec<(String, u64, u64, u64)> {
        let out = Command::new("objdump")
            .arg("-h")
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("objdump: {e}: apt-get install binutils"));
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (f.len() == 7 && f[0].parse::<u32>().is_ok()).then(|| {
                    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
                    (f[1].to_owned(), hex(f[2]), hex(f[3]), hex(f[5]))
                })
            })
            .collect()
    }

    #[test]
    fn objdump_lists_the_sections_and_contents_read_back() {
        let image = sample_uki();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("husk.efi");
        std::fs::write(&path, &image).unwrap();
        let listed = objdump_sections(&path);
        let names: Vec<&str> = listed.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            &names[names.len() - 5..],
            [".osrel", ".cmdline", ".uname", ".initrd", ".linux"],
            "{listed:?}"
        );
        let ours = sections(&image).unwrap();
        let expected: [(&str, Vec<u8>); 5] = [
            (".osrel", os_release("1.2.3").into_bytes()),
            (".cmdline", b"console=ttyS0 quiet".to_vec()),
            (".uname", b"6.1.0-56-cloud-amd64".to_vec()),
            (
                ".initrd",
                (0..3_000_001u32).map(|i| (i % 13) as u8).collect(),
            ),
            (".linux", fake_kernel(5_000_003)),
        ];
        let mut last_vma = 0;
        for (name, data) in &expected {
            let (_, size, vma, file_off) = listed.iter().find(|s| s.0 == *name).unwrap();
            assert_eq!(*size, data.len() as u64, "{name} size per objdump");
            assert!(*vma > last_vma && vma & 4095 == 0, "{name} at {vma:#x}");
            last_vma = *vma;
            let section = ours.iter().find(|s| s.name == *name).unwrap();
            assert_eq!(u64::from(section.raw_offset), *file_off);
            assert_eq!(section.data(&image).unwrap(), &data[..], "{name} contents");
            // objcopy is the independent reader of the contents.
            let dumped = dir.path().join(format!("{}.bin", &name[1..]));
            let status = Command::new("objcopy")
                .arg(format!("--dump-section={name}={}", dumped.display()))
                .arg(&path)
                .arg(dir.path().join("scratch.efi"))
                .status()
                .unwrap();
            assert!(status.success());
            assert_eq!(
                &std::fs::read(&dumped).unwrap()[..data.len()],
                &data[..],
                "{name} per objcopy"
            );
        }
        // The stub's own sections are untouched.
        let stub = stub();
        for s in sections(&stub).unwrap() {
            let now = ours.iter().find(|o| o.name == s.name).unwrap();
            assert_eq!(now, &s);
            assert_eq!(now.data(&image), s.data(&stub));
        }
    }

    #[test]
    fn headers_and_checksum_are_consistent() {
        let image = sample_uki();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.efi");
        std::fs::write(&path, &image).unwrap();
        let out = Command::new("objdump")
            .arg("-p")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            let line = text
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name}: {text}"));
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        let h = parse(&image).unwrap();
        let last = h.sections.last().unwrap();
        assert_eq!(last.name, ".linux");
        assert_eq!(
            field("SizeOfImage"),
            align(
                u64::from(last.virtual_address) + u64::from(last.virtual_size),
                h.section_alignment
            )
        );
        assert_eq!(
            field("CheckSum"),
            u64::from(pe_checksum(&image, h.optional + 64))
        );
        assert_ne!(field("CheckSum"), 0);
        // The file ends with the last section's raw data.
        assert_eq!(
            image.len() as u64,
            u64::from(last.raw_offset) + u64::from(last.raw_size)
        );
    }

    /// The checksum routine reproduces the one the stub was linked with.
    #[test]
    fn checksum_matches_the_linker() {
        let stub = stub();
        let h = parse(&stub).unwrap();
        let at = h.optional + 64;
        assert_eq!(pe_checksum(&stub, at), u32_at(&stub, at).unwrap());
    }

    #[test]
    fn reproducible_and_validated() {
        assert_eq!(sample_uki(), sample_uki());
        let osrel = os_release("1");
        let parts = UkiSections {
            os_release: &osrel,
            cmdline: "",
            uname: None,
            initrd: b"",
            linux: b"not a kernel",
        };
        assert!(matches!(
            assemble(&stub(), &parts),
            Err(UkiError::BadKernel)
        ));
        let err = assemble_from(Path::new("/nonexistent/stub"), &parts).unwrap_err();
        assert!(err.to_string().contains("systemd-boot-efi"), "{err}");
    }
}
