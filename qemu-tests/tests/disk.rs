//! Whole disks as users boot them: OVMF → systemd-boot (boot counting)
//! → the UKI → husk-init, with the data partition on /var/lib/husk.

mod common;

use common::*;
use qemu_tests::log_lines::{AGENT_READY, INIT_STARTING, REBOOT};
use qemu_tests::{GuestDisk, InitConfig, Restart, Result, Service, TestDir};

#[test]
fn uefi_boot_counts_a_try_and_mounts_the_data_partition() -> Result<()> {
    let dir = TestDir::new("uefi_boot")?;
    let config = InitConfig::with_agent()
        .check("check-data", "data-mounted")
        .check("check-health", "agent-health");
    let disk = GuestDisk::builder()
        .init_config(config.to_toml())
        .checker()
        .build(dir.path())?;
    let fresh = format!("husk-{}+3.efi", disk.version);
    assert_eq!(qemu_tests::esp::linux_entries(&disk.raw)?, [fresh]);

    let mut vm = boot_disk(dir, &disk)?;
    vm.wait_for_line(AGENT_READY, TO_UEFI_AGENT_READY)?;
    vm.expect_check("data-mounted", TO_CHECK)?;
    vm.expect_check("agent-health", TO_CHECK)?;
    power_off(&mut vm)?;

    // systemd-boot's Automatic Boot Assessment: before starting the
    // entry it renames +3 (tries left) to +2-1 (left, done). Nothing
    // blesses the boot yet (that is the update agent's job), so the
    // counter stays consumed.
    let consumed = format!("husk-{}+2-1.efi", disk.version);
    assert_eq!(qemu_tests::esp::linux_entries(&disk.raw)?, [consumed]);
    Ok(())
}

#[test]
fn data_survives_a_reboot() -> Result<()> {
    let dir = TestDir::new("data_survives_reboot")?;
    let config = InitConfig::with_agent().check("persist", "persist");
    let disk = GuestDisk::builder()
        .init_config(config.to_toml())
        .checker()
        .build(dir.path())?;
    let mut vm = boot_disk(dir, &disk)?;
    // The agent's readiness and the checker's line come in either order.
    vm.wait_for_line_from_start(AGENT_READY, TO_UEFI_AGENT_READY)?;
    vm.wait_for_line_from_start("persist: boot 1", TO_CHECK)?;
    vm.qmp().send_key(&["ctrl", "alt", "delete"])?;
    vm.wait_for_line(REBOOT, TO_SHUTDOWN_LINE)?;
    vm.wait_for_line(INIT_STARTING, TO_UEFI_AGENT_READY)?;
    vm.wait_for_line("persist: boot 2", TO_UEFI_AGENT_READY)?;
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn a_larger_disk_is_grown_on_first_boot() -> Result<()> {
    let dir = TestDir::new("grow")?;
    // The image's data partition is 64 MiB; the "cloud disk" is 512 MiB
    // larger, as when a user picks a bigger volume than the image.
    let config = InitConfig::with_agent()
        .service(Service::checker(
            "check-size",
            &["data-size", "500"],
            Restart::Never,
        ))
        .check("check-data", "data-mounted");
    let disk = GuestDisk::builder()
        .init_config(config.to_toml())
        .checker()
        .build(dir.path())?;
    disk.grow_by(512 << 20)?;

    let mut vm = boot_disk(dir, &disk)?;
    vm.wait_for_line("data: grew partition husk-data", TO_UEFI_AGENT_READY)?;
    vm.expect_check("data-size", TO_UEFI_AGENT_READY)?;
    vm.expect_check("data-mounted", TO_CHECK)?;
    power_off(&mut vm)?;

    // The rewritten partition table is valid by an independent tool.
    let verify = std::process::Command::new("sgdisk")
        .arg("-v")
        .arg(&disk.raw)
        .output()
        .map_err(|e| qemu_tests::Error::io("running sgdisk (apt-get install gdisk)", e))?;
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && report.contains("No problems found"),
        "sgdisk -v: {report}"
    );
    Ok(())
}

#[test]
fn a_broken_data_partition_is_reported_and_never_reformatted() -> Result<()> {
    let dir = TestDir::new("broken_data")?;
    let config = InitConfig::with_agent().check("check-failed", "data-failed");
    let disk = GuestDisk::builder()
        .init_config(config.to_toml())
        .checker()
        .build(dir.path())?;
    // Break the ext4 superblock's magic (at 1024 + 0x38): neither e2fsck
    // nor the kernel will take it, and nothing may write to it either.
    let data = disk.partition_range(2)?;
    let io = |e| qemu_tests::Error::io("corrupting the data partition", e);
    let image = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk.raw)
        .map_err(io)?;
    std::os::unix::fs::FileExt::write_all_at(&image, &[0, 0], data.start + 1024 + 0x38)
        .map_err(io)?;
    let before = read_range(&image, &data)?;

    let mut vm = boot_disk(dir, &disk)?;
    vm.wait_for_line_from_start("husk-init: data: FAILED /dev/vda2", TO_UEFI_AGENT_READY)?;
    vm.wait_for_line_from_start(AGENT_READY, TO_UEFI_AGENT_READY)?;
    vm.expect_check("data-failed", TO_CHECK)?;
    power_off(&mut vm)?;
    assert!(
        read_range(&image, &data)? == before,
        "the data partition was written to"
    );
    Ok(())
}

fn read_range(file: &std::fs::File, range: &std::ops::Range<u64>) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; (range.end - range.start) as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, range.start)
        .map_err(|e| qemu_tests::Error::io("reading the data partition", e))?;
    Ok(bytes)
}
