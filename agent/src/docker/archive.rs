//! `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive?path=`.
//! `HEAD` answers what the path is in `X-Docker-Container-Path-Stat`
//! (base64 of Docker's JSON `PathStat`), which the CLI reads to decide
//! where things go; `GET` adds the tar of the path; `PUT` extracts a tar
//! (plain, gzip or zstd) into the directory `path`. The work is the
//! container manager's (`crate::containers::archive`: paths resolved
//! inside the container's root, kernel interfaces left alone, ids as its
//! user namespace sees them); this file is the HTTP around it. Only a
//! running container can be copied into or out of.

use std::io::{self, Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use base64::Engine;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::containers::{IdPath, QueryMap};
use super::error::DockerError;
use super::query::Params;
use super::{Docker, ids};
use crate::containers::archive::{ContainerRoot, PathStat};

const STAT_HEADER: &str = "x-docker-container-path-stat";

/// How much of a tar is buffered between the walk and the connection.
const CHUNK: usize = 64 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

pub fn route() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>, UrlPath(p): UrlPath<IdPath>, query: QueryMap| async move {
            read(&docker, &p.id, query).await
        },
    )
    .head(
        |State(docker): State<Docker>, UrlPath(p): UrlPath<IdPath>, query: QueryMap| async move {
            let (_, stat) = open(&docker, &p.id, query, false).await?;
            Ok::<_, DockerError>((stat_header(&stat)?, StatusCode::OK).into_response())
        },
    )
    .put(
        |State(docker): State<Docker>,
         UrlPath(p): UrlPath<IdPath>,
         query: QueryMap,
         body: Body| async move { write(&docker, &p.id, query, body).await },
    )
}

/// The container's root and what `path` is there (`to_read`: once it is
/// known to be copyable out).
async fn open(
    docker: &Docker,
    id: &str,
    query: QueryMap,
    to_read: bool,
) -> Result<((ContainerRoot, String), PathStat), DockerError> {
    let params = Params::from(query)?;
    let path = params
        .str("path")
        .ok_or_else(|| DockerError::bad_request("archive: no path given"))?
        .to_owned();
    let name = ids::name_of(&docker.manager, id)?;
    let root = docker.manager.container_root(&name)?;
    let (root, path, stat) = blocking(move || {
        let stat = if to_read {
            root.readable(&path)?
        } else {
            root.stat(&path)?
        };
        Ok((root, path, stat))
    })
    .await?;
    Ok(((root, path), stat))
}

fn stat_header(stat: &PathStat) -> Result<HeaderMap, DockerError> {
    let json = serde_json::to_vec(stat).map_err(|e| DockerError::internal(e.to_string()))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    let mut headers = HeaderMap::new();
    headers.insert(
        STAT_HEADER,
        HeaderValue::from_str(&encoded).map_err(|e| DockerError::internal(e.to_string()))?,
    );
    Ok(headers)
}

/// Runs filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> crate::containers::error::Result<T> + Send + 'static,
) -> Result<T, DockerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DockerError::internal(format!("archive: {e}")))?
        .map_err(DockerError::from)
}

async fn read(docker: &Docker, id: &str, query: QueryMap) -> Result<Response, DockerError> {
    let ((root, path), stat) = open(docker, id, query, true).await?;
    let headers = stat_header(&stat)?;
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let out = io::BufWriter::with_capacity(CHUNK, ChannelWriter(tx));
        // The answer has begun: a failure now can only cut the stream
        // short, which the CLI reports as a broken archive.
        if let Err(e) = root.pack(&path, out) {
            log::info!("Docker API: archive of {path}: {e}");
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, io::Error>(chunk), rx))
    });
    let mut response = (headers, Body::from_stream(chunks)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(response)
}

async fn write(
    docker: &Docker,
    id: &str,
    query: QueryMap,
    body: Body,
) -> Result<StatusCode, DockerError> {
    let params = Params::from(query)?;
    let path = params
        .str("path")
        .ok_or_else(|| DockerError::bad_request("archive: no path given"))?
        .to_owned();
    let keep_ids = params.bool("copyUIDGID");
    let name = ids::name_of(&docker.manager, id)?;
    let root = docker.manager.container_root(&name)?;
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let feed = tokio::spawn(async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let item = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue,
                },
                Err(e) => Err(io::Error::other(e)),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
    };
    let extracted = blocking(move || root.unpack(&path, reader, keep_ids)).await;
    feed.abort();
    extracted.map(|()| StatusCode::OK)
}

/// The tar's bytes, from the blocking walk to the response body.
struct ChannelWriter(mpsc::Sender<Bytes>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The request's body, from the connection to the blocking extraction.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(data)) => self.current = data,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
