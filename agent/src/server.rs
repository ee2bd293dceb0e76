//! Serves the API on a unix socket until asked to stop, to the peers
//! [`peer`] lets in.

pub mod peer;

use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("creating {path}: {source}")]
    Prepare { path: PathBuf, source: io::Error },
    #[error("binding {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("serving {path}: {source}")]
    Serve { path: PathBuf, source: io::Error },
}

/// A bound API socket: bound before readiness is announced, so a client
/// that sees the agent ready can connect at once.
pub struct ApiSocket {
    listener: UnixListener,
    path: PathBuf,
    config: crate::api::ApiConfig,
    peers: peer::ApiSettings,
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
            config: crate::api::ApiConfig::default(),
            peers: peer::ApiSettings::default(),
        })
    }

    /// Who may connect and how many at once (agent.toml `[api]`).
    pub fn with_peers(mut self, peers: peer::ApiSettings) -> Self {
        self.peers = peers;
        self
    }

    /// Serves with these paths instead of the defaults.
    pub fn with_config(mut self, config: crate::api::ApiConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves until `shutdown` completes, then removes the socket file.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            path,
            config,
            peers,
        } = self;
        let listener = peer::PeerCheckedListener::new(listener, peers);
        let result = axum::serve(listener, crate::api::router_with(&config))
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = std::fs::remove_file(&path);
        result.map_err(|source| ServeError::Serve { path, source })
    }
}
