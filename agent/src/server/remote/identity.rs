//! The machine's TLS identity: the certificate and key the operator
//! gave (user-data or agent.toml `[api] server_cert`/`server_key`), or
//! the ones the machine made at its first boot and keeps on the data
//! partition (`<root>/api/`), whose fingerprint clients pin.

use std::path::{Path, PathBuf};

use husk_api::tls::Fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The machine-made pair, under the data partition's `api/`.
pub const MACHINE_CERT: &str = "machine-cert.pem";
pub const MACHINE_KEY: &str = "machine-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{what}: {message}")]
    Pem { what: String, message: String },
    #[error("{what}: no certificate in it")]
    NoCertificate { what: String },
    #[error("{what}: the key is not the certificate's ({source})")]
    Mismatch { what: String, source: rustls::Error },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("making the machine's certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Whose certificate the machine presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Issued by the operator: clients check it against their CA.
    Operator,
    /// Made by the machine: clients pin its fingerprint.
    Machine,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Operator => "operator",
            Origin::Machine => "machine",
        }
    }
}

#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub origin: Origin,
}

impl Identity {
    /// The operator's certificate chain and key, checked to go together.
    pub fn from_pem(cert: &str, key: &str) -> Result<Self, IdentityError> {
        Self::parse(cert, key, "api.server_cert", Origin::Operator)
    }

    fn parse(cert: &str, key: &str, what: &str, origin: Origin) -> Result<Self, IdentityError> {
        let pem = |message: String| IdentityError::Pem {
            what: what.to_owned(),
            message,
        };
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(e.to_string()))?;
        if chain.is_empty() {
            return Err(IdentityError::NoCertificate {
                what: what.to_owned(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|e| pem(format!("its key: {e}")))?;
        let provider = husk_api::tls::provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(
            |source| IdentityError::Mismatch {
                what: what.to_owned(),
                source,
            },
        )?;
        Ok(Self { chain, key, origin })
    }

    /// The machine's own pair from `dir`, made (and kept) when there is
    /// none. A pair that cannot be read is an error naming its file and
    /// is never replaced: clients have pinned it.
    pub fn machine(dir: &Path, hostname: &str) -> Result<Self, IdentityError> {
        let cert_path = dir.join(MACHINE_CERT);
        let key_path = dir.join(MACHINE_KEY);
        let read = |path: &Path| match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(IdentityError::Io {
                path: path.to_owned(),
                source,
            }),
        };
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| IdentityError::Io { path, source }
        };
        match (read(&cert_path)?, read(&key_path)?) {
            (Some(cert), Some(key)) => Self::parse(
                &cert,
                &key,
                &cert_path.display().to_string(),
                Origin::Machine,
            ),
            (cert, key) => {
                if cert.is_some() {
                    // A certificate without its key is of no use, and it
                    // is not what anyone pinned without the key either.
                    log::warn!(
                        "{} has no key beside it: making a new pair",
                        cert_path.display()
                    );
                }
                let key_pair = match key {
                    Some(pem) => rcgen::KeyPair::from_pem(&pem)?,
                    None => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
                };
                let cert = self_signed(&key_pair, hostname)?;
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                set_mode(dir, 0o700).map_err(io(dir))?;
                // The key first: a cut between the two leaves a key that
                // the next start makes the certificate from again.
                husk_common::atomic::write_atomic(
                    &key_path,
                    key_pair.serialize_pem().as_bytes(),
                    0o600,
                )
                .map_err(io(&key_path))?;
                husk_common::atomic::write_atomic(&cert_path, cert.as_bytes(), 0o644)
                    .map_err(io(&cert_path))?;
                Self::parse(
                    &cert,
                    &key_pair.serialize_pem(),
                    &cert_path.display().to_string(),
                    Origin::Machine,
                )
            }
        }
    }

    /// The fingerprint of the certificate presented (the chain's first).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.chain.first().map_or(&[][..], |c| c.as_ref()))
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// A certificate for the machine's key, valid for as long as it is kept:
/// clients trust it by its fingerprint, not by its dates (and the first
/// boot's clock may not be right yet).
fn self_signed(key: &rcgen::KeyPair, hostname: &str) -> Result<String, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Husk machine");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2120, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params.self_signed(key)?.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_pair_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api");
        let first = Identity::machine(&api, "node-1").unwrap();
        assert_eq!(first.origin, Origin::Machine);
        let again = Identity::machine(&api, "node-1").unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&api.join(MACHINE_KEY)), 0o600);
        assert_eq!(mode(&api), 0o700);

        // The certificate lost: made again from the same key.
        std::fs::remove_file(api.join(MACHINE_CERT)).unwrap();
        let remade = Identity::machine(&api, "node-1").unwrap();
        assert_eq!(remade.key.secret_der(), first.key.secret_der());

        // A damaged file is an error naming it, and is left as it is.
        std::fs::write(api.join(MACHINE_CERT), "garbage").unwrap();
        let err = Identity::machine(&api, "node-1").unwrap_err().to_string();
        assert!(err.contains(MACHINE_CERT), "{err}");
        assert_eq!(
            std::fs::read_to_string(api.join(MACHINE_CERT)).unwrap(),
            "garbage"
        );
    }

    #[test]
    fn an_operator_pair_must_go_together() {
        let one = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let ok = Identity::from_pem(&one.cert.pem(), &one.signing_key.serialize_pem()).unwrap();
        assert_eq!(ok.origin, Origin::Operator);
        let err = Identity::from_pem(&one.cert.pem(), &two.signing_key.serialize_pem())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the certificate's"), "{err}");
        let err = Identity::from_pem("", &one.signing_key.serialize_pem())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no certificate"), "{err}");
    }
}
