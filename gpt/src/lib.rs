//! The GPT (UEFI 2.10, chapter 5) as both of its users need it: the
//! image builder writes a disk's partition tables ([`table`]), and
//! husk-init grows the last partition when the disk it boots from is
//! larger than the image was ([`grow`]). Keeping one copy of the on-disk
//! structures means the two can never disagree about the format.
//!
//! PID 1 links this crate, so it must not panic on any input: no
//! unwrap, no indexing (the lints below), every length checked.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unsafe_code
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod bytes;
pub mod entry;
pub mod grow;
pub mod guid;
pub mod header;
pub mod mbr;
pub mod table;

use std::io;

pub use entry::Entry;
pub use grow::{Grown, grow_partition, read_verified};
pub use guid::{BadGuid, Guid};
pub use header::Header;
pub use table::Table;

/// EFI System Partition.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// Linux filesystem data.
pub const LINUX_DATA_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/// Partitions start, and a grown partition ends, on 1 MiB boundaries.
pub const ALIGNMENT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("disk I/O: {0}")]
    Io(#[from] io::Error),
    #[error("{which} GPT header: {reason}")]
    BadHeader {
        which: &'static str,
        reason: &'static str,
    },
    #[error("{which} GPT partition entries: {reason}")]
    BadEntries {
        which: &'static str,
        reason: &'static str,
    },
    #[error("the primary and backup GPT disagree: {0}")]
    Mismatch(&'static str),
    #[error("the GPT ends at sector {gpt_last}, past the disk's last sector {disk_last}")]
    DiskShrank { gpt_last: u64, disk_last: u64 },
    #[error("no partition named {0:?}")]
    NotFound(String),
    #[error("partition name {0:?} is longer than 36 UTF-16 units")]
    BadName(String),
    #[error("sector size {0}: only 512 and 4096 are supported")]
    BadSectorSize(u64),
    #[error("{0}")]
    BadTable(&'static str),
}

/// Checks a logical sector size.
pub fn check_sector_size(sector_size: u64) -> Result<usize, GptError> {
    match sector_size {
        512 | 4096 => Ok(sector_size as usize),
        other => Err(GptError::BadSectorSize(other)),
    }
}
