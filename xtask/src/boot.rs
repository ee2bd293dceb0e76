//! Boots the default image: interactively (`cargo xtask run`), or
//! headless through a full cycle with timings (`run --check`, `bench`).
//! By default through UEFI as a cloud VM boots it (OVMF → systemd-boot →
//! UKI from disk.raw); `--direct` uses QEMU's -kernel/-initrd instead.
//!
//! The interactive machine reaches the internet through QEMU's user-mode
//! network, but never the host's metadata service (a cloud machine's
//! would hand the guest its own user-data): `--metadata URL` gives it
//! one. The headless one, like every test's, reaches nothing.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use husk_binaries::workspace_root;
use husk_image::build::BuildArgs;
use husk_image::initramfs::InitramfsSpec;
use qemu_tests::guest_disk::{OVMF_CODE, OVMF_VARS};
use qemu_tests::log_lines::{AGENT_READY, INIT_STARTING, MODULES_LOADED, POWER_OFF};
use qemu_tests::{Kernel, TestDir, Vm, VmBuilder};

/// What to boot.
#[derive(Debug, Clone)]
pub enum BootImage {
    /// The product disk from `husk-image build` (its raw image).
    Uefi { disk: PathBuf },
    /// Kernel and initramfs, QEMU's direct kernel boot.
    Direct { kernel: PathBuf, initrd: PathBuf },
}

/// Where `cargo xtask run` keeps the images it boots.
fn image_dir() -> PathBuf {
    workspace_root().join("target/husk")
}

/// Builds the product binaries (as `cargo xtask dist` does: no test
/// features, no checker) and the default image: the whole disk with the
/// built-in image config, or just the initramfs.
pub fn build_default_image(direct: bool) -> Result<BootImage> {
    crate::prereqs::ensure()?;
    let binaries = husk_binaries::build_product(&workspace_root()).map_err(|e| anyhow!("{e}"))?;
    let (init, agent) = (binaries.join("husk-init"), binaries.join("husk-agent"));
    let kernel = Kernel::get().map_err(|e| anyhow!("{e}"))?;
    let dir = image_dir();
    std::fs::create_dir_all(&dir)?;
    if direct {
        let spec = InitramfsSpec::new(init, agent, kernel.modules_dir.clone());
        let initrd = dir.join("initramfs.img");
        husk_image::initramfs::build(&spec, &initrd)
            .map_err(|e| anyhow!("initramfs {}: {e}", initrd.display()))?;
        return Ok(BootImage::Direct {
            kernel: kernel.image.clone(),
            initrd,
        });
    }
    let out = dir.join("image");
    let args = BuildArgs {
        out: Some(out.clone()),
        init: Some(init),
        agent: Some(agent),
        kernel: Some(kernel.image.clone()),
        modules: Some(kernel.modules_dir.clone()),
        ..BuildArgs::default()
    };
    let summary = husk_image::build::run(&args).map_err(|e| anyhow!("husk-image build: {e}"))?;
    eprintln!("{summary}");
    Ok(BootImage::Uefi {
        disk: out.join("disk.raw"),
    })
}

/// A VM for `image`. A UEFI boot writes to its disk (boot counting,
/// the data partition), so it gets a copy-on-write overlay in `dir` and
/// the built image stays as built.
fn vm_for(dir: TestDir, image: &BootImage) -> Result<VmBuilder> {
    Ok(match image {
        BootImage::Direct { kernel, initrd } => VmBuilder::new(dir).kernel(kernel).initrd(initrd),
        BootImage::Uefi { disk } => {
            let overlay = overlay(disk, dir.path())?;
            VmBuilder::new(dir)
                .ovmf(OVMF_CODE, OVMF_VARS)
                .drive(overlay, "qcow2")
        }
    })
}

