//! The static binaries Husk images are made of — husk-init, husk-agent —
//! with huskctl (the release bundle's CLI) and the test-only husk-check:
//! the one place that knows how to build them (`--release --target
//! x86_64-unknown-linux-gnu`, `+crt-static`).
//!
//! xtask (`dist`, `run`, `test`, `bench`) and the QEMU tests both build
//! through here; the tests take `$HUSK_ARTIFACTS` when xtask has built
//! them already, so one build serves every boot. This crate knows cargo's
//! command line and the binaries' names, nothing of what they do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Why the binaries are not there.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The build could not run, or failed (its errors are above, on
    /// stderr), or a prebuilt directory misses binaries.
    #[error("{0}")]
    Build(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
        static ARTIFACTS: OnceLock<Result<Artifacts>> = OnceLock::new();
        ARTIFACTS
            .get_or_init(|| match std::env::var_os(ARTIFACTS_ENV) {
                Some(dir) => Artifacts::in_dir(Path::new(&dir)),
                None => Artifacts::build(&workspace_root()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The binaries in `dir`, which must all exist.
    pub fn in_dir(dir: &Path) -> Result<Artifacts> {
        let [init, agent, huskctl, checker] = TEST_BINARIES.map(|name| dir.join(name));
        let artifacts = Artifacts {
            init,
            agent,
            huskctl,
            checker,
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

    /// Builds the test images' binaries in `workspace`: the product's,
    /// with the agent's fault points (`fault-injection`), and the checker.
    /// They are copied out of cargo's output directory, so a product
    /// build (`cargo xtask dist`) never replaces them under a test.
    pub fn build(workspace: &Path) -> Result<Artifacts> {
        // The product's packages and the checker, so both builds resolve
        // the same dependency features and share every crate but the
        // agent.
        let mut packages = PRODUCT_BINARIES.to_vec();
        packages.push("husk-check");
        let built = static_build(workspace, &packages, &["husk-agent/fault-injection"])?;
        let dir = target_dir(workspace).join("husk-test-binaries");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Build(format!("creating {}: {e}", dir.display())))?;
        for name in TEST_BINARIES {
            let (from, to) = (built.join(name), dir.join(name));
            copy_replacing(&from, &to)?;
        }
        Artifacts::in_dir(&dir)
    }

    fn all(&self) -> [&Path; 4] {
        [&self.init, &self.agent, &self.huskctl, &self.checker]
    }
}

/// What a test image needs, by file name.
const TEST_BINARIES: [&str; 4] = ["husk-init", "husk-agent", "huskctl", "husk-check"];

/// The binaries of a release bundle: the image's and the operator's (each
/// the one binary of the package of the same name).
pub const PRODUCT_BINARIES: [&str; 4] = ["husk-init", "husk-agent", "huskctl", "husk-image"];

/// Builds the product's binaries, statically linked and without test
/// features, and returns the directory cargo wrote them to.
pub fn build_product(workspace: &Path) -> Result<PathBuf> {
    static_build(workspace, &PRODUCT_BINARIES, &[])
}

/// `cargo build --release --target TARGET --bins` of `packages` with
/// `+crt-static`; the directory of the binaries. Cargo's own lock
/// serialises this with other builds.
pub fn static_build(workspace: &Path, packages: &[&str], features: &[&str]) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", TARGET, "--bins"]);
    for package in packages {
        command.args(["-p", package]);
    }
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    command
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
    Ok(target_dir(workspace).join(TARGET).join("release"))
}

/// Copies `from` over `to` through a temporary name, so a reader never
/// sees half a binary.
pub fn copy_replacing(from: &Path, to: &Path) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::Build(format!(
            "copying {} to {}: {e}",
            from.display(),
            to.display()
        ))
    };
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).map_err(fail)?;
    std::fs::rename(&tmp, to).map_err(fail)
}

/// The workspace this crate lives in (it builds that workspace's
/// binaries).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory for `workspace`.
pub fn target_dir(workspace: &Path) -> PathBuf {
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
