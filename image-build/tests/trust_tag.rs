//! Trusted tags end to end: a publisher makes a tag repository with the
//! husk-image command line exactly as typed (`keygen`, `repo-init`,
//! `trust-tag`), and a machine resolves tags from it with
//! `husk_registry::trust::tags::trusted_digest`, over file://, https://
//! and http://, refusing what TUF says to refuse.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use husk_registry::Reference;
use husk_registry::http::{HttpClient, tls_config};
use husk_registry::trust::tags::{TagError, TagRepository, target_name, trusted_digest};
use husk_testkit::https_files::HttpsFiles;
use husk_testkit::registry::TestCa;

const REF: &str = "127.0.0.1:5000/team/app:1";

fn digest(byte: char) -> String {
    format!("sha256:{}", byte.to_string().repeat(64))
}

/// Runs husk-image in `dir`: its exit status, stdout and stderr.
fn husk_image(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_husk-image"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running husk-image");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = husk_image(dir, args);
    assert!(success, "husk-image {args:?}: {stderr}");
    stdout
}

fn block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A publisher's directory: `keys/`, `repo/`; and a machine's pinned
/// root (`root.json`, copied as an image would carry it).
struct Publisher {
    dir: tempfile::TempDir,
}

impl Publisher {
    fn new() -> Self {
        let publisher = Self::with_keys("keys");
        let dir = publisher.path();
        ok(
            dir,
            &[
                "repo-init",
                "--repo",
                "repo",
                "--root-key",
                "keys/root.key",
                "--targets-key",
                "keys/targets.key",
                "--snapshot-key",
                "keys/snapshot.key",
                "--timestamp-key",
                "keys/timestamp.key",
            ],
        );
        std::fs::copy(dir.join("repo/root.json"), dir.join("root.json")).unwrap();
        publisher
    }

