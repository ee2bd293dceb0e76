//! `husk-image build`: every image from one command, unprivileged and
//! reproducibly. The pipeline:
//!
//! 1. the initramfs (`initramfs.img`): husk-init, the agent, e2fsck, the
//!    kernel modules the image needs, init.toml, and what the user adds
//!    (agent.toml, the update root, extra files);
//! 2. the UKI (`husk-<version>.efi`, the update payload): systemd's stub
//!    with the kernel, the initramfs, the command line and os-release;
//! 3. the ESP (temporary): FAT32 with systemd-boot and the UKI as
//!    `EFI/Linux/husk-<version>+3.efi` (boot counting);
//! 4. the data partition (temporary): an empty ext4 labelled `husk-data`;
//! 5. the GPT disk (`disk.raw`, temporary when raw is not a wanted format);
//! 6. `disk.qcow2` and 7. `disk.vhd`, per the configuration;
//! 8. `manifest.json`: each artifact's name, size and sha256, the version
//!    and the `SOURCE_DATE_EPOCH` used.
//!
//! Nothing depends on the clock, the host's paths or the user: two builds
//! from the same inputs give the same bytes.

use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{
    self, AGENT_CONFIG_GUEST, Config, ConfigError, ExtraFile, Format, Given, Origin,
    UPDATE_ROOT_GUEST,
};
use crate::elf::{self, Linking};
use crate::progress::{Progress, seconds};
use crate::{esp, ext4, gpt, initramfs, kernel, qcow2, uki, vhd};

const EXAMPLE: &str = "\
Example (in CI, with the release bundle of `cargo xtask dist` -- husk-image,
husk-init, husk-agent, huskctl in one directory -- and Debian's
linux-image-cloud-amd64, systemd-boot-efi and e2fsck-static installed):

  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \\
    ./husk-image build --config image.toml --out dist/ \\
    --agent-config agent.toml --update-root repo/root.json

writes dist/initramfs.img, dist/husk-<version>.efi, dist/disk.raw,
dist/disk.qcow2, dist/disk.vhd and dist/manifest.json.

Exit status: 0 built, 1 the build failed (a missing input or tool, a
write error), 2 a usage or configuration error.";

/// Build the bootable images: initramfs, UKI, and a GPT disk (ESP +
/// data partition) as raw, qcow2 and VHD, with a manifest of them.
///
/// Timestamps come from SOURCE_DATE_EPOCH (0 when unset) and ids from the
/// config's seed, so the same inputs give byte-identical images.
#[derive(Debug, Default, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct BuildArgs {
    /// Image configuration (TOML), laid over the built-in defaults field
    /// by field; see --print-config for the format. [default: built in]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the built-in configuration, with comments, and exit.
    #[arg(long, exclusive = true)]
    pub print_config: bool,
    /// Directory for the artifacts (created if missing).
    #[arg(long, value_name = "DIR", required_unless_present = "print_config")]
    pub out: Option<PathBuf>,
    /// husk-init, statically linked, installed as /init. [default:
    /// husk-init next to the husk-image executable, as in the release
    /// bundle of `cargo xtask dist`]
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,
    /// husk-agent, statically linked. [default: husk-agent next to the
    /// husk-image executable]
    #[arg(long, value_name = "PATH")]
    pub agent: Option<PathBuf>,
    /// The agent's configuration, installed as /etc/husk/agent.toml
    /// ([security], [logs], [update]); overrides image.toml's
    /// agent_config. [default: none, the agent's defaults]
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
    /// The update repository's root.json (from `husk-image repo-init`),
    /// pinned as /etc/husk/update/root.json; overrides image.toml's
    /// update_root. Without it the machine cannot verify updates.
    #[arg(long, value_name = "FILE")]
    pub update_root: Option<PathBuf>,
    /// The kernel (an x86 bzImage named vmlinuz-<release>). [default: the
    /// newest /boot/vmlinuz-*-cloud-amd64, from Debian's
    /// linux-image-cloud-amd64]
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// The kernel's module tree. [default: /lib/modules/<release> of the
    /// kernel]
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// systemd's EFI stub, the UKI's base. [default:
    /// /usr/lib/systemd/boot/efi/linuxx64.efi.stub, from systemd-boot-efi]
    #[arg(long, value_name = "PATH")]
    pub stub: Option<PathBuf>,
    /// systemd-boot, installed on the ESP. [default:
    /// /usr/lib/systemd/boot/efi/systemd-bootx64.efi, from systemd-boot-efi]
    #[arg(long, value_name = "PATH")]
    pub systemd_boot: Option<PathBuf>,
    /// A static e2fsck, installed as /usr/sbin/e2fsck: husk-init checks
    /// the data partition with it. [default: /sbin/e2fsck.static, from
    /// e2fsck-static]
    #[arg(long, value_name = "PATH")]
    pub e2fsck: Option<PathBuf>,
    /// Container images to put in the data partition's image store, so
    /// the machine runs them offline from its first boot: an OCI layout
    /// or `docker save` archive, or `docker://REF` to pull from a
    /// registry. Repeatable. Their blobs are verified now; the layers are
    /// unpacked by the agent at first boot (unpacking needs privileges
    /// this build does not have).
    #[arg(long, value_name = "ARCHIVE|docker://REF")]
    pub preload: Vec<crate::preload::Preload>,
    /// How `--preload docker://…` reaches registries: a TOML file with a
    /// `[registry]` table as agent.toml's (insecure registries, CAs,
    /// mirrors, credentials); the `--agent-config` file will do.
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// Another file for the image: HOST (on this machine) installed at
    /// GUEST (an absolute path) with MODE (octal, default 0644), after
    /// image.toml's [[extra_files]]. Repeatable.
    #[arg(long = "extra-file", value_name = "HOST:GUEST[:MODE]")]
    pub extra_files: Vec<ExtraFile>,
}

