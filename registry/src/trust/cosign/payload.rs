//! The payload a cosign signature signs: a "simple signing" JSON
//! document (containers-signature(5), as sigstore's
//! `payload.SimpleContainerImage` writes it):
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"index.docker.io/library/nginx"},
//!   "image":{"docker-manifest-digest":"sha256:…"},
//!   "type":"cosign container image signature"},"optional":null}
//! ```
//!
//! Read only once its signature has verified. `critical` is what the
//! signer vouches for: every member of it is understood or the payload is
//! refused (containers-signature(5) has consumers reject what they do not
//! know there); `optional` (cosign's `-a key=value` annotations) is not
//! looked at.

use serde::Deserialize;

use crate::reference::Reference;

/// `critical.type` of a cosign image signature (sigstore's
/// `payload.CosignSignatureType`).
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// What a payload says, once it parses as a cosign image signature.
pub(super) struct Claims {
    pub docker_reference: String,
    pub digest: String,
}

/// The payload's claims; the reason it is not a cosign image signature.
pub(super) fn parse(payload: &[u8]) -> Result<Claims, String> {
    let parsed: SimpleSigning = serde_json::from_slice(payload)
        .map_err(|e| format!("not a simple-signing payload: {e}"))?;
    if parsed.critical.kind != PAYLOAD_TYPE {
        return Err(format!(
            "critical.type is `{}`, not `{PAYLOAD_TYPE}`",
            parsed.critical.kind.escape_debug()
        ));
    }
    Ok(Claims {
        docker_reference: parsed.critical.identity.docker_reference,
        digest: parsed.critical.image.docker_manifest_digest,
    })
}

/// `registry/repository` of `reference`, as a payload would name it.
pub fn repository_of(reference: &Reference) -> String {
    format!("{}/{}", reference.registry, reference.repository)
}

/// Whether `docker_reference` (`index.docker.io/library/nginx`,
/// `127.0.0.1:5000/team/app`, with a tag or not) names the repository
/// of `reference`, both normalised as Docker does (`index.docker.io`,
/// `registry-1.docker.io` and `docker.io` are Docker Hub, whose
/// one-component names are in `library/`).
pub fn same_repository(reference: &Reference, docker_reference: &str) -> bool {
    match Reference::parse(docker_reference) {
        Ok(named) => {
            named.registry == reference.registry && named.repository == reference.repository
        }
        Err(_) => false,
    }
}
