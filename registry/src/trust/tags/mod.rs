//! Trusted tags: what Docker Content Trust promised, on the OS updates'
//! TUF machinery. A tag repository is a TUF repository (made with
//! `husk-image repo-init`, filled with `husk-image trust-tag`) whose
//! targets say which digest a tag means now: the target
//! [`target_name`]`(reference)` holds `sha256:<hex>\n` and nothing else.
//!
//! [`trusted_digest`] loads it as the update agent loads its repository:
//! the root pinned on the machine, signatures and thresholds, expiry of
//! every role (so a tag that is no longer vouched for stops resolving
//! when its timestamp lapses: freshness), no rollback to metadata older
//! than what the datastore has seen, and the target's length and hash.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use tough::schema::RoleType;
use tough::{IntoVec, RepositoryLoader, TargetName, TransportError};
use url::Url;

use crate::http::{HttpClient, HttpError};
use crate::reference::Reference;
use crate::tuf::TufTransport;

/// Where target names of tags start.
pub const TARGET_PREFIX: &str = "tags/";

/// `sha256:` and 64 hex digits and a newline: a tag target's content.
const TARGET_LENGTH: u64 = 72;

/// A TUF repository of trusted tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRepository {
    /// An https://, http:// or file:// base: `metadata/` and `targets/`
    /// are under it, as in the update repository.
    pub url: String,
    /// The pinned root.json.
    pub root: PathBuf,
    /// Where the last trusted metadata is kept, for rollback protection
    /// (made if missing; one per repository).
    pub datastore: PathBuf,
}

/// Why a tag's digest is not known. Each names the reference and the
/// repository.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// The repository's settings: its URL, root or datastore.
    #[error("{reference}: tag repository {repository}: {reason}")]
    Config {
        repository: String,
        reference: String,
        reason: String,
    },
    /// A reference by digest alone has no tag to look up.
    #[error("{reference}: no tag to look up in tag repository {repository}")]
    NoTag {
        repository: String,
        reference: String,
    },
    /// The repository (verified) does not list the tag.
    #[error("{reference}: not trusted: tag repository {repository} has no {target}")]
    NotTrusted {
        repository: String,
        reference: String,
        target: String,
    },
    /// A role's metadata has expired (or the repository's signer stopped
    /// renewing it): nothing it says is fresh.
    #[error("{reference}: tag repository {repository}: the {role} metadata has expired")]
    Expired {
        repository: String,
        reference: String,
        role: String,
    },
    /// The repository offers older metadata than the datastore has seen.
    #[error("{reference}: tag repository {repository}: rollback refused: {reason}")]
    Rollback {
        repository: String,
        reference: String,
        reason: String,
    },
    /// The repository could not be read (the network, a missing file):
    /// another try may do better.
    #[error("{reference}: tag repository {repository} is unavailable: {reason}")]
    Unavailable {
        repository: String,
        reference: String,
        reason: String,
    },
    /// Verification failed: a signature, a threshold, a hash, a length,
    /// a target that is not a digest.
    #[error("{reference}: tag repository {repository}: refused: {reason}")]
    Refused {
        repository: String,
        reference: String,
        reason: String,
    },
}