/// Why a build stopped: the two exit statuses.
#[derive(Debug)]
pub enum BuildError {
    /// A usage or configuration error (exit status 2).
    Usage(anyhow::Error),
    /// The build itself failed (exit status 1).
    Failed(anyhow::Error),
}

impl BuildError {
    pub fn exit_code(&self) -> u8 {
        match self {
            BuildError::Usage(_) => 2,
            BuildError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Usage(e) | BuildError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

fn usage(e: impl Into<anyhow::Error>) -> BuildError {
    BuildError::Usage(e.into())
}

fn failed(e: impl Into<anyhow::Error>) -> BuildError {
    BuildError::Failed(e.into())
}

/// The files the build reads, resolved and checked before it starts.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub init: PathBuf,
    pub agent: PathBuf,
    pub kernel: PathBuf,
    pub modules: PathBuf,
    pub stub: PathBuf,
    pub systemd_boot: PathBuf,
    pub e2fsck: PathBuf,
}

fn need_file(path: &Path, what: &str) -> Result<(), BuildError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(failed(anyhow!("{what}: {} is not a file", path.display()))),
        Err(e) => Err(failed(anyhow!("{what}: {}: {e}", path.display()))),
    }
}

impl Inputs {
    /// Fills in the defaults and checks that every input exists, so a
    /// build fails in its first second rather than its last step.
    pub fn resolve(args: &BuildArgs, config: &Config) -> Result<Inputs, BuildError> {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_owned));
        let binary = |given: &Option<PathBuf>, name: &str, flag: &str| match given {
            Some(path) => need_file(path, &format!("--{flag}")).map(|()| path.clone()),
            None => {
                let dir = exe_dir.as_deref().ok_or_else(|| {
                    failed(anyhow!(
                        "cannot find husk-image's own directory to look for {name}: pass --{flag}"
                    ))
                })?;
                let path = dir.join(name);
                need_file(
                    &path,
                    &format!("{name} (looked for next to husk-image; pass --{flag} PATH)"),
                )
                .map(|()| path)
            }
        };
        // Named as the user gave it: a flag, or the default beside us
        // (target/release/husk-image finds target/release/husk-init).
        let label = |given: &Option<PathBuf>, flag: &str, name: &str| match given {
            Some(_) => format!("--{flag}"),
            None => format!("{name} (beside husk-image; or pass --{flag})"),
        };
        let init = binary(&args.init, "husk-init", "init")?;
        need_static(&init, &label(&args.init, "init", "husk-init"))?;
        let agent = binary(&args.agent, "husk-agent", "agent")?;
        need_static(&agent, &label(&args.agent, "agent", "husk-agent"))?;

        let kernel = match &args.kernel {
            Some(path) => {
                need_file(
                    path,
                    &format!(
                        "--kernel (the default kernel comes from Debian's {})",
                        kernel::KERNEL_PACKAGE
                    ),
                )?;
                path.clone()
            }
            None => kernel::default_kernel().ok_or_else(|| {
                failed(anyhow!(
                    "no kernel in /boot (/boot/vmlinuz-*-cloud-amd64): apt-get install {}, \
                     or pass --kernel",
                    kernel::KERNEL_PACKAGE
                ))
            })?,
        };
        let modules = match &args.modules {
            Some(dir) => dir.clone(),
            None => kernel::modules_dir_for(&kernel).ok_or_else(|| {
                usage(anyhow!(
                    "--kernel {}: not named vmlinuz-<release>, so its modules cannot be \
                     found: pass --modules DIR",
                    kernel.display()
                ))
            })?,
        };
        if !modules.join("modules.dep").is_file() {
            return Err(failed(anyhow!(
                "{}: no modules.dep: not the module tree of kernel {} (it comes with the \
                 kernel's package, e.g. {}; or pass --modules DIR)",
                modules.display(),
                kernel.display(),
                kernel::KERNEL_PACKAGE
            )));
        }
        let stub = args
            .stub
            .clone()
            .unwrap_or_else(|| PathBuf::from(uki::DEFAULT_STUB));
        need_file(
            &stub,
            &format!(
                "the EFI stub (--stub; apt-get install {})",
                uki::STUB_PACKAGE
            ),
        )?;
        let systemd_boot = args
            .systemd_boot
            .clone()
            .unwrap_or_else(|| PathBuf::from(esp::SYSTEMD_BOOT));
        need_file(
            &systemd_boot,
            &format!(
                "systemd-boot (--systemd-boot; apt-get install {})",
                esp::SYSTEMD_BOOT_PACKAGE
            ),
        )?;

        let e2fsck = args
            .e2fsck
            .clone()
            .unwrap_or_else(|| PathBuf::from(E2FSCK_STATIC));
        need_file(
            &e2fsck,
            &format!("a static e2fsck (--e2fsck; apt-get install {E2FSCK_STATIC_PACKAGE})"),
        )?;

        let mut tools = vec![
            ("mke2fs", ext4::PACKAGE),
            ("debugfs", ext4::PACKAGE),
            ("tune2fs", ext4::PACKAGE),
        ];
        if config.formats.contains(&Format::Qcow2) {
            tools.push(("qemu-img", qcow2::PACKAGE));
        }
        for (tool, package) in tools {
            if crate::tools::find(tool).is_none() {
                return Err(failed(anyhow!(
                    "{tool} not found: apt-get install {package}"
                )));
            }
        }
        Ok(Inputs {
            init,
            agent,
            kernel,
            modules,
            stub,
            systemd_boot,
            e2fsck,
        })
    }
}

