//! `cargo xtask bench pull`: how long a pull takes, and the memory it
//! needs, against `skopeo copy` of the same image to an OCI layout, in
//! one run: Debian's docker-registry on loopback holds a 5-layer image
//! of 20 MB incompressible layers (gzip, as skopeo pushes it), and a
//! second image that shares 4 of them.
//!
//! Husk's pull also unpacks every layer (and verifies its diff_id):
//! what a container needs; skopeo only stores the blobs. The agent runs
//! with the release (static) binaries on this host, the store emptied
//! (`image rm` + `gc`) before every cold pull.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use husk_binaries::Artifacts;
use husk_testkit::registry::{
    PushOptions, Registry, RegistryOptions, image_layout, random_layers, skopeo_copy,
};

use crate::bench_agent::Machine;

const LAYERS: usize = 5;
const LAYER_BYTES: usize = 20 << 20;

pub fn run(pulls: usize) -> Result<()> {
    crate::prereqs::ensure_only(&["docker-registry", "skopeo"])?;
    let artifacts = Artifacts::get()?;
    let dir = husk_binaries::workspace_root().join("target/husk/bench-pull");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let registry =
        Registry::start(RegistryOptions::default()).context("starting docker-registry")?;
    let host = registry.host();
    push_images(&dir, &registry)?;
    let toml = format!("[registry]\ninsecure = [\"{host}\"]\n");
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir)?;
    let mut machine = Machine::start(artifacts, &agent_dir, &toml)?;
    let result = measure(&machine, &dir, &host, pulls);
    machine.stop();
    result
}

/// `bench/app:1` (5 layers) and `bench/app:2` (the first 4 and a new one).
fn push_images(dir: &Path, registry: &Registry) -> Result<()> {
    let layers = random_layers(LAYERS + 1, LAYER_BYTES, 1);
    let first: Vec<Vec<u8>> = layers[..LAYERS].to_vec();
    let mut second: Vec<Vec<u8>> = layers[..LAYERS - 1].to_vec();
    second.push(layers[LAYERS].clone());
    for (tag, layers) in [("1", first), ("2", second)] {
        let layout = dir.join(format!("layout-{tag}"));
        image_layout(&layout, tag, &layers)?;
        let source = format!("oci:{}:{tag}", layout.display());
        skopeo_copy(
            &source,
            &registry.docker_ref(&format!("bench/app:{tag}")),
            &PushOptions::default(),
        )?;
        std::fs::remove_dir_all(&layout)?;
    }
    Ok(())
}

/// Wall time and the peak RSS a process reached while `f` ran (sampled
/// every 5 ms from /proc; `pid` None: the child `f` spawns, found by
/// `watch`).
struct Sample {
    time: Duration,
    peak_kib: u64,
}

fn sampled(pid: Arc<AtomicU64>, f: impl FnOnce() -> Result<()>) -> Result<Sample> {
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak, pid) = (Arc::clone(&done), Arc::clone(&peak), Arc::clone(&pid));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let p = pid.load(Ordering::Relaxed);
                if p != 0 {
                    peak.fetch_max(rss_kib(p), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let start = Instant::now();
    let result = f();
    let time = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    result?;
    Ok(Sample {
        time,
        peak_kib: peak.load(Ordering::Relaxed),
    })
}

fn rss_kib(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn husk_pull(machine: &Machine, reference: &str) -> Result<Sample> {
    let agent = Arc::new(AtomicU64::new(u64::from(machine.agent.id())));
    sampled(agent, || machine.huskctl(&["pull", reference]).map(drop))
}

fn skopeo_pull(host: &str, tag: &str, layout: &Path) -> Result<Sample> {
    let pid = Arc::new(AtomicU64::new(0));
    let watched = Arc::clone(&pid);
    sampled(pid, move || {
        let child = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--src-tls-verify=false",
                "--quiet",
            ])
            .arg(format!("docker://{host}/bench/app:{tag}"))
            .arg(format!("oci:{}:{tag}", layout.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running skopeo")?;
        watched.store(u64::from(child.id()), Ordering::Relaxed);
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "skopeo copy: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    })
}

fn empty_store(machine: &Machine, host: &str) -> Result<()> {
    for tag in ["1", "2"] {
        let _ = machine.huskctl(&["image", "rm", &format!("{host}/bench/app:{tag}")]);
    }
    machine.huskctl(&["image", "gc"]).map(drop)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(machine: &Machine, dir: &Path, host: &str, pulls: usize) -> Result<()> {
    let idle = rss_kib(u64::from(machine.agent.id()));
    let (mut husk_cold, mut husk_shared, mut skopeo_cold, mut skopeo_shared) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut husk_peak, mut skopeo_peak) = (0, 0);
    for i in 0..pulls {
        empty_store(machine, host)?;
        let cold = husk_pull(machine, &format!("{host}/bench/app:1"))?;
        let shared = husk_pull(machine, &format!("{host}/bench/app:2"))?;
        husk_peak = husk_peak.max(cold.peak_kib).max(shared.peak_kib);
        husk_cold.push(cold.time.as_secs_f64());
        husk_shared.push(shared.time.as_secs_f64());

        let layout = dir.join(format!("skopeo-{i}"));
        let cold = skopeo_pull(host, "1", &layout)?;
        let shared = skopeo_pull(host, "2", &layout)?;
        skopeo_peak = skopeo_peak.max(cold.peak_kib).max(shared.peak_kib);
        skopeo_cold.push(cold.time.as_secs_f64());
        skopeo_shared.push(shared.time.as_secs_f64());
        std::fs::remove_dir_all(&layout)?;
        eprintln!("bench: pull {}/{pulls} done", i + 1);
    }
    let size_mb = (LAYERS * LAYER_BYTES) as f64 / 1e6;
    let rows = [
        ("cold: 5 layers", median(husk_cold), median(skopeo_cold)),
        (
            "4 of 5 layers in the store",
            median(husk_shared),
            median(skopeo_shared),
        ),
    ];
    println!();
    println!(
        "pull of {LAYERS} layers x {} MB (gzip, incompressible) from docker-registry 2.8 on loopback, median of {pulls}:",
        LAYER_BYTES >> 20
    );
    println!("| pull | husk (pull + unpack) | skopeo copy → OCI layout | skopeo / husk |");
    println!("|---|---:|---:|---:|");
    for (what, husk, skopeo) in rows {
        println!(
            "| {what} | {:.0} ms | {:.0} ms | {:.2}x |",
            husk * 1e3,
            skopeo * 1e3,
            skopeo / husk
        );
    }
    println!(
        "throughput (cold): husk {:.0} MB/s, skopeo {:.0} MB/s",
        size_mb / rows[0].1,
        size_mb / rows[0].2
    );
    println!(
        "memory: husk-agent RSS {idle} KiB idle, {husk_peak} KiB at most during the pulls (+{} KiB); skopeo peak RSS {skopeo_peak} KiB; ratio skopeo / husk growth {:.1}x",
        husk_peak.saturating_sub(idle),
        skopeo_peak as f64 / husk_peak.saturating_sub(idle).max(1) as f64
    );
    Ok(())
}