fn overlay(base: &Path, dir: &Path) -> Result<PathBuf> {
    let overlay = dir.join("disk-overlay.qcow2");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(base)
        .arg(&overlay)
        .status()
        .context("running qemu-img (apt-get install qemu-utils)")?;
    if !status.success() {
        bail!("qemu-img create failed ({status})");
    }
    Ok(overlay)
}

/// `cargo xtask run`: the serial console on this terminal. `metadata`:
/// the URL (`http://HOST:PORT`) of an EC2-style metadata service the
/// guest's 169.254.169.254 reaches; without it, that address reaches
/// nothing.
pub fn interactive(direct: bool, metadata: Option<&str>) -> Result<()> {
    let metadata = metadata.map(metadata_server).transpose()?;
    let image = build_default_image(direct)?;
    eprintln!("xtask: booting {image:?} (Ctrl-A X quits QEMU, Ctrl-A C its monitor)");
    let dir = TestDir::new("run").map_err(|e| anyhow!("{e}"))?;
    let mut vm = vm_for(dir, &image)?.internet();
    if let Some(server) = metadata {
        eprintln!("xtask: the guest's metadata service is {server}");
        vm = vm.metadata_service(server);
    }
    let status = vm.run_interactive().map_err(|e| anyhow!("{e}"))?;
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
pub fn boot_cycle(image: &BootImage) -> Result<BootTimings> {
    let deadline = Duration::from_secs(120);
    let dir = TestDir::new("check").map_err(|e| anyhow!("{e}"))?;
    // A NIC as a cloud VM has, reaching nothing (a restricted one).
    let mut vm = vm_for(dir, image)?
        .user_net()
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

/// Where `--metadata`'s `http://HOST[:PORT][/]` listens. The guest asks
/// its own paths (`/latest/api/token`, …), so the URL has none.
fn metadata_server(url: &str) -> Result<SocketAddr> {
    let authority = url
        .strip_prefix("http://")
        .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| anyhow!("--metadata {url:?}: expected http://HOST[:PORT]"))?;
    // A port, unless the authority ends in a bracketed IPv6 address.
    let with_port = match authority.rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') => authority.to_owned(),
        _ => format!("{authority}:80"),
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("--metadata {url:?}"))?
        .next()
        .ok_or_else(|| anyhow!("--metadata {url:?}: {with_port} has no address"))
}

/// The number in "… `marker`N ms …".
fn ms_after(line: &str, marker: &str) -> Option<u64> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// `cargo xtask run --check`.
pub fn check(direct: bool) -> Result<()> {
    let image = build_default_image(direct)?;
    let t = boot_cycle(&image)?;
    let how = if direct {
        "direct kernel boot"
    } else {
        "UEFI: OVMF, systemd-boot, UKI"
    };
    println!("boot timings ({how}; QEMU start = 0; TCG unless HUSK_QEMU_ACCEL=kvm):");
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
    fn metadata_urls_name_a_server() {
        let at = |url| metadata_server(url).map_err(|e| e.to_string());
        assert_eq!(
            at("http://127.0.0.1:8169"),
            Ok("127.0.0.1:8169".parse().unwrap())
        );
        assert_eq!(
            at("http://127.0.0.1:8169/"),
            Ok("127.0.0.1:8169".parse().unwrap())
        );
        assert_eq!(at("http://127.0.0.1"), Ok("127.0.0.1:80".parse().unwrap()));
        assert_eq!(at("http://[::1]:8169"), Ok("[::1]:8169".parse().unwrap()));
        assert_eq!(at("http://[::1]"), Ok("[::1]:80".parse().unwrap()));
        for bad in [
            "127.0.0.1:8169",
            "https://127.0.0.1",
            "http://127.0.0.1/latest",
            "http://",
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_init_s_own_figure() {
        let line = "husk-init: boot: agent ready 1031 ms after init start (3971 ms since kernel start); rss 2064 KiB";
        assert_eq!(ms_after(line, "agent ready "), Some(1031));
        assert_eq!(ms_after(line, "nothing "), None);
    }
}
