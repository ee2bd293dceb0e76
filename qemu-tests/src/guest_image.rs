//! Test images: the product initramfs (built by `husk_image`) plus,
//! optionally, the guest-side checker and the huskctl it runs.

use std::path::{Path, PathBuf};

use husk_image::initramfs::{self, InitramfsSpec};

use crate::error::{Error, Result};
use crate::host::Kernel;
use husk_binaries::Artifacts;

/// Where test images carry `husk-check`.
pub const CHECKER_GUEST_PATH: &str = "/usr/bin/husk-check";
/// Where test images with the checker carry huskctl: the checker drives
/// the agent through it, as an operator would. Product images have no
/// huskctl (nothing in them could run it); it is in the release bundle.
pub const HUSKCTL_GUEST_PATH: &str = "/usr/bin/huskctl";

/// The checker and the huskctl it runs, as extra files of a test image.
pub fn checker_files(artifacts: &Artifacts) -> [(PathBuf, String, u32); 2] {
    [
        (
            artifacts.checker.clone(),
            CHECKER_GUEST_PATH.to_owned(),
            0o755,
        ),
        (
            artifacts.huskctl.clone(),
            HUSKCTL_GUEST_PATH.to_owned(),
            0o755,
        ),
    ]
}

/// Test images trade size for build time: level 19 (the product
/// default) spends seconds per image on every test.
const TEST_ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Default, Clone)]
pub struct GuestImage {
    init_config: Option<String>,
    checker: bool,
    modules: Vec<String>,
    extra_files: Vec<(PathBuf, String, u32)>,
}

impl GuestImage {
    pub fn builder() -> GuestImage {
        GuestImage::default()
    }

    /// The exact text of `/etc/husk/init.toml` (default: the product's).
    pub fn init_config(mut self, toml: impl Into<String>) -> Self {
        self.init_config = Some(toml.into());
        self
    }

    /// Adds `husk-check` as [`CHECKER_GUEST_PATH`], and huskctl.
    pub fn checker(mut self) -> Self {
        self.checker = true;
        self
    }

    /// Ships an extra kernel module (the defaults are always included).
    pub fn module(mut self, name: &str) -> Self {
        self.modules.push(name.to_owned());
        self
    }

    /// Ships a host file at `guest_path` with `mode`.
    pub fn file(mut self, host: impl Into<PathBuf>, guest_path: &str, mode: u32) -> Self {
        self.extra_files
            .push((host.into(), guest_path.to_owned(), mode));
        self
    }

    /// Writes `initramfs.cpio.zst` into `dir` (the test's directory) with
    /// the binaries from [`Artifacts::get`] and modules of [`Kernel::get`].
    pub fn build(self, dir: &Path) -> Result<PathBuf> {
        self.build_with(Artifacts::get()?, Kernel::get()?, dir)
    }

    pub fn build_with(self, artifacts: &Artifacts, kernel: &Kernel, dir: &Path) -> Result<PathBuf> {
        let mut spec = InitramfsSpec::new(
            artifacts.init.clone(),
            artifacts.agent.clone(),
            kernel.modules_dir.clone(),
        );
        spec.modules = self.modules;
        spec.init_config = self.init_config;
        spec.extra_files = self.extra_files;
        if self.checker {
            spec.extra_files.extend(checker_files(artifacts));
        }
        spec.source_date_epoch = 0;
        spec.zstd_level = TEST_ZSTD_LEVEL;
        let out = dir.join("initramfs.cpio.zst");
        initramfs::build(&spec, &out)
            .map_err(|e| Error::Build(format!("initramfs {}: {e}", out.display())))?;
        Ok(out)
    }
}
