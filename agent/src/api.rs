//! The HTTP/JSON API served on the agent's unix socket (docs/API.md).

mod containers;
mod error;
mod images;
mod update;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::{Json, Router, routing::get};
use serde::{Deserialize, Serialize};

use crate::containers::{Layout, Manager, ManagerConfig};

pub use self::containers::{
    CONTAINERS_PATH, ContainerList, RemovedContainer, WaitResponse, container_path,
};
pub use self::error::{ApiError, ErrorBody};
pub use self::images::{
    IMAGES_GC_PATH, IMAGES_IMPORT_PATH, IMAGES_PATH, ImageDetails, ImageList, ImageStore,
    ImportRequest, RemoveResponse, encode_reference, image_path,
};
pub use self::update::{UPDATE_APPLY_PATH, UPDATE_CHECK_PATH, UPDATE_PATH, UPDATE_ROLLBACK_PATH};

/// Request bodies are small JSON documents (an archive is named by its
/// path, never sent); anything larger is refused before it is read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `GET /v1/health`.
pub const HEALTH_PATH: &str = "/v1/health";
/// `GET /v1/system`: the machine's state (the data partition).
pub const SYSTEM_PATH: &str = "/v1/system";

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
}

impl Default for ApiConfig {
    fn default() -> Self {
        let images = ImageStore::default();
        let layout = Layout::new(husk_common::paths::STATE_DIR, husk_common::paths::RUN_DIR);
        let containers = Manager::new(
            ManagerConfig::new(layout, husk_common::paths::AGENT_BIN.into()),
            images.clone(),
        );
        Self {
            data_status: husk_common::paths::DATA_STATUS.into(),
            images,
            containers,
            user_data_status: PathBuf::from(husk_common::paths::RUN_DIR).join("user-data.json"),
            updater: crate::update::Updater::detached(
                PathBuf::from(husk_common::paths::STATE_DIR).join("update"),
            ),
        }
    }
}

/// The `GET /v1/system` answer. `data` is init's data.json as it is, or
/// `{"state":"unknown"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub data: serde_json::Value,
    /// `/run/husk/user-data.json`, or `{"state":"unknown"}`.
    #[serde(default)]
    pub user_data: serde_json::Value,
    /// `/run/husk/net.json`: links, addresses, leases.
    #[serde(default)]
    pub network: serde_json::Value,
}

/// The health answer: the agent is up and serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

impl Health {
    fn ok() -> Self {
        Self {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
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
    Router::new()
        .route(HEALTH_PATH, get(|| async { Json(Health::ok()) }))
        .route(
            SYSTEM_PATH,
            get(move || async move {
                // A small file on a tmpfs: read fresh on every request.
                Json(System {
                    data: crate::system::data_status(&data_status),
                    user_data: crate::userdata::status_value(&user_data_status),
                    network: crate::userdata::status_value(&net_status),
                })
            }),
        )
        .merge(images::routes(config.containers.clone()).with_state(config.images.clone()))
        .merge(containers::routes().with_state(config.containers.clone()))
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
