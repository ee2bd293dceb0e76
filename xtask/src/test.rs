//! `cargo xtask test`: everything CI checks, in the order that fails
//! fastest: formatting, lints, then the unit tests and the QEMU boots.

use anyhow::{Result, anyhow};
use husk_binaries::{ARTIFACTS_ENV, Artifacts, workspace_root};

use crate::steps::{cargo, step};

pub fn run() -> Result<()> {
    crate::prereqs::ensure()?;
    step("format", cargo(&["fmt", "--all", "--check"]))?;
    step(
        "clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The QEMU tests boot images made of these: build them once, up
    // front, so a build failure is reported as one and not as N boots.
    let artifacts = Artifacts::build(&workspace_root()).map_err(|e| anyhow!("{e}"))?;
    let artifacts_dir = artifacts
        .init
        .parent()
        .unwrap_or(&artifacts.init)
        .to_owned();
    let mut tests = cargo(&["test", "--workspace", "--no-fail-fast"]);
    tests.env(ARTIFACTS_ENV, artifacts_dir);
    step("tests", tests)?;
    eprintln!("xtask: all checks passed");
    Ok(())
}
