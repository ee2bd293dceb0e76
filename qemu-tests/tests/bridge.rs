//! Containers' networks in a real machine: the default image booted
//! through UEFI with the README's user-data example exactly as it is
//! shipped (examples/user-data.toml), its image preloaded, and the
//! container's published port reached from this host through a slirp
//! `hostfwd` — the bridge, the veth, the nftables DNAT and the kernel
//! modules they need, on Debian's kernel.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

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
    let mut vm = qemu_tests::VmBuilder::new(dir)
        .ovmf(
            qemu_tests::guest_disk::OVMF_CODE,
            qemu_tests::guest_disk::OVMF_VARS,
        )
        .drive(&disk.raw, "raw")
        .drive(&drive, "raw")
        .forward_to_guest(host_port, 80)
        .launch()?;
    vm.wait_for_line(
        "bridge: web is 172.17.0.2/16 on husk0, publishing 80->8080/tcp",
        TO_UEFI_AGENT_READY,
    )?;
    vm.wait_for_line("web: started", TO_CHECK)?;
    let body = http_get_until(host_port, Duration::from_secs(60))?;
    assert!(body.ends_with("hello from web-1\n"), "{body}");
    power_off(&mut vm)?;
    Ok(())
}

/// GET / on 127.0.0.1:`port`, retried until it answers 200 or `limit`.
fn http_get_until(port: u16, limit: Duration) -> qemu_tests::Result<String> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match http_get(port) {
            Ok(answer)
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") =>
            {
                return Ok(answer);
            }
            Ok(answer) => last = answer,
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(Error::io(
        "the published port",
        std::io::Error::other(format!("no answer in {limit:?}: {last}")),
    ))
}

fn http_get(port: u16) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: web-1\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
