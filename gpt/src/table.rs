//! Writing a whole GPT: the protective MBR, the primary header at LBA 1
//! with its entry array from LBA 2, and the backup array and header at
//! the end of the disk. Partition contents are the caller's business.

use std::io::{Seek, SeekFrom, Write};

use crate::entry::encode_array;
use crate::header::{DEFAULT_ENTRY_COUNT, DEFAULT_ENTRY_SIZE, HEADER_SIZE};
use crate::{Entry, GptError, Guid, Header, check_sector_size, mbr};

/// A disk's partition table, in the standard shape: 128 entries of 128
/// bytes, the usable area between the two arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub sector_size: u64,
    pub disk_sectors: u64,
    pub disk_guid: Guid,
    pub entries: Vec<Entry>,
}

impl Table {
    /// Sectors of one entry array (32 for 512-byte sectors).
    pub fn array_sectors(&self) -> u64 {
        (u64::from(DEFAULT_ENTRY_COUNT) * u64::from(DEFAULT_ENTRY_SIZE)).div_ceil(self.sector_size)
    }

    pub fn first_usable_lba(&self) -> u64 {
        2 + self.array_sectors()
    }

    /// The last sector before the backup array.
    pub fn last_usable_lba(&self) -> u64 {
        self.disk_sectors.saturating_sub(self.array_sectors() + 2)
    }

    /// The primary and backup headers for an array with CRC `entries_crc`.
    pub fn headers(&self, entries_crc: u32) -> (Header, Header) {
        let last_lba = self.disk_sectors.saturating_sub(1);
        let primary = Header {
            header_size: HEADER_SIZE,
            my_lba: 1,
            alternate_lba: last_lba,
            first_usable_lba: self.first_usable_lba(),
            last_usable_lba: self.last_usable_lba(),
            disk_guid: self.disk_guid,
            entries_lba: 2,
            entry_count: DEFAULT_ENTRY_COUNT,
            entry_size: DEFAULT_ENTRY_SIZE,
            entries_crc,
        };
        let backup = Header {
            my_lba: last_lba,
            alternate_lba: 1,
            entries_lba: last_lba.saturating_sub(self.array_sectors()),
            ..primary
        };
        (primary, backup)
    }

    fn check(&self) -> Result<(), GptError> {
        check_sector_size(self.sector_size)?;
        if self.disk_sectors < 2 * (self.array_sectors() + 2) + 1 {
            return Err(GptError::BadTable("the disk is too small for a GPT"));
        }
        for e in &self.entries {
            if e.first_lba < self.first_usable_lba()
                || e.last_lba > self.last_usable_lba()
                || e.first_lba > e.last_lba
            {
                return Err(GptError::BadTable(
                    "a partition lies outside the usable area",
                ));
            }
        }
        Ok(())
    }

    /// Writes the MBR and both GPTs to `disk` (at most 2 writes of 34
    /// and 33 sectors for 512-byte sectors).
    pub fn write<W: Write + Seek>(&self, disk: &mut W) -> Result<(), GptError> {
        self.check()?;
        let sector = self.sector_size as usize;
        let array = encode_array(&self.entries, DEFAULT_ENTRY_COUNT, DEFAULT_ENTRY_SIZE)?;
        let array = pad_to(array, sector);
        let (primary, backup) = self.headers(crc32fast::hash(
            array
                .get(..(DEFAULT_ENTRY_COUNT * DEFAULT_ENTRY_SIZE) as usize)
                .unwrap_or(&[]),
        ));

        let mut head = Vec::with_capacity(2 * sector + array.len());
        head.extend_from_slice(&mbr::protective(self.disk_sectors));
        head.resize(sector, 0);
        head.extend_from_slice(&primary.encode(sector));
        head.extend_from_slice(&array);
        disk.seek(SeekFrom::Start(0))?;
        disk.write_all(&head)?;

        let mut tail = array;
        tail.extend_from_slice(&backup.encode(sector));
        disk.seek(SeekFrom::Start(backup.entries_lba * self.sector_size))?;
        disk.write_all(&tail)?;
        disk.flush()?;
        Ok(())
    }
}

/// `bytes` zero-padded to whole sectors.
pub(crate) fn pad_to(mut bytes: Vec<u8>, sector: usize) -> Vec<u8> {
    bytes.resize(bytes.len().div_ceil(sector) * sector, 0);
    bytes
}
