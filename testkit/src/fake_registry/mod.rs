//! A scriptable registry for hostile-peer tests: serves given manifests and blobs, and misbehaves on cue.
//!
//! [`FakeRegistry::start`] serves a [`Content`] (repositories of tagged
//! manifests, and blobs by digest) over plain HTTP/1.1 on `127.0.0.1`, the
//! way the OCI distribution spec has registries answer a pull:
//!
//! - `GET /v2/`: `{}`, or 401 with the challenge of the [`Auth`] mode;
//! - `GET|HEAD /v2/<name>/manifests/<tag or digest>`: the manifest, its
//!   stored media type as Content-Type and its digest in
//!   `Docker-Content-Digest`;
//! - `GET|HEAD /v2/<name>/blobs/<digest>`: the blob, honouring
//!   `Range: bytes=N-` (and `N-M`, `-N`) with 206 and Content-Range;
//! - `GET /v2/<name>/tags/list`;
//! - `GET /v2/<name>/referrers/<digest>` (OCI distribution 1.1): an
//!   image index of the manifests of `<name>` whose `subject` is
//!   `<digest>`, filtered by `?artifactType=` (and then saying so in
//!   `OCI-Filters-Applied`); or 404 when [`Content::set_referrers_api`]
//!   turned it off, as distribution 2.8 has no such route;
//! - `GET /token?service=…&scope=…` in [`Auth::Token`] mode;
//! - `GET /_redirected/<digest>`, where [`Fault::Redirect`] sends clients.
//!
//! Names can have slashes (`a/b/c`). Blobs are shared by all
//! repositories. What is unknown is a 404 with an OCI error body
//! (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`).
//!
//! While it runs a test can set [`Fault`]s on digests (503s, dropped and
//! stalled connections, wrong bytes, redirects, slow bodies), change the
//! content and the auth mode, revoke tokens, and read the log of every
//! request. Dropping the registry stops it: every connection is shut and
//! every thread joined.

// auth and http are shared with the token proxy (crate::token_proxy).
pub(crate) mod auth;
mod content;
mod faults;
pub(crate) mod http;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use serde_json::json;

pub use auth::{Auth, SERVICE, TokenField, basic_authorization};
pub use content::{
    Content, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Image, Layer, OCI_CONFIG, OCI_INDEX,
    OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
pub use faults::Fault;
pub use http::{base64_decode, base64_encode};

use content::Referrers;
use faults::{Delivery, Faults};
use http::{Request, Response};

/// One request, as the registry saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLog {
    pub method: String,
    /// The request target: path and query, as sent.
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub accept: Option<String>,
}

