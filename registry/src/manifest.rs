//! Manifests as registries serve them: OCI and Docker schema 2 image
//! manifests, OCI indexes and Docker manifest lists (resolved to one
//! platform), each checked against its digest and refused with a reason
//! when it is something else (schema 1, an artifact, a foreign layer).

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::client::{Endpoint, Registries};
use super::error::RegistryError;
use super::platform::Platform;
use super::reference::Reference;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// What a manifest request accepts, best first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// containerd's limit on a manifest: anything larger is not one.
pub const MAX_MANIFEST: usize = 4 << 20;

/// The layer media types that can be unpacked here.
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
];
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A manifest fetched and verified, and the endpoint that served it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest: ImageManifest,
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// The index it was chosen from, if any.
    pub index_digest: Option<String>,
    pub endpoint: Endpoint,
}

/// Fetches the reference's manifest, from the first endpoint that has
/// it, and the platform's image when it is an index.
pub async fn resolve(
    registries: &Registries,
    reference: &Reference,
    platform: &Platform,
) -> Result<Resolved, RegistryError> {
    let mut errors = Vec::new();
    for endpoint in registries.endpoints(reference) {
        match resolve_at(registries, &endpoint, reference, platform).await {
            Ok(resolved) => return Ok(resolved),
            Err(e) if endpoint.mirror && e.falls_through() => {
                log::warn!(
                    "pull {reference}: mirror {}: {e}; trying the next",
                    endpoint.base
                );
                errors.push(format!("mirror {}: {e}", endpoint.base));
            }
            Err(e) if errors.is_empty() => return Err(e),
            Err(e) => {
                errors.push(e.to_string());
                return Err(RegistryError::AllEndpoints {
                    reference: reference.to_string(),
                    errors,
                });
            }
        }
    }
    Err(RegistryError::AllEndpoints {
        reference: reference.to_string(),
        errors,
    })
}

async fn resolve_at(
    registries: &Registries,
    endpoint: &Endpoint,
    reference: &Reference,
    platform: &Platform,
) -> Result<Resolved, RegistryError> {
    let (media_type, bytes, digest) = fetch(
        registries,
        endpoint,
        reference,
        reference.manifest_reference(),
    )
    .await?;
    let chosen = match read(reference, &media_type, &bytes, platform)? {
        Answer::Manifest(manifest) => {
            return Ok(Resolved {
                manifest: *manifest,
                bytes,
                digest,
                index_digest: None,
                endpoint: endpoint.clone(),
            });
        }
        Answer::Index(chosen) => chosen,
    };
    let child_digest = chosen.digest().to_string();
    // Only a digest that is checked binds the manifest to its index.
    if child_digest.parse::<husk_store::Digest>().is_err() {
        return Err(bad(
            reference,
            format!("index entry `{child_digest}`: only sha256 digests are supported"),
        ));
    }
    let (child_type, child_bytes, child_computed) =
        fetch(registries, endpoint, reference, &child_digest).await?;
    if is_index(&child_type, &child_bytes) {
        return Err(bad(
            reference,
            format!("{child_digest} is an index inside an index"),
        ));
    }
    if child_bytes.len() as u64 != chosen.size() {
        return Err(bad(
            reference,
            format!(
                "manifest {child_digest} is {} bytes, its index says {}",
                child_bytes.len(),
                chosen.size()
            ),
        ));
    }
    let manifest = parse_manifest(reference, &child_type, &child_bytes)?;
    Ok(Resolved {
        manifest,
        bytes: child_bytes,
        digest: child_computed,
        index_digest: Some(digest),
        endpoint: endpoint.clone(),
    })
}

/// What a manifest answer is.
#[derive(Debug, Clone)]
pub enum Answer {
    /// An image manifest that can run here.
    Manifest(Box<ImageManifest>),
    /// An index, and its entry for the platform.
    Index(Box<Descriptor>),
}

