//! What Husk's Docker API does not implement: every other endpoint of
//! Docker's (build, commit, export, push, swarm, plugins…) is answered
//! 501 in Docker's error shape, naming what is missing, so the CLI
//! prints why instead of failing on a 404 it cannot explain.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Uri};
use http_body_util::BodyExt;

use super::error::DockerError;

/// The Docker feature a path belongs to, in the CLI's words.
fn feature(method: &Method, path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let named = |what: &str| what.to_owned();
    match segments.as_slice() {
        ["build", "prune"] => named("build cache prune"),
        ["build", ..] => named("docker build (image builds): build images elsewhere and pull them"),
        ["containers", _, action] => format!("container {action}"),
        ["containers", "prune"] => named("container prune"),
        ["images", ..] => {
            format!(
                "{method} {path} (image operations besides ls, inspect, pull, tag, load, prune and rm)"
            )
        }
        ["volumes", ..] => named("Docker's volume API"),
        ["commit"] => named("docker commit"),
        ["system", "df"] => named("docker system df"),
        ["auth"] => named("docker login (registry credentials are agent.toml's [registry.auths])"),
        ["swarm", ..]
        | ["nodes", ..]
        | ["services", ..]
        | ["tasks", ..]
        | ["secrets", ..]
        | ["configs", ..] => named("swarm mode"),
        ["plugins", ..] => named("plugins"),
        ["session"] | ["grpc"] => named("BuildKit sessions"),
        ["distribution", ..] => named("registry distribution inspection"),
        _ => format!("{method} {path}"),
    }
}

/// The 501 for `method path` (the path without its version prefix).
/// "not supported" is what the CLI's `docker inspect NAME` looks for to
/// move on to the next kind of object (network, volume…) instead of
/// failing on the first it cannot ask about.
pub fn refusal(method: &Method, path: &str) -> DockerError {
    DockerError::not_implemented(format!(
        "Husk does not implement {}: not supported by Husk's Docker Engine API",
        feature(method, path)
    ))
}

/// How much of an unwanted body (a build context, an archive) is read
/// and dropped before the 501, and for how long.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Reads and drops what the client is sending: answering while it still
/// writes would close the connection under it, and the CLI would show a
/// broken pipe instead of the answer.
async fn drain(mut body: Body) {
    let read = async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |data| data.len());
            if seen > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// The router's fallback: anything no route took.
pub async fn fallback(method: Method, uri: Uri, body: Body) -> DockerError {
    drain(body).await;
    let path = super::version::strip(uri.path());
    log::debug!("Docker API: not implemented: {method} {path}");
    refusal(&method, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing() {
        let build = refusal(&Method::POST, "/build").message;
        assert!(build.contains("docker build"), "{build}");
        let pause = refusal(&Method::POST, "/containers/web/pause").message;
        assert!(pause.contains("container pause"), "{pause}");
        let export = refusal(&Method::GET, "/containers/web/export").message;
        assert!(export.contains("container export"), "{export}");
    }
}