/// How to get the static binaries an image needs, for errors.
const STATIC_FIX: &str = "use the release bundle's binaries (`cargo xtask dist` writes them to \
     target/dist/, beside its husk-image), or build them with \
     `RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
     --target x86_64-unknown-linux-gnu` (target/x86_64-unknown-linux-gnu/release/)";

/// Refuses a binary the kernel cannot start from the initramfs: one that
/// needs a program interpreter (PT_INTERP), or no x86-64 executable at
/// all. A plain `cargo build --release` makes exactly such a husk-init,
/// and the kernel's only word about it is "No working init found".
pub fn need_static(path: &Path, flag: &str) -> Result<(), BuildError> {
    match elf::linking(path) {
        Ok(Linking::Static) => Ok(()),
        Ok(Linking::Dynamic { interpreter }) => Err(failed(anyhow!(
            "{flag} {}: dynamically linked (needs {interpreter}), but the image has no \
             shared libraries and the kernel cannot start it: {STATIC_FIX}",
            path.display()
        ))),
        Err(e) => Err(failed(anyhow!("{flag} {e}: {STATIC_FIX}"))),
    }
}

/// Debian's statically linked e2fsck: init runs it before any library
/// could be loaded from the data partition it checks.
pub const E2FSCK_STATIC: &str = "/sbin/e2fsck.static";
pub const E2FSCK_STATIC_PACKAGE: &str = "e2fsck-static";

/// One file in the output directory, as `manifest.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// `manifest.json`: only what the inputs determine (no paths, no users,
/// no clock).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub name: &'static str,
    pub version: String,
    pub source_date_epoch: u64,
    pub kernel_release: String,
    pub cmdline: String,
    pub artifacts: Vec<Artifact>,
}