impl TagError {
    /// Whether another try might do better: the repository could not be
    /// read, rather than said something untrustworthy.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The TUF target name of `reference`'s tag:
/// `tags/<registry>/<repository>:<tag>`, e.g.
/// `tags/127.0.0.1:5000/team/app:1`, `tags/docker.io/library/nginx:latest`
/// (the reference as Docker prints it, normalised, its digest left out).
///
/// Unambiguous: the registry has no `/`, neither the repository nor the
/// tag has a `:`, so the registry is up to the first `/` after `tags/`
/// and the tag after the last `:`. The registry is lowercased (host
/// names are case-insensitive). No component is empty, `.` or `..`
/// (repository components start with a letter or digit, tags cannot
/// start with `.`), so tough's `TargetName` takes the name as it is,
/// resolving nothing; the one exception, a registry of only dots (which
/// [`Reference::parse`] admits but no host has) is written with a `_`
/// for each dot, a character no host name has. A tag's file (its last
/// component has a `:`) can never be a directory of another's, so two
/// tags with the same digest can both be stored under consistent
/// snapshots (`targets/<sha256>.tags/…`). A reference with no tag has
/// no meaningful name: `latest` is used, as Docker would.
pub fn target_name(reference: &Reference) -> String {
    let mut registry = reference.registry.to_ascii_lowercase();
    if registry.bytes().all(|b| b == b'.') {
        registry = "_".repeat(registry.len());
    }
    let tag = reference.tag.as_deref().unwrap_or("latest");
    format!("{TARGET_PREFIX}{registry}/{}:{tag}", reference.repository)
}

/// The digest (`sha256:<hex>`) the repository says `reference`'s tag
/// means now. Verified: signatures and thresholds from the pinned root,
/// expiry of every role, no rollback against the datastore, the
/// target's length and hash. A digest in `reference` is not compared:
/// that is the caller's to do with the answer.
pub async fn trusted_digest(
    repo: &TagRepository,
    http: &HttpClient,
    reference: &Reference,
) -> Result<String, TagError> {
    let failing = Failing { repo, reference };
    if reference.tag.is_none() {
        return Err(TagError::NoTag {
            repository: repo.url.clone(),
            reference: reference.to_string(),
        });
    }
    let name = target_name(reference);
    let target_name = TargetName::new(name.as_str())
        .map_err(|e| failing.refused(format!("target name {name}: {e}")))?;

    let base = base_url(&repo.url).map_err(|reason| failing.config(reason))?;
    let join = |sub: &str| {
        base.join(sub)
            .map_err(|e| failing.config(format!("{sub}: {e}")))
    };
    let (metadata_base, targets_base) = (join("metadata/")?, join("targets/")?);
    let root = std::fs::read(&repo.root)
        .map_err(|e| failing.config(format!("the pinned root {}: {e}", repo.root.display())))?;
    std::fs::create_dir_all(&repo.datastore)
        .map_err(|e| failing.config(format!("the datastore {}: {e}", repo.datastore.display())))?;

    // tough writes the datastore's files in place: one load at a time
    // per datastore, or two could read each other's half-written files.
    let lock = datastore_lock(&repo.datastore);
    let _guard = lock.lock().await;

    let repository = RepositoryLoader::new(&root, metadata_base, targets_base)
        .transport(TufTransport::new(http.clone()))
        .datastore(&repo.datastore)
        .load()
        .await
        .map_err(|e| failing.tough_error(&e))?;

    let not_trusted = || TagError::NotTrusted {
        repository: repo.url.clone(),
        reference: reference.to_string(),
        target: name.clone(),
    };
    let target = repository
        .targets()
        .signed
        .find_target(&target_name, false)
        .map_err(|_| not_trusted())?;
    if target.length != TARGET_LENGTH {
        return Err(failing.refused(format!(
            "{name} is {} bytes: not a digest (`sha256:<hex>` and a newline)",
            target.length
        )));
    }
    let stream = repository
        .read_target(&target_name)
        .await
        .map_err(|e| failing.tough_error(&e))?
        .ok_or_else(not_trusted)?;
    let content = stream
        .into_vec()
        .await
        .map_err(|e| failing.tough_error(&e))?;
    parse_digest(&content).ok_or_else(|| {
        failing.refused(format!(
            "{name} is not a digest (`sha256:<hex>` and a newline)"
        ))
    })
}

/// `sha256:<64 lowercase hex>\n`, exactly.
fn parse_digest(content: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(content).ok()?;
    let digest = text.strip_suffix('\n')?;
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| digest.to_owned())
}

fn base_url(repository: &str) -> Result<Url, String> {
    let mut text = repository.to_owned();
    if !text.ends_with('/') {
        text.push('/');
    }
    let url = Url::parse(&text).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "https" | "http" | "file" => Ok(url),
        other => Err(format!(
            "`{other}:` URLs are not supported (https://, http:// or file://)"
        )),
    }
}

