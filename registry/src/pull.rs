//! A pull: resolve the reference, fetch and check the config, then fetch
//! only the layers the store lacks, several at once, each streamed
//! straight into the store's unpacker, and commit the image. Nothing is
//! used before it is verified, and a pull that fails leaves the store as
//! it was (the staged layers go with the [`husk_store::Incoming`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use husk_store::{Digest, ImageSummary, IncomingImage, Store};
use oci_spec::image::ImageConfiguration;

use super::blob_reader::BlobReader;
use super::client::Registries;
use super::error::RegistryError;
use super::manifest::{self, Resolved};
use super::platform::Platform;
use super::policy::Policy;
use super::progress::{Progress, ProgressFn, report};
use super::reference::Reference;
use super::trust::{cosign, tags};

/// The most an image config may be (the store's bound on JSON blobs).
const MAX_CONFIG: usize = husk_store::blobs::MAX_JSON_BLOB as usize;

#[derive(Clone, Default)]
pub struct PullOptions {
    /// The platform asked for: an index is resolved to it, and a single
    /// image of another platform is refused. None: the machine's
    /// (linux/amd64), and a single image is taken as it is (as Docker,
    /// with a warning).
    pub platform: Option<Platform>,
    pub progress: Option<ProgressFn>,
    /// What may be pulled, and what it must prove (none: anything).
    pub policy: Option<Arc<Policy>>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: ImageSummary,
    /// The manifest digest that was verified and stored: what runs.
    pub digest: String,
    /// The name the store gave it.
    pub name: String,
    pub layers_fetched: usize,
    pub bytes_fetched: u64,
}

/// The name a pulled image gets: `name:tag`, or `name@digest` when the
/// reference has a digest (which wins over its tag, as in Docker).
pub fn store_name(reference: &Reference) -> String {
    match (&reference.digest, &reference.tag) {
        (Some(digest), _) => format!("{}@{digest}", reference.familiar_name()),
        (None, Some(tag)) => format!("{}:{tag}", reference.familiar_name()),
        (None, None) => format!("{}:latest", reference.familiar_name()),
    }
}

