//! PID 1's life, in the order docs/ARCHITECTURE.md gives: early mounts
//! and logging, leaving the initramfs, the remaining mounts and a
//! read-only "/", configuration, modules, the data partition, the boot
//! facts, services, the event loop, shutdown. Nothing here may end the
//! process: every failure is logged and the boot goes on with less.

use std::path::Path;
use std::time::{Duration, Instant};

use husk_common::paths;
use log::LevelFilter;
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::event_loop::Init;
use crate::signals::Signals;
use crate::supervisor::Supervisor;
use crate::{
    boot_count, boot_facts, config, data_partition, logger, modules, mounts, power_button,
    shutdown, switch_root, sys,
};

/// Runs PID 1. Never returns.
pub fn run() -> ! {
    let started = Instant::now();
    // /proc and /dev first, so that there is a /dev/kmsg to log to.
    let early_errors = mounts::mount_all(&mounts::EARLY);
    logger::init(LevelFilter::Info);
    logger::open_kmsg();
    // Otherwise the kernel rate-limits userspace lines in kmsg (10 per
    // 5 s). The newline is part of what the sysctl expects.
    let devkmsg = sys::write_file("/proc/sys/kernel/printk_devkmsg", "on\n");
    let cmdline = sys::read_capped(Path::new("/proc/cmdline"), 64 * 1024).unwrap_or_default();
    log::set_max_level(logger::level_from_cmdline(&cmdline));

    log::info!("starting");
    log::debug!("version {}", env!("CARGO_PKG_VERSION"));
    for e in early_errors {
        log::error!("{e}");
    }
    if let Err(e) = devkmsg {
        log::warn!("printk_devkmsg: {e}");
    }
    // Ctrl-Alt-Del then arrives as SIGINT (a clean reboot).
    if let Err(e) = sys::disable_ctrl_alt_del() {
        log::warn!("disable Ctrl-Alt-Del: {e}");
    }
    // Early, so that a shutdown signal during the boot is not lost.
    let signals = match Signals::install() {
        Ok(s) => Some(s),
        Err(e) => {
            log::error!("signals: {e}");
            None
        }
    };

    if switch_root::root_is_initramfs() {
        match switch_root::leave_initramfs() {
            Ok(stats) => log::info!(
                "switch_root: left the initramfs ({} files, {} dirs, {} symlinks, {} nodes)",
                stats.files,
                stats.dirs,
                stats.symlinks,
                stats.nodes
            ),
            Err(e) => log::error!("switch_root: {e}; staying on the initramfs"),
        }
    }
    for e in mounts::mount_all(&mounts::LATE) {
        log::error!("{e}");
    }
    mounts::enable_cgroup_controllers();
    if let Err(e) = mounts::remount_root_read_only() {
        log::warn!("remount / read-only: {e}");
    }

    let config = config::load(Path::new(paths::INIT_CONFIG));
    if let Err(e) = sys::set_hostname(&config.hostname) {
        log::warn!("hostname {}: {e}", config.hostname);
    }
    // quota_v2 whatever init.toml says: the data partition husk-image
    // makes has ext4's quota feature, which the kernel cannot mount
    // without its quota format, and there is no modprobe to fetch it.
    let mut always = config.modules.clone();
    always.push("quota_v2".into());
    modules::coldplug(&always);
    // After coldplug (the efivarfs module).
    let efi = boot_count::mount_efivarfs();
    let trial = if efi {
        boot_count::trial_entry(Path::new(boot_count::EFIVARS))
    } else {
        None
    };
    if let Some(entry) = &trial {
        log::info!("boot: trial boot of {entry} (boot counting)");
    }
    // After coldplug (the disk driver), before the services (the agent
    // keeps its state there).
    let data = data_partition::setup();
    // Published once, before the services, for the agent; not kept.
    boot_facts::publish(
        &boot_facts::gather(Path::new("/sys/class/block"), efi, trial.as_deref(), data),
        Path::new(paths::DATA_STATUS),
        Path::new(paths::BOOT_FACTS),
    );
    let buttons = power_button::open_all();

    let Some(signals) = signals else {
        reap_forever();
    };
    let supervisor = Supervisor::new(&config.services, Path::new(paths::NOTIFY_DIR));
    let mut init = Init::new(signals, supervisor, buttons, started);
    init.set_trial(trial);
    match init.run() {
        Ok(action) => shutdown::run(&mut init, action, config.shutdown_timeout()),
        Err(e) => {
            log::error!("event loop: {e}; continuing with a minimal loop");
            minimal_loop(&init.signals)
        }
    }
}

/// The fallback when the event loop failed: still reaps, still shuts
/// down on a signal.
fn minimal_loop(signals: &Signals) -> ! {
    let second = Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        let mut fds = [PollFd::from_borrowed_fd(signals.fd(), PollFlags::IN)];
        if poll(&mut fds, Some(&second)).is_err() {
            std::thread::sleep(Duration::from_secs(1));
        }
        let pending = signals.take();
        crate::reaper::reap(|pid, _| log::info!("reaped orphan pid {pid}"));
        if let Some(action) = pending.shutdown {
            shutdown::minimal(Some(signals), action);
        }
    }
}

/// The last resort without signal handling: reap in blocking waits,
/// sleep when there is no child. PID 1 must never exit.
fn reap_forever() -> ! {
    log::error!("no signal handling: only reaping from now on");
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((pid, _))) => log::info!("reaped orphan pid {}", pid.as_raw_nonzero()),
            Ok(None) | Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}
