//! The machine side of updates: finding and mounting the EFI system
//! partition, and asking husk-init to reboot. The few syscalls of the
//! updater live here.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The GPT partition name husk-image gives the ESP.
pub const ESP_PARTITION_NAME: &str = "esp";
/// Where the agent mounts it.
pub const ESP_MOUNT: &str = "/run/husk/esp";

/// `PARTNAME=` of a sysfs block device's uevent.
fn part_name(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("uevent")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PARTNAME="))
        .map(str::to_owned)
}

/// The ESP's device name (`vda1`): the partition named `esp`, preferring
/// the disk that holds the data partition.
pub fn find_esp(class_block: &Path) -> Option<String> {
    let mut partitions: Vec<(String, Option<String>, PathBuf)> = fs::read_dir(class_block)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let dir = fs::canonicalize(e.path()).ok()?;
            let name = e.file_name().to_str()?.to_owned();
            Some((name, part_name(&dir), dir))
        })
        .collect();
    partitions.sort();
    let data_disk = partitions
        .iter()
        .find(|(_, part, _)| part.as_deref() == Some(husk_common::paths::DATA_PARTITION_NAME))
        .and_then(|(_, _, dir)| dir.parent().map(Path::to_owned));
    let esps: Vec<&(String, Option<String>, PathBuf)> = partitions
        .iter()
        .filter(|(_, part, _)| part.as_deref() == Some(ESP_PARTITION_NAME))
        .collect();
    esps.iter()
        .find(|(_, _, dir)| dir.parent().map(Path::to_owned) == data_disk)
        .or_else(|| esps.first())
        .map(|(name, _, _)| name.clone())
}

/// Mounts the ESP (vfat) at [`ESP_MOUNT`], unless something is mounted
/// there already. Files are root's only: the ESP holds the OS. `dirsync`:
/// vfat then writes a renamed file's directory entry at once (see
/// `esp::sync_renamed`).
pub fn mount_esp() -> Result<PathBuf, String> {
    let target = PathBuf::from(ESP_MOUNT);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(ESP_MOUNT))
    {
        return Ok(target);
    }
    let device = find_esp(Path::new("/sys/class/block"))
        .ok_or_else(|| format!("no partition named {ESP_PARTITION_NAME:?}"))?;
    fs::create_dir_all(&target).map_err(|e| format!("{ESP_MOUNT}: {e}"))?;
    let source = format!("/dev/{device}");
    rustix::mount::mount(
        source.as_str(),
        ESP_MOUNT,
        "vfat",
        rustix::mount::MountFlags::NOSUID
            | rustix::mount::MountFlags::NODEV
            | rustix::mount::MountFlags::NOEXEC
            | rustix::mount::MountFlags::DIRSYNC,
        c"umask=0077,shortname=mixed,flush",
    )
    .map_err(|e| format!("mounting {source} on {ESP_MOUNT}: {e}"))?;
    log::info!("update: ESP {source} mounted on {ESP_MOUNT}");
    Ok(target)
}

/// Asks husk-init (PID 1) for an orderly reboot: SIGTERM is its reboot
/// request (`husk-init reboot` sends the same).
pub fn request_reboot() -> io::Result<()> {
    let init = rustix::process::Pid::from_raw(1).ok_or_else(|| io::Error::other("no pid 1"))?;
    rustix::process::kill_process(init, rustix::process::Signal::TERM).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_esp_of_the_data_disk_is_preferred() {
        let sys = tempfile::tempdir().unwrap();
        let devices = sys.path().join("devices");
        let class = sys.path().join("class");
        fs::create_dir_all(&class).unwrap();
        for (disk, part, name) in [
            ("sda", "sda1", "esp"),
            ("vda", "vda1", "esp"),
            ("vda", "vda2", "husk-data"),
        ] {
            let dir = devices.join(disk).join(part);
            fs::create_dir_all(&dir).unwrap();
            fs::write(
                dir.join("uevent"),
                format!("DEVNAME={part}\nPARTNAME={name}\n"),
            )
            .unwrap();
            std::os::unix::fs::symlink(&dir, class.join(part)).unwrap();
        }
        assert_eq!(find_esp(&class).as_deref(), Some("vda1"));
        fs::remove_file(class.join("vda2")).unwrap();
        assert_eq!(find_esp(&class).as_deref(), Some("sda1"));
    }
}
