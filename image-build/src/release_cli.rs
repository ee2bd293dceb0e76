//! The command line of `husk-image keygen | repo-init | release`.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};

use crate::release::{self, NewRelease, RepoInit};

/// Writes a new ed25519 signing key (PKCS#8 DER, mode 0600) and prints
/// its TUF key id.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key; an existing file is never overwritten.
    #[arg(long)]
    pub out: PathBuf,
}

/// Creates an update repository: metadata/1.root.json and root.json (the
/// copy to pin in images), signed by the root keys.
#[derive(clap::Args)]
pub struct RepoInitArgs {
    /// The repository directory.
    #[arg(long)]
    pub repo: PathBuf,
    /// A root key (repeatable: several keys, with --threshold root=N).
    #[arg(long = "root-key", required = true)]
    pub root: Vec<PathBuf>,
    /// A targets key (repeatable).
    #[arg(long = "targets-key", required = true)]
    pub targets: Vec<PathBuf>,
    /// A snapshot key (repeatable).
    #[arg(long = "snapshot-key", required = true)]
    pub snapshot: Vec<PathBuf>,
    /// A timestamp key (repeatable).
    #[arg(long = "timestamp-key", required = true)]
    pub timestamp: Vec<PathBuf>,
    /// Signatures a role needs, as ROLE=N (repeatable; default 1 each).
    #[arg(long = "threshold", value_name = "ROLE=N")]
    pub thresholds: Vec<String>,
    /// Days until root.json expires.
    #[arg(long, default_value_t = 365)]
    pub root_expires_days: u32,
    /// Days until the other metadata expires.
    #[arg(long, default_value_t = 7)]
    pub expires_days: u32,
}

/// Signs a UKI into the repository as a release of a channel.
#[derive(clap::Args)]
pub struct ReleaseArgs {
    /// The repository directory (made by repo-init).
    #[arg(long)]
    pub repo: PathBuf,
    /// The UKI (husk-<version>.efi from husk-image build); its version
    /// is read from its os-release.
    #[arg(long)]
    pub uki: PathBuf,
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// The oldest version this release may be applied over.
    #[arg(long)]
    pub min_version: Option<String>,
    /// Keys of the targets, snapshot and timestamp roles (repeatable).
    #[arg(long = "key", required = true)]
    pub keys: Vec<PathBuf>,
    /// Days until the new metadata expires (negative: already expired,
    /// for tests of clients).
    #[arg(long, default_value_t = 7, allow_negative_numbers = true)]
    pub expires_days: i32,
}

fn days_from_now(days: i64) -> Result<jiff::Timestamp> {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(days * 24))
        .context("expiry out of range")
}

pub fn keygen(args: &KeygenArgs) -> Result<()> {
    let id = release::keygen(&args.out)?;
    println!("{}: key id {id}", args.out.display());
    Ok(())
}

pub fn repo_init(args: &RepoInitArgs) -> Result<()> {
    let mut thresholds = [1u64; 4];
    for spec in &args.thresholds {
        let (role, n) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--threshold {spec}: use ROLE=N"))?;
        let index = ["root", "targets", "snapshot", "timestamp"]
            .iter()
            .position(|r| *r == role)
            .ok_or_else(|| anyhow!("--threshold {spec}: no role {role:?}"))?;
        thresholds[index] = n
            .parse()
            .map_err(|_| anyhow!("--threshold {spec}: {n:?} is not a number"))?;
    }
    let init = RepoInit {
        repo: args.repo.clone(),
        keys: [
            args.root.clone(),
            args.targets.clone(),
            args.snapshot.clone(),
            args.timestamp.clone(),
        ],
        thresholds,
        expires: days_from_now(args.root_expires_days.into())?,
    };
    release::repo_init(&init, days_from_now(args.expires_days.into())?)?;
    println!(
        "{}: repository created; pin {} in images",
        args.repo.display(),
        args.repo.join("root.json").display()
    );
    Ok(())
}

pub fn release(args: &ReleaseArgs) -> Result<()> {
    if args.channel.is_empty() || args.channel.contains(['/', ' ']) {
        bail!("--channel {:?} is not a name", args.channel);
    }
    let released = release::release(&NewRelease {
        repo: args.repo.clone(),
        uki: args.uki.clone(),
        channel: args.channel.clone(),
        min_version: args.min_version.clone(),
        keys: args.keys.clone(),
        expires: days_from_now(args.expires_days.into())?,
    })?;
    println!(
        "released {} to {} ({} bytes, sha256 {})",
        released.version, args.channel, released.size, released.sha256
    );
    Ok(())
}
