//! The GPT header: one sector, at LBA 1 (primary) and at the disk's last
//! LBA (backup), each pointing at the other and at its own copy of the
//! partition entry array.

use crate::Guid;
use crate::bytes::{array_at, put, u32_at, u64_at};

pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Revision 1.0, the only one there is.
pub const REVISION: u32 = 0x0001_0000;
/// The header's defined fields; the rest of the sector is reserved.
pub const HEADER_SIZE: u32 = 92;
/// The spec's minimum: 128 entries of 128 bytes.
pub const DEFAULT_ENTRY_COUNT: u32 = 128;
pub const DEFAULT_ENTRY_SIZE: u32 = 128;
/// More than any real table; refusing larger ones bounds what a corrupt
/// header can make us read.
const ENTRIES_BYTES_MAX: u64 = 1 << 20;

/// A decoded header. `entries_crc` is stored; the header's own CRC is
/// computed by [`Header::encode`] and checked by [`Header::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub header_size: u32,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    pub disk_guid: Guid,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

/// Why a header was rejected.
pub type Invalid = &'static str;

impl Header {
    /// The header as one sector of `sector_size` bytes, CRC filled in.
    pub fn encode(&self, sector_size: usize) -> Vec<u8> {
        let mut h = vec![0u8; sector_size];
        put(&mut h, 0, SIGNATURE);
        put(&mut h, 8, &REVISION.to_le_bytes());
        put(&mut h, 12, &self.header_size.to_le_bytes());
        // 16..20: the CRC, below; 20..24 reserved.
        put(&mut h, 24, &self.my_lba.to_le_bytes());
        put(&mut h, 32, &self.alternate_lba.to_le_bytes());
        put(&mut h, 40, &self.first_usable_lba.to_le_bytes());
        put(&mut h, 48, &self.last_usable_lba.to_le_bytes());
        put(&mut h, 56, &self.disk_guid.to_mixed_endian());
        put(&mut h, 72, &self.entries_lba.to_le_bytes());
        put(&mut h, 80, &self.entry_count.to_le_bytes());
        put(&mut h, 84, &self.entry_size.to_le_bytes());
        put(&mut h, 88, &self.entries_crc.to_le_bytes());
        let crc = crc32fast::hash(h.get(..self.header_size as usize).unwrap_or(&[]));
        put(&mut h, 16, &crc.to_le_bytes());
        h
    }

    /// Decodes and verifies one header sector: signature, size, CRC and
    /// the sanity of the entry array's shape.
    pub fn decode(sector: &[u8]) -> Result<Header, Invalid> {
        if sector.get(..8) != Some(SIGNATURE.as_slice()) {
            return Err("no \"EFI PART\" signature");
        }
        let header_size = u32_at(sector, 12);
        if header_size < HEADER_SIZE || header_size as usize > sector.len() {
            return Err("bad header size");
        }
        let mut copy = sector.get(..header_size as usize).ok_or("short")?.to_vec();
        put(&mut copy, 16, &[0; 4]);
        if crc32fast::hash(&copy) != u32_at(sector, 16) {
            return Err("CRC mismatch");
        }
        let header = Header {
            header_size,
            my_lba: u64_at(sector, 24),
            alternate_lba: u64_at(sector, 32),
            first_usable_lba: u64_at(sector, 40),
            last_usable_lba: u64_at(sector, 48),
            disk_guid: Guid::from_mixed_endian(array_at(sector, 56)),
            entries_lba: u64_at(sector, 72),
            entry_count: u32_at(sector, 80),
            entry_size: u32_at(sector, 84),
            entries_crc: u32_at(sector, 88),
        };
        if header.entry_size < DEFAULT_ENTRY_SIZE || !header.entry_size.is_power_of_two() {
            return Err("bad partition entry size");
        }
        if header.entries_bytes() > ENTRIES_BYTES_MAX || header.entry_count == 0 {
            return Err("bad partition entry count");
        }
        if header.first_usable_lba > header.last_usable_lba {
            return Err("first usable LBA after the last");
        }
        Ok(header)
    }

    /// Size of the entry array in bytes (what its CRC covers).
    pub fn entries_bytes(&self) -> u64 {
        u64::from(self.entry_count) * u64::from(self.entry_size)
    }

    /// Sectors the entry array takes.
    pub fn entries_sectors(&self, sector_size: u64) -> u64 {
        self.entries_bytes().div_ceil(sector_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            header_size: HEADER_SIZE,
            my_lba: 1,
            alternate_lba: 2047,
            first_usable_lba: 34,
            last_usable_lba: 2014,
            disk_guid: "01234567-89AB-4DEF-8123-456789ABCDEF".parse().unwrap(),
            entries_lba: 2,
            entry_count: 128,
            entry_size: 128,
            entries_crc: 0xdead_beef,
        }
    }

    #[test]
    fn round_trips_and_lays_out_like_the_spec() {
        let h = sample();
        let bytes = h.encode(512);
        assert_eq!(bytes.len(), 512);
        assert_eq!(&bytes[..8], b"EFI PART");
        assert_eq!(&bytes[8..12], &[0, 0, 1, 0]);
        assert_eq!(u64_at(&bytes, 32), 2047);
        assert!(bytes[92..].iter().all(|&b| b == 0));
        assert_eq!(Header::decode(&bytes), Ok(h));
        assert_eq!(Header::decode(&h.encode(4096)), Ok(h));
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let bytes = sample().encode(512);
        for i in 0..92 {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Header::decode(&bad).is_err(), "byte {i}");
        }
        assert!(Header::decode(&bytes[..50]).is_err());
        assert!(Header::decode(&[]).is_err());
    }
}
