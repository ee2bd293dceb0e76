//! `husk-image trust-tag`: signs which digest a tag means now into a tag
//! repository, what [`husk_registry::trust::tags::trusted_digest`]
//! checks on the machine.
//!
//! A tag repository is an update repository as `repo-init` makes it
//! (its empty release manifest is harmless): each tag is a target named
//! [`target_name`] whose content is `sha256:<hex>\n`. Trusting a tag
//! again with another digest moves it. Every publication re-signs
//! targets, snapshot and timestamp one version up, with the keys and
//! expiry `release` takes; running it again before the metadata expires
//! (with the tags as they are) is how a publisher keeps them fresh.

use std::fs;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use husk_registry::Reference;
use husk_registry::trust::tags::target_name;
use tough::editor::RepositoryEditor;
use tough::editor::signed::PathExists;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::Target;
use tough::{ExpirationEnforcement, FilesystemTransport, IntoVec, RepositoryLoader, TargetName};
use url::Url;

use crate::release::ReleaseError;

/// Signs which digest a tag means now into a tag repository.
///
/// The repository is one repo-init made. Each REF@sha256:<hex> adds REF's
/// tag, or moves it from the digest it meant; the targets, snapshot and
/// timestamp metadata are re-signed one version up. Machines refuse every
/// tag once the metadata expires: to keep them fresh, run trust-tag again
/// before then (a tag with the digest it already has will do).
#[derive(clap::Args)]
pub struct TrustTagArgs {
    /// The repository directory (made by repo-init).
    #[arg(long)]
    pub repo: PathBuf,
    /// Keys of the targets, snapshot and timestamp roles (repeatable).
    #[arg(long = "key", required = true)]
    pub keys: Vec<PathBuf>,
    /// Days until the new metadata expires (negative: already expired,
    /// for tests of clients).
    #[arg(long, default_value_t = 7, allow_negative_numbers = true)]
    pub expires_days: i32,
    /// An image reference with both a tag and a digest:
    /// `registry.example/team/app:1@sha256:<hex>` (repeatable).
    #[arg(required = true, value_name = "REF@sha256:<hex>")]
    pub tags: Vec<String>,
}

/// `trust-tag`: tags into the repository.
#[derive(Debug, Clone)]
pub struct TrustTag {
    pub repo: PathBuf,
    /// The keys of targets, snapshot and timestamp.
    pub keys: Vec<PathBuf>,
    pub expires: jiff::Timestamp,
    /// References with a tag and a digest.
    pub tags: Vec<Reference>,
}

/// A tag as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    /// Its TUF target name.
    pub target: String,
    pub digest: String,
    /// What it meant before, if it was in the repository.
    pub previous: Option<String>,
}

/// The publication's versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub targets: NonZeroU64,
    pub snapshot: NonZeroU64,
    pub timestamp: NonZeroU64,
}