    fn with_keys(keys: &str) -> Self {
        let publisher = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for role in ["root", "targets", "snapshot", "timestamp"] {
            ok(
                publisher.path(),
                &["keygen", "--out", &format!("{keys}/{role}.key")],
            );
        }
        publisher
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn repo(&self) -> PathBuf {
        self.path().join("repo")
    }

    /// `husk-image trust-tag` with the three keys and `extra` flags.
    fn trust(&self, extra: &[&str], tags: &[&str]) -> String {
        let mut args = vec![
            "trust-tag",
            "--repo",
            "repo",
            "--key",
            "keys/targets.key",
            "--key",
            "keys/snapshot.key",
            "--key",
            "keys/timestamp.key",
        ];
        args.extend(extra);
        args.extend(tags);
        ok(self.path(), &args)
    }

    /// The machine's view, with its datastore `datastore`, over file://.
    fn client(&self, datastore: &str) -> TagRepository {
        self.client_at(
            url::Url::from_directory_path(self.repo()).unwrap().as_str(),
            datastore,
        )
    }

    fn client_at(&self, url: &str, datastore: &str) -> TagRepository {
        TagRepository {
            url: url.to_owned(),
            root: self.path().join("root.json"),
            datastore: self.path().join(datastore),
        }
    }

    fn metadata(&self, file: &str) -> PathBuf {
        self.repo().join("metadata").join(file)
    }

    /// The stored file of `reference`'s tag with `digest`.
    fn target_file(&self, reference: &str, digest: &str) -> PathBuf {
        use sha2::Digest;
        let name = target_name(&Reference::parse(reference).unwrap());
        let sha = sha2::Sha256::digest(format!("{digest}\n"));
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        self.repo().join("targets").join(format!("{hex}.{name}"))
    }
}

fn http() -> HttpClient {
    HttpClient::new(tls_config(&[], &[]).unwrap())
}

fn resolve(repo: &TagRepository, reference: &str) -> Result<String, TagError> {
    block(trusted_digest(
        repo,
        &http(),
        &Reference::parse(reference).unwrap(),
    ))
}

#[test]
fn a_tag_resolves_to_its_digest_and_moves() {
    let publisher = Publisher::new();
    let out = publisher.trust(
        &[],
        &[
            &format!("{REF}@{}", digest('a')),
            // The same digest under a name that is a directory of the
            // first's, were the tag a path component.
            &format!("127.0.0.1:5000/team/app/1:x@{}", digest('a')),
            &format!("nginx:1.27@{}", digest('c')),
        ],
    );
    assert!(
        out.contains(&format!(
            "tags/127.0.0.1:5000/team/app:1 → {} (new)",
            digest('a')
        )),
        "{out}"
    );
    assert!(out.contains("tags/docker.io/library/nginx:1.27"), "{out}");
    assert!(
        out.contains("targets v2, snapshot v2, timestamp v2"),
        "{out}"
    );

    let machine = publisher.client("datastore");
    assert_eq!(resolve(&machine, REF).unwrap(), digest('a'));
    assert_eq!(
        resolve(&machine, "127.0.0.1:5000/team/app/1:x").unwrap(),
        digest('a')
    );
    assert_eq!(
        resolve(&machine, "docker.io/library/nginx:1.27").unwrap(),
        digest('c')
    );

    // Moved: a second trust-tag, the others kept.
    let out = publisher.trust(&[], &[&format!("{REF}@{}", digest('b'))]);
    assert!(out.contains(&format!("(was {})", digest('a'))), "{out}");
    assert!(out.contains("timestamp v3"), "{out}");
    assert_eq!(resolve(&machine, REF).unwrap(), digest('b'));
    assert_eq!(resolve(&machine, "nginx:1.27").unwrap(), digest('c'));
    // A digest in the reference is the caller's to compare.
    assert_eq!(
        resolve(&machine, &format!("{REF}@{}", digest('a'))).unwrap(),
        digest('b')
    );

    // Not in the repository: not trusted, named.
    let err = resolve(&machine, "127.0.0.1:5000/team/app:2").unwrap_err();
    assert!(matches!(err, TagError::NotTrusted { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:5000/team/app:2") && text.contains("not trusted"),
        "{text}"
    );
    assert!(!err.is_transient());
    let err = resolve(
        &machine,
        &format!("127.0.0.1:5000/team/app@{}", digest('a')),
    )
    .unwrap_err();
    assert!(matches!(err, TagError::NoTag { .. }), "{err:?}");
}

#[test]
fn the_command_line_refuses_what_it_cannot_sign() {
    let publisher = Publisher::new();
    let dir = publisher.path();
    let base = [
        "trust-tag",
        "--repo",
        "repo",
        "--key",
        "keys/targets.key",
        "--key",
        "keys/snapshot.key",
        "--key",
        "keys/timestamp.key",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(extra);
        husk_image(dir, &args)
    };
    for (tag, says) in [
        (REF.to_owned(), "needs both a tag and a digest"),
        (
            format!("127.0.0.1:5000/team/app@{}", digest('a')),
            "needs both a tag and a digest",
        ),
        ("Bad/App:1@sha256:00".to_owned(), "invalid image reference"),
    ] {
        let (success, _, stderr) = run(&[&tag]);
        assert!(!success && stderr.contains(says), "{tag}: {stderr}");
    }
    let (success, _, stderr) = run(&[
        &format!("{REF}@{}", digest('a')),
        &format!("{REF}@{}", digest('b')),
    ]);
    assert!(!success && stderr.contains("given twice"), "{stderr}");
    // Without a targets key it cannot sign (and writes nothing).
    let (success, _, stderr) = husk_image(
        dir,
        &[
            "trust-tag",
            "--repo",
            "repo",
            "--key",
            "keys/snapshot.key",
            "--key",
            "keys/timestamp.key",
            &format!("{REF}@{}", digest('a')),
        ],
    );
    assert!(!success && stderr.contains("targets"), "{stderr}");
    assert!(
        std::fs::read_dir(publisher.repo().join("metadata"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('2'))
    );
    let (success, _, stderr) = husk_image(
        dir,
        &[
            "trust-tag",
            "--repo",
            "elsewhere",
            "--key",
            "keys/targets.key",
            &format!("{REF}@{}", digest('a')),
        ],
    );
    assert!(!success && stderr.contains("repo-init"), "{stderr}");
    let (success, _, stderr) = husk_image(dir, &["trust-tag", "--repo", "repo", REF]);
    assert!(!success && stderr.contains("--key"), "{stderr}");
}

#[test]
fn expired_metadata_is_refused_naming_the_role() {
    let publisher = Publisher::new();
    publisher.trust(
        &["--expires-days", "-1"],
        &[&format!("{REF}@{}", digest('a'))],
    );
    let machine = publisher.client("datastore");
    let err = resolve(&machine, REF).unwrap_err();
    assert!(
        matches!(&err, TagError::Expired { role, .. } if role == "timestamp"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("expired") && text.contains("timestamp") && text.contains(REF),
        "{text}"
    );
    // Renewed: fresh again.
    publisher.trust(&[], &[&format!("{REF}@{}", digest('a'))]);
    assert_eq!(resolve(&machine, REF).unwrap(), digest('a'));
}

#[test]
fn a_rollback_is_refused_once_the_datastore_saw_newer() {
    let publisher = Publisher::new();
    publisher.trust(&[], &[&format!("{REF}@{}", digest('a'))]);
    let old_timestamp = std::fs::read(publisher.metadata("timestamp.json")).unwrap();
    publisher.trust(&[], &[&format!("{REF}@{}", digest('b'))]);
    let machine = publisher.client("datastore");
    assert_eq!(resolve(&machine, REF).unwrap(), digest('b'));

    // A mirror serving the old publication (its files are all still
    // there, consistent snapshots): the tag would mean `a` again.
    std::fs::write(publisher.metadata("timestamp.json"), old_timestamp).unwrap();
    let err = resolve(&machine, REF).unwrap_err();
    assert!(matches!(err, TagError::Rollback { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("rollback") && text.contains("timestamp"),
        "{text}"
    );
    // What protects is the datastore: a machine that never saw the newer
    // publication takes the old (still unexpired) one.
    assert_eq!(
        resolve(&publisher.client("fresh-datastore"), REF).unwrap(),
        digest('a')
    );
}

#[test]
fn a_tampered_target_is_refused() {
    let publisher = Publisher::new();
    publisher.trust(&[], &[&format!("{REF}@{}", digest('a'))]);
    let file = publisher.target_file(REF, &digest('a'));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{}\n", digest('a'))
    );
    // Same length, another digest.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, format!("{}\n", digest('e'))).unwrap();
    let err = resolve(&publisher.client("datastore"), REF).unwrap_err();
    assert!(matches!(err, TagError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("Hash mismatch"), "{err}");
    // Longer: refused by its signed length.
    std::fs::write(&file, format!("{}\n\n", digest('a'))).unwrap();
    let err = resolve(&publisher.client("datastore"), REF).unwrap_err();
    assert!(matches!(err, TagError::Refused { .. }), "{err:?}");
}

#[test]
fn metadata_signed_by_another_key_is_refused() {
    let publisher = Publisher::new();
    publisher.trust(&[], &[&format!("{REF}@{}", digest('a'))]);
    let machine = publisher.client("datastore");
    assert_eq!(resolve(&machine, REF).unwrap(), digest('a'));

    // Someone with keys of their own publishes the same repository's
    // files, their tag meaning their digest.
    let rogue = Publisher::new();
    rogue.trust(&[], &[&format!("{REF}@{}", digest('f'))]);
    rogue.trust(&[], &[&format!("{REF}@{}", digest('f'))]);
    let copy = |sub: &str| {
        for entry in std::fs::read_dir(rogue.repo().join(sub)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() && entry.file_name() != "1.root.json" {
                std::fs::copy(
                    entry.path(),
                    publisher.repo().join(sub).join(entry.file_name()),
                )
                .unwrap();
            }
        }
    };
    copy("metadata");
    let err = resolve(&machine, REF).unwrap_err();
    assert!(matches!(err, TagError::Refused { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Signature threshold of 1 not met"),
        "{err}"
    );
    // And a machine that never loaded it before refuses it too.
    let err = resolve(&publisher.client("fresh-datastore"), REF).unwrap_err();
    assert!(err.to_string().contains("Signature threshold"), "{err}");
}

#[test]
fn over_https_with_a_test_ca() {
    let publisher = Publisher::new();
    publisher.trust(&[], &[&format!("{REF}@{}", digest('a'))]);
    let ca = TestCa::new();
    let server = HttpsFiles::start(&publisher.repo(), &ca).unwrap();
    let machine = publisher.client_at(&server.url(), "datastore");
    let with_ca = HttpClient::new(tls_config(&[], &[ca.ca_pem()]).unwrap());
    let reference = Reference::parse(REF).unwrap();
    assert_eq!(
        block(trusted_digest(&machine, &with_ca, &reference)).unwrap(),
        digest('a')
    );
    publisher.trust(&[], &[&format!("{REF}@{}", digest('b'))]);
    assert_eq!(
        block(trusted_digest(&machine, &with_ca, &reference)).unwrap(),
        digest('b')
    );
    // Without the CA: the server is not who it says (and may be again
    // later: a transient failure, not a verdict on the tag).
    let err = block(trusted_digest(&machine, &http(), &reference)).unwrap_err();
    assert!(matches!(err, TagError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
}

/// A directory over plain HTTP on loopback: GET only, one request per
/// connection.
fn serve_http(root: PathBuf) -> String {
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
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let file = (!path.contains(".."))
                .then(|| root.join(path.trim_start_matches('/')))
                .and_then(|f| std::fs::read(f).ok());
            let (status, body) = match file {
                Some(body) => ("200 OK", body),
                None => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    url
}

#[test]
fn over_plain_http_since_tuf_authenticates() {
    let publisher = Publisher::new();
    publisher.trust(&[], &[&format!("{REF}@{}", digest('a'))]);
    let url = serve_http(publisher.repo());
    let machine = publisher.client_at(&url, "datastore");
    assert_eq!(resolve(&machine, REF).unwrap(), digest('a'));
    // Served over HTTP, tampered with on the way: still refused.
    let file = publisher.target_file(REF, &digest('a'));
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, format!("{}\n", digest('e'))).unwrap();
    let err = resolve(&machine, REF).unwrap_err();
    assert!(matches!(err, TagError::Refused { .. }), "{err:?}");
}

#[test]
fn help_shows_the_usage() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(dir.path(), &["trust-tag", "--help"]);
    for says in [
        "Usage: husk-image trust-tag [OPTIONS] --repo <REPO> --key <KEYS> <REF@sha256:<hex>>...",
        "--expires-days",
        "[default: 7]",
    ] {
        assert!(help.contains(says), "{says}: {help}");
    }
}
