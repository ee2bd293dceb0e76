//! What init needs of an ext4 superblock: the block size and the block
//! count for growing (the kernel's statfs leaves out overhead, so it
//! cannot tell whether the filesystem already fills its partition), and
//! whether it has project quotas (then it is mounted `prjquota`, which
//! enforces the limits the agent sets on writable layers).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The superblock: 1024 bytes at byte offset 1024.
const OFFSET: u64 = 1024;
const LEN: usize = 1024;
const MAGIC: u16 = 0xef53;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_QUOTA: u32 = 0x100;
const RO_COMPAT_PROJECT: u32 = 0x2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub block_size: u64,
    pub blocks: u64,
    /// The quota and project features, with a project quota inode.
    pub project_quota: bool,
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
    let ro_compat = u32::from_le_bytes(le(sb, 0x64));
    let features = RO_COMPAT_QUOTA | RO_COMPAT_PROJECT;
    let project_inode = u32::from_le_bytes(le(sb, 0x26c));
    Ok(Superblock {
        block_size: 1024 << log,
        blocks: hi << 32 | lo,
        project_quota: ro_compat & features == features && project_inode != 0,
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
        assert!(!parse(&sb).unwrap().project_quota);
        sb[0x64..0x68].copy_from_slice(&(RO_COMPAT_QUOTA | RO_COMPAT_PROJECT).to_le_bytes());
        assert!(!parse(&sb).unwrap().project_quota, "no quota inode");
        sb[0x26c..0x270].copy_from_slice(&12u32.to_le_bytes());
        assert!(parse(&sb).unwrap().project_quota);
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
                blocks: 16384,
                project_quota: false,
            }
        );
        assert_eq!(sb.bytes(), 64 << 20);
        let ok = std::process::Command::new("tune2fs")
            .args(["-O", "quota,project", "-Q", "prjquota"])
            .arg(&img)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok);
        assert!(read(&img).unwrap().project_quota);
    }
}
