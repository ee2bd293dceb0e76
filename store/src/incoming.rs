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

use super::blobs::{BlobWriter, StagedBlob};
use super::digest::{Digest, HashingReader};
use super::error::{IoContext, Result, StoreError};
use super::import::{self, Plan};
use super::tar_split;
use super::unpack::{UnpackOptions, check_layer, unpack_layer_recorded};
use super::{ImageSummary, Store};

/// The staging directories of the [`Incoming`]s alive, which gc keeps.
pub(crate) type Active = Arc<Mutex<HashSet<PathBuf>>>;

/// An image being received. `Sync`: layers unpack in parallel.
#[derive(Debug)]
pub struct Incoming {
    staging: tempfile::TempDir,
    layers_dir: PathBuf,
    /// The layers' tar-split records ([`tar_split`]).
    records_dir: PathBuf,
    options: UnpackOptions,
    /// Keep verified blobs instead of unpacking ([`super::StoreOptions::defer_unpack`]).
    defer: bool,
    active: Active,
    /// The layers unpacked so far, by diff_id.
    unpacked: Mutex<Vec<(Digest, PathBuf)>>,
    /// With `defer`: the verified layer blobs, by diff_id and blob digest.
    kept: Mutex<Vec<(Digest, Digest, StagedBlob)>>,
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
    /// Whether the layer with this diff_id is unpacked already, with the
    /// record of its tar stream (a pull need not fetch it). A layer
    /// unpacked before records were kept is fetched again for its record.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        // (a record cut short by a crash has no valid header: fetched
        // again too)
        self.layer_dir(diff_id).is_dir() && tar_split::summary(&self.root, diff_id).is_ok()
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
            records_dir: tar_split::dir(&self.root),
            options: UnpackOptions {
                allow_devices: self.options.allow_devices,
                limits: self.options.limits,
                ..UnpackOptions::default()
            },
            defer: self.options.defer_unpack,
            active: Arc::clone(&self.incoming),
            unpacked: Mutex::new(Vec::new()),
            kept: Mutex::new(Vec::new()),
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
        let kept =
            std::mem::take(&mut *incoming.kept.lock().unwrap_or_else(PoisonError::into_inner));
        let mut new_layers = Vec::new();
        let mut deferred = Vec::new();
        for (diff_id, blob, staged) in kept {
            if plan.record.layers.contains(&diff_id) {
                deferred.push((blob, staged));
            }
        }
        for (i, diff_id) in plan.record.layers.iter().enumerate() {
            let blob = plan.layer_blobs[i];
            // A layer kept as a blob counts only in a deferred store:
            // elsewhere `blobs/` holds manifests and configs, whose digest
            // a hostile manifest may name as a layer.
            if deferred.iter().any(|(b, _)| *b == blob)
                || (incoming.defer && self.blobs.contains(&blob))
            {
                continue;
            }
            if let Some((_, dir)) = unpacked.iter().find(|(d, _)| d == diff_id) {
                if !new_layers.iter().any(|(d, _)| d == diff_id) && !self.has_layer(diff_id) {
                    new_layers.push((*diff_id, dir.clone()));
                }
            } else if !self.layer_dir(diff_id).is_dir() {
                return Err(StoreError::NotFound(format!(
                    "layer {diff_id} of image {}: neither in the store nor received",
                    plan.record.id
                )));
            }
        }
        let summary = ImageSummary::from(&plan.record);
        import::commit_plans(self, incoming.staging.path(), &[plan], new_layers, deferred)?;
        Ok(summary)
    }
}

/// What a blob may hold after its compressed stream's end (padding).
const TRAILING: u64 = 1 << 20;
/// How much more of a blob is read after its layer was refused, to
/// name a blob that is not its digest as such: beyond, the refusal is
/// the layer's (a hostile descriptor's size is not read to its end).
const DRAIN: u64 = 64 << 20;

/// Reads the rest of `reader`, `limit` bytes at most: whether that was
/// all of it.
fn drain(reader: &mut impl Read, limit: u64) -> std::io::Result<bool> {
    let read = std::io::copy(&mut reader.take(limit + 1), &mut std::io::sink())?;
    Ok(read <= limit)
}

