//! `gpt_read`: a disk's partition tables as husk-init reads them at boot
//! ([`husk_gpt::read_verified`]) and grows the data partition
//! ([`husk_gpt::grow_partition`]) — PID 1's code, which must never panic.
//!
//! The disk is sparse and in memory, so an input can describe a disk of
//! any size in a few sectors:
//!
//! | bytes | what |
//! |---|---|
//! | 0 | flags: bit 0, 4096-byte sectors (else 512); bit 1, fill in the CRCs of the headers at LBA 1 and at the primary's alternate LBA and of their entry arrays (a mutation nearly always breaks them) |
//! | 1..9 | the disk's size in sectors, little-endian |
//! | then, repeated | an LBA (8 bytes, little-endian), a length (2 bytes), that many bytes written there |
//!
//! A grow that reports success must leave a table that reads back, with
//! the partition ending where it said.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use husk_gpt::{GptError, Grown, Header, grow_partition, read_verified};

/// What husk-init grows.
const PARTITION: &str = "husk-data";

pub fn run(data: &[u8]) {
    if let Some(Err(e)) = grow(data) {
        let _ = e.to_string();
    }
}

/// Reads the disk `data` describes and grows its data partition, checking
/// the table after a grow; what the grow said (None: no disk).
pub fn grow(data: &[u8]) -> Option<Result<Grown, GptError>> {
    let (&flags, rest) = data.split_first()?;
    let (size, mut chunks) = rest.split_first_chunk::<8>()?;
    let sector_size: u64 = if flags & 1 != 0 { 4096 } else { 512 };
    let disk_sectors = u64::from_le_bytes(*size);
    let mut disk = SparseDisk::new(disk_sectors.saturating_mul(sector_size));
    while let Some((lba, rest)) = chunks.split_first_chunk::<8>() {
        let Some((len, rest)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        let offset = u64::from_le_bytes(*lba).saturating_mul(sector_size);
        disk.put(offset, &rest[..len]);
        chunks = &rest[len..];
    }
    if flags & 2 != 0 {
        let primary = fill_in_crcs(&mut disk, sector_size, 1);
        if let Some(alternate) = primary {
            fill_in_crcs(&mut disk, sector_size, alternate);
        }
    }

    let _ = read_verified(&mut disk, sector_size, disk_sectors).map_err(|e| e.to_string());
    let grown = grow_partition(&mut disk, sector_size, disk_sectors, PARTITION);
    match &grown {
        Ok(grown) if grown.changed() => {
            let again = read_verified(&mut disk, sector_size, disk_sectors)
                .expect("a grown table reads back");
            let entry = again
                .entries
                .iter()
                .find(|(slot, _)| u64::from(grown.partition_number) == *slot as u64 + 1)
                .map(|(_, e)| e)
                .expect("the grown partition is still there");
            assert_eq!(entry.last_lba, grown.new_last_lba, "{grown:?}");
            if grown.grew() {
                assert!(
                    entry.last_lba <= again.primary.last_usable_lba,
                    "grown past the usable area: {grown:?}"
                );
            }
        }
        Ok(_) | Err(_) => {}
    }
    Some(grown)
}

/// Makes the header at `lba` (if it has the signature and a sane size)
/// and its entry array check; returns the header's alternate LBA.
fn fill_in_crcs(disk: &mut SparseDisk, sector_size: u64, lba: u64) -> Option<u64> {
    let at = lba.checked_mul(sector_size)?;
    let mut sector = disk.get(at, sector_size as usize);
    if !sector.starts_with(husk_gpt::header::SIGNATURE) {
        return None;
    }
    let field = |s: &[u8], at: usize, n: usize| {
        s[at..at + n]
            .iter()
            .rev()
            .fold(0u64, |v, &b| (v << 8) | u64::from(b))
    };
    let header_size = field(&sector, 12, 4) as usize;
    let entries_lba = field(&sector, 72, 8);
    let entries_bytes = field(&sector, 80, 4) * field(&sector, 84, 4);
    if !(92..=sector.len()).contains(&header_size) {
        return None;
    }
    // (the header refuses arrays over 1 MiB before reading them)
    if entries_bytes <= 1 << 20
        && let Some(offset) = entries_lba.checked_mul(sector_size)
    {
        let array = disk.get(offset, entries_bytes as usize);
        sector[88..92].copy_from_slice(&crc32fast::hash(&array).to_le_bytes());
    }
    sector[16..20].fill(0);
    let crc = crc32fast::hash(&sector[..header_size]);
    sector[16..20].copy_from_slice(&crc.to_le_bytes());
    disk.put(at, &sector);
    Header::decode(&sector).ok().map(|h| h.alternate_lba)
}

/// A disk of any size that holds only what was written to it: reads of
/// the rest give zeros, as a freshly grown cloud disk does.
struct SparseDisk {
    len: u64,
    pos: u64,
    /// Written bytes in 4 KiB pages, by page index.
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
}

const PAGE: u64 = 4096;

impl SparseDisk {
    fn new(len: u64) -> Self {
        Self {
            len,
            pos: 0,
            pages: BTreeMap::new(),
        }
    }

    /// Writes `bytes` at `offset`, up to the disk's end.
    fn put(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset.saturating_add(bytes.len() as u64).min(self.len);
        let mut at = offset;
        while at < end {
            let (page, within) = (at / PAGE, (at % PAGE) as usize);
            let n = (PAGE as usize - within).min((end - at) as usize);
            let from = (at - offset) as usize;
            let page = self
                .pages
                .entry(page)
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            page[within..within + n].copy_from_slice(&bytes[from..from + n]);
            at += n as u64;
        }
    }

    /// `len` bytes from `offset`, zeros past what was written or the end.
    fn get(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        let end = offset.saturating_add(len as u64).min(self.len);
        let mut at = offset;
        while at < end {
            let (page, within) = (at / PAGE, (at % PAGE) as usize);
            let n = (PAGE as usize - within).min((end - at) as usize);
            if let Some(page) = self.pages.get(&page) {
                let to = (at - offset) as usize;
                out[to..to + n].copy_from_slice(&page[within..within + n]);
            }
            at += n as u64;
        }
        out
    }
}

impl Read for SparseDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = usize::try_from(self.len.saturating_sub(self.pos))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        buf[..n].copy_from_slice(&self.get(self.pos, n));
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SparseDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A block device: no writing past its end.
        if self.pos.saturating_add(buf.len() as u64) > self.len {
            return Err(io::Error::other("write past the end of the disk"));
        }
        self.put(self.pos, buf);
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SparseDisk {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = pos.ok_or_else(|| io::Error::other("seek before the start"))?;
        Ok(self.pos)
    }
}
