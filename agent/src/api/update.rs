//! `/v1/update`: the update agent over HTTP (docs/API.md).

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::error::ApiError;
use crate::update::{UpdateError, Updater};
use husk_api::update::{
    ApplyRequest, RollbackRequest, UPDATE_APPLY_PATH, UPDATE_CHECK_PATH, UPDATE_PATH,
    UPDATE_ROLLBACK_PATH, UpdateOutcome, UpdateStatus,
};

pub fn routes() -> Router<Updater> {
    Router::new()
        .route(UPDATE_PATH, get(status))
        .route(UPDATE_CHECK_PATH, post(check))
        .route(UPDATE_APPLY_PATH, post(apply))
        .route(UPDATE_ROLLBACK_PATH, post(rollback))
}

impl From<UpdateError> for ApiError {
    fn from(error: UpdateError) -> Self {
        let status = match &error {
            UpdateError::Config(_) | UpdateError::Invalid(_) => StatusCode::BAD_REQUEST,
            UpdateError::Refused(_) | UpdateError::Busy => StatusCode::CONFLICT,
            UpdateError::Download(_) => StatusCode::BAD_GATEWAY,
            UpdateError::NoEsp(_) => StatusCode::SERVICE_UNAVAILABLE,
            UpdateError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

async fn status(State(updater): State<Updater>) -> Json<UpdateStatus> {
    Json(updater.status())
}

async fn check(State(updater): State<Updater>) -> Result<Json<UpdateOutcome>, ApiError> {
    Ok(Json(updater.check().await?))
}

async fn apply(
    State(updater): State<Updater>,
    request: Result<Json<ApplyRequest>, JsonRejection>,
) -> Result<Json<UpdateOutcome>, ApiError> {
    let Json(request) = request?;
    Ok(Json(updater.apply(&request).await?))
}

async fn rollback(
    State(updater): State<Updater>,
    request: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<Json<UpdateOutcome>, ApiError> {
    let Json(request) = request?;
    Ok(Json(updater.rollback(&request).await?))
}
