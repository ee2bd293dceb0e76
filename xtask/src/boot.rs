//! Boots the default image: interactively (`cargo xtask run`), or
//! headless through a full cycle with timings (`run --check`, `bench`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use qemu_tests::artifacts::{Artifacts, workspace_root};
use qemu_tests::log_lines::{AGENT_READY, INIT_STARTING, MODULES_LOADED, POWER_OFF};
use qemu_tests::{GuestImage, Kernel, TestDir, Vm};

/// Where `cargo xtask run` keeps the image it boots.
fn image_dir() -> PathBuf {
    workspace_root().join("target/husk")
}

/// Builds the product binaries and the default initramfs (no test
/// checker, the default init.toml).
pub fn build_default_image() -> Result<(PathBuf, &'static Kernel)> {
    crate::prereqs::ensure()?;
    let artifacts = Artifacts::build(&workspace_root()).map_err(|e| anyhow!("{e}"))?;
    let kernel = Kernel::get().map_err(|e| anyhow!("{e}"))?;
    let dir = image_dir();
    std::fs::create_dir_all(&dir)?;
    let initrd = GuestImage::builder()
        .build_with(&artifacts, kernel, &dir)
        .map_err(|e| anyhow!("{e}"))?;
    Ok((initrd, kernel))
}

/// `cargo xtask run`: the serial console on this terminal.
pub fn interactive() -> Result<()> {
    let (initrd, kernel) = build_default_image()?;
    eprintln!(
        "xtask: booting {} (Ctrl-A X quits QEMU, Ctrl-A C its monitor)",
        initrd.display()
    );
    let dir = TestDir::new("run").map_err(|e| anyhow!("{e}"))?;
    let status = Vm::builder(dir)
        .kernel(&kernel.image)
        .initrd(initrd)
        .run_interactive()
        .map_err(|e| anyhow!("{e}"))?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}

/// When each milestone of one boot was seen, from QEMU's start.
#[derive(Debug, Clone, Copy)]
pub struct BootTimings {
    pub init_started: Duration,
    pub modules_loaded: Duration,
    pub agent_ready: Duration,
    pub powered_off: Duration,
    /// init's own account: its start to the agent's readiness.
    pub init_to_ready_ms: u64,
}

/// Boots headless, waits for the agent, presses the power button and
/// waits for QEMU to exit by itself.
pub fn boot_cycle(initrd: &std::path::Path, kernel: &Kernel) -> Result<BootTimings> {
    let deadline = Duration::from_secs(90);
    let dir = TestDir::new("check").map_err(|e| anyhow!("{e}"))?;
    let mut vm = Vm::builder(dir)
        .kernel(&kernel.image)
        .initrd(initrd)
        .launch()
        .map_err(|e| anyhow!("{e}"))?;
    let seen = |vm: &mut Vm, line: &str| -> Result<(String, Duration)> {
        let found = vm
            .wait_for_line(line, deadline)
            .map_err(|e| anyhow!("{e}"))?;
        Ok((found, vm.uptime()))
    };
    let (_, init_started) = seen(&mut vm, INIT_STARTING)?;
    let (_, modules_loaded) = seen(&mut vm, MODULES_LOADED)?;
    let (ready_line, agent_ready) = seen(&mut vm, AGENT_READY)?;
    vm.qmp().system_powerdown().map_err(|e| anyhow!("{e}"))?;
    seen(&mut vm, POWER_OFF)?;
    let status = vm.wait_for_exit(deadline).map_err(|e| anyhow!("{e}"))?;
    if !status.success() {
        bail!("QEMU exited with {status} after the power button");
    }
    Ok(BootTimings {
        init_started,
        modules_loaded,
        agent_ready,
        powered_off: vm.uptime(),
        init_to_ready_ms: ms_after(&ready_line, "agent ready ").unwrap_or(0),
    })
}

/// The number in "… `marker`N ms …".
fn ms_after(line: &str, marker: &str) -> Option<u64> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// `cargo xtask run --check`.
pub fn check() -> Result<()> {
    let (initrd, kernel) = build_default_image()?;
    let t = boot_cycle(&initrd, kernel)?;
    println!("boot timings (QEMU start = 0, TCG unless HUSK_QEMU_ACCEL=kvm):");
    println!("  init started     {:>7.2} s", t.init_started.as_secs_f64());
    println!(
        "  modules loaded   {:>7.2} s",
        t.modules_loaded.as_secs_f64()
    );
    println!(
        "  agent ready      {:>7.2} s   (init's own start to ready: {} ms)",
        t.agent_ready.as_secs_f64(),
        t.init_to_ready_ms
    );
    println!("  powered off      {:>7.2} s", t.powered_off.as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_init_s_own_figure() {
        let line = "husk-init: boot: agent ready 1031 ms after init start (3971 ms since kernel start); rss 2064 KiB";
        assert_eq!(ms_after(line, "agent ready "), Some(1031));
        assert_eq!(ms_after(line, "nothing "), None);
    }
}
