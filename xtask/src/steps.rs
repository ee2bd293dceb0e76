//! Runs the steps of a task with the command echoed, failing on a
//! non-zero exit with the step named.

use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

/// `cargo ARGS…` in the workspace root.
pub fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(args)
        .current_dir(husk_binaries::workspace_root());
    command
}

/// Runs a step, printing it and how long it took.
pub fn step(name: &str, mut command: Command) -> Result<()> {
    eprintln!("xtask: == {name}: {command:?}");
    let started = Instant::now();
    let status = command.status()?;
    eprintln!(
        "xtask: == {name}: {status} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
