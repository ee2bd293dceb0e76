//! `POST /v1/containers/{name}/attach` and `…/resize` (docs/API.md,
//! "Terminals and attach").
//!
//! The attach answers `101 Switching Protocols` (`Upgrade: tcp`, as
//! Docker's) and then splices the connection with the shim's attach
//! socket both ways: the container's output as the shim sends it (raw
//! for a tty, Docker's stdcopy frames otherwise), the client's bytes to
//! its stdin. A client's write-side shutdown is passed on (the shim then
//! closes the stdin); the detach keys (default ctrl-p ctrl-q), as
//! dockerd does, are watched for here, and end the attach by closing the
//! shim's connection whole, which leaves the stdin open.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use super::error::ApiError;
use crate::containers::Manager;
use husk_api::client::{DEFAULT_DETACH_KEYS, DetachScanner, parse_detach_keys};

pub fn routes() -> Router<Manager> {
    Router::new()
        .route("/v1/containers/{name}/attach", post(attach))
        .route("/v1/containers/{name}/resize", post(resize))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachQuery {
    /// Docker's `--detach-keys` form: `ctrl-p,ctrl-q`; empty: none.
    detach_keys: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeQuery {
    rows: u16,
    cols: u16,
}

type Name = Result<UrlPath<String>, PathRejection>;

async fn attach(
    State(manager): State<Manager>,
    name: Name,
    query: Result<Query<AttachQuery>, QueryRejection>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let UrlPath(name) = name?;
    let Query(query) = query?;
    let keys = parse_detach_keys(query.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))
        .map_err(ApiError::bad_request)?;
    let Some(upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return Err(ApiError::bad_request(
            "attach takes the connection over: send `Connection: Upgrade` and `Upgrade: tcp`",
        ));
    };
    let tty = manager.inspect(&name)?.options.tty;
    let attaching = manager.attach(&name).await?;
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => {
                log::debug!("{name}: attach: the upgrade failed: {e}");
                return;
            }
        };
        match attaching.connect().await {
            Ok(shim) => splice(upgraded, shim, keys).await,
            Err(e) => log::info!("{name}: attach: {e}"),
        }
    });
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::empty())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn resize(
    State(manager): State<Manager>,
    name: Name,
    query: Result<Query<ResizeQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let UrlPath(name) = name?;
    let Query(query) = query?;
    manager.resize(&name, query.rows, query.cols).await?;
    Ok(Json(
        serde_json::json!({"rows": query.rows, "cols": query.cols}),
    ))
}

enum Up {
    /// The client sent EOF (or went): passed on to the shim.
    Eof,
    /// The client typed the detach keys.
    Detach,
}

/// Client ↔ shim until the output ends, or the client detaches.
pub(crate) async fn splice<C>(client: C, shim: UnixStream, keys: Vec<u8>)
where
    C: AsyncRead + AsyncWrite + Send,
{
    // tokio's generic halves: dropping them never shuts the socket down
    // halfway (a detach must close it whole).
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut shim_read, mut shim_write) = tokio::io::split(shim);
    let up = async move {
        let mut scanner = DetachScanner::new(keys);
        let mut buf = vec![0u8; 16 * 1024];
        let mut out = Vec::new();
        loop {
            out.clear();
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    scanner.release(&mut out);
                    let _ = shim_write.write_all(&out).await;
                    let _ = shim_write.shutdown().await;
                    return Up::Eof;
                }
                Ok(n) => n,
            };
            let detach = scanner.feed(&buf[..n], &mut out);
            if shim_write.write_all(&out).await.is_err() {
                return Up::Eof;
            }
            if detach {
                return Up::Detach;
            }
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut shim_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        up = &mut up => {
            if let Up::Eof = up {
                down.await;
            }
        }
        () = &mut down => {}
    }
}
