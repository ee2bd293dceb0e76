//! Finding an image's signatures (referrers, then the `.sig` tag) and
//! checking each, within the bounds the module's doc gives.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use super::{
    CosignError, MAX_PAYLOAD, MAX_SIGNATURE_LAYERS, MAX_SIGNATURE_MANIFESTS, PublicKey,
    SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, Verified, payload,
    signature_tag,
};
use crate::client::{Endpoint, Registries};
use crate::error::RegistryError;
use crate::http::{HttpError, STALL_TIMEOUT};
use crate::manifest::{DOCKER_MANIFEST, MAX_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::reference::Reference;

/// What a signature manifest is fetched as.
const SIGNATURE_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// How long a signature manifest, referrers index or payload may take
/// to arrive, all of it.
const BODY_DEADLINE: std::time::Duration = STALL_TIMEOUT;

/// A descriptor, as indexes and manifests have them.
#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// An entry of a referrers index: only what picks cosign's out is
/// required of it (the others are not read).
#[derive(Deserialize)]
struct Referrer {
    #[serde(default)]
    digest: serde_json::Value,
    #[serde(default)]
    size: serde_json::Value,
    #[serde(rename = "artifactType", default)]
    artifact_type: serde_json::Value,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Referrer>,
}

#[derive(Deserialize)]
struct SignatureManifest {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// One verification's state: where it looked, and what it refused.
pub(super) struct Search<'a> {
    registries: &'a Registries,
    endpoint: &'a Endpoint,
    reference: &'a Reference,
    digest: &'a str,
    keys: &'a [PublicKey],
    image: String,
    looked: Vec<String>,
    failures: Vec<CosignError>,
    layers_left: usize,
}

impl<'a> Search<'a> {
    pub(super) fn new(
        registries: &'a Registries,
        endpoint: &'a Endpoint,
        reference: &'a Reference,
        digest: &'a str,
        keys: &'a [PublicKey],
        image: String,
    ) -> Self {
        Self {
            registries,
            endpoint,
            reference,
            digest,
            keys,
            image,
            looked: Vec::new(),
            failures: Vec::new(),
            layers_left: MAX_SIGNATURE_LAYERS,
        }
    }

    /// Why no signature verified: none found (and where it looked), the
    /// one refusal, or all of them.
    pub(super) fn into_error(self) -> CosignError {
        let Self {
            image,
            looked,
            mut failures,
            ..
        } = self;
        match failures.len() {
            0 => CosignError::NoSignature { image, looked },
            1 if !matches!(failures[0], CosignError::Registry { .. }) => failures.remove(0),
            _ => CosignError::NoneValid {
                image,
                looked,
                failures,
            },
        }
    }

    /// GETs `rest` of the repository: its body (or, past `limit`
    /// bytes, `None`: not read further) and its Docker-Content-Digest.
    async fn get(
        &self,
        rest: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<(Option<Vec<u8>>, Option<String>), RegistryError> {
        let mut response = self
            .registries
            .get(self.endpoint, &self.reference.repository, rest, accept, 0)
            .await?;
        let said = response.header("docker-content-digest").map(str::to_owned);
        let url = response.url.to_string();
        // Each chunk within the client's stall deadline, and the whole
        // (small) body within this one.
        let read = async {
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > limit {
                    return Ok(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, HttpError>(Some(body))
        };
        let body = tokio::time::timeout(BODY_DEADLINE, read)
            .await
            .map_err(|_| HttpError::Body {
                url,
                reason: format!("not complete within {}s", BODY_DEADLINE.as_secs()),
            })??;
        Ok((body, said))
    }

    fn registry_failure(&mut self, what: String, source: RegistryError) {
        self.looked.push(format!("{what}: failed"));
        self.failures.push(CosignError::Registry {
            image: self.image.clone(),
            what,
            source: Box::new(source),
        });
    }

    fn malformed(&mut self, what: String, reason: String) {
        self.failures.push(CosignError::Malformed {
            image: self.image.clone(),
            what,
            reason,
        });
    }

    /// The signature manifests the referrers API lists, newest (last)
    /// first.
    pub(super) async fn by_referrers(&mut self) -> Option<Verified> {
        let rest = format!(
            "referrers/{}?artifactType={}",
            self.digest,
            SIGNATURE_ARTIFACT_TYPE
                .replace('/', "%2F")
                .replace('+', "%2B")
        );
        let bytes = match self.get(&rest, Some(OCI_INDEX), MAX_MANIFEST).await {
            Ok((Some(bytes), _)) => bytes,
            Ok((None, _)) => {
                self.looked.push("the referrers API: too large".into());
                self.malformed(
                    "the referrers API's answer".into(),
                    format!("more than {MAX_MANIFEST} bytes"),
                );
                return None;
            }
            Err(RegistryError::NotFound { .. }) => {
                self.looked
                    .push("the registry has no referrers API (404)".into());
                return None;
            }
            Err(e) => {
                self.registry_failure("the referrers API".into(), e);
                return None;
            }
        };
        let index: Index = match serde_json::from_slice(&bytes) {
            Ok(index) => index,
            Err(e) => {
                self.looked.push("the referrers API: not an index".into());
                self.malformed(
                    "the referrers API's answer".into(),
                    format!("not an OCI index: {e}"),
                );
                return None;
            }
        };
        let signatures: Vec<&Referrer> = index
            .manifests
            .iter()
            .filter(|d| d.artifact_type.as_str() == Some(SIGNATURE_ARTIFACT_TYPE))
            .collect();
        self.looked.push(format!(
            "referrers: {} cosign signature manifest{}",
            signatures.len(),
            if signatures.len() == 1 { "" } else { "s" }
        ));
        if signatures.len() > MAX_SIGNATURE_MANIFESTS {
            self.looked.push(format!(
                "only the last {MAX_SIGNATURE_MANIFESTS} referrers were read"
            ));
        }
        let wanted: Vec<(String, Option<u64>)> = signatures
            .iter()
            .rev()
            .take(MAX_SIGNATURE_MANIFESTS)
            .map(|d| {
                (
                    d.digest.as_str().unwrap_or_default().to_owned(),
                    d.size.as_u64(),
                )
            })
            .collect();
        for (manifest, size) in wanted {
            if self.layers_left == 0 {
                break;
            }
            if let Some(verified) = self.referrer(&manifest, size).await {
                return Some(verified);
            }
        }
        None
    }

    async fn referrer(&mut self, manifest: &str, size: Option<u64>) -> Option<Verified> {
        let what = format!("signature manifest `{}`", manifest.escape_debug());
        if manifest.parse::<husk_store::Digest>().is_err() {
            self.malformed(
                "the referrers API's answer".into(),
                format!("{what} is not a sha256 digest"),
            );
            return None;
        }
        let what = format!("signature manifest {manifest}");
        let Some(size) = size else {
            self.malformed(what, "the referrers index gives it no size".into());
            return None;
        };
        if size > MAX_MANIFEST as u64 {
            self.malformed(
                what,
                format!("{size} bytes, more than a manifest may be ({MAX_MANIFEST})"),
            );
            return None;
        }
        let bytes = match self
            .get(
                &format!("manifests/{manifest}"),
                Some(SIGNATURE_ACCEPT),
                MAX_MANIFEST,
            )
            .await
        {
            Ok((Some(bytes), _)) => bytes,
            Ok((None, _)) => {
                self.malformed(what, format!("more than {MAX_MANIFEST} bytes"));
                return None;
            }
            Err(e) => {
                self.registry_failure(what, e);
                return None;
            }
        };
        let actual = husk_store::Digest::of(&bytes).to_string();
        if actual != manifest || bytes.len() as u64 != size {
            self.malformed(
                what,
                format!(
                    "the registry served {actual} ({} bytes), the referrers index says {size} bytes",
                    bytes.len()
                ),
            );
            return None;
        }
        self.signatures(manifest, &bytes, "referrers").await
    }

    /// The signature manifest tagged `sha256-<hex>.sig`.
    pub(super) async fn by_tag(&mut self) -> Option<Verified> {
        if self.layers_left == 0 {
            return None;
        }
        let tag = signature_tag(self.digest);
        let (bytes, said) = match self
            .get(
                &format!("manifests/{tag}"),
                Some(SIGNATURE_ACCEPT),
                MAX_MANIFEST,
            )
            .await
        {
            Ok((Some(bytes), said)) => (bytes, said),
            Ok((None, _)) => {
                self.looked.push(format!("tag {tag}: too large"));
                self.malformed(
                    format!("signature manifest {tag}"),
                    format!("more than {MAX_MANIFEST} bytes"),
                );
                return None;
            }
            Err(RegistryError::NotFound { .. }) => {
                self.looked.push(format!("no tag {tag}"));
                return None;
            }
            Err(e) => {
                self.registry_failure(format!("tag {tag}"), e);
                return None;
            }
        };
        self.looked.push(format!("tag {tag}: a signature manifest"));
        let manifest = husk_store::Digest::of(&bytes).to_string();
        if let Some(said) = said
            && said.starts_with("sha256:")
            && said != manifest
        {
            self.malformed(
                format!("signature manifest {tag}"),
                format!("the registry says it is {said}, it is {manifest}"),
            );
            return None;
        }
        self.signatures(&manifest, &bytes, "tag").await
    }

    /// The simple-signing layers of a signature manifest, each tried.
    async fn signatures(
        &mut self,
        manifest: &str,
        bytes: &[u8],
        found_by: &'static str,
    ) -> Option<Verified> {
        let what = format!("signature manifest {manifest}");
        let parsed: SignatureManifest = match serde_json::from_slice(bytes) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.malformed(what, format!("not a manifest: {e}"));
                return None;
            }
        };
        let is_manifest = match parsed.media_type.as_deref() {
            None => parsed.manifests.is_none(),
            Some(media_type) => media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST,
        };
        if !is_manifest {
            self.malformed(
                what,
                format!(
                    "not an image manifest (media type `{}`)",
                    parsed
                        .media_type
                        .as_deref()
                        .unwrap_or("none, with manifests")
                ),
            );
            return None;
        }
        let layers: Vec<Descriptor> = parsed
            .layers
            .into_iter()
            .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
            .collect();
        if layers.is_empty() {
            self.malformed(
                what,
                format!("no layer of media type {SIMPLE_SIGNING_MEDIA_TYPE}"),
            );
            return None;
        }
        for layer in &layers {
            if self.layers_left == 0 {
                self.looked.push(format!(
                    "only the first {MAX_SIGNATURE_LAYERS} signatures were looked at"
                ));
                return None;
            }
            self.layers_left -= 1;
            match self.signature(manifest, layer, found_by).await {
                Ok(verified) => return Some(verified),
                Err(e) => self.failures.push(e),
            }
        }
        None
    }

    /// One signature layer: its payload fetched and checked, its
    /// signature verified, then what the payload says.
    async fn signature(
        &self,
        manifest: &str,
        layer: &Descriptor,
        found_by: &'static str,
    ) -> Result<Verified, CosignError> {
        let image = self.image.clone();
        let manifest = manifest.to_owned();
        let name = layer.digest.clone();
        let annotation = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION));
        let Some(annotation) = annotation else {
            return Err(CosignError::Malformed {
                image,
                what: format!("signature layer {name} of {manifest}"),
                reason: format!("no `{SIGNATURE_ANNOTATION}` annotation"),
            });
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(annotation.as_bytes())
            .map_err(|e| CosignError::BadBase64 {
                image: image.clone(),
                manifest: manifest.clone(),
                layer: name.clone(),
                reason: e.to_string(),
            })?;
        if layer.size > MAX_PAYLOAD {
            return Err(CosignError::PayloadTooLarge {
                image,
                manifest,
                layer: name,
                size: layer.size,
                limit: MAX_PAYLOAD,
            });
        }
        let wrong = |reason: String| CosignError::WrongBlob {
            image: image.clone(),
            manifest: manifest.clone(),
            layer: name.clone(),
            reason,
        };
        if layer.digest.parse::<husk_store::Digest>().is_err() {
            return Err(wrong("not a sha256 digest".into()));
        }
        let payload = match self
            .get(
                &format!("blobs/{}", layer.digest),
                None,
                MAX_PAYLOAD as usize,
            )
            .await
        {
            Ok((Some(payload), _)) => payload,
            Ok((None, _)) => {
                return Err(wrong(format!(
                    "the registry served more than {MAX_PAYLOAD} bytes, its descriptor says {}",
                    layer.size
                )));
            }
            Err(source) => {
                return Err(CosignError::Registry {
                    image,
                    what: format!("payload {name} of {manifest}"),
                    source: Box::new(source),
                });
            }
        };
        let actual = husk_store::Digest::of(&payload).to_string();
        if actual != layer.digest || payload.len() as u64 != layer.size {
            return Err(wrong(format!(
                "the registry served other bytes, {actual} ({} bytes; the descriptor says {})",
                payload.len(),
                layer.size
            )));
        }
        let Some(key) = self.keys.iter().find(|k| k.verifies(&payload, &signature)) else {
            return Err(CosignError::NotVerified {
                image,
                manifest,
                layer: name,
                keys: self.keys.iter().map(PublicKey::describe).collect(),
            });
        };
        let key = key.describe();
        let claims = payload::parse(&payload).map_err(|reason| CosignError::BadPayload {
            image: image.clone(),
            layer: name.clone(),
            key: key.clone(),
            reason,
        })?;
        if claims.digest != self.digest {
            return Err(CosignError::OtherDigest {
                image,
                layer: name,
                key,
                signed: claims.digest,
                digest: self.digest.to_owned(),
            });
        }
        if !payload::same_repository(self.reference, &claims.docker_reference) {
            return Err(CosignError::OtherRepository {
                image,
                layer: name,
                key,
                signed: claims.docker_reference,
                expected: payload::repository_of(self.reference),
            });
        }
        Ok(Verified {
            key,
            docker_reference: claims.docker_reference,
            found_by,
            signature_manifest: manifest,
        })
    }
}
