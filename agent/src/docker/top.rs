//! `GET /containers/{id}/top` (`docker top`): the container's processes
//! in the columns of `ps -ef`, as dockerd answers without `ps_args`.
//! dockerd runs the host's `ps` with the client's arguments; a Husk
//! machine has no `ps`, so other arguments are refused by name. The
//! processes are those of the container's cgroup, read from `/proc`.

use axum::extract::{Path as UrlPath, State};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use super::containers::{IdPath, QueryMap};
use super::error::DockerError;
use super::query::Params;
use super::{Docker, ids};
use crate::containers::usage::Process;

/// USER_HZ: the unit of /proc's clock ticks.
const TICKS_PER_SECOND: u64 = 100;

pub fn route() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>, UrlPath(p): UrlPath<IdPath>, query: QueryMap| async move {
            let params = Params::from(query)?;
            if let Some(args) = params.str("ps_args").filter(|a| a.trim() != "-ef") {
                return Err(DockerError::bad_request(format!(
                    "Husk's top shows `ps -ef`'s columns only: there is no ps on the machine to run with `{args}`"
                )));
            }
            let name = ids::name_of(&docker.manager, &p.id)?;
            let processes = docker.manager.processes(&name)?;
            let boot = boot_time(&std::fs::read_to_string("/proc/stat").unwrap_or_default());
            Ok::<_, DockerError>(axum::Json(table(&processes, boot)))
        },
    )
}

/// Docker's `ContainerTopOKBody`.
fn table(processes: &[Process], boot_secs: u64) -> Value {
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            let started = boot_secs + p.start_ticks / TICKS_PER_SECOND;
            let cpu = p.cpu_ticks / TICKS_PER_SECOND;
            vec![
                if p.uid == 0 {
                    "root".to_owned()
                } else {
                    p.uid.to_string()
                },
                p.pid.to_string(),
                p.ppid.to_string(),
                "0".to_owned(),
                clock(started % 86_400, false),
                "?".to_owned(),
                clock(cpu, true),
                p.command.clone(),
            ]
        })
        .collect();
    json!({
        "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "Processes": rows,
    })
}

/// `HH:MM` of a time of day (UTC), or `HH:MM:SS` of a duration.
fn clock(secs: u64, with_seconds: bool) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if with_seconds {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// `btime` of /proc/stat: when the machine booted, in seconds since the
/// epoch.
fn boot_time(proc_stat: &str) -> u64 {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_ps_ef_columns() {
        let p = Process {
            pid: 42,
            ppid: 7,
            uid: 1000,
            start_ticks: 360_000, // an hour after boot
            cpu_ticks: 6_150,     // 61.5 s
            command: "sleep 300".into(),
        };
        let t = table(&[p], 86_400 + 3600);
        assert_eq!(
            t["Processes"][0],
            json!([
                "1000",
                "42",
                "7",
                "0",
                "02:00",
                "?",
                "00:01:01",
                "sleep 300"
            ])
        );
        assert_eq!(t["Titles"][7], "CMD");
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\n"), 1_700_000_000);
    }
}