/// Pulls `reference` into `store`.
pub async fn pull(
    registries: Arc<Registries>,
    store: Arc<Mutex<Store>>,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let name = store_name(reference);
    let requirements = match &options.policy {
        Some(policy) => policy.admit(reference)?,
        None => Default::default(),
    };
    // A tag whose digest a trusted-tags repository states is pulled by
    // that digest: the verified digest is what runs, the tag is only the
    // name.
    let mut pinned = reference.clone();
    for (rule, repository) in &requirements.fresh {
        let digest = tags::trusted_digest(repository, registries.http(), reference)
            .await
            .map_err(|e| RegistryError::Untrusted {
                rule: rule.clone(),
                transient: e.is_transient(),
                reason: e.to_string(),
            })?;
        if let Some(asked) = &pinned.digest
            && *asked != digest
        {
            return Err(RegistryError::Untrusted {
                rule: rule.clone(),
                transient: false,
                reason: format!(
                    "{reference}: the trusted tags say {digest}, not {asked} (a stale or rolled-back tag?)"
                ),
            });
        }
        report(
            &options.progress,
            Progress::Verified {
                rule: rule.clone(),
                detail: format!("tag is {digest} per {}", repository.url),
            },
        );
        pinned.digest = Some(digest);
    }
    let reference = &pinned;
    let platform = options.platform.clone().unwrap_or_default();
    let resolved = patiently(reference, || {
        manifest::resolve(&registries, reference, &platform)
    })
    .await?;
    // What the publisher signed: the digest the reference resolved to
    // (the index, for a multi-platform image), before anything else of
    // the image is fetched.
    let signed = resolved.index_digest.as_deref().unwrap_or(&resolved.digest);
    for (rule, keys) in &requirements.signatures {
        let verified = cosign::verify(&registries, &resolved.endpoint, reference, signed, keys)
            .await
            .map_err(|e| RegistryError::Untrusted {
                rule: rule.clone(),
                transient: e.is_transient(),
                reason: e.to_string(),
            })?;
        report(
            &options.progress,
            Progress::Verified {
                rule: rule.clone(),
                detail: format!(
                    "{signed} signed by {} (found by {})",
                    verified.key, verified.found_by
                ),
            },
        );
    }
    let config_bytes = patiently(reference, || {
        fetch_config(&registries, reference, &resolved)
    })
    .await?;
    let config = ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| {
        RegistryError::BadManifest {
            reference: reference.to_string(),
            reason: format!("image config: {e}"),
        }
    })?;
    let (os, architecture) = (config.os().to_string(), config.architecture().to_string());
    if !platform.matches(&os, &architecture, config.variant().as_deref()) {
        if options.platform.is_some() {
            return Err(RegistryError::NoPlatform {
                reference: reference.to_string(),
                wanted: platform.to_string(),
                available: format!("{os}/{architecture}, a single-platform image"),
            });
        }
        log::warn!(
            "pull {reference}: the image is {os}/{architecture}, not this machine's {platform}"
        );
    }
    let layers = resolved.manifest.layers();
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(husk_store::StoreError::from)?;
    if diff_ids.len() != layers.len() {
        return Err(RegistryError::BadManifest {
            reference: reference.to_string(),
            reason: format!(
                "its config lists {} diff_ids for {} layers",
                diff_ids.len(),
                layers.len()
            ),
        });
    }
    report(
        &options.progress,
        Progress::Resolved {
            reference: reference.to_string(),
            digest: resolved.digest.clone(),
            layers: layers.len(),
            size: layers.iter().fold(0u64, |n, l| n.saturating_add(l.size())),
        },
    );

    // Which layers to fetch (each once), under the store's lock briefly.
    let (incoming, wanted) = {
        let store = store.lock().unwrap_or_else(PoisonError::into_inner);
        let incoming = Arc::new(store.begin_incoming()?);
        let mut wanted: Vec<(Digest, u64, Digest)> = Vec::new();
        for (layer, diff_id) in layers.iter().zip(&diff_ids) {
            let blob: Digest = layer
                .digest()
                .to_string()
                .parse()
                .map_err(husk_store::StoreError::from)?;
            if store.has_layer(diff_id) {
                report(
                    &options.progress,
                    Progress::LayerExists {
                        digest: blob.to_string(),
                        size: layer.size(),
                    },
                );
            } else if !wanted.iter().any(|(_, _, d)| d == diff_id) {
                wanted.push((blob, layer.size(), *diff_id));
            }
        }
        (incoming, wanted)
    };

    let bytes_fetched = wanted
        .iter()
        .fold(0u64, |n, (_, size, _)| n.saturating_add(*size));
    fetch_layers(
        &registries,
        reference,
        &resolved,
        &incoming,
        &wanted,
        options,
    )
    .await?;

    let image = IncomingImage {
        name: Some(name.clone()),
        manifest_digest: resolved
            .digest
            .parse()
            .map_err(husk_store::StoreError::from)?,
        manifest_bytes: resolved.bytes.clone(),
        config_bytes,
    };
    let summary = tokio::task::spawn_blocking(move || {
        let incoming = Arc::try_unwrap(incoming)
            .map_err(|_| RegistryError::Cancelled("a layer download is still running".into()))?;
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        store
            .commit_incoming(incoming, image)
            .map_err(RegistryError::from)
    })
    .await
    .map_err(|e| RegistryError::Cancelled(e.to_string()))??;
    report(
        &options.progress,
        Progress::Done {
            reference: reference.to_string(),
            id: summary.id.to_string(),
            digest: resolved.digest.clone(),
        },
    );
    Ok(Pulled {
        image: summary,
        digest: resolved.digest,
        name,
        layers_fetched: wanted.len(),
        bytes_fetched,
    })
}

/// Tries of a manifest or config fetch that fails for the network's or
/// the server's reason (a layer's transfer resumes on its own).
const METADATA_ATTEMPTS: u32 = 3;

