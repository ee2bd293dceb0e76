//! `cargo xtask bench api`: what a Docker user waits for. `docker run
//! --rm busybox true` (Debian's CLI) through Husk's Docker Engine API,
//! against the same command through Debian's dockerd (with its
//! containerd and runc) started by the benchmark on this machine, and
//! `huskctl run --rm` beside them; then `huskctl ps` with 100 containers
//! over the remote API (TLS 1.3, client certificate) against the unix
//! socket. Medians of runs interleaved one by one, so the machine's
//! moods fall on all alike; ratios printed.
//!
//! As root, in a private mount namespace with cgroup2 (as the other
//! container benchmarks; dockerd runs in it too, so both have the same
//! cgroups). Containers run with `--network none` on both: this measures
//! the API, the runtime and the shims, not the bridges.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use husk_binaries::Artifacts;

use crate::bench::median_p95;
use crate::bench_agent::{Machine, wait_for_answer};

const IMAGE: &str = "bench.husk/busybox:1";
const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";

pub fn run(runs: usize, containers: usize) -> Result<()> {
    let (r, c) = (runs.to_string(), containers.to_string());
    let args = ["bench", "api", "--runs", &r, "--containers", &c];
    if !crate::cgroup_ns::enter("api", &args)? {
        return Ok(());
    }
    let artifacts = Artifacts::get()?;
    let dir = husk_binaries::workspace_root().join("target/husk/bench-api");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let home = dir.join("home");
    let port = free_port()?;
    let pki = Pki::make(&artifacts.huskctl, &home)?;
    let agent_toml = format!(
        "[limits.containers]\ndefault_pids = -1\n[api]\nlisten = [\"127.0.0.1:{port}\"]\nclient_ca = \"\"\"\n{}\"\"\"\n",
        pki.ca
    );
    let mut machine = Machine::start(artifacts, &dir, &agent_toml)?;
    let mut dockerd = Dockerd::start(&dir);
    let result = measure(&machine, dockerd.as_ref(), runs, containers, &pki, port);
    for i in 0..containers {
        let _ = machine.huskctl(&["rm", "-f", &format!("bench-ps-{i}")]);
    }
    if let Ok(d) = &mut dockerd {
        d.stop();
    }
    machine.stop();
    result
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A CA and an admin's certificate made by `huskctl pki`, as an operator
/// makes them.
struct Pki {
    home: PathBuf,
    client: PathBuf,
    ca: String,
}

impl Pki {
    fn make(huskctl: &Path, home: &Path) -> Result<Self> {
        let client = home.join("admin");
        let run = |args: &[&str]| -> Result<()> {
            let out = Command::new(huskctl)
                .args(args)
                .env("HOME", home)
                .output()?;
            if !out.status.success() {
                bail!("huskctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        };
        run(&["pki", "init"])?;
        let out = client.to_str().unwrap_or_default();
        run(&["pki", "issue", "bench", "--role", "admin", "--out", out])?;
        let ca = std::fs::read_to_string(home.join(".config/husk/pki/ca.pem"))?;
        Ok(Self {
            home: home.to_owned(),
            client,
            ca,
        })
    }
}

/// Debian's dockerd on paths of the benchmark's, without iptables or a
/// bridge (`--network none` on both sides).
struct Dockerd {
    child: Option<Child>,
    socket: PathBuf,
    dir: PathBuf,
}

impl Dockerd {
    fn start(dir: &Path) -> Result<Self> {
        if !Path::new(DOCKERD).is_file() {
            bail!("{DOCKERD} is missing (apt-get install docker.io)");
        }
        let dir = dir.join("dockerd");
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("docker.sock");
        let child = Command::new(DOCKERD)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--storage-driver=overlay2", "--log-level=warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dockerd.log"))?)
            .spawn()
            .context("starting dockerd")?;
        let dockerd = Self {
            child: Some(child),
            socket,
            dir,
        };
        wait_for_answer(
            "dockerd",
            Duration::from_secs(60),
            Duration::from_millis(200),
            &dockerd.dir.join("dockerd.log"),
            || docker(&dockerd.socket, &["version"]).is_ok_and(|o| o.status.success()),
        )?;
        Ok(dockerd)
    }

    /// SIGTERM, so dockerd stops its containerd and unmounts its layers.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::TERM,
            );
            let _ = child.wait();
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Debian's docker CLI against `socket`, with a config of its own.
fn docker(socket: &Path, args: &[&str]) -> Result<std::process::Output> {
    let config = socket.with_file_name("docker-config");
    Ok(Command::new(DOCKER)
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()?)
}

/// How long `run` takes, failing if it fails.
fn timed(what: &str, run: impl FnOnce() -> Result<std::process::Output>) -> Result<f64> {
    let started = Instant::now();
    let out = run()?;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(took)
}

fn measure(
    machine: &Machine,
    dockerd: Result<&Dockerd, &anyhow::Error>,
    runs: usize,
    containers: usize,
    pki: &Pki,
    port: u16,
) -> Result<()> {
    let layer = machine.dir.join("busybox-layer.tar");
    std::fs::write(&layer, husk_testkit::busybox_layer())?;
    machine.import_busybox(IMAGE)?;
    let husk_docker = machine.dir.join("docker.sock");
    let layer_path = layer.to_str().unwrap_or_default();
    let dockerd = match dockerd {
        Ok(d) => {
            let out = docker(&d.socket, &["import", layer_path, IMAGE])?;
            if !out.status.success() {
                bail!("docker import: {}", String::from_utf8_lossy(&out.stderr));
            }
            Some(d)
        }
        Err(e) => {
            println!("dockerd could not run here ({e:#}): compared with huskctl run --rm only");
            None
        }
    };
    let run_args = ["run", "--rm", "--network", "none", IMAGE, "true"];
    let huskctl_run = |m: &Machine| {
        Command::new(&m.huskctl)
            .arg("--socket")
            .arg(&m.socket)
            .args(run_args)
            .output()
            .map_err(anyhow::Error::from)
    };
    // Warm both (page cache, dockerd's first container).
    for _ in 0..2 {
        timed("husk docker run", || docker(&husk_docker, &run_args))?;
        if let Some(d) = dockerd {
            timed("dockerd docker run", || docker(&d.socket, &run_args))?;
        }
    }
    let (mut husk, mut theirs, mut native) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        husk.push(timed("husk docker run", || {
            docker(&husk_docker, &run_args)
        })?);
        if let Some(d) = dockerd {
            theirs.push(timed("dockerd docker run", || {
                docker(&d.socket, &run_args)
            })?);
        }
        native.push(timed("huskctl run", || huskctl_run(machine))?);
    }
    println!(
        "`docker run --rm --network none busybox true`, {runs} runs each, interleaved, on this host"
    );
    println!("| path | median ms | p95 ms |");
    println!("|---|---:|---:|");
    let (husk_median, husk_p95) = median_p95(&mut husk);
    println!("| docker CLI → Husk's Docker API | {husk_median:.1} | {husk_p95:.1} |");
    if !theirs.is_empty() {
        let (median, p95) = median_p95(&mut theirs);
        println!("| docker CLI → dockerd + containerd + runc | {median:.1} | {p95:.1} |");
        println!(
            "ratio of medians: dockerd / Husk = {:.2}x",
            median / husk_median
        );
    }
    let (native_median, native_p95) = median_p95(&mut native);
    println!("| huskctl run --rm → Husk's API | {native_median:.1} | {native_p95:.1} |");

    // huskctl ps with N containers: the unix socket and the remote API.
    for i in 0..containers {
        machine.huskctl(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &format!("bench-ps-{i}"),
            IMAGE,
            "sleep",
            "1000000",
        ])?;
    }
    let host = format!("tcp://127.0.0.1:{port}");
    let client = pki.client.to_str().unwrap_or_default();
    let remote = || {
        Command::new(&machine.huskctl)
            .args(["-H", &host, "--tls-dir", client, "ps"])
            .env("HOME", &pki.home)
            .output()
            .map_err(anyhow::Error::from)
    };
    let local = || {
        Command::new(&machine.huskctl)
            .arg("--socket")
            .arg(&machine.socket)
            .arg("ps")
            .output()
            .map_err(anyhow::Error::from)
    };
    timed("remote huskctl ps (first use pins the machine)", remote)?;
    let (mut over_tls, mut over_unix) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(20) {
        over_tls.push(timed("remote huskctl ps", remote)?);
        over_unix.push(timed("huskctl ps", local)?);
    }
    let (tls_median, tls_p95) = median_p95(&mut over_tls);
    let (unix_median, unix_p95) = median_p95(&mut over_unix);
    println!("`huskctl ps` with {containers} containers running");
    println!("| path | median ms | p95 ms |");
    println!("|---|---:|---:|");
    println!("| remote: TLS 1.3, client certificate, 127.0.0.1 | {tls_median:.1} | {tls_p95:.1} |");
    println!("| unix socket | {unix_median:.1} | {unix_p95:.1} |");
    println!(
        "ratio of medians: remote / unix socket = {:.2}x",
        tls_median / unix_median
    );
    Ok(())
}
