//! Finding the data partition in sysfs by its GPT name: the kernel puts
//! `PARTNAME=` in each partition's uevent. The partition's sysfs
//! directory sits inside its disk's, which gives the disk.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sys;

/// A uevent file is a few short lines.
const UEVENT_MAX: u64 = 4096;

/// The fields of a block device's uevent that matter here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub devname: Option<String>,
    pub devtype: Option<String>,
    pub partname: Option<String>,
    pub partn: Option<u32>,
}

/// Parses `KEY=VALUE` lines; unknown keys and junk are ignored.
pub fn parse_uevent(text: &str) -> Uevent {
    let mut u = Uevent::default();
    for (key, value) in text.lines().filter_map(|l| l.split_once('=')) {
        match key {
            "DEVNAME" => u.devname = Some(value.to_owned()),
            "DEVTYPE" => u.devtype = Some(value.to_owned()),
            "PARTNAME" => u.partname = Some(value.to_owned()),
            "PARTN" => u.partn = value.parse().ok(),
            _ => {}
        }
    }
    u
}

/// A partition as sysfs describes it. Sizes in 512-byte units, as
/// sysfs gives them whatever the disk's sector size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// `vda2`: the device is /dev/vda2.
    pub name: String,
    /// `vda`: the whole disk.
    pub disk: String,
    /// Linux's partition number (the GPT slot plus one).
    pub number: u32,
    pub start_512: u64,
    pub size_512: u64,
}

fn read_u64(path: &Path) -> Option<u64> {
    sys::read_capped(path, UEVENT_MAX).ok()?.trim().parse().ok()
}

/// The partition named `partname` under `class_block` (/sys/class/block),
/// the first in name order when several disks carry one.
pub fn find(class_block: &Path, partname: &str) -> Vec<Partition> {
    let Ok(entries) = fs::read_dir(class_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let dir = class_block.join(&name);
            let uevent = parse_uevent(&sys::read_capped(&dir.join("uevent"), UEVENT_MAX).ok()?);
            if uevent.partname.as_deref() != Some(partname) {
                return None;
            }
            // /sys/class/block/vda2 -> ../../devices/…/block/vda/vda2
            let real = fs::canonicalize(&dir).ok()?;
            let disk = real.parent()?.file_name()?.to_string_lossy().into_owned();
            Some(Partition {
                number: uevent.partn.or_else(|| {
                    read_u64(&dir.join("partition")).and_then(|n| u32::try_from(n).ok())
                })?,
                name: uevent.devname.unwrap_or(name),
                disk,
                start_512: read_u64(&dir.join("start"))?,
                size_512: read_u64(&dir.join("size"))?,
            })
        })
        .collect()
}

/// The partitions named `partname` on `disk` (`vda`), in name order:
/// the ESP of the data partition's disk.
pub fn on_disk(class_block: &Path, partname: &str, disk: &str) -> Vec<Partition> {
    let mut found = find(class_block, partname);
    found.retain(|p| p.disk == disk);
    found
}

/// Whether any real disk exists: a block device that is not a partition
/// and has a device behind it (loop, ram and zram devices have none).
pub fn any_disk(class_block: &Path) -> bool {
    let Ok(entries) = fs::read_dir(class_block) else {
        return false;
    };
    entries.flatten().any(|e| {
        let dir = e.path();
        !dir.join("partition").exists() && dir.join("device").exists()
    })
}

/// Waits up to `deadline` for the partition, polling every `every`.
/// Disks on some buses (NVMe namespaces, SCSI) appear a little after
/// their driver loads; virtio disks are there at once. When there is no
/// disk at all and the firmware did not boot from one (a direct kernel
/// boot), there is nothing to wait for.
pub fn wait_for(
    class_block: &Path,
    partname: &str,
    booted_from_disk: bool,
    deadline: Duration,
    every: Duration,
) -> Vec<Partition> {
    let started = Instant::now();
    loop {
        let found = find(class_block, partname);
        if !found.is_empty() {
            return found;
        }
        let expect = booted_from_disk || any_disk(class_block);
        if !expect || started.elapsed() >= deadline {
            return found;
        }
        std::thread::sleep(every);
    }
}

