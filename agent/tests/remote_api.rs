//! The remote API: TLS 1.3 with client certificates and roles, against a
//! real agent on loopback. The hostile cases first: no certificate, one
//! from another CA, an expired one, a reader trying to run a container,
//! a pinned fingerprint that is not the machine's.

mod common;

use std::sync::Arc;

use common::Machine;
use husk_api::tls::{ClientIdentity, Fingerprint, ServerTrust};
use husk_api::{Client, ClientError, HEALTH_PATH, Health, SYSTEM_PATH, System};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn make_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(vec![]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert_pem = params.self_signed(&key).unwrap().pem();
    Ca {
        cert_pem,
        issuer: Issuer::new(params, key),
    }
}

/// A client certificate of `ca` for `name` with these organizations;
/// `expired`: its validity ended yesterday.
fn client(ca: &Ca, name: &str, organizations: &[&str], expired: bool) -> ClientIdentity {
    let mut params = CertificateParams::new(vec![]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    for o in organizations {
        params.distinguished_name.push(DnType::OrganizationName, *o);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    ClientIdentity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes(), name).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn only_the_ca_s_clients_get_in_and_only_as_far_as_their_role() {
    let ca = make_ca("Husk test CA");
    let port = common::free_port();
    let address = format!("127.0.0.1:{port}");
    let machine = Machine::start(&format!(
        "[api]\nlisten = [\"{address}\"]\nclient_ca = '''\n{}'''\n",
        ca.cert_pem
    ));
    let rt = runtime();

    // First contact: the fingerprint the machine presents is the one of
    // the certificate it made and keeps on its data partition.
    let admin = Client::remote(
        &address,
        client(&ca, "alice", &["husk:admin"], false),
        ServerTrust::FirstUse,
    )
    .unwrap();
    let health: Health = rt.block_on(admin.get(HEALTH_PATH)).unwrap();
    assert_eq!(health.status, "ok");
    let seen = admin.server_fingerprint().unwrap();
    let kept = std::fs::read(machine.dir.path().join("root/api/machine-cert.pem")).unwrap();
    let kept = husk_api::tls::certificates(&kept, "kept").unwrap();
    assert_eq!(seen, Fingerprint::of(kept[0].as_ref()));

    // Pinned: the same certificate passes, any other is refused.
    let pinned = Client::remote(
        &address,
        client(&ca, "alice", &["husk:admin"], false),
        ServerTrust::Pinned(seen),
    )
    .unwrap();
    let _: Health = rt.block_on(pinned.get(HEALTH_PATH)).unwrap();
    let wrong = Client::remote(
        &address,
        client(&ca, "alice", &["husk:admin"], false),
        ServerTrust::Pinned(Fingerprint([7; 32])),
    )
    .unwrap();
    let err = rt.block_on(wrong.get::<Health>(HEALTH_PATH)).unwrap_err();
    assert!(
        matches!(err, ClientError::Tls { .. }) && err.to_string().contains("not the pinned"),
        "{err}"
    );

    // A reader reads, and is refused a container with its role named.
    let reader = Client::remote(
        &address,
        client(&ca, "rita", &["husk:reader"], false),
        ServerTrust::Pinned(seen),
    )
    .unwrap();
    let list: serde_json::Value = rt.block_on(reader.get("/v1/containers")).unwrap();
    assert!(list["containers"].is_array(), "{list}");
    let err = rt
        .block_on(
            reader.post::<serde_json::Value>(
                "/v1/containers",
                &serde_json::json!({"image": "busybox"}),
            ),
        )
        .unwrap_err();
    match &err {
        ClientError::Status { status: 403, .. } => {}
        other => panic!("{other}"),
    }
    assert_eq!(
        err.agent_message().unwrap(),
        "CN=rita has the reader role: POST /v1/containers needs operator"
    );
    // An operator may not update the machine; a path that only looks
    // like a container's is not a way around it.
    let operator = Client::remote(
        &address,
        client(&ca, "otto", &["husk:operator"], false),
        ServerTrust::Pinned(seen),
    )
    .unwrap();
    let err = rt
        .block_on(operator.post_empty::<serde_json::Value>("/v1/update/apply"))
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Status { status: 403, .. }),
        "{err}"
    );
    let err = rt
        .block_on(operator.post_empty::<serde_json::Value>("/v1/containers/../update/apply"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Status {
                status: 404 | 403,
                ..
            }
        ),
        "{err}"
    );
    // A certificate of the CA without a Husk role may do nothing.
    let nobody = Client::remote(
        &address,
        client(&ca, "nemo", &["acme"], false),
        ServerTrust::Pinned(seen),
    )
    .unwrap();
    let err = rt.block_on(nobody.get::<Health>(HEALTH_PATH)).unwrap_err();
    assert!(err.to_string().contains("names no Husk role"), "{err}");

    // Refused in the handshake: another CA's certificate, an expired one.
    let stranger = make_ca("Another CA");
    for identity in [
        client(&stranger, "mallory", &["husk:admin"], false),
        client(&ca, "old", &["husk:admin"], true),
    ] {
        let client = Client::remote(&address, identity, ServerTrust::Pinned(seen)).unwrap();
        let err = rt.block_on(client.get::<Health>(HEALTH_PATH)).unwrap_err();
        assert!(matches!(err, ClientError::Tls { .. }), "{err}");
    }
    // And no certificate at all: a TLS alert, no HTTP answer.
    let no_cert = rt.block_on(without_certificate(&address));
    assert!(no_cert.is_err(), "{no_cert:?}");

    // The unix socket still serves root, and the counts are reported.
    let system: System = rt
        .block_on(Client::new(&machine.agent.socket).get(SYSTEM_PATH))
        .unwrap();
    assert_eq!(system.api["state"], "serving", "{}", system.api);
    assert_eq!(system.api["certificate"], "machine");
    assert_eq!(system.api["fingerprint"], seen.to_string());
    assert!(
        system.api["handshake_failures"].as_u64().unwrap() >= 3,
        "{}",
        system.api
    );
    assert!(
        system.api["refused_requests"].as_u64().unwrap() >= 3,
        "{}",
        system.api
    );

    let Machine { dir: _dir, agent } = machine;
    let log = agent.stop();
    assert!(log.contains(&format!("API certificate {seen}")), "{log}");
    assert!(log.contains("TLS handshake with 127.0.0.1:"), "{log}");
}

