//! A repair the `fatfs` crate (0.3) needs: it writes a long-name (LFN)
//! entry in front of every short entry, including a new directory's `.`
//! and `..`, which must be the directory's first two slots (fsck.vfat
//! "Expected a valid '.' entry in this slot"; `fsck -a` would rename
//! them), and it points `..` of the root's subdirectories at the root's
//! cluster where the FAT spec wants 0. [`drop_dot_long_names`] walks a
//! FAT32 image's directory tree, removes those two LFN entries, moving the
//! rest of each directory up, and zeroes those `..` clusters.
//!
//! It works on the raw image after fatfs has unmounted it, so it only
//! needs the boot sector, the FAT and the directory clusters.

use std::io::{self, Read, Seek, SeekFrom, Write};

const ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0f;
const ATTR_DIR: u8 = 0x10;
const DOT: &[u8; 11] = b".          ";
const DOTDOT: &[u8; 11] = b"..         ";

struct Layout {
    fat_offset: u64,
    data_offset: u64,
    cluster_size: u64,
    root_cluster: u32,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a FAT32 image: {what}"),
    )
}

fn layout<D: Read + Seek>(disk: &mut D) -> io::Result<Layout> {
    let mut boot = [0u8; 512];
    disk.seek(SeekFrom::Start(0))?;
    disk.read_exact(&mut boot)?;
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([boot[at], boot[at + 1]]));
    let u32_at =
        |at: usize| u32::from_le_bytes([boot[at], boot[at + 1], boot[at + 2], boot[at + 3]]);
    let bytes_per_sector = u16_at(11);
    let sectors_per_cluster = u64::from(boot[13]);
    let reserved = u16_at(14);
    let fats = u64::from(boot[16]);
    let sectors_per_fat = u64::from(u32_at(36));
    if boot[510..512] != [0x55, 0xaa]
        || u16_at(22) != 0
        || sectors_per_fat == 0
        || bytes_per_sector == 0
    {
        return Err(invalid("no FAT32 boot sector"));
    }
    Ok(Layout {
        fat_offset: reserved * bytes_per_sector,
        data_offset: (reserved + fats * sectors_per_fat) * bytes_per_sector,
        cluster_size: sectors_per_cluster * bytes_per_sector,
        root_cluster: u32_at(44),
    })
}

impl Layout {
    fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset + u64::from(cluster - 2) * self.cluster_size
    }

    fn chain<D: Read + Seek>(&self, disk: &mut D, first: u32) -> io::Result<Vec<u32>> {
        let mut chain = vec![first];
        let mut cluster = first;
        loop {
            let mut entry = [0u8; 4];
            disk.seek(SeekFrom::Start(self.fat_offset + u64::from(cluster) * 4))?;
            disk.read_exact(&mut entry)?;
            cluster = u32::from_le_bytes(entry) & 0x0fff_ffff;
            if !(2..0x0fff_fff8).contains(&cluster) {
                return Ok(chain);
            }
            if chain.len() > 1 << 20 {
                return Err(invalid("cluster chain loops"));
            }
            chain.push(cluster);
        }
    }
}

/// Removes the LFN entries fatfs put before `.` and `..` in every
/// directory of the FAT32 image `disk`; returns how many directories it
/// repaired.
pub fn drop_dot_long_names<D: Read + Write + Seek>(disk: &mut D) -> io::Result<usize> {
    let layout = layout(disk)?;
    let mut repaired = 0;
    // (first cluster, depth): 0 is the root, 1 its subdirectories.
    let mut pending = vec![(layout.root_cluster, 0u32)];
    let mut visited = 0usize;
    while let Some((first, depth)) = pending.pop() {
        visited += 1;
        if visited > 1 << 20 {
            return Err(invalid("directory tree loops"));
        }
        let chain = layout.chain(disk, first)?;
        let mut bytes = vec![0u8; chain.len() * layout.cluster_size as usize];
        for (i, &cluster) in chain.iter().enumerate() {
            disk.seek(SeekFrom::Start(layout.cluster_offset(cluster)))?;
            let at = i * layout.cluster_size as usize;
            disk.read_exact(&mut bytes[at..at + layout.cluster_size as usize])?;
        }
        let mut changed = depth > 0 && remove_dot_lfns(&mut bytes);
        if depth == 1 {
            changed |= dotdot_to_root_is_zero(&mut bytes);
        }
        if changed {
            for (i, &cluster) in chain.iter().enumerate() {
                disk.seek(SeekFrom::Start(layout.cluster_offset(cluster)))?;
                let at = i * layout.cluster_size as usize;
                disk.write_all(&bytes[at..at + layout.cluster_size as usize])?;
            }
            repaired += 1;
        }
        for entry in bytes.chunks_exact(ENTRY) {
            match entry[0] {
                0x00 => break,
                0xe5 => continue,
                _ => {}
            }
            let attr = entry[11];
            if attr == ATTR_LFN
                || attr & ATTR_DIR == 0
                || &entry[..11] == DOT
                || &entry[..11] == DOTDOT
            {
                continue;
            }
            let hi = u32::from(u16::from_le_bytes([entry[20], entry[21]]));
            let lo = u32::from(u16::from_le_bytes([entry[26], entry[27]]));
            pending.push(((hi << 16) | lo, depth + 1));
        }
    }
    disk.flush()?;
    Ok(repaired)
}

