//! The public keys signatures are verified with: a PEM `PUBLIC KEY`
//! (an X.509 SubjectPublicKeyInfo), as `cosign generate-key-pair` writes
//! `cosign.pub` and `cosign public-key` prints it. ECDSA P-256 (cosign's
//! keys) and Ed25519; anything else is refused with what it is.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, ParsedPublicKey};
use base64::Engine as _;

use super::CosignError;

/// The most a key file may be: a PEM public key is a few hundred bytes.
const MAX_KEY_FILE: u64 = 64 << 10;

/// id-ecPublicKey (1.2.840.10045.2.1), RFC 5480.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / secp256r1 (1.2.840.10045.3.1.7).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// id-Ed25519 (1.3.101.112), RFC 8410.
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The algorithms a [`PublicKey`] can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256, signatures ASN.1 DER: cosign's keys.
    EcdsaP256,
    /// Ed25519 over the payload itself.
    Ed25519,
}

impl KeyAlgorithm {
    fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// A key signatures are verified with.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    key: ParsedPublicKey,
    /// The SubjectPublicKeyInfo, DER.
    spki: Vec<u8>,
    description: String,
}

impl PublicKey {
    /// A PEM `-----BEGIN PUBLIC KEY-----` block (the first in `pem`).
    pub fn from_pem(pem: &str) -> Result<Self, CosignError> {
        Self::parse_pem(pem).map_err(|reason| CosignError::Key {
            origin: "PEM text".into(),
            reason,
        })
    }

    /// [`PublicKey::from_pem`] of a file (`cosign.pub`).
    pub fn from_file(path: &Path) -> Result<Self, CosignError> {
        let bad = |reason: String| CosignError::Key {
            origin: path.display().to_string(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut text = Vec::new();
        file.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut text)
            .map_err(|e| bad(e.to_string()))?;
        if text.len() as u64 > MAX_KEY_FILE {
            return Err(bad(format!(
                "larger than {MAX_KEY_FILE} bytes: not a public key"
            )));
        }
        let text = String::from_utf8(text).map_err(|_| bad("not PEM text (not UTF-8)".into()))?;
        Self::parse_pem(&text).map_err(bad)
    }

    /// A DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CosignError> {
        Self::parse_spki(der).map_err(|reason| CosignError::Key {
            origin: "DER".into(),
            reason,
        })
    }

    /// `ecdsa-p256 sha256:<the first 12 hex digits of the SHA-256 of
    /// the SubjectPublicKeyInfo DER>`: what names the key in messages.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Whether `signature` is this key's over `message`: ECDSA P-256
    /// over its SHA-256, the signature ASN.1 DER (as cosign signs), or
    /// Ed25519 over the message.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    fn parse_pem(text: &str) -> Result<Self, String> {
        let (label, der) = pem_block(text)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::parse_spki(&der),
            "RSA PUBLIC KEY" => Err(unsupported("an RSA public key")),
            "CERTIFICATE" => Err(
                "a certificate, not a public key: certificate (keyless) verification is not \
                 supported; give the key itself (`cosign public-key`)"
                    .into(),
            ),
            label if label.contains("PRIVATE KEY") => Err(format!(
                "a private key (`{label}`): give the public key (cosign.pub), never the private one"
            )),
            label => Err(format!("a PEM `{label}`, not a `PUBLIC KEY`")),
        }
    }

    fn parse_spki(der: &[u8]) -> Result<Self, String> {
        let (algorithm, parameters) = spki_algorithm(der)?;
        let (algorithm, verification): (
            _,
            &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
        ) = match (algorithm, parameters) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256)) => {
                (KeyAlgorithm::EcdsaP256, &ECDSA_P256_SHA256_ASN1)
            }
            (OID_EC_PUBLIC_KEY, Some(curve)) => {
                return Err(unsupported(&format!(
                    "an ECDSA key on {}",
                    curve_name(curve)
                )));
            }
            (OID_EC_PUBLIC_KEY, None) => {
                return Err("an ECDSA key without a named curve".into());
            }
            (OID_ED25519, _) => (KeyAlgorithm::Ed25519, &ED25519),
            (oid, _) => return Err(unsupported(&algorithm_name(oid))),
        };
        let key = ParsedPublicKey::new(verification, der)
            .map_err(|e| format!("not a valid {} key: {e}", algorithm.name()))?;
        let fingerprint = husk_store::Digest::of(der).hex();
        Ok(Self {
            algorithm,
            key,
            spki: der.to_vec(),
            description: format!("{} sha256:{}", algorithm.name(), &fingerprint[..12]),
        })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.description)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

