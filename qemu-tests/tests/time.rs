//! The clock in a real machine: the default image booted through UEFI
//! with its real-time clock years behind (QEMU's `-rtc base=2001-…`), and
//! user-data naming an NTP server: Debian's chronyd, started here on this
//! host's loopback, serving this host's clock with `-x` (it never touches
//! this machine's). slirp forwards only TCP to a host of the test's when
//! restricted, so the guest's network is `VmBuilder::internet`'s, where
//! slirp's host address (169.254.1.2) is this host's loopback, and the
//! metadata address is shadowed. The agent must find the guest's clock
//! far off and step it.

mod common;

use common::*;
use qemu_tests::config_drive;

use husk_testkit::chronyd::Chronyd;

/// This host's loopback, as the guest sees it on the internet network.
const HOST: &str = "169.254.1.2";

#[test]
fn a_clock_years_behind_is_stepped_to_the_ntp_servers_time() -> qemu_tests::Result<()> {
    let chronyd = Chronyd::start();
    let dir = qemu_tests::TestDir::new("time")?;
    let server = format!("{HOST}:{}", chronyd.addr.port());
    let user_data = format!("[time]\nservers = [\"{server}\"]\n");
    let drive = config_drive(dir.path(), &user_data)?;
    let disk = qemu_tests::GuestDisk::builder().build(dir.path())?;
    let mut vm = uefi_with_config(dir, &disk, &drive)
        .internet()
        .qemu_arg("-rtc")
        .qemu_arg("base=2001-01-01T00:00:00")
        .launch()?;
    let synced = vm.wait_for_line(
        &format!("time: synced to {server} (stratum 8)"),
        TO_UEFI_AGENT_READY + TO_CHECK,
    )?;
    assert!(synced.ends_with("correction step"), "{synced}");
    // The offset is what the clock was behind once the agent's floor had
    // set it forward (the image's build date; test images have none, so
    // the kernel's release date): still far more than a day.
    let offset_ms: f64 = synced
        .split("offset ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {synced:?}"));
    assert!(offset_ms > 86_400_000.0, "{synced}");
    power_off(&mut vm)?;
    Ok(())
}
