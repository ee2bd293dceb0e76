//! The content-addressed blob store, `blobs/sha256/<hex>`: manifests and
//! image configs (layers live unpacked in `layers/`). A blob is written to a
//! temporary file in the store while it is hashed, and only renamed to its
//! name once synced and verified, so a name always matches its content.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::compression::Compression;
use super::digest::{Digest, HashingWriter};
use super::error::{IoContext, Result, StoreError};

/// Manifests and configs are small; this bounds what is read into memory.
pub const MAX_JSON_BLOB: u64 = 16 << 20;

/// A file being written into a staging directory while it is hashed.
pub struct BlobWriter {
    file: HashingWriter<tempfile::NamedTempFile>,
}

impl BlobWriter {
    /// A new temporary file in `dir` (which must be on the store's
    /// filesystem, so that committing it is a rename).
    pub fn new_in(dir: &Path) -> Result<Self> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(dir)
            .at(dir)?;
        Ok(Self {
            file: HashingWriter::new(file),
        })
    }

    /// The written file with the digest and size of its content.
    pub fn finish(mut self) -> Result<StagedBlob> {
        self.file.flush().at("blob")?;
        let (file, digest, size) = self.file.finish();
        Ok(StagedBlob { file, digest, size })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A hashed temporary file, removed when dropped unless committed.
pub struct StagedBlob {
    file: tempfile::NamedTempFile,
    /// The digest of the content, computed while it was written.
    pub digest: Digest,
    pub size: u64,
}

impl std::fmt::Debug for StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBlob")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl StagedBlob {
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn open(&self) -> Result<File> {
        self.file.reopen().at(self.path())
    }

    /// How the content is compressed, by its first bytes.
    pub fn compression(&self) -> Result<Compression> {
        let mut head = [0u8; 4];
        let n = self.open()?.read(&mut head).at(self.path())?;
        Ok(Compression::sniff(&head[..n]))
    }

    /// The whole content, for JSON blobs; refuses anything larger than
    /// [`MAX_JSON_BLOB`].
    pub fn read_small(&self) -> Result<Vec<u8>> {
        read_small(self.open()?, self.path())
    }
}

fn read_small(file: File, path: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    file.take(MAX_JSON_BLOB + 1)
        .read_to_end(&mut data)
        .at(path)?;
    if data.len() as u64 > MAX_JSON_BLOB {
        return Err(StoreError::Io {
            path: path.into(),
            source: io::Error::other(format!("larger than {MAX_JSON_BLOB} bytes")),
        });
    }
    Ok(data)
}

/// `blobs/sha256/` under the store's root.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).at(&dir)?;
        Ok(Self { dir })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// A blob's content, verified against its digest again (a JSON blob is
    /// small, and a corrupted data partition should say so).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let data = read_small(File::open(&path).at(&path)?, &path)?;
        let actual = Digest::of(&data);
        if actual != *digest {
            return Err(StoreError::CorruptBlob {
                digest: *digest,
                actual,
            });
        }
        Ok(data)
    }

    /// Stores `data` as blob `expected`, staging it in `tmp`. Returns
    /// whether the blob is new (false: it was there already).
    pub fn write(&self, tmp: &Path, data: &[u8], expected: &Digest) -> Result<bool> {
        let mut writer = BlobWriter::new_in(tmp)?;
        writer.write_all(data).at(tmp)?;
        self.commit(writer.finish()?, expected)
    }

    /// Moves a staged blob to its name after checking it is `expected`
    /// and syncing it. Returns whether the blob is new.
    pub fn commit(&self, staged: StagedBlob, expected: &Digest) -> Result<bool> {
        if staged.digest != *expected {
            return Err(StoreError::CorruptBlob {
                digest: *expected,
                actual: staged.digest,
            });
        }
        let path = self.path(expected);
        if path.exists() {
            return Ok(false);
        }
        staged.file.as_file().sync_all().at(staged.path())?;
        staged.file.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(true)
    }

    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        fs::remove_file(&path).at(path)
    }

    /// Every blob, by the digest its name says; other names are ignored.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_verifies_and_names_by_content() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let blobs = Blobs::open(root.path()).unwrap();
        let d = Digest::of(b"{}");
        assert!(blobs.write(&tmp, b"{}", &d).unwrap());
        assert!(
            !blobs.write(&tmp, b"{}", &d).unwrap(),
            "second write is a no-op"
        );
        assert_eq!(blobs.read(&d).unwrap(), b"{}");
        assert_eq!(blobs.list().unwrap(), vec![d]);

        let err = blobs.write(&tmp, b"[]", &d).unwrap_err();
        assert!(matches!(err, StoreError::CorruptBlob { .. }), "{err}");
        // nothing left behind in the staging directory
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);

        fs::write(blobs.path(&d), b"tampered").unwrap();
        assert!(matches!(
            blobs.read(&d),
            Err(StoreError::CorruptBlob { .. })
        ));
    }
}
