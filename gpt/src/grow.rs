//! Growing a GPT disk in place: when the disk is larger than the table
//! says (a cloud disk made from a smaller image), move the backup table
//! to the disk's end and extend the last partition to the new end,
//! aligned down to 1 MiB.
//!
//! Crash safety: the backup (array, then header, in one write) goes to
//! the new end first, then the primary (header and array, one write).
//! Until the primary is written, the primary still points at the old
//! backup, which is untouched, so the disk reads as it was; afterwards it
//! reads as grown. Either way old and new tools see a valid GPT. A disk
//! whose GPT does not verify (either header or array CRC, or the two
//! copies disagreeing) is never written to.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::entry::{LAST_LBA_OFFSET, decode_array};
use crate::table::pad_to;
use crate::{ALIGNMENT, Entry, GptError, Header, bytes::put, check_sector_size, mbr};

/// A GPT that verified: both headers, the entry array and the entries.
#[derive(Debug, Clone)]
pub struct Verified {
    pub primary: Header,
    pub backup: Header,
    /// The primary entry array, exactly `entries_bytes` long.
    pub array: Vec<u8>,
    /// Used entries with their slot (partition number minus one).
    pub entries: Vec<(usize, Entry)>,
}

/// What [`grow_partition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grown {
    /// As Linux numbers it (`vda2` is 2): the slot plus one.
    pub partition_number: u32,
    pub first_lba: u64,
    pub old_last_lba: u64,
    pub new_last_lba: u64,
    /// The backup table moved to the disk's (new) end.
    pub moved_backup: bool,
    /// Whether the partition is the last on the disk (only that one grows).
    pub is_last: bool,
}

impl Grown {
    pub fn grew(&self) -> bool {
        self.new_last_lba != self.old_last_lba
    }

    pub fn changed(&self) -> bool {
        self.grew() || self.moved_backup
    }
}