/// What a build made, for the summary table and release notes.
#[derive(Debug, Clone)]
pub struct Summary {
    pub out: PathBuf,
    pub version: String,
    pub kernel_release: String,
    pub source_date_epoch: u64,
    pub artifacts: Vec<Artifact>,
    /// Bytes each artifact takes on disk (sparse files take less).
    pub allocated: Vec<u64>,
    pub kernel_bytes: u64,
    pub initramfs: initramfs::InitramfsReport,
    pub zstd_level: i32,
    pub binaries: usize,
    pub steps: Vec<(String, Duration)>,
    pub total: Duration,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "husk {} (kernel {}, SOURCE_DATE_EPOCH={}) in {}/",
            self.version,
            self.kernel_release,
            self.source_date_epoch,
            self.out.display()
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<24} {:>12} {:>14}  on disk",
            "artifact", "size", "bytes"
        )?;
        for (artifact, allocated) in self.artifacts.iter().zip(&self.allocated) {
            let sparse = if *allocated + (1 << 20) < artifact.size {
                format!("  {} (sparse)", mib(*allocated))
            } else {
                String::new()
            };
            writeln!(
                f,
                "{:<24} {:>12} {:>14}{sparse}",
                artifact.file,
                mib(artifact.size),
                artifact.size
            )?;
        }
        writeln!(f)?;
        let r = &self.initramfs;
        writeln!(f, "{:<24} {:>12} {:>14}", "UKI part", "size", "bytes")?;
        let rows = [
            ("kernel".to_owned(), self.kernel_bytes, String::new()),
            (
                format!("initramfs (zstd -{})", self.zstd_level),
                r.compressed_bytes,
                format!("  {} uncompressed", mib(r.uncompressed_bytes)),
            ),
            (
                format!("  modules ({})", r.modules),
                r.modules_bytes,
                String::new(),
            ),
            (
                format!("  binaries ({})", self.binaries),
                r.binaries_bytes,
                String::new(),
            ),
        ];
        for (name, bytes, note) in rows {
            writeln!(f, "{name:<24} {:>12} {bytes:>14}{note}", mib(bytes))?;
        }
        writeln!(f)?;
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(name, d)| format!("{name} {}", seconds(*d)))
            .collect();
        writeln!(
            f,
            "total build time {} ({})",
            seconds(self.total),
            steps.join(", ")
        )
    }
}

