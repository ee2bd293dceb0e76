//! What the QEMU test files share: deadlines sized for TCG, and the
//! orderly power off every boot test ends with.

#![allow(dead_code)] // each test file uses its own part of it

use std::path::Path;
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
/// The first power button press to init's shutdown line, before a
/// second press.
pub const TO_FIRST_PRESS: Duration = Duration::from_secs(10);
/// init's shutdown line to QEMU exiting (services get 10 s grace).
pub const TO_EXIT: Duration = Duration::from_secs(40);

/// Presses the ACPI power button and expects an orderly power off:
/// init's line, then QEMU exiting by itself with status 0.
pub fn power_off(vm: &mut Vm) -> Result<()> {
    let from = vm.serial_end()?;
    vm.qmp().system_powerdown()?;
    // A press on the second boot of a reboot test was lost a few times
    // in full runs (never alone): init logged nothing, as if the guest
    // never saw the ACPI event. Not understood yet (see issue 4's and
    // 15's notes); a second press after a silence is what an operator
    // (or a cloud's stop) does, and the test says so loudly.
    if vm
        .wait_for_line_after(from, POWER_OFF, TO_FIRST_PRESS)
        .is_err()
    {
        eprintln!(
            "power_off: no shutdown line {TO_FIRST_PRESS:?} after the first ACPI press; pressing again"
        );
        vm.qmp().system_powerdown()?;
        vm.wait_for_line_after(from, POWER_OFF, TO_SHUTDOWN_LINE)?;
    }
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

/// A whole disk and a config drive (user-data) through OVMF, as a cloud
/// VM boots them; more options before it is launched.
pub fn uefi_with_config(dir: TestDir, disk: &DiskImage, config_drive: &Path) -> VmBuilder {
    VmBuilder::new(dir)
        .ovmf(OVMF_CODE, OVMF_VARS)
        .drive(&disk.raw, "raw")
        .drive(config_drive, "raw")
}

/// GET `path` on 127.0.0.1:`port` (a `hostfwd` to `vm`), retried until
/// it answers 200 with a body containing `want`, or `limit` (scaled as
/// every wait is). A failure names each distinct answer seen (the last
/// alone hides whether the guest was refusing, silent or answering
/// something else) and the end of the guest's console.
pub fn http_get_until(
    vm: &mut Vm,
    port: u16,
    path: &str,
    want: &str,
    limit: Duration,
) -> Result<String> {
    let limit = qemu_tests::scaled(limit);
    let deadline = std::time::Instant::now() + limit;
    let mut seen: Vec<(String, usize)> = Vec::new();
    while std::time::Instant::now() < deadline {
        let last = match http_get(port, path) {
            Ok(answer) if answer.contains(" 200 ") && answer.contains(want) => return Ok(answer),
            Ok(answer) if answer.is_empty() => "connection closed without an answer".to_owned(),
            Ok(answer) => format!("answered {answer:?}"),
            Err(e) => e.to_string(),
        };
        if let Some((_, times)) = seen.iter_mut().find(|(what, _)| *what == last) {
            *times += 1;
        } else if seen.len() < 8 {
            seen.push((last, 1));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let seen: Vec<String> = seen
        .iter()
        .map(|(what, times)| format!("{times}× {what}"))
        .collect();
    Err(qemu_tests::Error::io(
        format!("GET {path} on the published port {port}"),
        std::io::Error::other(format!(
            "no answer with {want:?} in {limit:?}: {}\n--- the guest's console, last lines:\n{}",
            seen.join("; "),
            vm.serial_tail(60)
        )),
    ))
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: husk\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Boots a whole disk through OVMF, as a cloud VM boots it.
pub fn boot_disk(dir: TestDir, disk: &DiskImage) -> Result<Vm> {
    VmBuilder::new(dir)
        .ovmf(OVMF_CODE, OVMF_VARS)
        .drive(&disk.raw, "raw")
        .launch()
}
