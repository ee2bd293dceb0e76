//! `/networks`: Husk's networks as Docker shows them (`docker network
//! create|ls|inspect|rm|connect|disconnect|prune`, and what
//! docker-compose makes for a project's `networks:`), over the container
//! manager's networks, so Husk's checks (names, subnets that overlap
//! another network or the machine's own, in use) apply as to huskctl.
//!
//! [`view`] is how a network looks (ids, `NetworkResource`, the
//! built-in `host` and `none`), [`create`] reads a create body,
//! [`connect`] the endpoints, [`filters`] the list's and the prune's
//! filters.

mod connect;
mod create;
mod filters;
mod view;

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Docker;
use super::error::DockerError;
use super::prune::PruneFilters;
use super::query::Params;
use crate::containers::{ContainerInfo, ManagerError};

pub use self::view::{NetworkIds, container_networks, ids_by_name, network_id};

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

/// `{id}` of a path (the version, when there is one, is ignored).
#[derive(Deserialize)]
struct IdPath {
    id: String,
}

/// A request body that must be a JSON object.
fn object(body: &Bytes, what: &str) -> Result<Map<String, Value>, DockerError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(DockerError::bad_request(format!(
            "the {what} body is not a JSON object"
        ))),
        Err(e) => Err(DockerError::bad_request(format!(
            "invalid JSON in the {what} body: {e}"
        ))),
    }
}

/// Whether any container, running or not, is on the network.
fn in_use(network: &view::DockerNetwork, containers: &[ContainerInfo]) -> bool {
    containers.iter().any(|c| {
        view::places(c)
            .iter()
            .any(|(name, _, _)| name == network.name())
    })
}

/// The name of the network `reference` names (its name, id or a unique
/// id prefix), for a container's `--network`; None when none does.
pub async fn network_name(docker: &Docker, reference: &str) -> Option<String> {
    let networks = view::all(docker).await.ok()?;
    view::find(networks, reference)
        .ok()
        .map(|n| n.name().to_owned())
}

/// `GET /networks?filters=`.
pub fn list() -> MethodRouter<Docker> {
    get(|State(docker): State<Docker>, query: QueryMap| async move {
        let params = Params::from(query)?;
        let filters = filters::ListFilters::new(params.filters()?)?;
        let networks = view::all(&docker).await?;
        let containers = if filters.wants_containers() {
            docker.manager.list()
        } else {
            Vec::new()
        };
        let list: Vec<Value> = networks
            .iter()
            .filter(|n| filters.matches(n, in_use(n, &containers)))
            .map(|n| view::resource(n, None))
            .collect();
        Ok::<_, DockerError>(Json(list))
    })
}

/// `POST /networks/create`: 201 `{"Id": …, "Warning": ""}`.
pub fn create() -> MethodRouter<Docker> {
    post(|State(docker): State<Docker>, body: Bytes| async move {
        let request = create::request(object(&body, "network create")?)?;
        let network = docker.manager.create_network(&request).await?;
        let id = view::DockerNetwork::Husk(network).id();
        log::info!("Docker API: created network {} ({id})", request.name);
        Ok::<_, DockerError>((StatusCode::CREATED, Json(json!({"Id": id, "Warning": ""}))))
    })
}

/// `GET /networks/{id}?verbose=&scope=` and `DELETE /networks/{id}`.
pub fn by_id() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>,
         UrlPath(IdPath { id }): UrlPath<IdPath>,
         query: QueryMap| async move {
            let params = Params::from(query)?;
            // Swarm's scopes hold nothing here.
            if params.str("scope").is_some_and(|s| s != "local") {
                return Err(view::not_found(&id));
            }
            let network = view::resolve(&docker, &id).await?;
            let containers = docker.manager.list();
            Ok::<_, DockerError>(Json(view::resource(&network, Some(&containers))))
        },
    )
    .delete(
        |State(docker): State<Docker>, UrlPath(IdPath { id }): UrlPath<IdPath>| async move {
            let network = view::resolve(&docker, &id).await?;
            remove(&docker, &network).await?;
            Ok::<_, DockerError>(StatusCode::NO_CONTENT)
        },
    )
}

/// dockerd's refusals: 403 for a predefined network and for one in use
/// (Husk counts stopped containers too: they could not start again).
async fn remove(docker: &Docker, network: &view::DockerNetwork) -> Result<(), DockerError> {
    if network.builtin() {
        return Err(DockerError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a pre-defined network and cannot be removed",
                network.name()
            ),
        ));
    }
    match docker.manager.remove_network(network.name()).await {
        Ok(()) => {
            log::info!("Docker API: removed network {}", network.name());
            Ok(())
        }
        Err(ManagerError::Conflict(why)) => Err(DockerError::new(
            StatusCode::FORBIDDEN,
            format!(
                "error while removing network: network {} id {} has active endpoints ({why})",
                network.name(),
                network.id()
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /networks/{id}/connect`.
pub fn connect() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(IdPath { id }): UrlPath<IdPath>, body: Bytes| async move {
            let body = object(&body, "network connect")?;
            let network = view::resolve(&docker, &id).await?;
            connect::connect(&docker, &network, body).await?;
            Ok::<_, DockerError>(StatusCode::OK)
        },
    )
}

/// `POST /networks/{id}/disconnect`.
pub fn disconnect() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(IdPath { id }): UrlPath<IdPath>, body: Bytes| async move {
            let body = object(&body, "network disconnect")?;
            let network = view::resolve(&docker, &id).await?;
            connect::disconnect(&docker, &network, body).await?;
            Ok::<_, DockerError>(StatusCode::OK)
        },
    )
}

/// `POST /networks/prune?filters=`: every user network no container is
/// on (running or not), as far as the filters allow.
pub fn prune() -> MethodRouter<Docker> {
    post(|State(docker): State<Docker>, query: QueryMap| async move {
        let params = Params::from(query)?;
        let filters = PruneFilters::new(params.filters()?, &[])?;
        let containers = docker.manager.list();
        let mut deleted = Vec::new();
        for network in view::all(&docker).await? {
            let labels = match &network {
                view::DockerNetwork::Husk(n) => n.labels.clone(),
                _ => Default::default(),
            };
            let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(network.created());
            if network.builtin()
                || in_use(&network, &containers)
                || !filters.matches(&labels, created)
            {
                continue;
            }
            match docker.manager.remove_network(network.name()).await {
                Ok(()) => deleted.push(network.name().to_owned()),
                // A container came meanwhile: it stays, as dockerd's does.
                Err(ManagerError::Conflict(why)) => {
                    log::info!("Docker API: prune: {why}");
                }
                Err(e) => log::warn!("Docker API: prune: network {}: {e}", network.name()),
            }
        }
        if !deleted.is_empty() {
            log::info!("Docker API: pruned networks {}", deleted.join(", "));
        }
        Ok::<_, DockerError>(Json(json!({"NetworksDeleted": deleted})))
    })
}
