//! Docker's Engine API (v1.41) over Husk's container manager, image store
//! and puller, for Docker's own CLI (`docker -H unix:///run/husk/docker.sock`).
//! The same admission and security policies apply as to Husk's API: what
//! that refuses, this refuses, in Docker's error shape ([`error`]).
//!
//! This file owns the router: every route under its unversioned path and
//! under `/v1.N/` ([`version`]), and the fallback that answers 501 for
//! what Husk does not implement ([`unsupported`]). The endpoints are in
//! [`system`], [`events`], [`images`], [`containers`], [`logs`], [`attach`],
//! [`volumes`] and [`networks`] (request bodies read by [`fields`]);
//! Docker's container ids in [`ids`]; `docker exec` in [`exec`].

mod archive;
mod attach;
mod containers;
mod error;
mod events;
mod exec;
mod fields;
mod frame;
mod ids;
mod image_load;
mod image_prune;
mod image_save;
mod images;
mod logs;
mod networks;
mod prune;
mod query;
mod registry_auth;
mod stats;
mod streaming;
mod system;
mod time;
mod top;
mod unsupported;
mod version;
mod volumes;

use std::path::PathBuf;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::MethodRouter;

use crate::api::ApiConfig;
use crate::containers::Manager;
use crate::images::ImageStore;
use crate::pulls::Puller;

pub use self::error::DockerError;
pub use self::version::{API_VERSION, MAX_API_VERSION, MIN_API_VERSION};

/// Where the agent serves it (root only, as its own API): beside the API
/// socket, `/run/husk/docker.sock`.
pub const SOCKET_NAME: &str = "docker.sock";

/// Docker create bodies are a few KiB: the limit of every JSON body. A
/// `docker cp` archive is streamed, not buffered, and bounded by the
/// store's limits on what it unpacks (`archive`); builds and image loads
/// are not implemented.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every Docker handler works on: the agent's own pieces.
#[derive(Clone)]
pub(crate) struct Docker {
    pub manager: Manager,
    pub images: ImageStore,
    pub puller: Puller,
    /// The agent's state root (`DockerRootDir` of `info`).
    pub root: PathBuf,
}

/// The Docker Engine API over the agent's manager, store and puller.
pub fn router(config: &ApiConfig) -> Router {
    let docker = Docker {
        manager: config.containers.clone(),
        images: config.images.clone(),
        puller: config.puller.clone(),
        root: config.containers.config().layout.root.clone(),
    };
    let routes = Routes(Router::new())
        .add("/_ping", system::ping())
        .add("/version", system::version())
        .add("/info", system::info())
        .add("/events", events::route())
        .add("/images/json", images::list())
        .add("/images/create", images::create())
        .add("/images/prune", image_prune::route())
        .add("/images/load", image_load::route())
        .add("/images/get", image_save::route())
        .add("/build/prune", prune::build_cache())
        .add("/images/{*rest}", images::by_name())
        .add("/containers/json", containers::list())
        .add("/containers/create", containers::create())
        .add("/containers/prune", containers::prune())
        .add("/containers/{id}", containers::remove())
        .add("/containers/{id}/json", containers::inspect())
        .add("/containers/{id}/start", containers::start())
        .add("/containers/{id}/stop", containers::stop())
        .add("/containers/{id}/restart", containers::restart())
        .add("/containers/{id}/kill", containers::kill())
        .add("/containers/{id}/wait", containers::wait())
        .add("/containers/{id}/logs", logs::route())
        .add("/containers/{id}/attach", attach::route())
        .add("/containers/{id}/archive", archive::route())
        .add("/containers/{id}/stats", stats::route())
        .add("/containers/{id}/top", top::route())
        .add("/containers/{id}/resize", attach::resize_route())
        .add("/containers/{id}/exec", exec::create())
        .add("/exec/{id}/start", exec::start())
        .add("/exec/{id}/json", exec::inspect())
        .add("/exec/{id}/resize", exec::resize())
        .add("/volumes", volumes::list())
        .add("/volumes/create", volumes::create())
        .add("/volumes/prune", volumes::prune())
        .add("/volumes/{name}", volumes::by_name())
        .add("/networks", networks::list())
        .add("/networks/create", networks::create())
        .add("/networks/prune", networks::prune())
        .add("/networks/{id}", networks::by_id())
        .add("/networks/{id}/connect", networks::connect())
        .add("/networks/{id}/disconnect", networks::disconnect());
    routes
        .0
        .fallback(unsupported::fallback)
        .method_not_allowed_fallback(unsupported::fallback)
        .layer(axum::middleware::from_fn(version::check))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(docker)
}

/// Builds the router with each route twice: unversioned and versioned.
struct Routes(Router<Docker>);

impl Routes {
    fn add(self, path: &str, method: MethodRouter<Docker>) -> Self {
        Self(
            self.0
                .route(path, method.clone())
                .route(&format!("/{{version}}{path}"), method),
        )
    }
}