pub fn run(args: &TrustTagArgs) -> Result<()> {
    let mut tags = Vec::new();
    for text in &args.tags {
        let reference = Reference::parse(text)?;
        if reference.tag.is_none() || reference.digest.is_none() {
            bail!("{text}: needs both a tag and a digest (`REPOSITORY:TAG@sha256:<hex>`)");
        }
        tags.push(reference);
    }
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(
            i64::from(args.expires_days) * 24,
        ))
        .context("expiry out of range")?;
    let (trusted, versions) = trust_tag(&TrustTag {
        repo: args.repo.clone(),
        keys: args.keys.clone(),
        expires,
        tags,
    })?;
    for tag in &trusted {
        match &tag.previous {
            None => println!("{} → {} (new)", tag.target, tag.digest),
            Some(previous) if *previous == tag.digest => {
                println!("{} → {} (unchanged)", tag.target, tag.digest);
            }
            Some(previous) => println!("{} → {} (was {previous})", tag.target, tag.digest),
        }
    }
    println!(
        "{}: signed targets v{}, snapshot v{}, timestamp v{}; expires {}",
        args.repo.display(),
        versions.targets,
        versions.snapshot,
        versions.timestamp,
        expires.round(jiff::Unit::Second).unwrap_or(expires)
    );
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |error| ReleaseError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Adds or moves `trust.tags` and re-signs targets, snapshot and
/// timestamp one version up. Nothing is written unless everything was
/// signed; the timestamp is written last, as `release` does.
pub fn trust_tag(trust: &TrustTag) -> Result<(Vec<Trusted>, Versions), ReleaseError> {
    let invalid = |message: String| ReleaseError::Invalid(message);
    if trust.tags.is_empty() {
        return Err(invalid("no tags to trust".into()));
    }
    let mut wanted: Vec<(TargetName, String)> = Vec::new();
    for reference in &trust.tags {
        let (Some(_), Some(digest)) = (&reference.tag, &reference.digest) else {
            return Err(invalid(format!(
                "{reference}: needs both a tag and a digest"
            )));
        };
        let name = TargetName::new(target_name(reference)).map_err(|e| invalid(e.to_string()))?;
        match wanted.iter().find(|(n, _)| *n == name) {
            Some((_, other)) if other != digest => {
                return Err(invalid(format!(
                    "{}: given twice, as {other} and {digest}",
                    name.raw()
                )));
            }
            Some(_) => {}
            None => wanted.push((name, digest.clone())),
        }
    }
    if !trust.repo.join("metadata/timestamp.json").exists() {
        return Err(invalid(format!(
            "{}: no repository here (make one with `husk-image repo-init`)",
            trust.repo.display()
        )));
    }
    let staging = tempfile::tempdir_in(&trust.repo).map_err(io(&trust.repo))?;
    let sign_err = |e: tough::error::Error| ReleaseError::Sign(e.to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io(Path::new("tokio runtime")))?;
    runtime.block_on(async {
        let repository = load(&trust.repo).await?;
        let mut trusted = Vec::new();
        for (name, digest) in &wanted {
            trusted.push(Trusted {
                target: name.raw().to_owned(),
                digest: digest.clone(),
                previous: current_digest(&repository, name).await,
            });
        }
        let next = |v: NonZeroU64| v.saturating_add(1);
        let versions = Versions {
            targets: next(repository.targets().signed.version),
            snapshot: next(repository.snapshot().signed.version),
            timestamp: next(repository.timestamp().signed.version),
        };
        let root_path = trust.repo.join("root.json");
        let mut editor = RepositoryEditor::from_repo(&root_path, repository)
            .await
            .map_err(sign_err)?;
        let mut files = Vec::new();
        for (i, (name, digest)) in wanted.iter().enumerate() {
            let path = staging.path().join(i.to_string());
            fs::write(&path, format!("{digest}\n")).map_err(io(&path))?;
            let target = Target::from_path(&path)
                .await
                .map_err(|e| ReleaseError::Sign(e.to_string()))?;
            editor.add_target(name.clone(), target).map_err(sign_err)?;
            files.push((path, name));
        }
        editor
            .targets_version(versions.targets)
            .map_err(sign_err)?
            .targets_expires(trust.expires)
            .map_err(sign_err)?
            .snapshot_version(versions.snapshot)
            .snapshot_expires(trust.expires)
            .timestamp_version(versions.timestamp)
            .timestamp_expires(trust.expires);
        let sources: Vec<Box<dyn KeySource>> = trust
            .keys
            .iter()
            .map(|path| Box::new(LocalKeySource { path: path.clone() }) as Box<dyn KeySource>)
            .collect();
        let signed = editor.sign(&sources).await.map_err(sign_err)?;
        let targets_dir = trust.repo.join("targets");
        fs::create_dir_all(&targets_dir).map_err(io(&targets_dir))?;
        for (path, name) in &files {
            signed
                .copy_target(path, &targets_dir, PathExists::Skip, Some(name))
                .await
                .map_err(sign_err)?;
        }
        signed
            .write(trust.repo.join("metadata"))
            .await
            .map_err(sign_err)?;
        Ok((trusted, versions))
    })
}

/// The repository as it is, expired or not: the publisher may be
/// renewing it (expiry is the clients' check).
async fn load(repo: &Path) -> Result<tough::Repository, ReleaseError> {
    let root_path = repo.join("root.json");
    let root = fs::read(&root_path).map_err(io(&root_path))?;
    let absolute = fs::canonicalize(repo).map_err(io(repo))?;
    let dir = |sub: &str| {
        Url::from_directory_path(absolute.join(sub))
            .map_err(|()| ReleaseError::Invalid(format!("{} is not a path", repo.display())))
    };
    RepositoryLoader::new(&root, dir("metadata")?, dir("targets")?)
        .transport(FilesystemTransport)
        .expiration_enforcement(ExpirationEnforcement::Unsafe)
        .load()
        .await
        .map_err(|e| ReleaseError::Load {
            path: repo.to_owned(),
            message: e.to_string(),
        })
}

/// What the repository says `name` means, if it lists it.
async fn current_digest(repository: &tough::Repository, name: &TargetName) -> Option<String> {
    let stream = repository.read_target(name).await.ok()??;
    let bytes = stream.into_vec().await.ok()?;
    let text = String::from_utf8(bytes).ok()?;
    Some(text.trim_end().to_owned())
}
