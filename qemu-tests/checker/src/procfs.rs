//! Just enough of /proc: who is alive, their parent, their state.

use std::fs;
use std::io;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// The executable's name, truncated by the kernel to 15 bytes.
    pub comm: String,
    /// R, S, D, Z, …
    pub state: char,
    pub ppid: i32,
}

/// Parses `/proc/<pid>/stat`. `comm` may hold spaces and parentheses,
/// so it spans from the first '(' to the *last* ')'.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid,
    })
}

/// `/proc/<pid>/stat`, or `None` once the process is gone (reaped).
pub fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process, skipping those that vanish while we look.
pub fn processes() -> io::Result<Vec<ProcStat>> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let name = entry?.file_name();
        if let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) {
            all.extend(stat(pid));
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_tricky_names() {
        let plain = parse_stat("42 (husk-agent) S 1 42 42 0 -1 4194560 0 0").unwrap();
        assert_eq!(
            plain,
            ProcStat {
                pid: 42,
                comm: "husk-agent".into(),
                state: 'S',
                ppid: 1
            }
        );
        let tricky = parse_stat("7 (a) b (c)) Z 1 7 7").unwrap();
        assert_eq!(tricky.comm, "a) b (c)");
        assert_eq!(tricky.state, 'Z');
        assert_eq!(tricky.ppid, 1);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn sees_this_process() {
        let me = std::process::id() as i32;
        assert!(processes().unwrap().iter().any(|p| p.pid == me));
        assert_eq!(stat(me).unwrap().pid, me);
    }
}
