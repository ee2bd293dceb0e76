//! User networks in a real machine: the default image booted through
//! UEFI with user-data that makes two networks and puts containers on
//! them. `front`, on `app`, fetches `db` by its alias every second and
//! serves what it got on a published port; `stranger`, on `other`, tries
//! `db` by name and by address and serves what happened. Both pages are
//! read from this host through slirp `hostfwd`s: the network's DNS
//! server, the bridges, the isolation rules and the modules they need,
//! on Debian's kernel.

mod common;

use std::time::Duration;

use common::*;
use qemu_tests::{Error, config_drive};

/// `db` is the first container on `app` (172.18.0.0/16, the first free
/// /16 after the agent's bridge): 172.18.0.2. The pages' directory is
/// made before the loop is sent to the background (`mkdir; loop &`, not
/// `mkdir && loop &`, which backgrounds the mkdir too: httpd then raced
/// it for `-h /w` and exited, restart after restart, under a loaded CI).
const USER_DATA: &str = r#"
[[networks]]
name = "app"

[[networks]]
name = "other"

[[containers]]
name = "db"
image = "registry.example/web:1.4"
cmd = ["/web", "--listen", ":8080"]
network = "app"
network_aliases = ["database"]
restart = "always"

[[containers]]
name = "front"
image = "registry.example/web:1.4"
network = "app"
ports = ["80:8081"]
restart = "always"
cmd = ["sh", "-c", "mkdir -p /w; while :; do busybox timeout 3 busybox wget -q -O /w/db.new http://database:8080/ && mv /w/db.new /w/db; sleep 1; done & exec busybox httpd -f -p 8081 -h /w"]

[[containers]]
name = "stranger"
image = "registry.example/web:1.4"
network = "other"
ports = ["81:8082"]
restart = "always"
cmd = ["sh", "-c", "mkdir -p /w; while :; do for t in db:8080 172.18.0.2:8080; do if busybox timeout 3 busybox wget -q -O /dev/null http://$t/; then echo reached > /w/${t%%:*}; else echo blocked > /w/${t%%:*}; fi; done; sleep 1; done & exec busybox httpd -f -p 8082 -h /w"]
"#;

#[test]
fn containers_find_each_other_by_name_on_a_user_network_and_not_across() -> qemu_tests::Result<()> {
    let dir = qemu_tests::TestDir::new("user_networks")?;
    let archive = dir.path().join("web.tar");
    std::fs::write(&archive, husk_testkit::web_image_archive())
        .map_err(|e| Error::io("writing the image archive", e))?;
    let drive = config_drive(dir.path(), USER_DATA)?;
    let disk = qemu_tests::GuestDisk::builder()
        .preload(&archive)
        .build(dir.path())?;
    let free =
        || qemu_tests::vm_builder::free_port().map_err(|e| Error::io("picking a free port", e));
    let (front_port, stranger_port) = (free()?, free()?);
    let mut vm = uefi_with_config(dir, &disk, &drive)
        .forward_to_guest(front_port, 80)
        .forward_to_guest(stranger_port, 81)
        .launch()?;
    vm.wait_for_line("bridge: db is 172.18.0.2/16 on app", TO_UEFI_AGENT_READY)?;
    // Started with the network's first container, logged before it.
    vm.wait_for_line_from_start("network app: DNS server on 172.18.0.1:", TO_CHECK)?;
    // By alias, through app's DNS server.
    let db = http_get_until(
        &mut vm,
        front_port,
        "/db",
        "hello from web-1",
        Duration::from_secs(90),
    )?;
    assert!(db.ends_with("hello from web-1\n"), "{db}");
    // Neither by name nor by address from the other network (each try
    // is written after it ended: "blocked" is a verdict, not a default).
    for page in ["/db", "/172.18.0.2"] {
        let answer = http_get_until(
            &mut vm,
            stranger_port,
            page,
            "ed\n",
            Duration::from_secs(90),
        )?;
        assert!(answer.ends_with("blocked\n"), "{page}: {answer}");
    }
    power_off(&mut vm)?;
    Ok(())
}
