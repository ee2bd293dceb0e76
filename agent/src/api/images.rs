//! `/v1/images`: the image store over HTTP (docs/API.md). The store is
//! synchronous and holds a lock file, so the agent opens it once
//! ([`ImageStore`]) and every request borrows it on a blocking thread.

use std::sync::PoisonError;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use husk_api::images::{
    GcReport, IMAGES_GC_PATH, IMAGES_IMPORT_PATH, IMAGES_PATH, IMAGES_PULL_PATH, IMAGES_TAG_PATH,
    ImageDetails, ImageList, ImageSummary, ImportRequest, PullRequest, RemoveResponse, TagRequest,
};
use husk_store::{ImageId, Removed, Store};

use super::error::ApiError;
use crate::containers::Manager;
use crate::images::ImageStore;
use crate::pulls::Puller;

/// Runs `f` with the store on a blocking thread; 503 when there is no
/// store. Its errors are the caller's API's (Husk's or Docker's).
pub(crate) async fn with_store_as<T, E>(
    images: &ImageStore,
    f: impl FnOnce(&mut Store) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ApiError> + Send + 'static,
{
    let store = images.shared().map_err(|reason| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the image store is unavailable: {reason}"),
        )
    })?;
    tokio::task::spawn_blocking(move || {
        // A panic cannot leave the store half-changed: its operations
        // replace the in-memory index only once committed on disk.
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut store)
    })
    .await
    .map_err(|e| ApiError::internal(format!("image store task failed: {e}")))?
}

/// [`with_store_as`] with Husk's errors.
async fn with_store<T: Send + 'static>(
    images: &ImageStore,
    f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    with_store_as(images, f).await
}

/// The store's summary as the API shows it.
pub(crate) fn summary(image: husk_store::ImageSummary) -> ImageSummary {
    ImageSummary {
        id: image.id.to_string(),
        names: image.names,
        manifest: image.manifest.to_string(),
        layers: image.layers,
        size: image.size,
        os: image.os,
        architecture: image.architecture,
        created: image.created,
    }
}

fn removed(removed: &Removed) -> RemoveResponse {
    match removed {
        Removed::Untagged(name) => RemoveResponse {
            untagged: Some(name.clone()),
            deleted: None,
        },
        Removed::Deleted(id) => RemoveResponse {
            untagged: None,
            deleted: Some(id.to_string()),
        },
    }
}

/// The image routes; `containers` says which images are in use.
pub fn routes(containers: Manager, puller: Puller) -> Router<ImageStore> {
    Router::new()
        .route(IMAGES_PATH, get(list))
        .route(IMAGES_PULL_PATH, {
            let puller = puller.clone();
            post(move |request| pull(puller, request))
        })
        .route(IMAGES_IMPORT_PATH, {
            let puller = puller.clone();
            post(move |images, request| import(images, request, puller))
        })
        .route(IMAGES_GC_PATH, post(gc))
        .route(IMAGES_TAG_PATH, {
            let (containers, puller) = (containers.clone(), puller.clone());
            post(move |images, request| tag(images, request, containers, puller))
        })
        .route(
            "/v1/images/{*reference}",
            get(inspect).delete(move |images, reference| remove(images, reference, containers)),
        )
}

/// Streams the pull's progress, one JSON line per event, the last
/// `done` or `error`. A bad reference or platform is a 400 before any.
async fn pull(
    puller: Puller,
    request: Result<Json<PullRequest>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Json(request) = request?;
    let mut following = puller
        .start(&request.reference, request.platform.as_deref())
        .map_err(ApiError::bad_request)?;
    let (lines, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(event) = following.next().await {
            let Ok(mut line) = serde_json::to_vec(&event) else {
                continue;
            };
            line.push(b'\n');
            if lines.send(line).await.is_err() {
                // The client went away; the pull goes on for the others.
                break;
            }
        }
    });
    Ok(super::ndjson(rx))
}

