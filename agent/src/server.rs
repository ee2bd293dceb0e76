//! Serves the API on a unix socket until asked to stop, to the peers
//! [`peer`] lets in, [`limit`]'s number of them at once, each with a
//! deadline for its request headers; and over TLS to remote clients
//! ([`remote`]).
//!
//! hyper's HTTP/1 connections are driven here rather than by
//! `axum::serve`, which runs hyper without a timer: without one hyper has
//! no header deadline, and a client that connects and sends nothing, or
//! one byte a second, holds its connection forever.
//!
//! One socket serves one router: Husk's API on `agent.sock`, Docker's
//! Engine API (`crate::docker`) on `docker.sock`, with the same peer
//! checks, cap and deadline.

mod limit;
pub mod peer;
pub mod remote;
mod settings;

use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{UnixListener, UnixStream};

pub use self::remote::{RemoteApi, RemoteStatus};
pub use self::settings::{ApiSettings, RemoteSettings};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("creating {path}: {source}")]
    Prepare { path: PathBuf, source: io::Error },
    #[error("binding {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// A bound API socket: bound before readiness is announced, so a client
/// that sees the agent ready can connect at once.
pub struct ApiSocket {
    listener: UnixListener,
    path: PathBuf,
    /// What it serves; None: Husk's API with the default paths.
    router: Option<axum::Router>,
    settings: ApiSettings,
}

impl ApiSocket {
    /// Binds `path`, replacing a stale socket left by a previous run, and
    /// makes it reachable by root only: the API controls the machine.
    pub fn bind(path: &Path) -> Result<Self, ServeError> {
        let prepare = |source| ServeError::Prepare {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(prepare)?;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(prepare(e)),
            _ => {}
        }
        let listener = UnixListener::bind(path).map_err(|source| ServeError::Bind {
            path: path.to_owned(),
            source,
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(prepare)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            router: None,
            settings: ApiSettings::default(),
        })
    }

    /// Who may connect, how many at once, and how long they may take
    /// over their headers (agent.toml `[api]`).
    pub fn with_settings(mut self, settings: ApiSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Serves Husk's API with these paths instead of the defaults.
    pub fn with_config(self, config: crate::api::ApiConfig) -> Self {
        self.with_router(crate::api::router_with(&config))
    }

    /// Serves this router instead (Docker's Engine API on its socket).
    pub fn with_router(mut self, router: axum::Router) -> Self {
        self.router = Some(router);
        self
    }

    /// Serves until `shutdown` completes, then removes the socket file
    /// and lets the open connections finish their requests (a caller
    /// bounds that wait: a followed log never ends by itself).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Self {
            listener,
            path,
            router,
            settings,
        } = self;
        let mut http = http1::Builder::new();
        // The deadline runs from a connection's start and again from each
        // response's end (hyper restarts it when a keep-alive connection
        // goes idle), over all of the headers, not per read: a client
        // trickling a byte at a time is cut like a silent one.
        http.timer(TokioTimer::new())
            .header_read_timeout(settings.header_timeout());
        let router = router.unwrap_or_else(crate::api::router);
        let mut cap = limit::ConnectionCap::new(settings.max_connections);
        let mut listener = peer::PeerCheckedListener::new(listener, settings);
        let connections = Connections::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                stream = listener.accept() => stream,
                () = &mut shutdown => break,
            };
            let Some(slot) = cap.admit() else {
                drop(stream);
                continue;
            };
            spawn_connection(&http, &connections, stream, router.clone(), slot);
        }
        // New clients find no socket rather than one nobody accepts on.
        drop(listener);
        let _ = std::fs::remove_file(&path);
        connections.shutdown().await;
    }
}

/// The open connections of one socket, told to finish at shutdown and
/// waited for. hyper-util's `GracefulShutdown` cannot watch connections
/// with upgrades, which Docker's attach needs.
struct Connections {
    stop: tokio::sync::watch::Sender<bool>,
    /// Each connection's task holds a clone; `recv` sees None once all
    /// are gone.
    open: tokio::sync::mpsc::Sender<()>,
    closed: tokio::sync::mpsc::Receiver<()>,
}

impl Connections {
    fn new() -> Self {
        let (open, closed) = tokio::sync::mpsc::channel(1);
        Self {
            stop: tokio::sync::watch::channel(false).0,
            open,
            closed,
        }
    }

    /// Asks every connection to end after its request in flight, and
    /// waits until they have.
    async fn shutdown(self) {
        let Self {
            stop,
            open,
            mut closed,
        } = self;
        let _ = stop.send(true);
        drop(open);
        let _ = closed.recv().await;
    }
}

/// One HTTP/1 connection of the API, over a unix or a TLS stream. Husk's
/// streams are chunked bodies, but Docker's attach takes the connection
/// over (`101 UPGRADED`), so connections allow upgrades.
fn connection<S>(
    http: &http1::Builder,
    stream: S,
    router: axum::Router,
) -> http1::UpgradeableConnection<TokioIo<S>, TowerToHyperService<axum::Router>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router))
        .with_upgrades()
}

/// Serves one connection on its own task, holding `slot` until it ends.
fn spawn_connection(
    http: &http1::Builder,
    connections: &Connections,
    stream: UnixStream,
    router: axum::Router,
    slot: limit::Slot,
) {
    let connection = connection(http, stream, router);
    let mut stop = connections.stop.subscribe();
    let open = connections.open.clone();
    tokio::spawn(async move {
        let mut connection = std::pin::pin!(connection);
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stopped => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        drop(open);
        if let Err(e) = result {
            // A client gone mid-request or past its deadline: its own
            // business, and a flood of them must not flood the log.
            log::debug!("API: connection closed: {e}");
        }
        drop(slot);
    });
}
