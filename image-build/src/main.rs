use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use husk_image::build::{self, BuildArgs};
use husk_image::{initramfs, kernel, release_cli, trust_tag};

/// Builds Husk images, unprivileged and reproducibly.
///
/// Timestamps come from SOURCE_DATE_EPOCH (0 when unset), never from the
/// clock, so the same inputs give the same bytes.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Build(BuildArgs),
    /// Build the initramfs only: husk-init as /init, the agent, the kernel
    /// modules the image needs (with their dependencies) and init.toml.
    Initramfs(InitramfsArgs),
    Keygen(release_cli::KeygenArgs),
    RepoInit(release_cli::RepoInitArgs),
    Release(release_cli::ReleaseArgs),
    TrustTag(trust_tag::TrustTagArgs),
}

#[derive(clap::Args)]
struct InitramfsArgs {
    /// husk-init binary (statically linked).
    #[arg(long)]
    init: PathBuf,
    /// husk-agent binary (statically linked).
    #[arg(long)]
    agent: PathBuf,
    /// Kernel whose modules to ship [default: the newest
    /// /boot/vmlinuz-*-cloud-amd64]; its modules come from
    /// /lib/modules/<release> unless --modules is given.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// The kernel's module tree (a /lib/modules/<release> directory).
    #[arg(long)]
    modules: Option<PathBuf>,
    /// Another module to ship, besides the defaults (repeatable).
    #[arg(long = "module", value_name = "NAME")]
    extra_modules: Vec<String>,
    /// init.toml to install as /etc/husk/init.toml [default: built in].
    #[arg(long)]
    init_config: Option<PathBuf>,
    /// zstd compression level (1-22).
    #[arg(long, default_value_t = initramfs::DEFAULT_ZSTD_LEVEL, value_parser = clap::value_parser!(i32).range(1..=22))]
    zstd_level: i32,
    /// Where to write the image.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Build(args) if args.print_config => {
            print!("{}", husk_image::config::DEFAULT_CONFIG);
            ExitCode::SUCCESS
        }
        Command::Build(args) => match build::run(&args) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("husk-image: error: {error}");
                ExitCode::from(error.exit_code())
            }
        },
        Command::Keygen(args) => report(release_cli::keygen(&args)),
        Command::RepoInit(args) => report(release_cli::repo_init(&args)),
        Command::Release(args) => report(release_cli::release(&args)),
        Command::TrustTag(args) => report(trust_tag::run(&args)),
        Command::Initramfs(args) => match build_initramfs(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("husk-image: error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn report(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("husk-image: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn build_initramfs(args: InitramfsArgs) -> Result<()> {
    let modules_dir = match (&args.modules, &args.kernel) {
        (Some(dir), _) => dir.clone(),
        (None, Some(kernel)) => kernel::modules_dir_for(kernel).ok_or_else(|| {
            anyhow!(
                "{}: not named vmlinuz-<release>; pass --modules",
                kernel.display()
            )
        })?,
        (None, None) => kernel::default_modules_dir().ok_or_else(|| {
            anyhow!(
                "no kernel found in /boot: install {} or pass --kernel/--modules",
                kernel::KERNEL_PACKAGE
            )
        })?,
    };
    for (path, flag) in [(&args.init, "--init"), (&args.agent, "--agent")] {
        build::need_static(path, flag).map_err(|e| anyhow!("{e}"))?;
    }
    let mut spec = initramfs::InitramfsSpec::new(args.init, args.agent, modules_dir);
    spec.modules = args.extra_modules;
    spec.zstd_level = args.zstd_level;
    spec.source_date_epoch = husk_image::source_date_epoch().map_err(|e| anyhow!(e))?;
    if let Some(path) = &args.init_config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        spec.init_config = Some(text);
    }
    let report = initramfs::build(&spec, &args.out)?;
    println!(
        "{}: {} bytes (zstd -{}; {} uncompressed): kernel {}, {} modules ({} bytes), binaries {} bytes",
        args.out.display(),
        report.compressed_bytes,
        args.zstd_level,
        report.uncompressed_bytes,
        report.kernel_release,
        report.modules,
        report.modules_bytes,
        report.binaries_bytes
    );
    Ok(())
}
