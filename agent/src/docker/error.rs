//! Docker's error answers: a status and `{"message": "…"}`, which the CLI
//! prints as `Error response from daemon: …`. The statuses are Husk's
//! (404 unknown, 409 conflicts, 400 bad requests, 403 what the policy
//! forbids), converted from the errors Husk's own API answers, so both
//! doors refuse the same things for the same reasons; 501 for what Husk
//! does not implement.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::ApiError;
use crate::containers::ManagerError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DockerError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
}

impl DockerError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// A store error, classified as Husk's image API classifies it.
    pub fn from_store(error: &husk_store::StoreError) -> Self {
        match error {
            husk_store::StoreError::NotFound(reference) => Self::no_such_image(reference),
            error => ApiError::from_store(error, None).into(),
        }
    }

    /// dockerd's words, which clients match on: Docker's Python SDK tells
    /// an `ImageNotFound` (and pulls) by "no such image" in a 404.
    fn no_such_image(reference: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("No such image: {reference}"))
    }
}

impl From<ApiError> for DockerError {
    fn from(error: ApiError) -> Self {
        Self::new(error.status, error.message)
    }
}

impl From<ManagerError> for DockerError {
    fn from(error: ManagerError) -> Self {
        match error {
            ManagerError::Image(husk_store::StoreError::NotFound(reference)) => {
                Self::no_such_image(&reference)
            }
            error => ApiError::from(error).into(),
        }
    }
}

impl IntoResponse for DockerError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.status != StatusCode::NOT_IMPLEMENTED {
            log::error!("Docker API: {}", self.message);
        }
        (
            self.status,
            Json(Body {
                message: &self.message,
            }),
        )
            .into_response()
    }
}