/// In a subdirectory of the root, makes `..` (slot 1) point at cluster 0,
/// as the FAT spec says a `..` naming the root must. Returns whether
/// anything changed.
fn dotdot_to_root_is_zero(bytes: &mut [u8]) -> bool {
    let entry = &mut bytes[ENTRY..2 * ENTRY];
    if &entry[..11] != DOTDOT || entry[20..22] == [0, 0] && entry[26..28] == [0, 0] {
        return false;
    }
    entry[20..22].fill(0);
    entry[26..28].fill(0);
    true
}

/// In a directory's entries, drops LFN entries directly before the `.`
/// and `..` entries, moving everything after them up and zero-filling the
/// end. Returns whether anything changed.
fn remove_dot_lfns(bytes: &mut [u8]) -> bool {
    let entries: Vec<&[u8]> = bytes.chunks_exact(ENTRY).collect();
    let mut keep: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
    let mut changed = false;
    let mut i = 0;
    while i < entries.len() {
        let entry = entries[i];
        if entry[0] != 0x00 && entry[0] != 0xe5 && entry[11] == ATTR_LFN {
            // A run of LFN entries: drop it if the short entry it names is
            // `.` or `..`.
            let mut end = i;
            while end < entries.len() && entries[end][11] == ATTR_LFN && entries[end][0] != 0 {
                end += 1;
            }
            if end < entries.len() && (&entries[end][..11] == DOT || &entries[end][..11] == DOTDOT)
            {
                changed = true;
                i = end;
                continue;
            }
        }
        keep.push(entry.to_vec());
        i += 1;
    }
    if changed {
        bytes.fill(0);
        for (slot, entry) in keep.iter().enumerate() {
            bytes[slot * ENTRY..(slot + 1) * ENTRY].copy_from_slice(entry);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8; 11], attr: u8) -> Vec<u8> {
        let mut e = vec![0u8; ENTRY];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e
    }

    #[test]
    fn lfns_before_dots_go_and_the_rest_moves_up() {
        let mut lfn = entry(b"\x41.\0\0\0\0\0\0\0\0\0", ATTR_LFN);
        lfn[0] = 0x41;
        let mut bytes = [
            lfn.clone(),
            entry(DOT, ATTR_DIR),
            lfn.clone(),
            entry(DOTDOT, ATTR_DIR),
            lfn.clone(),
            entry(b"BOOT       ", ATTR_DIR),
            vec![0u8; ENTRY],
            vec![0u8; ENTRY],
        ]
        .concat();
        assert!(remove_dot_lfns(&mut bytes));
        let names: Vec<&[u8]> = bytes.chunks(ENTRY).map(|e| &e[..11]).collect();
        assert_eq!(names[0], DOT);
        assert_eq!(names[1], DOTDOT);
        assert_eq!(bytes[2 * ENTRY + 11], ATTR_LFN, "other long names stay");
        assert_eq!(names[3], b"BOOT       ");
        assert!(bytes[4 * ENTRY..].iter().all(|&b| b == 0));
        assert!(!remove_dot_lfns(&mut bytes), "idempotent");
    }
}
