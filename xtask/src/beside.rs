//! Test binaries `cargo xtask test` runs beside the rest rather than in
//! their turn: they spend minutes waiting on a peer's clock (dnsmasq's
//! shortest lease is two minutes, and the lease test waits one out), not
//! on the CPUs the QEMU tests need, so run in turn they only add their
//! waits to the suite. Each runs as cargo would run it (from its
//! package's directory, with `CARGO` and `CARGO_MANIFEST_DIR`), its
//! output kept in a file and printed when it ends; the main run skips
//! exactly its tests, so every test still runs once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::steps::{Timings, cargo};

/// (package, integration test target).
pub const BESIDE: &[(&str, &str)] = &[("husk-agent", "machine_net")];

/// A test binary running beside the main run; its waiter gives its exit
/// and how long it ran.
pub struct Running {
    name: String,
    tests: Vec<String>,
    waiter: std::thread::JoinHandle<std::io::Result<(ExitStatus, Duration)>>,
    log: PathBuf,
}

/// Starts every [`BESIDE`] binary; `env` is added to each.
pub fn start(env: &[(&str, &Path)]) -> Result<Vec<Running>> {
    BESIDE
        .iter()
        .map(|(package, test)| start_one(package, test, env))
        .collect()
}

fn start_one(package: &str, test: &str, env: &[(&str, &Path)]) -> Result<Running> {
    let (exe, manifest_dir) = executable(package, test)?;
    let listed = Command::new(&exe)
        .args(["--list", "--format", "terse"])
        .current_dir(&manifest_dir)
        .output()
        .with_context(|| format!("listing the tests of {}", exe.display()))?;
    if !listed.status.success() {
        bail!("{} --list: {}", exe.display(), listed.status);
    }
    let tests: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect();
    if tests.is_empty() {
        bail!("{} lists no tests", exe.display());
    }
    let log = husk_binaries::workspace_root().join(format!("target/husk/beside-{test}.log"));
    std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))?;
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = Command::new(&exe);
    command
        .current_dir(&manifest_dir)
        .env("CARGO_MANIFEST_DIR", &manifest_dir)
        .env(
            "CARGO",
            std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    for (key, value) in env {
        command.env(key, value);
    }
    eprintln!(
        "xtask: == beside the rest: {package} --test {test} ({} tests), output in {}",
        tests.len(),
        log.display()
    );
    let started = Instant::now();
    let mut child: Child = command
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let waiter = std::thread::spawn(move || {
        let status = child.wait()?;
        Ok((status, started.elapsed()))
    });
    Ok(Running {
        name: format!("{package} --test {test}"),
        tests,
        waiter,
        log,
    })
}

/// The test binary cargo built for `package`'s test target `test`, and
/// the package's directory.
fn executable(package: &str, test: &str) -> Result<(PathBuf, PathBuf)> {
    let out = cargo(&[
        "test",
        "-p",
        package,
        "--test",
        test,
        "--no-run",
        "--message-format=json-render-diagnostics",
    ])
    .stderr(Stdio::inherit())
    .output()
    .context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building {package} --test {test}: {}", out.status);
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_it = message["reason"] == "compiler-artifact"
            && message["target"]["name"] == test
            && message["profile"]["test"] == true;
        if let (true, Some(exe), Some(manifest)) = (
            is_it,
            message["executable"].as_str(),
            message["manifest_path"].as_str(),
        ) {
            let dir = Path::new(manifest)
                .parent()
                .unwrap_or(Path::new("."))
                .to_owned();
            return Ok((PathBuf::from(exe), dir));
        }
    }
    bail!("cargo built no test binary for {package} --test {test}")
}

/// The arguments that make the main run skip exactly these tests.
pub fn skips(running: &[Running]) -> Vec<String> {
    let mut args = vec!["--exact".to_owned()];
    for test in running.iter().flat_map(|r| &r.tests) {
        args.push("--skip".into());
        args.push(test.clone());
    }
    args
}

/// Waits for each, prints its output, records its time; fails if any
/// failed.
pub fn finish(running: Vec<Running>, timings: &mut Timings) -> Result<()> {
    let mut failed = Vec::new();
    for r in running {
        let (status, took) = r
            .waiter
            .join()
            .map_err(|_| anyhow::anyhow!("the waiter of {} panicked", r.name))??;
        let output = std::fs::read_to_string(&r.log).unwrap_or_default();
        eprintln!("xtask: == beside the rest: {}: {status}", r.name);
        eprint!("{output}");
        timings.record_beside(&format!("run tests: {}", r.name), took);
        if !status.success() {
            failed.push(r.name);
        }
    }
    if !failed.is_empty() {
        bail!("tests run beside the rest failed: {}", failed.join(", "));
    }
    Ok(())
}
