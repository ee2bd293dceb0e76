//! The client's side of the remote API's TLS: TLS 1.3 only, the client's
//! certificate always, and the machine's certificate trusted one of two
//! ways: issued by a CA the operator holds (checked as any HTTPS server's,
//! name and validity included), or pinned by its SHA-256 fingerprint —
//! the certificate the machine made itself at first boot, whose
//! fingerprint it prints on its console.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: no PEM certificate in it")]
    NoCertificate { what: String },
    #[error("{what}: {message}")]
    Pem { what: String, message: String },
    #[error("the client certificate and key do not go together: {0}")]
    Identity(rustls::Error),
    #[error("the CA certificates: {0}")]
    Roots(String),
    #[error("`{0}` is not a SHA-256 fingerprint (64 hex digits, `sha256:` and colons optional)")]
    Fingerprint(String),
}

/// A certificate's SHA-256 fingerprint: of its DER, as `openssl x509
/// -fingerprint -sha256` computes it. Shown as `sha256:` and lower-case
/// hex; read with or without the prefix and colons, in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = TlsError;

    fn from_str(text: &str) -> Result<Self, TlsError> {
        let bad = || TlsError::Fingerprint(text.to_owned());
        let trimmed = text.trim();
        let hex = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .or_else(|| trimmed.strip_prefix("sha256 Fingerprint="))
            .unwrap_or(trimmed);
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// How the client trusts the machine's certificate.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Issued by one of these CAs, for the name or address dialled.
    Ca(Vec<CertificateDer<'static>>),
    /// Exactly the certificate with this fingerprint.
    Pinned(Fingerprint),
    /// Whatever the machine presents, remembered (first contact: the
    /// caller shows the fingerprint and pins it).
    FirstUse,
}

/// The client's certificate chain and key, from PEM.
#[derive(Debug)]
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// `cert` and `key` are PEM texts; `what` names them in errors.
    pub fn from_pem(cert: &[u8], key: &[u8], what: &str) -> Result<Self, TlsError> {
        Ok(Self {
            chain: certificates(cert, &format!("{what} certificate"))?,
            key: PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
                what: format!("{what} key"),
                message: e.to_string(),
            })?,
        })
    }
}

/// Every certificate of a PEM text; at least one.
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// The provider every TLS configuration of the API uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What a [`ServerTrust::FirstUse`] connection saw.
pub type Seen = Arc<Mutex<Option<Fingerprint>>>;

/// A client configuration: TLS 1.3, this identity, this trust. The
/// returned [`Seen`] holds the fingerprint of the last certificate the
/// server presented (every trust records it).
pub fn client_config(
    identity: ClientIdentity,
    trust: ServerTrust,
) -> Result<(Arc<rustls::ClientConfig>, Seen), TlsError> {
    let provider = provider();
    let seen = Seen::default();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Identity)?;
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        ServerTrust::Ca(cas) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in cas {
                roots.add(ca).map_err(|e| TlsError::Roots(e.to_string()))?;
            }
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsError::Roots(e.to_string()))?;
            Arc::new(Recording {
                check: Check::WebPki(inner),
                seen: Arc::clone(&seen),
                provider,
            })
        }
        ServerTrust::Pinned(pin) => Arc::new(Recording {
            check: Check::Pinned(pin),
            seen: Arc::clone(&seen),
            provider,
        }),
        ServerTrust::FirstUse => Arc::new(Recording {
            check: Check::Any,
            seen: Arc::clone(&seen),
            provider,
        }),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(identity.chain, identity.key)
        .map_err(TlsError::Identity)?;
    Ok((Arc::new(config), seen))
}

/// The server-certificate check, recording what was presented.
#[derive(Debug)]
struct Recording {
    check: Check,
    seen: Seen,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
enum Check {
    WebPki(Arc<rustls::client::WebPkiServerVerifier>),
    Pinned(Fingerprint),
    Any,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(presented);
        }
        match &self.check {
            Check::WebPki(inner) => {
                inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            // A pinned certificate is trusted as itself: its name and
            // dates do not matter (the machine made it, possibly before
            // its clock was set).
            Check::Pinned(pin) if *pin == presented => Ok(ServerCertVerified::assertion()),
            Check::Pinned(pin) => Err(rustls::Error::General(format!(
                "the machine presented certificate {presented}, not the pinned {pin}"
            ))),
            Check::Any => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The configuration offers TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOfferedOrEnabled,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The proof that the server holds the key of the certificate
        // checked above: without it a pin would be worth nothing.
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_written() {
        let fp = Fingerprint::of(b"certificate");
        let shown = fp.to_string();
        assert!(
            shown.starts_with("sha256:") && shown.len() == 7 + 64,
            "{shown}"
        );
        assert_eq!(shown.parse::<Fingerprint>().unwrap(), fp);
        let openssl: String =
            fp.0.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
        assert_eq!(openssl.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(
            format!("sha256 Fingerprint={openssl}")
                .parse::<Fingerprint>()
                .unwrap(),
            fp
        );
        for bad in [
            "",
            "sha256:abc",
            &shown[..70],
            &format!("{shown}00"),
            &shown.replace('a', "g"),
        ] {
            if bad != shown {
                assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
            }
        }
    }
}
