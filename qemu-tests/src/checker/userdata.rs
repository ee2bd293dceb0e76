//! `user-data STATE [HOSTNAME]`: the agent's first-boot configuration
//! ended in STATE (`applied`, `rejected`, `none`), and with HOSTNAME the
//! kernel's hostname is that.

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
    Ok(())
}
