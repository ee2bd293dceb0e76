//! Containers on a booted machine, where husk-init has mounted pure
//! cgroup v2 with the memory and pids controllers delegated (the CI
//! host's hybrid cgroups cannot enforce them).

mod common;

use common::*;
use qemu_tests::checker::BUSYBOX_GUEST_PATH;
use qemu_tests::{GuestImage, InitConfig, Result};

#[test]
fn cgroup_limits_are_enforced_by_the_kernel() -> Result<()> {
    let config = InitConfig::default().check("limits", "container-limits");
    let image = GuestImage::builder().init_config(config.to_toml()).file(
        "/bin/busybox",
        BUSYBOX_GUEST_PATH,
        0o755,
    );
    let mut vm = boot_direct("cgroup_limits", image, |b| b.memory_mib(768))?;
    vm.expect_check("container-limits", TO_AGENT_READY)?;
    power_off(&mut vm)?;
    Ok(())
}
