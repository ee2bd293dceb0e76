//! Images given back as an archive (`docker save`), in the layout Docker
//! writes since 25.0: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) that also carries the `manifest.json` every
//! `docker load` reads, so Debian's docker 20.10, current dockerd,
//! `skopeo copy docker-archive:`/`oci-archive:` and Husk's own import all
//! take it.
//!
//! The configs are the stored ones, so the images keep their ids; each
//! layer is its uncompressed tar, replayed from its record
//! ([`tar_split`]) and checked against its diff_id as it is written. The
//! manifests are new ones (the stored manifest names compressed blobs the
//! store no longer has), so they are not the registry's manifest digests,
//! as with `docker save`.
//!
//! Everything that can be refused is refused by [`Store::export`], before
//! a byte is written: only the disk failing (or the image removed
//! meanwhile) can end a written archive early.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::rc::Rc;

use super::Store;
use super::digest::Digest;
use super::error::{Result, StoreError};
use super::index::ImageId;
use super::tar_split::{self, SplitError};

const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// What [`Store::export`] checked and will write.
#[derive(Debug)]
pub struct Export {
    root: PathBuf,
    images: Vec<Exported>,
    /// Each layer once, base layers first, with its tar's length.
    layers: Vec<(Digest, PathBuf, u64)>,
}

#[derive(Debug)]
struct Exported {
    config: Digest,
    config_bytes: Vec<u8>,
    manifest: Digest,
    manifest_bytes: Vec<u8>,
    layers: Vec<Digest>,
    /// `name:tag`s, as `docker save` was given them (or every tag of the
    /// image when given its id… as dockerd does: none).
    tags: Vec<String>,
}

impl Store {
    /// Checks that every layer of `images` can be given back as it came
    /// and gathers what [`Export::write_to`] writes. Each image is an id
    /// and the tags to write for it (none: saved by id, loaded unnamed).
    pub fn export(&self, images: &[(ImageId, Vec<String>)]) -> Result<Export> {
        let mut merged: BTreeMap<ImageId, Vec<String>> = BTreeMap::new();
        let mut order = Vec::new();
        for (id, tags) in images {
            let entry = merged.entry(*id).or_insert_with(|| {
                order.push(*id);
                Vec::new()
            });
            for tag in tags {
                if !entry.contains(tag) {
                    entry.push(tag.clone());
                }
            }
        }
        let mut export = Export {
            root: self.root.clone(),
            images: Vec::new(),
            layers: Vec::new(),
        };
        for id in order {
            let record = self.record(&id)?;
            for diff_id in &record.layers {
                if export.layers.iter().any(|(d, _, _)| d == diff_id) {
                    continue;
                }
                let dir = self.layer_dir(diff_id);
                if !dir.is_dir() {
                    return Err(StoreError::NotFound(format!(
                        "layer {diff_id} of image {id} is not unpacked (see the agent's log)"
                    )));
                }
                let summary = tar_split::summary(&self.root, diff_id)?;
                if !summary.replayable {
                    return Err(SplitError::NotReplayable(*diff_id).into());
                }
                export.layers.push((*diff_id, dir, summary.size));
            }
            let sizes: Vec<(Digest, u64)> = record
                .layers
                .iter()
                .map(|d| {
                    let size = export
                        .layers
                        .iter()
                        .find(|(l, _, _)| l == d)
                        .map_or(0, |(_, _, size)| *size);
                    (*d, size)
                })
                .collect();
            let config_bytes = self.blobs.read(&id.0)?;
            let manifest_bytes = manifest(&id.0, config_bytes.len(), &sizes);
            export.images.push(Exported {
                config: id.0,
                manifest: Digest::of(&manifest_bytes),
                config_bytes,
                manifest_bytes,
                layers: record.layers.clone(),
                tags: merged.remove(&id).unwrap_or_default(),
            });
        }
        Ok(export)
    }
}

/// An OCI manifest of uncompressed layers.
fn manifest(config: &Digest, config_size: usize, layers: &[(Digest, u64)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(digest, size)| {
            serde_json::json!({"mediaType": LAYER_TYPE, "digest": digest.to_string(), "size": size})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config.to_string(), "size": config_size},
        "layers": layers,
    }))
    .unwrap_or_default()
}

