//! Builds the EFI system partition: a FAT32 filesystem image holding
//! systemd-boot, its loader.conf and Husk's UKIs, written with the
//! `fatfs` crate into a regular file (no mtools, no mounts).
//!
//! Layout:
//!
//! | path | what |
//! |---|---|
//! | `EFI/BOOT/BOOTX64.EFI` | systemd-boot, the removable-media fallback path firmware boots |
//! | `EFI/systemd/systemd-bootx64.efi` | systemd-boot where `bootctl` keeps it |
//! | `loader/loader.conf` | [`LOADER_CONF`] |
//! | `loader/entries/` | empty (UKIs are Type #2 entries) |
//! | `EFI/Linux/husk-<version>+<tries>.efi` | each UKI, with systemd's boot counter |
//!
//! Determinism: the volume id comes from the caller's seed, every
//! timestamp is the caller's `SOURCE_DATE_EPOCH` (clamped to the FAT
//! range 1980..2107), files are written in a fixed order, and the image
//! starts as an all-zero sparse file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use husk_release::BootEntry;
use sha2::{Digest, Sha256};

/// Debian's systemd-boot (package [`SYSTEMD_BOOT_PACKAGE`]).
pub const SYSTEMD_BOOT: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
pub const SYSTEMD_BOOT_PACKAGE: &str = "systemd-boot-efi";

/// 256 MiB: room for two UKIs (A/B) of up to ~100 MiB each.
pub const DEFAULT_ESP_SIZE: u64 = 256 << 20;
/// FAT32 needs at least 65525 clusters; with 512-byte clusters that is
/// ~33 MiB, so smaller ESPs are refused.
pub const MIN_ESP_SIZE: u64 = 64 << 20;
/// Tries systemd's Automatic Boot Assessment gives a new UKI.
pub const DEFAULT_TRIES: u32 = 3;
/// The volume label.
pub const LABEL: &[u8; 11] = b"HUSK-ESP   ";

/// systemd-boot's configuration: boot the newest Husk UKI at once
/// (`default` is a glob over entry ids and the newest version sorts
/// first), no editing of the kernel command line, keep the firmware's
/// console mode.
pub const LOADER_CONF: &str = "timeout 0\ndefault husk-*\neditor no\nconsole-mode keep\n";

/// One UKI to install.
#[derive(Debug, Clone)]
pub struct EspUki {
    /// The Husk version, as in the file name `husk-<version>+3.efi`.
    pub version: String,
    /// The assembled UKI.
    pub path: PathBuf,
}

/// Everything an ESP is made of.
#[derive(Debug, Clone)]
pub struct EspSpec {
    /// Size of the filesystem in bytes (a multiple of 512).
    pub size: u64,
    /// systemd-boot's EFI binary.
    pub systemd_boot: PathBuf,
    /// The UKIs, installed in this order.
    pub ukis: Vec<EspUki>,
    /// Tries left in each UKI's name; `None`: no boot counting.
    pub tries: Option<u32>,
    /// Seed for the volume id.
    pub seed: String,
    /// Timestamp of every file and directory.
    pub source_date_epoch: u64,
}

