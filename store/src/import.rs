//! One import as a transaction: stage and verify everything in `tmp/`,
//! unpack new layers there, and only then move layers and blobs into place
//! and replace `images.json`. A failure before that leaves nothing behind
//! (the staging directory is dropped); a failure while committing removes
//! what the commit had added.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::archive;
use super::blobs::{BlobWriter, StagedBlob};
use super::digest::Digest;
use super::error::{IoContext, Result, StoreError};
use super::index::{ImageId, ImageRecord, index_path, normalise_name};
use super::layout::{self, FoundImage};
use super::limits::Limits;
use super::tar_split;
use super::unpack::{UnpackOptions, check_layer, unpack_layer_recorded};
use super::{ImageSummary, Store};

/// An image checked and ready to be committed.
pub(super) struct Plan {
    pub(super) record: ImageRecord,
    /// The layer blobs (as distributed), matching `record.layers`.
    pub(super) layer_blobs: Vec<Digest>,
    manifest_bytes: Vec<u8>,
    config_bytes: Vec<u8>,
}

pub(super) fn import(store: &mut Store, archive_path: &Path) -> Result<Vec<ImageSummary>> {
    let tmp = store.tmp_dir();
    let staging = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(&tmp)
        .at(&tmp)?;
    let staged = archive::stage(archive_path, staging.path(), store.options.limits)?;
    let found = layout::find_images(&staged)?;

    let mut plans = Vec::new();
    for image in found {
        plans.push(plan(&staged, image)?);
    }

    // Unpack the layers the store does not have yet, each once (or, when
    // unpacking is deferred, verify them and keep their blobs).
    let mut new_layers: Vec<(Digest, PathBuf)> = Vec::new();
    let mut deferred: Vec<(Digest, StagedBlob)> = Vec::new();
    for plan in &plans {
        for (&blob_digest, diff_id) in plan.layer_blobs.iter().zip(&plan.record.layers) {
            if store.has_layer(diff_id)
                || (store.options.defer_unpack && store.layer_dir(diff_id).exists())
                || new_layers.iter().any(|(d, _)| d == diff_id)
                || deferred.iter().any(|(d, _)| *d == blob_digest)
            {
                continue;
            }
            let blob = staged.blob(&blob_digest, || format!("layer of {}", plan.record.id))?;
            if store.options.defer_unpack {
                let limits = store.options.limits;
                let verified = verify_layer(staging.path(), blob, diff_id, limits)?;
                deferred.push((blob_digest, verified));
                continue;
            }
            let dir = staging.path().join(format!("layer-{}", diff_id.hex()));
            fs::create_dir(&dir).at(&dir)?;
            let options = UnpackOptions {
                allow_devices: store.options.allow_devices,
                limits: store.options.limits,
                ..UnpackOptions::default()
            };
            let actual = unpack_layer_recorded(blob.open()?, &dir, options).map_err(|source| {
                StoreError::Unpack {
                    layer: blob_digest,
                    source,
                }
            })?;
            if actual != *diff_id {
                return Err(StoreError::DiffIdMismatch {
                    layer: blob_digest,
                    expected: *diff_id,
                    actual,
                });
            }
            new_layers.push((*diff_id, dir));
        }
    }

    commit_plans(store, staging.path(), &plans, new_layers, deferred)?;
    Ok(plans
        .iter()
        .map(|p| ImageSummary::from(&p.record))
        .collect())
}

/// Commits checked images, staged in `staging`; on failure undoes what
/// the commit had added, so the store is as it was.
pub(super) fn commit_plans(
    store: &mut Store,
    staging: &Path,
    plans: &[Plan],
    new_layers: Vec<(Digest, PathBuf)>,
    deferred: Vec<(Digest, StagedBlob)>,
) -> Result<()> {
    let mut added = Added::default();
    let result = commit(store, staging, plans, new_layers, deferred, &mut added);
    if result.is_err() {
        added.undo(store);
    }
    result
}

/// Reads and checks an image's config against its manifest, and that
/// the archive has every blob at its descriptor's size.
fn plan(staged: &archive::Staged, image: FoundImage) -> Result<Plan> {
    let config_digest: Digest = image.manifest.config().digest().as_ref().parse()?;
    let config_blob = staged.blob(&config_digest, || {
        format!("config of manifest {}", image.manifest_digest)
    })?;
    check_size(staged, config_blob, image.manifest.config().size())?;
    let config_bytes = config_blob.read_small()?;
    let manifest_layers = image.manifest.layers();
    for (i, layer) in manifest_layers.iter().enumerate() {
        let digest: Digest = layer.digest().as_ref().parse()?;
        let blob = staged.blob(&digest, || {
            format!(
                "layer {} of {} in manifest {}",
                i + 1,
                manifest_layers.len(),
                image.manifest_digest
            )
        })?;
        check_size(staged, blob, layer.size())?;
    }
    plan_record(
        &image.manifest,
        image.manifest_digest,
        image.manifest_bytes,
        config_bytes,
        &image.names,
    )
}

