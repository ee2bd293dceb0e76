//! Growing the data partition into the rest of its disk: the GPT is
//! rewritten through the whole-disk device (husk-gpt does the format and
//! the crash-safe order), then the kernel is told the partition's new
//! size with BLKPG, since it reads partition tables only at boot.

use std::path::Path;

use thiserror::Error;

use super::find::Partition;
use crate::sys;

#[derive(Debug, Error)]
pub enum GrowError {
    #[error("{path}: {source}")]
    Sysfs {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a number: {text:?}")]
    Number { path: String, text: String },
    #[error("opening {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("GPT of {disk}: {source}")]
    Gpt {
        disk: String,
        source: husk_gpt::GptError,
    },
    #[error("GPT slot {gpt} is not the kernel's partition {kernel}")]
    PartitionNumber { gpt: u32, kernel: u32 },
    #[error("telling the kernel (BLKPG resize of partition {number}): {source}")]
    Blkpg { number: u32, source: std::io::Error },
}

/// The partition's size before and after, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grew {
    pub from: u64,
    pub to: u64,
}

fn sysfs_u64(path: &str) -> Result<u64, GrowError> {
    let text = sys::read_capped(Path::new(path), 64).map_err(|source| GrowError::Sysfs {
        path: path.to_owned(),
        source,
    })?;
    text.trim().parse().map_err(|_| GrowError::Number {
        path: path.to_owned(),
        text,
    })
}

/// Grows `part` to the end of its disk when the disk is larger than the
/// GPT says. `Ok(None)`: nothing to do.
pub fn grow(part: &Partition, name: &str) -> Result<Option<Grew>, GrowError> {
    let sector = sysfs_u64(&format!(
        "/sys/block/{}/queue/logical_block_size",
        part.disk
    ))?;
    // sysfs sizes are in 512-byte units whatever the sector size.
    let disk_bytes = sysfs_u64(&format!("/sys/block/{}/size", part.disk))?.saturating_mul(512);
    let disk_path = format!("/dev/{}", part.disk);
    let mut disk = sys::open_disk(Path::new(&disk_path)).map_err(|source| GrowError::Open {
        path: disk_path.clone(),
        source,
    })?;
    let gpt_err = |source| GrowError::Gpt {
        disk: disk_path.clone(),
        source,
    };
    let sectors = disk_bytes / sector.max(1);
    let grown = husk_gpt::grow_partition(&mut disk, sector, sectors, name).map_err(gpt_err)?;
    if grown.moved_backup {
        log::info!("data: moved the backup GPT of {disk_path} to its end");
    }
    if !grown.grew() {
        return Ok(None);
    }
    if grown.partition_number != part.number {
        return Err(GrowError::PartitionNumber {
            gpt: grown.partition_number,
            kernel: part.number,
        });
    }
    let start = grown.first_lba * sector;
    let to = (grown.new_last_lba + 1 - grown.first_lba) * sector;
    let from = (grown.old_last_lba + 1 - grown.first_lba) * sector;
    sys::blkpg_resize_partition(&disk, part.number, start, to).map_err(|source| {
        GrowError::Blkpg {
            number: part.number,
            source,
        }
    })?;
    Ok(Some(Grew { from, to }))
}
