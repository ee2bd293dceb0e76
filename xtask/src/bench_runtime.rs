//! `cargo xtask bench runtime`: start-to-exit latency of `/bin/true` from
//! one OCI bundle under Husk's embedded runtime (`husk-agent oci run`),
//! crun and runc (Debian's packages), side by side, interleaved.
//!
//! One bundle for all three: `runc spec`'s default config (no seccomp
//! profile, the default capabilities, masked paths, namespaces) with the
//! process set to /bin/true and no terminal, and a rootfs of Debian's
//! static busybox. Measured as root in a private mount namespace with
//! cgroup2 on /sys/fs/cgroup (this host's cgroups are v1 hybrid), where
//! runc runs as is and crun needs `--cgroup-manager=disabled` (it cannot
//! reach its systemd-style cgroup setup here).
//!
//! Husk runs twice: from the build's target directory, a writable
//! filesystem (as under containerd on an ordinary host), where the runtime
//! re-executes from a sealed memfd copy of itself before each container
//! (see the runtime's `sealed_exe`); and from a read-only bind mount of
//! it, as on Husk's read-only root, where it needs no copy. The
//! difference is what the copy costs each start. Husk and crun run a
//! second bundle too, the same in a user namespace of its own (container
//! root = host uid 100000, as `--userns auto` gives): what a user
//! namespace adds to a start.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use husk_binaries::Artifacts;

const WARM_UP: usize = 10;

struct Runtime {
    name: &'static str,
    /// Runs the user-namespace bundle.
    userns: bool,
    /// The command line before `run --bundle B ID`.
    argv: Vec<String>,
    /// Per run, in milliseconds.
    samples: Vec<f64>,
}

pub fn run(runs: usize, shim_runs: usize) -> Result<()> {
    let count = runs.to_string();
    let shim_count = shim_runs.to_string();
    let args = [
        "bench",
        "runtime",
        "--runs",
        &count,
        "--shim-runs",
        &shim_count,
    ];
    if !crate::cgroup_ns::enter("runtime", &args)? {
        return Ok(());
    }
    let artifacts = Artifacts::get()?;
    let dir = husk_binaries::workspace_root().join("target/husk/bench-runtime");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let bundle = make_bundle(&dir, "bundle", false)?;
    let userns_bundle = make_bundle(&dir, "bundle-userns", true)?;
    let state = dir.join("state");
    let agent = artifacts.agent.to_string_lossy().into_owned();
    let read_only_agent = read_only_copy(&artifacts.agent, &dir.join("ro"))?;
    let mut runtimes = vec![
        Runtime {
            name: "husk",
            argv: vec![
                agent,
                "oci".into(),
                "--root".into(),
                state.join("husk").to_string_lossy().into_owned(),
            ],
            samples: Vec::new(),
            userns: false,
        },
        Runtime {
            name: "husk, read-only mount",
            argv: vec![
                read_only_agent,
                "oci".into(),
                "--root".into(),
                state.join("husk-ro").to_string_lossy().into_owned(),
            ],
            samples: Vec::new(),
            userns: false,
        },
        Runtime {
            name: "crun",
            argv: vec![
                "crun".into(),
                "--cgroup-manager=disabled".into(),
                "--root".into(),
                state.join("crun").to_string_lossy().into_owned(),
            ],
            samples: Vec::new(),
            userns: false,
        },
        Runtime {
            name: "runc",
            argv: vec![
                "runc".into(),
                "--root".into(),
                state.join("runc").to_string_lossy().into_owned(),
            ],
            samples: Vec::new(),
            userns: false,
        },
    ];
    for (name, of) in [("husk, userns", 0), ("crun, userns", 2)] {
        let mut argv = runtimes[of].argv.clone();
        if let Some(root) = argv.last_mut() {
            root.push_str("-userns");
        }
        runtimes.push(Runtime {
            name,
            argv,
            samples: Vec::new(),
            userns: true,
        });
    }
    for runtime in &runtimes {
        let version = Command::new(&runtime.argv[0]).arg("--version").output();
        let version = version
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|v| v.lines().next().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        eprintln!("bench: {}: {version}", runtime.name);
    }
    for i in 0..WARM_UP + runs {
        // Round-robin: a slow moment of the machine hits all three alike.
        for runtime in &mut runtimes {
            let b = if runtime.userns {
                &userns_bundle
            } else {
                &bundle
            };
            let elapsed = run_once(runtime, b, &format!("b{i}"))?;
            if i >= WARM_UP {
                runtime.samples.push(elapsed.as_secs_f64() * 1000.0);
            }
        }
    }
    print_table(&mut runtimes, runs);
    crate::bench_containerd::run(shim_runs)
}

/// `binary` seen through a read-only bind mount at `dir` (in the bench's
/// private mount namespace).
fn read_only_copy(binary: &Path, dir: &Path) -> Result<String> {
    let source = binary.parent().context("the agent binary's directory")?;
    std::fs::create_dir_all(dir)?;
    let status = Command::new("mount")
        .args(["--bind", "-o", "ro"])
        .arg(source)
        .arg(dir)
        .status()
        .context("running mount")?;
    if !status.success() {
        bail!("mount --bind -o ro {} failed ({status})", source.display());
    }
    let name = binary.file_name().context("the agent binary's name")?;
    Ok(dir.join(name).to_string_lossy().into_owned())
}

fn run_once(runtime: &Runtime, bundle: &Path, id: &str) -> Result<Duration> {
    let started = Instant::now();
    let out = Command::new(&runtime.argv[0])
        .args(&runtime.argv[1..])
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", runtime.argv[0]))?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "{} run failed ({}): {}",
            runtime.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(elapsed)
}

/// `runc spec`'s config with /bin/true, and a busybox rootfs.
fn make_bundle(dir: &Path, name: &str, userns: bool) -> Result<std::path::PathBuf> {
    let bundle = dir.join(name);
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(bundle.join("rootfs").join(d))?;
    }
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .context("copying /bin/busybox (apt-get install busybox-static)")?;
    for applet in ["true", "sh"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    let status = Command::new("runc")
        .arg("spec")
        .current_dir(&bundle)
        .status()
        .context("running runc spec (apt-get install runc)")?;
    if !status.success() {
        bail!("runc spec failed ({status})");
    }
    let path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    if userns {
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        config["linux"]["uidMappings"] = map.clone();
        config["linux"]["gidMappings"] = map;
        if let Some(namespaces) = config["linux"]["namespaces"].as_array_mut() {
            namespaces.push(serde_json::json!({"type": "user"}));
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(bundle)
}

fn print_table(runtimes: &mut [Runtime], runs: usize) {
    let stats: Vec<(f64, f64, f64)> = runtimes
        .iter_mut()
        .map(|r| {
            r.samples.sort_by(f64::total_cmp);
            let rank = |q: f64| {
                let index =
                    ((q * r.samples.len() as f64).ceil() as usize).clamp(1, r.samples.len()) - 1;
                r.samples[index]
            };
            (rank(0.5), rank(0.95), r.samples[0])
        })
        .collect();
    let husk_median = stats[0].0;
    println!();
    println!(
        "`/bin/true` start to exit, {runs} runs each, interleaved (userns: the same bundle in a user namespace):"
    );
    println!("| runtime | median ms | p95 ms | min ms | median / husk |");
    println!("|---|---:|---:|---:|---:|");
    for (runtime, (median, p95, min)) in runtimes.iter().zip(&stats) {
        println!(
            "| {} | {median:.2} | {p95:.2} | {min:.2} | {:.2}x |",
            runtime.name,
            median / husk_median
        );
    }
}
