//! What Docker's `stats` and `top` show of a running container, beyond
//! Husk's own [`Stats`]: the cgroup's CPU split, page cache, block I/O,
//! the network counters of its namespace, and its processes. Read from
//! the cgroup v2 files and `/proc` of the container's processes, as
//! dockerd reads them; a pid is the container's only while /proc says
//! it is in the container's cgroup (numbers are reused).

use std::io::Read;
use std::path::Path;

use husk_api::containers::{Stats, Status};

use super::error::{ManagerError, Result};
use super::lifecycle::cgroup_dir;
use super::manager::Manager;

/// One sample of a running container.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub stats: Stats,
    pub cpu_user_usec: u64,
    pub cpu_system_usec: u64,
    /// `memory.stat`'s keys and values (Docker's `memory_stats.stats`).
    pub memory_stat: Vec<(String, u64)>,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
    /// Its network namespace's interfaces, loopback left out.
    pub networks: Vec<NetDev>,
}

/// One line of `/proc/PID/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// A process of the container, as `ps -ef` shows one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    /// Its real uid, on the host.
    pub uid: u32,
    /// Clock ticks since boot at its start, and of CPU used.
    pub start_ticks: u64,
    pub cpu_ticks: u64,
    /// Its command line, or `[comm]` for a kernel-style empty one.
    pub command: String,
}

impl Manager {
    /// The container's usage now (409 when it does not run).
    pub fn usage(&self, name: &str) -> Result<Usage> {
        let stats = self.stats(name)?;
        let dir = cgroup_dir(name);
        let file = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let cpu = keyed(&file("cpu.stat"));
        let pick = |pairs: &[(String, u64)], key: &str| {
            pairs.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
        };
        let (io_read_bytes, io_write_bytes) = io_bytes(&file("io.stat"));
        let cgroup = format!("/husk/{name}");
        let networks = self
            .slot(name)?
            .snapshot()
            .init_pid
            .and_then(|pid| ProcessDir::open(pid, &cgroup))
            .and_then(|p| p.text("net/dev"))
            .map(|text| net_dev(&text))
            .unwrap_or_default();
        Ok(Usage {
            stats,
            cpu_user_usec: pick(&cpu, "user_usec"),
            cpu_system_usec: pick(&cpu, "system_usec"),
            memory_stat: keyed(&file("memory.stat")),
            io_read_bytes,
            io_write_bytes,
            networks,
        })
    }

    /// The container's processes, by pid: those of its cgroup and the
    /// cgroups below it.
    pub fn processes(&self, name: &str) -> Result<Vec<Process>> {
        if self.slot(name)?.snapshot().status != Status::Running {
            return Err(ManagerError::Conflict(format!(
                "container {name} is not running"
            )));
        }
        let mut pids = Vec::new();
        cgroup_procs(&cgroup_dir(name), 0, &mut pids)
            .map_err(|e| ManagerError::io(format!("reading container {name}'s processes"), e))?;
        let cgroup = format!("/husk/{name}");
        // One that exited meanwhile, or whose number went to a process
        // not the container's, is left out.
        let mut found: Vec<Process> = pids
            .into_iter()
            .filter_map(|pid| process(pid, &cgroup))
            .collect();
        found.sort_by_key(|p| p.pid);
        found.dedup_by_key(|p| p.pid);
        Ok(found)
    }
}

/// Deeper cgroups than a container makes; a bound on the walk.
const MAX_CGROUP_DEPTH: usize = 16;

/// The pids of `dir`'s `cgroup.procs` and of every cgroup below it.
fn cgroup_procs(dir: &Path, depth: usize, pids: &mut Vec<i32>) -> std::io::Result<()> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs"))?;
    pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    if depth >= MAX_CGROUP_DEPTH {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            // (a child removed meanwhile is left out)
            let _ = cgroup_procs(&entry.path(), depth + 1, pids);
        }
    }
    Ok(())
}

