//! Finding the images in a staged archive: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`, as `skopeo copy …
//! oci-archive:` writes it) or a `docker save` archive (`manifest.json`;
//! Docker ≥ 25 also writes an OCI layout beside it, and its `Layers` then
//! name `blobs/sha256/…` files).

use oci_spec::image::{
    Descriptor, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType, OciLayout,
};
use serde::Deserialize;

use super::archive::Staged;
use super::compression::Compression;
use super::digest::Digest;
use super::error::{Result, StoreError};

/// Annotations that name an image in an OCI index.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One image found in an archive.
#[derive(Debug)]
pub struct FoundImage {
    /// Names as the archive gives them (not yet normalised).
    pub names: Vec<String>,
    pub manifest: ImageManifest,
    /// The manifest as stored (the archive's bytes, or the manifest this
    /// module wrote for a `docker save` image) and its digest.
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
}

/// One entry of a `docker save` `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn bad_file(staged: &Staged, file: &str, reason: impl ToString) -> StoreError {
    StoreError::BadArchiveFile {
        archive: staged.archive().into(),
        file: file.into(),
        reason: reason.to_string(),
    }
}

/// Every image in the archive.
pub fn find_images(staged: &Staged) -> Result<Vec<FoundImage>> {
    if let Some(json) = staged.read_named("manifest.json")? {
        return docker_images(staged, &json);
    }
    let Some(layout) = staged.read_named("oci-layout")? else {
        return Err(StoreError::NotAnArchive {
            archive: staged.archive().into(),
            reason: "it has neither `oci-layout` nor `manifest.json`".into(),
        });
    };
    let layout =
        OciLayout::from_reader(&layout[..]).map_err(|e| bad_file(staged, "oci-layout", e))?;
    if layout.image_layout_version() != "1.0.0" {
        return Err(bad_file(
            staged,
            "oci-layout",
            format!(
                "unsupported imageLayoutVersion {}",
                layout.image_layout_version()
            ),
        ));
    }
    let Some(index) = staged.read_named("index.json")? else {
        return Err(StoreError::NotAnArchive {
            archive: staged.archive().into(),
            reason: "OCI layout without `index.json`".into(),
        });
    };
    let index =
        ImageIndex::from_reader(&index[..]).map_err(|e| bad_file(staged, "index.json", e))?;
    let mut images = Vec::new();
    for desc in index.manifests() {
        let names = descriptor_names(desc);
        images.push(oci_image(staged, desc, names, 0)?);
    }
    if images.is_empty() {
        return Err(bad_file(staged, "index.json", "it lists no image"));
    }
    Ok(images)
}

fn descriptor_names(desc: &Descriptor) -> Vec<String> {
    let annotations = desc.annotations().clone().unwrap_or_default();
    annotations
        .get(CONTAINERD_NAME)
        .or_else(|| annotations.get(REF_NAME))
        .map(|n| vec![n.clone()])
        .unwrap_or_default()
}

/// The image a descriptor of an index points to; an index (multi-platform)
/// is resolved to this machine's platform.
fn oci_image(
    staged: &Staged,
    desc: &Descriptor,
    names: Vec<String>,
    depth: u8,
) -> Result<FoundImage> {
    let digest: Digest = desc.digest().as_ref().parse()?;
    let bytes = staged
        .blob(&digest, || format!("manifest {digest}"))?
        .read_small()?;
    let file = format!("blobs/sha256/{}", digest.hex());
    let is_index = matches!(desc.media_type(), MediaType::ImageIndex)
        || desc.media_type().to_string() == DOCKER_MANIFEST_LIST;
    if is_index {
        if depth > 2 {
            return Err(bad_file(staged, &file, "image indexes nested too deep"));
        }
        let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| bad_file(staged, &file, e))?;
        let arch = host_arch();
        let chosen = index
            .manifests()
            .iter()
            .find(|d| {
                d.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == arch
                })
            })
            .ok_or_else(|| {
                bad_file(staged, &file, format!("no linux/{arch} image in the index"))
            })?;
        return oci_image(staged, chosen, names, depth + 1);
    }
    let manifest =
        ImageManifest::from_reader(&bytes[..]).map_err(|e| bad_file(staged, &file, e))?;
    Ok(FoundImage {
        names,
        manifest,
        manifest_bytes: bytes,
        manifest_digest: digest,
    })
}

/// The OCI architecture name of this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn docker_images(staged: &Staged, json: &[u8]) -> Result<Vec<FoundImage>> {
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(json).map_err(|e| bad_file(staged, "manifest.json", e))?;
    if entries.is_empty() {
        return Err(bad_file(staged, "manifest.json", "it lists no image"));
    }
    let missing = |what: String| StoreError::MissingBlob {
        archive: staged.archive().into(),
        what,
    };
    let descriptor =
        |name: &str, what: &str, media_type: Option<MediaType>| -> Result<Descriptor> {
            let digest = staged
                .digest_of(name)
                .ok_or_else(|| missing(format!("{what} `{name}` (named in manifest.json)")))?;
            let blob = staged.blob(&digest, || name.into())?;
            let media_type = match media_type {
                Some(t) => t,
                None => match blob.compression()? {
                    Compression::Gzip => MediaType::ImageLayerGzip,
                    Compression::Zstd => MediaType::ImageLayerZstd,
                    Compression::None => MediaType::ImageLayer,
                },
            };
            Ok(Descriptor::new(
                media_type,
                blob.size,
                oci_digest(staged, &digest)?,
            ))
        };
    let mut images = Vec::new();
    for entry in entries {
        let config = descriptor(&entry.config, "config", Some(MediaType::ImageConfig))?;
        let layers = entry
            .layers
            .iter()
            .map(|l| descriptor(l, "layer", None))
            .collect::<Result<Vec<_>>>()?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .map_err(|e| bad_file(staged, "manifest.json", e))?;
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| bad_file(staged, "manifest.json", e))?;
        images.push(FoundImage {
            names: entry.repo_tags.unwrap_or_default(),
            manifest,
            manifest_digest: Digest::of(&manifest_bytes),
            manifest_bytes,
        });
    }
    Ok(images)
}

fn oci_digest(staged: &Staged, d: &Digest) -> Result<oci_spec::image::Digest> {
    d.to_string()
        .parse()
        .map_err(|e| bad_file(staged, "manifest.json", e))
}