fn datastore_lock(datastore: &std::path::Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    let mut locks = LOCKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Arc::clone(locks.entry(datastore.to_owned()).or_default())
}

/// Builds the errors of one lookup.
struct Failing<'a> {
    repo: &'a TagRepository,
    reference: &'a Reference,
}

impl Failing<'_> {
    fn config(&self, reason: String) -> TagError {
        TagError::Config {
            repository: self.repo.url.clone(),
            reference: self.reference.to_string(),
            reason,
        }
    }

    fn refused(&self, reason: String) -> TagError {
        TagError::Refused {
            repository: self.repo.url.clone(),
            reference: self.reference.to_string(),
            reason,
        }
    }

    /// Sorts tough's error by its causes: expiry, rollback, a failure to
    /// read, or a failed verification (anything else).
    fn tough_error(&self, error: &tough::error::Error) -> TagError {
        let (repository, reference) = (self.repo.url.clone(), self.reference.to_string());
        let reason = crate::http::error_chain(error);
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = next {
            if let Some(tough_error) = cause.downcast_ref::<tough::error::Error>() {
                use tough::error::Error as E;
                match tough_error {
                    E::ExpiredMetadata { role, .. } => {
                        return TagError::Expired {
                            repository,
                            reference,
                            role: role_name(*role),
                        };
                    }
                    E::OlderMetadata { .. }
                    | E::OlderSnapshotInTimestamp { .. }
                    | E::SnapshotRoleMissing { .. } => {
                        return TagError::Rollback {
                            repository,
                            reference,
                            reason,
                        };
                    }
                    // The datastore's clock: also a replay of the past.
                    E::SystemTimeSteppedBackward { .. } => {
                        return TagError::Rollback {
                            repository,
                            reference,
                            reason,
                        };
                    }
                    E::Transport { .. } => {}
                    _ => {
                        return TagError::Refused {
                            repository,
                            reference,
                            reason,
                        };
                    }
                }
            } else if let Some(http) = cause.downcast_ref::<HttpError>() {
                return if http.is_transient() {
                    TagError::Unavailable {
                        repository,
                        reference,
                        reason,
                    }
                } else {
                    TagError::Refused {
                        repository,
                        reference,
                        reason,
                    }
                };
            } else if cause.is::<TransportError>() {
                // What the transport could not read: a missing file, an
                // HTTP status, a stalled peer, a file-system error; but
                // a hash or size that tough's adapters found wrong is
                // a verdict (a tough error as its cause).
                let verdict = cause.source().is_some_and(|inner| {
                    inner.is::<tough::error::Error>() || inner.is::<HttpError>()
                });
                if !verdict {
                    return TagError::Unavailable {
                        repository,
                        reference,
                        reason,
                    };
                }
            }
            next = cause.source();
        }
        TagError::Refused {
            repository,
            reference,
            reason,
        }
    }
}

fn role_name(role: RoleType) -> String {
    match role {
        RoleType::Root => "root",
        RoleType::Targets => "targets",
        RoleType::Snapshot => "snapshot",
        RoleType::Timestamp => "timestamp",
        RoleType::DelegatedTargets => "delegated targets",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_parsed_strictly() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(
            parse_digest(format!("sha256:{hex}\n").as_bytes()),
            Some(format!("sha256:{hex}"))
        );
        for bad in [
            format!("sha256:{hex}"),
            format!("sha256:{hex}\n\n"),
            format!("sha256:{hex} \n"),
            format!(" sha256:{hex}\n"),
            format!("sha256:{}\n", hex.to_uppercase()),
            format!("sha512:{hex}\n"),
            format!("sha256:{}\n", &hex[1..]),
            "\n".to_owned(),
        ] {
            assert_eq!(parse_digest(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn roles_are_named_as_tuf_does() {
        assert_eq!(role_name(RoleType::Timestamp), "timestamp");
        assert_eq!(
            serde_json::to_value(RoleType::Timestamp).unwrap(),
            "timestamp"
        );
    }
}
