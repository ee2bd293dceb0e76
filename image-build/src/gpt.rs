//! Writes a GPT-partitioned raw disk image: a protective MBR, the primary
//! GPT header at LBA 1 with its 128-entry array from LBA 2, the
//! partitions at 1 MiB boundaries, and the backup array and header at the
//! end (UEFI spec 2.10, chapter 5).
//!
//! The on-disk structures (headers, entries, the MBR) are the shared
//! `husk-gpt` crate's, which husk-init also uses to grow the disk at
//! boot. Partition contents are streamed from files ([`crate::sparse`]): holes
//! and all-zero chunks are skipped, so the output stays sparse and a multi-GiB disk
//! needs neither the RAM nor the disk space of its size. The disk GUID
//! and each partition's unique GUID come from the caller's seed.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use husk_gpt::header::{DEFAULT_ENTRY_COUNT, DEFAULT_ENTRY_SIZE};
use husk_gpt::{Entry, Guid, Table};

use crate::sparse::{CopyError, copy_into};

pub use husk_gpt::{ALIGNMENT, ESP_TYPE, LINUX_DATA_TYPE};

pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1 << 20;
const ENTRIES: u32 = DEFAULT_ENTRY_COUNT;
/// 128 entries × 128 bytes = 32 sectors.
const ARRAY_SECTORS: u64 = (DEFAULT_ENTRY_COUNT * DEFAULT_ENTRY_SIZE) as u64 / SECTOR;

/// One partition to write.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    /// GPT partition name (at most 36 UTF-16 code units).
    pub name: String,
    pub type_guid: Guid,
    /// The partition's contents (a filesystem image).
    pub source: PathBuf,
    /// Partition size in bytes; `None`: the source's size. Rounded up to
    /// whole sectors; the part past the source reads as zeros.
    pub size: Option<u64>,
}

/// A disk to write.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// Seed of the disk GUID and the partitions' unique GUIDs.
    pub seed: String,
    pub partitions: Vec<PartitionSpec>,
    /// Disk size in bytes; `None`: the smallest whole number of MiB that
    /// holds everything.
    pub size: Option<u64>,
}

/// Where a partition ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPartition {
    pub name: String,
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    /// Inclusive, as GPT stores it.
    pub last_lba: u64,
}

/// The disk as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayout {
    pub size: u64,
    pub disk_guid: Guid,
    pub partitions: Vec<PlacedPartition>,
    /// Bytes of partition data actually written (not skipped as zeros).
    pub data_written: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("partition {name:?}: {reason}")]
    BadPartition { name: String, reason: String },
    #[error("disk size {size} bytes is too small: the partitions need {needed}")]
    TooSmall { size: u64, needed: u64 },
    #[error("disk size {0} bytes is not a whole number of 512-byte sectors")]
    Unaligned(u64),
    #[error("no partitions, or more than {ENTRIES}")]
    PartitionCount,
    #[error("writing the partition table: {0}")]
    Table(#[from] husk_gpt::GptError),
}

