//! `/images`: the store as Docker shows it (`docker images`, `image
//! inspect`, `rmi`) and pulls through the agent's [`Puller`] (so the
//! admission policy applies), streamed as dockerd's JSON progress
//! messages; `tag`. Push, history, search and import are 501; save, load
//! and prune have files of their own.
//!
//! [`Puller`]: crate::pulls::Puller

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use husk_api::images::PullEvent;
use husk_store::{ImageId, Removed, Store};
use serde_json::{Value, json};

use super::Docker;
use super::error::DockerError;
use super::query::Params;
use super::time::unix_seconds;

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Runs `f` with the store on a blocking thread; 503 without a store.
async fn with_store<T: Send + 'static>(
    docker: &Docker,
    f: impl FnOnce(&mut Store) -> Result<T, DockerError> + Send + 'static,
) -> Result<T, DockerError> {
    crate::api::with_store_as(&docker.images, f).await
}

/// `busybox:1.36` → ("busybox", "1.36"); a name by digest has no tag.
fn split_name(name: &str) -> (&str, Option<&str>) {
    if let Some((repo, _)) = name.split_once('@') {
        return (repo, None);
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (name, None),
    }
}

/// Docker's `RepoTags` and `RepoDigests` of an image's names.
fn repo_names(image: &husk_store::ImageSummary) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for name in &image.names {
        let (repo, tag) = split_name(name);
        match tag {
            Some(_) => tags.push(name.clone()),
            None if name.contains('@') => digests.push(name.clone()),
            None => {}
        }
        let by_digest = format!("{repo}@{}", image.manifest);
        if !digests.contains(&by_digest) {
            digests.push(by_digest);
        }
    }
    (tags, digests)
}

fn created(image: &husk_store::ImageSummary) -> i64 {
    image.created.as_deref().and_then(unix_seconds).unwrap_or(0)
}

/// `GET /images/json`: one entry per image (Docker's `ImageSummary`).
pub fn list() -> MethodRouter<Docker> {
    get(|State(docker): State<Docker>| async move {
        let images = with_store(&docker, |store| Ok(store.list())).await?;
        let list: Vec<Value> = images
            .iter()
            .map(|image| {
                let (mut tags, digests) = repo_names(image);
                if tags.is_empty() {
                    tags.push("<none>:<none>".into());
                }
                json!({
                    "Id": image.id.to_string(),
                    "ParentId": "",
                    "RepoTags": tags,
                    "RepoDigests": digests,
                    "Created": created(image),
                    "Size": image.size,
                    "SharedSize": -1,
                    "VirtualSize": image.size,
                    "Labels": {},
                    "Containers": -1,
                })
            })
            .collect();
        Ok::<_, DockerError>(Json(list))
    })
}

/// `/images/{name}/json|tag|push|history|get` and `DELETE /images/{name}`:
/// names have slashes, so the action is read off the path's end.
pub fn by_name() -> MethodRouter<Docker> {
    any(
        |method: Method,
         State(docker): State<Docker>,
         UrlPath(params): UrlPath<HashMap<String, String>>,
         query: QueryMap| async move {
            let rest = params.get("rest").cloned().unwrap_or_default();
            let params = Params::from(query)?;
            let action = rest
                .rsplit_once('/')
                .map(|(name, action)| (name.to_owned(), action));
            match (&method, action) {
                (&Method::GET, Some((name, "json"))) => inspect(&docker, name).await,
                (&Method::POST, Some((name, "tag"))) => tag(&docker, name, &params).await,
                (&Method::GET, Some((name, "get"))) => {
                    super::image_save::save(&docker, vec![name]).await
                }
                (&Method::DELETE, _) => remove(&docker, rest, &params).await,
                _ => Err(super::unsupported::refusal(
                    &method,
                    &format!("/images/{rest}"),
                )),
            }
        },
    )
}

