//! GUIDs (UUIDs) for disks, partitions and filesystems. With the `seed`
//! feature they can be derived from a seed, so that equal inputs give
//! equal images.

use std::fmt;
use std::str::FromStr;

/// A GUID, kept in RFC 4122 (big-endian, textual) byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID: an unused GPT entry's type.
    pub const NIL: Guid = Guid([0; 16]);

    /// A version-4-shaped GUID from SHA-256 of `purpose`, `seed` and
    /// `name`: stable for equal arguments, distinct otherwise.
    #[cfg(feature = "seed")]
    pub fn from_seed(purpose: &str, seed: &str, name: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for part in [purpose, seed, name] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut bytes: [u8; 16] = crate::bytes::array_at(&digest, 0);
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        Self(bytes)
    }

    /// The on-disk layout of GPT and EFI: the first three fields
    /// little-endian, the last two as they are.
    pub fn to_mixed_endian(self) -> [u8; 16] {
        let b = self.0;
        [
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        ]
    }

    /// The inverse of [`Guid::to_mixed_endian`] (the swap is its own
    /// inverse).
    pub fn from_mixed_endian(bytes: [u8; 16]) -> Self {
        Self(Guid(bytes).to_mixed_endian())
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            b[0],
            b[1],
            b[2],
            b[3],
            b[4],
            b[5],
            b[6],
            b[7],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a GUID (XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)")]
pub struct BadGuid(String);

impl FromStr for Guid {
    type Err = BadGuid;

    fn from_str(s: &str) -> Result<Self, BadGuid> {
        let bad = || BadGuid(s.to_owned());
        let groups: Vec<&str> = s.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_lays_out_like_efi() {
        let esp: Guid = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".parse().unwrap();
        assert_eq!(esp.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(
            esp.to_mixed_endian(),
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
        assert!("C12A7328-F81F-11D2-BA4B".parse::<Guid>().is_err());
        assert!(
            "G12A7328-F81F-11D2-BA4B-00A0C93EC93B"
                .parse::<Guid>()
                .is_err()
        );
    }

    #[test]
    fn mixed_endian_round_trips() {
        let esp: Guid = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".parse().unwrap();
        assert_eq!(Guid::from_mixed_endian(esp.to_mixed_endian()), esp);
    }

    #[cfg(feature = "seed")]
    #[test]
    fn seeded_guids_are_stable_v4_and_distinct() {
        let a = Guid::from_seed("gpt", "seed", "esp");
        assert_eq!(a, Guid::from_seed("gpt", "seed", "esp"));
        assert_ne!(a, Guid::from_seed("gpt", "seed", "husk-data"));
        assert_ne!(a, Guid::from_seed("gpt", "seed2", "esp"));
        assert_ne!(Guid::from_seed("gp", "tseed", "esp"), a);
        let text = a.to_string();
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "A" | "B"));
    }
}
