//! `/v1/images`: the image store over HTTP (docs/API.md). The store is
//! synchronous and holds a lock file, so the agent opens it once and every
//! request borrows it on a blocking thread.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::containers::Manager;
use crate::store::{GcReport, ImageId, ImageSummary, Removed, Store};

/// `GET` (list).
pub const IMAGES_PATH: &str = "/v1/images";
/// `POST` `{"path": "/abs/archive.tar"}`.
pub const IMAGES_IMPORT_PATH: &str = "/v1/images/import";
/// `POST`: remove unused layers and blobs.
pub const IMAGES_GC_PATH: &str = "/v1/images/gc";

/// `GET` / `DELETE` `/v1/images/{reference}` (the reference may contain
/// slashes: `registry.example/team/app:1`).
pub fn image_path(reference: &str) -> String {
    format!("{IMAGES_PATH}/{}", encode_reference(reference))
}

/// The image store as the API holds it: open, or the reason it is not.
#[derive(Debug, Clone)]
pub struct ImageStore(Result<Arc<Mutex<Store>>, Arc<str>>);

impl Default for ImageStore {
    fn default() -> Self {
        Self::unavailable("no image store is configured")
    }
}

impl ImageStore {
    /// Opens the store at `root` on a blocking thread; a failure is kept
    /// and answered as 503 by the image endpoints.
    pub async fn open(root: PathBuf) -> Self {
        let opened = tokio::task::spawn_blocking(move || Store::open(&root))
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
    pub(crate) fn shared(&self) -> Result<Arc<Mutex<Store>>, String> {
        match &self.0 {
            Ok(store) => Ok(Arc::clone(store)),
            Err(reason) => Err(reason.to_string()),
        }
    }

    /// Why the store is not available, if it is not.
    pub fn error(&self) -> Option<&str> {
        self.0.as_ref().err().map(|e| &**e)
    }

    /// Runs `f` with the store on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = match &self.0 {
            Ok(store) => Arc::clone(store),
            Err(reason) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the image store is unavailable: {reason}"),
                ));
            }
        };
        tokio::task::spawn_blocking(move || {
            // A panic cannot leave the store half-changed: its operations
            // replace the in-memory index only once committed on disk.
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut store)
        })
        .await
        .map_err(|e| ApiError::internal(format!("image store task failed: {e}")))?
    }
}

/// `POST /v1/images/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// An OCI layout or `docker save` archive on the machine, absolute.
    pub path: PathBuf,
}

/// The answer of import and list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageList {
    pub images: Vec<ImageSummary>,
}

/// `GET /v1/images/{reference}`: the summary and the image's OCI config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageDetails {
    #[serde(flatten)]
    pub summary: ImageSummary,
    pub config: ImageConfiguration,
}

/// `DELETE /v1/images/{reference}`: one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveResponse {
    /// The name removed when the image had other names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    /// The image removed (its layers go at the next gc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<ImageId>,
}

impl From<Removed> for RemoveResponse {
    fn from(removed: Removed) -> Self {
        match removed {
            Removed::Untagged(name) => Self {
                untagged: Some(name),
                deleted: None,
            },
            Removed::Deleted(id) => Self {
                untagged: None,
                deleted: Some(id),
            },
        }
    }
}

/// The image routes; `containers` says which images are in use.
pub fn routes(containers: Manager) -> Router<ImageStore> {
    Router::new()
        .route(IMAGES_PATH, get(list))
        .route(IMAGES_IMPORT_PATH, post(import))
        .route(IMAGES_GC_PATH, post(gc))
        .route(
            "/v1/images/{*reference}",
            get(inspect).delete(move |images, reference| remove(images, reference, containers)),
        )
}

async fn import(
    State(images): State<ImageStore>,
    request: Result<Json<ImportRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<ImageList>), ApiError> {
    let Json(ImportRequest { path }) = request?;
    // The agent's working directory is not the client's: a relative path
    // would name another file than the user meant.
    if !path.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "the archive path `{}` is not absolute",
            path.display()
        )));
    }
    let imported = images
        .with(move |store| {
            store
                .import(&path)
                .map_err(|e| ApiError::from_store(&e, Some(&path)))
        })
        .await?;
    for image in &imported {
        log::info!(
            "imported image {} ({})",
            image.id,
            if image.names.is_empty() {
                "no name".to_string()
            } else {
                image.names.join(", ")
            }
        );
    }
    Ok((StatusCode::CREATED, Json(ImageList { images: imported })))
}

async fn list(State(images): State<ImageStore>) -> Result<Json<ImageList>, ApiError> {
    let images = images.with(|store| Ok(store.list())).await?;
    Ok(Json(ImageList { images }))
}

async fn inspect(
    State(images): State<ImageStore>,
    reference: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<ImageDetails>, ApiError> {
    let UrlPath(reference) = reference?;
    let details = images
        .with(move |store| {
            let to_api = |e| ApiError::from_store(&e, None);
            let summary = store.get(&reference).map_err(to_api)?;
            let config = store.image_config(&summary.id).map_err(to_api)?;
            Ok(ImageDetails { summary, config })
        })
        .await?;
    Ok(Json(details))
}

async fn remove(
    State(images): State<ImageStore>,
    reference: Result<UrlPath<String>, PathRejection>,
    containers: Manager,
) -> Result<Json<RemoveResponse>, ApiError> {
    let UrlPath(reference) = reference?;
    let removed = images
        .with(move |store| {
            // Under the store's lock, which container creation also
            // holds while it resolves its image: no race between the two.
            let used = containers.images_in_use();
            let in_use = |id: &ImageId| used.contains(id);
            store
                .remove(&reference, in_use)
                .map_err(|e| ApiError::from_store(&e, None))
        })
        .await?;
    match &removed {
        Removed::Untagged(name) => log::info!("untagged image {name}"),
        Removed::Deleted(id) => log::info!("deleted image {id}"),
    }
    Ok(Json(removed.into()))
}

async fn gc(State(images): State<ImageStore>) -> Result<Json<GcReport>, ApiError> {
    let report = images
        .with(|store| store.gc().map_err(|e| ApiError::from_store(&e, None)))
        .await?;
    log::info!(
        "image gc: removed {} layers and {} blobs",
        report.layers.len(),
        report.blobs.len()
    );
    Ok(Json(report))
}

/// The reference in a path, for clients: slashes kept (the route takes
/// them), everything that would break the URL percent-encoded.
pub fn encode_reference(reference: &str) -> String {
    let mut out = String::with_capacity(reference.len());
    for b in reference.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_keep_slashes_and_escape_the_rest() {
        assert_eq!(
            image_path("registry.example:5000/team/app:1.2"),
            "/v1/images/registry.example:5000/team/app:1.2"
        );
        assert_eq!(image_path("app@sha256:ab"), "/v1/images/app@sha256:ab");
        assert_eq!(image_path("a b?#%"), "/v1/images/a%20b%3F%23%25");
    }
}
