//! The image records (`images.json`): each image by its id with its names,
//! manifest and layers. Written atomically: a temporary file, fsync, rename,
//! fsync of the directory — the rename is what commits an import.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest::Digest;
pub use super::digest::ImageId;
use super::error::{IoContext, Result, StoreError};

/// One stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: ImageId,
    /// `name:tag` references, normalised ([`normalise_name`]).
    pub names: Vec<String>,
    pub manifest: Digest,
    /// diff_ids, base layer first: the names of the layer directories.
    pub layers: Vec<Digest>,
    /// The size of the layers as distributed (compressed), in bytes.
    pub size: u64,
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    version: u32,
    images: Vec<ImageRecord>,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            version: VERSION,
            images: Vec::new(),
        }
    }
}

/// `busybox` → `busybox:latest`; a name with a tag or a digest is kept.
pub fn normalise_name(name: &str) -> Result<String> {
    let invalid = |reason: &str| StoreError::InvalidName {
        name: name.into(),
        reason: reason.into(),
    };
    if name.is_empty() || name.len() > 255 {
        return Err(invalid("it must be 1 to 255 characters"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace or control characters"));
    }
    // Docker's familiar form: `docker.io/library/nginx` is `nginx`, so
    // that a pulled image is found by the name a user types.
    let name = [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ]
    .iter()
    .find_map(|prefix| name.strip_prefix(prefix))
    .filter(|rest| !rest.is_empty())
    .unwrap_or(name);
    if name.starts_with("sha256:") {
        return Err(invalid("a name cannot look like an image id"));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') {
        Ok(name.into())
    } else {
        Ok(format!("{name}:latest"))
    }
}

impl Index {
    /// Reads `path`; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Self> {
        let data = match fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).at(path),
        };
        let index: Self = serde_json::from_slice(&data).map_err(|e| StoreError::BadIndex {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if index.version != VERSION {
            return Err(StoreError::BadIndex {
                path: path.into(),
                reason: format!("version {} (this agent knows {VERSION})", index.version),
            });
        }
        Ok(index)
    }

    /// Writes `path` atomically and durably.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let data = serde_json::to_vec_pretty(self).map_err(|e| StoreError::BadIndex {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".images.json.")
            .tempfile_in(dir)
            .at(dir)?;
        tmp.write_all(&data).at(tmp.path())?;
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(path).map_err(|e| StoreError::Io {
            path: path.into(),
            source: e.error,
        })?;
        File::open(dir).and_then(|d| d.sync_all()).at(dir)
    }

    pub fn images(&self) -> &[ImageRecord] {
        &self.images
    }

    pub fn get(&self, id: &ImageId) -> Option<&ImageRecord> {
        self.images.iter().find(|r| r.id == *id)
    }

    /// The image a reference names: a name (`busybox`, `busybox:1.36`),
    /// an id (`sha256:<hex>`), or an unambiguous id prefix of at least 4
    /// hex digits, with or without `sha256:`.
    pub fn find(&self, reference: &str) -> Result<&ImageRecord> {
        let name = normalise_name(reference).ok();
        if let Some(r) = self
            .images
            .iter()
            .find(|r| name.as_ref().is_some_and(|n| r.names.contains(n)))
        {
            return Ok(r);
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 4 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let matches: Vec<&ImageRecord> = self
                .images
                .iter()
                .filter(|r| r.id.0.hex().starts_with(&hex))
                .collect();
            match matches.as_slice() {
                [one] => return Ok(one),
                [] => {}
                many => {
                    return Err(StoreError::Ambiguous {
                        reference: reference.into(),
                        ids: many.iter().map(|r| r.id).collect(),
                    });
                }
            }
        }
        Err(StoreError::NotFound(reference.into()))
    }

    /// Adds an image, or adds names to the one with the same id. A name
    /// another image holds moves to this one (that image stays, unnamed if
    /// it was its last name, until removed).
    pub fn add(&mut self, record: ImageRecord) {
        for other in self.images.iter_mut().filter(|r| r.id != record.id) {
            other.names.retain(|n| !record.names.contains(n));
        }
        match self.images.iter_mut().find(|r| r.id == record.id) {
            Some(existing) => {
                for name in record.names {
                    if !existing.names.contains(&name) {
                        existing.names.push(name);
                    }
                }
            }
            None => self.images.push(record),
        }
    }

    /// Drops a name from its image; returns whether it was there.
    pub fn untag(&mut self, id: &ImageId, name: &str) -> bool {
        let Some(record) = self.images.iter_mut().find(|r| r.id == *id) else {
            return false;
        };
        let before = record.names.len();
        record.names.retain(|n| n != name);
        record.names.len() != before
    }

    pub fn remove(&mut self, id: &ImageId) -> Option<ImageRecord> {
        let i = self.images.iter().position(|r| r.id == *id)?;
        Some(self.images.remove(i))
    }
}

/// Where the index lives under a store root.
pub fn index_path(root: &Path) -> PathBuf {
    root.join("images.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8, names: &[&str]) -> ImageRecord {
        ImageRecord {
            id: ImageId(Digest::of(&[n])),
            names: names.iter().map(|s| s.to_string()).collect(),
            manifest: Digest::of(&[n, 1]),
            layers: vec![],
            size: 0,
            os: "linux".into(),
            architecture: "amd64".into(),
            created: None,
        }
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalise_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalise_name("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(
            normalise_name("localhost:5000/app").unwrap(),
            "localhost:5000/app:latest"
        );
        // Docker's familiar form
        assert_eq!(
            normalise_name("docker.io/library/busybox").unwrap(),
            "busybox:latest"
        );
        assert_eq!(
            normalise_name("index.docker.io/user/app:1").unwrap(),
            "user/app:1"
        );
        assert_eq!(
            normalise_name("ghcr.io/o/app").unwrap(),
            "ghcr.io/o/app:latest"
        );
        assert!(normalise_name("").is_err());
        assert!(normalise_name("a b").is_err());
        assert!(normalise_name(&format!("docker.io/library/sha256:{}", "0".repeat(64))).is_err());
    }

    #[test]
    fn find_by_name_id_and_prefix_and_move_tags() {
        let mut index = Index::default();
        let a = record(1, &["app:latest"]);
        let b = record(2, &["app:old"]);
        index.add(a.clone());
        index.add(b.clone());
        assert_eq!(index.find("app").unwrap().id, a.id);
        assert_eq!(index.find(&b.id.to_string()).unwrap().id, b.id);
        assert_eq!(index.find(&b.id.0.hex()[..8]).unwrap().id, b.id);
        assert!(matches!(index.find("nope"), Err(StoreError::NotFound(_))));
        // the tag moves to the newer image
        index.add(record(2, &["app:latest"]));
        assert_eq!(index.find("app:latest").unwrap().id, b.id);
        assert!(index.get(&a.id).unwrap().names.is_empty());
        // save/load round trip
        let dir = tempfile::tempdir().unwrap();
        let path = index_path(dir.path());
        index.save(&path).unwrap();
        assert_eq!(Index::load(&path).unwrap().images, index.images);
    }
}
