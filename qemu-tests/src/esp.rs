//! Reads a test disk's EFI system partition from the host after the VM
//! stopped: what systemd-boot's boot counting did to the UKI's name is
//! written there, and nowhere else.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

const SECTOR: u64 = 512;

/// One partition of a disk image, as a file of its own.
struct PartitionWindow {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for PartitionWindow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// fatfs wants a writable device; inspecting must never change the disk.
impl Write for PartitionWindow {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the ESP is inspected read-only",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for PartitionWindow {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

/// The file names in `EFI/Linux` of the disk's ESP, sorted.
pub fn linux_entries(disk: &Path) -> Result<Vec<String>> {
    let io_err = |what: &str, e: io::Error| Error::io(format!("{what} {}", disk.display()), e);
    let mut file = File::open(disk).map_err(|e| io_err("opening", e))?;
    let sectors = file.metadata().map_err(|e| io_err("reading", e))?.len() / SECTOR;
    let gpt = husk_gpt::read_verified(&mut file, SECTOR, sectors)
        .map_err(|e| Error::Build(format!("the GPT of {}: {e}", disk.display())))?;
    let esp_type: husk_gpt::Guid = husk_gpt::ESP_TYPE
        .parse()
        .map_err(|e| Error::Build(format!("ESP type GUID: {e}")))?;
    let (_, esp) = gpt
        .entries
        .iter()
        .find(|(_, entry)| entry.type_guid == esp_type)
        .ok_or_else(|| Error::Build(format!("{} has no EFI system partition", disk.display())))?;
    let window = PartitionWindow {
        file,
        start: esp.first_lba * SECTOR,
        len: esp.sectors() * SECTOR,
        pos: 0,
    };
    let fs = fatfs::FileSystem::new(window, fatfs::FsOptions::new())
        .map_err(|e| io_err("the ESP of", e))?;
    let dir = fs
        .root_dir()
        .open_dir("EFI/Linux")
        .map_err(|e| io_err("EFI/Linux on", e))?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let name = entry
            .map_err(|e| io_err("listing EFI/Linux on", e))?
            .file_name();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