impl Eq for PublicKey {}

fn unsupported(what: &str) -> String {
    format!("{what}: only ECDSA P-256 keys (cosign's) and Ed25519 keys are supported")
}

/// The label and contents of the first PEM block of `text`.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
        })
        .ok_or("not PEM: no `-----BEGIN PUBLIC KEY-----` line")?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(format!(
                "the PEM `{label}` has headers (`{line}`): an encrypted key?"
            ));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("the PEM `{label}` has no `{end}` line"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("the PEM `{label}` is not base64: {e}"))?;
    Ok((label, der))
}

/// One DER TLV at the start of `input`: its tag, contents and what
/// follows.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let short = || "not DER: truncated".to_string();
    let (&tag, rest) = input.split_first().ok_or_else(short)?;
    let (&first, rest) = rest.split_first().ok_or_else(short)?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&len, rest) = rest.split_first().ok_or_else(short)?;
            (usize::from(len), rest)
        }
        0x82 => {
            let bytes = rest.get(..2).ok_or_else(short)?;
            (
                usize::from(bytes[0]) << 8 | usize::from(bytes[1]),
                &rest[2..],
            )
        }
        _ => return Err("not DER: a length this key cannot have".into()),
    };
    let contents = rest.get(..len).ok_or_else(short)?;
    Ok((tag, contents, &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;

/// The algorithm OID of a SubjectPublicKeyInfo and, when its parameters
/// are an OID (an EC curve), that too.
fn spki_algorithm(der: &[u8]) -> Result<(&[u8], Option<&[u8]>), String> {
    let not_spki = |what: &str| format!("not a SubjectPublicKeyInfo: {what}");
    let (tag, spki, rest) = tlv(der)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return Err(not_spki("not one DER SEQUENCE"));
    }
    let (tag, algorithm, rest) = tlv(spki)?;
    if tag != SEQUENCE {
        return Err(not_spki("no AlgorithmIdentifier"));
    }
    let (tag, key, rest) = tlv(rest)?;
    if tag != BIT_STRING || key.is_empty() || !rest.is_empty() {
        return Err(not_spki("no BIT STRING key after the algorithm"));
    }
    let (tag, oid, parameters) = tlv(algorithm)?;
    if tag != OID {
        return Err(not_spki("the algorithm is not an OID"));
    }
    let parameters = match parameters {
        [] => None,
        _ => match tlv(parameters)? {
            (OID, curve, []) => Some(curve),
            _ => None,
        },
    };
    Ok((oid, parameters))
}

fn curve_name(oid: &[u8]) -> String {
    match oid {
        [0x2b, 0x81, 0x04, 0x00, 0x22] => "P-384".into(),
        [0x2b, 0x81, 0x04, 0x00, 0x23] => "P-521".into(),
        [0x2b, 0x81, 0x04, 0x00, 0x0a] => "secp256k1".into(),
        oid => format!("curve {}", dotted(oid)),
    }
}

fn algorithm_name(oid: &[u8]) -> String {
    match oid {
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 | 0x0a] => "an RSA key".into(),
        [0x2b, 0x65, 0x71] => "an Ed448 key".into(),
        [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01] => "a DSA key".into(),
        oid => format!("a key of algorithm {}", dotted(oid)),
    }
}

/// An OID's dotted form (`1.2.840.113549.1.1.1`).
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &byte in oid {
        value = value.saturating_mul(128) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}
