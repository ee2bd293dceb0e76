//! A cgroup v2 directory's counters in the shape of runc's `events`
//! stats (`types.Stats`: cpu, memory, pids), which tools written for runc
//! decode. Counters a kernel does not have are left at zero.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{Value, json};

/// `key value` lines (cpu.stat, memory.stat, memory.events) as numbers.
fn flat_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// A single-value file; `max` (no limit) is u64::MAX, as runc reports it.
fn single(dir: &Path, file: &str) -> u64 {
    match fs::read_to_string(dir.join(file)) {
        Ok(text) if text.trim() == "max" => u64::MAX,
        Ok(text) => text.trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

/// How many OOM kills memory.events has counted.
pub fn oom_kills(dir: &Path) -> u64 {
    flat_keyed(dir, "memory.events")
        .get("oom_kill")
        .copied()
        .unwrap_or(0)
}

/// runc's `data` object of a stats event.
pub fn read(dir: &Path) -> Value {
    let cpu = flat_keyed(dir, "cpu.stat");
    let usec = |key: &str| cpu.get(key).copied().unwrap_or(0) * 1000;
    let memory_events = flat_keyed(dir, "memory.events");
    json!({
        "cpu": {
            "usage": {
                "total": usec("usage_usec"),
                "kernel": usec("system_usec"),
                "user": usec("user_usec"),
            },
            "throttling": {
                "periods": cpu.get("nr_periods").copied().unwrap_or(0),
                "throttledPeriods": cpu.get("nr_throttled").copied().unwrap_or(0),
                "throttledTime": usec("throttled_usec"),
            },
        },
        "memory": {
            "usage": {
                "usage": single(dir, "memory.current"),
                "max": single(dir, "memory.peak"),
                "limit": single(dir, "memory.max"),
                "failcnt": memory_events.get("max").copied().unwrap_or(0),
            },
            "swap": {
                "usage": single(dir, "memory.swap.current"),
                "limit": single(dir, "memory.swap.max"),
            },
            "raw": flat_keyed(dir, "memory.stat"),
        },
        "pids": {
            "current": single(dir, "pids.current"),
            "limit": match single(dir, "pids.max") { u64::MAX => 0, n => n },
        },
    })
}

/// `/proc/PID/cmdline` with spaces between the arguments (`ps`'s CMD).
pub fn command_line(pid: i32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_runcs_stats() {
        let dir = tempfile::tempdir().unwrap();
        let put = |f: &str, t: &str| fs::write(dir.path().join(f), t).unwrap();
        put(
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\n",
        );
        put("memory.current", "4096\n");
        put("memory.max", "max\n");
        put("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n");
        put("pids.current", "3\n");
        put("pids.max", "max\n");
        let v = read(dir.path());
        assert_eq!(v["cpu"]["usage"]["total"], 1_500_000);
        assert_eq!(v["cpu"]["usage"]["kernel"], 500_000);
        assert_eq!(v["memory"]["usage"]["usage"], 4096);
        assert_eq!(v["memory"]["usage"]["limit"], u64::MAX);
        assert_eq!(v["memory"]["usage"]["failcnt"], 2);
        assert_eq!(v["pids"]["current"], 3);
        assert_eq!(v["pids"]["limit"], 0);
        assert_eq!(oom_kills(dir.path()), 1);
    }
}