/// Reads a registry's manifest answer as [`resolve`] does: an index
/// resolved to `platform`'s entry, or an image manifest checked for what
/// can be unpacked here.
pub fn read(
    reference: &Reference,
    media_type: &str,
    bytes: &[u8],
    platform: &Platform,
) -> Result<Answer, RegistryError> {
    if !is_index(media_type, bytes) {
        return parse_manifest(reference, media_type, bytes).map(|m| Answer::Manifest(Box::new(m)));
    }
    let index =
        ImageIndex::from_reader(bytes).map_err(|e| bad(reference, format!("index: {e}")))?;
    let chosen = index.manifests().iter().find(|m| {
        m.platform().as_ref().is_some_and(|p| {
            platform.matches(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            )
        })
    });
    if let Some(chosen) = chosen {
        return Ok(Answer::Index(Box::new(chosen.clone())));
    }
    let available = index
        .manifests()
        .iter()
        .filter_map(|m| m.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect::<Vec<_>>();
    Err(RegistryError::NoPlatform {
        reference: reference.to_string(),
        wanted: platform.to_string(),
        available: if available.is_empty() {
            "no platforms".into()
        } else {
            available.join(", ")
        },
    })
}

/// One manifest by tag or digest: its media type, bytes and digest,
/// which must be the one asked for (by digest) and the one the registry
/// says (`Docker-Content-Digest`).
async fn fetch(
    registries: &Registries,
    endpoint: &Endpoint,
    reference: &Reference,
    by: &str,
) -> Result<(String, Vec<u8>, String), RegistryError> {
    let response = registries
        .get(
            endpoint,
            &reference.repository,
            &format!("manifests/{by}"),
            Some(ACCEPT),
            0,
        )
        .await
        .map_err(|e| match e {
            RegistryError::NotFound { message, .. } => RegistryError::NotFound {
                reference: format!(
                    "{}/{}:{by} at {}",
                    reference.registry, reference.repository, endpoint.base
                ),
                message,
            },
            other => other,
        })?;
    let media_type = response
        .header("content-type")
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_owned())
        .unwrap_or_default();
    let said = response.header("docker-content-digest").map(str::to_owned);
    let bytes = response.bytes(MAX_MANIFEST).await?.to_vec();
    let digest = husk_store::Digest::of(&bytes).to_string();
    if by.starts_with("sha256:") && digest != by {
        return Err(RegistryError::Digest {
            what: format!("manifest {by} of {reference}"),
            expected: by.into(),
            actual: digest,
        });
    }
    if let Some(said) = said
        && said.starts_with("sha256:")
        && said != digest
    {
        return Err(RegistryError::Digest {
            what: format!("manifest of {reference} (the registry's Docker-Content-Digest)"),
            expected: said,
            actual: digest,
        });
    }
    Ok((media_type, bytes, digest))
}

/// The body's own `mediaType` wins over a missing or generic header;
/// an OCI index may carry neither, but has `manifests`.
fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        return true;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(p) => match p.media_type.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(_) => false,
            None => p.manifests.is_some(),
        },
        Err(_) => false,
    }
}

fn bad(reference: &Reference, reason: String) -> RegistryError {
    RegistryError::BadManifest {
        reference: reference.to_string(),
        reason,
    }
}

fn parse_manifest(
    reference: &Reference,
    media_type: &str,
    bytes: &[u8],
) -> Result<ImageManifest, RegistryError> {
    // The body's schemaVersion, however it is spaced (schema 1 was
    // pretty-printed JWS), and whatever type it is served as.
    #[derive(serde::Deserialize)]
    struct Version {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u64>,
    }
    let version = serde_json::from_slice::<Version>(bytes)
        .ok()
        .and_then(|v| v.schema_version);
    if media_type.starts_with(DOCKER_SCHEMA1) || version == Some(1) {
        return Err(bad(
            reference,
            "a Docker schema 1 manifest: deprecated and not supported (push it again with a current client)".into(),
        ));
    }
    let manifest =
        ImageManifest::from_reader(bytes).map_err(|e| bad(reference, format!("manifest: {e}")))?;
    if manifest.schema_version() != 2 {
        return Err(bad(
            reference,
            format!("schemaVersion {}", manifest.schema_version()),
        ));
    }
    let config_type = manifest.config().media_type().to_string();
    if !CONFIG_TYPES.contains(&config_type.as_str()) {
        return Err(bad(
            reference,
            format!("config media type `{config_type}`: not a container image (an artifact?)"),
        ));
    }
    for layer in manifest.layers() {
        let layer_type = layer.media_type().to_string();
        if !LAYER_TYPES.contains(&layer_type.as_str()) {
            return Err(bad(
                reference,
                format!(
                    "layer {} has media type `{layer_type}`, which cannot be unpacked here",
                    layer.digest()
                ),
            ));
        }
        if layer.urls().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(bad(
                reference,
                format!(
                    "layer {} is foreign (fetched from its own URLs)",
                    layer.digest()
                ),
            ));
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_detection() {
        assert!(is_index(OCI_INDEX, b"{}"));
        assert!(is_index("", br#"{"schemaVersion":2,"manifests":[]}"#));
        assert!(is_index(
            "application/json",
            br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}"#
        ));
        assert!(!is_index("", br#"{"schemaVersion":2,"config":{}}"#));
    }

    #[test]
    fn what_cannot_run_is_refused_with_its_reason() {
        let r = Reference::parse("x").unwrap();
        let manifest = |config: &str, layer: &str, extra: &str| {
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"{config}","digest":"sha256:{z}","size":2}},"layers":[{{"mediaType":"{layer}","digest":"sha256:{z}","size":2{extra}}}]}}"#,
                z = "0".repeat(64)
            )
        };
        let ok = manifest(CONFIG_TYPES[0], LAYER_TYPES[2], "");
        parse_manifest(&r, OCI_MANIFEST, ok.as_bytes()).unwrap();
        for (text, says) in [
            (
                manifest(
                    "application/vnd.cncf.helm.config.v1+json",
                    LAYER_TYPES[1],
                    "",
                ),
                "artifact",
            ),
            (
                manifest(
                    CONFIG_TYPES[1],
                    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                    "",
                ),
                "cannot be unpacked",
            ),
            (
                manifest(CONFIG_TYPES[1], LAYER_TYPES[3], r#","urls":["https://x"]"#),
                "foreign",
            ),
            (r#"{"schemaVersion":1,"name":"x"}"#.to_string(), "schema 1"),
            ("not json".to_string(), "manifest:"),
        ] {
            let err = parse_manifest(&r, "", text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
