//! `/v1/networks`: the containers' networks over HTTP (docs/API.md).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use husk_api::networks::{
    NETWORKS_PATH, Network, NetworkConnect, NetworkCreate, NetworkDisconnect, NetworkList,
    RemovedNetwork,
};

use super::error::ApiError;
use crate::containers::Manager;

pub fn routes() -> Router<Manager> {
    Router::new()
        .route(NETWORKS_PATH, get(list).post(create))
        .route("/v1/networks/{name}", get(inspect).delete(remove))
        .route("/v1/networks/{name}/connect", post(connect))
        .route("/v1/networks/{name}/disconnect", post(disconnect))
}

type Name = Result<UrlPath<String>, PathRejection>;

async fn list(State(manager): State<Manager>) -> Result<Json<NetworkList>, ApiError> {
    Ok(Json(NetworkList {
        networks: manager.list_networks().await?,
    }))
}

async fn create(
    State(manager): State<Manager>,
    request: Result<Json<NetworkCreate>, JsonRejection>,
) -> Result<(StatusCode, Json<Network>), ApiError> {
    let Json(request) = request?;
    Ok((
        StatusCode::CREATED,
        Json(manager.create_network(&request).await?),
    ))
}

async fn inspect(State(manager): State<Manager>, name: Name) -> Result<Json<Network>, ApiError> {
    let UrlPath(name) = name?;
    Ok(Json(manager.inspect_network(&name).await?))
}

async fn remove(
    State(manager): State<Manager>,
    name: Name,
) -> Result<Json<RemovedNetwork>, ApiError> {
    let UrlPath(name) = name?;
    manager.remove_network(&name).await?;
    Ok(Json(RemovedNetwork { name }))
}

async fn connect(
    State(manager): State<Manager>,
    name: Name,
    request: Result<Json<NetworkConnect>, JsonRejection>,
) -> Result<Json<Network>, ApiError> {
    let UrlPath(name) = name?;
    let Json(request) = request?;
    manager.connect_network(&name, &request).await?;
    Ok(Json(manager.inspect_network(&name).await?))
}

async fn disconnect(
    State(manager): State<Manager>,
    name: Name,
    request: Result<Json<NetworkDisconnect>, JsonRejection>,
) -> Result<Json<Network>, ApiError> {
    let UrlPath(name) = name?;
    let Json(request) = request?;
    manager
        .disconnect_network(&name, &request.container)
        .await?;
    Ok(Json(manager.inspect_network(&name).await?))
}
