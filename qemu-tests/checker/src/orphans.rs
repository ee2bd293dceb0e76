//! `orphans`: leaves zombies for PID 1 to reap.
//!
//! The checker starts a spawner, which starts N grandchildren and exits
//! without waiting for them. The grandchildren are reparented to PID 1
//! and exit as soon as they notice, becoming zombies only init can reap.
//! The checker then watches /proc until they are gone. (Re-executing
//! this binary instead of fork() keeps the scenario free of unsafe code.)

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Outcome, procfs, say};

pub const SPAWNER: &str = "_orphans-spawner";
pub const GRANDCHILD: &str = "_orphans-grandchild";

const ORPHANS: usize = 5;
const REAP_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

pub fn run(_: &[String]) -> Outcome {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let output = Command::new(exe)
        .args([SPAWNER, &ORPHANS.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting the spawner: {e}"))?;
    if !output.status.success() {
        return Err(format!("spawner failed: {}", output.status));
    }
    let orphans: Vec<i32> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if orphans.len() != ORPHANS {
        return Err(format!(
            "spawner reported {orphans:?}, expected {ORPHANS} pids"
        ));
    }
    say("orphans", &format!("orphaned pids {orphans:?}"));

    let deadline = Instant::now() + REAP_DEADLINE;
    loop {
        let alive: Vec<i32> = orphans
            .iter()
            .copied()
            .filter(|&p| procfs::stat(p).is_some())
            .collect();
        let zombies: Vec<i32> = procfs::processes()
            .map_err(|e| format!("listing /proc: {e}"))?
            .into_iter()
            .filter(|p| p.state == 'Z' && p.ppid == 1)
            .map(|p| p.pid)
            .collect();
        if alive.is_empty() && zombies.is_empty() {
            say("orphans", &format!("all {ORPHANS} orphans reaped"));
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after {REAP_DEADLINE:?}: orphans still present {alive:?}, zombies of PID 1 {zombies:?}"
            ));
        }
        thread::sleep(POLL);
    }
}

/// Starts `args[0]` grandchildren, prints their pids, exits at once.
pub fn spawner(args: &[String]) -> Outcome {
    let count: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("usage: _orphans-spawner COUNT")?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let me = std::process::id().to_string();
    for _ in 0..count {
        // stdout null: a grandchild holding the pipe would keep the
        // checker reading until it exits.
        let child = Command::new(&exe)
            .args([GRANDCHILD, &me])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting a grandchild: {e}"))?;
        println!("{}", child.id());
        // Dropping `child` does not wait for it: that is the point.
    }
    Ok(())
}

/// Waits (bounded) until its parent `args[0]` has exited, then exits.
pub fn grandchild(args: &[String]) -> Outcome {
    let parent: i32 = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("usage: _orphans-grandchild PARENT_PID")?;
    let deadline = Instant::now() + REAP_DEADLINE;
    while rustix::process::getppid().map(|p| p.as_raw_pid()) == Some(parent) {
        if Instant::now() >= deadline {
            return Err(format!("parent {parent} never exited"));
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
