//! Reading an image archive (a tar, gzip or zstd compressed or not) into a
//! staging directory in the store: every regular file is copied out while
//! it is hashed, and afterwards known by its content digest. A file named
//! `blobs/sha256/<hex>` must hash to `<hex>`, or the import fails here.
//! Names are never trusted for content otherwise: a `docker save` layer
//! `<id>/layer.tar` is whatever it hashes to.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::blobs::{BlobWriter, StagedBlob};
use super::digest::Digest;
use super::error::{IoContext, Result, StoreError};
use super::limits::{Limits, open_layer};

/// An archive's files, staged.
pub struct Staged {
    archive: PathBuf,
    /// Normalised name in the archive → content digest.
    names: HashMap<String, Digest>,
    /// Symlinks and hardlinks in the archive (`docker save` links identical
    /// layers): name → normalised target name.
    links: HashMap<String, String>,
    blobs: HashMap<Digest, StagedBlob>,
}

/// `./a//b` and `/a/b` → `a/b`.
fn normalise(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Resolves a link target relative to the link's directory, lexically.
fn resolve_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link.split('/').collect()
    };
    if !target.starts_with('/') {
        parts.pop();
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Copies every regular file of `archive` into `staging`.
/// The archive's stream counts against `limits` as a layer's does (its
/// uncompressed size, its compression ratio): a `.tar.gz` bomb is refused
/// while it is staged, not after it has filled the disk.
pub fn stage(archive: &Path, staging: &Path, limits: Limits) -> Result<Staged> {
    let bad = |e: io::Error| StoreError::NotAnArchive {
        archive: archive.into(),
        reason: e.to_string(),
    };
    let file = File::open(archive).at(archive)?;
    let mut tar = tar::Archive::new(open_layer(file, limits).map_err(bad)?);
    let mut staged = Staged {
        archive: archive.into(),
        names: HashMap::new(),
        links: HashMap::new(),
        blobs: HashMap::new(),
    };
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = normalise(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target =
                String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default()).into_owned();
            let target = if kind.is_symlink() {
                resolve_link(&name, &target)
            } else {
                normalise(&target)
            };
            staged.names.remove(&name);
            staged.links.insert(name, target);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let mut writer = BlobWriter::new_in(staging)?;
        io::copy(&mut entry, &mut writer).map_err(|e| StoreError::BadArchiveFile {
            archive: archive.into(),
            file: name.clone(),
            reason: e.to_string(),
        })?;
        let blob = writer.finish()?;
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let expected = Digest::from_hex(hex)?;
            if blob.digest != expected {
                return Err(StoreError::DigestMismatch {
                    archive: archive.into(),
                    file: name,
                    expected,
                    actual: blob.digest,
                });
            }
        }
        staged.links.remove(&name);
        staged.names.insert(name, blob.digest);
        staged.blobs.entry(blob.digest).or_insert(blob);
    }
    Ok(staged)
}

impl Staged {
    pub fn archive(&self) -> &Path {
        &self.archive
    }

    /// The digest of the file `name` in the archive, following links.
    pub fn digest_of(&self, name: &str) -> Option<Digest> {
        let mut name = normalise(name);
        for _ in 0..16 {
            if let Some(d) = self.names.get(&name) {
                return Some(*d);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    /// The staged blob with this digest, or a missing-blob error saying
    /// what it was for.
    pub fn blob(&self, digest: &Digest, what: impl FnOnce() -> String) -> Result<&StagedBlob> {
        self.blobs
            .get(digest)
            .ok_or_else(|| StoreError::MissingBlob {
                archive: self.archive.clone(),
                what: format!("{digest} ({})", what()),
            })
    }

    /// The content of the file `name`, if the archive has it (JSON only).
    pub fn read_named(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.digest_of(name) {
            Some(d) => Ok(Some(self.blob(&d, || name.into())?.read_small()?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_links() {
        assert_eq!(normalise("./blobs//sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalise("/manifest.json"), "manifest.json");
        assert_eq!(resolve_link("b/layer.tar", "../a/layer.tar"), "a/layer.tar");
        assert_eq!(resolve_link("b/layer.tar", "/a/layer.tar"), "a/layer.tar");
    }
}
