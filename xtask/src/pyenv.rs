//! The Python environment of the tests that drive Husk with Docker's
//! Python SDK and testcontainers (agent/tests/docker_python.rs): a
//! virtual environment under `target/pyenv` with the pinned, hashed
//! packages of `agent/tests/python/requirements.txt` from PyPI. It is
//! made again only when that file changes (a copy of it is kept inside
//! as the stamp), so a warm `cargo xtask test` does not touch PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use husk_binaries::workspace_root;

use crate::steps::Timings;

fn requirements() -> PathBuf {
    workspace_root().join("agent/tests/python/requirements.txt")
}

fn venv() -> PathBuf {
    workspace_root().join("target/pyenv")
}

/// What records the requirements the environment was made from.
fn stamp(venv: &Path) -> PathBuf {
    venv.join("husk-requirements.txt")
}

/// Whether `python3 -m venv` can work here: Debian keeps ensurepip, which
/// it needs, in python3-venv.
pub fn can_make_venvs() -> bool {
    Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Makes `target/pyenv` unless it was made from today's requirements.
pub fn ensure(timings: &mut Timings) -> Result<()> {
    let (venv, wanted) = (venv(), requirements());
    let wanted_text =
        std::fs::read(&wanted).with_context(|| format!("reading {}", wanted.display()))?;
    if std::fs::read(stamp(&venv)).is_ok_and(|made| made == wanted_text) {
        return Ok(());
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(&venv);
    timings.step("python test environment (venv)", &mut make)?;
    let mut install = Command::new(venv.join("bin/pip"));
    install
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "-r",
        ])
        .arg(&wanted);
    timings.step("python test environment (pip install)", &mut install)?;
    std::fs::write(stamp(&venv), wanted_text)
        .with_context(|| format!("writing {}", stamp(&venv).display()))
}
