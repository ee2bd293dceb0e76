//! `user-data STATE [HOSTNAME [CONTAINER]]`: the agent's first-boot
//! configuration ended in STATE (`applied`, `rejected`, `none`); with
//! HOSTNAME the kernel's hostname is that; with CONTAINER that container
//! is running (started by the user-data).

use std::thread;
use std::time::{Duration, Instant};

use super::{Outcome, say};

const STATUS: &str = "/run/husk/user-data.json";
const DEADLINE: Duration = Duration::from_secs(30);

pub fn run(args: &[String]) -> Outcome {
    let expected = args.first().ok_or("usage: user-data STATE [HOSTNAME]")?;
    let deadline = Instant::now() + DEADLINE;
    let status: serde_json::Value = loop {
        if let Ok(data) = std::fs::read(STATUS)
            && let Ok(value) = serde_json::from_slice(&data)
        {
            break value;
        }
        if Instant::now() >= deadline {
            return Err(format!("{STATUS} did not appear within {DEADLINE:?}"));
        }
        thread::sleep(Duration::from_millis(200));
    };
    say("user-data", &status.to_string());
    if status["state"] != expected.as_str() {
        return Err(format!("state is {}, expected {expected}", status["state"]));
    }
    if let Some(hostname) = args.get(1) {
        let actual = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_err(|e| format!("hostname: {e}"))?;
        if actual.trim() != hostname {
            return Err(format!(
                "hostname is {}, expected {hostname}",
                actual.trim()
            ));
        }
    }
    if let Some(container) = args.get(2) {
        // The status is written once the containers were started.
        let deadline = Instant::now() + DEADLINE;
        loop {
            match super::reboot::status(container) {
                Ok(status) if status == "running" => break,
                outcome if Instant::now() >= deadline => {
                    return Err(format!(
                        "container {container}: {outcome:?}, expected running"
                    ));
                }
                _ => thread::sleep(Duration::from_millis(250)),
            }
        }
        say("user-data", &format!("container {container} is running"));
    }
    Ok(())
}

/// `clock-plausible`: the clock is not before 2025 (the agent set it
/// forward from a 2001 RTC to the kernel's release date at least).
pub fn clock(_: &[String]) -> Outcome {
    const Y2025: u64 = 1_735_689_600;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    // The agent may not have looked yet: it does so as it starts.
    let deadline = Instant::now() + DEADLINE;
    while now() < Y2025 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    say("clock-plausible", &format!("now {}", now()));
    if now() < Y2025 {
        return Err(format!("the clock is at {}, before 2025", now()));
    }
    Ok(())
}