/// The name containerd and Docker 25 annotate an index entry with:
/// `busybox:latest` is `docker.io/library/busybox:latest`.
fn full_name(tag: &str) -> String {
    let first = tag.split('/').next().unwrap_or(tag);
    let has_domain =
        tag.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_domain, tag.contains('/')) {
        (true, _) => tag.to_owned(),
        (false, true) => format!("docker.io/{tag}"),
        (false, false) => format!("docker.io/library/{tag}"),
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

impl Export {
    /// The images' ids, as exported.
    pub fn ids(&self) -> Vec<ImageId> {
        self.images.iter().map(|i| ImageId(i.config)).collect()
    }

    /// Writes the archive (a tar, uncompressed) to `out`. On an error
    /// nothing more is written: the archive ends without its end blocks,
    /// so that no reader takes it for whole.
    pub fn write_to(&self, out: impl Write) -> Result<()> {
        let stopped = Rc::new(Cell::new(false));
        let mut tar = tar::Builder::new(Stoppable {
            inner: out,
            stopped: Rc::clone(&stopped),
        });
        let written = self.write_entries(&mut tar);
        if written.is_err() {
            // (the builder, dropped, would finish the archive)
            stopped.set(true);
        }
        written?;
        tar.into_inner()
            .and_then(|mut out| out.flush())
            .map_err(|source| StoreError::Io {
                path: "the archive".into(),
                source,
            })
    }

    fn write_entries<W: Write>(&self, tar: &mut tar::Builder<W>) -> Result<()> {
        let io_err = |what: &str| {
            let path = PathBuf::from(what);
            move |source| StoreError::Io { path, source }
        };
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut header = header(tar::EntryType::Directory, 0);
            tar.append_data(&mut header, dir, io::empty())
                .map_err(io_err("the archive"))?;
        }
        for (diff_id, dir, size) in &self.layers {
            let mut header = header(tar::EntryType::Regular, *size);
            // The header alone (its data is written below, as replayed).
            tar.append_data(&mut header, blob_path(diff_id), io::empty())
                .map_err(io_err("the archive"))?;
            let written = tar_split::replay(&self.root, dir, diff_id, tar.get_mut())?;
            let pad = (512 - written % 512) % 512;
            tar.get_mut()
                .write_all(&vec![0u8; pad as usize])
                .map_err(io_err("the archive"))?;
        }
        let mut docker_manifest = Vec::new();
        let mut index = Vec::new();
        let mut written = Vec::new();
        for image in &self.images {
            for (digest, bytes) in [
                (image.config, &image.config_bytes),
                (image.manifest, &image.manifest_bytes),
            ] {
                if written.contains(&digest) {
                    continue;
                }
                file(tar, &blob_path(&digest), bytes).map_err(io_err("the archive"))?;
                written.push(digest);
            }
            docker_manifest.push(serde_json::json!({
                "Config": blob_path(&image.config),
                "RepoTags": image.tags,
                "Layers": image.layers.iter().map(blob_path).collect::<Vec<_>>(),
            }));
            let descriptor = |annotations: Option<serde_json::Value>| {
                let mut d = serde_json::json!({
                    "mediaType": MANIFEST_TYPE,
                    "digest": image.manifest.to_string(),
                    "size": image.manifest_bytes.len(),
                });
                if let Some(a) = annotations {
                    d["annotations"] = a;
                }
                d
            };
            if image.tags.is_empty() {
                index.push(descriptor(None));
            }
            for tag in &image.tags {
                let short = tag.rsplit_once(':').map_or("latest", |(_, t)| t);
                index.push(descriptor(Some(serde_json::json!({
                    "io.containerd.image.name": full_name(tag),
                    "org.opencontainers.image.ref.name": short,
                }))));
            }
        }
        let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
        let index = json(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": index,
        }));
        for (name, bytes) in [
            ("index.json", index),
            (
                "manifest.json",
                json(serde_json::Value::from(docker_manifest)),
            ),
            (
                "oci-layout",
                json(serde_json::json!({"imageLayoutVersion": "1.0.0"})),
            ),
        ] {
            file(tar, name, &bytes).map_err(io_err("the archive"))?;
        }
        Ok(())
    }
}

/// A header as `docker save` writes them: root's, no time (an archive
/// of the same images is the same bytes).
fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn file<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut header = header(tar::EntryType::Regular, bytes.len() as u64);
    tar.append_data(&mut header, name, bytes)
}

/// A writer that refuses everything once `stopped`.
struct Stoppable<W> {
    inner: W,
    stopped: Rc<Cell<bool>>,
}

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stopped.get() {
            return Err(io::Error::other("the archive was cut short"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.stopped.get() {
            return Err(io::Error::other("the archive was cut short"));
        }
        self.inner.flush()
    }
}