fn read_at<D: Read + Seek>(disk: &mut D, offset: u64, len: usize) -> Result<Vec<u8>, GptError> {
    let mut buf = vec![0u8; len];
    disk.seek(SeekFrom::Start(offset))?;
    disk.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_at<D: Write + Seek>(disk: &mut D, offset: u64, bytes: &[u8]) -> Result<(), GptError> {
    disk.seek(SeekFrom::Start(offset))?;
    disk.write_all(bytes)?;
    Ok(())
}

fn read_array<D: Read + Seek>(
    disk: &mut D,
    header: &Header,
    sector: u64,
    which: &'static str,
) -> Result<Vec<u8>, GptError> {
    let bad = |reason| GptError::BadEntries { which, reason };
    let len = usize::try_from(header.entries_bytes()).map_err(|_| bad("too large"))?;
    let array = read_at(disk, header.entries_lba * sector, len)?;
    if crc32fast::hash(&array) != header.entries_crc {
        return Err(bad("CRC mismatch"));
    }
    Ok(array)
}

/// Whether `sectors` sectors from `lba` reach past `limit` (or past the
/// end of the LBAs).
fn ends_after(lba: u64, sectors: u64, limit: u64) -> bool {
    lba.checked_add(sectors).is_none_or(|end| end > limit)
}

/// Reads and verifies both copies of the GPT of a disk of `disk_sectors`
/// sectors of `sector_size` bytes.
pub fn read_verified<D: Read + Seek>(
    disk: &mut D,
    sector_size: u64,
    disk_sectors: u64,
) -> Result<Verified, GptError> {
    let sector = check_sector_size(sector_size)?;
    let disk_last = disk_sectors
        .checked_sub(1)
        .ok_or(GptError::BadTable("an empty disk"))?;
    // Every LBA below is checked to lie on the disk before it is turned
    // into a byte offset, so none of those products can overflow.
    if disk_sectors.checked_mul(sector_size).is_none() {
        return Err(GptError::BadTable("a disk larger than 2^64 bytes"));
    }
    let primary_bad = |reason| GptError::BadHeader {
        which: "primary",
        reason,
    };
    let backup_bad = |reason| GptError::BadHeader {
        which: "backup",
        reason,
    };

    let primary = Header::decode(&read_at(disk, sector_size, sector)?).map_err(primary_bad)?;
    if primary.my_lba != 1 {
        return Err(primary_bad("not at LBA 1"));
    }
    if primary.alternate_lba > disk_last {
        return Err(GptError::DiskShrank {
            gpt_last: primary.alternate_lba,
            disk_last,
        });
    }
    let array_sectors = primary.entries_sectors(sector_size);
    // (checked: the header's fields are the disk's, not ours; an LBA near
    // 2^64 must not wrap around to look like a valid layout)
    if primary.entries_lba < 2
        || ends_after(primary.entries_lba, array_sectors, primary.first_usable_lba)
        || primary.alternate_lba <= primary.last_usable_lba
    {
        return Err(primary_bad("overlapping layout"));
    }
    let array = read_array(disk, &primary, sector_size, "primary")?;

    let backup = Header::decode(&read_at(disk, primary.alternate_lba * sector_size, sector)?)
        .map_err(backup_bad)?;
    if backup.my_lba != primary.alternate_lba || backup.alternate_lba != 1 {
        return Err(backup_bad("its LBAs do not match the primary's"));
    }
    if backup.entries_lba <= primary.last_usable_lba
        || ends_after(backup.entries_lba, array_sectors, backup.my_lba)
    {
        return Err(backup_bad("overlapping layout"));
    }
    let same = |h: &Header| {
        (
            h.disk_guid,
            h.first_usable_lba,
            h.last_usable_lba,
            h.entry_count,
            h.entry_size,
            h.entries_crc,
        )
    };
    if same(&primary) != same(&backup) {
        return Err(GptError::Mismatch("their geometry or entries differ"));
    }
    read_array(disk, &backup, sector_size, "backup")?;
    let entries = decode_array(&array, primary.entry_size);
    Ok(Verified {
        primary,
        backup,
        array,
        entries,
    })
}

/// Moves the backup GPT to the end of a disk that grew and extends the
/// partition named `name` to the end of the usable area, aligned down to
/// 1 MiB, when it is the last partition. Does nothing (no write) when the
/// table already fills the disk.
pub fn grow_partition<D: Read + Write + Seek>(
    disk: &mut D,
    sector_size: u64,
    disk_sectors: u64,
    name: &str,
) -> Result<Grown, GptError> {
    let sector = check_sector_size(sector_size)?;
    let v = read_verified(disk, sector_size, disk_sectors)?;
    let (slot, entry) = v
        .entries
        .iter()
        .find(|(_, e)| e.name == name)
        .ok_or_else(|| GptError::NotFound(name.to_owned()))?;
    let is_last = v
        .entries
        .iter()
        .all(|(_, e)| e.first_lba <= entry.first_lba);
    let disk_last = disk_sectors.saturating_sub(1);
    let array_sectors = v.primary.entries_sectors(sector_size);
    let moved_backup = v.primary.alternate_lba != disk_last;
    let (backup_entries_lba, last_usable) = if moved_backup {
        let lba = disk_last - array_sectors;
        (lba, lba - 1)
    } else {
        (v.backup.entries_lba, v.primary.last_usable_lba)
    };
    let align = (ALIGNMENT / sector_size).max(1);
    let aligned_last = ((last_usable + 1) / align * align).saturating_sub(1);
    let new_last_lba = if is_last && aligned_last > entry.last_lba {
        aligned_last
    } else {
        entry.last_lba
    };
    let grown = Grown {
        partition_number: u32::try_from(slot + 1).unwrap_or(u32::MAX),
        first_lba: entry.first_lba,
        old_last_lba: entry.last_lba,
        new_last_lba,
        moved_backup,
        is_last,
    };
    if !grown.changed() {
        return Ok(grown);
    }

    let mut array = v.array;
    put(
        &mut array,
        slot * v.primary.entry_size as usize + LAST_LBA_OFFSET,
        &new_last_lba.to_le_bytes(),
    );
    let entries_crc = crc32fast::hash(&array);
    let array = pad_to(array, sector);
    let primary = Header {
        alternate_lba: disk_last,
        last_usable_lba: last_usable,
        entries_crc,
        ..v.primary
    };
    let backup = Header {
        my_lba: disk_last,
        alternate_lba: 1,
        entries_lba: backup_entries_lba,
        ..primary
    };

    // 1. The backup, at the new end; the old one stays valid meanwhile.
    write_table(disk, &backup, &array, sector)?;
    disk.flush()?;
    // 2. The primary: from now on the disk is the grown one.
    write_table(disk, &primary, &array, sector)?;
    disk.flush()?;
    // 3. The protective MBR follows the disk's size (it has no CRC).
    let mut mbr = read_at(disk, 0, 512)?;
    if mbr::resize_protective(&mut mbr, disk_sectors) {
        write_at(disk, 0, &mbr)?;
    }
    // 4. A stale backup header in the middle of the disk would confuse a
    // tool that scans for one; it is now free space or the partition's
    // (past its filesystem's end), so clearing it is safe.
    if moved_backup && v.backup.my_lba < backup_entries_lba {
        write_at(disk, v.backup.my_lba * sector_size, &vec![0u8; sector])?;
    }
    disk.flush()?;
    Ok(grown)
}

/// Writes a header and its array, in one write when they are adjacent.
fn write_table<D: Write + Seek>(
    disk: &mut D,
    header: &Header,
    array: &[u8],
    sector: usize,
) -> Result<(), GptError> {
    let size = sector as u64;
    let array_sectors = array.len() as u64 / size;
    let encoded = header.encode(sector);
    if header.entries_lba + array_sectors == header.my_lba {
        let mut both = array.to_vec();
        both.extend_from_slice(&encoded);
        write_at(disk, header.entries_lba * size, &both)
    } else if header.my_lba + 1 == header.entries_lba {
        let mut both = encoded;
        both.extend_from_slice(array);
        write_at(disk, header.my_lba * size, &both)
    } else {
        write_at(disk, header.entries_lba * size, array)?;
        write_at(disk, header.my_lba * size, &encoded)
    }
}
