use std::os::unix::fs::PermissionsExt;

use husk_api::tls::ClientIdentity;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

fn der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    husk_api::tls::certificates(&pem, "test").unwrap()[0].to_vec()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn strings<'a>(
    values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Vec<String> {
    values.map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[test]
fn init_then_issue_then_server() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("pki");
    init(&ca_dir).unwrap();
    assert_eq!(mode(&ca_dir), 0o700);
    assert_eq!(mode(&ca_dir.join("ca.pem")), 0o644);
    assert_eq!(mode(&ca_dir.join("ca-key.pem")), 0o600);
    let ca_der = der(&ca_dir.join("ca.pem"));
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert!(ca.is_ca());
    let constraints = ca.basic_constraints().unwrap().unwrap().value;
    assert_eq!(constraints.path_len_constraint, Some(0));
    let usage = ca.key_usage().unwrap().unwrap().value;
    assert!(usage.key_cert_sign() && usage.crl_sign() && !usage.digital_signature());
    assert_eq!(strings(ca.subject().iter_common_name()), ["Husk API CA"]);
    let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp())
        / (365 * 86_400);
    assert_eq!(years, 10);

    let out = dir.path().join("client");
    let until = issue(&ca_dir, &out, "alice", Role::Operator, 30).unwrap();
    assert_eq!(
        until,
        (OffsetDateTime::now_utc() + Duration::days(30)).date()
    );
    assert_eq!(mode(&out.join("key.pem")), 0o600);
    assert_eq!(mode(&out.join("cert.pem")), 0o644);
    let cert_pem = std::fs::read(out.join("cert.pem")).unwrap();
    let key_pem = std::fs::read(out.join("key.pem")).unwrap();
    ClientIdentity::from_pem(&cert_pem, &key_pem, "alice").unwrap();
    let client_der = der(&out.join("cert.pem"));
    let (_, client) = X509Certificate::from_der(&client_der).unwrap();
    assert_eq!(strings(client.subject().iter_common_name()), ["alice"]);
    assert_eq!(
        strings(client.subject().iter_organization()),
        ["husk:operator"]
    );
    assert_eq!(
        Role::from_organizations(
            strings(client.subject().iter_organization())
                .iter()
                .map(String::as_str)
        ),
        Some(Role::Operator)
    );
    assert_eq!(client.issuer(), ca.subject());
    client.verify_signature(Some(ca.public_key())).unwrap();
    assert!(!client.is_ca());
    let eku = client.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(
        client
            .key_usage()
            .unwrap()
            .unwrap()
            .value
            .digital_signature()
    );
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let before = client.validity().not_before.timestamp();
    assert!(
        (now - 6 * 60..=now - 4 * 60).contains(&before),
        "{before} vs {now}"
    );

    let machine = dir.path().join("machine");
    let fingerprint = server(
        &ca_dir,
        &machine,
        "node.example",
        &["192.0.2.7".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        &["node".to_owned(), "node.example".to_owned()],
        825,
    )
    .unwrap();
    assert_eq!(mode(&machine.join("server-key.pem")), 0o600);
    let server_der = der(&machine.join("server-cert.pem"));
    assert_eq!(fingerprint, Fingerprint::of(&server_der));
    assert_eq!(
        super::fingerprint(&machine.join("server-cert.pem")).unwrap(),
        fingerprint
    );
    let (_, cert) = X509Certificate::from_der(&server_der).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(name) => name.to_string(),
            GeneralName::IPAddress(ip) => format!("ip {ip:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sans,
        [
            "node.example".to_owned(),
            format!("ip {:?}", [192u8, 0, 2, 7]),
            format!(
                "ip {:?}",
                "2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
            ),
            "node".to_owned(),
        ]
    );

    // An address as the name is an IP SAN.
    server(&ca_dir, &dir.path().join("by-ip"), "192.0.2.8", &[], &[], 1).unwrap();
    let by_ip = der(&dir.path().join("by-ip/server-cert.pem"));
    let (_, cert) = X509Certificate::from_der(&by_ip).unwrap();
    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(sans[..], [GeneralName::IPAddress(&[192, 0, 2, 8])]);
}

#[test]
fn nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("pki");
    init(&ca_dir).unwrap();
    let ca = std::fs::read(ca_dir.join("ca.pem")).unwrap();
    let e = init(&ca_dir).unwrap_err();
    assert!(e.contains("ca-key.pem exists"), "{e}");
    assert_eq!(std::fs::read(ca_dir.join("ca.pem")).unwrap(), ca);

    // One file of the pair there already: neither is written.
    let out = dir.path().join("client");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("cert.pem"), "mine").unwrap();
    let e = issue(&ca_dir, &out, "bob", Role::Admin, 1).unwrap_err();
    assert!(e.contains("cert.pem exists"), "{e}");
    assert!(!out.join("key.pem").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("cert.pem")).unwrap(),
        "mine"
    );

    server(&ca_dir, &out, "node", &[], &[], 1).unwrap();
    let e = server(&ca_dir, &out, "node", &[], &[], 1).unwrap_err();
    assert!(e.contains("server-key.pem exists"), "{e}");
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        3,
        "no temporary files left"
    );
}

#[test]
fn a_missing_ca_and_bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = issue(dir.path(), dir.path(), "carol", Role::Reader, 1).unwrap_err();
    assert!(
        e.contains("ca.pem: no such file") && e.contains("huskctl pki init"),
        "{e}"
    );
    init(dir.path()).unwrap();
    let e = server(dir.path(), dir.path(), "bad name", &[], &[], 1).unwrap_err();
    assert!(e.contains("`bad name` is not a DNS name"), "{e}");
    assert!(issue(dir.path(), dir.path(), "", Role::Reader, 1).is_err());
    assert_eq!(parse_role("admin").unwrap(), Role::Admin);
    assert_eq!(
        parse_role("root").unwrap_err(),
        "the roles are admin, operator, reader"
    );
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    assert!(
        fingerprint(&dir.path().join("empty.pem"))
            .unwrap_err()
            .contains("no PEM certificate")
    );
}
