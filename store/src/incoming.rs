//! Images that arrive layer by layer (pulled from a registry) rather than
//! as one archive: the same transaction as an import, split in two so the
//! slow part needs no `&mut Store`.
//!
//! [`Store::begin_incoming`] makes a staging directory in `tmp/`;
//! [`Incoming::unpack_layer`] streams one layer blob into it (from any
//! thread, several at once), checking the blob's digest and size and the
//! layer's diff_id; [`Store::commit_incoming`] checks the config against
//! the manifest, then moves the layers and blobs into place and names the
//! image, or leaves the store as it was. Dropping an [`Incoming`] removes
//! what it staged. gc leaves a staging directory alone while its
//! `Incoming` lives.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::digest::{Digest, HashingReader};
use super::error::{IoContext, Result, StoreError};
use super::import::{self, Plan};
use super::unpack::{UnpackOptions, unpack_layer};
use super::{ImageSummary, Store};

/// The staging directories of the [`Incoming`]s alive, which gc keeps.
pub(crate) type Active = Arc<Mutex<HashSet<PathBuf>>>;

/// An image being received. `Sync`: layers unpack in parallel.
#[derive(Debug)]
pub struct Incoming {
    staging: tempfile::TempDir,
    layers_dir: PathBuf,
    options: UnpackOptions,
    active: Active,
    /// The layers unpacked so far, by diff_id.
    unpacked: Mutex<Vec<(Digest, PathBuf)>>,
}

/// What the registry said the image is: the bytes of its manifest and
/// config, as fetched (their digests are checked again here).
#[derive(Debug, Clone)]
pub struct IncomingImage {
    /// The name to give it (`name:tag` or `name@digest`), if any.
    pub name: Option<String>,
    pub manifest_digest: Digest,
    pub manifest_bytes: Vec<u8>,
    pub config_bytes: Vec<u8>,
}

impl Store {
    /// Whether the layer with this diff_id is unpacked already (a pull
    /// need not fetch it).
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// Starts receiving an image.
    pub fn begin_incoming(&self) -> Result<Incoming> {
        let tmp = self.tmp_dir();
        let staging = tempfile::Builder::new()
            .prefix("incoming-")
            .tempdir_in(&tmp)
            .at(&tmp)?;
        self.incoming
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(staging.path().to_path_buf());
        Ok(Incoming {
            staging,
            layers_dir: self.root.join("layers"),
            options: UnpackOptions {
                allow_devices: self.options.allow_devices,
                limits: self.options.limits,
            },
            active: Arc::clone(&self.incoming),
            unpacked: Mutex::new(Vec::new()),
        })
    }

    /// Checks the image and makes it part of the store: every layer the
    /// config lists must be in the store or unpacked by `incoming`. On
    /// any error the store is as it was.
    pub fn commit_incoming(
        &mut self,
        incoming: Incoming,
        image: IncomingImage,
    ) -> Result<ImageSummary> {
        check_digest(&image.manifest_bytes, &image.manifest_digest, "manifest")?;
        let manifest = oci_spec::image::ImageManifest::from_reader(&image.manifest_bytes[..])
            .map_err(|e| StoreError::BadManifest {
                manifest: image.manifest_digest,
                reason: e.to_string(),
            })?;
        let config_digest: Digest = manifest.config().digest().as_ref().parse()?;
        check_digest(&image.config_bytes, &config_digest, "config")?;
        let names: Vec<String> = image.name.into_iter().collect();
        let plan: Plan = import::plan_record(
            &manifest,
            image.manifest_digest,
            image.manifest_bytes,
            image.config_bytes,
            &names,
        )?;
        let unpacked = std::mem::take(
            &mut *incoming
                .unpacked
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut new_layers = Vec::new();
        for diff_id in &plan.record.layers {
            if let Some((_, dir)) = unpacked.iter().find(|(d, _)| d == diff_id) {
                if !new_layers.iter().any(|(d, _)| d == diff_id) && !self.has_layer(diff_id) {
                    new_layers.push((*diff_id, dir.clone()));
                }
            } else if !self.has_layer(diff_id) {
                return Err(StoreError::NotFound(format!(
                    "layer {diff_id} of image {}: neither in the store nor received",
                    plan.record.id
                )));
            }
        }
        let summary = ImageSummary::from(&plan.record);
        import::commit_plans(
            self,
            incoming.staging.path(),
            &[plan],
            new_layers,
            Vec::new(),
        )?;
        Ok(summary)
    }
}

fn check_digest(data: &[u8], expected: &Digest, what: &'static str) -> Result<()> {
    let actual = Digest::of(data);
    if actual == *expected {
        return Ok(());
    }
    Err(StoreError::BlobMismatch {
        what,
        expected: *expected,
        actual,
    })
}

impl Incoming {
    /// Unpacks a layer blob as it streams from `blob`, which must be
    /// exactly `size` bytes with digest `blob_digest`, and whose
    /// uncompressed content must be `diff_id`. Nothing of it is used
    /// unless all three hold. Returns at once when the store or this
    /// image has the layer already.
    pub fn unpack_layer(
        &self,
        blob_digest: &Digest,
        size: u64,
        diff_id: &Digest,
        blob: impl Read,
    ) -> Result<()> {
        if self.has(diff_id) {
            return Ok(());
        }
        let dir = self
            .staging
            .path()
            .join(format!("layer-{}", blob_digest.hex()));
        fs::create_dir(&dir).at(&dir)?;
        let layer_error = |source| StoreError::Unpack {
            layer: *blob_digest,
            source,
        };
        // One byte past the size is read so that a longer blob is caught.
        let mut hashing = HashingReader::new(blob.take(size.saturating_add(1)));
        let actual_diff_id = unpack_layer(&mut hashing, &dir, self.options).map_err(layer_error)?;
        let (actual, len) = hashing.finish().at(&dir)?;
        if len != size {
            let _ = fs::remove_dir_all(&dir);
            return Err(StoreError::BlobSize {
                digest: *blob_digest,
                expected: size,
                actual: len,
            });
        }
        if actual != *blob_digest {
            let _ = fs::remove_dir_all(&dir);
            return Err(StoreError::BlobMismatch {
                what: "layer",
                expected: *blob_digest,
                actual,
            });
        }
        if actual_diff_id != *diff_id {
            let _ = fs::remove_dir_all(&dir);
            return Err(StoreError::DiffIdMismatch {
                layer: *blob_digest,
                expected: *diff_id,
                actual: actual_diff_id,
            });
        }
        self.unpacked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((*diff_id, dir));
        Ok(())
    }

    fn has(&self, diff_id: &Digest) -> bool {
        self.layers_dir.join(diff_id.hex()).is_dir()
            || self
                .unpacked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|(d, _)| d == diff_id)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.staging.path());
    }
}