fn align_up(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

/// Places the partitions: each on the next 1 MiB boundary, the disk
/// rounded up to whole MiB with room for the backup GPT.
pub fn layout(spec: &DiskSpec) -> Result<DiskLayout, GptError> {
    if spec.partitions.is_empty() || spec.partitions.len() > ENTRIES as usize {
        return Err(GptError::PartitionCount);
    }
    let mut next = ALIGNMENT;
    let mut placed = Vec::new();
    for p in &spec.partitions {
        let bad = |reason: String| GptError::BadPartition {
            name: p.name.clone(),
            reason,
        };
        if p.name.encode_utf16().count() > husk_gpt::entry::NAME_UNITS {
            return Err(bad("the name is longer than 36 UTF-16 units".into()));
        }
        let source_len = fs::metadata(&p.source)
            .map_err(|e| GptError::Read {
                path: p.source.clone(),
                source: e,
            })?
            .len();
        let size = align_up(p.size.unwrap_or(source_len), SECTOR);
        if size == 0 {
            return Err(bad("the partition is empty".into()));
        }
        if source_len > size {
            return Err(bad(format!(
                "{} is {source_len} bytes, larger than the partition ({size})",
                p.source.display()
            )));
        }
        let start = align_up(next, ALIGNMENT);
        placed.push(PlacedPartition {
            name: p.name.clone(),
            type_guid: p.type_guid,
            unique_guid: Guid::from_seed("gpt-partition", &spec.seed, &p.name),
            first_lba: start / SECTOR,
            last_lba: (start + size) / SECTOR - 1,
        });
        next = start + size;
    }
    let needed = align_up(next + (ARRAY_SECTORS + 1) * SECTOR, MIB);
    let size = match spec.size {
        Some(size) if size & (SECTOR - 1) != 0 => return Err(GptError::Unaligned(size)),
        Some(size) if size < next + (ARRAY_SECTORS + 1) * SECTOR => {
            return Err(GptError::TooSmall { size, needed });
        }
        Some(size) => size,
        None => needed,
    };
    Ok(DiskLayout {
        size,
        disk_guid: Guid::from_seed("gpt-disk", &spec.seed, ""),
        partitions: placed,
        data_written: 0,
    })
}

/// The partition table of a laid-out disk.
fn table(layout: &DiskLayout) -> Table {
    Table {
        sector_size: SECTOR,
        disk_sectors: layout.size / SECTOR,
        disk_guid: layout.disk_guid,
        entries: layout
            .partitions
            .iter()
            .map(|p| Entry {
                type_guid: p.type_guid,
                unique_guid: p.unique_guid,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                attributes: 0,
                name: p.name.clone(),
            })
            .collect(),
    }
}

/// Writes the disk described by `spec` to `out` (through `out.tmp`,
/// renamed when complete) and returns its layout.
pub fn write_disk(spec: &DiskSpec, out: &Path) -> Result<DiskLayout, GptError> {
    let mut layout = layout(spec)?;
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let write_err = |e: io::Error| GptError::Write {
        path: out.to_owned(),
        source: e,
    };
    let result = (|| {
        let mut disk = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(write_err)?;
        disk.set_len(layout.size).map_err(write_err)?;
        table(&layout).write(&mut disk).map_err(|e| match e {
            husk_gpt::GptError::Io(e) => write_err(e),
            other => GptError::Table(other),
        })?;

        for (p, placed) in spec.partitions.iter().zip(&layout.partitions) {
            layout.data_written += copy_into(&p.source, &mut disk, placed.first_lba * SECTOR)
                .map_err(|e| match e {
                    CopyError::Read(e) => GptError::Read {
                        path: p.source.clone(),
                        source: e,
                    },
                    CopyError::Write(e) => write_err(e),
                })?;
        }
        disk.sync_all().map_err(write_err)?;
        fs::rename(&tmp, out).map_err(write_err)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;
    use std::time::Instant;

    fn tool(name: &str, package: &str, args: &[&str], disk: &Path) -> String {
        let out = crate::tools::require(name, package)
            .args(args)
            .arg(disk)
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{name} {args:?}: {text}");
        text
    }

    fn pattern(len: usize, salt: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8 ^ salt).collect()
    }

    fn sample(dir: &Path) -> DiskSpec {
        fs::write(dir.join("esp.img"), pattern(3 * MIB as usize, 1)).unwrap();
        fs::write(dir.join("data.img"), pattern(5 * MIB as usize + 512, 2)).unwrap();
        DiskSpec {
            seed: "test".into(),
            partitions: vec![
                PartitionSpec {
                    name: "esp".into(),
                    type_guid: ESP_TYPE.parse().unwrap(),
                    source: dir.join("esp.img"),
                    size: Some(4 * MIB),
                },
                PartitionSpec {
                    name: "husk-data".into(),
                    type_guid: LINUX_DATA_TYPE.parse().unwrap(),
                    source: dir.join("data.img"),
                    size: None,
                },
            ],
            size: None,
        }
    }

    #[test]
    fn sgdisk_and_fdisk_agree() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sample(dir.path());
        let disk = dir.path().join("disk.raw");
        let layout = write_disk(&spec, &disk).unwrap();
        // 1 MiB head, 4 MiB ESP, 5 MiB + 512 data starting at 5 MiB, then
        // the backup GPT, rounded up to 11 MiB.
        assert_eq!(layout.size, 11 * MIB);
        assert_eq!(fs::metadata(&disk).unwrap().len(), 11 * MIB);

        let verify = tool("sgdisk", "gdisk", &["-v"], &disk);
        assert!(verify.contains("No problems found"), "{verify}");
        let print = tool("sgdisk", "gdisk", &["-p"], &disk);
        assert!(
            print.contains(&format!("Disk identifier (GUID): {}", layout.disk_guid)),
            "{print}"
        );
        let rows: Vec<Vec<&str>> = print
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() >= 7 && f[0].parse::<u32>().is_ok())
            .collect();
        assert_eq!(rows.len(), 2, "{print}");
        // Number Start End Size Unit Code Name
        assert_eq!(rows[0][..3], ["1", "2048", "10239"]);
        assert_eq!(rows[0][5..], ["EF00", "esp"]);
        assert_eq!(rows[1][..3], ["2", "10240", "20480"]);
        assert_eq!(rows[1][5..], ["8300", "husk-data"]);
        let info = tool("sgdisk", "gdisk", &["-i", "2"], &disk);
        assert!(
            info.contains(&format!(
                "Partition unique GUID: {}",
                layout.partitions[1].unique_guid
            )),
            "{info}"
        );

        let fdisk = tool("fdisk", "fdisk", &["-l"], &disk);
        assert!(fdisk.contains("Disklabel type: gpt"), "{fdisk}");
        assert!(fdisk.contains("22528 sectors"), "{fdisk}");
        let line = |needle: &str| {
            fdisk
                .lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle}: {fdisk}"))
        };
        let esp: Vec<&str> = line("disk.raw1").split_whitespace().collect();
        assert_eq!(esp[1..5], ["2048", "10239", "8192", "4M"], "{fdisk}");
        assert!(line("disk.raw1").ends_with("EFI System"));
        let data: Vec<&str> = line("disk.raw2").split_whitespace().collect();
        assert_eq!(data[1..4], ["10240", "20480", "10241"], "{fdisk}");
        assert!(line("disk.raw2").ends_with("Linux filesystem"));

        // The contents read back at the partitions' offsets.
        let bytes = fs::read(&disk).unwrap();
        let esp_at = (2048 * SECTOR) as usize;
        assert_eq!(
            &bytes[esp_at..esp_at + 3 * MIB as usize],
            &pattern(3 * MIB as usize, 1)[..]
        );
        assert!(
            bytes[esp_at + 3 * MIB as usize..esp_at + 4 * MIB as usize]
                .iter()
                .all(|&b| b == 0)
        );
        let data_at = (10240 * SECTOR) as usize;
        assert_eq!(
            &bytes[data_at..data_at + 5 * MIB as usize + 512],
            &pattern(5 * MIB as usize + 512, 2)[..]
        );
    }

    #[test]
    fn reproducible_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sample(dir.path());
        let (a, b) = (dir.path().join("a.raw"), dir.path().join("b.raw"));
        write_disk(&spec, &a).unwrap();
        write_disk(&spec, &b).unwrap();
        assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap());

        let mut other = spec.clone();
        other.seed = "other".into();
        write_disk(&other, &b).unwrap();
        assert!(
            fs::read(&a).unwrap() != fs::read(&b).unwrap(),
            "the seed reaches the GUIDs"
        );

        let mut small = spec.clone();
        small.size = Some(10 * MIB);
        assert!(matches!(
            write_disk(&small, &b),
            Err(GptError::TooSmall { .. })
        ));
        let mut tight = spec.clone();
        tight.partitions[0].size = Some(MIB);
        assert!(matches!(
            write_disk(&tight, &b),
            Err(GptError::BadPartition { .. })
        ));
        let mut long = spec.clone();
        long.partitions[1].name = "x".repeat(37);
        assert!(matches!(
            write_disk(&long, &b),
            Err(GptError::BadPartition { .. })
        ));
    }

    /// What husk-init does at boot to a disk larger than the image: the
    /// shared crate grows what this writer wrote, and sgdisk agrees.
    #[test]
    fn written_disks_grow_at_boot() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.raw");
        write_disk(&sample(dir.path()), &disk).unwrap();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&disk)
            .unwrap();
        file.set_len(100 * MIB).unwrap();
        let grown =
            husk_gpt::grow_partition(&mut file, SECTOR, 100 * MIB / SECTOR, "husk-data").unwrap();
        assert_eq!(
            (grown.old_last_lba, grown.new_last_lba),
            (20480, 99 * 2048 - 1)
        );
        let verify = tool("sgdisk", "gdisk", &["-v"], &disk);
        assert!(verify.contains("No problems found"), "{verify}");
        let print = tool("sgdisk", "gdisk", &["-p"], &disk);
        assert!(print.contains("202751"), "{print}");
        // The partition's data is where it was.
        let bytes = fs::read(&disk).unwrap();
        let data_at = (10240 * SECTOR) as usize;
        assert_eq!(&bytes[data_at..data_at + 4096], &pattern(4096, 2)[..]);
    }

    /// A 2 GiB disk from sparse partition files is written sparse, fast,
    /// with a small buffer: only the GPT and the non-zero data take space.
    #[test]
    fn large_disks_stay_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let esp = dir.path().join("esp.img");
        let data = dir.path().join("data.img");
        let mut f = File::create(&esp).unwrap();
        f.write_all(&pattern(MIB as usize, 3)).unwrap();
        f.set_len(256 * MIB).unwrap();
        let mut f = File::create(&data).unwrap();
        f.set_len(1792 * MIB - 2 * MIB).unwrap();
        f.seek(SeekFrom::Start(1000 * MIB)).unwrap();
        f.write_all(b"needle").unwrap();
        let spec = DiskSpec {
            seed: "big".into(),
            partitions: vec![
                PartitionSpec {
                    name: "esp".into(),
                    type_guid: ESP_TYPE.parse().unwrap(),
                    source: esp,
                    size: None,
                },
                PartitionSpec {
                    name: "husk-data".into(),
                    type_guid: LINUX_DATA_TYPE.parse().unwrap(),
                    source: data,
                    size: None,
                },
            ],
            size: None,
        };
        let disk = dir.path().join("disk.raw");
        let started = Instant::now();
        let layout = write_disk(&spec, &disk).unwrap();
        let elapsed = started.elapsed();
        let meta = fs::metadata(&disk).unwrap();
        eprintln!(
            "2 GiB disk: {elapsed:?}, {} KiB allocated, {} bytes written",
            meta.blocks() / 2,
            layout.data_written
        );
        assert_eq!(layout.size, 2048 * MIB);
        assert!(
            (MIB + 6..=MIB + 64 * 1024).contains(&layout.data_written),
            "{}",
            layout.data_written
        );
        assert!(
            meta.blocks() * 512 < 8 * MIB,
            "not sparse: {} blocks",
            meta.blocks()
        );
        let verify = tool("sgdisk", "gdisk", &["-v"], &disk);
        assert!(verify.contains("No problems found"), "{verify}");
    }
}
