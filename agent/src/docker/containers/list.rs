//! `GET /containers/json?all=&filters=&limit=`: `docker ps`. Filters:
//! `id` (a prefix), `name` (a substring of the name, `^` and `$`
//! anchoring it, as dockerd's regular expressions are mostly used),
//! `label` (`key` or `key=value`) and `status`; any other is refused.

use axum::Json;
use axum::extract::State;
use axum::routing::{MethodRouter, get};

use super::super::error::DockerError;
use super::super::networks::ids_by_name;
use super::super::query::{Params, pattern_matches};
use super::super::{Docker, ids};
use super::QueryMap;
use super::inspect::list_entry;
use crate::containers::{ContainerInfo, Status};

/// dockerd's name filter is a regular expression over `/name`; the
/// common uses are a plain substring and `^…$`.
fn name_matches(pattern: &str, name: &str) -> bool {
    pattern_matches(pattern, &format!("/{name}")) || pattern_matches(pattern, name)
}

fn label_matches(filter: &str, info: &ContainerInfo) -> bool {
    match filter.split_once('=') {
        Some((key, value)) => info.options.labels.get(key).is_some_and(|v| v == value),
        None => info.options.labels.contains_key(filter),
    }
}

fn status_matches(status: &str, info: &ContainerInfo) -> bool {
    matches!(
        (status, info.status),
        ("created", Status::Created)
            | ("running", Status::Running)
            | ("restarting", Status::Restarting)
            | ("exited", Status::Exited)
    )
}

pub fn route() -> MethodRouter<Docker> {
    get(|State(docker): State<Docker>, query: QueryMap| async move {
        let params = Params::from(query)?;
        let filters = params.filters()?;
        filters.only(&["id", "name", "label", "status"])?;
        const STATUSES: [&str; 7] = [
            "created",
            "restarting",
            "running",
            "removing",
            "paused",
            "exited",
            "dead",
        ];
        for status in filters.0.get("status").into_iter().flatten() {
            if !STATUSES.contains(&status.as_str()) {
                return Err(DockerError::bad_request(format!(
                    "invalid filter 'status={status}'"
                )));
            }
        }
        let all = params.bool("all") || filters.0.contains_key("status");
        let mut containers: Vec<ContainerInfo> = docker
            .manager
            .list()
            .into_iter()
            .filter(|c| all || matches!(c.status, Status::Running | Status::Restarting))
            .filter(|c| filters.any("id", |id| ids::id_of(c).starts_with(id)))
            .filter(|c| filters.any("name", |n| name_matches(n, &c.name)))
            .filter(|c| {
                // Every label filter must hold (dockerd's rule for labels).
                filters
                    .0
                    .get("label")
                    .is_none_or(|labels| labels.iter().all(|l| label_matches(l, c)))
            })
            .filter(|c| filters.any("status", |s| status_matches(s, c)))
            .collect();
        // Newest first, as dockerd lists them.
        containers.sort_by_key(|c| std::cmp::Reverse(c.created_ms));
        if let Some(limit) = params.int("limit")?.filter(|l| *l > 0) {
            containers.truncate(limit as usize);
        }
        let network_ids = ids_by_name(&docker).await;
        Ok::<_, DockerError>(Json(
            containers
                .iter()
                .map(|c| list_entry(c, &network_ids))
                .collect::<Vec<_>>(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_dockerd_mostly_does() {
        assert!(name_matches("web", "web"));
        assert!(name_matches("we", "web"));
        assert!(name_matches("^web$", "web"));
        assert!(name_matches("^/web$", "web"));
        assert!(!name_matches("^web$", "web2"));
        assert!(!name_matches("db", "web"));
    }
}
