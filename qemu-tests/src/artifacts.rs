//! The static image binaries the guest runs: husk-init, husk-agent,
//! huskctl and the test-only husk-check.
//!
//! Built once per test binary with the flags docs/ARCHITECTURE.md
//! prescribes (xtask does the same for product images; it depends on
//! this crate, so the build cannot be borrowed from it), or taken from
//! `$HUSK_ARTIFACTS` when CI has built them already.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// A directory holding prebuilt `husk-init`, `husk-agent`, `huskctl` and
/// `husk-check`.
pub const ARTIFACTS_ENV: &str = "HUSK_ARTIFACTS";

/// The one Rust target the image binaries are built for; naming it
/// explicitly keeps `+crt-static` away from proc-macros.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";
pub const STATIC_RUSTFLAGS: &str = "-C target-feature=+crt-static";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    pub init: PathBuf,
    pub agent: PathBuf,
    pub huskctl: PathBuf,
    pub checker: PathBuf,
}

impl Artifacts {
    /// The binaries, built (or located) on first use. Concurrent tests
    /// block here until the one build finishes.
    pub fn get() -> Result<&'static Artifacts> {
        static ARTIFACTS: OnceLock<Result<Artifacts, String>> = OnceLock::new();
        ARTIFACTS
            .get_or_init(|| {
                let found = match std::env::var_os(ARTIFACTS_ENV) {
                    Some(dir) => Artifacts::in_dir(Path::new(&dir)),
                    None => Artifacts::build(&workspace_root()),
                };
                found.map_err(|e| match e {
                    Error::Build(message) => message,
                    other => other.to_string(),
                })
            })
            .as_ref()
            .map_err(|e| Error::Build(e.clone()))
    }

    /// The binaries in `dir`, which must all exist.
    pub fn in_dir(dir: &Path) -> Result<Artifacts> {
        let artifacts = Artifacts {
            init: dir.join("husk-init"),
            agent: dir.join("husk-agent"),
            huskctl: dir.join("huskctl"),
            checker: dir.join("husk-check"),
        };
        let missing: Vec<String> = artifacts
            .all()
            .iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if missing.is_empty() {
            Ok(artifacts)
        } else {
            Err(Error::Build(format!(
                "missing binaries: {}",
                missing.join(", ")
            )))
        }
    }

    /// Runs the static release build in `workspace` and returns its
    /// output. Cargo's own lock serialises this with other builds.
    pub fn build(workspace: &Path) -> Result<Artifacts> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(workspace)
            .args(["build", "--release", "--target", TARGET, "--bins"])
            .args(["-p", "husk-init", "-p", "husk-agent", "-p", "qemu-tests"])
            .env("RUSTFLAGS", STATIC_RUSTFLAGS)
            // Would take precedence over RUSTFLAGS if inherited.
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        let status = command
            .status()
            .map_err(|e| Error::Build(format!("running {command:?}: {e}")))?;
        if !status.success() {
            return Err(Error::Build(format!(
                "{command:?} failed ({status}); its errors are above (or set {ARTIFACTS_ENV} to prebuilt binaries)"
            )));
        }
        Artifacts::in_dir(&target_dir(workspace).join(TARGET).join("release"))
    }

    fn all(&self) -> [&Path; 4] {
        [&self.init, &self.agent, &self.huskctl, &self.checker]
    }
}

/// The workspace this crate lives in.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn target_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prebuilt_directory_must_hold_every_binary() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["husk-init", "husk-agent", "huskctl"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let err = Artifacts::in_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("husk-check"), "{err}");
        std::fs::write(dir.path().join("husk-check"), b"").unwrap();
        let artifacts = Artifacts::in_dir(dir.path()).unwrap();
        assert_eq!(artifacts.checker, dir.path().join("husk-check"));
    }
}
