//! The HTTP/JSON API served on the agent's unix socket (docs/API.md): the
//! routes over husk-api's types, each answered by the piece that owns it.

pub(crate) mod attach;
mod containers;
mod error;
mod exec;
pub(crate) mod images;
mod networks;
mod update;
mod volumes;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::{Json, Router, routing::get};
use husk_api::{HEALTH_PATH, Health, MAX_BODY_BYTES, SYSTEM_PATH, System};

use crate::containers::{Layout, Manager, ManagerConfig};

use self::containers::ndjson;
pub use self::error::ApiError;
pub(crate) use self::images::summary as image_summary;
pub(crate) use self::images::with_store_as;
use crate::images::ImageStore;

/// Where the API finds what it reports.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// husk-init's data partition status file.
    pub data_status: PathBuf,
    /// The image store (default: none, the image endpoints answer 503).
    pub images: ImageStore,
    /// The container manager (over the same store).
    pub containers: Manager,
    /// The user-data outcome (`/run/husk/user-data.json`).
    pub user_data_status: PathBuf,
    /// The update agent.
    pub updater: crate::update::Updater,
    /// Pulls from registries into the same store.
    pub puller: crate::pulls::Puller,
    /// What the remote API reports (`api` of `GET /v1/system`).
    pub remote_status: Arc<crate::server::RemoteStatus>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        let images = ImageStore::default();
        let layout = Layout::new(husk_common::paths::STATE_DIR, husk_common::paths::RUN_DIR);
        let containers = Manager::new(
            ManagerConfig::new(layout, husk_common::paths::AGENT_BIN.into()),
            images.clone(),
        );
        let puller =
            crate::pulls::Puller::new(Default::default(), Default::default(), images.clone())
                .with_events(containers.events().clone());
        Self {
            data_status: husk_common::paths::DATA_STATUS.into(),
            images,
            containers,
            user_data_status: PathBuf::from(husk_common::paths::RUN_DIR).join("user-data.json"),
            puller,
            remote_status: Arc::default(),
            updater: crate::update::Updater::detached(
                PathBuf::from(husk_common::paths::STATE_DIR).join("update"),
            ),
        }
    }
}

/// The health answer: this agent's version.
fn health() -> Health {
    Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Every route the agent serves, with the default paths.
pub fn router() -> Router {
    router_with(&ApiConfig::default())
}

/// Every route the agent serves.
pub fn router_with(config: &ApiConfig) -> Router {
    let data_status = Arc::new(config.data_status.clone());
    let user_data_status = Arc::new(config.user_data_status.clone());
    let net_status = Arc::new(config.user_data_status.with_file_name("net.json"));
    let remote_status = Arc::clone(&config.remote_status);
    Router::new()
        .route(HEALTH_PATH, get(|| async { Json(health()) }))
        .route(
            SYSTEM_PATH,
            get(move || async move {
                // A small file on a tmpfs: read fresh on every request.
                Json(System {
                    data: crate::system::data_status(&data_status),
                    user_data: crate::userdata::status_value(&user_data_status),
                    network: crate::userdata::status_value(&net_status),
                    time: crate::userdata::status_value(
                        &user_data_status.with_file_name("time.json"),
                    ),
                    api: remote_status.to_json(),
                })
            }),
        )
        .merge(
            images::routes(config.containers.clone(), config.puller.clone())
                .with_state(config.images.clone()),
        )
        .merge(containers::routes().with_state(config.containers.clone()))
        .merge(attach::routes().with_state(config.containers.clone()))
        .merge(exec::routes().with_state(config.containers.clone()))
        .merge(networks::routes().with_state(config.containers.clone()))
        .merge(volumes::routes().with_state(config.containers.clone()))
        .merge(update::routes().with_state(config.updater.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not answer {method}", uri.path()),
    )
}

/// Unknown paths get the same JSON error shape as everything else.
async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {method} {}", uri.path()),
    )
}