/// sha256 of a file, streamed.
fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Hashes the artifacts in `out`, in parallel (the disks are large).
fn describe(out: &Path, files: &[String]) -> anyhow::Result<(Vec<Artifact>, Vec<u64>)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|file| {
                scope.spawn(move || -> anyhow::Result<(Artifact, u64)> {
                    let path = out.join(file);
                    let meta = fs::metadata(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Ok((
                        Artifact {
                            file: file.clone(),
                            size: meta.len(),
                            sha256: sha256_file(&path)?,
                        },
                        meta.blocks() * 512,
                    ))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hashing thread panicked"))
            .collect::<anyhow::Result<Vec<_>>>()
            .map(|v| v.into_iter().unzip())
    })
}

/// Paths the image itself fills, and what sets each: an extra file there
/// would silently replace it.
const OWN_PATHS: [(&str, &str); 7] = [
    ("/init", "--init"),
    (husk_common::paths::AGENT_BIN, "--agent"),
    (husk_common::paths::E2FSCK, "--e2fsck"),
    (husk_common::paths::INIT_CONFIG, "image.toml's init_config"),
    ("/etc/os-release", "image.toml's version"),
    (
        AGENT_CONFIG_GUEST,
        "--agent-config or image.toml's agent_config",
    ),
    (
        UPDATE_ROOT_GUEST,
        "--update-root or image.toml's update_root",
    ),
];

/// The files the user adds to the image — agent.toml, the update root,
/// extra files, from image.toml and the flags (which win) — each read
/// and checked now, so a mistake fails the build, not the machine.
fn image_files(
    args: &BuildArgs,
    config: &Config,
) -> Result<Vec<(PathBuf, String, u32)>, ConfigError> {
    let flag = |path: &Option<PathBuf>, name: &str| {
        path.as_ref().map(|p| Given {
            value: p.clone(),
            origin: Origin::flag(name),
        })
    };
    let read = |given: &Given<PathBuf>| {
        fs::read(&given.value).map_err(|e| {
            given.origin.error(format!(
                "{}: cannot read: {e} (paths in image.toml are relative to its directory)",
                given.value.display()
            ))
        })
    };
    let mut files = Vec::new();

    let agent_config = flag(&args.agent_config, "--agent-config").or(config.agent_config.clone());
    if let Some(given) = agent_config {
        let text = read(&given)?;
        check_agent_config(&given.value, &text)?;
        files.push((given.value, AGENT_CONFIG_GUEST.to_owned(), 0o644));
    }
    let update_root = flag(&args.update_root, "--update-root").or(config.update_root.clone());
    if let Some(given) = update_root {
        let bytes = read(&given)?;
        check_update_root(&bytes).map_err(|e| {
            given
                .origin
                .error(format!("{}: {e}", given.value.display()))
        })?;
        files.push((given.value, UPDATE_ROOT_GUEST.to_owned(), 0o644));
    }

    let flags = args.extra_files.iter().map(|f| Given {
        value: f.clone(),
        origin: Origin::flag("--extra-file"),
    });
    let extra: Vec<Given<ExtraFile>> = config.extra_files.iter().cloned().chain(flags).collect();
    for (i, Given { value, origin }) in extra.iter().enumerate() {
        match fs::metadata(&value.host) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(origin.error(format!("{}: not a file", value.host.display()))),
            Err(e) => {
                return Err(origin.error(format!(
                    "{}: {e} (paths in image.toml are relative to its directory)",
                    value.host.display()
                )));
            }
        }
        let guest = &value.guest;
        if let Some((_, owner)) = OWN_PATHS.iter().find(|(path, _)| path == guest) {
            return Err(origin.error(format!("{guest} is the image's own: set it with {owner}")));
        }
        if let Some(first) = extra[..i].iter().find(|f| f.value.guest == *guest) {
            return Err(origin.error(format!("{guest} is already given by {}", first.origin)));
        }
        files.push((value.host.clone(), guest.clone(), value.mode));
    }
    Ok(files)
}

/// agent.toml's TOML syntax. Its meaning (known sections and keys, valid
/// values) is the agent's to judge at boot: husk-image does not link the
/// agent, and an invalid file keeps the agent from starting, so at least
/// a syntax error fails the build instead.
pub fn check_agent_config(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ConfigError {
        file: path.display().to_string(),
        position: None,
        field: None,
        message: format!("not UTF-8 text: {e}"),
    })?;
    config::check_toml(path, text)
}

/// root.json must be TUF root metadata, as `husk-image repo-init` writes
/// it (parsed with tough, as the agent parses it). Its signatures are
/// the agent's to check, against itself.
pub fn check_update_root(bytes: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<tough::schema::Signed<tough::schema::Root>>(bytes)
        .map(|_| ())
        .map_err(|e| {
            format!("not TUF root metadata (repo/root.json of `husk-image repo-init`): {e}")
        })
}