async fn import(
    State(images): State<ImageStore>,
    request: Result<Json<ImportRequest>, JsonRejection>,
    puller: Puller,
) -> Result<(StatusCode, Json<ImageList>), ApiError> {
    let Json(ImportRequest { path }) = request?;
    puller
        .admits_local_images("an image import")
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))?;
    // The agent's working directory is not the client's: a relative path
    // would name another file than the user meant.
    if !path.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "the archive path `{}` is not absolute",
            path.display()
        )));
    }
    let imported = with_store(&images, move |store| {
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
    let images = imported.into_iter().map(summary).collect();
    Ok((StatusCode::CREATED, Json(ImageList { images })))
}

async fn list(State(images): State<ImageStore>) -> Result<Json<ImageList>, ApiError> {
    let images = with_store(&images, |store| Ok(store.list())).await?;
    let images = images.into_iter().map(summary).collect();
    Ok(Json(ImageList { images }))
}

async fn inspect(
    State(images): State<ImageStore>,
    reference: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<ImageDetails>, ApiError> {
    let UrlPath(reference) = reference?;
    let details = with_store(&images, move |store| {
        let to_api = |e| ApiError::from_store(&e, None);
        let found = store.get(&reference).map_err(to_api)?;
        let config = store.image_config(&found.id).map_err(to_api)?;
        let config = serde_json::to_value(config)
            .map_err(|e| ApiError::internal(format!("image config: {e}")))?;
        Ok(ImageDetails {
            summary: summary(found),
            config,
        })
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
    let events = containers.events().clone();
    let (image, removed) = with_store(&images, move |store| {
        // Under the store's lock, which container creation also
        // holds while it resolves its image: no race between the two.
        let used = containers.images_in_use();
        let in_use = |id: &ImageId| used.contains(id);
        let image = store
            .get(&reference)
            .map_err(|e| ApiError::from_store(&e, None))?;
        let removed = store
            .remove(&reference, in_use)
            .map_err(|e| ApiError::from_store(&e, None))?;
        Ok((image, removed))
    })
    .await?;
    tell_removal(&events, &image, &removed);
    Ok(Json(self::removed(&removed)))
}

/// Logs an image removal and tells the event feed, as dockerd names it:
/// each name untagged, then the image deleted (by its id). Shared with
/// Docker's `DELETE /images/{name}`.
pub(crate) fn tell_removal(
    events: &crate::events::Events,
    image: &husk_store::ImageSummary,
    removed: &Removed,
) {
    let id = image.id.to_string();
    match removed {
        Removed::Untagged(name) => {
            log::info!("untagged image {name}");
            events.image(&id, name, "untag");
        }
        Removed::Deleted(_) => {
            log::info!("deleted image {id}");
            for name in &image.names {
                events.image(&id, name, "untag");
            }
            events.image(&id, &id, "delete");
        }
    }
}

async fn tag(
    State(images): State<ImageStore>,
    request: Result<Json<TagRequest>, JsonRejection>,
    containers: Manager,
    puller: Puller,
) -> Result<Json<ImageSummary>, ApiError> {
    let Json(request) = request?;
    let tagged = tag_image(
        &images,
        &containers,
        &puller,
        request.source,
        &request.target,
    )
    .await?;
    Ok(Json(summary(tagged)))
}

/// Tags `source` as `target` ([`crate::images::tag_name`]) and tells the
/// event feed; shared with Docker's `POST /images/{name}/tag`.
pub(crate) async fn tag_image(
    images: &ImageStore,
    containers: &Manager,
    puller: &Puller,
    source: String,
    target: &str,
) -> Result<husk_store::ImageSummary, ApiError> {
    puller
        .admits_local_images("an image tag")
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))?;
    let name = crate::images::tag_name(target).map_err(ApiError::bad_request)?;
    let tagged_as = name.clone();
    let tagged = with_store(images, move |store| {
        store
            .tag(&source, &tagged_as)
            .map_err(|e| ApiError::from_store(&e, None))
    })
    .await?;
    log::info!("tagged image {} as {name}", tagged.id);
    containers
        .events()
        .image(&tagged.id.to_string(), &name, "tag");
    Ok(tagged)
}

async fn gc(State(images): State<ImageStore>) -> Result<Json<GcReport>, ApiError> {
    let freed = with_store(&images, |store| {
        store.gc().map_err(|e| ApiError::from_store(&e, None))
    })
    .await?;
    log::info!(
        "image gc: removed {} layers and {} blobs",
        freed.layers.len(),
        freed.blobs.len()
    );
    let names =
        |digests: Vec<husk_store::Digest>| digests.iter().map(ToString::to_string).collect();
    Ok(Json(GcReport {
        layers: names(freed.layers),
        blobs: names(freed.blobs),
    }))
}
