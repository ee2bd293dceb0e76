//! `GET /containers/{id}/logs?follow=&stdout=&stderr=&tail=&timestamps=&since=&until=`:
//! the container's json-file log through the manager (`logs -f` follows
//! until it stops), framed as Docker's multiplexed stream ([`frame`]).
//!
//! [`frame`]: super::frame

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use husk_api::containers::{LogEntry, LogOptions, Stream};

use super::containers::{IdPath, QueryMap};
use super::error::DockerError;
use super::frame::{CONTENT_TYPE, frame};
use super::query::Params;
use super::time::log_bound;
use super::{Docker, ids};

/// Which entries pass, and how each is written.
struct Shaping {
    timestamps: bool,
    since: Option<String>,
    until: Option<String>,
}

impl Shaping {
    /// The entry framed (with its time in front with `timestamps`, as
    /// `docker logs -t` shows it), or None when it is out of bounds.
    fn frame(&self, entry: &LogEntry) -> Option<Vec<u8>> {
        // Both are fixed-width RFC 3339 in UTC: they compare as text.
        if self.since.as_ref().is_some_and(|since| entry.time < *since)
            || self.until.as_ref().is_some_and(|until| entry.time > *until)
        {
            return None;
        }
        let text = if self.timestamps {
            format!("{} {}", entry.time, entry.log)
        } else {
            entry.log.clone()
        };
        Some(frame(entry.stream, text.as_bytes()))
    }
}

pub fn route() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, query: QueryMap| async move {
            let params = Params::from(query)?;
            logs(&docker, &path.id, &params)
        },
    )
}

fn logs(docker: &Docker, id: &str, params: &Params) -> Result<Response, DockerError> {
    let stream = match (params.bool("stdout"), params.bool("stderr")) {
        (true, true) => None,
        (true, false) => Some(Stream::Stdout),
        (false, true) => Some(Stream::Stderr),
        (false, false) => {
            return Err(DockerError::bad_request(
                "Bad parameters: you must choose at least one stream",
            ));
        }
    };
    // `all` (the CLI's default) or a negative count: everything.
    let tail = match params.str("tail") {
        None | Some("all") => None,
        Some(n) => match n.parse::<i64>() {
            Ok(n) => usize::try_from(n).ok(),
            Err(_) => return Err(DockerError::bad_request(format!("invalid tail {n:?}"))),
        },
    };
    let bound = |key| {
        params
            .str(key)
            .map(log_bound)
            .transpose()
            .map(Option::flatten)
            .map_err(DockerError::bad_request)
    };
    let shaping = Shaping {
        timestamps: params.bool("timestamps"),
        since: bound("since")?,
        until: bound("until")?,
    };
    let name = ids::name_of(&docker.manager, id)?;
    let mut lines = docker.manager.logs(
        &name,
        LogOptions {
            follow: params.bool("follow"),
            tail,
            stream,
        },
    )?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            let Ok(entry) = serde_json::from_slice::<LogEntry>(&line) else {
                continue;
            };
            if let Some(framed) = shaping.frame(&entry)
                && tx.send(framed).await.is_err()
            {
                return;
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        Body::from_stream(body),
    )
        .into_response())
}
