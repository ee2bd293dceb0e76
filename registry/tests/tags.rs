//! Trusted tags, the client's side: target names, and what a tag
//! repository that is misconfigured, unreachable or hostile gets. (A
//! real repository, made with `husk-image trust-tag`, is resolved in
//! husk-image's tests/trust_tag.rs.)

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::num::NonZeroU64;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use husk_registry::Reference;
use husk_registry::http::{HttpClient, tls_config};
use husk_registry::trust::tags::{TagError, TagRepository, target_name, trusted_digest};
use tough::TargetName;
use tough::editor::signed::SignedRole;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root};

fn r(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

#[test]
fn target_names_read_like_references() {
    for (reference, name) in [
        (
            "127.0.0.1:5000/team/app:1",
            "tags/127.0.0.1:5000/team/app:1",
        ),
        ("nginx", "tags/docker.io/library/nginx:latest"),
        ("index.docker.io/user/app:v2", "tags/docker.io/user/app:v2"),
        (
            "Registry.Example/a/b/c:_x.y-z",
            "tags/registry.example/a/b/c:_x.y-z",
        ),
        ("[::1]:5000/app:1", "tags/[::1]:5000/app:1"),
        ("localhost/app:1", "tags/localhost/app:1"),
        (
            &format!("ghcr.io/o/app:1@sha256:{}", "a".repeat(64)),
            "tags/ghcr.io/o/app:1",
        ),
    ] {
        assert_eq!(target_name(&r(reference)), name, "{reference}");
    }
}

#[test]
fn target_names_are_taken_as_they_are_and_never_collide() {
    let references = [
        "r.io/a:b",
        "r.io/a/b:c",
        "r.io/a/b:latest",
        "r.io/a/b/c:latest",
        "r.io:5000/a:b",
        "r.io/a.b:c",
        "r.io/a_b:c",
        "r.io/a__b:c",
        "r.io/a-b:c",
        "r.io/a:b.c",
        "r.io/a:B",
        "r.io/a:_",
        "r.io/a/b/c/d/e/f/g:h",
        "r.io/a/b/c/d/e/f:g",
        "x.io/r.io/a:b",
        "localhost/a:b",
        "localhost:1/a:b",
        "[::1]:1/a:b",
        "a:b",
        "library/a:b",
        "docker.io/a/b:c",
    ];
    let mut seen = HashMap::new();
    for text in references {
        let reference = r(text);
        let name = target_name(&reference);
        let target = TargetName::new(name.as_str()).unwrap();
        assert_eq!(target.resolved(), target.raw(), "{text}: {name}");
        assert!(
            !name
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == ".."),
            "{name}"
        );
        let key = (reference.registry, reference.repository, reference.tag);
        if let Some(other) = seen.insert(name.clone(), key.clone()) {
            // Only equal references (Docker Hub's aliases) share a name.
            assert_eq!(other, key, "{text} and another share {name}");
        }
    }
    // And a tag's file is never the directory of another.
    let names: HashSet<String> = seen.into_keys().collect();
    for name in &names {
        for other in &names {
            assert!(!other.starts_with(&format!("{name}/")), "{name} / {other}");
        }
    }
}

fn http() -> HttpClient {
    HttpClient::new(tls_config(&[], &[]).unwrap())
}

fn resolve(repo: &TagRepository, reference: &str) -> Result<String, TagError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(trusted_digest(repo, &http(), &r(reference)))
}

