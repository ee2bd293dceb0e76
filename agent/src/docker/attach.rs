//! `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1`: the
//! container's output from now until it exits, multiplexed ([`frame`]).
//! The CLI asks to take the connection over (`Upgrade: tcp`): the answer
//! is then `101 UPGRADED` and the stream goes on the raw connection;
//! without that header, a `200` streamed body. Output is followed from
//! the moment of the request, before the answer, so `docker run` (which
//! attaches, then starts) sees all of it.
//!
//! A container with a terminal or an open stdin (`docker run -t`, `-i`)
//! is attached through its shim, as Husk's own attach is: the shim's
//! stream is already Docker's (raw for a tty, multiplexed otherwise) and
//! what the client writes is the container's stdin, its EOF the stdin's
//! end, the detach keys (`detachKeys`, default ctrl-p ctrl-q) the end of
//! the attach. Other containers' output is followed from their log, which
//! also serves a container that is not running yet or any more (`docker
//! start -a`); what such a client writes is dropped. `logs=1` (what was
//! written before) is not supported: `docker logs` has it.
//!
//! [`frame`]: super::frame

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use husk_api::containers::{LogEntry, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::containers::{IdPath, QueryMap};
use super::error::DockerError;
use super::frame::{CONTENT_TYPE, frame};
use super::query::Params;
use super::{Docker, ids};
use crate::api::attach::{take_over, take_over_to_shim};
use husk_api::client::{DEFAULT_DETACH_KEYS, parse_detach_keys};

pub fn route() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>,
         UrlPath(path): UrlPath<IdPath>,
         query: QueryMap,
         request: Request| async move { attach(&docker, &path.id, query, request).await },
    )
}

/// `POST /containers/{id}/resize?h=&w=`: the terminal's size (the CLI
/// sends it once attached, and at every SIGWINCH).
pub fn resize_route() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, query: QueryMap| async move {
            let (rows, cols) = terminal_size(query)?;
            let name = ids::name_of(&docker.manager, &path.id)?;
            docker.manager.resize(&name, rows, cols).await?;
            Ok::<_, DockerError>(StatusCode::OK)
        },
    )
}

/// A resize's `?h=&w=` (a container's or an exec's): rows and columns.
pub(super) fn terminal_size(query: QueryMap) -> Result<(u16, u16), DockerError> {
    let params = Params::from(query)?;
    let size = |key: &str| -> Result<u16, DockerError> {
        let value = params.int(key)?.unwrap_or(0);
        u16::try_from(value)
            .map_err(|_| DockerError::bad_request(format!("{key}={value} is not a terminal size")))
    };
    Ok((size("h")?, size("w")?))
}

/// Whether the client asked to take the connection over.
fn wants_upgrade(request: &Request) -> bool {
    let has = |name, value: &str| {
        request.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(value)))
        })
    };
    has(header::CONNECTION, "upgrade") && request.headers().contains_key(header::UPGRADE)
}

async fn attach(
    docker: &Docker,
    id: &str,
    query: QueryMap,
    mut request: Request,
) -> Result<Response, DockerError> {
    let params = Params::from(query)?;
    if params.bool("logs") {
        return Err(DockerError::not_implemented(
            "Husk does not implement attach's logs=1 yet: docker logs shows what was written",
        ));
    }
    let (stdout, stderr) = (params.bool("stdout"), params.bool("stderr"));
    let name = ids::name_of(&docker.manager, id)?;
    let options = docker.manager.inspect(&name)?.options;
    if (options.tty || options.interactive) && wants_upgrade(&request) {
        let keys = params.str("detachKeys").unwrap_or(DEFAULT_DETACH_KEYS);
        let keys = parse_detach_keys(keys).map_err(DockerError::bad_request)?;
        return through_the_shim(docker, name, options.tty, keys, request).await;
    }
    // Followed from now: before the answer, so nothing after it is lost.
    let entries = if params.bool("stream") {
        Some(docker.manager.follow_output(&name)?)
    } else {
        None
    };
    let keep = move |entry: &LogEntry| match entry.stream {
        Stream::Stdout => stdout,
        Stream::Stderr => stderr,
    };
    if !wants_upgrade(&request) {
        let frames = futures_util::stream::unfold(entries, move |entries| async move {
            let mut entries = entries?;
            loop {
                let entry = entries.recv().await?;
                if keep(&entry) {
                    let chunk = frame(entry.stream, entry.log.as_bytes());
                    return Some((Ok::<_, std::convert::Infallible>(chunk), Some(entries)));
                }
            }
        });
        return Ok((
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            Body::from_stream(frames),
        )
            .into_response());
    }
    let upgrade = hyper::upgrade::on(&mut request);
    let what = format!("Docker API: attach to {name}");
    Ok(take_over(
        upgrade,
        CONTENT_TYPE,
        what,
        move |upgraded, _| async move {
            let (mut reader, mut writer) = tokio::io::split(upgraded);
            // Stdin is dropped as it comes, so the client never blocks on it.
            let drain = tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            if let Some(entries) = entries {
                pump(entries, &keep, &mut writer).await;
            }
            // The end of the stream is the end of the connection: the CLI
            // reads until EOF.
            let _ = writer.shutdown().await;
            drain.abort();
        },
    ))
}

/// The shim's attach stream spliced with the taken-over connection.
async fn through_the_shim(
    docker: &Docker,
    name: String,
    tty: bool,
    keys: Vec<u8>,
    mut request: Request,
) -> Result<Response, DockerError> {
    let attaching = docker.manager.attach(&name).await?;
    let upgrade = hyper::upgrade::on(&mut request);
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        CONTENT_TYPE
    };
    let what = format!("Docker API: attach to {name}");
    Ok(take_over_to_shim(
        upgrade,
        content_type,
        what,
        attaching,
        keys,
    ))
}

/// Writes the entries framed until they end or the client goes.
async fn pump(
    mut entries: mpsc::Receiver<LogEntry>,
    keep: &impl Fn(&LogEntry) -> bool,
    writer: &mut (impl AsyncWriteExt + Unpin),
) {
    while let Some(entry) = entries.recv().await {
        if !keep(&entry) {
            continue;
        }
        let chunk = frame(entry.stream, entry.log.as_bytes());
        if writer.write_all(&chunk).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
}
