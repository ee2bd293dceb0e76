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
//!
//! The taking over ([`take_over`]) and the splice ([`splice`]) serve
//! the exec's session too, and the Docker API's attach and exec.

use std::future::Future;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path as UrlPath, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use super::error::ApiError;
use crate::containers::{Attaching, Manager};
use husk_api::client::{DEFAULT_DETACH_KEYS, DetachScanner, parse_detach_keys};

pub fn routes() -> Router<Manager> {
    Router::new()
        .route("/v1/containers/{name}/attach", post(attach))
        .route("/v1/containers/{name}/resize", post(resize))
}

/// An attach's (or an upgraded exec's) query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DetachQuery {
    /// Docker's `--detach-keys` form: `ctrl-p,ctrl-q`; empty: none.
    pub(super) detach_keys: Option<String>,
}

impl DetachQuery {
    /// The keys that end the session (by default ctrl-p ctrl-q).
    pub(super) fn keys(&self) -> Result<Vec<u8>, ApiError> {
        parse_detach_keys(self.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))
            .map_err(ApiError::bad_request)
    }
}

/// A session's container (`{name}`) and query: an attach's, an exec's.
pub(super) struct Session {
    pub(super) name: String,
    pub(super) query: DetachQuery,
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let UrlPath(name) = UrlPath::<String>::from_request_parts(parts, state).await?;
        let Query(query) = Query::<DetachQuery>::from_request_parts(parts, state).await?;
        Ok(Self { name, query })
    }
}

/// A pty's new size.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResizeQuery {
    pub(super) rows: u16,
    pub(super) cols: u16,
}

impl ResizeQuery {
    /// The answer to a resize: the size set.
    pub(super) fn answer(&self) -> Json<serde_json::Value> {
        Json(serde_json::json!({"rows": self.rows, "cols": self.cols}))
    }
}

/// The answer to a request that takes the connection over: `101
/// Switching Protocols` (`Upgrade: tcp`, as Docker's) with the stream's
/// `content_type`, and `serve` on the connection once hyper hands it
/// over (`what`, passed on to it, names the session in the log when
/// that fails).
pub(crate) fn take_over<F, Fut>(
    upgrade: OnUpgrade,
    content_type: &'static str,
    what: String,
    serve: F,
) -> Response
where
    F: FnOnce(TokioIo<Upgraded>, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded), what).await,
            Err(e) => log::debug!("{what}: the upgrade failed: {e}"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// [`take_over`] for an attach through the container's shim: the
/// connection spliced with the shim's attach socket once both are there.
pub(crate) fn take_over_to_shim(
    upgrade: OnUpgrade,
    content_type: &'static str,
    what: String,
    attaching: Attaching,
    keys: Vec<u8>,
) -> Response {
    take_over(
        upgrade,
        content_type,
        what,
        move |upgraded, what| async move {
            match attaching.connect().await {
                Ok(shim) => splice(upgraded, shim, keys).await,
                Err(e) => log::info!("{what}: {e}"),
            }
        },
    )
}

/// Husk's stream: raw for a tty, Docker's stdcopy frames otherwise.
pub(super) fn stream_content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

type Name = Result<UrlPath<String>, PathRejection>;

async fn attach(
    State(manager): State<Manager>,
    Session { name, query }: Session,
    mut request: Request,
) -> Result<Response, ApiError> {
    let keys = query.keys()?;
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
    let what = format!("{name}: attach");
    Ok(take_over_to_shim(
        upgrade,
        stream_content_type(tty),
        what,
        attaching,
        keys,
    ))
}

async fn resize(
    State(manager): State<Manager>,
    name: Name,
    query: Result<Query<ResizeQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let UrlPath(name) = name?;
    let Query(query) = query?;
    manager.resize(&name, query.rows, query.cols).await?;
    Ok(query.answer())
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
