use std::fs;
use std::sync::Arc;

use clap::Parser;
use husk_api::roles::Role;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn host(text: &str, source: &'static str) -> Given<HostUrl> {
    Given {
        value: text.parse().unwrap(),
        source,
    }
}

fn context(name: &str, source: &'static str) -> Given<String> {
    Given {
        value: name.to_owned(),
        source,
    }
}

fn no_current() -> Result<Option<String>, String> {
    Ok(None)
}

#[test]
fn the_target_by_precedence() {
    let tcp = host("tcp://node:7443", "--host");
    let lab = context("lab", "--context");
    let socket = Path::new("/tmp/agent.sock");
    let unread = || -> Result<Option<String>, String> { panic!("config.toml read") };
    let address = || Target::Tcp("node:7443".parse().unwrap());
    assert_eq!(select(Some(&tcp), None, None, unread), Ok(address()));
    assert_eq!(
        select(
            Some(&host("unix:///x.sock", "HUSK_HOST")),
            None,
            None,
            unread
        ),
        Ok(Target::Socket("/x.sock".into()))
    );
    assert_eq!(
        select(None, Some(&lab), None, unread),
        Ok(Target::Context("lab".into()))
    );
    assert_eq!(
        select(
            None,
            Some(&context("default", "HUSK_CONTEXT")),
            None,
            unread
        ),
        Ok(Target::Socket(husk_api::DEFAULT_SOCKET.into()))
    );
    assert_eq!(
        select(None, None, Some(socket), unread),
        Ok(Target::Socket(socket.into()))
    );
    assert_eq!(
        select(None, None, None, || Ok(Some("lab".into()))),
        Ok(Target::Context("lab".into()))
    );
    assert_eq!(
        select(None, None, None, || Ok(Some("default".into()))),
        Ok(Target::Socket(husk_api::DEFAULT_SOCKET.into()))
    );
    assert_eq!(
        select(None, None, None, no_current),
        Ok(Target::Socket(husk_api::DEFAULT_SOCKET.into()))
    );
    assert_eq!(
        select(None, None, None, || Err("config.toml: bad".into())),
        Err("config.toml: bad".into())
    );

    let (env_host, env_context) = (host("tcp://n:1", "HUSK_HOST"), context("x", "HUSK_CONTEXT"));
    let both = |h, c, s| select(h, c, s, unread).unwrap_err();
    assert_eq!(
        both(Some(&tcp), Some(&lab), None),
        "--host and --context cannot both be given"
    );
    assert_eq!(
        both(Some(&env_host), Some(&env_context), Some(socket)),
        "HUSK_HOST and HUSK_CONTEXT cannot both be given"
    );
    assert_eq!(
        both(Some(&tcp), None, Some(socket)),
        "--host and --socket cannot both be given"
    );
    assert_eq!(
        both(None, Some(&lab), Some(socket)),
        "--context and --socket cannot both be given"
    );
}

#[test]
fn the_config_dir() {
    let dir = |xdg: Option<&str>, home: Option<&str>| {
        config_dir(xdg.map(Into::into), home.map(Into::into))
    };
    assert_eq!(dir(Some("/xdg"), Some("/home/u")), Some("/xdg/husk".into()));
    assert_eq!(
        dir(None, Some("/home/u")),
        Some("/home/u/.config/husk".into())
    );
    assert_eq!(
        dir(Some("relative"), Some("/home/u")),
        Some("/home/u/.config/husk".into())
    );
    assert_eq!(dir(Some(""), None), None);
    assert!(need_config(None).unwrap_err().contains("HOME"));
}

#[test]
fn files_are_replaced_or_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    write_file(&path, b"one", 0o600, false).unwrap();
    assert!(
        write_file(&path, b"two", 0o600, false)
            .unwrap_err()
            .contains("exists")
    );
    assert_eq!(fs::read(&path).unwrap(), b"one");
    write_file(&path, b"two", 0o600, true).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert!(write_file(&dir.path().join("no/file"), b"", 0o600, true).is_err());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// A machine's remote API as far as the client sees it: TLS 1.3 with
/// client certificates of `client_ca`, answering every request with a
/// health answer.
async fn machine(client_ca: &Path, cert: &Path, key: &Path) -> (u16, Fingerprint) {
    let provider = husk_api::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let fingerprint = Fingerprint::of(&chain[0]);
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"status":"ok","version":"test"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, fingerprint)
}

async fn health(connection: &Connection) -> Result<u8, String> {
    let result = connection
        .client
        .get::<husk_api::Health>(husk_api::HEALTH_PATH)
        .await;
    connection.finish(result.map(|h| u8::from(h.status != "ok")))
}

#[derive(Parser)]
struct ContextCli {
    #[command(subcommand)]
    command: contexts::ContextCommand,
}

