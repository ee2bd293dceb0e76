//! `/volumes`: Husk's named volumes as Docker shows them (`docker volume
//! create|ls|inspect|rm|prune`, and what docker-compose makes for a
//! project's `volumes:`). Only the `local` driver exists; driver options
//! are refused rather than ignored.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use husk_api::volumes::{Volume, VolumeCreate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Docker;
use super::error::DockerError;
use crate::containers::ManagerError;

/// Volume work touches the disk (a removal may take a while).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ManagerError> + Send + 'static,
) -> Result<T, DockerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DockerError::internal(format!("volume task failed: {e}")))?
        .map_err(DockerError::from)
}

/// Docker's volume object.
fn volume_json(v: &Volume) -> Value {
    json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": v.mountpoint,
        "CreatedAt": v.created,
        "Labels": v.labels,
        "Scope": "local",
        "Options": {},
    })
}

pub fn list() -> MethodRouter<Docker> {
    get(|State(docker): State<Docker>| async move {
        let manager = docker.manager.clone();
        let list = blocking(move || manager.list_volumes()).await?;
        let volumes: Vec<Value> = list.volumes.iter().map(volume_json).collect();
        Ok::<_, DockerError>(Json(json!({"Volumes": volumes, "Warnings": list.damaged})))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

pub fn create() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, body: Result<Json<CreateBody>, JsonRejection>| async move {
            let Json(body) = body.map_err(|e| DockerError::bad_request(e.body_text()))?;
            if !body.driver.is_empty() && body.driver != "local" {
                return Err(DockerError::bad_request(format!(
                    "volume driver {:?} is not supported: Husk's volumes are local",
                    body.driver
                )));
            }
            if body.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(DockerError::bad_request(
                    "volume driver options are not supported (Husk's volumes are directories of the data partition)",
                ));
            }
            let request = VolumeCreate {
                name: body.name,
                labels: body.labels.unwrap_or_default(),
            };
            let manager = docker.manager.clone();
            let volume = blocking(move || manager.create_volume(&request)).await?;
            Ok((StatusCode::CREATED, Json(volume_json(&volume))))
        },
    )
}

/// `{name}` of a path (the version, when there is one, is ignored).
#[derive(Deserialize)]
struct NamePath {
    name: String,
}

#[derive(Deserialize)]
struct RemoveQuery {
    /// Docker's `force` removes a volume in use by no container anyway
    /// and ignores a missing one; Husk keeps the second meaning only.
    #[serde(default)]
    force: Option<String>,
}

pub fn by_name() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>, UrlPath(NamePath { name }): UrlPath<NamePath>| async move {
            let manager = docker.manager.clone();
            let volume = blocking(move || manager.inspect_volume(&name)).await?;
            Ok::<_, DockerError>(Json(volume_json(&volume)))
        },
    )
    .delete(
        |State(docker): State<Docker>,
         UrlPath(NamePath { name }): UrlPath<NamePath>,
         query: Result<Query<RemoveQuery>, QueryRejection>| async move {
            let Query(query) = query.map_err(|e| DockerError::bad_request(e.body_text()))?;
            let force = matches!(query.force.as_deref(), Some("1" | "true"));
            let manager = docker.manager.clone();
            match blocking(move || manager.remove_volume(&name)).await {
                Err(e) if force && e.status == StatusCode::NOT_FOUND => {}
                other => other?,
            }
            Ok::<_, DockerError>(StatusCode::NO_CONTENT)
        },
    )
}

pub fn prune() -> MethodRouter<Docker> {
    post(|State(docker): State<Docker>| async move {
        let manager = docker.manager.clone();
        let pruned = blocking(move || manager.prune_volumes()).await?;
        Ok::<_, DockerError>(Json(
            json!({"VolumesDeleted": pruned.removed, "SpaceReclaimed": 0}),
        ))
    })
}
