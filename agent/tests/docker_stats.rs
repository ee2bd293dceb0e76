//! `docker stats` and `docker top` (Debian's `/usr/bin/docker` 20.10)
//! through Husk's Docker API: the numbers come from the container's
//! cgroup and /proc, so they are checked against what the container
//! does (the CPU it burns, its processes). As root, in a private mount
//! and network namespace with cgroup2, as the other container tests.
//! This host's cgroup2 has no memory or pids controller (they are on
//! its v1 hierarchies), so memory and pid counts read 0 here.

mod common;

use std::process::Command;
use std::time::Duration;

use common::docker::Machine;
use common::enter_cgroup2_namespace;
use serde_json::Value;

#[test]
fn docker_stats_and_top_show_the_container() {
    if !enter_cgroup2_namespace("docker_stats_and_top_show_the_container") {
        return;
    }
    let m = Machine::start();
    // A second of CPU burnt, then two sleepers.
    m.ok(&[
        "run",
        "-d",
        "--name",
        "st-box",
        "busybox",
        "sh",
        "-c",
        "timeout 1 sh -c 'while :; do :; done'; touch /burnt; sleep 300 & sleep 301",
    ]);
    common::eventually(Duration::from_secs(20), "the burn", || {
        m.docker(&["cp", "st-box:/burnt", "-"])
            .status
            .success()
            .then_some(())
    });
    // The sample as the CLI shows it.
    let line = m.ok(&["stats", "--no-stream", "--format", "{{json .}}", "st-box"]);
    let sample: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(sample["Name"], "st-box", "{sample}");
    assert!(
        sample["CPUPerc"].as_str().unwrap().ends_with('%'),
        "{sample}"
    );
    assert!(
        sample["NetIO"].as_str().unwrap().contains(" / "),
        "{sample}"
    );

    // The raw one-shot answer: the second of CPU, no earlier sample.
    let one: Value = serde_json::from_str(
        &m.curl(&["http://docker/containers/st-box/stats?stream=0&one-shot=1"]),
    )
    .unwrap();
    let used = one["cpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .unwrap();
    assert!(used >= 800_000_000, "{used} ns of CPU: {one}");
    assert!(
        one["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > used,
        "{one}"
    );
    assert_eq!(one["precpu_stats"]["cpu_usage"]["total_usage"], 0, "{one}");
    assert_eq!(one["name"], "/st-box", "{one}");
    // A stream: one sample a second, each with the one before.
    let streamed = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "3.5", "--unix-socket"])
        .arg(m.path("docker.sock"))
        .arg("http://docker/containers/st-box/stats")
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&streamed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 3, "{} samples in 3.5 s", lines.len());
    assert_eq!(lines[1]["precpu_stats"], lines[0]["cpu_stats"]);

    // top: the three processes, by the columns of ps -ef.
    let top = m.ok(&["top", "st-box"]);
    let header = top.lines().next().unwrap();
    for title in ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"] {
        assert!(header.contains(title), "{top}");
    }
    assert!(top.contains("sleep 300"), "{top}");
    assert!(top.contains("sleep 301"), "{top}");
    // (sh became `sleep 301` by exec, so it is `sleep 300`'s parent)
    assert_eq!(top.lines().count(), 3, "{top}");
    let row = |cmd: &str| -> Vec<String> {
        let line = top.lines().find(|l| l.ends_with(cmd)).unwrap();
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("sleep 300")[2], row("sleep 301")[1], "{top}");
    assert_eq!(row("sleep 300")[0], "root", "{top}");
    let refused = m.fails(&["top", "st-box", "aux"]);
    assert!(refused.contains("no ps on the machine"), "{refused}");

    // A stopped container has neither.
    m.ok(&["stop", "-t", "1", "st-box"]);
    let stopped = m.fails(&["top", "st-box"]);
    assert!(stopped.contains("is not running"), "{stopped}");
}
