//! Other container engines driving Husk's runtime on a booted machine:
//! Debian's containerd 1.6 (its ctr, its runc shim) runs the same tasks
//! through Debian's crun and through `husk-runc` (the agent by that
//! name, runc's command line) in one boot, on the product kernel with
//! pure cgroup v2. crun is the reference: husk-runc must pass what crun
//! passes (`husk-check containerd` says how each check went).

mod common;

use std::time::Duration;

use common::*;
use qemu_tests::{Error, InitConfig, Result, TestDir, engines};

/// containerd's start and sixteen checks, most a shim start: about 20 s
/// under TCG here, where each ctr call may take up to a minute.
const TO_VERDICT: Duration = Duration::from_secs(600);
#[test]
fn containerd_runs_tasks_through_husk_runc_as_through_crun() -> Result<()> {
    let dir = TestDir::new("containerd_engines")?;
    let archive =
        husk_testkit::oci_archive(engines::ENGINE_IMAGE, &[husk_testkit::busybox_layer()]);
    let config = InitConfig::default().check("containerd", "containerd");
    let mut vm = engines::boot(dir, &config, &archive)?;
    let verdict = vm.expect_check("containerd", TO_VERDICT);
    // The whole table in the test's output, pass or fail.
    let serial = std::fs::read_to_string(vm.serial_path())
        .map_err(|e| Error::io("reading the serial log", e))?;
    for line in serial.lines() {
        if let Some(at) = line.find("husk-check: containerd: ") {
            eprintln!("{}", &line[at..]);
        }
    }
    verdict?;
    power_off(&mut vm)?;
    Ok(())
}