#[tokio::test]
async fn a_machine_pinned_on_first_contact_then_by_ca_and_by_context() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, config, machine_dir) = (
        dir.path().join("pki"),
        dir.path().join("husk"),
        dir.path().join("machine"),
    );
    crate::pki::init(&pki).unwrap();
    crate::pki::issue(&pki, &config, "tester", Role::Reader, 1).unwrap();
    crate::pki::server(&pki, &machine_dir, "127.0.0.1", &[], &[], 1).unwrap();
    let (port, fingerprint) = machine(
        &pki.join("ca.pem"),
        &machine_dir.join("server-cert.pem"),
        &machine_dir.join("server-key.pem"),
    )
    .await;
    let address: Address = format!("127.0.0.1:{port}").parse().unwrap();
    let target = || Target::Tcp(address.clone());
    let known_hosts = config.join("known_hosts");

    // First contact pins; then the pin is used.
    let first = connect(target(), Some(&config), None).unwrap();
    assert!(matches!(first.after, After::Pin { .. }));
    assert_eq!(health(&first).await, Ok(0));
    assert_eq!(
        fs::read_to_string(&known_hosts).unwrap(),
        format!("{address} {fingerprint}\n")
    );
    let pinned = connect(target(), Some(&config), None).unwrap();
    assert!(matches!(pinned.after, After::Pinned { pin, .. } if pin == fingerprint));
    assert_eq!(health(&pinned).await, Ok(0));

    // Another pin: the client's error, and where to mend it.
    let other = Fingerprint::of(b"another machine");
    known_hosts::pin(&known_hosts, &address, other).unwrap();
    let e = health(&connect(target(), Some(&config), None).unwrap())
        .await
        .unwrap_err();
    assert!(
        e.contains(&fingerprint.to_string()) && e.contains(&other.to_string()),
        "{e}"
    );
    assert!(
        e.ends_with(&format!("remove its line from {}", known_hosts.display())),
        "{e}"
    );

    // The CA's ca.pem in the tls dir: verified as a CA's certificate.
    let tls_dir = dir.path().join("tls");
    fs::create_dir(&tls_dir).unwrap();
    for file in ["cert.pem", "key.pem"] {
        fs::copy(config.join(file), tls_dir.join(file)).unwrap();
    }
    fs::copy(pki.join("ca.pem"), tls_dir.join("ca.pem")).unwrap();
    let by_ca = connect(target(), Some(&config), Some(&tls_dir)).unwrap();
    assert!(matches!(by_ca.after, After::Nothing));
    assert_eq!(health(&by_ca).await, Ok(0));

    // A context, its pin learnt on creation; and one that checks a wrong pin.
    let create = |args: &[&str]| {
        let mut argv = vec!["huskctl", "create"];
        argv.extend_from_slice(args);
        ContextCli::try_parse_from(argv).unwrap().command
    };
    let url = host(&format!("tcp://{address}"), "--host");
    let globals = || contexts::Globals {
        config: Some(&config),
        host: Some(&url),
        tls_dir: None,
    };
    contexts::run(globals(), create(&["lab"])).await.unwrap();
    let lab = contexts::load(&config, "lab").unwrap();
    assert_eq!(lab.fingerprint, Some(fingerprint));
    assert_eq!(lab.cert, config.join("cert.pem"));
    let e = contexts::run(globals(), create(&["lab"]))
        .await
        .unwrap_err();
    assert!(e.contains("--force"), "{e}");
    let by_context = connect(Target::Context("lab".into()), Some(&config), None).unwrap();
    assert_eq!(health(&by_context).await, Ok(0));
    let wrong = other.to_string();
    let e = contexts::run(globals(), create(&["wrong", "--fingerprint", &wrong]))
        .await
        .unwrap_err();
    assert!(e.contains("--no-check"), "{e}");
    assert!(contexts::load(&config, "wrong").is_err());
    let ca = pki.join("ca.pem");
    let ca = ca.to_str().unwrap();
    contexts::run(globals(), create(&["by-ca", "--ca", ca]))
        .await
        .unwrap();
    let by_ca = connect(Target::Context("by-ca".into()), Some(&config), None).unwrap();
    assert_eq!(health(&by_ca).await, Ok(0));
}

#[test]
fn a_missing_identity_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::Tcp("node:7443".parse().unwrap());
    let e = connect(target, Some(dir.path()), None).unwrap_err();
    assert!(
        e.starts_with(&dir.path().join("cert.pem").display().to_string()),
        "{e}"
    );
    assert!(e.contains("huskctl pki issue"), "{e}");
    let e = connect(Target::Context("lab".into()), Some(dir.path()), None).unwrap_err();
    assert!(e.contains("no context lab"), "{e}");
    assert!(matches!(
        connect(Target::Socket("/x".into()), None, None)
            .unwrap()
            .after,
        After::Nothing
    ));
}
