//! The two numbers of an ext4 superblock that growing needs: the block
//! size and the block count (the kernel's statfs leaves out overhead, so
//! it cannot tell whether the filesystem already fills its partition).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The superblock: 1024 bytes at byte offset 1024.
const OFFSET: u64 = 1024;
const LEN: usize = 1024;
const MAGIC: u16 = 0xef53;
const INCOMPAT_64BIT: u32 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub block_size: u64,
    pub blocks: u64,
}

impl Superblock {
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.block_size)
    }
}

fn le<const N: usize>(sb: &[u8], at: usize) -> [u8; N] {
    sb.get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; N])
}

/// Decodes the fields (offsets from ext4's `struct ext4_super_block`).
pub fn parse(sb: &[u8]) -> Result<Superblock, &'static str> {
    if u16::from_le_bytes(le(sb, 0x38)) != MAGIC {
        return Err("no ext2/3/4 superblock");
    }
    let log = u32::from_le_bytes(le(sb, 0x18));
    if log > 6 {
        return Err("bad block size");
    }
    let lo = u64::from(u32::from_le_bytes(le(sb, 0x04)));
    let incompat = u32::from_le_bytes(le(sb, 0x60));
    let hi = if incompat & INCOMPAT_64BIT != 0 {
        u64::from(u32::from_le_bytes(le(sb, 0x150)))
    } else {
        0
    };
    Ok(Superblock {
        block_size: 1024 << log,
        blocks: hi << 32 | lo,
    })
}

/// Reads the superblock of the filesystem on `device`.
pub fn read(device: &Path) -> io::Result<Superblock> {
    let mut f = File::open(device)?;
    f.seek(SeekFrom::Start(OFFSET))?;
    let mut sb = [0u8; LEN];
    f.read_exact(&mut sb)?;
    parse(&sb).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_decode() {
        let mut sb = [0u8; LEN];
        sb[0x38..0x3a].copy_from_slice(&MAGIC.to_le_bytes());
        sb[0x18..0x1c].copy_from_slice(&2u32.to_le_bytes());
        sb[0x04..0x08].copy_from_slice(&262_144u32.to_le_bytes());
        sb[0x150..0x154].copy_from_slice(&1u32.to_le_bytes());
        let parsed = parse(&sb).unwrap();
        assert_eq!(parsed.block_size, 4096);
        // The high word counts only with the 64bit feature.
        assert_eq!(parsed.blocks, 262_144);
        sb[0x60..0x64].copy_from_slice(&INCOMPAT_64BIT.to_le_bytes());
        assert_eq!(parse(&sb).unwrap().blocks, (1 << 32) + 262_144);
        assert!(parse(&[0u8; LEN]).is_err());
        assert!(parse(&[]).is_err());
    }

    /// A real filesystem from mke2fs, when e2fsprogs is installed.
    #[test]
    fn reads_what_mke2fs_made() {
        let Some(mke2fs) = ["/usr/sbin/mke2fs", "/sbin/mke2fs"]
            .iter()
            .find(|p| Path::new(p).is_file())
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        File::create(&img).unwrap().set_len(64 << 20).unwrap();
        let ok = std::process::Command::new(mke2fs)
            .args(["-q", "-F", "-t", "ext4", "-b", "4096"])
            .arg(&img)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let sb = read(&img).unwrap();
        assert_eq!(
            sb,
            Superblock {
                block_size: 4096,
                blocks: 16384
            }
        );
        assert_eq!(sb.bytes(), 64 << 20);
    }
}
