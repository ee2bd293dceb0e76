//! What the container manager answers when it cannot do what was asked.

use husk_spec::SpecError;
use husk_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("no such container: {0}")]
    NotFound(String),
    /// The request conflicts with the container's state (a name taken,
    /// removing a running container…).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Image(#[from] StoreError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The runtime could not create or start the container: most often
    /// its configuration (a command that does not exist, a bad working
    /// directory).
    #[error("container {name} did not start: {reason}")]
    StartFailed { name: String, reason: String },
    #[error("the image store is unavailable: {0}")]
    StoreUnavailable(String),
    #[error("no such network: {0}")]
    NoSuchNetwork(String),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    /// A path in a container that is not there (Docker's wording).
    #[error("Could not find the file {path} in container {container}")]
    NoSuchPath { container: String, path: String },
    /// Docker's wording, which its clients know.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    #[error(transparent)]
    Volume(crate::volumes::VolumeError),
    /// A part the request needs is not working (the networks).
    #[error("{0}")]
    Unavailable(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl ManagerError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub fn at(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::io(path.display().to_string(), source)
    }
}

/// `.at(path)` on io results.
pub trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, ManagerError>;
    fn context(self, what: impl FnOnce() -> String) -> Result<T, ManagerError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, ManagerError> {
        self.map_err(|e| ManagerError::at(path, e))
    }
    fn context(self, what: impl FnOnce() -> String) -> Result<T, ManagerError> {
        self.map_err(|e| ManagerError::io(what(), e))
    }
}

pub type Result<T, E = ManagerError> = std::result::Result<T, E>;
