//! The cgroup v2 device filter: with CAP_MKNOD (Docker's default set) a
//! container can make a node for the host's disk, and cannot open it.
//! Compared with runc on the same bundle (crun runs here without its
//! cgroup manager, so without a device filter: not comparable).

use std::fs;

use crate::harness::{self, enter, err, text};
use crate::{bundle, run};

/// Docker's device rules, as husk-spec gives every container.
fn docker_rules() -> serde_json::Value {
    serde_json::to_value(husk_spec::device_rules(false)).unwrap()
}

/// A block device of this host, as MAJOR:MINOR.
fn host_disk() -> String {
    let mut disks: Vec<String> = fs::read_dir("/sys/dev/block")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    disks.sort();
    disks
        .into_iter()
        .next()
        .expect("this host has a block device to aim at")
}

#[test]
fn made_nodes_for_host_devices_cannot_be_opened() {
    if !enter("devices::made_nodes_for_host_devices_cannot_be_opened") {
        return;
    }
    let disk = host_disk();
    let (major, minor) = disk.split_once(':').unwrap();
    let script = format!(
        "mknod /tmp/disk b {major} {minor} && echo made-disk; \
         head -c 512 /tmp/disk >/dev/null 2>&1 && echo READ-DISK || echo disk-refused; \
         echo x >/tmp/disk 2>/dev/null && echo WROTE-DISK || echo disk-write-refused; \
         mknod /tmp/mem c 1 1 && echo made-mem; \
         head -c 1 /tmp/mem >/dev/null 2>&1 && echo READ-MEM || echo mem-refused; \
         echo x >/dev/null && head -c 1 /dev/zero >/dev/null && echo null-zero-ok"
    );
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(dir.path(), &["sh", "-c", &script]);
    let mut config = bundle::config(&["sh", "-c", &script]);
    config["linux"]["resources"]["devices"] = docker_rules();
    bundle::write_config(&b, &config);

    let (code, husk, stderr) = run(&b, &dir.path().join("husk"), "devices");
    assert_eq!(code, 0, "{stderr}");
    println!("husk, disk {disk}:\n{husk}");
    let want = "made-disk\ndisk-refused\ndisk-write-refused\nmade-mem\nmem-refused\nnull-zero-ok\n";
    assert_eq!(husk, want);
    // runc 1.1 refuses the mknod itself (stricter); it opens nothing
    // either.
    let runc = harness::peer_run("runc", &dir.path().join("runc"), &b, "devices");
    assert!(runc.status.success(), "runc: {}", err(&runc));
    let runc = text(&runc);
    println!("runc:\n{runc}");
    for line in [
        "disk-refused",
        "disk-write-refused",
        "mem-refused",
        "null-zero-ok",
    ] {
        assert!(runc.lines().any(|l| l == line), "runc: {runc}");
    }
}

/// Without rules nothing is filtered; with a deny-everything rule alone
/// the container still has its default devices (the runtime made them).
#[test]
fn the_default_devices_stay_usable_under_deny_all() {
    if !enter("devices::the_default_devices_stay_usable_under_deny_all") {
        return;
    }
    let script = "echo x >/dev/null && head -c 1 /dev/urandom >/dev/null && echo ok";
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(dir.path(), &["sh", "-c", script]);
    // bundle::config's rules: deny everything.
    let (code, out, stderr) = run(&b, &dir.path().join("husk"), "deny-all");
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{stderr}");
}
