//! `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive?path=`.
//! `HEAD` answers what the path is in `X-Docker-Container-Path-Stat`
//! (base64 of Docker's JSON `PathStat`), which the CLI reads to decide
//! where things go; `GET` adds the tar of the path; `PUT` extracts a tar
//! (plain, gzip or zstd) into the directory `path`. The work is the
//! container manager's (`crate::containers::archive`: paths resolved
//! inside the container's root, kernel interfaces left alone, ids as its
//! user namespace sees them; a stopped container through its layers);
//! this file is the HTTP around it.

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use base64::Engine;

use super::containers::{IdPath, QueryMap};
use super::error::DockerError;
use super::query::Params;
use super::{Docker, ids, streaming};
use crate::containers::archive::{ContainerRoot, PathStat};

const STAT_HEADER: &str = "x-docker-container-path-stat";

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
    let root = docker.manager.root_for_copy(&name, &path, false).await?;
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
    let body = streaming::from_blocking(format!("archive of {path}"), move |out| {
        root.pack(&path, out)
    });
    let mut response = (headers, body).into_response();
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
    let root = docker.manager.root_for_copy(&name, &path, true).await?;
    let (reader, feed) = streaming::ChannelReader::of(body);
    let extracted = blocking(move || root.unpack(&path, reader, keep_ids)).await;
    feed.abort();
    extracted.map(|()| StatusCode::OK)
}
