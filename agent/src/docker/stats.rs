//! `GET /containers/{id}/stats?stream=&one-shot=` (`docker stats`):
//! Docker's `StatsJSON` from the container's cgroup v2 files and its
//! network namespace's counters. A stream sends one sample a second
//! until the container stops or the client goes; `stream=0` answers
//! once with the CPU of a second ago filled in (`precpu_stats`, from
//! which the CLI computes the CPU %), as dockerd does, and `one-shot=1`
//! at once without it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use super::containers::{IdPath, QueryMap};
use super::error::DockerError;
use super::query::Params;
use super::{Docker, ids};
use crate::containers::usage::Usage;

/// dockerd's interval between samples.
const INTERVAL: Duration = Duration::from_secs(1);

pub fn route() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>, UrlPath(p): UrlPath<IdPath>, query: QueryMap| async move {
            stats(docker, &p.id, query).await
        },
    )
}

/// One sample, with what the CPU was at the one before.
struct Sample {
    usage: Usage,
    system_ns: u64,
    read: String,
}

fn sample(docker: &Docker, name: &str) -> Result<Sample, DockerError> {
    Ok(Sample {
        usage: docker.manager.usage(name)?,
        system_ns: system_cpu_ns(&std::fs::read_to_string("/proc/stat").unwrap_or_default()),
        read: husk_common::civil::rfc3339(std::time::SystemTime::now()),
    })
}

async fn stats(docker: Docker, id: &str, query: QueryMap) -> Result<Response, DockerError> {
    let params = Params::from(query)?;
    // `stream` is true unless given false.
    let stream = params.str("stream").is_none() || params.bool("stream");
    let one_shot = params.bool("one-shot");
    let info = ids::resolve(&docker.manager, id)?;
    let (name, docker_id) = (info.name.clone(), ids::id_of(&info));
    let first = sample(&docker, &name)?;
    if !stream {
        let body = if one_shot {
            to_json(&name, &docker_id, &first, None)
        } else {
            tokio::time::sleep(INTERVAL).await;
            let second = sample(&docker, &name)?;
            to_json(&name, &docker_id, &second, Some(&first))
        };
        return Ok(axum::Json(body).into_response());
    }
    let lines = futures_util::stream::unfold(
        (docker, name, docker_id, None::<Sample>, Some(first)),
        |(docker, name, id, before, next)| async move {
            let now = match next {
                Some(now) => now,
                None => {
                    tokio::time::sleep(INTERVAL).await;
                    // Stopped (or removed): the stream ends.
                    sample(&docker, &name).ok()?
                }
            };
            let mut line = serde_json::to_vec(&to_json(&name, &id, &now, before.as_ref())).ok()?;
            line.push(b'\n');
            Some((
                Ok::<_, std::convert::Infallible>(line),
                (docker, name, id, Some(now), None),
            ))
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response())
}

fn cpu_json(sample: Option<&Sample>) -> Value {
    let Some(s) = sample else {
        return json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": 0, "online_cpus": 0,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        });
    };
    let u = &s.usage;
    json!({
        "cpu_usage": {
            "total_usage": u.stats.cpu_usec * 1000,
            "usage_in_kernelmode": u.cpu_system_usec * 1000,
            "usage_in_usermode": u.cpu_user_usec * 1000,
        },
        "system_cpu_usage": s.system_ns,
        "online_cpus": std::thread::available_parallelism().map_or(1, usize::from),
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// Docker's `StatsJSON` of `now`, its CPU compared with `before`.
fn to_json(name: &str, id: &str, now: &Sample, before: Option<&Sample>) -> Value {
    let u = &now.usage;
    let memory_stats: serde_json::Map<String, Value> = u
        .memory_stat
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let networks: serde_json::Map<String, Value> = u
        .networks
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                json!({
                    "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
                    "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                    "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                    "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
                }),
            )
        })
        .collect();
    json!({
        "name": format!("/{name}"),
        "id": id,
        "read": now.read,
        "preread": before.map_or("0001-01-01T00:00:00Z".to_owned(), |b| b.read.clone()),
        "pids_stats": {"current": u.stats.pids, "limit": u.stats.pids_limit},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": u.io_read_bytes},
                {"major": 0, "minor": 0, "op": "write", "value": u.io_write_bytes},
            ],
            "io_serviced_recursive": null, "io_queue_recursive": null,
            "io_service_time_recursive": null, "io_wait_time_recursive": null,
            "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(Some(now)),
        "precpu_stats": cpu_json(before),
        "memory_stats": {
            "usage": u.stats.memory_bytes,
            "stats": memory_stats,
            // Unlimited is the machine's memory, as dockerd reports it.
            "limit": u.stats.memory_limit.unwrap_or_else(super::system::mem_total),
        },
        "networks": networks,
    })
}

/// The machine's CPU time in nanoseconds, from /proc/stat's `cpu` line
/// (in USER_HZ ticks, 100 a second), as dockerd computes it.
fn system_cpu_ns(proc_stat: &str) -> u64 {
    const NS_PER_TICK: u64 = 1_000_000_000 / 100;
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .map_or(0, |fields| {
            fields
                .split_whitespace()
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
                * NS_PER_TICK
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_cpu_is_the_first_seven_fields_of_the_cpu_line() {
        let stat = "cpu  100 0 50 1000 10 0 5 7 0 0\ncpu0 50 0 25 500 5 0 2 3 0 0\n";
        assert_eq!(system_cpu_ns(stat), 1165 * 10_000_000);
        assert_eq!(system_cpu_ns(""), 0);
    }
}
