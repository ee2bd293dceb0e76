//! A container's resource use, read from its cgroup v2 files.

use std::path::Path;

pub use husk_api::containers::Stats;

/// Reads the cgroup `dir`; None when it does not exist (not running).
pub fn read(dir: &Path) -> Option<Stats> {
    if !dir.is_dir() {
        return None;
    }
    let file = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let number = |name: &str| file(name).trim().parse::<u64>().ok();
    let keyed = |name: &str, key: &str| {
        file(name).lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
    };
    Some(Stats {
        memory_bytes: number("memory.current").unwrap_or(0),
        memory_limit: number("memory.max"),
        cpu_usec: keyed("cpu.stat", "usage_usec").unwrap_or(0),
        cpu_limit: cpu_max(&file("cpu.max")),
        pids: number("pids.current").unwrap_or(0),
        pids_limit: number("pids.max"),
        oom_kills: keyed("memory.events", "oom_kill").unwrap_or(0),
        time_ms: super::time::now_ms(),
    })
}

/// `cpu.max` is "QUOTA PERIOD" or "max PERIOD".
fn cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next()?.parse().ok()?;
    (period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_cgroup_directory() {
        let dir = tempfile::tempdir().unwrap();
        let w = |n: &str, v: &str| std::fs::write(dir.path().join(n), v).unwrap();
        w("memory.current", "1048576\n");
        w("memory.max", "max\n");
        w("cpu.stat", "usage_usec 2500\nuser_usec 2000\n");
        w("cpu.max", "150000 100000\n");
        w("pids.current", "3\n");
        w("pids.max", "64\n");
        w("memory.events", "low 0\noom 1\noom_kill 2\n");
        let stats = read(dir.path()).unwrap();
        assert_eq!(stats.memory_bytes, 1_048_576);
        assert_eq!(stats.memory_limit, None);
        assert_eq!(stats.cpu_usec, 2500);
        assert_eq!(stats.cpu_limit, Some(1.5));
        assert_eq!((stats.pids, stats.pids_limit), (3, Some(64)));
        assert_eq!(stats.oom_kills, 2);
        assert!(read(&dir.path().join("gone")).is_none());
        assert_eq!(cpu_max("max 100000"), None);
    }
}
