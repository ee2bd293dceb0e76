//! One port, two APIs: the remote listener serves Husk's own (`/v1/…`)
//! and Docker's Engine API (`/_ping`, `/v1.41/…`, unversioned paths),
//! each answering the paths it does not know in its own error shape, so
//! that `huskctl -H` and `docker -H` reach the same machine with the
//! same certificates and roles.

use axum::Router;
use axum::extract::Request;
use tower::ServiceExt;

/// Husk's paths go to `husk`, every other to `docker`.
pub fn both(husk: Router, docker: Router) -> Router {
    Router::new().fallback(move |request: Request| {
        let service = if is_husk_path(request.uri().path()) {
            husk.clone()
        } else {
            docker.clone()
        };
        async move {
            match service.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

/// `/v1` and below: Husk's API. Docker's versions are `/v1.N`.
pub(super) fn is_husk_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dockers_and_v1_is_husks() {
        assert!(is_husk_path("/v1/containers"));
        assert!(is_husk_path("/v1"));
        assert!(!is_husk_path("/v1.41/containers/json"));
        assert!(!is_husk_path("/_ping"));
        assert!(!is_husk_path("/v12/x"));
    }
}
