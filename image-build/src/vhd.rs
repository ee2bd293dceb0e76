//! Converts a raw disk into a fixed VHD, the format Azure takes: the raw
//! bytes followed by a 512-byte footer (Microsoft's "Virtual Hard Disk
//! Image Format Specification", fixed hard disk image).
//!
//! Azure wants the virtual size to be a whole number of MiB, so other
//! sizes are refused. The footer's timestamp comes from the caller's
//! `SOURCE_DATE_EPOCH` and its unique id from a seed, so equal inputs
//! give equal bytes. Readers differ in where they take the size from:
//! Azure and Hyper-V read the footer's current size; QEMU does for known
//! creator applications only and otherwise multiplies out the CHS
//! geometry (slightly smaller), so with QEMU open Husk's VHDs with
//! `driver=vpc,force_size_calc=current_size` (or use disk.raw/qcow2).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::sparse::{CopyError, copy_into};
use husk_gpt::Guid;

pub const FOOTER_LEN: usize = 512;
/// Seconds from the Unix epoch to the VHD epoch, 2000-01-01 00:00:00 UTC.
const VHD_EPOCH: u64 = 946_684_800;
const MIB: u64 = 1 << 20;
/// The largest fixed VHD (the format's 2040 GiB limit).
pub const MAX_SIZE: u64 = 2040 << 30;
pub const CREATOR_APP: &[u8; 4] = b"husk";
/// Creator version 1.0.
pub const CREATOR_VERSION: u32 = 0x0001_0000;
/// "Wi2k", what Microsoft's and QEMU's tools write.
pub const CREATOR_HOST_OS: &[u8; 4] = b"Wi2k";
const DISK_TYPE_FIXED: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum VhdError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {size} bytes is not a whole number of MiB, which Azure requires of a VHD")]
    NotWholeMib { path: PathBuf, size: u64 },
    #[error("{path}: {size} bytes is empty or larger than a VHD can be ({MAX_SIZE})")]
    BadSize { path: PathBuf, size: u64 },
}

/// Cylinders, heads, sectors per track, as the VHD specification's
/// algorithm computes them from the disk's sector count.
pub fn chs(total_sectors: u64) -> (u16, u8, u8) {
    let total = total_sectors.min(65_535 * 16 * 255);
    let (spt, heads, cylinder_times_heads);
    if total >= 65_535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cylinder_times_heads = total / spt;
    } else {
        let mut s = 17;
        let mut cth = total / s;
        let mut h = cth.div_ceil(1024).max(4);
        if cth >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            cth = total / s;
        }
        if cth >= h * 1024 {
            s = 63;
            h = 16;
            cth = total / s;
        }
        spt = s;
        heads = h;
        cylinder_times_heads = cth;
    }
    (
        (cylinder_times_heads / heads) as u16,
        heads as u8,
        spt as u8,
    )
}

/// The footer of a fixed VHD of `size` bytes.
pub fn footer(size: u64, seed: &str, source_date_epoch: u64) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // no dynamic header
    let timestamp = u32::try_from(source_date_epoch.saturating_sub(VHD_EPOCH)).unwrap_or(u32::MAX);
    f[24..28].copy_from_slice(&timestamp.to_be_bytes());
    f[28..32].copy_from_slice(CREATOR_APP);
    f[32..36].copy_from_slice(&CREATOR_VERSION.to_be_bytes());
    f[36..40].copy_from_slice(CREATOR_HOST_OS);
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let (cylinders, heads, spt) = chs(size / 512);
    f[56..58].copy_from_slice(&cylinders.to_be_bytes());
    f[58] = heads;
    f[59] = spt;
    f[60..64].copy_from_slice(&DISK_TYPE_FIXED.to_be_bytes());
    f[68..84].copy_from_slice(&Guid::from_seed("vhd", seed, "").0);
    // 84: saved state 0; the rest reserved, zero.
    let checksum = !f
        .iter()
        .map(|&b| u32::from(b))
        .fold(0u32, u32::wrapping_add);
    f[64..68].copy_from_slice(&checksum.to_be_bytes());
    f
}

