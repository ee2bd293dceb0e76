//! Runs the steps of a task with the command echoed, failing on a
//! non-zero exit with the step named, and keeps how long each took.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// `cargo ARGS…` in the workspace root.
pub fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(args)
        .current_dir(husk_binaries::workspace_root());
    command
}

/// Each step's time, in order, for the summary at the end of a task;
/// whether it counts in the total (a step run beside another does not).
#[derive(Default)]
pub struct Timings(Vec<(String, Duration, bool)>);

impl Timings {
    /// Runs `command` as the step `name` and records its time, failed or
    /// not.
    pub fn step(
        &mut self,
        name: &str,
        mut command: impl std::borrow::BorrowMut<Command>,
    ) -> Result<()> {
        let command = command.borrow_mut();
        eprintln!("xtask: == {name}: {command:?}");
        let started = Instant::now();
        let status = command.status()?;
        let took = started.elapsed();
        eprintln!("xtask: == {name}: {status} in {:.1} s", took.as_secs_f64());
        self.record(name, took);
        if !status.success() {
            bail!("{name} failed ({status})");
        }
        Ok(())
    }

    pub fn record(&mut self, name: &str, took: Duration) {
        self.0.push((name.to_owned(), took, true));
    }

    /// A step that ran while others did: shown, not added to the total.
    pub fn record_beside(&mut self, name: &str, took: Duration) {
        self.0
            .push((format!("{name} (beside the steps above)"), took, false));
    }

    /// The table of steps and the total.
    pub fn print(&self) {
        let total: Duration = self.0.iter().filter(|s| s.2).map(|s| s.1).sum();
        eprintln!("xtask: where the time went:");
        for (name, took, _) in &self.0 {
            eprintln!("xtask:   {:>7.1} s  {name}", took.as_secs_f64());
        }
        eprintln!("xtask:   {:>7.1} s  total", total.as_secs_f64());
    }
}
