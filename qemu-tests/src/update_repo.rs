//! A signed update repository for the update tests: one fresh key per
//! TUF role, made with `husk_image::release` as an operator would with
//! `husk-image keygen | repo-init | release`.

use std::path::{Path, PathBuf};

use husk_image::release::{self, NewRelease, RepoInit};

/// `now + hours` (negative: in the past, for expired metadata).
pub fn hours_from_now(hours: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours)
}

#[derive(Debug)]
pub struct TestRepo {
    /// The repository (`metadata/`, `targets/`, `root.json`).
    pub dir: PathBuf,
    /// root, targets, snapshot, timestamp.
    pub keys: Vec<PathBuf>,
}

impl TestRepo {
    /// Keys in `parent`, the repository in `parent/repo`. Panics on
    /// failure (a test fixture).
    pub fn create(parent: &Path) -> Self {
        let keys: Vec<PathBuf> = ["root", "targets", "snapshot", "timestamp"]
            .iter()
            .map(|role| {
                let path = parent.join(format!("{role}.key"));
                release::keygen(&path).expect("keygen");
                path
            })
            .collect();
        let dir = parent.join("repo");
        release::repo_init(
            &RepoInit {
                repo: dir.clone(),
                keys: [0, 1, 2, 3].map(|i| vec![keys[i].clone()]),
                thresholds: [1; 4],
                expires: hours_from_now(24 * 365),
            },
            hours_from_now(24),
        )
        .expect("repo-init");
        Self { dir, keys }
    }

    /// Signs `uki` into the stable channel; the new metadata expires in
    /// `expires_in_hours`.
    pub fn release(&self, uki: &Path, expires_in_hours: i64) -> Result<(), release::ReleaseError> {
        release::release(&NewRelease {
            repo: self.dir.clone(),
            uki: uki.to_owned(),
            channel: "stable".into(),
            min_version: None,
            keys: self.keys[1..].to_vec(),
            expires: hours_from_now(expires_in_hours),
        })
        .map(|_| ())
    }

    pub fn root_json(&self) -> PathBuf {
        self.dir.join("root.json")
    }

    /// The stored file of target `name` (`targets/<sha256>.<name>`).
    pub fn target_file(&self, name: &str) -> PathBuf {
        std::fs::read_dir(self.dir.join("targets"))
            .expect("targets/")
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!(".{name}"))
            })
            .unwrap_or_else(|| panic!("no target {name}"))
            .path()
    }

    /// Flips one byte of target `name`, as a compromised mirror would.
    pub fn tamper_with(&self, name: &str) {
        let path = self.target_file(name);
        let mut bytes = std::fs::read(&path).expect("reading the target");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        // A fresh file: the target may be a hard link to the original.
        std::fs::remove_file(&path).expect("removing the target");
        std::fs::write(&path, bytes).expect("writing the target");
    }

    /// Spoils one hex digit of the timestamp's signature.
    pub fn spoil_timestamp_signature(&self) {
        let path = self.dir.join("metadata/timestamp.json");
        let text = std::fs::read_to_string(&path).expect("timestamp.json");
        let at = text.find("\"sig\"").expect("a signature") + "\"sig\": \"".len() + 4;
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        std::fs::write(&path, bytes).expect("writing timestamp.json");
    }
}
