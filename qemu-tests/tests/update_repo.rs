//! The update repository without a machine: what `husk-image release`
//! signs, the agent's TUF client verifies, on the host over `file://`.
//! Each way a repository can be bad is refused with its reason; a good
//! one yields the release, downloaded and checked. (The same flows run
//! booted in QEMU in `update.rs`.)

use std::path::{Path, PathBuf};

use husk_agent::update::repo::Repo;
use husk_agent::update::{UpdateError, download};
use husk_image::{release, uki};
use husk_release::manifest::Offer;
use qemu_tests::update_repo::TestRepo;

/// A UKI of `version` around the real systemd stub and a fake kernel.
fn uki(dir: &Path, version: &str) -> PathBuf {
    let stub = std::fs::read(uki::DEFAULT_STUB).expect("systemd-boot-efi's stub");
    let osrel = uki::os_release(version);
    // Enough of a bzImage for the UKI writer: "MZ" and the boot header.
    let mut linux = vec![0x90u8; 64 * 1024];
    linux[..2].copy_from_slice(b"MZ");
    linux[0x202..0x206].copy_from_slice(b"HdrS");
    let image = uki::assemble(
        &stub,
        &uki::UkiSections {
            os_release: &osrel,
            cmdline: "console=ttyS0",
            uname: None,
            initrd: &[1, 2, 3],
            linux: &linux,
        },
    )
    .unwrap();
    let path = dir.join(format!("husk-{version}.efi"));
    std::fs::write(&path, image).unwrap();
    path
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

struct Fixture {
    dir: tempfile::TempDir,
    repo: TestRepo,
    client: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = TestRepo::create(dir.path());
        Self {
            client: dir.path().join("client"),
            dir,
            repo,
        }
    }

    /// Releases a UKI of `version` whose metadata expires in `hours`.
    fn release(&self, version: &str, hours: i64) -> Result<(), release::ReleaseError> {
        self.repo.release(&uki(self.dir.path(), version), hours)
    }

    /// The agent's view, with its datastore kept across loads.
    fn load(&self) -> Result<Repo, UpdateError> {
        let base = format!("file://{}/", self.repo.dir.display());
        block_on(Repo::load(
            &base,
            &self.repo.root_json(),
            &self.client.join("tuf"),
        ))
    }

    fn download(&self, repo: &Repo, version: &str) -> Result<PathBuf, UpdateError> {
        let manifest = block_on(repo.manifest())?;
        let release = manifest.find("stable", version).expect("released");
        let target = repo.uki(release)?;
        block_on(download::fetch(
            &target,
            &self.client.join("download"),
            &format!("husk-{version}.efi"),
        ))
    }
}

#[test]
fn a_release_is_verified_and_downloaded() {
    let fx = Fixture::new();
    fx.release("2.0.0", 24).unwrap();
    let repo = fx.load().unwrap();
    let manifest = block_on(repo.manifest()).unwrap();
    assert!(
        matches!(manifest.offer("stable", "1.0.0"), Offer::Update(r) if r.version == "2.0.0"),
        "{manifest:?}"
    );
    let path = fx.download(&repo, "2.0.0").unwrap();
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(release::uki_version(&bytes).unwrap(), "2.0.0");
    // The same version cannot be released twice.
    let again = fx.release("2.0.0", 24).unwrap_err();
    assert!(again.to_string().contains("already released"), "{again}");
}

#[test]
fn a_tampered_target_is_refused() {
    let fx = Fixture::new();
    fx.release("2.0.0", 24).unwrap();
    fx.repo.tamper_with("husk-2.0.0.efi");
    let repo = fx.load().unwrap();
    let error = fx.download(&repo, "2.0.0").unwrap_err();
    assert!(
        error.to_string().contains("does not match the signed"),
        "{error}"
    );
    assert!(
        !fx.client.join("download/husk-2.0.0.efi.part").exists(),
        "a wrong file is not kept to resume from"
    );
}

#[test]
fn expired_metadata_is_refused() {
    let fx = Fixture::new();
    fx.release("2.0.0", -1).unwrap();
    let error = fx.load().unwrap_err();
    assert!(error.to_string().contains("expired"), "{error}");
}

#[test]
fn a_bad_signature_is_refused() {
    let fx = Fixture::new();
    fx.release("2.0.0", 24).unwrap();
    fx.repo.spoil_timestamp_signature();
    let error = fx.load().unwrap_err();
    assert!(
        error.to_string().contains("Failed to verify timestamp"),
        "{error}"
    );
}

#[test]
fn a_rolled_back_repository_is_refused() {
    let fx = Fixture::new();
    fx.release("2.0.0", 24).unwrap();
    let old = fx.dir.path().join("old-metadata");
    copy_dir(&fx.repo.dir.join("metadata"), &old);
    fx.release("2.1.0", 24).unwrap();
    fx.load().unwrap();
    // A stale mirror (or an attacker) serves the previous timestamp.
    std::fs::copy(
        old.join("timestamp.json"),
        fx.repo.dir.join("metadata/timestamp.json"),
    )
    .unwrap();
    let error = fx.load().unwrap_err();
    assert!(
        error.to_string().contains(
            "Found version 2 of timestamp metadata when we had previously fetched version 3"
        ),
        "{error}"
    );
}

#[test]
fn an_interrupted_download_resumes() {
    let fx = Fixture::new();
    fx.release("2.0.0", 24).unwrap();
    let repo = fx.load().unwrap();
    let whole = std::fs::read(fx.repo.target_file("husk-2.0.0.efi")).unwrap();
    let part = fx.client.join("download/husk-2.0.0.efi.part");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &whole[..whole.len() / 3]).unwrap();
    let path = fx.download(&repo, "2.0.0").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), whole);
    assert!(!part.exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// An `https://` repository: verified against the CAs the agent is
/// given (agent.toml's `[registry]`), refused with the certificate's
/// reason when its CA is not one of them.
#[test]
fn an_https_repository_is_verified_against_the_configured_cas() {
    let fx = Fixture::new();
    fx.release("2.0.0", 24).unwrap();
    let ca = husk_testkit::registry::TestCa::new();
    let server = husk_testkit::https_files::HttpsFiles::start(&fx.repo.dir, &ca).unwrap();
    let (url, root) = (server.url(), fx.repo.root_json());
    let (untrusted, trusted) = (fx.client.join("tuf-untrusted"), fx.client.join("tuf"));
    let load = |datastore: &'static str| {
        let datastore = if datastore == "tuf" {
            &trusted
        } else {
            &untrusted
        };
        Repo::load(&url, &root, datastore)
    };
    block_on(async {
        // Mozilla's roots alone: the test CA is not one of them.
        husk_agent::http_client::configure_tls(&[], &[]).unwrap();
        let error = load("tuf-untrusted").await.unwrap_err().to_string();
        assert!(error.contains("certificate"), "{error}");
        husk_agent::http_client::configure_tls(&[], &[ca.ca_pem()]).unwrap();
        let repo = load("tuf").await.unwrap();
        let manifest = repo.manifest().await.unwrap();
        let release = manifest.find("stable", "2.0.0").expect("released");
        let target = repo.uki(release).unwrap();
        assert!(
            target.url.as_str().starts_with("https://"),
            "{}",
            target.url
        );
        let path = download::fetch(&target, &fx.client.join("download"), "husk-2.0.0.efi")
            .await
            .unwrap();
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(release::uki_version(&bytes).unwrap(), "2.0.0");
    });
}
