//! Other container engines driving Husk's runtime on a booted machine:
//! Debian's containerd 1.6 (its ctr, its runc shim) runs the same tasks
//! through Debian's crun and through `husk-runc` (the agent by that
//! name, runc's command line) in one boot, on the product kernel with
//! pure cgroup v2. crun is the reference: husk-runc must pass what crun
//! passes (`husk-check containerd` says how each check went).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use husk_check::{ENGINE_ARCHIVE, ENGINE_BINARIES, ENGINE_IMAGE};
use qemu_tests::{Error, GuestImage, InitConfig, Kernel, Result, TestDir, VmBuilder, host_binary};

/// containerd's start and sixteen checks, most a shim start: about 20 s
/// under TCG here, where each ctr call may take up to a minute.
const TO_VERDICT: Duration = Duration::from_secs(600);
/// The initramfs holds ~90 MB of Go binaries (39 MB compressed),
/// unpacked and then copied into init's tmpfs; containerd, the shims
/// and ctr run beside them.
const MEMORY_MIB: u32 = 1024;

#[test]
fn containerd_runs_tasks_through_husk_runc_as_through_crun() -> Result<()> {
    let dir = TestDir::new("containerd_engines")?;
    let archive = dir.path().join("busybox-oci.tar");
    std::fs::write(
        &archive,
        husk_testkit::oci_archive(ENGINE_IMAGE, &[husk_testkit::busybox_layer()]),
    )
    .map_err(|e| Error::io("writing the image archive", e))?;
    let binaries: Vec<(&Path, &str)> = ENGINE_BINARIES
        .iter()
        .map(|path| (Path::new(path), *path))
        .collect();
    let config = InitConfig::default().check("containerd", "containerd");
    let mut image = GuestImage::builder()
        .init_config(config.to_toml())
        .checker()
        .file(&archive, ENGINE_ARCHIVE, 0o644);
    for (host, guest, mode) in host_binary::with_libraries(&binaries)? {
        image = image.file(host, &guest, mode);
    }
    let initrd = image.build(dir.path())?;
    let mut vm = VmBuilder::new(dir)
        .kernel(&Kernel::get()?.image)
        .initrd(initrd)
        .memory_mib(MEMORY_MIB)
        .launch()?;
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
