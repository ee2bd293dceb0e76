//! The subject of a client certificate: its common name (who, for the
//! log) and its organizations (the role). rustls has already checked
//! the certificate against the client CA before this reads it; this reads
//! only the few DER fields it needs, bounded by the certificate's own
//! lengths. Written here rather than taken from x509-parser: two fields
//! do not justify its dozen crates in the agent.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client certificate's subject cannot be read: {0}")]
pub struct SubjectError(&'static str);

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;
/// 2.5.4.3 and 2.5.4.10.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

impl Subject {
    /// The subject of a DER certificate.
    pub fn of(der: &[u8]) -> Result<Self, SubjectError> {
        let (certificate, _) = expect(der, SEQUENCE, "certificate")?;
        let (tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate")?;
        let mut rest = tbs;
        if rest.first() == Some(&VERSION) {
            rest = element(rest)?.2;
        }
        // serialNumber, signature, issuer, validity, then the subject.
        for _ in 0..4 {
            rest = element(rest)?.2;
        }
        let (mut names, _) = expect(rest, SEQUENCE, "subject")?;
        let mut subject = Subject::default();
        while !names.is_empty() {
            let (mut set, after) = expect(names, SET, "relative distinguished name")?;
            names = after;
            while !set.is_empty() {
                let (pair, after) = expect(set, SEQUENCE, "attribute")?;
                set = after;
                let (oid, value) = expect(pair, OID, "attribute type")?;
                let (tag, text, _) = element(value)?;
                // UTF8String, PrintableString, IA5String, TeletexString:
                // what CAs write; BMPString and others are not names here.
                if !matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
                    continue;
                }
                let text = std::str::from_utf8(text)
                    .map_err(|_| SubjectError("a name that is not UTF-8"))?;
                if oid == COMMON_NAME {
                    subject.common_name = Some(text.to_owned());
                } else if oid == ORGANIZATION {
                    subject.organizations.push(text.to_owned());
                }
            }
        }
        Ok(subject)
    }

    /// `CN=alice`, for the log and refusals.
    pub fn describe(&self) -> String {
        match &self.common_name {
            Some(cn) => format!("CN={}", cn.escape_debug()),
            None => "a certificate without a CN".to_owned(),
        }
    }
}

/// The element at the start of `input`, which must have `tag`: its
/// content and what follows it.
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), SubjectError> {
    let (found, content, rest) = element(input)?;
    if found != tag {
        return Err(SubjectError(what));
    }
    Ok((content, rest))
}

/// One DER element: tag, content, the rest. Single-byte tags only (all a
/// certificate's fields up to the subject have them).
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), SubjectError> {
    let truncated = SubjectError("truncated");
    let (&tag, rest) = input.split_first().ok_or(truncated.clone())?;
    if tag & 0x1f == 0x1f {
        return Err(SubjectError("a multi-byte tag"));
    }
    let (&first, mut rest) = rest.split_first().ok_or(truncated.clone())?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(SubjectError("a bad length"));
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    if rest.len() < length {
        return Err(truncated);
    }
    let (content, rest) = rest.split_at(length);
    Ok((tag, content, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in dn {
            params.distinguished_name.push(ty.clone(), *value);
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn names_and_organizations() {
        let der = certificate(&[
            (rcgen::DnType::CommonName, "alice"),
            (rcgen::DnType::OrganizationName, "husk:operator"),
            (rcgen::DnType::CountryName, "NL"),
        ]);
        let subject = Subject::of(&der).unwrap();
        assert_eq!(subject.common_name.as_deref(), Some("alice"));
        assert_eq!(subject.organizations, ["husk:operator"]);
        assert_eq!(subject.describe(), "CN=alice");
        assert_eq!(Subject::of(&certificate(&[])).unwrap(), Subject::default());
    }

    #[test]
    fn damaged_certificates_are_errors_not_panics() {
        let der = certificate(&[(rcgen::DnType::CommonName, "alice")]);
        for end in 0..der.len() {
            let _ = Subject::of(&der[..end]);
        }
        assert!(Subject::of(&der[..der.len() / 2]).is_err());
        assert!(Subject::of(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Subject::of(&[0x1f, 0x00]).is_err());
        assert!(Subject::of(b"").is_err());
    }
}
