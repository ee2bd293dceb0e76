//! The image store as the agent holds it: opened once at start (the store
//! takes a lock file), shared by the API's image routes and the container
//! manager, which resolve and reserve images under the same lock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use husk_store::Store;

/// The image store as the API holds it: open, or the reason it is not.
#[derive(Debug, Clone)]
pub struct ImageStore(Result<Arc<Mutex<Store>>, Arc<str>>);

impl Default for ImageStore {
    fn default() -> Self {
        Self::unavailable("no image store is configured")
    }
}

impl ImageStore {
    /// Opens the store at `root` on a blocking thread, with agent.toml's
    /// `[limits.images]`; a failure is kept and answered as 503 by the
    /// image endpoints.
    pub async fn open(root: PathBuf, limits: husk_store::Limits) -> Self {
        let options = husk_store::StoreOptions {
            limits,
            ..Default::default()
        };
        let opened = tokio::task::spawn_blocking(move || Store::open_with(&root, options))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match opened {
            Ok(store) => Self::from_store(store),
            Err(e) => Self::unavailable(e),
        }
    }

    pub fn from_store(store: Store) -> Self {
        Self(Ok(Arc::new(Mutex::new(store))))
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self(Err(reason.into().into()))
    }

    /// The open store, for the container manager (which resolves images
    /// and reserves them under the same lock).
    pub fn shared(&self) -> Result<Arc<Mutex<Store>>, String> {
        match &self.0 {
            Ok(store) => Ok(Arc::clone(store)),
            Err(reason) => Err(reason.to_string()),
        }
    }

    /// Whether the store has an image by this reference.
    pub async fn has(&self, reference: &str) -> bool {
        let Ok(store) = self.shared() else {
            return false;
        };
        let reference = reference.to_owned();
        tokio::task::spawn_blocking(move || {
            store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&reference)
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Why the store is not available, if it is not.
    pub fn error(&self) -> Option<&str> {
        self.0.as_ref().err().map(|e| &**e)
    }
}
