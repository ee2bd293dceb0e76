//! What can go wrong in the image store, each variant naming the file,
//! entry or digest at fault.

use std::io;
use std::path::PathBuf;

use super::digest::{Digest, DigestError, ImageId};
use super::unpack::LayerError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("image store {} is in use by another process", root.display())]
    Locked { root: PathBuf },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("{}: not an image archive: {reason}", archive.display())]
    NotAnArchive { archive: PathBuf, reason: String },
    #[error("{}: {file}: {reason}", archive.display())]
    BadArchiveFile {
        archive: PathBuf,
        file: String,
        reason: String,
    },
    #[error("{}: blob `{file}` does not match its digest: expected {expected}, content is {actual}", archive.display())]
    DigestMismatch {
        archive: PathBuf,
        file: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{}: blob {digest} is {actual} bytes, but its descriptor says {expected}", archive.display())]
    SizeMismatch {
        archive: PathBuf,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{}: missing blob: {what}", archive.display())]
    MissingBlob { archive: PathBuf, what: String },
    #[error(
        "layer {layer}: uncompressed content is {actual}, but the image config's diff_id is {expected}"
    )]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer}: {source}")]
    Unpack {
        layer: Digest,
        #[source]
        source: LayerError,
    },
    #[error("manifest {manifest}: {reason}")]
    BadManifest { manifest: Digest, reason: String },
    #[error("{what} does not match its digest: expected {expected}, content is {actual}")]
    BlobMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {digest} is {actual} bytes or more, but its descriptor says {expected}")]
    BlobSize {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("layer {layer}: more than {limit} bytes after the end of its compressed stream")]
    TrailingData { layer: Digest, limit: u64 },
    #[error("image config {config}: {reason}")]
    BadConfig { config: Digest, reason: String },
    #[error("stored blob {digest} is corrupt: its content is {actual}")]
    CorruptBlob { digest: Digest, actual: Digest },
    #[error("{}: {reason}", path.display())]
    BadIndex { path: PathBuf, reason: String },
    #[error("invalid image name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("no image `{0}`")]
    NotFound(String),
    #[error("`{reference}` matches several images: {}", ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        reference: String,
        ids: Vec<ImageId>,
    },
    #[error("image {0} is in use by a container; remove the container first")]
    InUse(ImageId),
    #[error(transparent)]
    Export(#[from] crate::tar_split::SplitError),
}

/// Attaches the path an I/O error happened on.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T, E: Into<io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| StoreError::Io {
            path: path.into(),
            source: e.into(),
        })
    }
}
