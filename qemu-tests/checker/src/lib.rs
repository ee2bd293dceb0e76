//! `husk-check`: the guest side of the QEMU tests.
//!
//! Test images run it as init services (`husk-check <scenario>`); it
//! prints `husk-check: <scenario>: PASS` or `… FAIL: <why>` on stdout,
//! which init logs to the serial console for the host to wait on.
//! It only ever ships in test images.
//!
//! A crate of its own, so the static build of test images compiles what
//! the guest side needs (husk-spec, husk-common) and not the host
//! harness (husk-image, QEMU, disks). The harness uses its verdict lines
//! and guest paths.

mod agent;
mod containerd;
mod containers;
mod data;
mod firewall;
mod modules;
mod mounts;
mod net;
mod nft;
mod orphans;
mod procfs;
mod reboot;
mod runtime_update;
mod update;
mod userdata;

pub use containerd::bench::SCENARIO as CONTAINERD_BENCH;
pub use containerd::{ENGINE_ARCHIVE, ENGINE_BINARIES, ENGINE_IMAGE};
pub use containers::BUSYBOX_GUEST_PATH;
pub use reboot::{ARCHIVE_GUEST_PATH, IMAGE as REBOOT_IMAGE};

use std::process::ExitCode;
use std::time::Duration;

/// The success verdict a scenario prints (init prefixes the service
/// name).
pub fn check_passed(scenario: &str) -> String {
    format!("husk-check: {scenario}: PASS")
}

/// The failure verdict, before `: <why>`.
pub fn check_failed(scenario: &str) -> String {
    format!("husk-check: {scenario}: FAIL")
}

/// `Err` carries why the scenario failed.
pub type Outcome = Result<(), String>;

type Scenario = fn(&[String]) -> Outcome;

/// The scenarios tests can name, in the order `--help` lists them.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("orphans", orphans::run),
    ("crash", crash),
    ("sleep", sleep),
    ("mounts", mounts::run),
    ("modules", modules::run),
    ("agent-health", agent::health),
    ("kill-agent", agent::kill),
    ("data-mounted", data::mounted),
    ("persist", data::persist),
    ("data-size", data::size),
    ("data-failed", data::failed),
    ("container-limits", containers::limits),
    ("container-reboot", reboot::run),
    ("containerd", containerd::run),
    (containerd::bench::SCENARIO, containerd::bench::run),
    ("user-data", userdata::run),
    ("clock-plausible", userdata::clock),
    ("net", net::run),
    ("net-isolated", net::isolated),
    ("firewall", firewall::run),
    ("update-apply", update::apply),
    ("update-status", update::status),
];

/// Helper processes the scenarios start by re-executing this binary;
/// not scenarios of their own (they print no verdict).
const HELPERS: &[(&str, Scenario)] = &[
    (orphans::SPAWNER, orphans::spawner),
    (orphans::GRANDCHILD, orphans::grandchild),
];

/// Runs `args[0]` with the remaining arguments; the exit code is 0 on
/// PASS, 1 on FAIL, 2 for an unknown scenario.
pub fn main(args: &[String]) -> ExitCode {
    let Some((name, rest)) = args.split_first() else {
        return unknown("");
    };
    if let Some((_, helper)) = HELPERS.iter().find(|(n, _)| n == name) {
        return match helper(rest) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("husk-check: {name}: {why}");
                ExitCode::FAILURE
            }
        };
    }
    let Some((_, scenario)) = SCENARIOS.iter().find(|(n, _)| n == name) else {
        return unknown(name);
    };
    match scenario(rest) {
        Ok(()) => {
            println!("{}", check_passed(name));
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("{}: {why}", check_failed(name));
            ExitCode::FAILURE
        }
    }
}

fn unknown(name: &str) -> ExitCode {
    let known: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
    println!(
        "{}: unknown scenario; known: {}",
        check_failed(name),
        known.join(", ")
    );
    ExitCode::from(2)
}

/// Prints an informational line for `scenario` (not a verdict).
fn say(scenario: &str, message: &str) {
    println!("husk-check: {scenario}: {message}");
}

/// Always fails with status 3: the crash-looping service.
fn crash(_: &[String]) -> Outcome {
    say("crash", "exiting with status 3");
    std::process::exit(3)
}

/// Never returns: a well-behaved long-running service.
fn sleep(_: &[String]) -> Outcome {
    say("sleep", "sleeping until stopped");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
