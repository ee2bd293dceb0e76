//! The console lines tests wait for: the log contract of
//! docs/ARCHITECTURE.md ("Log contract") and husk-check's verdicts.
//! Substrings, not whole lines: timings and pids vary.

/// husk-init's first line (again after each reboot).
pub const INIT_STARTING: &str = "husk-init: starting";
/// The agent's first readiness: the machine is up.
pub const AGENT_READY: &str = "husk-init: boot: agent ready";
pub const MODULES_LOADED: &str = "husk-init: modules: loaded";
pub const REAPED_ORPHAN: &str = "husk-init: reaped orphan pid";
pub const POWER_OFF: &str = "husk-init: shutdown: power off";
pub const REBOOT: &str = "husk-init: shutdown: reboot";
/// What init logs when the configuration is invalid, before `L:C: …`.
pub const CONFIG_ERROR: &str = "husk-init: config /etc/husk/init.toml:";

pub fn service_started(name: &str) -> String {
    format!("husk-init: service {name}: started")
}

pub fn service_ready(name: &str) -> String {
    format!("husk-init: service {name}: ready")
}

pub fn crash_loop(name: &str) -> String {
    format!("husk-init: service {name}: crash loop")
}

/// A service's death by signal. Not (yet) in the documented contract;
/// it is the wording the QEMU tests expect from init.
pub fn service_killed(name: &str) -> String {
    format!("husk-init: service {name}: killed by signal")
}

/// `config /etc/husk/init.toml:<line>:` — the error's position.
pub fn config_error_at(line: usize) -> String {
    format!("{CONFIG_ERROR}{line}:")
}

/// husk-check's verdicts.
pub use husk_check::{check_failed, check_passed};
