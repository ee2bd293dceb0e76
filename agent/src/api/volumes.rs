//! `/v1/volumes`: named volumes over HTTP (docs/API.md).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use husk_api::volumes::{
    PrunedVolumes, RemovedVolume, VOLUMES_PATH, Volume, VolumeCreate, VolumeList,
};

use super::error::ApiError;
use crate::containers::{Manager, ManagerError};

pub fn routes() -> Router<Manager> {
    Router::new()
        .route(VOLUMES_PATH, get(list).post(create))
        .route("/v1/volumes/prune", post(prune))
        .route("/v1/volumes/{name}", get(inspect).delete(remove))
}

type Name = Result<UrlPath<String>, PathRejection>;

/// Removing a volume's files may take a while: off the server's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ManagerError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

async fn list(State(manager): State<Manager>) -> Result<Json<VolumeList>, ApiError> {
    Ok(Json(blocking(move || manager.list_volumes()).await?))
}

async fn create(
    State(manager): State<Manager>,
    request: Result<Json<VolumeCreate>, JsonRejection>,
) -> Result<(StatusCode, Json<Volume>), ApiError> {
    let Json(request) = request?;
    let volume = blocking(move || manager.create_volume(&request)).await?;
    Ok((StatusCode::CREATED, Json(volume)))
}

async fn inspect(State(manager): State<Manager>, name: Name) -> Result<Json<Volume>, ApiError> {
    let UrlPath(name) = name?;
    Ok(Json(blocking(move || manager.inspect_volume(&name)).await?))
}

async fn remove(
    State(manager): State<Manager>,
    name: Name,
) -> Result<Json<RemovedVolume>, ApiError> {
    let UrlPath(name) = name?;
    let removed = name.clone();
    blocking(move || manager.remove_volume(&name)).await?;
    Ok(Json(RemovedVolume { removed }))
}

async fn prune(State(manager): State<Manager>) -> Result<Json<PrunedVolumes>, ApiError> {
    Ok(Json(blocking(move || manager.prune_volumes()).await?))
}
