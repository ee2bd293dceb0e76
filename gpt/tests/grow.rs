//! Growing disks written by the crate's own writer, checked by sgdisk
//! (gdisk), the reference implementation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use husk_gpt::{Entry, GptError, Guid, Table, grow_partition, read_verified};

const MIB: u64 = 1 << 20;

fn sgdisk(args: &[&str], disk: &Path) -> String {
    let tool = ["/usr/sbin/sgdisk", "/sbin/sgdisk", "/usr/bin/sgdisk"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("sgdisk not found: apt-get install gdisk");
    let out = Command::new(tool)
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
    assert!(out.status.success(), "sgdisk {args:?}: {text}");
    text
}

/// `sgdisk -p`'s row for partition `n`: Number Start End ...
fn row(print: &str, n: u32) -> Vec<String> {
    print
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[0] == n.to_string())
        .unwrap_or_else(|| panic!("no partition {n}: {print}"))
}

fn entry(name: &str, first: u64, last: u64) -> Entry {
    Entry {
        type_guid: husk_gpt::LINUX_DATA_TYPE.parse().unwrap(),
        unique_guid: Guid([name.len() as u8; 16]),
        first_lba: first,
        last_lba: last,
        attributes: 0,
        name: name.into(),
    }
}

/// An 11 MiB disk: esp at 1 MiB (4 MiB), husk-data at 5 MiB (5 MiB).
fn small_disk(dir: &Path, sector: u64) -> PathBuf {
    let path = dir.join("disk.raw");
    let per_mib = MIB / sector;
    let table = Table {
        sector_size: sector,
        disk_sectors: 11 * per_mib,
        disk_guid: "01234567-89AB-4DEF-8123-456789ABCDEF".parse().unwrap(),
        entries: vec![
            entry("esp", per_mib, 5 * per_mib - 1),
            entry("husk-data", 5 * per_mib, 10 * per_mib - 1),
        ],
    };
    let mut file = File::create(&path).unwrap();
    file.set_len(11 * MIB).unwrap();
    table.write(&mut file).unwrap();
    path
}

fn open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

fn sectors(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len() / 512
}

#[test]
fn the_writer_makes_what_sgdisk_expects() {
    let dir = tempfile::tempdir().unwrap();
    let disk = small_disk(dir.path(), 512);
    assert!(sgdisk(&["-v"], &disk).contains("No problems found"));
    let print = sgdisk(&["-p"], &disk);
    assert_eq!(row(&print, 2)[..3], ["2", "10240", "20479"]);
    assert_eq!(row(&print, 2)[6], "husk-data");
}

#[test]
fn a_larger_disk_gets_the_partition_grown_once() {
    let dir = tempfile::tempdir().unwrap();
    let disk = small_disk(dir.path(), 512);
    File::options()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    let grown = grow_partition(&mut open(&disk), 512, sectors(&disk), "husk-data").unwrap();
    assert_eq!(grown.partition_number, 2);
    assert_eq!(grown.old_last_lba, 20479);
    // The last usable sector is 131038; aligned down to 1 MiB: 63 MiB.
    assert_eq!(grown.new_last_lba, 63 * 2048 - 1);
    assert!(grown.moved_backup && grown.grew() && grown.is_last);

    let verify = sgdisk(&["-v"], &disk);
    assert!(verify.contains("No problems found"), "{verify}");
    let print = sgdisk(&["-p"], &disk);
    assert_eq!(row(&print, 2)[..3], ["2", "10240", "129023"], "{print}");
    assert_eq!(row(&print, 1)[..3], ["1", "2048", "10239"], "{print}");

    // Twice is a no-op: no write at all.
    let before = fs::read(&disk).unwrap();
    let again = grow_partition(&mut open(&disk), 512, sectors(&disk), "husk-data").unwrap();
    assert!(!again.changed(), "{again:?}");
    assert_eq!(again.new_last_lba, 129023);
    assert!(fs::read(&disk).unwrap() == before);
}

#[test]
fn only_the_last_partition_grows() {
    let dir = tempfile::tempdir().unwrap();
    let disk = small_disk(dir.path(), 512);
    open(&disk).set_len(32 * MIB).unwrap();
    let grown = grow_partition(&mut open(&disk), 512, sectors(&disk), "esp").unwrap();
    assert!(grown.moved_backup && !grown.grew() && !grown.is_last);
    assert!(sgdisk(&["-v"], &disk).contains("No problems found"));
    // The backup is at the end now; husk-data still grows.
    let grown = grow_partition(&mut open(&disk), 512, sectors(&disk), "husk-data").unwrap();
    assert!(!grown.moved_backup && grown.grew());
    assert_eq!(grown.new_last_lba, 31 * 2048 - 1);
    assert!(sgdisk(&["-v"], &disk).contains("No problems found"));
}

