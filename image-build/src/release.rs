//! Update repositories: `husk-image keygen`, `repo-init` and `release`.
//!
//! A repository is a TUF repository (the `tough` crate, as Bottlerocket's
//! updater uses) laid out as `metadata/` (root, targets, snapshot,
//! timestamp; consistent snapshots, so a client never mixes two
//! publications) and `targets/` (`<sha256>.<name>`). Its targets are the
//! UKIs and [`husk_release::Manifest`] (`manifest.json`), which lists
//! every release with its channel and the oldest version it may be
//! applied over. Keys are files: ed25519 PKCS#8 (DER) as `keygen` writes,
//! or any PKCS#8 key tough reads (ECDSA P-256, RSA).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::num::NonZeroU64;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use husk_release::{
    MANIFEST_TARGET, Manifest, Release, check_version, hex, version_from_os_release,
};
use sha2::{Digest, Sha256};
use tough::editor::RepositoryEditor;
use tough::editor::signed::{PathExists, SignedRole};
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root, Target};
use tough::{ExpirationEnforcement, FilesystemTransport, RepositoryLoader, TargetName};
use url::Url;

use crate::uki;

/// The TUF roles, in the order `repo-init` takes their keys.
const ROLES: [RoleType; 4] = [
    RoleType::Root,
    RoleType::Targets,
    RoleType::Snapshot,
    RoleType::Timestamp,
];

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    // Not a `source`: the message already says it, and anyhow's `{:#}`
    // would say it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0} exists: refusing to overwrite a key")]
    KeyExists(PathBuf),
    #[error("generating a key: {0}")]
    Keygen(String),
    #[error("key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{role} needs at least one key")]
    NoKey { role: String },
    #[error("{role}: threshold {threshold} needs at least as many keys (it has {keys})")]
    Threshold {
        role: String,
        threshold: u64,
        keys: usize,
    },
    #[error("{0} already holds a repository (metadata/1.root.json)")]
    RepoExists(PathBuf),
    #[error("loading the repository {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("signing: {0}")]
    Sign(String),
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |error| ReleaseError::Io {
        path: path.to_owned(),
        error,
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ReleaseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io(Path::new("tokio runtime")))
}

/// Writes a new ed25519 key (PKCS#8 v2, DER) to `out`, readable by its
/// owner only; never overwrites. Returns its TUF key id.
pub fn keygen(out: &Path) -> Result<String, ReleaseError> {
    let rng = SystemRandom::new();
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| ReleaseError::Keygen(e.to_string()))?;
    // `keygen --out keys/root.key` on a fresh checkout: the directory is
    // made, private like the keys.
    if let Some(dir) = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ReleaseError::KeyExists(out.to_owned()),
            _ => ReleaseError::Io {
                path: out.to_owned(),
                error: e,
            },
        })?;
    file.write_all(pkcs8.as_ref())
        .and_then(|()| file.sync_all())
        .map_err(io(out))?;
    key_id(out)
}

/// The TUF key id of the key in `path`.
pub fn key_id(path: &Path) -> Result<String, ReleaseError> {
    let rt = runtime()?;
    let (id, _) = rt.block_on(tuf_key(path))?;
    Ok(hex(&id))
}

async fn tuf_key(
    path: &Path,
) -> Result<
    (
        tough::schema::decoded::Decoded<tough::schema::decoded::Hex>,
        tough::schema::key::Key,
    ),
    ReleaseError,
> {
    let bad = |message: String| ReleaseError::Key {
        path: path.to_owned(),
        message,
    };
    let source = LocalKeySource {
        path: path.to_owned(),
    };
    let sign = source.as_sign().await.map_err(|e| bad(e.to_string()))?;
    let key = sign.tuf_key();
    let id = key.key_id().map_err(|e| bad(e.to_string()))?;
    Ok((id, key))
}

/// `repo-init`: the keys of each role and their thresholds.
#[derive(Debug, Clone)]
pub struct RepoInit {
    pub repo: PathBuf,
    /// Per role, in [`ROLES`] order: its key files.
    pub keys: [Vec<PathBuf>; 4],
    /// Per role: signatures needed.
    pub thresholds: [u64; 4],
    pub expires: jiff::Timestamp,
}