/// The record of an image from its manifest and config, once the config
/// says a linux image whose diff_ids match the manifest's layers (an
/// archive's or a registry's: both are checked the same way).
pub(super) fn plan_record(
    manifest: &ImageManifest,
    manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    config_bytes: Vec<u8>,
    names: &[String],
) -> Result<Plan> {
    let config_digest: Digest = manifest.config().digest().as_ref().parse()?;
    let bad = |reason: String| StoreError::BadConfig {
        config: config_digest,
        reason,
    };
    let config =
        ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| bad(e.to_string()))?;
    let os = config.os().to_string();
    if os != "linux" {
        return Err(bad(format!("os is `{os}`; only linux images run here")));
    }
    let layers = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>())
        .collect::<Result<Vec<_>, _>>()?;
    let manifest_layers = manifest.layers();
    if layers.len() != manifest_layers.len() {
        return Err(bad(format!(
            "it lists {} diff_ids, but manifest {} has {} layers",
            layers.len(),
            manifest_digest,
            manifest_layers.len()
        )));
    }
    let mut layer_blobs = Vec::new();
    for layer in manifest_layers {
        let digest: Digest = layer.digest().as_ref().parse()?;
        if layer.media_type().to_string().contains("encrypted") {
            return Err(bad(format!("layer {digest} is encrypted")));
        }
        layer_blobs.push(digest);
    }
    let names = names
        .iter()
        .map(|n| normalise_name(n))
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        record: ImageRecord {
            id: ImageId(config_digest),
            names,
            manifest: manifest_digest,
            layers,
            size: manifest_layers
                .iter()
                .fold(0u64, |n, l| n.saturating_add(l.size())),
            os,
            architecture: config.architecture().to_string(),
            created: config.created().clone(),
        },
        layer_blobs,
        manifest_bytes,
        config_bytes,
    })
}

/// A descriptor's size must be the blob's (the OCI spec: otherwise the
/// content is not to be trusted).
fn check_size(staged: &archive::Staged, blob: &StagedBlob, expected: u64) -> Result<()> {
    if blob.size == expected {
        return Ok(());
    }
    Err(StoreError::SizeMismatch {
        archive: staged.archive().into(),
        digest: blob.digest,
        expected,
        actual: blob.size,
    })
}

/// What a commit has put into the store so far.
#[derive(Default)]
struct Added {
    records: Vec<PathBuf>,
    layers: Vec<PathBuf>,
    blobs: Vec<Digest>,
}

impl Added {
    fn undo(self, store: &Store) {
        for layer in self.layers.iter().rev() {
            if let Err(e) = fs::remove_dir_all(layer) {
                log::warn!("image import: cannot roll back {}: {e}", layer.display());
            }
        }
        for record in self.records.iter().rev() {
            if let Err(e) = fs::remove_file(record) {
                log::warn!("image import: cannot roll back {}: {e}", record.display());
            }
        }
        for blob in self.blobs.iter().rev() {
            if let Err(e) = store.blobs.remove(blob) {
                log::warn!("image import: cannot roll back blob {blob}: {e}");
            }
        }
    }
}

fn commit(
    store: &mut Store,
    staging: &Path,
    plans: &[Plan],
    new_layers: Vec<(Digest, PathBuf)>,
    deferred: Vec<(Digest, StagedBlob)>,
    added: &mut Added,
) -> Result<()> {
    for (diff_id, dir) in new_layers {
        // The record first: a layer in the store has its record.
        let record = tar_split::path(&store.root, &diff_id);
        tar_split::commit(&store.root, &dir, &diff_id).at(&record)?;
        added.records.push(record);
        let target = store.layer_dir(&diff_id);
        if target.is_dir() {
            // Unpacked before records were kept, and unpacked again for
            // its record only: the same diff_id is the same files, and
            // containers may be using the directory there.
            continue;
        }
        fs::rename(&dir, &target).at(&target)?;
        added.layers.push(target);
    }
    for (digest, blob) in deferred {
        if store.blobs.commit(blob, &digest)? {
            added.blobs.push(digest);
        }
    }
    for plan in plans {
        for (bytes, digest) in [
            (&plan.manifest_bytes, &plan.record.manifest),
            (&plan.config_bytes, &plan.record.id.0),
        ] {
            if store.blobs.write(staging, bytes, digest)? {
                added.blobs.push(*digest);
            }
        }
    }
    // Unpacked files are not synced one by one: one syncfs before the
    // index names them.
    let root = fs::File::open(&store.root).at(&store.root)?;
    rustix::fs::syncfs(&root).at(&store.root)?;
    for dir in [
        store.root.join("layers"),
        tar_split::dir(&store.root),
        store.blobs.dir().to_path_buf(),
    ] {
        fs::File::open(&dir).and_then(|d| d.sync_all()).at(&dir)?;
    }
    let mut index = store.index.clone();
    for plan in plans {
        index.add(plan.record.clone());
    }
    index.save(&index_path(&store.root))?;
    store.index = index;
    Ok(())
}

/// Deferred unpacking: checks that the layer's uncompressed content is
/// its diff_id and within the limits, and returns a copy of the blob to
/// keep until the machine unpacks it ([`super::Store::complete_layers`]).
fn verify_layer(
    staging: &Path,
    blob: &StagedBlob,
    diff_id: &Digest,
    limits: Limits,
) -> Result<StagedBlob> {
    let actual = check_layer(blob.open()?, limits).map_err(|source| StoreError::Unpack {
        layer: blob.digest,
        source,
    })?;
    if actual != *diff_id {
        return Err(StoreError::DiffIdMismatch {
            layer: blob.digest,
            expected: *diff_id,
            actual,
        });
    }
    let mut copy = BlobWriter::new_in(staging)?;
    std::io::copy(&mut blob.open()?, &mut copy).at(blob.path())?;
    copy.finish()
}
