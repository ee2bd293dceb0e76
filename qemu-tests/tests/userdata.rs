//! First-boot configuration from user-data: a config drive the test
//! builds (a FAT filesystem labelled HUSKCFG, as a cloud attaches a
//! NoCloud `cidata` drive), a malformed document, and the kernel command
//! line.

mod common;

use common::*;
use qemu_tests::{Error, GuestImage, InitConfig, Restart, Result, Service, config_drive};

fn check(state: &str, hostname: Option<&str>) -> InitConfig {
    check_with(state, hostname, None)
}

fn check_with(state: &str, hostname: Option<&str>, container: Option<&str>) -> InitConfig {
    let mut args = vec!["user-data", state];
    args.extend(hostname);
    args.extend(container);
    InitConfig::with_agent().service(Service::checker("check-user-data", &args, Restart::Never))
}

#[test]
fn user_data_from_a_config_drive_sets_the_hostname() -> Result<()> {
    let dir = qemu_tests::TestDir::new("user_data_drive")?;
    let drive = config_drive(dir.path(), "hostname = \"configured-node\"\n")?;
    let image =
        GuestImage::builder().init_config(check("applied", Some("configured-node")).to_toml());
    let initrd = image.checker().build(dir.path())?;
    let mut vm = qemu_tests::VmBuilder::new(dir)
        .kernel(&qemu_tests::Kernel::get()?.image)
        .initrd(initrd)
        .drive(&drive, "raw")
        .launch()?;
    vm.wait_for_line(
        "user-data from config drive /dev/vda applied",
        TO_AGENT_READY,
    )?;
    vm.expect_check("user-data", TO_CHECK)?;
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn malformed_user_data_is_rejected_and_the_machine_still_serves() -> Result<()> {
    let dir = qemu_tests::TestDir::new("user_data_bad")?;
    let drive = config_drive(
        dir.path(),
        "hostname = \"ok\"\n[[containers]]\nname = \"a\"\n",
    )?;
    let config = check("rejected", None).check("check-health", "agent-health");
    let image = GuestImage::builder().init_config(config.to_toml());
    let initrd = image.checker().build(dir.path())?;
    let mut vm = qemu_tests::VmBuilder::new(dir)
        .kernel(&qemu_tests::Kernel::get()?.image)
        .initrd(initrd)
        .drive(&drive, "raw")
        .launch()?;
    // The error names the place: the container table lacks its image.
    vm.wait_for_line("rejected, nothing of it applied: line 2", TO_AGENT_READY)?;
    vm.expect_check("user-data", TO_CHECK)?;
    vm.expect_check("agent-health", TO_CHECK)?;
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn user_data_from_the_kernel_command_line() -> Result<()> {
    // base64 of `hostname = "from-cmdline"\n`
    let encoded = "aG9zdG5hbWUgPSAiZnJvbS1jbWRsaW5lIgo=";
    let image = GuestImage::builder().init_config(check("applied", Some("from-cmdline")).to_toml());
    let mut vm = boot_direct("user_data_cmdline", image, |b| {
        b.cmdline(&format!("husk.userdata={encoded}"))
    })?;
    vm.wait_for_line("user-data from kernel command line applied", TO_AGENT_READY)?;
    vm.expect_check("user-data", TO_CHECK)?;
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn a_clock_before_the_build_is_set_forward() -> Result<()> {
    // The checker polls until the agent has looked at the clock.
    let config = InitConfig::with_agent()
        .service(Service::checker(
            "check-health",
            &["agent-health"],
            Restart::Never,
        ))
        .check("check-clock", "clock-plausible");
    let image = GuestImage::builder().init_config(config.to_toml());
    let mut vm = boot_direct("clock", image, |b| {
        b.qemu_arg("-rtc").qemu_arg("base=2001-01-01T00:00:00")
    })?;
    vm.wait_for_line("the clock says 2001-01-01", TO_AGENT_READY)?;
    vm.expect_check("clock-plausible", TO_CHECK)?;
    power_off(&mut vm)?;
    Ok(())
}

/// The whole first-boot story on a real disk: an image preloaded by
/// husk-image (no import, no network), a config drive naming it, and the
/// container running at first boot, with the hostname set.
#[test]
fn user_data_starts_a_preloaded_container_at_first_boot() -> Result<()> {
    let dir = qemu_tests::TestDir::new("user_data_preloaded")?;
    let archive = dir.path().join("busybox-oci.tar");
    std::fs::write(
        &archive,
        husk_testkit::oci_archive("husk.test/busybox:1", &[husk_testkit::busybox_layer()]),
    )
    .map_err(|e| Error::io("writing the image archive", e))?;
    let drive = config_drive(
        dir.path(),
        "hostname = \"first-boot\"\n\n[[containers]]\nname = \"web\"\n\
         image = \"husk.test/busybox:1\"\ncmd = [\"sh\", \"-c\", \"echo up; exec sleep 100000\"]\n\
         restart = \"always\"\n",
    )?;
    let config = check_with("applied", Some("first-boot"), Some("web"));
    let disk = qemu_tests::GuestDisk::builder()
        .init_config(config.to_toml())
        .checker()
        .preload(&archive)
        .build(dir.path())?;
    let mut vm = uefi_with_config(dir, &disk, &drive).launch()?;
    vm.wait_for_line("unpacked preloaded layer", TO_UEFI_AGENT_READY)?;
    vm.expect_check("user-data", TO_UEFI_AGENT_READY)?;
    std::thread::sleep(std::time::Duration::from_secs(3));
    power_off(&mut vm)?;
    Ok(())
}