/// Fake sysfs trees for tests (here and in [`crate::boot_facts`]).
#[cfg(test)]
pub(crate) mod fake {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    /// Adds the disk `disk` with partitions `(number, GPT name)` to the
    /// sysfs under `root`, as the kernel lays it out (the partitions'
    /// directories inside the disk's, `class/block/*` links to them);
    /// returns `class/block`.
    pub fn disk(root: &Path, disk: &str, parts: &[(u32, &str)]) -> PathBuf {
        let dir = root.join(format!(
            "devices/pci0000:00/0000:00:04.0/{disk}/block/{disk}"
        ));
        let class = root.join("class/block");
        fs::create_dir_all(&class).unwrap();
        fs::create_dir_all(dir.join("device")).unwrap();
        fs::write(
            dir.join("uevent"),
            format!("DEVNAME={disk}\nDEVTYPE=disk\n"),
        )
        .unwrap();
        symlink(&dir, class.join(disk)).unwrap();
        for &(n, name) in parts {
            let part = dir.join(format!("{disk}{n}"));
            fs::create_dir_all(&part).unwrap();
            fs::write(
                part.join("uevent"),
                format!("DEVNAME={disk}{n}\nDEVTYPE=partition\nPARTN={n}\nPARTNAME={name}\n"),
            )
            .unwrap();
            fs::write(part.join("partition"), format!("{n}\n")).unwrap();
            let start = 2048 + u64::from(n - 1) * 524_288;
            fs::write(part.join("start"), format!("{start}\n")).unwrap();
            fs::write(part.join("size"), "2097152\n").unwrap();
            symlink(&part, class.join(format!("{disk}{n}"))).unwrap();
        }
        class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uevents_parse() {
        let u = parse_uevent(
            "MAJOR=253\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=2\nPARTNAME=husk-data\n",
        );
        assert_eq!(u.devname.as_deref(), Some("vda2"));
        assert_eq!(u.devtype.as_deref(), Some("partition"));
        assert_eq!(u.partname.as_deref(), Some("husk-data"));
        assert_eq!(u.partn, Some(2));
        assert_eq!(parse_uevent("junk\n=\nPARTN=x"), Uevent::default());
    }

    /// A sysfs with a disk `vda` holding `vda1` (esp) and `vda2`.
    fn fake_sysfs(root: &Path, data_name: &str) -> std::path::PathBuf {
        fake::disk(root, "vda", &[(1, "esp"), (2, data_name)])
    }

    #[test]
    fn finds_the_partition_and_its_disk() {
        let dir = tempfile::tempdir().unwrap();
        let class = fake_sysfs(dir.path(), "husk-data");
        assert_eq!(
            find(&class, "husk-data"),
            [Partition {
                name: "vda2".into(),
                disk: "vda".into(),
                number: 2,
                start_512: 526336,
                size_512: 2097152,
            }]
        );
        assert!(find(&class, "nope").is_empty());
        assert!(any_disk(&class));
        assert!(find(&dir.path().join("missing"), "husk-data").is_empty());
    }

    #[test]
    fn partitions_of_one_disk() {
        let dir = tempfile::tempdir().unwrap();
        fake::disk(dir.path(), "sda", &[(1, "esp")]);
        let class = fake_sysfs(dir.path(), "husk-data");
        assert_eq!(find(&class, "esp").len(), 2);
        let esp = on_disk(&class, "esp", "vda");
        assert_eq!(esp.len(), 1);
        assert_eq!((esp[0].name.as_str(), esp[0].number), ("vda1", 1));
        assert_eq!(on_disk(&class, "esp", "sda")[0].name, "sda1");
        assert!(on_disk(&class, "esp", "vdb").is_empty());
        assert!(on_disk(&class, "husk-data", "sda").is_empty());
    }

    #[test]
    fn no_disk_means_no_wait_and_a_disk_without_it_waits_until_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        let started = Instant::now();
        let long = Duration::from_secs(30);
        assert!(wait_for(&empty, "husk-data", false, long, Duration::from_millis(5)).is_empty());
        assert!(started.elapsed() < Duration::from_secs(1));

        let class = fake_sysfs(&dir.path().join("other"), "something-else");
        let started = Instant::now();
        let short = Duration::from_millis(100);
        assert!(wait_for(&class, "husk-data", false, short, Duration::from_millis(10)).is_empty());
        assert!(started.elapsed() >= short);

        let class = fake_sysfs(&dir.path().join("good"), "husk-data");
        assert_eq!(wait_for(&class, "husk-data", true, long, short).len(), 1);
    }
}
