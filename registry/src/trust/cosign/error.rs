//! What a verification fails on, each naming the image, the signature
//! and the keys.

use super::SIGNATURE_ANNOTATION;
use crate::error::RegistryError;

/// Why an image's signature is not accepted. `image` is the reference
/// with the digest verified (`registry/repository[:tag]@sha256:…`).
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("public key ({origin}): {reason}")]
    Key { origin: String, reason: String },
    #[error("{image}: no keys to verify its signature with")]
    NoKeys { image: String },
    #[error("{image}: `{digest}` is not a sha256 digest (sha256:<64 hex digits>)")]
    BadDigest { image: String, digest: String },
    #[error("{image}: no cosign signature found ({})", .looked.join("; "))]
    NoSignature {
        image: String,
        /// Where it looked and what it found there.
        looked: Vec<String>,
    },
    #[error("{image}: {what}: {source}")]
    Registry {
        image: String,
        what: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{image}: {what}: {reason}")]
    Malformed {
        image: String,
        /// The referrers index, or a signature manifest or layer.
        what: String,
        reason: String,
    },
    #[error(
        "{image}: signature layer {layer} of signature manifest {manifest}: its `{SIGNATURE_ANNOTATION}` annotation is not base64: {reason}"
    )]
    BadBase64 {
        image: String,
        manifest: String,
        layer: String,
        reason: String,
    },
    #[error("{image}: the signature in layer {layer} of signature manifest {manifest} does not verify with {}: {}", count_keys(.keys.len()), .keys.join(", "))]
    NotVerified {
        image: String,
        manifest: String,
        layer: String,
        /// [`PublicKey::describe`](super::PublicKey::describe) of each key tried.
        keys: Vec<String>,
    },
    #[error(
        "{image}: the payload {layer} signed by {key} is for {signed}, not {digest}: a signature of another image"
    )]
    OtherDigest {
        image: String,
        layer: String,
        key: String,
        signed: String,
        digest: String,
    },
    #[error(
        "{image}: the payload {layer} signed by {key} names repository `{signed}`, not {expected}"
    )]
    OtherRepository {
        image: String,
        layer: String,
        key: String,
        signed: String,
        expected: String,
    },
    #[error(
        "{image}: the payload {layer} signed by {key} is not a cosign image signature: {reason}"
    )]
    BadPayload {
        image: String,
        layer: String,
        key: String,
        reason: String,
    },
    #[error(
        "{image}: the payload {layer} of signature manifest {manifest} is {size} bytes, more than the {limit} allowed"
    )]
    PayloadTooLarge {
        image: String,
        manifest: String,
        layer: String,
        size: u64,
        limit: u64,
    },
    #[error("{image}: the payload {layer} of signature manifest {manifest}: {reason}")]
    WrongBlob {
        image: String,
        manifest: String,
        layer: String,
        reason: String,
    },
    #[error("{image}: no valid cosign signature ({}): {}", .looked.join("; "), failures_text(.image, .failures))]
    NoneValid {
        image: String,
        looked: Vec<String>,
        failures: Vec<CosignError>,
    },
}

fn count_keys(n: usize) -> String {
    match n {
        1 => "the key".into(),
        n => format!("any of the {n} keys"),
    }
}

/// The most failures [`CosignError::NoneValid`] spells out.
const SHOWN_FAILURES: usize = 8;

/// Each failure without the image every one starts with (the first
/// few, and how many more).
fn failures_text(image: &str, failures: &[CosignError]) -> String {
    let prefix = format!("{image}: ");
    let mut text = failures
        .iter()
        .take(SHOWN_FAILURES)
        .enumerate()
        .map(|(i, e)| {
            let text = e.to_string();
            let text = text.strip_prefix(&prefix).unwrap_or(&text).to_owned();
            format!("({}) {text}", i + 1)
        })
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > SHOWN_FAILURES {
        text.push_str(&format!("; and {} more", failures.len() - SHOWN_FAILURES));
    }
    text
}

impl CosignError {
    /// Whether a later try might succeed: the registry failed, not the
    /// signature.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Registry { source, .. } => source.is_transient(),
            Self::NoneValid { failures, .. } => failures.iter().all(Self::is_transient),
            _ => false,
        }
    }
}
