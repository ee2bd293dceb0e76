//! Converts a raw disk to qcow2 with `qemu-img convert` (Debian's
//! qemu-utils). The qcow2 options are pinned (compat 1.1, 64 KiB
//! clusters, 16-bit refcounts, no lazy refcounts) rather than left to the
//! installed QEMU's defaults, and the conversion writes in order, so the
//! same raw disk gives the same bytes. qcow2 headers hold no timestamps
//! or host paths.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const PACKAGE: &str = "qemu-utils";
const OPTIONS: &str = "compat=1.1,cluster_size=65536,refcount_bits=16,lazy_refcounts=off";

#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    #[error("qemu-img not found: apt-get install {PACKAGE}")]
    Missing,
    #[error("qemu-img convert {raw} failed ({status}): {stderr}")]
    Failed {
        raw: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("renaming to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `raw` as qcow2 to `out` (through `out.tmp`); `compress` uses
/// qcow2's zlib compression (smaller, slower to write).
pub fn convert(raw: &Path, out: &Path, compress: bool) -> Result<(), Qcow2Error> {
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut command = Command::new("qemu-img");
    command
        .env("LC_ALL", "C")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2", "-o", OPTIONS]);
    if compress {
        command.arg("-c");
    }
    let output = command
        .arg(raw)
        .arg(&tmp)
        .output()
        .map_err(|_| Qcow2Error::Missing)?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Qcow2Error::Failed {
            raw: raw.to_owned(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    std::fs::rename(&tmp, out).map_err(|e| Qcow2Error::Write {
        path: out.to_owned(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};
    use std::io::{Seek, SeekFrom, Write};

    fn raw_disk(dir: &Path) -> PathBuf {
        let raw = dir.join("disk.raw");
        let mut f = File::create(&raw).unwrap();
        f.set_len(256 << 20).unwrap();
        for at in [0u64, 7 << 20, 100 << 20, (256 << 20) - 4096] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(
                &(0..200_000u32).map(|i| (i % 241) as u8).collect::<Vec<_>>()
                    [..4096.min(((256 << 20) - at) as usize)],
            )
            .unwrap();
        }
        f.seek(SeekFrom::Start(50 << 20)).unwrap();
        f.write_all(
            &(0..3_000_000u32)
                .map(|i| (i % 241) as u8)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        raw
    }

    #[test]
    fn qemu_img_agrees_and_output_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let raw = raw_disk(dir.path());
        let (a, b) = (dir.path().join("a.qcow2"), dir.path().join("b.qcow2"));
        let started = std::time::Instant::now();
        convert(&raw, &a, false).unwrap();
        eprintln!(
            "qcow2 of a 256 MiB disk: {:?}, {} bytes",
            started.elapsed(),
            fs::metadata(&a).unwrap().len()
        );
        convert(&raw, &b, false).unwrap();
        assert!(
            fs::read(&a).unwrap() == fs::read(&b).unwrap(),
            "qcow2 differs between runs"
        );

        let qemu_img = |args: &[&str]| {
            let out = Command::new("qemu-img")
                .args(args)
                .output()
                .expect("qemu-img: apt-get install qemu-utils");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (ok, info) = qemu_img(&["info", "--output=json", a.to_str().unwrap()]);
        assert!(ok, "{info}");
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["virtual-size"], 256u64 << 20);
        assert_eq!(info["format-specific"]["data"]["compat"], "1.1");
        let (ok, check) = qemu_img(&["check", a.to_str().unwrap()]);
        assert!(ok && check.contains("No errors"), "{check}");
        let (ok, text) = qemu_img(&[
            "compare",
            "-f",
            "raw",
            "-F",
            "qcow2",
            raw.to_str().unwrap(),
            a.to_str().unwrap(),
        ]);
        assert!(ok && text.contains("identical"), "{text}");

        convert(&raw, &b, true).unwrap();
        let (ok, text) = qemu_img(&[
            "compare",
            "-f",
            "raw",
            "-F",
            "qcow2",
            raw.to_str().unwrap(),
            b.to_str().unwrap(),
        ]);
        assert!(ok && text.contains("identical"), "compressed: {text}");
        let again = dir.path().join("c.qcow2");
        convert(&raw, &again, true).unwrap();
        assert!(
            fs::read(&b).unwrap() == fs::read(&again).unwrap(),
            "compressed qcow2 differs between runs"
        );
    }

    #[test]
    fn failures_name_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let err = convert(
            &dir.path().join("missing.raw"),
            &dir.path().join("x.qcow2"),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing.raw"), "{err}");
        assert!(!dir.path().join("x.qcow2.tmp").exists());
    }
}
