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

/// The store's name for a new tag `target`, checked as a registry
/// reference (lowercase repository, a tag of Docker's characters, no
/// digest: a digest names content, a tag is a choice), in Docker's
/// familiar form (`app:1`, `registry.example/team/app:1`).
pub fn tag_name(target: &str) -> Result<String, String> {
    let reference = husk_registry::Reference::parse(target).map_err(|e| e.to_string())?;
    if reference.digest.is_some() {
        return Err(format!(
            "invalid tag `{target}`: a tag cannot carry a digest"
        ));
    }
    let tag = reference.tag.as_deref().unwrap_or("latest");
    Ok(format!("{}:{tag}", reference.familiar_name()))
}

#[cfg(test)]
mod tests {
    use super::tag_name;

    #[test]
    fn tags_are_checked_as_references_and_kept_in_familiar_form() {
        assert_eq!(tag_name("app").unwrap(), "app:latest");
        assert_eq!(tag_name("docker.io/library/app:1").unwrap(), "app:1");
        assert_eq!(
            tag_name("127.0.0.1:5000/team/app:v2").unwrap(),
            "127.0.0.1:5000/team/app:v2"
        );
        for bad in ["App", "app:bad tag", "app@sha256:00", "", "a::b"] {
            assert!(tag_name(bad).is_err(), "{bad}");
        }
    }
}
