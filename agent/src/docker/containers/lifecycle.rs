//! start, stop, restart, kill, wait and remove, as dockerd answers them:
//! 204 when done, 304 when there was nothing to do (starting a running
//! container, stopping a stopped one), and `wait`'s answer only once its
//! condition holds — its headers at once, so that `docker run`, which
//! waits for them before it starts the container, cannot miss the exit.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, post};
use serde_json::json;

use super::super::error::DockerError;
use super::super::query::Params;
use super::super::{Docker, ids};
use super::{IdPath, QueryMap};
use crate::containers::Status;

fn done() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn not_modified() -> Response {
    StatusCode::NOT_MODIFIED.into_response()
}

/// `POST /containers/{id}/start`. A failed start of an auto-remove
/// container removes it, as dockerd does: `docker run --rm` waits for the
/// removal after reporting the failure.
pub fn start() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>| async move {
            let info = ids::resolve(&docker.manager, &path.id)?;
            if info.status == Status::Running {
                return Ok(not_modified());
            }
            if let Err(e) = docker.manager.start(&info.name).await {
                if info.options.auto_remove
                    && let Err(removal) = docker
                        .manager
                        .remove_container(&info.name, true, true)
                        .await
                {
                    log::error!("{}: auto-remove after a failed start: {removal}", info.name);
                }
                return Err(DockerError::from(e));
            }
            Ok::<_, DockerError>(done())
        },
    )
}

/// `t` of stop and restart: seconds before SIGKILL (-1: Docker's "wait
/// forever", a day here).
fn timeout(params: &Params) -> Result<Option<Duration>, DockerError> {
    if params.str("signal").is_some() {
        return Err(DockerError::bad_request(
            "stop's signal is not supported by Husk: the image's StopSignal (else SIGTERM) is sent",
        ));
    }
    Ok(params.int("t")?.map(|t| match u64::try_from(t) {
        Ok(t) => Duration::from_secs(t),
        Err(_) => Duration::from_secs(86_400),
    }))
}

/// `POST /containers/{id}/stop?t=`.
pub fn stop() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, query: QueryMap| async move {
            let params = Params::from(query)?;
            let timeout = timeout(&params)?;
            let info = ids::resolve(&docker.manager, &path.id)?;
            if !matches!(info.status, Status::Running | Status::Restarting) {
                return Ok(not_modified());
            }
            docker.manager.stop(&info.name, timeout).await?;
            Ok::<_, DockerError>(done())
        },
    )
}

/// `POST /containers/{id}/restart?t=`: stop (if running), then start.
pub fn restart() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, query: QueryMap| async move {
            let params = Params::from(query)?;
            let timeout = timeout(&params)?;
            let info = ids::resolve(&docker.manager, &path.id)?;
            docker.manager.restart(&info.name, timeout).await?;
            Ok::<_, DockerError>(done())
        },
    )
}

/// `POST /containers/{id}/kill?signal=` (default SIGKILL).
pub fn kill() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, query: QueryMap| async move {
            let params = Params::from(query)?;
            let signal = match params.str("signal") {
                None => libc::SIGKILL,
                Some(s) => husk_runtime::signal::parse(s)
                    .map_err(|e| DockerError::bad_request(e.to_string()))?,
            };
            let info = ids::resolve(&docker.manager, &path.id)?;
            docker.manager.kill(&info.name, signal).await?;
            Ok::<_, DockerError>(done())
        },
    )
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`:
/// `{"StatusCode": N, "Error": null}` once the condition holds.
pub fn wait() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, query: QueryMap| async move {
            let params = Params::from(query)?;
            let condition = params.str("condition").unwrap_or("not-running").to_owned();
            if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
                return Err(DockerError::bad_request(format!(
                    "invalid condition: {condition:?} (not-running, next-exit or removed)"
                )));
            }
            let info = ids::resolve(&docker.manager, &path.id)?;
            // Taken now, before the headers go: the exit it waits for is
            // one after this answer began.
            let watch = docker.manager.watch_exit(&info.name)?;
            let answer = async move {
                let code = match condition.as_str() {
                    "next-exit" => watch.next_exit().await,
                    "removed" => watch.removed().await,
                    _ => watch.not_running().await,
                };
                let body = json!({"StatusCode": code.unwrap_or(0), "Error": null});
                Ok::<_, std::convert::Infallible>(format!("{body}\n"))
            };
            Ok::<_, DockerError>(
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from_stream(futures_util::stream::once(answer)),
                )
                    .into_response(),
            )
        },
    )
}

/// `DELETE /containers/{id}?force=&v=`: `v` removes the anonymous volumes
/// it made for itself.
pub fn remove() -> MethodRouter<Docker> {
    delete(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, query: QueryMap| async move {
            let params = Params::from(query)?;
            if params.bool("link") {
                return Err(DockerError::bad_request("links are not supported by Husk"));
            }
            let info = ids::resolve(&docker.manager, &path.id)?;
            docker
                .manager
                .remove_container(&info.name, params.bool("force"), params.bool("v"))
                .await?;
            Ok::<_, DockerError>(done())
        },
    )
}
