//! Test disks: a whole Husk disk built by `husk-image build` (GPT, ESP
//! with systemd-boot and the UKI, ext4 data partition), with the test's
//! init.toml and, optionally, the guest-side checker and the huskctl it
//! runs — booted through OVMF like a cloud VM boots it.

use std::path::{Path, PathBuf};

use husk_image::build::BuildArgs;
use husk_image::config::ExtraFile;

use crate::error::{Error, Result};
use crate::guest_image::checker_files;
use crate::host::Kernel;
use husk_binaries::Artifacts;

/// Debian's OVMF (package ovmf), 4 MiB flash layout.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The version test disks carry; the UKI is `husk-<version>.efi`.
pub const TEST_VERSION: &str = "0.0.1-test";

#[derive(Debug, Clone)]
pub struct GuestDisk {
    init_config: Option<String>,
    checker: bool,
    data_mib: u64,
    version: String,
    extra_files: Vec<(PathBuf, String, u32)>,
    agent_config: Option<PathBuf>,
    update_root: Option<PathBuf>,
    preload: Vec<PathBuf>,
    cmdline_extra: Option<String>,
}

/// A built disk.
#[derive(Debug, Clone)]
pub struct DiskImage {
    /// The raw GPT disk, to attach with `format=raw`.
    pub raw: PathBuf,
    /// The OS version on the ESP (`EFI/Linux/husk-<version>+3.efi`).
    pub version: String,
    /// The UKI alone (`husk-<version>.efi`), to release as an update.
    pub uki: PathBuf,
}

impl DiskImage {
    /// Makes the disk `bytes` larger, as a cloud volume bigger than the
    /// image is: the partition table stays where the image put it.
    pub fn grow_by(&self, bytes: u64) -> Result<()> {
        let io = |e| Error::io(format!("growing {}", self.raw.display()), e);
        let disk = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.raw)
            .map_err(io)?;
        let len = disk.metadata().map_err(io)?.len();
        disk.set_len(len + bytes).map_err(io)
    }
}

impl DiskImage {
    /// The bytes of partition `number` (1-based), as the GPT places it.
    pub fn partition_range(&self, number: usize) -> Result<std::ops::Range<u64>> {
        const SECTOR: u64 = 512;
        let io = |e| Error::io(format!("reading {}", self.raw.display()), e);
        let mut disk = std::fs::File::open(&self.raw).map_err(io)?;
        let sectors = disk.metadata().map_err(io)?.len() / SECTOR;
        let gpt = husk_gpt::read_verified(&mut disk, SECTOR, sectors)
            .map_err(|e| Error::Build(format!("the GPT of {}: {e}", self.raw.display())))?;
        let (_, entry) = gpt
            .entries
            .iter()
            .find(|(slot, _)| slot + 1 == number)
            .ok_or_else(|| {
                Error::Build(format!("{} has no partition {number}", self.raw.display()))
            })?;
        Ok(entry.first_lba * SECTOR..(entry.last_lba + 1) * SECTOR)
    }
}

impl GuestDisk {
    pub fn builder() -> GuestDisk {
        GuestDisk {
            init_config: None,
            checker: false,
            data_mib: 64,
            version: TEST_VERSION.to_owned(),
            extra_files: Vec::new(),
            agent_config: None,
            update_root: None,
            preload: Vec::new(),
            cmdline_extra: None,
        }
    }

    /// The OS version (default [`TEST_VERSION`]).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Words added to the kernel command line built into the UKI.
    pub fn cmdline(mut self, extra: &str) -> Self {
        self.cmdline_extra = Some(extra.to_owned());
        self
    }

    /// Puts an image archive in the data partition's store
    /// (`husk-image build --preload`).
    pub fn preload(mut self, archive: impl Into<PathBuf>) -> Self {
        self.preload.push(archive.into());
        self
    }

    /// Adds the host file `host` at `guest_path` (in the initramfs).
    pub fn file(mut self, host: impl Into<PathBuf>, guest_path: &str, mode: u32) -> Self {
        self.extra_files
            .push((host.into(), guest_path.to_owned(), mode));
        self
    }