/// A running fake registry (see the module's doc); stopped on drop.
pub struct FakeRegistry {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    addr: SocketAddr,
    stop: AtomicBool,
    state: Mutex<State>,
    connections: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

struct State {
    host: String,
    content: Content,
    auth: Auth,
    faults: Faults,
    /// Token → the repositories it may pull.
    tokens: HashMap<String, BTreeSet<String>>,
    log: Vec<RequestLog>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeRegistry {
    /// Serves `content` with no authentication.
    pub fn start(content: Content) -> Self {
        FakeRegistry::start_with(content, Auth::None)
    }

    /// Serves `content`, wanting `auth`.
    pub fn start_with(content: Content, auth: Auth) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            addr,
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                host: addr.to_string(),
                content,
                auth,
                faults: Faults::default(),
                tokens: HashMap::new(),
                log: Vec::new(),
            }),
            connections: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("fake-registry".into())
            .spawn(move || accept_loop(&listener, &accepting))
            .expect("spawn");
        FakeRegistry {
            shared,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.shared.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Sets `fault` on the blob or manifest of `digest`, behind any it
    /// has (the first that applies to a request is the one it meets).
    pub fn fault(&self, digest: &str, fault: Fault) {
        self.state().faults.add(digest, fault, None);
    }

    /// [`FakeRegistry::fault`] for the next `times` requests it applies
    /// to, whatever the fault's own count (a `Stall` once, say).
    pub fn fault_for(&self, digest: &str, fault: Fault, times: usize) {
        self.state().faults.add(digest, fault, Some(times));
    }

    /// Sets `fault` on the referrers API's answer for `digest` (only a
    /// `Status` or one about the body: `DropAfter`, `Stall`, `Slow`,
    /// `WrongBytes`).
    pub fn referrers_fault(&self, digest: &str, fault: Fault) {
        self.state().faults.add(&referrers_key(digest), fault, None);
    }

    pub fn clear_faults(&self, digest: &str) {
        self.state().faults.clear(digest);
    }

    pub fn clear_all_faults(&self) {
        self.state().faults.clear_all();
    }

    /// Changes the auth mode (tokens issued stay valid in token mode).
    pub fn set_auth(&self, auth: Auth) {
        self.state().auth = auth;
    }

    /// Forgets every token issued, as if they had expired.
    pub fn revoke_tokens(&self) {
        self.state().tokens.clear();
    }

    /// Runs `edit` on the content served (between two requests).
    pub fn edit_content<R>(&self, edit: impl FnOnce(&mut Content) -> R) -> R {
        edit(&mut self.state().content)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.state().log.clone()
    }

    pub fn clear_requests(&self) {
        self.state().log.clear();
    }

    /// How many GETs `/v2/<any name>/blobs/<digest>` had (not HEADs, not
    /// the `/_redirected/` ones).
    pub fn blob_gets(&self, digest: &str) -> usize {
        let suffix = format!("/blobs/{digest}");
        self.state()
            .log
            .iter()
            .filter(|r| {
                r.method == "GET" && r.path.starts_with("/v2/") && r.path.ends_with(&suffix)
            })
            .count()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Unblocks accept(), which then sees the flag.
        let _ = TcpStream::connect(self.shared.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for (stream, _) in &connections {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, thread) in connections {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let serving = Arc::clone(shared);
        let thread = thread::Builder::new()
            .name("fake-registry-conn".into())
            .spawn(move || serve_connection(stream, &serving));
        if let Ok(thread) = thread {
            lock(&shared.connections).push((handle, thread));
        }
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while !shared.stop.load(Ordering::SeqCst) {
        let request = match http::read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let mut response = Response::error(400, "UNSUPPORTED", &e.to_string());
                response.close = true;
                let _ = faults::send(&mut writer, &response, &shared.stop);
                break;
            }
            Err(_) => break,
        };
        let response = lock(&shared.state).handle(&request);
        match faults::send(&mut writer, &response, &shared.stop) {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
}

/// The key of the faults set on the referrers of `digest`.
fn referrers_key(digest: &str) -> String {
    format!("referrers/{digest}")
}

/// What `Range: bytes=…` asks of a body of `len` bytes: `None` for no
/// (or an unparsable, hence ignored) header, `Some(None)` when it cannot
/// be satisfied, else the inclusive range.
fn byte_range(header: Option<&str>, len: usize) -> Option<Option<(usize, usize)>> {
    let spec = header?.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let range = if first.is_empty() {
        let suffix: usize = last.parse().ok()?;
        (suffix > 0 && len > 0).then(|| (len.saturating_sub(suffix), len - 1))
    } else {
        let first: usize = first.parse().ok()?;
        let last: usize = if last.is_empty() {
            usize::MAX
        } else {
            last.parse().ok()?
        };
        if last < first {
            return None;
        }
        (first < len).then(|| (first, last.min(len - 1)))
    };
    Some(range)
}

impl State {
    /// Logs `request` and makes its response.
    fn handle(&mut self, request: &Request) -> Response {
        self.log.push(RequestLog {
            method: request.method.clone(),
            path: request.target.clone(),
            range: request.header("range").map(str::to_string),
            authorization: request.header("authorization").map(str::to_string),
            accept: request.header("accept").map(str::to_string),
        });
        let mut response = self.route(request);
        response.head_only = request.method == "HEAD";
        response.close |= !request.keep_alive;
        response
    }

    fn route(&mut self, request: &Request) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            return Response::error(405, "UNSUPPORTED", "this registry only serves pulls");
        }
        let path = request.path.as_str();
        if path == "/token" {
            return self.token(request);
        }
        if let Some(digest) = path.strip_prefix("/_redirected/") {
            return self.serve(digest, request, true);
        }
        if path == "/v2" || path == "/v2/" {
            return match self.authorize(request, None) {
                Ok(()) => Response::json(200, &json!({})),
                Err(refusal) => refusal,
            };
        }
        let parsed = path.strip_prefix("/v2/").and_then(|rest| {
            let (rest, reference) = rest.rsplit_once('/')?;
            let (name, kind) = rest.rsplit_once('/')?;
            (!name.is_empty() && !reference.is_empty()).then_some((name, kind, reference))
        });
        let Some((name, kind, reference)) = parsed else {
            return Response::error(404, "NOT_FOUND", &format!("no route for {path}"));
        };
        if let Err(refusal) = self.authorize(request, Some(name)) {
            return refusal;
        }
        match (kind, reference) {
            ("manifests", _) => self.manifest(name, reference, request),
            ("blobs", _) => self.serve(reference, request, false),
            ("referrers", _) => self.referrers(name, reference, request),
            ("tags", "list") => match self.content.repositories.get(name) {
                Some(repository) => {
                    let tags: Vec<_> = repository.tags.keys().collect();
                    Response::json(200, &json!({"name": name, "tags": tags}))
                }
                None => Response::error(404, "NAME_UNKNOWN", &format!("no repository {name}")),
            },
            _ => Response::error(404, "NOT_FOUND", &format!("no route for {path}")),
        }
    }

    fn manifest(&mut self, name: &str, reference: &str, request: &Request) -> Response {
        let Some(repository) = self.content.repositories.get(name) else {
            return Response::error(404, "NAME_UNKNOWN", &format!("no repository {name}"));
        };
        let digest = if reference.starts_with("sha256:") {
            Some(reference)
        } else {
            repository.tags.get(reference).map(String::as_str)
        };
        match digest.filter(|d| repository.manifests.contains_key(*d)) {
            Some(digest) => {
                let digest = digest.to_string();
                self.serve(&digest, request, false)
            }
            None => {
                let message = format!("no manifest {reference} in {name}");
                Response::error(404, "MANIFEST_UNKNOWN", &message)
            }
        }
    }

    /// The referrers of `digest` in `name`, through the faults set with
    /// [`FakeRegistry::referrers_fault`].
    fn referrers(&mut self, name: &str, digest: &str, request: &Request) -> Response {
        let artifact_type = request.query_all("artifactType").next();
        let (bytes, filtered) = match self.content.referrers(name, digest, artifact_type) {
            Referrers::Unsupported => {
                // distribution 2.8's router: a plain 404, no OCI error.
                let mut response = Response::new(404);
                response.body = b"404 page not found\n".to_vec();
                return response.header("Content-Type", "text/plain; charset=utf-8");
            }
            Referrers::NoRepository => {
                return Response::error(404, "NAME_UNKNOWN", &format!("no repository {name}"));
            }
            Referrers::Index { bytes, filtered } => (bytes, filtered),
        };
        let fault = self
            .faults
            .take(&referrers_key(digest), false, request.method == "GET");
        if let Some(Fault::Status { code, .. }) = fault {
            return Response::error(code, "UNKNOWN", &format!("injected status {code}"));
        }
        let mut response = Response::new(200).body(OCI_INDEX, bytes);
        if filtered {
            response = response.header("OCI-Filters-Applied", "artifactType");
        }
        if fault == Some(Fault::WrongBytes) {
            response.body.iter_mut().for_each(|b| *b = !*b);
        }
        response.delivery = Delivery::of(fault.as_ref());
        response
    }

    /// The blob or manifest of `digest`, through its faults; blobs (not
    /// manifests) honour Range.
    fn serve(&mut self, digest: &str, request: &Request, redirected: bool) -> Response {
        let Some((bytes, content_type)) = self.content.by_digest(digest) else {
            return Response::error(404, "BLOB_UNKNOWN", &format!("no blob {digest}"));
        };
        let is_blob = self.content.blobs.contains_key(digest);
        let fault = self
            .faults
            .take(digest, redirected, request.method == "GET");
        match fault {
            Some(Fault::Status { code, .. }) => {
                let message = format!("injected status {code}");
                return Response::error(code, "UNKNOWN", &message);
            }
            Some(Fault::Redirect) => {
                let location = format!("http://{}/_redirected/{digest}", self.host);
                return Response::new(307).header("Location", location);
            }
            _ => {}
        }
        let len = bytes.len();
        let range = if is_blob {
            byte_range(request.header("range"), len)
        } else {
            None
        };
        let mut response = match range {
            None => Response::new(200).body(content_type, bytes.to_vec()),
            Some(None) => {
                let message = format!("no such range of {len} bytes");
                return Response::error(416, "BLOB_UNKNOWN", &message)
                    .header("Content-Range", format!("bytes */{len}"));
            }
            Some(Some((first, last))) => Response::new(206)
                .body(content_type, bytes[first..=last].to_vec())
                .header("Content-Range", format!("bytes {first}-{last}/{len}")),
        };
        if is_blob {
            response = response.header("Accept-Ranges", "bytes");
        }
        if fault == Some(Fault::WrongBytes) {
            response.body.iter_mut().for_each(|b| *b = !*b);
        }
        response.delivery = Delivery::of(fault.as_ref());
        response.header("Docker-Content-Digest", digest)
    }
}
