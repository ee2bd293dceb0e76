//! The role check of every remote request: the peer's role (from its
//! certificate) against the one the endpoint needs (husk-api's
//! `roles::required`). The unix socket's peers are root or listed uids
//! and are not checked here: they are the machine's own administrators.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Extension, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use husk_api::roles::{self, Role};

use super::status::RemoteStatus;
use super::subject::Subject;
use crate::api::ApiError;

/// Who is on a remote connection.
#[derive(Debug)]
pub struct RemotePeer {
    pub address: SocketAddr,
    pub subject: Subject,
    /// None: the certificate names no Husk role; it may do nothing.
    pub role: Option<Role>,
    pub status: Arc<RemoteStatus>,
}

impl RemotePeer {
    pub fn new(address: SocketAddr, subject: Subject, status: Arc<RemoteStatus>) -> Self {
        let role = Role::from_organizations(subject.organizations.iter().map(String::as_str));
        Self {
            address,
            subject,
            role,
            status,
        }
    }

    /// Whether it may `method path`; the refusal, said, when not.
    fn check(&self, method: &axum::http::Method, path: &str) -> Result<(), String> {
        let needed = roles::required(method, path);
        match self.role {
            Some(role) if role >= needed => Ok(()),
            Some(role) => Err(format!(
                "{} has the {role} role: {method} {path} needs {needed}",
                self.subject.describe()
            )),
            None => Err(format!(
                "{} names no Husk role (an organization {}, {} or {})",
                self.subject.describe(),
                Role::Admin.organization(),
                Role::Operator.organization(),
                Role::Reader.organization()
            )),
        }
    }
}

/// The middleware: passes what the peer's role allows, answers 403
/// (logged, counted) to the rest.
pub async fn authorize(
    Extension(peer): Extension<Arc<RemotePeer>>,
    request: Request,
    next: Next,
) -> Response {
    match peer.check(request.method(), request.uri().path()) {
        Ok(()) => next.run(request).await,
        Err(why) => {
            peer.status.refused_request();
            log::warn!(
                "API: refused {} from {}: {why}",
                request.method(),
                peer.address
            );
            // In the error shape of the API asked: `docker` prints
            // Docker's `message`, huskctl Husk's `error`.
            if super::routes::is_husk_path(request.uri().path()) {
                ApiError::new(StatusCode::FORBIDDEN, why).into_response()
            } else {
                crate::docker::DockerError::new(StatusCode::FORBIDDEN, why).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn peer(organizations: &[&str]) -> RemotePeer {
        RemotePeer::new(
            "192.0.2.9:40000".parse().unwrap(),
            Subject {
                common_name: Some("bob".into()),
                organizations: organizations.iter().map(|o| o.to_string()).collect(),
            },
            Arc::default(),
        )
    }

    #[test]
    fn roles_are_checked_per_request() {
        let reader = peer(&["husk:reader"]);
        assert!(reader.check(&Method::GET, "/v1/containers").is_ok());
        let why = reader.check(&Method::POST, "/v1/containers").unwrap_err();
        assert_eq!(
            why,
            "CN=bob has the reader role: POST /v1/containers needs operator"
        );
        let operator = peer(&["husk:operator"]);
        assert!(operator.check(&Method::POST, "/v1/containers").is_ok());
        assert!(operator.check(&Method::POST, "/v1/update/apply").is_err());
        assert!(
            peer(&["husk:admin"])
                .check(&Method::POST, "/v1/update/apply")
                .is_ok()
        );
        let nobody = peer(&["acme"]);
        let why = nobody.check(&Method::GET, "/v1/health").unwrap_err();
        assert!(why.contains("names no Husk role"), "{why}");
    }
}
