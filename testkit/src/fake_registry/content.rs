//! What a fake registry serves: repositories of manifests, blobs, and
//! images made of layers.

use std::collections::BTreeMap;

use serde_json::json;

use crate::sha256;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a registry serves: repositories of manifests (by digest, some
/// tagged) and blobs by digest. Digests are computed here.
#[derive(Clone, Debug, Default)]
pub struct Content {
    pub(super) repositories: BTreeMap<String, Repository>,
    pub(super) blobs: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Repository {
    pub(super) tags: BTreeMap<String, String>,
    pub(super) manifests: BTreeMap<String, Stored>,
}

#[derive(Clone, Debug)]
pub(super) struct Stored {
    media_type: String,
    bytes: Vec<u8>,
}

/// A layer for [`Content::image`]: the blob served, its media type, and
/// the digest of its uncompressed tar (the config's diff_id).
#[derive(Clone, Debug)]
pub struct Layer {
    pub media_type: String,
    pub blob: Vec<u8>,
    pub diff_id: String,
}

impl Layer {
    /// An uncompressed tar layer ([`OCI_LAYER_TAR`]).
    pub fn tar(tar: Vec<u8>) -> Self {
        Layer {
            media_type: OCI_LAYER_TAR.to_string(),
            diff_id: sha256(&tar),
            blob: tar,
        }
    }

    /// A compressed layer (e.g. [`OCI_LAYER_GZIP`]), compressed by the
    /// caller, and the tar it decompresses to. A `blob` that does not
    /// decompress to `tar` makes a lying image, which is a fine test too.
    pub fn compressed(media_type: &str, blob: Vec<u8>, tar: &[u8]) -> Self {
        Layer {
            media_type: media_type.to_string(),
            blob,
            diff_id: sha256(tar),
        }
    }
}

/// What [`Content::image`] made: the digests, to fault or look for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub manifest: String,
    pub manifest_size: usize,
    pub config: String,
    pub layers: Vec<String>,
    pub architecture: String,
}

impl Content {
    pub fn new() -> Self {
        Content::default()
    }

    /// Stores `bytes` as a manifest of repository `name`, tagged `tag`
    /// (moving the tag if it was elsewhere); returns its digest.
    pub fn manifest(&mut self, name: &str, tag: &str, media_type: &str, bytes: Vec<u8>) -> String {
        let digest = self.untagged_manifest(name, media_type, bytes);
        let repository = self.repositories.get_mut(name).expect("just made");
        repository.tags.insert(tag.to_string(), digest.clone());
        digest
    }

    /// Stores `bytes` as a manifest of repository `name`, reachable by
    /// digest only (an index's child); returns its digest.
    pub fn untagged_manifest(&mut self, name: &str, media_type: &str, bytes: Vec<u8>) -> String {
        let digest = sha256(&bytes);
        let stored = Stored {
            media_type: media_type.to_string(),
            bytes,
        };
        let repository = self.repositories.entry(name.to_string()).or_default();
        repository.manifests.insert(digest.clone(), stored);
        digest
    }

    /// Points `tag` of `name` at a manifest stored there (or at nothing,
    /// for a tag that answers 404).
    pub fn tag(&mut self, name: &str, tag: &str, digest: &str) {
        let repository = self.repositories.entry(name.to_string()).or_default();
        repository.tags.insert(tag.to_string(), digest.to_string());
    }

    /// Removes a tag (the manifest stays reachable by digest).
    pub fn untag(&mut self, name: &str, tag: &str) {
        if let Some(repository) = self.repositories.get_mut(name) {
            repository.tags.remove(tag);
        }
    }

    /// Stores a blob; returns its digest.
    pub fn blob(&mut self, bytes: Vec<u8>) -> String {
        let digest = sha256(&bytes);
        self.blobs.insert(digest.clone(), bytes);
        digest
    }

    /// Stores `bytes` under `digest` whatever they hash to: a blob that
    /// lies about itself on every request.
    pub fn blob_as(&mut self, digest: &str, bytes: Vec<u8>) {
        self.blobs.insert(digest.to_string(), bytes);
    }

    /// Removes a blob (its requests answer 404).
    pub fn remove_blob(&mut self, digest: &str) {
        self.blobs.remove(digest);
    }

    /// A linux/amd64 image: its layers and an OCI config (diff_ids from
    /// the layers' tars) as blobs, and an OCI manifest tagged `tag`.
    pub fn image(&mut self, name: &str, tag: &str, layers: &[Layer]) -> Image {
        self.platform_image(name, tag, "amd64", layers)
    }

    /// [`Content::image`] for another architecture (`arm64`, …).
    pub fn platform_image(
        &mut self,
        name: &str,
        tag: &str,
        architecture: &str,
        layers: &[Layer],
    ) -> Image {
        let config = serde_json::to_vec(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
            },
        }))
        .expect("JSON");
        let descriptor = |media_type: &str, blob: &[u8]| json!({"mediaType": media_type, "digest": sha256(blob), "size": blob.len()});
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": layers.iter()
                .map(|l| descriptor(&l.media_type, &l.blob))
                .collect::<Vec<_>>(),
        }))
        .expect("JSON");
        let manifest_size = manifest.len();
        Image {
            config: self.blob(config),
            layers: layers.iter().map(|l| self.blob(l.blob.clone())).collect(),
            manifest: self.manifest(name, tag, OCI_MANIFEST, manifest),
            manifest_size,
            architecture: architecture.to_string(),
        }
    }

    /// An OCI image index of `images` (made in repository `name`, each
    /// with its linux platform), tagged `tag`; returns its digest.
    pub fn index(&mut self, name: &str, tag: &str, images: &[&Image]) -> String {
        let manifests: Vec<_> = images
            .iter()
            .map(|image| {
                json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": image.manifest,
                    "size": image.manifest_size,
                    "platform": {"architecture": image.architecture, "os": "linux"},
                })
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.manifest(name, tag, OCI_INDEX, index.to_string().into_bytes())
    }

    /// The bytes and content type stored under `digest`, blob or manifest.
    pub(super) fn by_digest(&self, digest: &str) -> Option<(&[u8], &str)> {
        if let Some(blob) = self.blobs.get(digest) {
            return Some((blob, "application/octet-stream"));
        }
        self.repositories
            .values()
            .find_map(|r| r.manifests.get(digest))
            .map(|m| (&m.bytes[..], &m.media_type[..]))
    }
}
