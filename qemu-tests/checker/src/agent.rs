//! Scenarios about the agent: is its API up (`agent-health`), and
//! killing it so init has to restart it (`kill-agent`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use husk_common::paths::AGENT_SOCKET;
use rustix::process::{Pid, Signal, kill_process};

use super::{Outcome, procfs, say};

/// The agent may still be starting when the check runs.
const HEALTH_DEADLINE: Duration = Duration::from_secs(20);
const SOCKET_DEADLINE: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_millis(200);

const HEALTH_REQUEST: &str =
    "GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// The executable name (`comm`) of the agent process.
const AGENT_COMM: &str = "husk-agent";

pub fn health(_: &[String]) -> Outcome {
    let deadline = Instant::now() + HEALTH_DEADLINE;
    loop {
        let error = match get_health() {
            Ok(response) => match judge_health(&response) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            },
            Err(e) => format!("{AGENT_SOCKET}: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(format!("after {HEALTH_DEADLINE:?}: {error}"));
        }
        thread::sleep(RETRY);
    }
}

fn get_health() -> std::io::Result<String> {
    let mut stream = UnixStream::connect(AGENT_SOCKET)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(HEALTH_REQUEST.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// A 200 whose body says `"status":"ok"` (any JSON spacing).
pub fn judge_health(response: &str) -> Result<(), String> {
    let status_line = response.lines().next().unwrap_or("");
    let is_200 = status_line.starts_with("HTTP/1.") && status_line.split(' ').nth(1) == Some("200");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    if is_200 && compact.contains(r#""status":"ok""#) {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer: {:?}",
            response.chars().take(300).collect::<String>()
        ))
    }
}

/// Waits for the agent's socket, then SIGKILLs every husk-agent.
pub fn kill(_: &[String]) -> Outcome {
    let deadline = Instant::now() + SOCKET_DEADLINE;
    while !Path::new(AGENT_SOCKET).exists() {
        if Instant::now() >= deadline {
            return Err(format!(
                "{AGENT_SOCKET} did not appear within {SOCKET_DEADLINE:?}"
            ));
        }
        thread::sleep(RETRY);
    }
    // Let the agent finish starting, so init sees a ready service die.
    thread::sleep(Duration::from_secs(1));
    let agents: Vec<i32> = procfs::processes()
        .map_err(|e| format!("listing /proc: {e}"))?
        .into_iter()
        .filter(|p| p.comm == AGENT_COMM && p.state != 'Z')
        .map(|p| p.pid)
        .collect();
    if agents.is_empty() {
        return Err("no husk-agent process found".to_owned());
    }
    for pid in agents {
        let target = Pid::from_raw(pid).ok_or("pid 0")?;
        kill_process(target, Signal::KILL).map_err(|e| format!("kill {pid}: {e}"))?;
        say(
            "kill-agent",
            &format!("sent SIGKILL to husk-agent pid {pid}"),
        );
    }
    Ok(())
}

/// The agent daemon's pid: husk-agent with no subcommand (shims are
/// `husk-agent shim …`, runtimes `husk-agent oci …`, and share its comm,
/// so [`kill`] is only for a machine with no containers).
pub(crate) fn daemon_pid() -> Result<i32, String> {
    std::fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .collect();
            args.first().is_some_and(|a| a.ends_with(b"husk-agent"))
                && !args.get(1).is_some_and(|a| *a == b"shim" || *a == b"oci")
        })
        .ok_or_else(|| "no husk-agent daemon".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_answers_pass_whatever_the_spacing() {
        let compact = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"status\":\"ok\",\"version\":\"0.1.0\"}";
        assert_eq!(judge_health(compact), Ok(()));
        let spaced = "HTTP/1.1 200 OK\r\n\r\n{ \"status\": \"ok\" }";
        assert_eq!(judge_health(spaced), Ok(()));
    }

    #[test]
    fn errors_and_unhealthy_bodies_fail() {
        assert!(
            judge_health("HTTP/1.1 500 Internal Server Error\r\n\r\n{\"status\":\"ok\"}").is_err()
        );
        assert!(judge_health("HTTP/1.1 200 OK\r\n\r\n{\"status\":\"degraded\"}").is_err());
        assert!(judge_health("").is_err());
    }
}