/// Writes `raw` as a fixed VHD to `out` (sparse, through `out.tmp`).
/// Returns the virtual size.
pub fn write_fixed(
    raw: &Path,
    out: &Path,
    seed: &str,
    source_date_epoch: u64,
) -> Result<u64, VhdError> {
    let size = fs::metadata(raw)
        .map_err(|e| VhdError::Read {
            path: raw.to_owned(),
            source: e,
        })?
        .len();
    if size == 0 || size > MAX_SIZE {
        return Err(VhdError::BadSize {
            path: raw.to_owned(),
            size,
        });
    }
    if size & (MIB - 1) != 0 {
        return Err(VhdError::NotWholeMib {
            path: raw.to_owned(),
            size,
        });
    }
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let write_err = |e: io::Error| VhdError::Write {
        path: out.to_owned(),
        source: e,
    };
    let result = (|| {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(write_err)?;
        file.set_len(size).map_err(write_err)?;
        copy_into(raw, &mut file, 0).map_err(|e| match e {
            CopyError::Read(e) => VhdError::Read {
                path: raw.to_owned(),
                source: e,
            },
            CopyError::Write(e) => write_err(e),
        })?;
        file.seek(SeekFrom::Start(size)).map_err(write_err)?;
        file.write_all(&footer(size, seed, source_date_epoch))
            .map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        fs::rename(&tmp, out).map_err(write_err)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu_img(args: &[&str]) -> (bool, String) {
        let out = Command::new("qemu-img")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("qemu-img: {e}: apt-get install qemu-utils"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn json_u64(text: &str, key: &str) -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        v[key].as_u64().unwrap_or_else(|| panic!("{key}: {text}"))
    }

    fn sample_raw(dir: &Path, size: u64) -> PathBuf {
        let raw = dir.join("disk.raw");
        let mut f = File::create(&raw).unwrap();
        f.set_len(size).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(size - 4)).unwrap();
        f.write_all(b"tail").unwrap();
        raw
    }

    #[test]
    fn qemu_reads_the_size_and_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        let size = 300 * MIB;
        let raw = sample_raw(dir.path(), size);
        let vhd = dir.path().join("disk.vhd");
        assert_eq!(
            write_fixed(&raw, &vhd, "seed", 1_700_000_000).unwrap(),
            size
        );
        assert_eq!(fs::metadata(&vhd).unwrap().len(), size + 512);
        let vhd_opts = format!(
            "driver=vpc,force_size_calc=current_size,file.filename={}",
            vhd.display()
        );

        let (ok, info) = qemu_img(&["info", "--output=json", "--image-opts", &vhd_opts]);
        assert!(ok, "{info}");
        assert_eq!(json_u64(&info, "virtual-size"), size, "{info}");
        assert!(info.contains("\"format\": \"vpc\""), "{info}");

        // Plain `-f vpc` follows the CHS geometry for unknown creators:
        // that it lands on our geometry checks the CHS algorithm.
        let (ok, info) = qemu_img(&["info", "--output=json", "-f", "vpc", vhd.to_str().unwrap()]);
        assert!(ok, "{info}");
        let (c, h, s) = chs(size / 512);
        assert_eq!(
            json_u64(&info, "virtual-size"),
            u64::from(c) * u64::from(h) * u64::from(s) * 512
        );

        let raw_opts = format!("driver=raw,file.filename={}", raw.display());
        let (ok, text) = qemu_img(&["compare", "--image-opts", &raw_opts, &vhd_opts]);
        assert!(ok && text.contains("Images are identical"), "{text}");

        // QEMU checks the footer checksum.
        let mut bytes = fs::read(&vhd).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&vhd, &bytes).unwrap();
        let (ok, text) = qemu_img(&["info", "--image-opts", &vhd_opts]);
        assert!(!ok && text.contains("checksum"), "{text}");
    }

    #[test]
    fn footer_fields() {
        let f = footer(64 * MIB, "seed", VHD_EPOCH + 5);
        assert_eq!(&f[..8], b"conectix");
        assert_eq!(u32::from_be_bytes(f[24..28].try_into().unwrap()), 5);
        assert_eq!(u32::from_be_bytes(f[60..64].try_into().unwrap()), 2);
        assert_eq!(
            footer(64 * MIB, "seed", 0)[24..28],
            [0; 4],
            "before 2000 saturates"
        );
        let sum: u32 = f
            .iter()
            .enumerate()
            .filter(|(i, _)| !(64..68).contains(i))
            .map(|(_, &b)| u32::from(b))
            .sum();
        assert_eq!(u32::from_be_bytes(f[64..68].try_into().unwrap()), !sum);
        assert_eq!(f, footer(64 * MIB, "seed", VHD_EPOCH + 5));
        assert_ne!(f[68..84], footer(64 * MIB, "other", VHD_EPOCH + 5)[68..84]);
        // Small disks use 17 sectors per track, large ones 255.
        assert_eq!(chs(20 * MIB / 512), (602, 4, 17));
        assert_eq!(chs(127 * (1 << 30) / 512), (65_278, 16, 255));
    }

    #[test]
    fn whole_mib_is_required_and_output_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let raw = sample_raw(dir.path(), 5 * MIB + 512);
        let err = write_fixed(&raw, &dir.path().join("x.vhd"), "s", 0).unwrap_err();
        assert!(
            matches!(err, VhdError::NotWholeMib { .. }) && err.to_string().contains("MiB"),
            "{err}"
        );
        assert!(!dir.path().join("x.vhd").exists());

        let raw = sample_raw(dir.path(), 5 * MIB);
        let (a, b) = (dir.path().join("a.vhd"), dir.path().join("b.vhd"));
        write_fixed(&raw, &a, "s", 1_700_000_000).unwrap();
        write_fixed(&raw, &b, "s", 1_700_000_000).unwrap();
        assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap());
    }
}
