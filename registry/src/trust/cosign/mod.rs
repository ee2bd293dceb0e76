//! cosign-compatible image signatures: that the manifest (or index)
//! digest a reference resolved to is signed by one of the keys trusted
//! for it.
//!
//! What is verified is cosign's classic format, the one `cosign sign
//! --key cosign.key` writes (cosign 2's default; cosign 3 with
//! `--new-bundle-format=false`): a signature manifest, found
//!
//! 1. by the OCI 1.1 referrers API, `GET /v2/<repo>/referrers/<digest>`,
//!    among the entries of artifact type [`SIGNATURE_ARTIFACT_TYPE`]
//!    (what `cosign sign --registry-referrers-mode=oci-1-1` pushes:
//!    cosign's `ArtifactType("sig")`); a registry without the API
//!    answers 404 (distribution 2.8) and then
//! 2. by cosign's tag, `sha256-<hex>.sig` (`<algorithm>-<hex>.sig`, see
//!    [`signature_tag`]),
//!
//! whose layers of media type [`SIMPLE_SIGNING_MEDIA_TYPE`] each carry,
//! in the annotation [`SIGNATURE_ANNOTATION`], the base64 signature of
//! the layer's blob: a simple-signing payload ([`payload`]) naming the
//! signed digest and repository. A signature verifies when one key
//! verifies it (ECDSA P-256 over SHA-256, ASN.1 DER, or Ed25519), its
//! payload is a cosign image signature of *this* digest (a signature
//! copied from another image is refused), and it names this repository
//! (stricter than `cosign verify`, which does not look at
//! `docker-reference`: a signature made with `--sign-container-identity`
//! naming another repository is refused here).
//!
//! Not supported, and refused as "no valid signature" rather than passed:
//! keyless signatures (Fulcio certificates, Rekor bundles: the
//! `dev.sigstore.cosign/certificate`, `…/chain` and `…/bundle`
//! annotations are ignored, so such a signature verifies only if one of
//! the keys given made it), and the Sigstore bundle format (cosign 3's
//! default, `application/vnd.dev.sigstore.bundle.v0.3+json` referrers).
//! Only the first page of a referrers answer is read.
//!
//! What a registry sends is bounded: manifests and indexes by
//! [`MAX_MANIFEST`](crate::manifest::MAX_MANIFEST), payloads by
//! [`MAX_PAYLOAD`], and at most [`MAX_SIGNATURE_MANIFESTS`] manifests
//! and [`MAX_SIGNATURE_LAYERS`] signatures are looked at. Every refusal names the image, the
//! signature's manifest and layer, and the keys.

mod error;
mod key;
pub mod payload;
mod search;

use crate::client::{Endpoint, Registries};
use crate::reference::Reference;

pub use self::error::CosignError;
pub use self::key::{KeyAlgorithm, PublicKey};
pub use self::payload::PAYLOAD_TYPE;

/// The `artifactType` of cosign's signature manifests in the referrers
/// API (cosign's `ArtifactType("sig")`, `internal/pkg/oci/remote`).
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The media type of a signature layer (cosign's
/// `types.SimpleSigningMediaType`).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation of the base64 signature of its blob (cosign's
/// `static.SignatureAnnotationKey`).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The most a payload may be (cosign's are a few hundred bytes).
pub const MAX_PAYLOAD: u64 = 64 << 10;
/// The most signature layers looked at, in all.
pub const MAX_SIGNATURE_LAYERS: usize = 32;
/// The most signature manifests the referrers API's answer is read for.
pub const MAX_SIGNATURE_MANIFESTS: usize = 16;

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// [`PublicKey::describe`] of the key that verified it.
    pub key: String,
    /// The repository the payload names (`critical.identity`).
    pub docker_reference: String,
    /// `"referrers"` or `"tag"`: how the signature was found.
    pub found_by: &'static str,
    /// The digest of the signature manifest it is in.
    pub signature_manifest: String,
}

/// cosign's tag for the signatures of `digest`: `sha256:<hex>` →
/// `sha256-<hex>.sig` (`pkg/oci/remote`'s `normalize`).
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// Verifies that `digest` (the manifest or index digest the reference
/// resolved to; `sha256:<hex>`) of `reference`'s repository is signed
/// by one of `keys`, looking at `endpoint` (the one the manifest came
/// from): see the module's doc.
pub async fn verify(
    registries: &Registries,
    endpoint: &Endpoint,
    reference: &Reference,
    digest: &str,
    keys: &[PublicKey],
) -> Result<Verified, CosignError> {
    let image = {
        let mut named = reference.clone();
        named.digest = Some(digest.to_owned());
        named.to_string()
    };
    if digest.parse::<husk_store::Digest>().is_err() {
        return Err(CosignError::BadDigest {
            image,
            digest: digest.into(),
        });
    }
    if keys.is_empty() {
        return Err(CosignError::NoKeys { image });
    }
    let mut search = search::Search::new(registries, endpoint, reference, digest, keys, image);
    if let Some(verified) = search.by_referrers().await {
        return Ok(verified);
    }
    if let Some(verified) = search.by_tag().await {
        return Ok(verified);
    }
    Err(search.into_error())
}
