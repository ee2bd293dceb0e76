//! Docker's API versions: the one Husk speaks (1.41, Docker 20.10's), and
//! the `/v1.N/` path prefixes it accepts (1.24 to 1.43: the clients that
//! send them read 1.41's answers). Other versions are refused as dockerd
//! refuses them, before any handler runs.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::DockerError;

/// What `_ping`'s `API-Version` and `version` announce.
pub const API_VERSION: &str = "1.41";
/// The oldest prefix accepted (dockerd 20.10's minimum too).
pub const MIN_API_VERSION: &str = "1.24";
/// The newest prefix accepted.
pub const MAX_API_VERSION: &str = "1.43";

/// `1.41` → (1, 41).
fn parse(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The version in a path's first segment (`/v1.41/…`), if it has one.
pub fn of_path(path: &str) -> Option<&str> {
    let first = path.trim_start_matches('/').split('/').next()?;
    let version = first.strip_prefix('v')?;
    parse(version).map(|_| version)
}

/// The path without its version prefix.
pub fn strip(path: &str) -> &str {
    match of_path(path) {
        Some(version) => &path[1 + 1 + version.len()..],
        None => path,
    }
}

/// Whether a client of `version` is served; Docker's messages otherwise.
fn check_version(version: &str) -> Result<(), DockerError> {
    let (Some(asked), Some(min), Some(max)) = (
        parse(version),
        parse(MIN_API_VERSION),
        parse(MAX_API_VERSION),
    ) else {
        return Err(DockerError::bad_request(format!(
            "malformed API version {version}"
        )));
    };
    if asked > max {
        return Err(DockerError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {MAX_API_VERSION}"
        )));
    }
    if asked < min {
        return Err(DockerError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is \
             {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(())
}

/// Runs after routing: a route matched under `/{version}` must have a
/// real version there (`/nonsense/_ping` is no route), in range.
pub async fn check(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let params = Path::<HashMap<String, String>>::from_request_parts(&mut parts, &())
        .await
        .ok();
    let request = Request::from_parts(parts, body);
    if let Some(segment) = params.and_then(|Path(mut p)| p.remove("version")) {
        let checked = match segment.strip_prefix('v') {
            Some(version) if parse(version).is_some() => check_version(version),
            _ => Err(DockerError::new(StatusCode::NOT_FOUND, "page not found")),
        };
        if let Err(e) = checked {
            return e.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(of_path("/v1.41/containers/json"), Some("1.41"));
        assert_eq!(of_path("/containers/json"), None);
        assert_eq!(of_path("/volumes"), None);
        assert_eq!(strip("/v1.24/_ping"), "/_ping");
        assert_eq!(strip("/_ping"), "/_ping");
        assert!(check_version("1.41").is_ok());
        assert!(check_version("1.24").is_ok());
        assert!(check_version("1.43").is_ok());
        assert!(
            check_version("1.44")
                .unwrap_err()
                .message
                .contains("too new")
        );
        assert!(
            check_version("1.12")
                .unwrap_err()
                .message
                .contains("too old")
        );
    }
}
