//! The remote API: the same routes as the unix socket, over TLS 1.3 on
//! the addresses of `[api] listen`, to clients whose certificates the
//! configured CA issued, each request checked against the role its
//! certificate carries ([`authorize`]). A client without such a
//! certificate gets a TLS alert and nothing else: no HTTP is read before
//! the handshake has verified it.
//!
//! The machine presents the operator's certificate, or one it made at
//! its first boot ([`identity`]), whose fingerprint it logs to the
//! console for clients to pin.

pub mod authorize;
pub mod identity;
mod routes;
pub mod status;
pub mod subject;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use self::authorize::RemotePeer;
use self::identity::Identity;
pub use self::status::RemoteStatus;
use self::subject::Subject;
use super::limit::ConnectionCap;
use super::{ApiSettings, RemoteSettings};

/// The remote API of one agent: started once, when its settings are
/// known (agent.toml's at start, with user-data's over them on a
/// machine).
#[derive(Clone)]
pub struct RemoteApi {
    router: axum::Router,
    settings: ApiSettings,
    /// Where the machine's own certificate is kept (`<root>/api`).
    identity_dir: PathBuf,
    status: Arc<RemoteStatus>,
    started: Arc<Mutex<bool>>,
    /// Opens the listeners' ports in the machine's firewall.
    containers: crate::containers::Manager,
}

impl RemoteApi {
    pub fn new(
        config: &crate::api::ApiConfig,
        settings: ApiSettings,
        identity_dir: PathBuf,
    ) -> Self {
        Self {
            router: routes::both(
                crate::api::router_with(config),
                crate::docker::router(config),
            )
            .layer(axum::middleware::from_fn(authorize::authorize)),
            settings,
            identity_dir,
            status: Arc::clone(&config.remote_status),
            started: Arc::default(),
            containers: config.containers.clone(),
        }
    }

    /// agent.toml's remote settings.
    pub fn configured(&self) -> RemoteSettings {
        self.settings.remote()
    }

    /// Listens on `remote.listen`, if any. Everything is checked and
    /// bound before the first connection is accepted: an error leaves no
    /// address listening and is in `GET /v1/system`'s `api`. A second
    /// call does nothing (the first settings hold until a restart).
    pub fn start(&self, remote: &RemoteSettings) -> Result<(), String> {
        let Ok(mut started) = self.started.lock() else {
            return Err("the remote API's lock is poisoned".into());
        };
        if *started || remote.listen.is_empty() {
            return Ok(());
        }
        *started = true;
        let result = self.bind(remote);
        if let Err(e) = &result {
            log::error!("API: the remote API is off: {e}");
            self.status.failed(e.clone());
        }
        result
    }

    fn bind(&self, remote: &RemoteSettings) -> Result<(), String> {
        remote.validate()?;
        let identity = match (&remote.server_cert, &remote.server_key) {
            (Some(cert), Some(key)) => Identity::from_pem(cert, key),
            _ => Identity::machine(&self.identity_dir, &hostname()),
        }
        .map_err(|e| e.to_string())?;
        let fingerprint = identity.fingerprint();
        let origin = identity.origin;
        let client_ca = remote.client_ca.as_deref().unwrap_or_default();
        let acceptor = TlsAcceptor::from(tls_config(client_ca, identity)?);
        let mut listeners = Vec::new();
        for address in &remote.listen {
            let listener = std::net::TcpListener::bind(address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(TcpListener::from_std)
                .map_err(|e| format!("api.listen {address}: {e}"))?;
            listeners.push(listener);
        }
        let listen: Vec<String> = remote.listen.iter().map(ToString::to_string).collect();
        // On the console, where an operator who cannot yet reach the
        // machine can read it (every cloud shows the serial output).
        log::info!(
            "API: serving on {} (TLS 1.3, client certificates of api.client_ca); API certificate {fingerprint} ({})",
            listen.join(", "),
            match origin {
                identity::Origin::Machine => "made by this machine: clients pin this fingerprint",
                identity::Origin::Operator => "the operator's",
            }
        );
        self.status
            .serving(listen, origin.name(), fingerprint.to_string());
        let ports = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| (crate::nft::Protocol::Tcp, a.port()))
            .collect();
        let containers = self.containers.clone();
        tokio::spawn(async move { containers.open_service_ports(ports).await });
        for listener in listeners {
            tokio::spawn(self.clone().accept_loop(listener, acceptor.clone()));
        }
        Ok(())
    }

    async fn accept_loop(self, listener: TcpListener, acceptor: TlsAcceptor) {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.settings.header_timeout());
        let mut cap = ConnectionCap::new(self.settings.max_connections);
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    log::warn!("API: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = cap.admit() else {
                drop(tcp);
                continue;
            };
            let this = self.clone();
            let acceptor = acceptor.clone();
            let http = http.clone();
            tokio::spawn(async move {
                // The handshake has the header deadline: a peer that
                // opens connections and says nothing holds no slot long.
                let handshake =
                    tokio::time::timeout(this.settings.header_timeout(), acceptor.accept(tcp))
                        .await;
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return this.status.handshake_failed(peer, &e.to_string()),
                    Err(_) => return this.status.handshake_failed(peer, "no handshake in time"),
                };
                let subject = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| Subject::of(cert.as_ref()));
                let subject = match subject {
                    Some(Ok(subject)) => subject,
                    Some(Err(e)) => return this.status.handshake_failed(peer, &e.to_string()),
                    None => return this.status.handshake_failed(peer, "no client certificate"),
                };
                this.status.connected();
                let peer = Arc::new(RemotePeer::new(peer, subject, Arc::clone(&this.status)));
                log::debug!(
                    "API: {} connected as {}",
                    peer.address,
                    peer.subject.describe()
                );
                let router = this.router.clone().layer(axum::Extension(peer));
                if let Err(e) = super::connection(&http, stream, router).await {
                    log::debug!("API: remote connection closed: {e}");
                }
                drop(slot);
            });
        }
    }
}

/// TLS 1.3 only, a client certificate of `client_ca` required.
fn tls_config(client_ca: &str, identity: Identity) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = husk_api::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for ca in husk_api::tls::certificates(client_ca.as_bytes(), "api.client_ca")
        .map_err(|e| e.to_string())?
    {
        roots.add(ca).map_err(|e| format!("api.client_ca: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .map_err(|e| format!("api.client_ca: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| format!("the API certificate: {e}"))?;
    Ok(Arc::new(config))
}

/// The machine's name, for the certificate it makes.
fn hostname() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() { "husk".into() } else { name }
}
