//! `cargo xtask fuzz [TARGET] [--time SECS]`: builds the fuzz targets
//! (`fuzz/`: libFuzzer, compiled by the `cc` crate, with the stable
//! compiler's coverage instrumentation) into their own target directory,
//! `target/fuzz` (their RUSTFLAGS would otherwise rebuild everything
//! else), and runs each for SECS seconds. Each starts from its committed
//! seeds and regressions; what it adds goes to `target/fuzz/corpus/`, so
//! the committed corpus grows only by hand. A crash fails the task with
//! the input's path and the command that replays it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use husk_binaries::{TARGET, target_dir, workspace_root};

/// Per target, in `cargo xtask test`.
pub const TEST_SECS: u64 = 15;

/// Coverage-guided fuzzing on stable Rust: the instrumentation
/// cargo-fuzz asks of nightly's `-Zsanitizer`, through LLVM's own
/// options. No sanitizer: safe Rust, so a crash is a panic or an abort.
/// Debug assertions and overflow checks come from the `fuzz` profile,
/// for Husk's crates only.
const RUSTFLAGS: &str = "--cfg fuzzing -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=3 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares";

/// libFuzzer's options besides the time: an input running 10 s is a hang.
const OPTIONS: [&str; 2] = ["-timeout=10", "-print_final_stats=1"];

pub fn run(target: Option<String>, secs: u64) -> Result<()> {
    let targets = match target {
        Some(t) if targets()?.contains(&t) => vec![t],
        Some(t) => bail!("no fuzz target {t}; there are: {}", targets()?.join(", ")),
        None => targets()?,
    };
    let bins = build()?;
    fuzz(&bins, &targets, secs)
}

/// The targets: `fuzz/fuzz_targets/<name>.rs`.
pub fn targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(name) = name.strip_suffix(".rs") {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// Where the build, the corpora the runs grow and the crashes go.
pub fn out_dir() -> PathBuf {
    target_dir(&workspace_root()).join("fuzz")
}

/// The build of every target; `--target` keeps RUSTFLAGS away from
/// build scripts and proc-macros, which must not be instrumented.
pub fn build_command() -> Command {
    let mut command = crate::steps::cargo(&[
        "build",
        "--profile",
        "fuzz",
        "--target",
        TARGET,
        "-p",
        "husk-fuzz",
        "--features",
        "husk-fuzz/libfuzzer",
        "--bins",
    ]);
    command
        .env("CARGO_TARGET_DIR", out_dir())
        .env("RUSTFLAGS", RUSTFLAGS)
        // Would take precedence over RUSTFLAGS if inherited.
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    command
}

/// Builds the targets (libFuzzer needs a C++ compiler); their directory.
pub fn build() -> Result<PathBuf> {
    crate::prereqs::ensure_only(&["g++"])?;
    let mut command = build_command();
    eprintln!("xtask: fuzz: {command:?}");
    let status = command.status()?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    Ok(bins_dir())
}

/// Where the build puts the targets' binaries.
pub fn bins_dir() -> PathBuf {
    out_dir().join(TARGET).join("fuzz")
}

/// Runs each target for `secs` seconds; every one runs, then the crashes
/// are reported together.
pub fn fuzz(bins: &Path, targets: &[String], secs: u64) -> Result<()> {
    // As many targets at once as there are CPUs: each libFuzzer run is
    // one busy thread, and the targets share nothing but the log lines.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(targets.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Option<String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut found = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(target) = targets.get(i) else {
                            return found;
                        };
                        found.push(fuzz_one(bins, target, secs));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("a fuzz worker panicked"))])
            })
            .collect()
    });
    let mut crashed = Vec::new();
    for result in results {
        if let Some(crash) = result? {
            crashed.push(crash);
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzzing found {} crash(es):\n{}",
            crashed.len(),
            crashed.join("\n")
        );
    }
    Ok(())
}

