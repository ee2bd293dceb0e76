//! Partition entries: 128 bytes each (or a larger power of two), in an
//! array whose CRC both headers carry. Names are UTF-16LE, at most 36
//! code units, NUL-padded.

use crate::bytes::{array_at, put, u64_at};
use crate::{GptError, Guid};

/// Where an entry keeps its (inclusive) last LBA.
pub const LAST_LBA_OFFSET: usize = 40;
const NAME_OFFSET: usize = 56;
/// 72 bytes of name.
pub const NAME_UNITS: usize = 36;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    /// Inclusive, as GPT stores it.
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

impl Entry {
    /// The entry's 128 defined bytes.
    pub fn encode(&self) -> Result<[u8; 128], GptError> {
        if self.name.encode_utf16().count() > NAME_UNITS {
            return Err(GptError::BadName(self.name.clone()));
        }
        let mut e = [0u8; 128];
        put(&mut e, 0, &self.type_guid.to_mixed_endian());
        put(&mut e, 16, &self.unique_guid.to_mixed_endian());
        put(&mut e, 32, &self.first_lba.to_le_bytes());
        put(&mut e, LAST_LBA_OFFSET, &self.last_lba.to_le_bytes());
        put(&mut e, 48, &self.attributes.to_le_bytes());
        for (i, unit) in self.name.encode_utf16().enumerate() {
            put(&mut e, NAME_OFFSET + 2 * i, &unit.to_le_bytes());
        }
        Ok(e)
    }

    /// Decodes one entry; `None` for an unused slot (nil type GUID).
    pub fn decode(raw: &[u8]) -> Option<Entry> {
        let type_guid = Guid::from_mixed_endian(array_at(raw, 0));
        if type_guid == Guid::NIL || raw.len() < 128 {
            return None;
        }
        let units: Vec<u16> = (0..NAME_UNITS)
            .map(|i| u16::from_le_bytes(array_at(raw, NAME_OFFSET + 2 * i)))
            .take_while(|&u| u != 0)
            .collect();
        Some(Entry {
            type_guid,
            unique_guid: Guid::from_mixed_endian(array_at(raw, 16)),
            first_lba: u64_at(raw, 32),
            last_lba: u64_at(raw, LAST_LBA_OFFSET),
            attributes: u64_at(raw, 48),
            name: String::from_utf16_lossy(&units),
        })
    }

    /// Size in sectors.
    pub fn sectors(&self) -> u64 {
        (self.last_lba + 1).saturating_sub(self.first_lba)
    }
}

/// The array of `count` slots of `size` bytes holding `entries` in order.
pub fn encode_array(entries: &[Entry], count: u32, size: u32) -> Result<Vec<u8>, GptError> {
    if entries.len() > count as usize {
        return Err(GptError::BadTable("more partitions than entry slots"));
    }
    let mut array = vec![0u8; count as usize * size as usize];
    for (i, entry) in entries.iter().enumerate() {
        put(&mut array, i * size as usize, &entry.encode()?);
    }
    Ok(array)
}

/// The used entries of an array, with their slot index (partition number
/// minus one, as Linux numbers GPT partitions).
pub fn decode_array(array: &[u8], size: u32) -> Vec<(usize, Entry)> {
    array
        .chunks_exact(size as usize)
        .enumerate()
        .filter_map(|(i, raw)| Entry::decode(raw).map(|e| (i, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Entry {
        Entry {
            type_guid: crate::LINUX_DATA_TYPE.parse().unwrap(),
            unique_guid: "01234567-89AB-4DEF-8123-456789ABCDEF".parse().unwrap(),
            first_lba: 2048,
            last_lba: 4095,
            attributes: 1 << 60,
            name: name.into(),
        }
    }

    #[test]
    fn round_trips_with_utf16_names() {
        for name in ["husk-data", "", "é∂ünicode", &"x".repeat(36)] {
            let e = sample(name);
            let raw = e.encode().unwrap();
            assert_eq!(Entry::decode(&raw), Some(e));
        }
        let raw = sample("ab").encode().unwrap();
        assert_eq!(&raw[56..62], &[b'a', 0, b'b', 0, 0, 0]);
        assert!(matches!(
            sample(&"x".repeat(37)).encode(),
            Err(GptError::BadName(_))
        ));
        assert_eq!(sample("a").sectors(), 2048);
    }

    #[test]
    fn arrays_keep_slots_and_skip_unused_ones() {
        let array = encode_array(&[sample("a"), sample("b")], 128, 128).unwrap();
        assert_eq!(array.len(), 16384);
        let decoded = decode_array(&array, 128);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1].0, 1);
        assert_eq!(decoded[1].1.name, "b");
        assert!(encode_array(&[sample("a"), sample("b")], 1, 128).is_err());
        assert!(decode_array(&[0u8; 100], 128).is_empty());
    }
}
