//! What the QEMU test files share: deadlines sized for TCG, and the
//! orderly power off every boot test ends with.

#![allow(dead_code)] // each test file uses its own part of it

use std::time::Duration;

use qemu_tests::guest_disk::{OVMF_CODE, OVMF_VARS};
use qemu_tests::log_lines::POWER_OFF;
use qemu_tests::{DiskImage, GuestImage, Kernel, Result, TestDir, Vm, VmBuilder};

/// Kernel start to husk-init's first line (≈2 s under TCG here).
pub const TO_INIT: Duration = Duration::from_secs(30);
/// Boot to the agent's readiness, including module coldplug under TCG.
pub const TO_AGENT_READY: Duration = Duration::from_secs(60);
/// A husk-check verdict once the machine is up.
pub const TO_CHECK: Duration = Duration::from_secs(30);
/// Power button or Ctrl-Alt-Del to init's shutdown line.
pub const TO_SHUTDOWN_LINE: Duration = Duration::from_secs(20);
/// init's shutdown line to QEMU exiting (services get 10 s grace).
pub const TO_EXIT: Duration = Duration::from_secs(40);

/// Presses the ACPI power button and expects an orderly power off:
/// init's line, then QEMU exiting by itself with status 0.
pub fn power_off(vm: &mut Vm) -> Result<()> {
    vm.qmp().system_powerdown()?;
    vm.wait_for_line(POWER_OFF, TO_SHUTDOWN_LINE)?;
    let status = vm.wait_for_exit(TO_EXIT)?;
    assert!(
        status.success(),
        "QEMU exited with {status} after power off"
    );
    // QEMU's own account: the guest powered itself off (not a crash).
    let shutdown = vm.qmp().wait_for_event("SHUTDOWN", TO_CHECK)?;
    assert_eq!(shutdown["data"]["guest"], true, "{shutdown}");
    Ok(())
}

/// Builds `image` with husk-check added and boots it with direct
/// kernel boot.
pub fn boot_direct(
    test: &str,
    image: GuestImage,
    customize: impl FnOnce(VmBuilder) -> VmBuilder,
) -> Result<Vm> {
    let dir = TestDir::new(test)?;
    let initrd = image.checker().build(dir.path())?;
    let builder = VmBuilder::new(dir)
        .kernel(&Kernel::get()?.image)
        .initrd(initrd);
    customize(builder).launch()
}

/// Firmware and boot loader come first under UEFI (≈7 s under TCG here).
pub const TO_UEFI_AGENT_READY: Duration = Duration::from_secs(120);

/// Boots a whole disk through OVMF, as a cloud VM boots it.
pub fn boot_disk(dir: TestDir, disk: &DiskImage) -> Result<Vm> {
    VmBuilder::new(dir)
        .ovmf(OVMF_CODE, OVMF_VARS)
        .drive(&disk.raw, "raw")
        .launch()
}
