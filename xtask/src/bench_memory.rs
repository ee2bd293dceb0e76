//! `cargo xtask bench memory`: what containers cost in memory on a Husk
//! machine: the agent's RSS idle, and the extra memory per running
//! container (the agent's growth plus one shim each) with N idle
//! containers; plus how long `huskctl run -d` takes through the agent,
//! and what `--userns auto` (a user namespace with idmapped layers) adds
//! to it, side by side.
//!
//! Runs on this host as root with the release (static) binaries, in a
//! private mount namespace with cgroup2 mounted (the host's cgroups are
//! v1 hybrid), as the runtime tests do.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use husk_binaries::Artifacts;

use crate::bench_agent::Machine;

const IMAGE: &str = "bench.husk/busybox:1";
/// containerd plus one containerd-shim-runc-v2 per container: the figure
/// users compare with (shim RSS is commonly 8–12 MB; not measured here,
/// containerd is not installed).
const CONTAINERD_SHIM_MIB: f64 = 10.0;

pub fn run(containers: usize) -> Result<()> {
    let count = containers.to_string();
    if !crate::cgroup_ns::enter("memory", &["bench", "memory", "--containers", &count])? {
        return Ok(());
    }
    let artifacts = Artifacts::get()?;
    let dir = husk_binaries::workspace_root().join("target/husk/bench-memory");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // This host's cgroup2 has no pids controller (v1 hybrid): no
    // default pids limit, which the runtime could not set.
    let mut machine = Machine::start(artifacts, &dir, "[limits.containers]\ndefault_pids = -1\n")?;
    let result = measure(&mut machine, containers);
    clean_up(&mut machine, containers);
    result
}

fn clean_up(machine: &mut Machine, containers: usize) {
    for i in 0..containers {
        let _ = machine.huskctl(&["rm", "-f", &name(i)]);
    }
    machine.stop();
}

fn name(i: usize) -> String {
    format!("bench-{i}")
}

fn measure(machine: &mut Machine, containers: usize) -> Result<()> {
    machine.import_busybox(IMAGE)?;
    std::thread::sleep(Duration::from_secs(1));
    let agent_pid = machine.agent.id() as i32;
    let idle = memory(agent_pid)?;

    let mut starts = Vec::with_capacity(containers);
    for i in 0..containers {
        let started = Instant::now();
        machine.huskctl(&["run", "-d", "--name", &name(i), IMAGE, "sleep", "1000000"])?;
        starts.push(started.elapsed());
    }
    std::thread::sleep(Duration::from_secs(2));
    let busy = memory(agent_pid)?;
    let mut shims = Vec::with_capacity(containers);
    for i in 0..containers {
        let pid_file = machine
            .dir
            .join(format!("run/containers/{}/shim.pid", name(i)));
        let shim: serde_json::Value = serde_json::from_slice(&std::fs::read(&pid_file)?)?;
        let pid = shim["pid"].as_i64().context("shim.pid without a pid")? as i32;
        shims.push(memory(pid)?);
    }
    let running = machine
        .huskctl(&["ps"])?
        .lines()
        .filter(|l| l.starts_with("bench-"))
        .count();
    if running != containers {
        bail!("{running} of {containers} containers are running");
    }

    let n = containers.max(1) as f64;
    let shim_pss = shims.iter().map(|m| m.pss_kib).sum::<u64>() as f64 / n;
    let shim_rss = shims.iter().map(|m| m.rss_kib).sum::<u64>() as f64 / n;
    let agent_growth = busy.rss_kib.saturating_sub(idle.rss_kib) as f64 / n;
    let per_container = agent_growth + shim_pss;
    starts.sort();
    let pick = |q: f64| starts[((starts.len() - 1) as f64 * q).round() as usize];
    println!();
    println!("memory with {containers} idle containers (busybox sleep), release binaries:");
    println!("| what | KiB |");
    println!("|---|---:|");
    println!("| husk-agent RSS, idle (1 image) | {} |", idle.rss_kib);
    println!(
        "| husk-agent RSS, {containers} containers | {} |",
        busy.rss_kib
    );
    println!("| agent growth per container | {agent_growth:.0} |");
    println!("| shim per container, PSS (RSS) | {shim_pss:.0} ({shim_rss:.0}) |");
    println!(
        "| **Husk's extra memory per container** (growth + shim PSS) | **{per_container:.0}** |"
    );
    println!(
        "| containerd-shim-runc-v2 per container (reference, not measured) | {:.0} |",
        CONTAINERD_SHIM_MIB * 1024.0
    );
    println!(
        "ratio: containerd's shim / Husk = {:.1}x",
        CONTAINERD_SHIM_MIB * 1024.0 / per_container.max(1.0)
    );
    println!(
        "`huskctl run -d` (create + start through the agent): median {:.1} ms, p95 {:.1} ms",
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.95).as_secs_f64() * 1e3
    );
    userns_cost(machine, containers.clamp(1, 50))
}

/// `run -d` with and without `--userns auto`, interleaved, each container
/// removed at once (the machine stays as it was).
fn userns_cost(machine: &Machine, runs: usize) -> Result<()> {
    let mut plain = Vec::with_capacity(runs);
    let mut userns = Vec::with_capacity(runs);
    for i in 0..runs {
        for (auto, samples) in [(false, &mut plain), (true, &mut userns)] {
            let name = format!("cost-{}{i}", if auto { "u" } else { "p" });
            let mut args = vec!["run", "-d", "--name", &name];
            if auto {
                args.extend(["--userns", "auto"]);
            }
            args.extend([IMAGE, "sleep", "1000000"]);
            let started = Instant::now();
            machine.huskctl(&args)?;
            samples.push(started.elapsed());
            machine.huskctl(&["rm", "-f", &name])?;
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    let (plain, userns) = (median(&mut plain), median(&mut userns));
    println!("`huskctl run -d`, {runs} runs each, interleaved:");
    println!("| container | median ms | / plain |");
    println!("|---|---:|---:|");
    println!("| plain | {plain:.1} | 1.00x |");
    println!(
        "| `--userns auto` (own id range, idmapped layers) | {userns:.1} | {:.2}x |",
        userns / plain
    );
    Ok(())
}

struct Memory {
    rss_kib: u64,
    pss_kib: u64,
}

/// RSS and PSS (shared pages divided among their users) of `pid`.
fn memory(pid: i32) -> Result<Memory> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("Rss:"),
        pss_kib: field("Pss:"),
    })
}
