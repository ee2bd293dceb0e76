//! cosign signatures made as cosign makes them, for tests of what
//! verifies them: key pairs (`cosign generate-key-pair`'s ECDSA P-256,
//! or Ed25519) and their `cosign.pub`, simple-signing payloads, and
//! signature manifests published into a [`Content`] by tag
//! (`sha256-<hex>.sig`) or as a referrer (a manifest whose subject is the
//! image). The format is cosign's, written here independently of
//! husk-registry's reader.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use serde_json::json;

use crate::fake_registry::{Content, Image, OCI_CONFIG, OCI_MANIFEST, base64_encode};
use crate::sha256;

/// The artifact type of a signature manifest made for the referrers API
/// (cosign's `WriteSignaturesExperimentalOCI`).
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The media type of a signature layer (cosign's
/// `types.SimpleSigningMediaType`).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation of the base64 signature of its blob (cosign's
/// `static.SignatureAnnotationKey`).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A cosign key pair: `cosign generate-key-pair`'s ECDSA P-256, or
/// Ed25519.
pub enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Signer {
    pub fn ecdsa() -> Self {
        Self::Ecdsa(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap())
    }

    pub fn ed25519() -> Self {
        Self::Ed25519(Ed25519KeyPair::generate().unwrap())
    }

    /// The public key's SubjectPublicKeyInfo, DER.
    pub fn spki(&self) -> Vec<u8> {
        match self {
            Self::Ecdsa(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            Self::Ed25519(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
        }
    }

    /// `cosign.pub`.
    pub fn pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki())
    }

    /// The base64 signature of `payload`, as cosign puts it in the
    /// layer's annotation (ECDSA: over its SHA-256, ASN.1 DER).
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature = match self {
            Self::Ecdsa(k) => k
                .sign(&SystemRandom::new(), payload)
                .unwrap()
                .as_ref()
                .to_vec(),
            Self::Ed25519(k) => k.sign(payload).as_ref().to_vec(),
        };
        base64_encode(&signature)
    }
}

/// A PEM block, 64 columns of base64, as Go's `pem.Encode` writes it.
pub fn pem(label: &str, der: &[u8]) -> String {
    let text = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The simple-signing payload, byte for byte as sigstore's
/// `payload.Cosign.MarshalJSON` makes it (no annotations).
/// `docker_reference` is the repository as cosign names it
/// (`127.0.0.1:5000/team/app`), `digest` the image's `sha256:<hex>`.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{docker_reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

/// One signature layer: the payload and its base64 signature.
pub struct Sig {
    pub payload: Vec<u8>,
    pub signature: String,
}

/// `payload` signed by `signer`.
pub fn sig(signer: &Signer, payload: Vec<u8>) -> Sig {
    let signature = signer.sign(&payload);
    Sig { payload, signature }
}

/// cosign's tag of the signatures of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// A signature manifest of `sigs` (as cosign's `WriteSignatures` makes
/// it; with `subject` (digest, size) and the artifact type as
/// `WriteSignaturesExperimentalOCI`'s). `blobs` stores its payloads and
/// config (into a [`Content`], or a real registry) and returns each one's
/// digest.
pub fn signature_manifest(
    blobs: &mut dyn FnMut(Vec<u8>) -> String,
    sigs: &[Sig],
    subject: Option<(&str, usize)>,
) -> Vec<u8> {
    let layers: Vec<_> = sigs
        .iter()
        .map(|s| {
            json!({
                "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
                "size": s.payload.len(),
                "digest": blobs(s.payload.clone()),
                "annotations": {SIGNATURE_ANNOTATION: s.signature},
            })
        })
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": sigs.iter().map(|s| sha256(&s.payload)).collect::<Vec<_>>()},
        "config": {},
    }))
    .unwrap();
    let config_size = config.len();
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config_size, "digest": blobs(config)},
        "layers": layers,
    });
    if let Some((digest, size)) = subject {
        manifest["artifactType"] = json!(SIGNATURE_ARTIFACT_TYPE);
        manifest["config"]["mediaType"] = json!(SIGNATURE_ARTIFACT_TYPE);
        manifest["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size});
    }
    serde_json::to_vec(&manifest).unwrap()
}

/// Publishes `sigs` for `image` of `repository` as cosign does to a
/// registry without the referrers API: the manifest tagged
/// `sha256-<hex>.sig` (replacing what that tag had). Returns the
/// signature manifest's digest.
pub fn by_tag(content: &mut Content, repository: &str, image: &Image, sigs: &[Sig]) -> String {
    let manifest = signature_manifest(&mut |b| content.blob(b), sigs, None);
    content.manifest(
        repository,
        &signature_tag(&image.manifest),
        OCI_MANIFEST,
        manifest,
    )
}

/// Publishes `sigs` for `image` of `repository` as a referrer (an
/// untagged manifest whose subject it is). Returns its digest.
pub fn by_referrer(content: &mut Content, repository: &str, image: &Image, sigs: &[Sig]) -> String {
    let manifest = signature_manifest(
        &mut |b| content.blob(b),
        sigs,
        Some((&image.manifest, image.manifest_size)),
    );
    content.untagged_manifest(repository, OCI_MANIFEST, manifest)
}