/// Creates a repository: `metadata/1.root.json` (signed by the root
/// keys) and `root.json` beside it, the copy to pin in images, plus an
/// empty manifest signed by the other roles.
pub fn repo_init(init: &RepoInit, targets_expires: jiff::Timestamp) -> Result<(), ReleaseError> {
    let metadata = init.repo.join("metadata");
    if metadata.join("1.root.json").exists() {
        return Err(ReleaseError::RepoExists(init.repo.clone()));
    }
    let rt = runtime()?;
    rt.block_on(async {
        let mut root = Root {
            spec_version: "1.0.0".to_owned(),
            consistent_snapshot: true,
            version: NonZeroU64::MIN,
            expires: init.expires,
            keys: HashMap::new(),
            roles: HashMap::new(),
            _extra: HashMap::new(),
        };
        for ((role, paths), threshold) in ROLES.iter().zip(&init.keys).zip(init.thresholds) {
            let name = format!("{role:?}").to_lowercase();
            if paths.is_empty() {
                return Err(ReleaseError::NoKey { role: name });
            }
            if threshold == 0 || threshold > paths.len() as u64 {
                return Err(ReleaseError::Threshold {
                    role: name,
                    threshold,
                    keys: paths.len(),
                });
            }
            let mut keyids = Vec::new();
            for path in paths {
                let (id, key) = tuf_key(path).await?;
                root.keys.insert(id.clone(), key);
                if !keyids.contains(&id) {
                    keyids.push(id);
                }
            }
            root.roles.insert(
                *role,
                RoleKeys {
                    keyids,
                    threshold: NonZeroU64::new(threshold).unwrap_or(NonZeroU64::MIN),
                    _extra: HashMap::new(),
                },
            );
        }
        let sources = key_sources(&init.keys[0]);
        let signed = SignedRole::new(
            root.clone(),
            &KeyHolder::Root(root),
            &sources,
            &SystemRandom::new(),
        )
        .await
        .map_err(|e| ReleaseError::Sign(e.to_string()))?;
        signed
            .write(&metadata, true)
            .await
            .map_err(|e| ReleaseError::Sign(e.to_string()))?;
        fs::write(init.repo.join("root.json"), signed.buffer()).map_err(io(&init.repo))?;
        Ok(())
    })?;
    // An empty manifest, so clients see a valid repository at once.
    let all_keys: Vec<PathBuf> = init.keys[1..].iter().flatten().cloned().collect();
    publish(
        &init.repo,
        &all_keys,
        None,
        Manifest::default(),
        targets_expires,
    )
}

fn key_sources(paths: &[PathBuf]) -> Vec<Box<dyn KeySource>> {
    paths
        .iter()
        .map(|path| Box::new(LocalKeySource { path: path.clone() }) as Box<dyn KeySource>)
        .collect()
}

/// `release`: one UKI into a channel.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub repo: PathBuf,
    pub uki: PathBuf,
    pub channel: String,
    /// The oldest version the release may be applied over.
    pub min_version: Option<String>,
    /// The keys of targets, snapshot and timestamp.
    pub keys: Vec<PathBuf>,
    pub expires: jiff::Timestamp,
}

/// The version a UKI declares in its os-release (`IMAGE_VERSION`, else
/// `VERSION_ID`).
pub fn uki_version(image: &[u8]) -> Result<String, ReleaseError> {
    let sections = uki::sections(image).map_err(|e| ReleaseError::Invalid(e.to_string()))?;
    let osrel = sections
        .iter()
        .find(|s| s.name == ".osrel")
        .and_then(|s| s.data(image))
        .ok_or_else(|| ReleaseError::Invalid("the UKI has no .osrel section".into()))?;
    let version = version_from_os_release(&String::from_utf8_lossy(osrel))
        .ok_or_else(|| ReleaseError::Invalid("the UKI's os-release has no version".into()))?;
    check_version(&version).map_err(ReleaseError::Invalid)?;
    Ok(version)
}

/// Adds a release: the UKI as `husk-<version>.efi` and a manifest listing
/// it beside the earlier releases, with every role re-signed.
pub fn release(new: &NewRelease) -> Result<Release, ReleaseError> {
    let image = fs::read(&new.uki).map_err(io(&new.uki))?;
    let version = uki_version(&image)?;
    if let Some(min) = &new.min_version {
        check_version(min).map_err(|e| ReleaseError::Invalid(format!("--min-version: {e}")))?;
    }
    let manifest = load_manifest(&new.repo)?;
    if manifest.find(&new.channel, &version).is_some() {
        return Err(ReleaseError::Invalid(format!(
            "version {version} is already released in channel {}",
            new.channel
        )));
    }
    let release = Release {
        version: version.clone(),
        channel: new.channel.clone(),
        min_version: new.min_version.clone(),
        target: format!("husk-{version}.efi"),
        sha256: hex(&Sha256::digest(&image)),
        size: image.len() as u64,
    };
    let mut manifest = manifest;
    manifest.releases.push(release.clone());
    // Check what clients will check before anything is published.
    Manifest::parse(manifest.to_json().as_bytes())
        .map_err(|e| ReleaseError::Invalid(e.to_string()))?;
    publish(
        &new.repo,
        &new.keys,
        Some((&new.uki, &release.target)),
        manifest,
        new.expires,
    )?;
    Ok(release)
}

