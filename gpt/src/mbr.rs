//! The protective MBR: one partition of type 0xEE covering the disk (or
//! as much of it as 32 bits can say), so MBR-only tools leave it alone.

use crate::bytes::{put, u32_at};

const ENTRY: usize = 446;
const ENTRY_SIZE_FIELD: usize = ENTRY + 12;

fn size_field(disk_sectors: u64) -> u32 {
    u32::try_from(disk_sectors.saturating_sub(1)).unwrap_or(u32::MAX)
}

/// A protective MBR for a disk of `disk_sectors` sectors.
pub fn protective(disk_sectors: u64) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    put(&mut mbr, ENTRY + 1, &[0x00, 0x02, 0x00]); // CHS of LBA 1
    put(&mut mbr, ENTRY + 4, &[0xee, 0xff, 0xff, 0xff]);
    put(&mut mbr, ENTRY + 8, &1u32.to_le_bytes());
    put(
        &mut mbr,
        ENTRY_SIZE_FIELD,
        &size_field(disk_sectors).to_le_bytes(),
    );
    put(&mut mbr, 510, &[0x55, 0xaa]);
    mbr
}

/// Makes a protective MBR cover a disk that grew. Only the plain shape
/// ([`protective`]'s: one 0xEE entry from LBA 1, the others empty) is
/// touched; a hybrid MBR is someone's deliberate choice. Returns whether
/// `mbr` changed.
pub fn resize_protective(mbr: &mut [u8], disk_sectors: u64) -> bool {
    let plain = mbr.get(510..512) == Some([0x55, 0xaa].as_slice())
        && mbr.get(ENTRY + 4) == Some(&0xee)
        && u32_at(mbr, ENTRY + 8) == 1
        && mbr
            .get(ENTRY + 16..510)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0));
    let size = size_field(disk_sectors);
    if !plain || u32_at(mbr, ENTRY_SIZE_FIELD) == size {
        return false;
    }
    put(mbr, ENTRY_SIZE_FIELD, &size.to_le_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_disk_and_follows_it() {
        let mut mbr = protective(22528);
        assert_eq!(u32_at(&mbr, 458), 22527);
        assert_eq!(&mbr[510..], &[0x55, 0xaa]);
        assert!(resize_protective(&mut mbr, 40000));
        assert_eq!(u32_at(&mbr, 458), 39999);
        assert!(!resize_protective(&mut mbr, 40000));
        assert!(resize_protective(&mut mbr, 1 << 40));
        assert_eq!(u32_at(&mbr, 458), u32::MAX);
        // A hybrid MBR (a second entry) is left alone.
        mbr[462 + 4] = 0x83;
        assert!(!resize_protective(&mut mbr, 50000));
    }
}
