//! Containers on a booted machine, where husk-init has mounted pure
//! cgroup v2 with the memory and pids controllers delegated (the CI
//! host's hybrid cgroups cannot enforce them).

mod common;

use common::*;
use husk_check::{ARCHIVE_GUEST_PATH, BUSYBOX_GUEST_PATH, REBOOT_IMAGE};
use qemu_tests::log_lines::{INIT_STARTING, REBOOT};
use qemu_tests::{GuestDisk, GuestImage, InitConfig, Result, TestDir};

#[test]
fn cgroup_limits_are_enforced_by_the_kernel() -> Result<()> {
    let config = InitConfig::default().check("limits", "container-limits");
    let image = GuestImage::builder().init_config(config.to_toml()).file(
        "/bin/busybox",
        BUSYBOX_GUEST_PATH,
        0o755,
    );
    let mut vm = boot_direct("cgroup_limits", image, |b| b.memory_mib(768))?;
    vm.expect_check("container-limits", TO_AGENT_READY)?;
    power_off(&mut vm)?;
    Ok(())
}

/// The agent's container manager on a real machine: an image imported,
/// containers run with limits, a reboot, and the restart=always one is
/// back (the restart=no one is not), with its logs of both boots.
#[test]
fn a_restart_always_container_comes_back_after_a_reboot() -> Result<()> {
    let dir = TestDir::new("container_reboot")?;
    let archive = dir.path().join("busybox-oci.tar");
    std::fs::write(
        &archive,
        husk_testkit::oci_archive(REBOOT_IMAGE, &[husk_testkit::busybox_layer()]),
    )
    .map_err(|e| qemu_tests::Error::io("writing the image archive", e))?;
    let config = InitConfig::with_agent().check("check-containers", "container-reboot");
    let disk = GuestDisk::builder()
        .init_config(config.to_toml())
        .checker()
        .file(&archive, ARCHIVE_GUEST_PATH, 0o644)
        .build(dir.path())?;
    let mut vm = boot_disk(dir, &disk)?;
    vm.expect_check("container-reboot", TO_UEFI_AGENT_READY)?;
    vm.qmp().send_key(&["ctrl", "alt", "delete"])?;
    vm.wait_for_line(REBOOT, TO_SHUTDOWN_LINE)?;
    vm.wait_for_line(INIT_STARTING, TO_UEFI_AGENT_READY)?;
    vm.expect_check("container-reboot", TO_UEFI_AGENT_READY)?;
    power_off(&mut vm)?;
    Ok(())
}