    /// The agent's configuration (`husk-image build --agent-config`).
    pub fn agent_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.agent_config = Some(path.into());
        self
    }

    /// The update root to pin (`husk-image build --update-root`).
    pub fn update_root(mut self, path: impl Into<PathBuf>) -> Self {
        self.update_root = Some(path.into());
        self
    }

    /// Contents of /etc/husk/init.toml (default: the product's).
    pub fn init_config(mut self, toml: impl Into<String>) -> Self {
        self.init_config = Some(toml.into());
        self
    }

    /// Adds `husk-check` as /usr/bin/husk-check, and huskctl.
    pub fn checker(mut self) -> Self {
        self.checker = true;
        self
    }

    /// Size of the data partition.
    pub fn data_mib(mut self, mib: u64) -> Self {
        self.data_mib = mib;
        self
    }

    /// Builds into `dir/image/` with the test binaries and host kernel.
    pub fn build(self, dir: &Path) -> Result<DiskImage> {
        let artifacts = Artifacts::get()?;
        let kernel = Kernel::get()?;
        let out = dir.join("image");
        let config_path = dir.join("image.toml");
        let mut config = format!(
            "version = \"{}\"\nformats = [\"raw\"]\n\
             [esp]\nsize_mib = 64\n[data]\nsize_mib = {}\n\
             [initramfs]\nzstd_level = 3\n",
            self.version, self.data_mib
        );
        if let Some(extra) = &self.cmdline_extra {
            let base = husk_image::config::Config::built_in()
                .map_err(|e| Error::Build(e.to_string()))?
                .cmdline;
            config.insert_str(0, &format!("cmdline = \"{base} {extra}\"\n"));
        }
        if let Some(init_toml) = &self.init_config {
            let init_path = dir.join("init.toml");
            std::fs::write(&init_path, init_toml).map_err(|e| Error::io("writing init.toml", e))?;
            config.insert_str(0, "init_config = \"init.toml\"\n");
        }
        std::fs::write(&config_path, config).map_err(|e| Error::io("writing image.toml", e))?;
        let mut args = build_args(artifacts, kernel, out.clone());
        args.config = Some(config_path);
        let checker = self.checker.then(|| checker_files(artifacts));
        let files = checker.into_iter().flatten().chain(self.extra_files);
        args.extra_files
            .extend(files.map(|(host, guest, mode)| ExtraFile { host, guest, mode }));
        args.agent_config = self.agent_config;
        args.update_root = self.update_root;
        args.preload = self
            .preload
            .into_iter()
            .map(husk_image::preload::Preload::Archive)
            .collect();
        husk_image::build::run(&args)
            .map_err(|e| Error::Build(format!("husk-image build: {e}")))?;
        Ok(DiskImage {
            raw: out.join("disk.raw"),
            uki: out.join(format!("husk-{}.efi", self.version)),
            version: self.version,
        })
    }
}

/// `husk-image build` arguments for these binaries and this kernel,
/// with the built-in image configuration.
pub fn build_args(artifacts: &Artifacts, kernel: &Kernel, out: PathBuf) -> BuildArgs {
    BuildArgs {
        out: Some(out),
        init: Some(artifacts.init.clone()),
        agent: Some(artifacts.agent.clone()),
        kernel: Some(kernel.image.clone()),
        modules: Some(kernel.modules_dir.clone()),
        ..BuildArgs::default()
    }
}

#[cfg(test)]
mod tests {
    /// husk-image installs agent.toml and the update root where the
    /// agent reads them; it must not link the agent to know, so the
    /// paths are written twice and compared here, where both are.
    #[test]
    fn image_paths_are_where_the_agent_reads() {
        assert_eq!(
            husk_image::config::AGENT_CONFIG_GUEST,
            husk_agent::config::DEFAULT_PATH
        );
        assert_eq!(
            husk_image::config::UPDATE_ROOT_GUEST,
            husk_agent::update::settings::DEFAULT_ROOT
        );
    }
}
