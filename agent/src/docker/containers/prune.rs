//! `POST /containers/prune?filters=` (`docker container prune`, `docker
//! system prune`): every container that is not running (nor about to be
//! restarted by its policy), as far as the `label`, `label!` and `until`
//! filters allow; its anonymous volumes stay, as dockerd's do.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::routing::{MethodRouter, post};
use serde_json::json;

use super::super::Docker;
use super::super::error::DockerError;
use super::super::ids;
use super::super::prune::PruneFilters;
use super::super::query::Params;
use super::QueryMap;
use crate::containers::{ContainerInfo, ManagerError, Status};

pub fn route() -> MethodRouter<Docker> {
    post(|State(docker): State<Docker>, query: QueryMap| async move {
        let params = Params::from(query)?;
        let filters = PruneFilters::new(params.filters()?, &[])?;
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        let wanted = |info: &ContainerInfo| {
            let created = UNIX_EPOCH + Duration::from_millis(info.created_ms);
            matches!(info.status, Status::Created | Status::Exited)
                && filters.matches(&info.options.labels, created)
        };
        for info in docker.manager.list().into_iter().filter(|i| wanted(i)) {
            // Checked again under the container's lock: one started, or
            // made anew under the name, meanwhile stays.
            match docker
                .manager
                .remove_if_stopped(&info.name, info.created_ms, wanted)
                .await
            {
                Ok(Some(size)) => {
                    deleted.push(ids::id_of(&info));
                    reclaimed += size;
                }
                Ok(None) | Err(ManagerError::NotFound(_)) => {}
                Err(e) => log::warn!("Docker API: prune: container {}: {e}", info.name),
            }
        }
        Ok::<_, DockerError>(Json(
            json!({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}),
        ))
    })
}
