//! `cargo xtask test`: everything CI checks, in the order that fails
//! fastest: formatting, lints, the image binaries, the tests' build, the
//! fuzz targets (built, then each run for a while), the Python test
//! environment, then the tests (the unit tests and the QEMU boots). Each step's time is printed at the
//! end; `--timings` adds cargo's per-crate reports.

use std::time::Instant;

use anyhow::{Result, anyhow};
use husk_binaries::{ARTIFACTS_ENV, Artifacts, workspace_root};

use crate::fuzz;
use crate::steps::{Timings, cargo};

pub fn run(cargo_timings: bool) -> Result<()> {
    crate::prereqs::ensure()?;
    let mut timings = Timings::default();
    let result = steps(&mut timings, cargo_timings);
    timings.print();
    if cargo_timings {
        eprintln!(
            "xtask: cargo's per-crate reports: {}",
            workspace_root().join("target/cargo-timings").display()
        );
    }
    result?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

fn steps(timings: &mut Timings, cargo_timings: bool) -> Result<()> {
    let with_timings = |args: &[&'static str]| {
        let mut args = args.to_vec();
        if cargo_timings {
            args.push("--timings");
        }
        args
    };
    timings.step("format", cargo(&["fmt", "--all", "--check"]))?;
    // The feature adds the fuzz targets' binaries (libFuzzer's C++ is
    // compiled, not linked, for a check).
    timings.step(
        "clippy",
        cargo(&with_timings(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            "husk-fuzz/libfuzzer",
        ]))
        .args(["--", "-D", "warnings"]),
    )?;
    // The QEMU tests boot images made of these: build them once, up
    // front, so a build failure is reported as one and not as N boots.
    let started = Instant::now();
    let artifacts = Artifacts::build(&workspace_root()).map_err(|e| anyhow!("{e}"))?;
    timings.record("image binaries (static, release)", started.elapsed());
    let artifacts_dir = artifacts
        .init
        .parent()
        .unwrap_or(&artifacts.init)
        .to_owned();
    timings.step(
        "build tests",
        cargo(&with_timings(&["test", "--workspace", "--no-run"])),
    )?;
    // Every fuzz target for a while from its seeds, before the long QEMU
    // tests (its build is instrumented, into a target directory of its own).
    timings.step("fuzz targets (build)", fuzz::build_command())?;
    let (targets, started) = (fuzz::targets()?, Instant::now());
    let fuzzed = fuzz::fuzz(&fuzz::bins_dir(), &targets, fuzz::TEST_SECS);
    let name = format!(
        "fuzz ({} targets, {} s each)",
        targets.len(),
        fuzz::TEST_SECS
    );
    timings.record(&name, started.elapsed());
    fuzzed?;
    crate::pyenv::ensure(timings)?;
    // The tests that mostly wait run beside the others (`beside`).
    let beside = crate::beside::start(&[(ARTIFACTS_ENV, &artifacts_dir)])?;
    let mut tests = cargo(&["test", "--workspace", "--no-fail-fast", "--"]);
    tests
        .args(crate::beside::skips(&beside))
        .env(ARTIFACTS_ENV, &artifacts_dir);
    let main = timings.step("run tests", &mut tests);
    let beside = crate::beside::finish(beside, timings);
    main.and(beside)
}
