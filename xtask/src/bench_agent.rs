//! An agent started on this host for a benchmark, with the release
//! (static) binaries, on its own paths under `target/husk/`, and huskctl
//! to talk to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use husk_binaries::Artifacts;

/// Asks `answers` every `every` until it is true: an error naming
/// `who` and its `log` after `limit`.
pub fn wait_for_answer(
    who: &str,
    limit: Duration,
    every: Duration,
    log: &Path,
    mut answers: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !answers() {
        if Instant::now() > deadline {
            bail!(
                "{who} did not answer in {} s (see {})",
                limit.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(every);
    }
    Ok(())
}

pub struct Machine {
    pub agent: Child,
    pub huskctl: PathBuf,
    pub socket: PathBuf,
    pub dir: PathBuf,
}

impl Machine {
    /// Starts the agent on `dir` with `agent_toml` and waits until it
    /// answers.
    pub fn start(artifacts: &Artifacts, dir: &Path, agent_toml: &str) -> Result<Self> {
        let socket = dir.join("agent.sock");
        std::fs::write(dir.join("agent.toml"), agent_toml)?;
        let agent = Command::new(&artifacts.agent)
            .arg("--socket")
            .arg(&socket)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .arg("--config")
            .arg(dir.join("agent.toml"))
            .arg("--data-status")
            .arg(dir.join("data.json"))
            .arg("--no-machine-setup")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("agent.log"))?)
            .spawn()
            .context("starting husk-agent")?;
        let machine = Self {
            agent,
            huskctl: artifacts.huskctl.clone(),
            socket,
            dir: dir.to_owned(),
        };
        wait_for_answer(
            "the agent",
            Duration::from_secs(20),
            Duration::from_millis(50),
            &dir.join("agent.log"),
            || machine.huskctl(&["health"]).is_ok(),
        )?;
        Ok(machine)
    }

    /// Runs huskctl against the agent: its stdout, or its stderr as the error.
    pub fn huskctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.huskctl)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "huskctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Imports husk-testkit's busybox as the image `name`.
    pub fn import_busybox(&self, name: &str) -> Result<()> {
        let archive = self.dir.join("busybox.tar");
        std::fs::write(
            &archive,
            husk_testkit::oci_archive(name, &[husk_testkit::busybox_layer()]),
        )?;
        self.huskctl(&["image", "import", archive.to_str().unwrap_or_default()])?;
        Ok(())
    }

    pub fn stop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
    }
}