/// A TLS 1.3 client with no certificate: what it reads back.
async fn without_certificate(address: &str) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    #[derive(Debug)]
    struct AnyServer;
    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            husk_api::tls::provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(husk_api::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    tls.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    Ok(answer)
}

/// README's "Reach it remotely", as a user types it: the CA and the
/// certificate in the default config dir, the machine's CA from the
/// file the first command made, the fingerprint as the machine reports
/// it, the example address replaced by the test agent's.
#[test]
fn the_readme_remote_commands_work_as_written() {
    let commands = common::net_machine::readme_commands("## Reach it remotely");
    assert_eq!(commands.len(), 5, "{commands:?}");
    let home = tempfile::tempdir().unwrap();
    // Nothing local answers: `ps` can only have gone over TLS.
    assert!(!std::path::Path::new(husk_api::DEFAULT_SOCKET).exists());
    let user = |words: &[String]| {
        assert_eq!(words[0], "huskctl", "{words:?}");
        let out = std::process::Command::new(common::huskctl_bin())
            .args(&words[1..])
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("HUSK_HOST")
            .env_remove("HUSK_CONTEXT")
            .env_remove("HUSK_CERT_PATH")
            .output()
            .unwrap();
        assert!(out.status.success(), "{words:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    user(&commands[0]);
    let issued = user(&commands[1]);
    assert!(issued.contains("admin"), "{issued}");
    let ca = std::fs::read_to_string(home.path().join(".config/husk/pki/ca.pem")).unwrap();
    let port = common::free_port();
    let machine = Machine::start(&format!(
        "[api]\nlisten = [\"127.0.0.1:{port}\"]\nclient_ca = '''\n{ca}'''\n"
    ));
    let status: serde_json::Value =
        serde_json::from_str(&machine.agent.huskctl_ok(&["status", "--json"])).unwrap();
    let fingerprint = status["api"]["fingerprint"].as_str().unwrap().to_owned();
    assert!(fingerprint.starts_with("sha256:"), "{status}");
    let create: Vec<String> = commands[2]
        .iter()
        .map(|word| match word.as_str() {
            "tcp://203.0.113.10:7443" => format!("tcp://127.0.0.1:{port}"),
            "sha256:…" => fingerprint.clone(),
            _ => word.clone(),
        })
        .collect();
    assert_ne!(create, commands[2], "the README's address and fingerprint");
    user(&create);
    user(&commands[3]);
    let ps = user(&commands[4]);
    assert!(ps.starts_with("NAME"), "{ps}");
}

/// The machine's firewall drops what `[network] inbound` does not list;
/// the remote API's ports are let in without being listed there.
#[test]
fn the_listen_ports_are_open_in_the_machines_firewall() {
    if !common::enter_cgroup2_namespace("the_listen_ports_are_open_in_the_machines_firewall") {
        return;
    }
    let ca = make_ca("Husk test CA");
    let port = common::free_port();
    let _machine = Machine::start(&format!(
        "[network]\nhost_firewall = true\n[api]\nlisten = [\"127.0.0.1:{port}\"]\nclient_ca = '''\n{}'''\n",
        ca.cert_pem
    ));
    let rule = format!("tcp dport {port} accept");
    let table = || {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "inet", "husk"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ruleset = common::eventually(
        std::time::Duration::from_secs(10),
        "the API's port in the firewall",
        || Some(table()).filter(|t| t.contains(&rule)),
    );
    // The firewall is on: what is not let in is dropped.
    assert!(ruleset.contains("drop"), "{ruleset}");
}