impl EspSpec {
    pub fn new(ukis: Vec<EspUki>, seed: &str, source_date_epoch: u64) -> Self {
        Self {
            size: DEFAULT_ESP_SIZE,
            systemd_boot: PathBuf::from(SYSTEMD_BOOT),
            ukis,
            tries: Some(DEFAULT_TRIES),
            seed: seed.to_owned(),
            source_date_epoch,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source} (systemd-boot is in Debian's {SYSTEMD_BOOT_PACKAGE})")]
    ReadBootloader { path: PathBuf, source: io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("ESP size {0} bytes: must be a multiple of 512 between {MIN_ESP_SIZE} and 2 TiB")]
    BadSize(u64),
    #[error("version {0:?}: use letters, digits and . _ ~ ^ - only")]
    BadVersion(String),
    #[error("the ESP is full: {needed} bytes of files do not fit in {size} bytes")]
    Full { needed: u64, size: u64 },
}

/// The file name of a UKI under `EFI/Linux/`.
pub fn uki_file_name(version: &str, tries: Option<u32>) -> String {
    match tries {
        Some(n) => BootEntry::fresh(version, n),
        None => BootEntry::blessed(version),
    }
    .file_name()
}

/// The volume id (serial number) for a seed.
pub fn volume_id(seed: &str) -> u32 {
    let digest = Sha256::digest(format!("husk-esp-volume-id:{seed}").as_bytes());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A clock that always says `SOURCE_DATE_EPOCH`.
#[derive(Debug)]
struct FixedTime(fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// Seconds since 1970 as a FAT date-time in UTC, clamped to 1980..=2107.
fn fat_date_time(epoch: u64) -> fatfs::DateTime {
    const MIN: u64 = 315_532_800; // 1980-01-01
    const MAX: u64 = 4_354_819_198; // 2107-12-31 23:59:58
    let t = epoch.clamp(MIN, MAX);
    let (days, secs) = (t / 86_400, t % 86_400);
    let (year, month, day) = husk_common::civil::civil_from_days(days as i64);
    fatfs::DateTime {
        date: fatfs::Date {
            year: year as u16,
            month: month as u16,
            day: day as u16,
        },
        time: fatfs::Time {
            hour: (secs / 3600) as u16,
            min: (secs / 60 % 60) as u16,
            sec: (secs % 60) as u16,
            millis: 0,
        },
    }
}

fn check_version(version: &str) -> Result<(), EspError> {
    husk_release::check_version(version).map_err(|_| EspError::BadVersion(version.to_owned()))
}

/// What an ESP build wrote.
#[derive(Debug, Clone, Default)]
pub struct EspReport {
    /// Paths inside the ESP, in the order written.
    pub files: Vec<String>,
    pub files_bytes: u64,
    pub cluster_size: u32,
    pub free_bytes: u64,
}

/// Builds the ESP described by `spec` into `out` (through `out.tmp`,
/// renamed when complete).
pub fn build(spec: &EspSpec, out: &Path) -> Result<EspReport, EspError> {
    if spec.size & 511 != 0 || spec.size < MIN_ESP_SIZE || spec.size > (2 << 40) {
        return Err(EspError::BadSize(spec.size));
    }
    for uki in &spec.ukis {
        check_version(&uki.version)?;
    }
    let bootloader = fs::read(&spec.systemd_boot).map_err(|e| EspError::ReadBootloader {
        path: spec.systemd_boot.clone(),
        source: e,
    })?;

    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let write_err = |e: io::Error| EspError::Write {
        path: out.to_owned(),
        source: e,
    };
    let result = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(write_err)?;
        file.set_len(spec.size).map_err(write_err)?;
        let report = populate(spec, &bootloader, file)?;
        fs::rename(&tmp, out).map_err(write_err)?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn populate(spec: &EspSpec, bootloader: &[u8], mut file: File) -> Result<EspReport, EspError> {
    let io_err = |source: io::Error| EspError::Write {
        path: PathBuf::from("<esp>"),
        source,
    };
    let options = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .volume_id(volume_id(&spec.seed))
        .volume_label(*LABEL);
    fatfs::format_volume(&mut file, options).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    // fatfs wants a `&'static` clock; one small leak per ESP built.
    let clock: &'static FixedTime =
        Box::leak(Box::new(FixedTime(fat_date_time(spec.source_date_epoch))));
    let fs = fatfs::FileSystem::new(
        file.try_clone().map_err(io_err)?,
        fatfs::FsOptions::new().time_provider(clock),
    )
    .map_err(io_err)?;

    let mut report = EspReport {
        cluster_size: fs.cluster_size(),
        ..EspReport::default()
    };
    {
        let root = fs.root_dir();
        for dir in [
            "EFI",
            "EFI/BOOT",
            "EFI/systemd",
            "EFI/Linux",
            "loader",
            "loader/entries",
        ] {
            root.create_dir(dir).map_err(io_err)?;
        }
        let mut put = |path: &str, source: &mut dyn Read| -> Result<(), EspError> {
            let mut f = root.create_file(path).map_err(io_err)?;
            f.truncate().map_err(io_err)?;
            let n = io::copy(source, &mut f).map_err(|e| {
                if is_full(&e) {
                    EspError::Full {
                        needed: report.files_bytes,
                        size: spec.size,
                    }
                } else {
                    io_err(e)
                }
            })?;
            f.flush().map_err(io_err)?;
            report.files.push(path.to_owned());
            report.files_bytes += n;
            Ok(())
        };
        put("EFI/BOOT/BOOTX64.EFI", &mut &bootloader[..])?;
        put("EFI/systemd/systemd-bootx64.efi", &mut &bootloader[..])?;
        put("loader/loader.conf", &mut LOADER_CONF.as_bytes())?;
        for uki in &spec.ukis {
            let mut source = File::open(&uki.path).map_err(|e| EspError::Read {
                path: uki.path.clone(),
                source: e,
            })?;
            put(
                &format!("EFI/Linux/{}", uki_file_name(&uki.version, spec.tries)),
                &mut source,
            )?;
        }
    }
    let stats = fs.stats().map_err(io_err)?;
    report.free_bytes = u64::from(stats.free_clusters()) * u64::from(stats.cluster_size());
    fs.unmount().map_err(io_err)?;
    crate::fat::drop_dot_long_names(&mut file).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(report)
}

fn is_full(e: &io::Error) -> bool {
    e.to_string().contains("No space left")
}

/// A read-only view of an image for fatfs, which wants `Write` too: any
/// write is refused, so reading can never change the image.
struct ReadOnly(File);

impl Read for ReadOnly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for ReadOnly {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

impl Write for ReadOnly {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "read-only"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads one file back out of an ESP image (for checks and tests).
pub fn read_file(image: &Path, path: &str) -> Result<Vec<u8>, EspError> {
    let read_err = |source: io::Error| EspError::Read {
        path: image.join(path),
        source,
    };
    let file = File::open(image).map_err(read_err)?;
    let fs = fatfs::FileSystem::new(ReadOnly(file), fatfs::FsOptions::new()).map_err(read_err)?;
    let mut data = Vec::new();
    fs.root_dir()
        .open_file(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(read_err)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sample(dir: &Path, epoch: u64) -> (EspSpec, Vec<Vec<u8>>) {
        let mut ukis = Vec::new();
        let mut contents = Vec::new();
        for (i, version) in ["1.0.0", "1.1.0"].iter().enumerate() {
            let data: Vec<u8> = (0..20_000_000u32 + i as u32)
                .map(|n| (n % 251) as u8 ^ i as u8)
                .collect();
            let path = dir.join(format!("uki-{version}.efi"));
            fs::write(&path, &data).unwrap();
            ukis.push(EspUki {
                version: (*version).to_owned(),
                path,
            });
            contents.push(data);
        }
        (EspSpec::new(ukis, "test-seed", epoch), contents)
    }

    fn systemd_boot() -> Vec<u8> {
        fs::read(SYSTEMD_BOOT)
            .unwrap_or_else(|e| panic!("{SYSTEMD_BOOT}: {e}: apt-get install systemd-boot-efi"))
    }

    #[test]
    fn fsck_vfat_is_clean_and_files_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, ukis) = sample(dir.path(), 1_700_000_000);
        let image = dir.path().join("esp.img");
        let started = Instant::now();
        let report = build(&spec, &image).unwrap();
        eprintln!("esp: {report:?} in {:?}", started.elapsed());
        assert_eq!(fs::metadata(&image).unwrap().len(), DEFAULT_ESP_SIZE);

        let fsck = crate::tools::require("fsck.vfat", "dosfstools")
            .arg("-n")
            .arg("-v")
            .arg(&image)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
        assert!(fsck.status.success(), "fsck.vfat: {text}");
        assert!(text.contains("32 bit entries"), "FAT32: {text}");
        assert!(
            !text.contains("Dirty bit") && !text.contains("Fixing"),
            "{text}"
        );
        let fatlabel = |args: &[&str]| {
            let out = crate::tools::require("fatlabel", "dosfstools")
                .args(args)
                .arg(&image)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        assert_eq!(fatlabel(&[]), "HUSK-ESP");
        assert_eq!(fatlabel(&["-i"]), format!("{:08x}", volume_id("test-seed")));

        let boot = systemd_boot();
        assert_eq!(read_file(&image, "EFI/BOOT/BOOTX64.EFI").unwrap(), boot);
        assert_eq!(
            read_file(&image, "EFI/systemd/systemd-bootx64.efi").unwrap(),
            boot
        );
        assert_eq!(
            read_file(&image, "loader/loader.conf").unwrap(),
            LOADER_CONF.as_bytes()
        );
        assert_eq!(
            read_file(&image, "EFI/Linux/husk-1.0.0+3.efi").unwrap(),
            ukis[0]
        );
        assert_eq!(
            read_file(&image, "EFI/Linux/husk-1.1.0+3.efi").unwrap(),
            ukis[1]
        );

        // The empty entries directory is there, as fsck.vfat lists it.
        let listing = crate::tools::require("fsck.vfat", "dosfstools")
            .arg("-n")
            .arg("-l")
            .arg(&image)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.contains("/loader/entries"), "{listing}");
        assert!(listing.contains("/EFI/Linux/husk-1.1.0+3.efi"), "{listing}");

        // Timestamps are SOURCE_DATE_EPOCH (2023-11-14 22:13:20 UTC).
        let fs = fatfs::FileSystem::new(
            ReadOnly(File::open(&image).unwrap()),
            fatfs::FsOptions::new(),
        )
        .unwrap();
        for entry in fs.root_dir().open_dir("EFI/Linux").unwrap().iter() {
            let modified = entry.unwrap().modified();
            assert_eq!(
                (modified.date.year, modified.date.month, modified.date.day),
                (2023, 11, 14)
            );
            assert_eq!(
                (modified.time.hour, modified.time.min, modified.time.sec),
                (22, 13, 20)
            );
        }
    }

    #[test]
    fn reproducible_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, _) = sample(dir.path(), 1_700_000_000);
        let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
        build(&spec, &a).unwrap();
        read_file(&a, "loader/loader.conf").unwrap();
        build(&spec, &b).unwrap();
        assert!(
            fs::read(&a).unwrap() == fs::read(&b).unwrap(),
            "same spec, different bytes"
        );
        let mut other = spec.clone();
        other.source_date_epoch += 86_400;
        build(&other, &b).unwrap();
        assert!(
            fs::read(&a).unwrap() != fs::read(&b).unwrap(),
            "the epoch must reach the image"
        );
    }

    #[test]
    fn dates_and_validation() {
        let t = fat_date_time(1_700_000_000);
        assert_eq!((t.date.year, t.date.month, t.date.day), (2023, 11, 14));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (22, 13, 20));
        let t = fat_date_time(0);
        assert_eq!(
            (t.date.year, t.date.month, t.date.day, t.time.hour),
            (1980, 1, 1, 0)
        );
        let t = fat_date_time(951_782_400); // 2000-02-29
        assert_eq!((t.date.year, t.date.month, t.date.day), (2000, 2, 29));

        assert_eq!(uki_file_name("1.2", Some(3)), "husk-1.2+3.efi");
        let dir = tempfile::tempdir().unwrap();
        let mut spec = EspSpec::new(Vec::new(), "s", 0);
        spec.size = 1 << 20;
        assert!(matches!(
            build(&spec, &dir.path().join("x")),
            Err(EspError::BadSize(_))
        ));
        spec.size = MIN_ESP_SIZE;
        spec.ukis.push(EspUki {
            version: "1+2".into(),
            path: "/nonexistent".into(),
        });
        assert!(matches!(
            build(&spec, &dir.path().join("x")),
            Err(EspError::BadVersion(_))
        ));
    }

    #[test]
    fn too_many_files_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.efi");
        let f = File::create(&big).unwrap();
        f.set_len(MIN_ESP_SIZE).unwrap();
        let mut spec = EspSpec::new(
            vec![EspUki {
                version: "1".into(),
                path: big,
            }],
            "s",
            0,
        );
        spec.size = MIN_ESP_SIZE;
        let err = build(&spec, &dir.path().join("esp.img")).unwrap_err();
        assert!(matches!(err, EspError::Full { .. }), "{err}");
        assert!(!dir.path().join("esp.img").exists());
    }
}