fn metadata_url(repo: &Path) -> Result<(Url, Url), ReleaseError> {
    let absolute = fs::canonicalize(repo).map_err(io(repo))?;
    let dir = |sub: &str| {
        Url::from_directory_path(absolute.join(sub))
            .map_err(|()| ReleaseError::Invalid(format!("{} is not a path", repo.display())))
    };
    Ok((dir("metadata")?, dir("targets")?))
}

async fn load(repo: &Path) -> Result<tough::Repository, ReleaseError> {
    let root = fs::read(repo.join("root.json")).map_err(io(&repo.join("root.json")))?;
    let (metadata, targets) = metadata_url(repo)?;
    // The publisher may be renewing expired metadata: expiry is the
    // clients' check.
    RepositoryLoader::new(&root, metadata, targets)
        .transport(FilesystemTransport)
        .expiration_enforcement(ExpirationEnforcement::Unsafe)
        .load()
        .await
        .map_err(|e| ReleaseError::Load {
            path: repo.to_owned(),
            message: e.to_string(),
        })
}

/// The repository's manifest (empty for a repository without one).
pub fn load_manifest(repo: &Path) -> Result<Manifest, ReleaseError> {
    runtime()?.block_on(async {
        let repository = load(repo).await?;
        let name =
            TargetName::new(MANIFEST_TARGET).map_err(|e| ReleaseError::Invalid(e.to_string()))?;
        let Some(stream) = repository
            .read_target(&name)
            .await
            .map_err(|e| ReleaseError::Invalid(e.to_string()))?
        else {
            return Ok(Manifest::default());
        };
        use tough::IntoVec;
        let bytes = stream
            .into_vec()
            .await
            .map_err(|e| ReleaseError::Invalid(e.to_string()))?;
        Manifest::parse(&bytes).map_err(|e| ReleaseError::Invalid(e.to_string()))
    })
}

/// Signs and writes a new publication: the manifest, optionally a UKI,
/// every role one version up. Targets first, metadata last, the
/// timestamp very last: a client reading mid-publication sees the old
/// timestamp, which names only files that are still there.
fn publish(
    repo: &Path,
    keys: &[PathBuf],
    uki: Option<(&Path, &str)>,
    manifest: Manifest,
    expires: jiff::Timestamp,
) -> Result<(), ReleaseError> {
    let staging = tempfile::tempdir_in(repo).map_err(io(repo))?;
    let manifest_path = staging.path().join(MANIFEST_TARGET);
    fs::write(&manifest_path, manifest.to_json()).map_err(io(&manifest_path))?;
    let sign_err = |e: tough::error::Error| ReleaseError::Sign(e.to_string());
    runtime()?.block_on(async {
        let root_path = repo.join("root.json");
        let (mut editor, next) = if repo.join("metadata/timestamp.json").exists() {
            let repository = load(repo).await?;
            let next = |v: NonZeroU64| v.saturating_add(1);
            let versions = (
                next(repository.targets().signed.version),
                next(repository.snapshot().signed.version),
                next(repository.timestamp().signed.version),
            );
            let editor = RepositoryEditor::from_repo(&root_path, repository)
                .await
                .map_err(sign_err)?;
            (editor, versions)
        } else {
            let editor = RepositoryEditor::new(&root_path).await.map_err(sign_err)?;
            (editor, (NonZeroU64::MIN, NonZeroU64::MIN, NonZeroU64::MIN))
        };
        let mut targets: Vec<(PathBuf, TargetName)> = Vec::new();
        let manifest_name =
            TargetName::new(MANIFEST_TARGET).map_err(|e| ReleaseError::Invalid(e.to_string()))?;
        targets.push((manifest_path.clone(), manifest_name));
        if let Some((path, name)) = uki {
            let name = TargetName::new(name).map_err(|e| ReleaseError::Invalid(e.to_string()))?;
            targets.push((path.to_owned(), name));
        }
        for (path, name) in &targets {
            let target = Target::from_path(path)
                .await
                .map_err(|e| ReleaseError::Sign(e.to_string()))?;
            editor.add_target(name.clone(), target).map_err(sign_err)?;
        }
        editor
            .targets_version(next.0)
            .map_err(sign_err)?
            .targets_expires(expires)
            .map_err(sign_err)?
            .snapshot_version(next.1)
            .snapshot_expires(expires)
            .timestamp_version(next.2)
            .timestamp_expires(expires);
        let signed = editor.sign(&key_sources(keys)).await.map_err(sign_err)?;
        let targets_dir = repo.join("targets");
        fs::create_dir_all(&targets_dir).map_err(io(&targets_dir))?;
        for (path, name) in &targets {
            signed
                .copy_target(path, &targets_dir, PathExists::Skip, Some(name))
                .await
                .map_err(sign_err)?;
        }
        signed
            .write(repo.join("metadata"))
            .await
            .map_err(sign_err)?;
        Ok(())
    })
}