/// `POST /images/{name}/tag?repo=&tag=` (`docker tag`): 201, as
/// dockerd; the name checked as Husk's `image tag` checks it.
async fn tag(docker: &Docker, name: String, params: &Params) -> Result<Response, DockerError> {
    let Some(repo) = params.str("repo") else {
        return Err(DockerError::bad_request("repo is required"));
    };
    let target = match params.str("tag") {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.to_owned(),
    };
    crate::api::images::tag_image(
        &docker.images,
        &docker.manager,
        &docker.puller,
        name,
        &target,
    )
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `GET /images/{name}/json`: Docker's `ImageInspect`, from the image's
/// OCI config (whose `config` has Docker's field names already).
async fn inspect(docker: &Docker, name: String) -> Result<Response, DockerError> {
    let (image, config) = with_store(docker, move |store| {
        let found = store.get(&name).map_err(|e| DockerError::from_store(&e))?;
        let config = store
            .image_config(&found.id)
            .map_err(|e| DockerError::from_store(&e))?;
        let config = serde_json::to_value(config)
            .map_err(|e| DockerError::internal(format!("image config: {e}")))?;
        Ok((found, config))
    })
    .await?;
    let (tags, digests) = repo_names(&image);
    let layers = config
        .pointer("/rootfs/diff_ids")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    Ok(Json(json!({
        "Id": image.id.to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": "",
        "Created": image.created.clone().unwrap_or_else(|| super::time::ZERO_TIME.into()),
        "Container": "",
        "DockerVersion": "",
        "Author": config.get("author").cloned().unwrap_or(Value::String(String::new())),
        "Config": config.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": image.architecture,
        "Os": image.os,
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {"Name": "overlay2", "Data": null},
        "RootFS": {"Type": "layers", "Layers": layers},
        "Metadata": {"LastTagTime": super::time::ZERO_TIME},
    }))
    .into_response())
}

/// `DELETE /images/{name}`: as Husk's image API removes (a name, or the
/// image with its last name), refused while a container uses it; in
/// Docker's answer, every name untagged and the image deleted.
async fn remove(docker: &Docker, name: String, params: &Params) -> Result<Response, DockerError> {
    if params.bool("force") {
        log::info!("Docker API: rmi --force of {name}: Husk never removes an image in use");
    }
    let containers = docker.manager.clone();
    let (image, removed) = with_store(docker, move |store| {
        let to_docker = |e| DockerError::from_store(&e);
        let image = store.get(&name).map_err(to_docker)?;
        // Under the store's lock, as Husk's API: no container can be
        // created on the image between the check and the removal.
        let used = containers.images_in_use();
        let in_use = |id: &ImageId| used.contains(id);
        let removed = store.remove(&name, in_use).map_err(to_docker)?;
        Ok((image, removed))
    })
    .await?;
    crate::api::images::tell_removal(docker.manager.events(), &image, &removed);
    let answer: Vec<Value> = match &removed {
        Removed::Untagged(name) => vec![json!({"Untagged": name})],
        Removed::Deleted(id) => image
            .names
            .iter()
            .map(|n| json!({"Untagged": n}))
            .chain([json!({"Deleted": id.to_string()})])
            .collect(),
    };
    Ok(Json(answer).into_response())
}

/// `POST /images/create?fromImage=&tag=&platform=`: a pull, streamed as
/// dockerd's progress messages. `fromSrc` (import from a URL or the
/// body) is 501. Registry credentials: the client's `X-Registry-Auth`
/// for this pull, else agent.toml's.
pub fn create() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, headers: HeaderMap, query: QueryMap| async move {
            let params = Params::from(query)?;
            if params.str("fromSrc").is_some() {
                return Err(DockerError::not_implemented(
                    "Husk does not implement image import from a URL or an upload (docker import); \
                 pull the image from a registry",
                ));
            }
            let Some(image) = params.str("fromImage") else {
                return Err(DockerError::bad_request("fromImage is required"));
            };
            let reference = match params.str("tag") {
                Some(tag) if tag.starts_with("sha256:") => format!("{image}@{tag}"),
                Some(tag) if !image.contains('@') => format!("{image}:{tag}"),
                _ => image.to_owned(),
            };
            let shown = shown_name(&reference);
            // "Up to date" is dockerd's word for a name that already named
            // the image pulled, whatever layers were there.
            let before = {
                let shown = shown.clone();
                with_store(&docker, move |store| {
                    Ok(store.get(&shown).ok().map(|i| i.id))
                })
                .await
                .unwrap_or(None)
            };
            let auth = super::registry_auth::from_headers(&headers);
            let mut following = docker
                .puller
                .start_with(&reference, params.str("platform"), auth)
                .map_err(DockerError::bad_request)?;
            let (lines, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
            tokio::spawn(async move {
                while let Some(event) = following.next().await {
                    for message in progress(&shown, &event, before) {
                        let mut line = message.to_string().into_bytes();
                        line.extend_from_slice(b"\r\n");
                        if lines.send(line).await.is_err() {
                            // The client went; the pull goes on for the others.
                            return;
                        }
                    }
                }
            });
            Ok(stream_response("application/json", rx))
        },
    )
}