/// A signed root.json (one ed25519 key for every role) in `dir`.
fn write_root(dir: &Path) -> std::path::PathBuf {
    let key_path = dir.join("root.key");
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    std::fs::write(&key_path, pkcs8.as_ref()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let buffer = runtime.block_on(async {
        let source = LocalKeySource {
            path: key_path.clone(),
        };
        let key = source.as_sign().await.unwrap().tuf_key();
        let id = key.key_id().unwrap();
        let mut root = Root {
            spec_version: "1.0.0".into(),
            consistent_snapshot: true,
            version: NonZeroU64::MIN,
            // (jiff's Timestamp, without naming jiff.)
            expires: serde_json::from_str("\"2999-01-01T00:00:00Z\"").unwrap(),
            keys: HashMap::from([(id.clone(), key)]),
            roles: HashMap::new(),
            _extra: HashMap::new(),
        };
        for role in [
            RoleType::Root,
            RoleType::Targets,
            RoleType::Snapshot,
            RoleType::Timestamp,
        ] {
            root.roles.insert(
                role,
                RoleKeys {
                    keyids: vec![id.clone()],
                    threshold: NonZeroU64::MIN,
                    _extra: HashMap::new(),
                },
            );
        }
        let sources: Vec<Box<dyn KeySource>> = vec![Box::new(source)];
        SignedRole::new(
            root.clone(),
            &KeyHolder::Root(root),
            &sources,
            &SystemRandom::new(),
        )
        .await
        .unwrap()
        .buffer()
        .clone()
    });
    let path = dir.join("root.json");
    std::fs::write(&path, buffer).unwrap();
    path
}

/// A loopback HTTP server answering every request with `answer(path)`:
/// a status and a body.
fn serve(answer: fn(&str) -> (u16, Vec<u8>)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = answer(&path);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    url
}

fn repository(dir: &Path, url: &str) -> TagRepository {
    TagRepository {
        url: url.into(),
        root: write_root(dir),
        datastore: dir.join("datastore"),
    }
}

#[test]
fn a_reference_without_a_tag_or_a_bad_setting_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path(), "https://tags.example/");
    let digest_only = format!("registry.example/app@sha256:{}", "a".repeat(64));
    let err = resolve(&repo, &digest_only).unwrap_err();
    assert!(matches!(err, TagError::NoTag { .. }), "{err:?}");
    assert!(
        err.to_string().contains("registry.example/app@sha256:"),
        "{err}"
    );

    let ftp = TagRepository {
        url: "ftp://tags.example/".into(),
        ..repo.clone()
    };
    let err = resolve(&ftp, "registry.example/app:1").unwrap_err();
    assert!(matches!(err, TagError::Config { .. }), "{err:?}");
    assert!(
        err.to_string().contains("ftp://tags.example/") && err.to_string().contains("`ftp:`"),
        "{err}"
    );

    let no_root = TagRepository {
        root: dir.path().join("missing.json"),
        ..repo.clone()
    };
    let err = resolve(&no_root, "registry.example/app:1").unwrap_err();
    assert!(
        matches!(err, TagError::Config { .. }) && err.to_string().contains("missing.json"),
        "{err}"
    );

    let bad_root = TagRepository {
        root: dir.path().join("root.key"),
        ..repo
    };
    let err = resolve(&bad_root, "registry.example/app:1").unwrap_err();
    assert!(matches!(err, TagError::Refused { .. }), "{err:?}");
}

#[test]
fn an_unreachable_or_failing_repository_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let err = resolve(&repository(dir.path(), &closed), "r.io/app:1").unwrap_err();
    assert!(
        matches!(err, TagError::Unavailable { .. }) && err.is_transient(),
        "{err:?}"
    );
    assert!(err.to_string().contains(&closed), "{err}");

    let failing = serve(|_| (503, b"busy".to_vec()));
    let err = resolve(&repository(dir.path(), &failing), "r.io/app:1").unwrap_err();
    assert!(
        matches!(err, TagError::Unavailable { .. }) && err.to_string().contains("HTTP 503"),
        "{err:?}"
    );

    let empty = tempfile::tempdir().unwrap();
    let file = url::Url::from_directory_path(empty.path()).unwrap();
    let err = resolve(&repository(dir.path(), file.as_str()), "r.io/app:1").unwrap_err();
    assert!(matches!(err, TagError::Unavailable { .. }), "{err:?}");
}

/// A timestamp with no signatures.
const UNSIGNED_TIMESTAMP: &[u8] = br#"{"signed":{"_type":"timestamp","spec_version":"1.0.0","version":9,"expires":"2999-01-01T00:00:00Z","meta":{"snapshot.json":{"length":1,"hashes":{"sha256":"00"},"version":9}}},"signatures":[]}"#;

#[test]
fn a_hostile_repository_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Endless metadata: cut at tough's limit.
    let huge = serve(|path| match path {
        "/metadata/timestamp.json" => (200, vec![b' '; 2 << 20]),
        _ => (404, Vec::new()),
    });
    let err = resolve(&repository(dir.path(), &huge), "r.io/app:1").unwrap_err();
    assert!(
        matches!(err, TagError::Refused { .. }) && err.to_string().contains("Maximum size"),
        "{err:?}"
    );
    assert!(!err.is_transient());

    // Metadata that is not signed by the pinned root.
    let unsigned = serve(|path| match path {
        "/metadata/timestamp.json" => (200, UNSIGNED_TIMESTAMP.to_vec()),
        _ => (404, Vec::new()),
    });
    let err = resolve(&repository(dir.path(), &unsigned), "r.io/app:1").unwrap_err();
    assert!(
        matches!(err, TagError::Refused { .. }) && err.to_string().contains("Signature threshold"),
        "{err:?}"
    );
}
