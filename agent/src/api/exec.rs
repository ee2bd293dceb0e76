//! `POST /v1/containers/{name}/exec` and the exec it makes (docs/API.md,
//! "Exec").
//!
//! Plain (no upgrade headers): the process runs without stdin and its
//! output comes as JSON lines, then its exit code. Upgraded
//! (`Connection: Upgrade`, `Upgrade: tcp`; needed for `tty` and
//! `interactive`): `101 Switching Protocols` naming the exec in
//! [`EXEC_ID_HEADER`], then the connection is spliced with the exec's
//! stream as an attach is with a container's (raw for a tty, Docker's
//! multiplexed frames otherwise; the client's bytes to the stdin, its
//! write-side shutdown the stdin's EOF, the detach keys the end of the
//! session); when it ends, `GET …/exec/{id}` has the exit code, and
//! `POST …/exec/{id}/resize` sets the pty's size meanwhile.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path as UrlPath, Query, Request, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::attach::{ResizeQuery, Session, splice, stream_content_type, take_over};
use super::containers::ndjson;
use super::error::ApiError;
use crate::containers::{ExecConfig, ExecView, Manager, ManagerError};
use husk_api::containers::{EXEC_ID_HEADER, ExecInfo, ExecRequest};

pub fn routes() -> Router<Manager> {
    Router::new()
        .route("/v1/containers/{name}/exec", post(exec))
        .route("/v1/containers/{name}/exec/{id}", get(inspect))
        .route("/v1/containers/{name}/exec/{id}/resize", post(resize))
}

type NameAndId = Result<UrlPath<(String, String)>, PathRejection>;

async fn exec(
    State(manager): State<Manager>,
    // The detach keys count only upgraded.
    Session { name, query }: Session,
    mut request: Request,
) -> Result<Response, ApiError> {
    // hyper leaves this only on a request that asked for the upgrade.
    let upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>();
    let Json(body) = Json::<ExecRequest>::from_request(request, &()).await?;
    let Some(upgrade) = upgrade else {
        return Ok(ndjson(manager.exec(&name, body).await?));
    };
    let keys = query.keys()?;
    let tty = body.tty;
    let id = manager.exec_create(
        &name,
        ExecConfig {
            request: body,
            stdout: true,
            stderr: true,
            detach_keys: query.detach_keys,
            size: None,
        },
    )?;
    let stream = manager
        .exec_start(&id, true, None)
        .await?
        .ok_or_else(|| ApiError::internal(format!("exec {id}: no stream to attach to")))?;
    let header = HeaderValue::try_from(&id).map_err(|e| ApiError::internal(e.to_string()))?;
    let what = format!("{name}: exec {id}");
    // If the upgrade fails, the exec runs on; its output is dropped.
    let mut response = take_over(
        upgrade,
        stream_content_type(tty),
        what,
        move |upgraded, _| async move { splice(upgraded, stream, keys).await },
    );
    response.headers_mut().insert(EXEC_ID_HEADER, header);
    Ok(response)
}

/// The exec, if it is this container's.
fn find(manager: &Manager, name: &str, id: &str) -> Result<ExecView, ApiError> {
    let view = manager.exec_inspect(id)?;
    if view.container != name {
        return Err(ManagerError::NoSuchExec(id.to_owned()).into());
    }
    Ok(view)
}

async fn inspect(
    State(manager): State<Manager>,
    path: NameAndId,
) -> Result<Json<ExecInfo>, ApiError> {
    let UrlPath((name, id)) = path?;
    Ok(Json(find(&manager, &name, &id)?.info()))
}

async fn resize(
    State(manager): State<Manager>,
    path: NameAndId,
    query: Result<Query<ResizeQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let UrlPath((name, id)) = path?;
    let Query(query) = query?;
    find(&manager, &name, &id)?;
    manager.exec_resize(&id, query.rows, query.cols)?;
    Ok(query.answer())
}