/// A body of the lines as they come.
pub fn stream_response(
    content_type: &'static str,
    lines: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> Response {
    let stream = futures_util::stream::unfold(lines, |mut lines| async move {
        lines
            .recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), lines))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A layer as dockerd names it in progress: the first 12 hex digits.
fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// dockerd's progress bar text (`[=====>      ]  1.2MB/3.4MB`).
fn bar(done: u64, size: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (done.min(size) * WIDTH).checked_div(size).unwrap_or(0);
    let mut text = String::from("[");
    for i in 0..WIDTH {
        text.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    let mb = |b: u64| format!("{:.1}MB", b as f64 / 1e6);
    format!("{text}]  {}/{}", mb(done), mb(size))
}

/// One Husk pull event as dockerd's JSON messages.
/// A reference as dockerd shows it in a pull's status.
fn shown_name(reference: &str) -> String {
    husk_registry::Reference::parse(reference).map_or_else(|_| reference.to_owned(), |r| r.shown())
}

/// `before`: the image the name named before the pull, if any.
fn progress(reference: &str, event: &PullEvent, before: Option<ImageId>) -> Vec<Value> {
    let layer = |status: &str, digest: &str| json!({"status": status, "progressDetail": {}, "id": short(digest)});
    match event {
        PullEvent::Resolved { .. } => {
            let (repo, tag) = split_name(reference);
            vec![json!({"status": format!("Pulling from {repo}"), "id": tag.unwrap_or("latest")})]
        }
        PullEvent::Verified { rule, detail } => {
            vec![json!({"status": format!("Verified by the admission policy ({rule}): {detail}")})]
        }
        PullEvent::LayerExists { digest, .. } => vec![layer("Already exists", digest)],
        PullEvent::LayerProgress { digest, done, size } => vec![json!({
            "status": "Downloading",
            "progressDetail": {"current": done, "total": size},
            "progress": bar(*done, *size),
            "id": short(digest),
        })],
        PullEvent::LayerRetry {
            digest,
            attempt,
            reason,
        } => vec![layer(
            &format!("Retrying (attempt {attempt}): {reason}"),
            digest,
        )],
        PullEvent::LayerDone { digest, .. } => vec![layer("Pull complete", digest)],
        PullEvent::Done {
            digest,
            image,
            layers_fetched,
        } => {
            let current = *layers_fetched == 0 && before.is_some_and(|b| b.to_string() == image.id);
            let status = if current {
                format!("Status: Image is up to date for {reference}")
            } else {
                format!("Status: Downloaded newer image for {reference}")
            };
            vec![
                json!({"status": format!("Digest: {digest}")}),
                json!({"status": status}),
            ]
        }
        PullEvent::Error { message } => {
            vec![json!({"errorDetail": {"message": message}, "error": message})]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_progress() {
        assert_eq!(split_name("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(
            split_name("localhost:5000/app"),
            ("localhost:5000/app", None)
        );
        assert_eq!(split_name("app@sha256:ab"), ("app", None));
        assert!(bar(5, 10).starts_with("[=========================>"));
        let error = progress(
            "x",
            &PullEvent::Error {
                message: "refused".into(),
            },
            None,
        );
        assert_eq!(shown_name("busybox"), "busybox:latest");
        assert_eq!(shown_name("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(
            shown_name(
                "127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ),
            "127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(error[0]["errorDetail"]["message"], "refused");
        assert_eq!(error[0]["error"], "refused");
    }
}