#[test]
fn a_gpt_that_does_not_verify_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    // Offsets: primary header, primary array (the husk-data entry),
    // backup array, backup header.
    for (offset, expect) in [
        (512 + 20, "primary GPT header"),
        (1024 + 128 + 41, "primary GPT partition entries"),
        (11 * MIB - 33 * 512 + 130, "backup GPT partition entries"),
        (11 * MIB - 512 + 30, "backup GPT header"),
    ] {
        let disk = small_disk(dir.path(), 512);
        let mut f = open(&disk);
        f.seek(SeekFrom::Start(offset)).unwrap();
        let mut byte = [0u8];
        f.read_exact(&mut byte).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&[byte[0] ^ 0x40]).unwrap();
        f.set_len(64 * MIB).unwrap();
        let before = fs::read(&disk).unwrap();
        let err = grow_partition(&mut f, 512, sectors(&disk), "husk-data").unwrap_err();
        assert!(err.to_string().contains(expect), "{offset}: {err}");
        assert!(fs::read(&disk).unwrap() == before, "{offset}: written");
    }
}

#[test]
fn refusals_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let disk = small_disk(dir.path(), 512);
    let err = grow_partition(&mut open(&disk), 512, sectors(&disk), "nope").unwrap_err();
    assert!(matches!(err, GptError::NotFound(_)), "{err}");
    let err = grow_partition(&mut open(&disk), 512, 10 * 2048, "husk-data").unwrap_err();
    assert!(matches!(err, GptError::DiskShrank { .. }), "{err}");
    let err = grow_partition(&mut open(&disk), 1024, 1000, "husk-data").unwrap_err();
    assert!(matches!(err, GptError::BadSectorSize(1024)), "{err}");
    // Not a GPT at all.
    let blank = dir.path().join("blank");
    File::create(&blank).unwrap().set_len(MIB).unwrap();
    let err = grow_partition(&mut open(&blank), 512, 2048, "husk-data").unwrap_err();
    assert!(err.to_string().contains("signature"), "{err}");
}

/// Found by the `gpt_read` fuzz target: LBAs near 2^64 wrapped around
/// in the layout checks (and overflowed in a debug build) instead of
/// being refused.
#[test]
fn lbas_at_the_end_of_the_address_space_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = small_disk(dir.path(), 512);
    let mut f = open(&disk);
    let mut sector = vec![0u8; 512];
    f.seek(SeekFrom::Start(512)).unwrap();
    f.read_exact(&mut sector).unwrap();
    let mut header = husk_gpt::Header::decode(&sector).unwrap();
    header.entries_lba = u64::MAX - 1;
    f.seek(SeekFrom::Start(512)).unwrap();
    f.write_all(&header.encode(512)).unwrap();
    let err = read_verified(&mut f, 512, sectors(&disk)).unwrap_err();
    assert!(
        err.to_string()
            .contains("primary GPT header: overlapping layout"),
        "{err}"
    );
    // A disk whose size in bytes would not fit in 64 bits.
    let err = read_verified(&mut open(&disk), 4096, u64::MAX / 2048).unwrap_err();
    assert!(matches!(err, GptError::BadTable(_)), "{err}");
}

#[test]
fn four_k_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let disk = small_disk(dir.path(), 4096);
    open(&disk).set_len(64 * MIB).unwrap();
    let disk_sectors = 64 * MIB / 4096;
    let grown = grow_partition(&mut open(&disk), 4096, disk_sectors, "husk-data").unwrap();
    assert_eq!(grown.new_last_lba, 63 * 256 - 1);
    let v = read_verified(&mut open(&disk), 4096, disk_sectors).unwrap();
    assert_eq!(v.backup.my_lba, disk_sectors - 1);
    assert_eq!(v.primary.last_usable_lba, disk_sectors - 1 - 4 - 1);
}

/// A disk that fails the Nth write, as a crash would stop the writes.
struct FailingDisk {
    file: File,
    writes_left: usize,
}

impl Read for FailingDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for FailingDisk {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl Write for FailingDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.writes_left == 0 {
            return Err(io::Error::other("crash"));
        }
        self.writes_left -= 1;
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_crash_between_the_two_tables_leaves_a_valid_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = small_disk(dir.path(), 512);
    open(&disk).set_len(64 * MIB).unwrap();
    let mut crashing = FailingDisk {
        file: open(&disk),
        writes_left: 1,
    };
    assert!(grow_partition(&mut crashing, 512, sectors(&disk), "husk-data").is_err());
    // The old table: still valid, still small.
    let v = read_verified(&mut open(&disk), 512, sectors(&disk)).unwrap();
    assert_eq!(v.primary.alternate_lba, 11 * 2048 - 1);
    // sgdisk reads it as any image copied to a larger disk: one problem,
    // the backup is not at the end; nothing is corrupt.
    let verify = sgdisk(&["-v"], &disk);
    assert!(verify.contains("Identified 1 problems"), "{verify}");
    assert!(
        verify.contains("doesn't reside\nat the end of the disk"),
        "{verify}"
    );
    let print = sgdisk(&["-p"], &disk);
    assert_eq!(row(&print, 2)[..3], ["2", "10240", "20479"], "{print}");
    // The next boot finishes the job.
    let grown = grow_partition(&mut open(&disk), 512, sectors(&disk), "husk-data").unwrap();
    assert!(grown.grew());
    assert!(sgdisk(&["-v"], &disk).contains("No problems found"));
}
