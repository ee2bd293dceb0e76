//! `POST /images/load` (`docker load`): the archive the client
//! sends (a `docker save` archive or an OCI layout, plain or compressed)
//! into the image store, all or nothing, as Husk's `image import`. The
//! upload goes to an unnamed file on the data partition (`O_TMPFILE`):
//! whatever happens to the agent or the client, nothing is left behind.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use http_body_util::BodyExt;
use serde_json::json;

use super::Docker;
use super::containers::QueryMap;
use super::error::DockerError;
use super::query::Params;

/// The most an upload may be: the store's largest layer (64 GiB) is the
/// largest image worth loading; a full partition stops it earlier, with
/// its own error.
const MAX_UPLOAD_BYTES: u64 = 64 << 30;

/// A client that sends nothing for this long has gone.
const IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// One load at a time: each holds a blocking thread while it uploads and
/// the store's lock while it imports.
static LOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

pub fn route() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, query: QueryMap, body: Body| async move {
            load(docker, query, body).await
        },
    )
}

async fn load(docker: Docker, query: QueryMap, body: Body) -> Result<Response, DockerError> {
    // `quiet` hides dockerd's progress bars, which this has none of: the
    // "Loaded image" lines are there either way, as dockerd's.
    Params::from(query)?;
    docker
        .puller
        .admits_local_images("docker load")
        .map_err(|e| DockerError::new(axum::http::StatusCode::FORBIDDEN, e))?;
    // A load that waits longer than an idle upload may last is told why,
    // not kept waiting behind it.
    let _turn = tokio::time::timeout(IDLE, LOADS.acquire())
        .await
        .map_err(|_| {
            DockerError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "docker load: another load is still running; try again when it is done",
            )
        })?
        .map_err(|e| DockerError::internal(format!("docker load: {e}")))?;
    let dir = docker.root.join("uploads");
    let upload = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(&dir)
    })
    .await
    .map_err(|e| DockerError::internal(format!("docker load: {e}")))?
    .map_err(|e| DockerError::internal(format!("docker load: making the upload file: {e}")))?;
    let upload = receive(upload, body).await?;
    // The store opens the archive by name: the unnamed file's name is
    // its descriptor's.
    let path = PathBuf::from(format!("/proc/self/fd/{}", upload.as_raw_fd()));
    let shown = path.display().to_string();
    let loaded = crate::api::with_store_as(&docker.images, move |store| {
        let loaded = store.import(&path).map_err(|e| {
            DockerError::bad_request(format!(
                "docker load: {}",
                e.to_string().replace(&shown, "the archive")
            ))
        });
        drop(upload);
        loaded
    })
    .await?;
    let events = docker.manager.events();
    let mut lines = String::new();
    for image in &loaded {
        log::info!(
            "Docker API: loaded image {} ({})",
            image.id,
            image.names.join(", ")
        );
        let id = image.id.to_string();
        if image.names.is_empty() {
            lines.push_str(&json!({"stream": format!("Loaded image ID: {id}\n")}).to_string());
            lines.push('\n');
            events.image(&id, &id, "load");
        }
        for name in &image.names {
            lines.push_str(&json!({"stream": format!("Loaded image: {name}\n")}).to_string());
            lines.push('\n');
            events.image(&id, name, "load");
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], lines).into_response())
}

/// Writes the request's body into `file`, up to [`MAX_UPLOAD_BYTES`].
async fn receive(file: std::fs::File, mut body: Body) -> Result<std::fs::File, DockerError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::new(file);
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
        }
        out.into_inner().map_err(|e| e.into_error())
    });
    let mut received: u64 = 0;
    let mut failure = None;
    loop {
        let frame = match tokio::time::timeout(IDLE, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Err(_) => {
                failure = Some(DockerError::bad_request(format!(
                    "docker load: nothing came for {} s: the upload is given up",
                    IDLE.as_secs()
                )));
                break;
            }
            Ok(Some(Err(e))) => {
                failure = Some(DockerError::bad_request(format!(
                    "docker load: reading the archive: {e}"
                )));
                break;
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > MAX_UPLOAD_BYTES {
            failure = Some(DockerError::bad_request(format!(
                "docker load: the archive is over {} GiB",
                MAX_UPLOAD_BYTES >> 30
            )));
            break;
        }
        if tx.send(data).await.is_err() {
            break; // the writer failed: its error says why
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| DockerError::internal(format!("docker load: {e}")))?
        .map_err(|e| DockerError::internal(format!("docker load: writing the upload: {e}")));
    match failure {
        Some(e) => Err(e),
        None => written,
    }
}