/// Whether `/proc/PID/cgroup`'s unified line is `cgroup` or below it.
pub(super) fn in_cgroup(proc_cgroup: &str, cgroup: &str) -> bool {
    proc_cgroup
        .lines()
        .filter_map(|l| l.strip_prefix("0::"))
        .any(|path| {
            path == cgroup
                || path
                    .strip_prefix(cgroup)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// `key value` lines (cpu.stat, memory.stat).
fn keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `io.stat`: `MAJ:MIN rbytes=N wbytes=N …` per device, summed.
fn io_bytes(text: &str) -> (u64, u64) {
    let (mut read, mut written) = (0, 0);
    for field in text.split_whitespace() {
        if let Some(n) = field
            .strip_prefix("rbytes=")
            .and_then(|n| n.parse::<u64>().ok())
        {
            read += n;
        } else if let Some(n) = field
            .strip_prefix("wbytes=")
            .and_then(|n| n.parse::<u64>().ok())
        {
            written += n;
        }
    }
    (read, written)
}

/// `/proc/net/dev`: two header lines, then `name: rx×8 tx×8`.
fn net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            let n: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (name != "lo" && n.len() >= 16).then(|| NetDev {
                name: name.to_owned(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            })
        })
        .collect()
}

/// The most of a command line shown (`ps` cuts them too).
const MAX_CMDLINE: u64 = 4096;

/// `/proc/PID` of a process in `cgroup`: every file is read through
/// one descriptor of that directory, so all of it is of the one process
/// that was checked, whatever its number is given to later.
struct ProcessDir(std::os::fd::OwnedFd);

impl ProcessDir {
    fn open(pid: i32, cgroup: &str) -> Option<Self> {
        use rustix::fs::{Mode, OFlags};
        let dir = rustix::fs::open(
            format!("/proc/{pid}"),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let dir = Self(dir);
        in_cgroup(&dir.text("cgroup")?, cgroup).then_some(dir)
    }

    fn read(&self, name: &str, limit: u64) -> Option<Vec<u8>> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::openat(
            &self.0,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(limit)
            .read_to_end(&mut bytes)
            .ok()?;
        Some(bytes)
    }

    fn text(&self, name: &str) -> Option<String> {
        self.read(name, 1 << 20)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

/// One process of `cgroup`.
fn process(pid: i32, cgroup: &str) -> Option<Process> {
    let dir = ProcessDir::open(pid, cgroup)?;
    parse_process(
        pid,
        &dir.text("stat")?,
        &dir.text("status")?,
        &dir.read("cmdline", MAX_CMDLINE)?,
    )
}

/// A process from its `stat`, `status` and `cmdline`.
fn parse_process(pid: i32, stat: &str, status: &str, cmdline: &[u8]) -> Option<Process> {
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
    let (comm, rest) = stat.split_once(" (").map(|(_, r)| r)?.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is 4, utime 14, stime 15, starttime 22
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let command = if args.is_empty() {
        format!("[{comm}]")
    } else {
        args.join(" ")
    };
    Some(Process {
        pid,
        ppid: i32::try_from(field(4)?).ok()?,
        uid,
        start_ticks: field(22)?,
        cpu_ticks: field(14)? + field(15)?,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_files() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1500 12 1 2 0 0 0 0 900 8 3 4 0 0 0 0\n";
        assert_eq!(
            net_dev(dev),
            vec![NetDev {
                name: "eth0".into(),
                rx_bytes: 1500,
                rx_packets: 12,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 900,
                tx_packets: 8,
                tx_errors: 3,
                tx_dropped: 4,
            }]
        );
        assert_eq!(
            io_bytes("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n8:16 rbytes=1 wbytes=2\n"),
            (4097, 8194)
        );
        assert_eq!(
            keyed("usage_usec 5\nuser_usec 3\n")[1],
            ("user_usec".into(), 3)
        );
    }

    #[test]
    fn reads_a_process_of_its_own() {
        let me = std::process::id() as i32;
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let cgroup = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .to_owned();
        let p = process(me, &cgroup).unwrap();
        assert_eq!(p.pid, me);
        // Not the container's: left out.
        assert!(process(me, "/husk/someone-else").is_none());
        assert_eq!(
            p.ppid,
            rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
        );
        assert!(p.start_ticks > 0);
        assert!(!p.command.is_empty());
    }

    #[test]
    fn a_hostile_comm_does_not_shift_the_fields() {
        let stat = "42 (a) b) (c) S 7 42 42 0 -1 4194560 100 0 0 0 15 25 0 0 20 0 1 0 3600 0 0";
        let p = parse_process(42, stat, "Uid:\t1000\t1000\t1000\t1000\n", b"").unwrap();
        assert_eq!((p.ppid, p.cpu_ticks, p.start_ticks), (7, 40, 3600));
        assert_eq!(p.command, "[a) b) (c]");
        assert!(in_cgroup("0::/husk/web\n", "/husk/web"));
        assert!(in_cgroup("0::/husk/web/inner\n", "/husk/web"));
        assert!(!in_cgroup("0::/husk/web2\n", "/husk/web"));
        assert!(!in_cgroup(
            "1:name=systemd:/husk/web\n0::/user.slice\n",
            "/husk/web"
        ));
    }
}
