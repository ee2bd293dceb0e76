//! `/v1/containers`: the container manager over HTTP (docs/API.md).
//! Streams (logs, a plain exec's) are `application/x-ndjson`: one JSON
//! document per line, sent as the container writes. Exec is `super::exec`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use husk_api::containers::{
    CONTAINERS_PATH, ContainerInfo, ContainerList, LogOptions, RemovedContainer, RunOptions, Stats,
    Stream, WaitResponse,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::error::ApiError;
use crate::containers::{Manager, ManagerError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
    /// Its anonymous volumes too (`rm -v`).
    #[serde(default)]
    volumes: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopQuery {
    /// Seconds between the stop signal and SIGKILL.
    timeout: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillQuery {
    signal: Option<String>,
}

impl From<ManagerError> for ApiError {
    fn from(error: ManagerError) -> Self {
        use ManagerError as E;
        let status = match &error {
            E::NotFound(_) | E::NoSuchNetwork(_) | E::NoSuchVolume(_) | E::NoSuchPath { .. } => {
                StatusCode::NOT_FOUND
            }
            E::NoSuchExec(_) => StatusCode::NOT_FOUND,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::Invalid(_) | E::StartFailed { .. } => StatusCode::BAD_REQUEST,
            E::Image(e) => return ApiError::from_store(e, None),
            E::Spec(husk_spec::SpecError::Forbidden(_)) => StatusCode::FORBIDDEN,
            E::Spec(_) => StatusCode::BAD_REQUEST,
            E::StoreUnavailable(_) | E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            E::Io { .. } | E::Volume(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

pub fn routes() -> Router<Manager> {
    Router::new()
        .route(CONTAINERS_PATH, get(list).post(create))
        .route("/v1/containers/{name}", get(inspect).delete(remove))
        .route("/v1/containers/{name}/start", post(start))
        .route("/v1/containers/{name}/stop", post(stop))
        .route("/v1/containers/{name}/kill", post(kill))
        .route("/v1/containers/{name}/wait", post(wait))
        .route("/v1/containers/{name}/logs", get(logs))
        .route("/v1/containers/{name}/stats", get(stats))
}

type Name = Result<UrlPath<String>, PathRejection>;

async fn list(State(manager): State<Manager>) -> Json<ContainerList> {
    Json(ContainerList {
        containers: manager.list(),
    })
}

async fn create(
    State(manager): State<Manager>,
    request: Result<Json<RunOptions>, JsonRejection>,
) -> Result<(StatusCode, Json<ContainerInfo>), ApiError> {
    let Json(options) = request?;
    Ok((StatusCode::CREATED, Json(manager.create(options).await?)))
}

async fn inspect(
    State(manager): State<Manager>,
    name: Name,
) -> Result<Json<ContainerInfo>, ApiError> {
    let UrlPath(name) = name?;
    Ok(Json(manager.inspect(&name)?))
}

async fn start(
    State(manager): State<Manager>,
    name: Name,
) -> Result<Json<ContainerInfo>, ApiError> {
    let UrlPath(name) = name?;
    Ok(Json(manager.start(&name).await?))
}

async fn stop(
    State(manager): State<Manager>,
    name: Name,
    query: Result<Query<StopQuery>, QueryRejection>,
) -> Result<Json<ContainerInfo>, ApiError> {
    let UrlPath(name) = name?;
    let Query(query) = query?;
    let timeout = query.timeout.map(Duration::from_secs);
    Ok(Json(manager.stop(&name, timeout).await?))
}

async fn kill(
    State(manager): State<Manager>,
    name: Name,
    query: Result<Query<KillQuery>, QueryRejection>,
) -> Result<Json<ContainerInfo>, ApiError> {
    let UrlPath(name) = name?;
    let Query(query) = query?;
    let signal = match query.signal.as_deref() {
        None => libc::SIGKILL,
        Some(s) => {
            husk_runtime::signal::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
    };
    Ok(Json(manager.kill(&name, signal).await?))
}

async fn wait(State(manager): State<Manager>, name: Name) -> Result<Json<WaitResponse>, ApiError> {
    let UrlPath(name) = name?;
    Ok(Json(WaitResponse {
        exit_code: manager.wait(&name).await?,
    }))
}

async fn remove(
    State(manager): State<Manager>,
    name: Name,
    query: Result<Query<RemoveQuery>, QueryRejection>,
) -> Result<Json<RemovedContainer>, ApiError> {
    let UrlPath(name) = name?;
    let Query(query) = query?;
    manager
        .remove_container(&name, query.force, query.volumes)
        .await?;
    Ok(Json(RemovedContainer { removed: name }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    tail: Option<usize>,
    stream: Option<Stream>,
}

async fn logs(
    State(manager): State<Manager>,
    name: Name,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let UrlPath(name) = name?;
    let Query(query) = query?;
    let lines = manager.logs(
        &name,
        LogOptions {
            follow: query.follow,
            tail: query.tail,
            stream: query.stream,
        },
    )?;
    Ok(ndjson(lines))
}

async fn stats(State(manager): State<Manager>, name: Name) -> Result<Json<Stats>, ApiError> {
    let UrlPath(name) = name?;
    Ok(Json(manager.stats(&name)?))
}

/// A streamed answer, one line per message, as they come.
pub(super) fn ndjson(lines: mpsc::Receiver<Vec<u8>>) -> Response {
    let stream = futures_util::stream::unfold(lines, |mut lines| async move {
        lines
            .recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), lines))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}
