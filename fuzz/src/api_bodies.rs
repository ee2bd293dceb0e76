//! `api_bodies`: requests to the agent's API as its routes take them
//! ([`husk_agent::api::router_with`], called without a server): the
//! JSON bodies (create, exec, image import, update apply and rollback)
//! and the query strings (stop, kill, logs, remove), through axum's
//! extractors, husk-api's types and the checks each handler makes before
//! reaching the machine. The answer must be the API's JSON, an error
//! `{"error": "…"}`. A create's options are also built into a spec, as
//! the container manager would once the image is found.
//!
//! The first byte picks the endpoint, the rest is the body or query.
//! There is no image store and no container, so nothing is created or
//! run: the requests stop at the store (503) or the container's lookup
//! (404), after their bodies are read and checked.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use husk_agent::api::{ApiConfig, router_with};
use husk_agent::containers::{Layout, Manager, ManagerConfig};
use husk_agent::images::ImageStore;
use husk_agent::update::Updater;
use husk_spec::RunOptions;
use tower::ServiceExt;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Payload {
    Json,
    Query,
}

const ENDPOINTS: [(Method, &str, Payload); 9] = [
    (Method::POST, "/v1/containers", Payload::Json),
    (Method::POST, "/v1/containers/web/exec", Payload::Json),
    (Method::POST, "/v1/images/import", Payload::Json),
    (Method::POST, "/v1/update/apply", Payload::Json),
    (Method::POST, "/v1/update/rollback", Payload::Json),
    (Method::POST, "/v1/containers/web/stop", Payload::Query),
    (Method::POST, "/v1/containers/web/kill", Payload::Query),
    (Method::GET, "/v1/containers/web/logs", Payload::Query),
    (Method::DELETE, "/v1/containers/web", Payload::Query),
];

pub fn run(data: &[u8]) {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let (method, path, kind) = &ENDPOINTS[usize::from(pick) % ENDPOINTS.len()];
    let request = match kind {
        Payload::Json => Request::builder()
            .method(method)
            .uri(*path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(payload.to_vec())),
        Payload::Query => {
            let mut uri = format!("{path}?").into_bytes();
            uri.extend_from_slice(payload);
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
        }
    };
    // (a request line that is no URI never reaches the routes)
    let Ok(request) = request else {
        return;
    };
    let (status, body) = runtime().block_on(async {
        let response = router()
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the answer's body");
        (status, body.to_bytes())
    });
    check_answer(status, &body);
    if *path == "/v1/containers"
        && let Ok(options) = serde_json::from_slice::<RunOptions>(payload)
    {
        crate::spec::build(&options);
    }
}

/// Every answer is JSON; an error one is `{"error": "…"}` (docs/API.md).
fn check_answer(status: StatusCode, body: &[u8]) {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{status}: not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    });
    if status.is_client_error() || status.is_server_error() {
        assert!(
            json.get("error").is_some_and(serde_json::Value::is_string),
            "{status}: not an error body: {json}"
        );
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The agent's routes over no store and no containers. Their files are
/// under /proc, where nothing can be created: what a request would write
/// (the update state after a failed apply) fails, and the host is left
/// as it was.
fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let root = std::path::Path::new("/proc/husk-fuzz");
        let images = ImageStore::default();
        let containers = Manager::new(
            ManagerConfig::new(
                Layout::new(root.join("state"), root.join("run")),
                root.join("husk-agent"),
            ),
            images.clone(),
        );
        // Its pulls end at once: the store is unavailable (no network).
        let puller =
            husk_agent::pulls::Puller::new(Default::default(), Default::default(), images.clone());
        router_with(&ApiConfig {
            data_status: root.join("data.json"),
            images,
            puller,
            containers,
            user_data_status: root.join("user-data.json"),
            updater: Updater::detached(root.join("update")),
            remote_status: Default::default(),
        })
    })
}