async fn patiently<T, F: std::future::Future<Output = Result<T, RegistryError>>>(
    reference: &Reference,
    mut fetch: impl FnMut() -> F,
) -> Result<T, RegistryError> {
    let mut attempt = 1;
    loop {
        match fetch().await {
            Err(e) if e.is_transient() && attempt < METADATA_ATTEMPTS => {
                log::warn!("pull {reference}: {e}; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The config blob, checked against its descriptor's size and digest.
async fn fetch_config(
    registries: &Registries,
    reference: &Reference,
    resolved: &Resolved,
) -> Result<Vec<u8>, RegistryError> {
    let descriptor = resolved.manifest.config();
    let digest = descriptor.digest().to_string();
    if descriptor.size() > MAX_CONFIG as u64 {
        return Err(RegistryError::BadManifest {
            reference: reference.to_string(),
            reason: format!(
                "its config is {} bytes, more than {MAX_CONFIG}",
                descriptor.size()
            ),
        });
    }
    let response = registries
        .get(
            &resolved.endpoint,
            &reference.repository,
            &format!("blobs/{digest}"),
            None,
            0,
        )
        .await?;
    let bytes = response.bytes(MAX_CONFIG).await?.to_vec();
    let actual = Digest::of(&bytes).to_string();
    if actual != digest || bytes.len() as u64 != descriptor.size() {
        return Err(RegistryError::Digest {
            what: format!(
                "config of {reference} ({} bytes, descriptor {})",
                bytes.len(),
                descriptor.size()
            ),
            expected: digest,
            actual,
        });
    }
    Ok(bytes)
}

/// Downloads and unpacks the layers, at most the configured number at
/// once; the first failure stops the others.
async fn fetch_layers(
    registries: &Arc<Registries>,
    reference: &Reference,
    resolved: &Resolved,
    incoming: &Arc<husk_store::Incoming>,
    wanted: &[(Digest, u64, Digest)],
    options: &PullOptions,
) -> Result<(), RegistryError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(
        registries.config().concurrent_downloads(),
    ));
    let cancel = Arc::new(AtomicBool::new(false));
    // A pull given up (its future dropped: a deadline) stops its readers.
    let _stop = StopOnDrop(Arc::clone(&cancel));
    // The endpoint that served the manifest first, then the others.
    let mut endpoints = vec![resolved.endpoint.clone()];
    endpoints.extend(
        registries
            .endpoints(reference)
            .into_iter()
            .filter(|e| *e != resolved.endpoint),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for &(blob, size, diff_id) in wanted {
        let permits = Arc::clone(&permits);
        let reader = BlobReader::new(
            Arc::clone(registries),
            endpoints.clone(),
            reference.repository.clone(),
            blob.to_string(),
            size,
            Arc::clone(&cancel),
            options.progress.clone(),
        );
        let gave_up = Arc::clone(&reader.gave_up);
        let incoming = Arc::clone(incoming);
        let progress = options.progress.clone();
        let cancel = Arc::clone(&cancel);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            if cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
            let unpacked = tokio::task::spawn_blocking(move || {
                incoming.unpack_layer(&blob, size, &diff_id, reader)
            })
            .await
            .map_err(|e| RegistryError::Cancelled(e.to_string()))?;
            if let Err(error) = unpacked {
                // The transfer's own failure, if that is what stopped the
                // unpacker, rather than how the store saw it.
                let gave_up = gave_up
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                return Err(match gave_up {
                    Some(reason) => RegistryError::Transfer {
                        digest: blob.to_string(),
                        reason,
                    },
                    None => error.into(),
                });
            }
            report(
                &progress,
                Progress::LayerDone {
                    digest: blob.to_string(),
                    size,
                },
            );
            Ok::<(), RegistryError>(())
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined
            .map_err(|e| RegistryError::Cancelled(e.to_string()))
            .and_then(|r| r);
        if let Err(e) = result
            && first_error.is_none()
        {
            cancel.store(true, Ordering::Relaxed);
            first_error = Some(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Sets the flag every reader of a pull checks, when the pull ends
/// whichever way.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