/// Runs `husk-image build`.
pub fn run(args: &BuildArgs) -> Result<Summary, BuildError> {
    let started = Instant::now();
    let config = match &args.config {
        Some(path) => Config::load(path),
        None => Config::built_in(),
    }
    .map_err(usage)?;
    let epoch = crate::source_date_epoch().map_err(|e| usage(anyhow!(e)))?;
    let init_config = match &config.init_config {
        Some(path) => {
            let text = fs::read_to_string(path).map_err(|e| {
                usage(anyhow!(
                    "init_config {}: {e} (relative paths are from the config file's directory)",
                    path.display()
                ))
            })?;
            config::check_toml(path, &text).map_err(usage)?;
            Some(text)
        }
        None => None,
    };
    let extra_files = image_files(args, &config).map_err(usage)?;
    let out = args
        .out
        .as_deref()
        .ok_or_else(|| usage(anyhow!("--out DIR is required")))?;
    let inputs = Inputs::resolve(args, &config)?;
    fs::create_dir_all(out)
        .with_context(|| format!("creating {}", out.display()))
        .map_err(failed)?;
    // Scratch space beside the artifacts: same filesystem (renames,
    // sparse copies), removed when the build ends, even on failure.
    let scratch = tempfile::Builder::new()
        .prefix(".husk-image-")
        .tempdir_in(out)
        .with_context(|| format!("creating a scratch directory in {}", out.display()))
        .map_err(failed)?;

    let disk_steps = config.formats.iter().filter(|f| **f != Format::Raw).count();
    let mut progress = Progress::new(6 + disk_steps);
    let mut steps = Vec::new();
    let mut files = Vec::new();

    // 1. initramfs
    progress.start("initramfs");
    let mut spec = initramfs::InitramfsSpec::new(
        inputs.init.clone(),
        inputs.agent.clone(),
        inputs.modules.clone(),
    );
    spec.e2fsck = Some(inputs.e2fsck.clone());
    spec.modules = config.modules.clone();
    spec.init_config = init_config;
    spec.extra_files = extra_files;
    spec.os_release = Some(format!(
        "{}HUSK_BUILD_EPOCH={epoch}\n",
        uki::os_release(&config.version)
    ));
    spec.source_date_epoch = epoch;
    spec.zstd_level = config.zstd_level;
    let initramfs_path = out.join("initramfs.img");
    let report = initramfs::build(&spec, &initramfs_path).map_err(failed)?;
    files.push("initramfs.img".to_owned());
    steps.push((
        "initramfs".to_owned(),
        progress.done(&format!(
            "{} ({} modules, zstd -{})",
            mib(report.compressed_bytes),
            report.modules,
            config.zstd_level
        )),
    ));

    // 2. UKI
    progress.start("uki");
    let linux = fs::read(&inputs.kernel)
        .with_context(|| format!("reading the kernel {}", inputs.kernel.display()))
        .map_err(failed)?;
    let initrd = fs::read(&initramfs_path)
        .with_context(|| format!("reading {}", initramfs_path.display()))
        .map_err(failed)?;
    let os_release = uki::os_release(&config.version);
    let image = uki::assemble_from(
        &inputs.stub,
        &uki::UkiSections {
            os_release: &os_release,
            cmdline: &config.cmdline,
            uname: Some(&report.kernel_release),
            initrd: &initrd,
            linux: &linux,
        },
    )
    .with_context(|| format!("kernel {}", inputs.kernel.display()))
    .map_err(failed)?;
    let uki_name = esp::uki_file_name(&config.version, None);
    let uki_path = out.join(&uki_name);
    initramfs::write_atomically(&uki_path, &image).map_err(failed)?;
    files.push(uki_name.clone());
    steps.push((
        "uki".to_owned(),
        progress.done(&format!("{uki_name}, {}", mib(image.len() as u64))),
    ));
    drop((image, initrd));

    // 3. ESP
    progress.start("esp");
    let esp_path = scratch.path().join("esp.img");
    let mut esp_spec = esp::EspSpec::new(
        vec![esp::EspUki {
            version: config.version.clone(),
            path: uki_path.clone(),
        }],
        &config.seed,
        epoch,
    );
    esp_spec.size = config.esp_size;
    esp_spec.systemd_boot = inputs.systemd_boot.clone();
    let esp_report = esp::build(&esp_spec, &esp_path).map_err(failed)?;
    steps.push((
        "esp".to_owned(),
        progress.done(&format!(
            "{} FAT32, {} free",
            mib(config.esp_size),
            mib(esp_report.free_bytes)
        )),
    ));

    // 4. data partition
    progress.start("data");
    let data_path = scratch.path().join("data.ext4");
    let mut data_spec = ext4::Ext4Spec::new(config.data_size, &config.seed, epoch);
    if !args.preload.is_empty() {
        let tree = scratch.path().join("data-root");
        let registry =
            crate::preload::registry_config(args.registry_config.as_deref()).map_err(failed)?;
        crate::preload::store_tree(&args.preload, &registry, &tree, config.data_size)
            .map_err(failed)?;
        data_spec.source = Some(tree);
    }
    ext4::build(&data_spec, &data_path).map_err(failed)?;
    steps.push((
        "data".to_owned(),
        progress.done(&format!(
            "{} ext4 {}",
            mib(config.data_size),
            data_spec.label
        )),
    ));

    // 5. the GPT disk
    let keep_raw = config.formats.contains(&Format::Raw);
    let raw_path = if keep_raw {
        out.join(Format::Raw.file_name())
    } else {
        scratch.path().join(Format::Raw.file_name())
    };
    progress.start(if keep_raw { "disk.raw" } else { "disk" });
    let disk_spec = gpt::DiskSpec {
        seed: config.seed.clone(),
        partitions: vec![
            gpt::PartitionSpec {
                name: "esp".into(),
                type_guid: gpt::ESP_TYPE.parse().expect("a GUID"),
                source: esp_path,
                size: Some(config.esp_size),
            },
            gpt::PartitionSpec {
                name: ext4::DEFAULT_LABEL.into(),
                type_guid: gpt::LINUX_DATA_TYPE.parse().expect("a GUID"),
                source: data_path,
                size: Some(config.data_size),
            },
        ],
        size: config.disk_size,
    };
    let layout = gpt::write_disk(&disk_spec, &raw_path).map_err(failed)?;
    if keep_raw {
        files.push(Format::Raw.file_name().to_owned());
    }
    steps.push((
        "disk".to_owned(),
        progress.done(&format!(
            "{} GPT, disk {}",
            mib(layout.size),
            layout.disk_guid
        )),
    ));

    // 6, 7. the other formats
    for format in config.formats.iter().filter(|f| **f != Format::Raw) {
        let name = format.file_name();
        let path = out.join(name);
        progress.start(name);
        if *format == Format::Qcow2 {
            qcow2::convert(&raw_path, &path, false).map_err(failed)?;
        } else {
            vhd::write_fixed(&raw_path, &path, &config.seed, epoch).map_err(failed)?;
        }
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        files.push(name.to_owned());
        steps.push((name.to_owned(), progress.done(&mib(size))));
    }
    drop(scratch);

    // 8. the manifest
    progress.start("manifest");
    let (artifacts, allocated) = describe(out, &files).map_err(failed)?;
    let manifest = Manifest {
        name: "husk",
        version: config.version.clone(),
        source_date_epoch: epoch,
        kernel_release: report.kernel_release.clone(),
        cmdline: config.cmdline.clone(),
        artifacts: artifacts.clone(),
    };
    let mut json = serde_json::to_string_pretty(&manifest).expect("serializable");
    json.push('\n');
    initramfs::write_atomically(&out.join("manifest.json"), json.as_bytes()).map_err(failed)?;
    steps.push((
        "manifest".to_owned(),
        progress.done(&format!("{} artifacts hashed", artifacts.len())),
    ));
    drop(progress);

    Ok(Summary {
        out: out.to_owned(),
        version: config.version,
        kernel_release: report.kernel_release.clone(),
        source_date_epoch: epoch,
        artifacts,
        allocated,
        kernel_bytes: linux.len() as u64,
        initramfs: report,
        zstd_level: config.zstd_level,
        binaries: 3,
        steps,
        total: started.elapsed(),
    })
}
