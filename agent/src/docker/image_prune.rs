//! `POST /images/prune?filters=` (`docker image prune [-a]`, and `docker
//! system prune`): the images no container uses — only those without a
//! name unless `dangling=false` — removed under the store's lock (no
//! container can be created on one between the check and the removal),
//! then their layers and blobs collected.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::routing::{MethodRouter, post};
use husk_store::{ImageId, Removed, Store};
use serde_json::json;

use super::Docker;
use super::containers::QueryMap;
use super::error::DockerError;
use super::prune::PruneFilters;
use super::query::Params;
use super::time::unix_seconds;
use crate::containers::Manager;

pub fn route() -> MethodRouter<Docker> {
    post(|State(docker): State<Docker>, query: QueryMap| async move {
        let params = Params::from(query)?;
        let filters = PruneFilters::new(params.filters()?, &["dangling"])?;
        let dangling_only = filters.filters.boolean("dangling")?.unwrap_or(true);
        let manager = docker.manager.clone();
        let (removed, reclaimed) = crate::api::with_store_as(&docker.images, move |store| {
            Ok::<_, DockerError>(prune(store, &manager, &filters, dangling_only))
        })
        .await?;
        let events = docker.manager.events();
        let mut deleted = Vec::new();
        for (id, names) in &removed {
            for name in names {
                events.image(id, name, "untag");
                deleted.push(json!({"Untagged": name}));
            }
            events.image(id, id, "delete");
            deleted.push(json!({"Deleted": id}));
        }
        Ok::<_, DockerError>(Json(
            json!({"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}),
        ))
    })
}

fn labels(store: &Store, id: &ImageId) -> BTreeMap<String, String> {
    store
        .image_config(id)
        .ok()
        .and_then(|c| c.config().as_ref().and_then(|c| c.labels().clone()))
        .map(|l| l.into_iter().collect())
        .unwrap_or_default()
}

/// Under the store's lock: the images removed (id, names) and the
/// bytes they took (as distributed).
fn prune(
    store: &mut Store,
    manager: &Manager,
    filters: &PruneFilters,
    dangling_only: bool,
) -> (Vec<(String, Vec<String>)>, u64) {
    let used = manager.images_in_use();
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for image in store.list() {
        // dockerd's dangling: no tag (a name by digest is no tag).
        let tagged = image.names.iter().any(|n| !n.contains('@'));
        if used.contains(&image.id) || (dangling_only && tagged) {
            continue;
        }
        let created = image
            .created
            .as_deref()
            .and_then(unix_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(UNIX_EPOCH, |s| UNIX_EPOCH + Duration::from_secs(s));
        if !filters.matches(&labels(store, &image.id), created.min(SystemTime::now())) {
            continue;
        }
        match store.remove(&image.id.to_string(), |id| used.contains(id)) {
            Ok(Removed::Deleted(id)) => {
                log::info!("Docker API: image prune deleted {id}");
                deleted.push((id.to_string(), image.names.clone()));
                reclaimed += image.size;
            }
            Ok(Removed::Untagged(_)) => {}
            Err(e) => log::warn!("Docker API: image prune: {}: {e}", image.id),
        }
    }
    if !deleted.is_empty()
        && let Err(e) = store.gc()
    {
        log::warn!("Docker API: image prune: collecting layers: {e}");
    }
    (deleted, reclaimed)
}
