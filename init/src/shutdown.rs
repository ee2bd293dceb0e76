//! Ordered shutdown: services in reverse start order (SIGTERM to the
//! group, grace period, SIGKILL), then every other process, then sync,
//! unmount (or remount read-only) and reboot(2).

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rustix::mount::{MountFlags, UnmountFlags, mount_remount, unmount};

use crate::event_loop::Init;
use crate::mountinfo::{self, MountEntry};
use crate::signals::Signals;
use crate::sys::{self, PowerAction};

/// Grace for processes that are not services, after SIGTERM.
const STRAGGLER_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for SIGKILLed processes to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(1);

/// Filesystems with nothing to write back; they stay mounted so init can
/// still log (/dev/kmsg) and read /proc until the end.
const VIRTUAL_FS: [&str; 16] = [
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "pstore",
    "efivarfs",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
];

pub fn announce(action: PowerAction) {
    match action {
        PowerAction::PowerOff => log::info!("shutdown: power off"),
        PowerAction::Reboot => log::info!("shutdown: reboot"),
    }
}

/// The whole shutdown, from a running system. Never returns.
pub fn run(init: &mut Init, action: PowerAction, grace: Duration) -> ! {
    announce(action);
    stop_services(init, grace);
    kill_everything(|deadline| {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if init
                .pump(Some(left.min(Duration::from_millis(100))))
                .is_err()
            {
                init.reap();
                std::thread::sleep(Duration::from_millis(20));
            }
            // No child at all means no process but init is left.
            if !init.children_left() {
                break;
            }
        }
    });
    init.reap();
    finish(action)
}

/// Stops the services one by one, last started first.
fn stop_services(init: &mut Init, grace: Duration) {
    init.supervisor.begin_stopping();
    for i in (0..init.supervisor.len()).rev() {
        if !init.supervisor.is_running(i) {
            continue;
        }
        let name = init
            .supervisor
            .services()
            .get(i)
            .map(|s| s.name().to_owned())
            .unwrap_or_default();
        log::info!("shutdown: stopping {name}");
        init.supervisor.signal(i, Signal::SIGTERM);
        if !wait_for(init, grace, |init| !init.supervisor.is_running(i)) {
            log::warn!(
                "shutdown: {name} did not stop in {} s; killing it",
                grace.as_secs()
            );
            init.supervisor.signal(i, Signal::SIGKILL);
            wait_for(init, KILL_WAIT, |init| !init.supervisor.is_running(i));
        }
    }
}

/// Pumps the loop (reaping, logging output) until `done` or `limit`.
fn wait_for(init: &mut Init, limit: Duration, done: impl Fn(&Init) -> bool) -> bool {
    let deadline = Instant::now()
        .checked_add(limit)
        .unwrap_or_else(Instant::now);
    while !done(init) {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let step = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(250));
        if init.pump(Some(step)).is_err() {
            init.reap();
            std::thread::sleep(Duration::from_millis(20));
        }
        // Shutdown requests during shutdown change nothing.
        let _ = init.take_shutdown();
    }
    true
}

/// SIGTERM to everything, a short grace, SIGKILL. `wait(deadline)`
/// reaps until the deadline or until no child is left.
fn kill_everything(mut wait: impl FnMut(Instant)) {
    let _ = sys::signal_all(Signal::SIGTERM);
    wait(
        Instant::now()
            .checked_add(STRAGGLER_GRACE)
            .unwrap_or_else(Instant::now),
    );
    let _ = sys::signal_all(Signal::SIGKILL);
    wait(
        Instant::now()
            .checked_add(KILL_WAIT)
            .unwrap_or_else(Instant::now),
    );
}

/// The end, for the fallback loop that has no service table: kill,
/// reap, sync, unmount, reboot. Never returns.
pub fn minimal(signals: Option<&Signals>, action: PowerAction) -> ! {
    announce(action);
    kill_everything(|deadline| {
        while Instant::now() < deadline {
            if let Some(s) = signals {
                let _ = s.take();
            }
            let mut any = false;
            let left = crate::reaper::reap(|pid, _| {
                any = true;
                log::info!("reaped orphan pid {pid}");
            });
            if !left {
                break;
            }
            if !any {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });
    finish(action)
}

/// Sync, unmount, reboot. If reboot(2) fails there is nothing left to do
/// but wait: PID 1 must not exit.
fn finish(action: PowerAction) -> ! {
    sys::sync();
    unmount_all(&mountinfo::read());
    sys::sync();
    let err = sys::reboot(action);
    log::error!("shutdown: reboot(2) failed: {err}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The mounts to take down at shutdown, last mounted first: everything
/// writable that holds data, and "/" last (read-only only).
pub fn unmount_plan(mounts: &[MountEntry]) -> Vec<&MountEntry> {
    mounts
        .iter()
        .rev()
        .filter(|m| {
            !m.read_only && m.mount_point != "/" && !VIRTUAL_FS.contains(&m.fs_type.as_str())
        })
        .collect()
}

fn unmount_all(mounts: &[MountEntry]) {
    for m in unmount_plan(mounts) {
        let target = Path::new(&m.mount_point);
        if unmount(target, UnmountFlags::empty()).is_ok() {
            continue;
        }
        // Busy: make sure nothing more is written, then detach it.
        if let Err(e) = mount_remount(target, MountFlags::RDONLY, "") {
            log::warn!("shutdown: remount {} read-only: {e}", m.mount_point);
        }
        let _ = unmount(target, UnmountFlags::DETACH);
    }
    if let Err(e) = crate::mounts::remount_root_read_only() {
        log::warn!("shutdown: remount / read-only: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_reverse_and_skips_root_read_only_and_virtual() {
        let mounts = mountinfo::parse(
            "\
1 1 0:2 / / ro - tmpfs tmpfs ro
2 1 0:3 / /proc rw - proc proc rw
3 1 0:4 / /run rw - tmpfs tmpfs rw
4 1 0:5 / /tmp rw - tmpfs tmpfs rw
5 1 8:1 / /var/lib/husk rw - ext4 /dev/vda2 rw
6 5 8:1 / /var/lib/husk/images ro - ext4 /dev/vda3 ro
7 1 0:6 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
",
        );
        let plan: Vec<&str> = unmount_plan(&mounts)
            .iter()
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(plan, ["/var/lib/husk", "/tmp", "/run"]);
    }
}
