//! The image store: images imported from OCI layout and `docker save`
//! archives, their layers unpacked once and shared, ready to be stacked as
//! overlayfs lower directories.
//!
//! Layout under the root (`/var/lib/husk` on a machine):
//!
//! | path | what |
//! |---|---|
//! | `images.json` | the image records ([`index`]); replacing it commits a change |
//! | `blobs/sha256/<hex>` | manifests and configs, named by their digest ([`blobs`]) |
//! | `layers/<hex>/` | an unpacked layer, named by its diff_id ([`unpack`]) |
//! | `tmp/` | staging for imports; emptied on open and by gc |
//! | `store.lock` | held (flock) by the one process that has the store open |
//!
//! A layer over the [`Limits`] (unpacked size, entries, name lengths,
//! compression ratio) is refused while it streams, before it can fill the
//! disk.
//!
//! Compressed layer blobs are not kept: a layer is kept unpacked, verified
//! against its diff_id, which is what containers use (as containers/storage
//! does). The store is synchronous; the agent calls it from a blocking
//! thread.
//!
//! This crate owns the bytes of images on disk and nothing else: it knows
//! no HTTP, no API types, no containers and no runtime. The agent serves
//! it, husk-image fills it at build time (`defer_unpack`), and the
//! registry client belongs here when it comes.

pub mod archive;
pub mod blobs;
pub mod compression;
pub mod digest;
pub mod error;
pub mod export;
mod import;
mod incoming;
pub mod index;
pub mod layout;
pub mod limits;
pub mod tar_split;
pub mod unpack;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

pub use self::digest::Digest;
pub use self::error::{Result, StoreError};
pub use self::incoming::{Incoming, IncomingImage};
pub use self::index::{ImageId, ImageRecord};
pub use self::limits::Limits;
pub use self::unpack::UnpackOptions;

use self::blobs::Blobs;
use self::error::IoContext;
use self::index::{Index, index_path};

#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    /// Let images carry character and block device nodes.
    pub allow_devices: bool,
    /// Import without unpacking layers: verify each layer against its
    /// diff_id and keep its blob; the store that opens it next without
    /// this option unpacks it ([`Store::complete_layers`]). For
    /// `husk-image build --preload`, which runs unprivileged and cannot
    /// write whiteouts, opaque xattrs or ownership.
    pub defer_unpack: bool,
    /// How much one layer may hold; a layer over them is refused (and so
    /// its import, the store unchanged).
    pub limits: Limits,
}

/// What `image ls` shows of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub id: ImageId,
    pub names: Vec<String>,
    pub manifest: Digest,
    pub layers: usize,
    pub size: u64,
    pub os: String,
    pub architecture: String,
    pub created: Option<String>,
}

impl From<&ImageRecord> for ImageSummary {
    fn from(r: &ImageRecord) -> Self {
        Self {
            id: r.id,
            names: r.names.clone(),
            manifest: r.manifest,
            layers: r.layers.len(),
            size: r.size,
            os: r.os.clone(),
            architecture: r.architecture.clone(),
            created: r.created.clone(),
        }
    }
}

/// What `remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// The reference was one of several names of the image: only that
    /// name is gone.
    Untagged(String),
    /// The image record is gone (its layers go at the next [`Store::gc`]).
    Deleted(ImageId),
}

/// What `gc` freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub layers: Vec<Digest>,
    pub blobs: Vec<Digest>,
}

