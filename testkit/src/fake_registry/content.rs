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
    /// No OCI 1.1 referrers API: its requests answer 404, as
    /// distribution 2.8's (Debian's docker-registry) do.
    pub(super) no_referrers_api: bool,
    /// Referrers indexes served as they are, by (name, subject digest),
    /// in place of the one made of the stored manifests' subjects.
    pub(super) referrers_indexes: BTreeMap<(String, String), Vec<u8>>,
}

/// What the referrers API answers for one subject.
pub(super) enum Referrers {
    /// The API is off (a 404 with no OCI error code).
    Unsupported,
    /// No such repository.
    NoRepository,
    /// The index, and whether the `artifactType` filter was applied.
    Index { bytes: Vec<u8>, filtered: bool },
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

    /// Turns the OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`)
    /// on (the default) or off: off, it answers 404 as distribution 2.8
    /// (Debian's docker-registry) does, which clients take to mean "no
    /// referrers API here" and fall back to tags.
    pub fn set_referrers_api(&mut self, on: bool) {
        self.no_referrers_api = !on;
    }

    /// Serves `bytes` (as an OCI index) for the referrers of `digest` in
    /// `name`, whatever is stored: an index that lies, or is huge. The
    /// `artifactType` filter is not applied to it.
    pub fn referrers_index(&mut self, name: &str, digest: &str, bytes: Vec<u8>) {
        self.referrers_indexes
            .insert((name.to_string(), digest.to_string()), bytes);
    }

    /// The referrers API's answer for `digest` in `name`, as the OCI
    /// distribution spec 1.1 has registries make it: an image index of a
    /// descriptor of each manifest of `name` whose `subject` is `digest`
    /// (by digest order), with its `artifactType` (the manifest's, else
    /// its config's media type) and annotations; only those of
    /// `artifact_type` when one is asked for.
    pub(super) fn referrers(
        &self,
        name: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Referrers {
        if self.no_referrers_api {
            return Referrers::Unsupported;
        }
        if let Some(bytes) = self
            .referrers_indexes
            .get(&(name.to_string(), digest.to_string()))
        {
            return Referrers::Index {
                bytes: bytes.clone(),
                filtered: false,
            };
        }
        let Some(repository) = self.repositories.get(name) else {
            return Referrers::NoRepository;
        };
        let manifests: Vec<_> = repository
            .manifests
            .iter()
            .filter_map(|(manifest_digest, stored)| {
                let value: serde_json::Value = serde_json::from_slice(&stored.bytes).ok()?;
                if value["subject"]["digest"].as_str() != Some(digest) {
                    return None;
                }
                let kind = value["artifactType"]
                    .as_str()
                    .or(value["config"]["mediaType"].as_str())
                    .unwrap_or_default()
                    .to_string();
                if artifact_type.is_some_and(|wanted| wanted != kind) {
                    return None;
                }
                let mut descriptor = json!({
                    "mediaType": stored.media_type,
                    "digest": manifest_digest,
                    "size": stored.bytes.len(),
                    "artifactType": kind,
                });
                if value["annotations"].is_object() {
                    descriptor["annotations"] = value["annotations"].clone();
                }
                Some(descriptor)
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        Referrers::Index {
            bytes: index.to_string().into_bytes(),
            filtered: artifact_type.is_some(),
        }
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
