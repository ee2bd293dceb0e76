//! The machine side of updates: mounting the EFI system partition (which
//! husk-init found), and asking husk-init to reboot. The few syscalls of the
//! updater live here.

use std::fs;
use std::io;
use std::path::PathBuf;

/// Where the agent mounts it.
pub const ESP_MOUNT: &str = "/run/husk/esp";

/// Mounts the ESP (vfat) — `device`, the one husk-init found on the boot
/// disk (boot.json) — at [`ESP_MOUNT`], unless something is mounted
/// there already. Files are root's only: the ESP holds the OS. `dirsync`:
/// vfat then writes a renamed file's directory entry at once (see
/// `esp::sync_renamed`).
pub fn mount_esp(device: Option<&str>) -> Result<PathBuf, String> {
    let target = PathBuf::from(ESP_MOUNT);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(ESP_MOUNT))
    {
        return Ok(target);
    }
    let source = device.ok_or_else(|| {
        format!(
            "no partition named {:?} on the boot disk",
            husk_common::paths::ESP_PARTITION_NAME
        )
    })?;
    fs::create_dir_all(&target).map_err(|e| format!("{ESP_MOUNT}: {e}"))?;
    rustix::mount::mount(
        source,
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
