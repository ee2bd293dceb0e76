//! The HTTP/JSON API served on the agent's unix socket (docs/ARCHITECTURE.md).

use axum::{Json, Router, routing::get};
use serde::{Deserialize, Serialize};

/// `GET /v1/health`.
pub const HEALTH_PATH: &str = "/v1/health";

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

/// Every route the agent serves.
pub fn router() -> Router {
    Router::new().route(HEALTH_PATH, get(|| async { Json(Health::ok()) }))
}