/// The whole blob read: its size and digest must be the descriptor's.
/// `Err(None)`: it could not be read to its end (the reader's error is
/// the one to report).
fn check_blob(
    finished: std::io::Result<(Digest, u64)>,
    expected: &Digest,
    size: u64,
) -> Result<(), Option<StoreError>> {
    let (actual, len) = finished.map_err(|_| None)?;
    if len != size {
        return Err(Some(StoreError::BlobSize {
            digest: *expected,
            expected: size,
            actual: len,
        }));
    }
    if actual != *expected {
        return Err(Some(StoreError::BlobMismatch {
            what: "layer",
            expected: *expected,
            actual,
        }));
    }
    Ok(())
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
        if self.defer {
            return self.keep_layer(blob_digest, size, diff_id, blob);
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
        let unpacked = unpack_layer_recorded(&mut hashing, &dir, self.options);
        // Also when the unpacking failed: a blob that is not what its
        // descriptor says is refused as such, not by what its bytes made
        // the tar reader say.
        let limit = if unpacked.is_ok() { TRAILING } else { DRAIN };
        let verified = match drain(&mut hashing, limit) {
            Ok(true) => check_blob(hashing.finish(), blob_digest, size),
            Ok(false) if unpacked.is_ok() => Err(Some(StoreError::TrailingData {
                layer: *blob_digest,
                limit,
            })),
            Ok(false) | Err(_) => Err(None),
        };
        let actual_diff_id = match (unpacked, verified) {
            (_, Err(Some(e))) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
            (Err(e), _) => return Err(layer_error(e)),
            (Ok(_), Err(None)) => {
                return Err(StoreError::Io {
                    path: dir,
                    source: std::io::Error::other("reading the rest of the blob failed"),
                });
            }
            (Ok(diff_id), Ok(())) => diff_id,
        };
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

    /// Deferred unpacking: the blob is written as it streams and checked
    /// as [`check_layer`] checks an import's, then kept for the machine
    /// to unpack.
    fn keep_layer(
        &self,
        blob_digest: &Digest,
        size: u64,
        diff_id: &Digest,
        blob: impl Read,
    ) -> Result<()> {
        let mut writer = BlobWriter::new_in(self.staging.path())?;
        let mut tee = Tee {
            inner: blob.take(size.saturating_add(1)),
            copy: &mut writer,
        };
        let checked = check_layer(&mut tee, self.options.limits);
        // What follows the compressed stream's end is part of the blob.
        let limit = if checked.is_ok() { TRAILING } else { DRAIN };
        let drained = drain(&mut tee, limit);
        let staged = writer.finish()?;
        let verified = match drained {
            Ok(true) => check_blob(Ok((staged.digest, staged.size)), blob_digest, size),
            Ok(false) if checked.is_ok() => Err(Some(StoreError::TrailingData {
                layer: *blob_digest,
                limit,
            })),
            Ok(false) | Err(_) => Err(None),
        };
        let actual_diff_id = match (checked, verified) {
            (_, Err(Some(e))) => return Err(e),
            (Err(source), _) => {
                return Err(StoreError::Unpack {
                    layer: *blob_digest,
                    source,
                });
            }
            (Ok(_), Err(None)) => {
                return Err(StoreError::Io {
                    path: staged.path().to_path_buf(),
                    source: std::io::Error::other("reading the rest of the blob failed"),
                });
            }
            (Ok(diff_id), Ok(())) => diff_id,
        };
        if actual_diff_id != *diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer: *blob_digest,
                expected: *diff_id,
                actual: actual_diff_id,
            });
        }
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((*diff_id, *blob_digest, staged));
        Ok(())
    }

    fn has(&self, diff_id: &Digest) -> bool {
        (self.layers_dir.join(diff_id.hex()).is_dir()
            && tar_split::summary_at(&self.records_dir, diff_id).is_ok())
            || self
                .unpacked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|(d, _)| d == diff_id)
            || self
                .kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|(d, _, _)| d == diff_id)
    }
}

/// A reader that copies what is read through it into a blob.
struct Tee<'a, R> {
    inner: R,
    copy: &'a mut BlobWriter,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        std::io::Write::write_all(self.copy, &buf[..n])?;
        Ok(n)
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
