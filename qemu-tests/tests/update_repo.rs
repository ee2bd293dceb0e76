//! The update repository without a machine: what `husk-image release`
//! signs, the agent's TUF client verifies, on the host over `file://`.
//! Each way a repository can be bad is refused with its reason; a good
//! one yields the release, downloaded and checked. (The same flows run
//! booted in QEMU in `update.rs`.)

use std::path::{Path, PathBuf};

use husk_agent::update::download;
use husk_agent::update::repo::Repo;
use husk_image::release::{self, NewRelease, RepoInit};
use husk_image::uki;
use husk_release::manifest::Offer;

/// A UKI of `version` around the real systemd stub and a fake kernel.
fn uki(dir: &Path, version: &str) -> PathBuf {
    let stub = std::fs::read(uki::DEFAULT_STUB).expect("systemd-boot-efi's stub");
    let osrel = uki::os_release(version);
    let linux = vec![0x90u8; 64 * 1024];
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

fn hours(n: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_hours(n)
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    keys: Vec<PathBuf>,
    client: PathBuf,
    base: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<PathBuf> = ["root", "targets", "snapshot", "timestamp"]
            .iter()
            .map(|r| {
                let p = dir.path().join(format!("{r}.key"));
                release::keygen(&p).unwrap();
                p
            })
            .collect();
        let repo = dir.path().join("repo");
        release::repo_init(
            &RepoInit {
                repo: repo.clone(),
                keys: [
                    vec![keys[0].clone()],
                    vec![keys[1].clone()],
                    vec![keys[2].clone()],
                    vec![keys[3].clone()],
                ],
                thresholds: [1; 4],
                expires: hours(24 * 365),
            },
            hours(24),
        )
        .unwrap();
        let base = format!("file://{}/", repo.display());
        Self {
            client: dir.path().join("client"),
            _dir: dir,
            repo,
            keys,
            base,
        }
    }

    fn release(&self, version: &str, expires: jiff::Timestamp) {
        let uki = uki(self.repo.parent().unwrap(), version);
        release::release(&NewRelease {
            repo: self.repo.clone(),
            uki,
            channel: "stable".into(),
            min_version: None,
            keys: self.keys[1..].to_vec(),
            expires,
        })
        .unwrap();
    }

    fn load(&self) -> Result<Repo, husk_agent::update::UpdateError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(Repo::load(
                &self.base,
                &self.repo.join("root.json"),
                &self.client.join("tuf"),
            ))
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }
}

#[test]
fn a_release_is_verified_and_downloaded() {
    let fx = Fixture::new();
    fx.release("2.0.0", hours(24));
    let repo = fx.load().unwrap();
    let manifest = fx.block_on(repo.manifest()).unwrap();
    let Offer::Update(release) = manifest.offer("stable", "1.0.0") else {
        panic!("no offer: {manifest:?}");
    };
    let target = repo.uki(release).unwrap();
    let path = fx
        .block_on(download::fetch(
            &target,
            &fx.client.join("download"),
            "husk-2.0.0.efi",
        ))
        .unwrap();
    assert_eq!(
        release::uki_version(&std::fs::read(path).unwrap()).unwrap(),
        "2.0.0"
    );
    // Releasing the same version again is refused.
    let again = release::release(&NewRelease {
        repo: fx.repo.clone(),
        uki: fx.repo.parent().unwrap().join("husk-2.0.0.efi"),
        channel: "stable".into(),
        min_version: None,
        keys: fx.keys[1..].to_vec(),
        expires: hours(24),
    });
    assert!(again.unwrap_err().to_string().contains("already released"));
}

#[test]
fn a_tampered_target_is_refused() {
    let fx = Fixture::new();
    fx.release("2.0.0", hours(24));
    let target_file = std::fs::read_dir(fx.repo.join("targets"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("husk-2.0.0.efi"))
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&target_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::remove_file(&target_file).unwrap();
    std::fs::write(&target_file, &bytes).unwrap();
    let repo = fx.load().unwrap();
    let manifest = fx.block_on(repo.manifest()).unwrap();
    let target = repo.uki(&manifest.releases[0]).unwrap();
    let error = fx
        .block_on(download::fetch(
            &target,
            &fx.client.join("download"),
            "husk-2.0.0.efi",
        ))
        .unwrap_err();
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
fn expired_metadata_and_bad_signatures_are_refused() {
    let fx = Fixture::new();
    fx.release("2.0.0", hours(-1));
    let error = fx.load().unwrap_err();
    assert!(error.to_string().contains("expired"), "{error}");

    let fx = Fixture::new();
    fx.release("2.0.0", hours(24));
    let path = fx.repo.join("metadata/timestamp.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("\"sig\"").unwrap() + "\"sig\": \"".len() + 2;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    std::fs::write(&path, bytes).unwrap();
    let error = fx.load().unwrap_err();
    assert!(
        error.to_string().contains("Failed to verify timestamp"),
        "{error}"
    );
}

#[test]
fn a_rolled_back_repository_is_refused() {
    let fx = Fixture::new();
    fx.release("2.0.0", hours(24));
    let old = fx.repo.parent().unwrap().join("old-metadata");
    copy_dir(&fx.repo.join("metadata"), &old);
    fx.release("2.1.0", hours(24));
    fx.load().unwrap();
    // An attacker (or a stale mirror) serves the previous timestamp.
    std::fs::copy(
        old.join("timestamp.json"),
        fx.repo.join("metadata/timestamp.json"),
    )
    .unwrap();
    let error = fx.load().unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("version"),
        "{error}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
