//! Containers' networks in a real machine: the default image booted
//! through UEFI with the README's user-data example exactly as it is
//! shipped (examples/user-data.toml), its image preloaded, and the
//! container's published port reached from this host through a slirp
//! `hostfwd` — the bridge, the veth, the nftables DNAT and the kernel
//! modules they need, on Debian's kernel.

mod common;

use std::time::Duration;

use common::*;
use qemu_tests::{Error, config_drive};

/// The example, as a user copies it onto a config drive.
const EXAMPLE: &str = include_str!("../../examples/user-data.toml");

#[test]
fn the_readme_example_publishes_its_port_on_the_default_image() -> qemu_tests::Result<()> {
    let dir = qemu_tests::TestDir::new("bridge_example")?;
    assert!(
        EXAMPLE.contains("ports = [\"80:8080\"]"),
        "the example changed: {EXAMPLE}"
    );
    let archive = dir.path().join("web.tar");
    std::fs::write(&archive, husk_testkit::web_image_archive())
        .map_err(|e| Error::io("writing the image archive", e))?;
    let drive = config_drive(dir.path(), EXAMPLE)?;
    // The product's image: its init.toml, its agent.toml (none).
    let disk = qemu_tests::GuestDisk::builder()
        .preload(&archive)
        .build(dir.path())?;
    let host_port =
        qemu_tests::vm_builder::free_port().map_err(|e| Error::io("picking a free port", e))?;
    let mut vm = uefi_with_config(dir, &disk, &drive)
        .forward_to_guest(host_port, 80)
        .launch()?;
    vm.wait_for_line(
        "bridge: web is 172.17.0.2/16 on bridge (husk0), publishing 80->8080/tcp",
        TO_UEFI_AGENT_READY,
    )?;
    vm.wait_for_line("web: started", TO_CHECK)?;
    let body = http_get_until(
        &mut vm,
        host_port,
        "/",
        "hello from web-1",
        Duration::from_secs(60),
    )?;
    assert!(body.ends_with("hello from web-1\n"), "{body}");
    power_off(&mut vm)?;
    Ok(())
}
