//! Update scenarios, through `huskctl` as an operator would run it:
//!
//! - `update-apply [ARGS...]`: prints `huskctl update check`, then runs
//!   `huskctl update apply ARGS` and prints its answer and `huskctl update status`.
//!   PASS when the apply succeeded; the agent then reboots the machine.
//!   FAIL (with the agent's message, which the test reads) when refused.
//! - `update-status TEXT...`: waits until `huskctl update status` shows
//!   every TEXT, then prints it.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::{Outcome, say};

const HUSKCTL: &str = "/usr/bin/huskctl";
const DEADLINE: Duration = Duration::from_secs(120);

fn huskctl(args: &[&str]) -> (bool, String) {
    match Command::new(HUSKCTL).args(args).output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text.trim().to_owned())
        }
        Err(e) => (false, format!("{HUSKCTL}: {e}")),
    }
}

fn say_lines(scenario: &str, text: &str) {
    for line in text.lines() {
        say(scenario, line);
    }
}

/// Waits for the agent's API.
fn wait_for_agent() -> Outcome {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (ok, text) = huskctl(&["health"]);
        if ok {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("the agent did not answer: {text}"));
        }
        thread::sleep(Duration::from_millis(300));
    }
}

pub fn apply(args: &[String]) -> Outcome {
    const NAME: &str = "update-apply";
    wait_for_agent()?;
    let (_, check) = huskctl(&["update", "check"]);
    say(NAME, &format!("check: {check}"));
    let mut apply = vec!["update", "apply"];
    apply.extend(args.iter().map(String::as_str));
    let (ok, applied) = huskctl(&apply);
    say(NAME, &format!("apply: {applied}"));
    let (_, status) = huskctl(&["update", "status"]);
    say_lines(NAME, &status);
    if ok {
        Ok(())
    } else {
        Err(format!("apply: {applied}"))
    }
}

pub fn status(expected: &[String]) -> Outcome {
    const NAME: &str = "update-status";
    wait_for_agent()?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, status) = huskctl(&["update", "status"]);
        let missing: Vec<&String> = expected
            .iter()
            .filter(|text| !status.contains(text.as_str()))
            .collect();
        if missing.is_empty() {
            say_lines(NAME, &status);
            return Ok(());
        }
        if Instant::now() >= deadline {
            say_lines(NAME, &status);
            return Err(format!("status never showed {missing:?}"));
        }
        thread::sleep(Duration::from_secs(1));
    }
}
