//! The update repository, through TUF: root of trust pinned in the image,
//! signatures and thresholds, expiry, version rollback (the last trusted
//! metadata is kept in a datastore on the data partition), lengths and
//! hashes; then the release manifest, and where a release's UKI is.

use std::path::Path;

use husk_release::{MANIFEST_TARGET, Manifest, Release, hex};
use tough::schema::Target;
use tough::{IntoVec, Repository, RepositoryLoader, TargetName};
use url::Url;

use super::UpdateError;

/// The largest manifest accepted.
const MAX_MANIFEST: u64 = 1 << 20;

/// A verified view of the repository.
#[derive(Debug)]
pub struct Repo {
    repository: Repository,
    targets_base: Url,
}

/// Where a release's UKI is, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UkiTarget {
    pub url: Url,
    pub size: u64,
    pub sha256: String,
}

impl UkiTarget {
    /// The signed length and digest.
    pub fn digest(&self) -> super::hashing::Digest {
        super::hashing::Digest {
            size: self.size,
            sha256: self.sha256.clone(),
        }
    }
}

fn base_url(repository: &str) -> Result<Url, UpdateError> {
    let mut text = repository.to_owned();
    if !text.ends_with('/') {
        text.push('/');
    }
    Url::parse(&text)
        .map_err(|e| UpdateError::Config(format!("update.repository {repository:?}: {e}")))
}

impl Repo {
    /// Loads and verifies the repository's metadata, trusting `root`.
    pub async fn load(
        repository: &str,
        root: &Path,
        datastore: &Path,
    ) -> Result<Self, UpdateError> {
        let root_bytes = std::fs::read(root).map_err(|e| {
            UpdateError::Config(format!("the pinned root metadata {}: {e}", root.display()))
        })?;
        let base = base_url(repository)?;
        let join = |sub: &str| {
            base.join(sub)
                .map_err(|e| UpdateError::Config(format!("update.repository: {e}")))
        };
        let (metadata_base, targets_base) = (join("metadata/")?, join("targets/")?);
        std::fs::create_dir_all(datastore)
            .map_err(|e| UpdateError::Io(format!("{}: {e}", datastore.display())))?;
        let repository = RepositoryLoader::new(&root_bytes, metadata_base, targets_base.clone())
            .transport(husk_registry::tuf::TufTransport::new(
                crate::http_client::shared().map_err(|e| UpdateError::Io(e.to_string()))?,
            ))
            .datastore(datastore)
            .load()
            .await
            .map_err(|e| UpdateError::Refused(husk_registry::http::error_chain(&e)))?;
        Ok(Self {
            repository,
            targets_base,
        })
    }

    /// The signed targets metadata's entry for `name`.
    fn signed_target(&self, name: &str) -> Result<(TargetName, &Target), UpdateError> {
        let name = TargetName::new(name).map_err(|e| UpdateError::Refused(e.to_string()))?;
        let target = self
            .repository
            .targets()
            .signed
            .targets
            .get(&name)
            .ok_or_else(|| {
                UpdateError::Refused(format!("{} is not in the signed targets", name.raw()))
            })?;
        Ok((name, target))
    }

    /// The release manifest (verified by TUF: length and hash).
    pub async fn manifest(&self) -> Result<Manifest, UpdateError> {
        let (name, target) = self.signed_target(MANIFEST_TARGET)?;
        if target.length > MAX_MANIFEST {
            return Err(UpdateError::Refused(format!(
                "manifest.json is {} bytes (at most {MAX_MANIFEST})",
                target.length
            )));
        }
        let stream = self
            .repository
            .read_target(&name)
            .await
            .map_err(|e| UpdateError::Refused(husk_registry::http::error_chain(&e)))?
            .ok_or_else(|| UpdateError::Refused("the repository has no manifest.json".into()))?;
        let bytes = stream
            .into_vec()
            .await
            .map_err(|e| UpdateError::Refused(husk_registry::http::error_chain(&e)))?;
        Manifest::parse(&bytes).map_err(|e| UpdateError::Refused(e.to_string()))
    }

    /// Where `release`'s UKI is; its length and digest as the signed
    /// targets metadata gives them, which the manifest must agree with.
    pub fn uki(&self, release: &Release) -> Result<UkiTarget, UpdateError> {
        let (_, target) = self.signed_target(&release.target).map_err(|e| match e {
            UpdateError::Refused(why) => {
                UpdateError::Refused(format!("release {}: {why}", release.version))
            }
            other => other,
        })?;
        let sha256 = hex(&target.hashes.sha256);
        if sha256 != release.sha256.to_ascii_lowercase() || target.length != release.size {
            return Err(UpdateError::Refused(format!(
                "release {}: the manifest's digest or size disagrees with the signed targets",
                release.version
            )));
        }
        // Consistent snapshots name targets `<sha256>.<name>`.
        let file = if self.repository.root().signed.consistent_snapshot {
            format!("{sha256}.{}", release.target)
        } else {
            release.target.clone()
        };
        let url = self
            .targets_base
            .join(&file)
            .map_err(|e| UpdateError::Refused(format!("target {file}: {e}")))?;
        Ok(UkiTarget {
            url,
            size: target.length,
            sha256,
        })
    }
}