/// One target's run; a description of its crash, if it found one.
fn fuzz_one(bins: &Path, target: &str, secs: u64) -> Result<Option<String>> {
    let bin = bins.join(target);
    let (work, artifacts, logs) = (
        out_dir().join("corpus").join(target),
        out_dir().join("artifacts").join(target),
        out_dir().join("logs"),
    );
    for dir in [&work, &artifacts, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = logs.join(format!("{target}.log"));
    let mut command = Command::new(&bin);
    command
        .arg(format!("-max_total_time={secs}"))
        .args(OPTIONS)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // The first corpus directory is the one libFuzzer writes to.
        .arg(&work)
        .arg(fuzz_dir().join("corpus").join(target));
    let regressions = fuzz_dir().join("regressions").join(target);
    if regressions.is_dir() {
        command.arg(&regressions);
    }
    command.stdout(Stdio::null()).stderr(
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?,
    );
    eprintln!(
        "xtask: fuzz: {target} for {secs} s (log: {})",
        log.display()
    );
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let stats = Stats::parse(&output);
    eprintln!(
        "xtask: fuzz: {target}: {} runs in {:.0} s, {} exec/s, coverage {} -> {} edges ({} -> {} features), {} new inputs",
        stats.runs,
        started.elapsed().as_secs_f64(),
        stats.execs_per_sec,
        stats.cov.0,
        stats.cov.1,
        stats.features.0,
        stats.features.1,
        stats.new_units,
    );
    if status.success() {
        return Ok(None);
    }
    // The panic and its backtrace, then libFuzzer's summary.
    let tail: Vec<&str> = output.lines().rev().take(60).collect();
    for line in tail.iter().rev() {
        eprintln!("xtask: fuzz: {target}: {line}");
    }
    let input = stats
        .crash_file
        .unwrap_or_else(|| format!("(no input written; see {})", log.display()));
    Ok(Some(format!(
        "  {target} ({status}): {input}\n    replay: {} {input}\n    once fixed, keep it: cp {input} fuzz/regressions/{target}/",
        bin.display()
    )))
}

/// What libFuzzer's output says of a run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    runs: u64,
    execs_per_sec: u64,
    new_units: u64,
    /// Edges covered when the seeds were loaded, and at the end.
    cov: (u64, u64),
    features: (u64, u64),
    crash_file: Option<String>,
}

impl Stats {
    fn parse(output: &str) -> Self {
        let mut stats = Self::default();
        let field = |line: &str, key: &str| -> Option<u64> {
            let mut words = line.split_whitespace();
            words.find(|w| *w == key)?;
            words.next()?.parse().ok()
        };
        for line in output.lines() {
            if let Some((key, value)) = line.strip_prefix("stat::").and_then(|l| l.split_once(':'))
            {
                let value = value.trim().parse().unwrap_or(0);
                match key {
                    "number_of_executed_units" => stats.runs = value,
                    "average_exec_per_sec" => stats.execs_per_sec = value,
                    "new_units_added" => stats.new_units = value,
                    _ => {}
                }
            } else if line.starts_with('#') && line.contains("cov:") {
                let (cov, ft) = (field(line, "cov:"), field(line, "ft:"));
                if line.contains("INITED") {
                    stats.cov.0 = cov.unwrap_or(0);
                    stats.features.0 = ft.unwrap_or(0);
                }
                stats.cov.1 = cov.unwrap_or(stats.cov.1);
                stats.features.1 = ft.unwrap_or(stats.features.1);
            } else if let Some(at) = line.find("Test unit written to ") {
                stats.crash_file =
                    Some(line[at + "Test unit written to ".len()..].trim().to_owned());
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_output_is_read() {
        let output = "\
INFO: Seed: 1
#12\tINITED cov: 706 ft: 2472 corp: 10/7642b exec/s: 0 rss: 30Mb
#4096\tpulse  cov: 800 ft: 3000 corp: 20/9kb lim: 86 exec/s: 2048 rss: 31Mb
#46149\tDONE   cov: 812 ft: 3100 corp: 314/7642b lim: 86 exec/s: 2884 rss: 30Mb
stat::number_of_executed_units: 46149
stat::average_exec_per_sec:     2884
stat::new_units_added:          411
artifact_prefix='/t/'; Test unit written to /t/crash-86af
";
        assert_eq!(
            Stats::parse(output),
            Stats {
                runs: 46149,
                execs_per_sec: 2884,
                new_units: 411,
                cov: (706, 812),
                features: (2472, 3100),
                crash_file: Some("/t/crash-86af".into()),
            }
        );
    }
}
