//! The API's error answers: a status and `{"error": "…"}`. 4xx when the
//! client is at fault (bad JSON, unknown image, image in use, an archive
//! that cannot be read or is not one), 5xx only for the agent's own
//! failures.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use husk_api::ErrorBody;

use husk_store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// A store error, classified. `archive`: the file the request named,
    /// so that failing to read it is the client's mistake, not ours.
    pub fn from_store(error: &StoreError, archive: Option<&std::path::Path>) -> Self {
        use StoreError as E;
        use husk_store::tar_split::SplitError;
        let status = match error {
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::InUse(_) => StatusCode::CONFLICT,
            E::Ambiguous { .. } | E::InvalidName { .. } | E::Digest(_) => StatusCode::BAD_REQUEST,
            // What the archive contains is the client's business.
            E::NotAnArchive { .. }
            | E::BadArchiveFile { .. }
            | E::DigestMismatch { .. }
            | E::SizeMismatch { .. }
            | E::MissingBlob { .. }
            | E::DiffIdMismatch { .. }
            | E::Unpack { .. } => StatusCode::BAD_REQUEST,
            // What a registry sent (pulls answer in their stream; these
            // are here for completeness).
            E::BadManifest { .. }
            | E::BlobMismatch { .. }
            | E::BlobSize { .. }
            | E::TrailingData { .. } => StatusCode::BAD_GATEWAY,
            E::Io { path, .. } if Some(path.as_path()) == archive => StatusCode::BAD_REQUEST,
            E::Locked { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // The image is there but cannot be given back as it came.
            E::Export(SplitError::Missing(_) | SplitError::NotReplayable(_)) => {
                StatusCode::CONFLICT
            }
            E::Export(_) => StatusCode::INTERNAL_SERVER_ERROR,
            E::Io { .. } | E::BadConfig { .. } | E::CorruptBlob { .. } | E::BadIndex { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, error.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // 400 for every JSON mistake (axum answers 415 or 422 for some).
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            log::error!("API: {}", self.message);
        }
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}