/// An open image store. Mutations take `&mut self`; one process has the
/// store open at a time (a lock file).
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    blobs: Blobs,
    index: Index,
    options: StoreOptions,
    /// Staging directories of images being received, which gc keeps.
    incoming: incoming::Active,
    _lock: File,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(root, StoreOptions::default())
    }

    pub fn open_with(root: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).at(&root)?;
        let lock_path = root.join("store.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| StoreError::Locked { root: root.clone() })?;
        for dir in [root.join("layers"), tar_split::dir(&root), root.join("tmp")] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        let store = Self {
            blobs: Blobs::open(&root)?,
            index: Index::load(&index_path(&root))?,
            root,
            options,
            incoming: Default::default(),
            _lock: lock,
        };
        store.clean_tmp()?;
        if !options.defer_unpack {
            store.complete_layers();
        }
        Ok(store)
    }

    /// Unpacks the layers an unprivileged build left as blobs (see
    /// [`StoreOptions::defer_unpack`]), verifying each against its
    /// diff_id. A layer that fails is logged and left missing: its image
    /// then cannot run (and says why), the rest of the store is intact.
    pub fn complete_layers(&self) {
        for record in self.index.images() {
            for (i, diff_id) in record.layers.iter().enumerate() {
                if self.layer_dir(diff_id).exists() {
                    continue;
                }
                match self.complete_layer(record, i, diff_id) {
                    Ok(blob) => log::info!(
                        "image {}: unpacked preloaded layer {diff_id} (blob {blob})",
                        record.id
                    ),
                    Err(e) => log::error!("image {}: layer {diff_id}: {e}", record.id),
                }
            }
        }
    }

    fn complete_layer(&self, record: &ImageRecord, i: usize, diff_id: &Digest) -> Result<Digest> {
        let manifest = self.blobs.read(&record.manifest)?;
        let manifest = oci_spec::image::ImageManifest::from_reader(&manifest[..]).map_err(|e| {
            StoreError::BadConfig {
                config: record.manifest,
                reason: e.to_string(),
            }
        })?;
        let blob: Digest = manifest
            .layers()
            .get(i)
            .ok_or_else(|| {
                StoreError::NotFound(format!("layer {i} of manifest {}", record.manifest))
            })?
            .digest()
            .as_ref()
            .parse()?;
        let path = self.blobs.path(&blob);
        let file = File::open(&path).at(&path)?;
        let staging = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.tmp_dir())
            .at(self.tmp_dir())?;
        let dir = staging.path().join("layer");
        fs::create_dir(&dir).at(&dir)?;
        let options = UnpackOptions {
            allow_devices: self.options.allow_devices,
            limits: self.options.limits,
            ..UnpackOptions::default()
        };
        let actual = unpack::unpack_layer_recorded(file, &dir, options).map_err(|source| {
            StoreError::Unpack {
                layer: blob,
                source,
            }
        })?;
        if actual != *diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer: blob,
                expected: *diff_id,
                actual,
            });
        }
        let record = tar_split::path(&self.root, diff_id);
        tar_split::commit(&self.root, &dir, diff_id).at(&record)?;
        let target = self.layer_dir(diff_id);
        fs::rename(&dir, &target).at(&target)?;
        // On disk before the only other copy goes.
        let root = File::open(&self.root).at(&self.root)?;
        rustix::fs::syncfs(&root).at(&self.root)?;
        // Unpacked, the compressed copy is not kept (as for imports).
        let _ = self.blobs.remove(&blob);
        Ok(blob)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// Leftovers of an import that was interrupted (we hold the lock, so
    /// nothing else is using them), but not the images being received.
    fn clean_tmp(&self) -> Result<()> {
        let tmp = self.tmp_dir();
        let receiving = self
            .incoming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for entry in fs::read_dir(&tmp).at(&tmp)? {
            let path = entry.at(&tmp)?.path();
            if receiving.contains(&path) {
                continue;
            }
            let removed = if path.is_dir() && !path.is_symlink() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.at(&path)?;
        }
        Ok(())
    }

    /// Imports every image of an OCI layout or `docker save` archive. On
    /// any error the store is left as it was.
    pub fn import(&mut self, archive: impl AsRef<Path>) -> Result<Vec<ImageSummary>> {
        import::import(self, archive.as_ref())
    }

    pub fn list(&self) -> Vec<ImageSummary> {
        self.index.images().iter().map(ImageSummary::from).collect()
    }

    /// The image a reference names: `name[:tag]`, an id, or an id prefix.
    pub fn get(&self, reference: &str) -> Result<ImageSummary> {
        self.index.find(reference).map(ImageSummary::from)
    }

    /// Gives the image `reference` names the name `name` too (`docker
    /// tag`); an image that had the name loses it, and stays (by its id,
    /// until removed) if it was its last. A name with a digest is refused:
    /// a digest names content, never a choice.
    pub fn tag(&mut self, reference: &str, name: &str) -> Result<ImageSummary> {
        let name = index::normalise_name(name)?;
        if name.contains('@') {
            return Err(StoreError::InvalidName {
                name,
                reason: "a tag cannot be a digest reference".into(),
            });
        }
        let mut record = self.index.find(reference)?.clone();
        let mut index = self.index.clone();
        record.names = vec![name];
        index.add(record.clone());
        index.save(&index_path(&self.root))?;
        self.index = index;
        self.get(&record.id.to_string())
    }

    /// Removes a name, or the image if it is the image's last name or the
    /// reference is its id. Refused while `in_use` says a container uses
    /// the image.
    pub fn remove(
        &mut self,
        reference: &str,
        in_use: impl Fn(&ImageId) -> bool,
    ) -> Result<Removed> {
        let record = self.index.find(reference)?;
        let id = record.id;
        let name = index::normalise_name(reference).ok();
        let mut index = self.index.clone();
        let removed = match name.filter(|n| record.names.contains(n)) {
            Some(name) if record.names.len() > 1 => {
                index.untag(&id, &name);
                Removed::Untagged(name)
            }
            _ => {
                if in_use(&id) {
                    return Err(StoreError::InUse(id));
                }
                index.remove(&id);
                Removed::Deleted(id)
            }
        };
        index.save(&index_path(&self.root))?;
        self.index = index;
        Ok(removed)
    }

    /// Removes the layers and blobs no image references, and staging
    /// leftovers.
    pub fn gc(&mut self) -> Result<GcReport> {
        let images = self.index.images();
        let mut report = GcReport::default();
        for digest in self.blobs.list()? {
            let used = images
                .iter()
                .any(|r| r.manifest == digest || r.id.0 == digest);
            if !used {
                self.blobs.remove(&digest)?;
                report.blobs.push(digest);
            }
        }
        let layers = self.root.join("layers");
        for entry in fs::read_dir(&layers).at(&layers)? {
            let entry = entry.at(&layers)?;
            let Some(diff_id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            else {
                continue;
            };
            if !images.iter().any(|r| r.layers.contains(&diff_id)) {
                let path = entry.path();
                fs::remove_dir_all(&path).at(&path)?;
                report.layers.push(diff_id);
            }
        }
        // After their layers (a layer in the store has its record), and
        // those of layers that never came (an import cut short).
        let records = tar_split::dir(&self.root);
        for entry in fs::read_dir(&records).at(&records)? {
            let entry = entry.at(&records)?;
            let used = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
                .is_some_and(|d| images.iter().any(|r| r.layers.contains(&d)));
            if !used {
                let path = entry.path();
                fs::remove_file(&path).at(&path)?;
            }
        }
        self.clean_tmp()?;
        Ok(report)
    }

    fn record(&self, id: &ImageId) -> Result<&ImageRecord> {
        self.index
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    /// The image's layer directories, base layer first. (overlayfs's
    /// `lowerdir=` lists the top-most first: reverse them for it.)
    pub fn layer_paths(&self, id: &ImageId) -> Result<Vec<PathBuf>> {
        let record = self.record(id)?;
        let mut paths = Vec::with_capacity(record.layers.len());
        for diff_id in &record.layers {
            let dir = self.layer_dir(diff_id);
            if !dir.is_dir() {
                return Err(StoreError::Io {
                    path: dir,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "layer {diff_id} of image {id} is not unpacked (see the agent's log)"
                        ),
                    ),
                });
            }
            paths.push(dir);
        }
        Ok(paths)
    }

    /// The image's OCI config (entrypoint, env, working dir, user…).
    pub fn image_config(&self, id: &ImageId) -> Result<ImageConfiguration> {
        let record = self.record(id)?;
        let data = self.blobs.read(&record.id.0)?;
        ImageConfiguration::from_reader(&data[..]).map_err(|e| StoreError::BadConfig {
            config: record.id.0,
            reason: e.to_string(),
        })
    }
}
