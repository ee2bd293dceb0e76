//! A client for the agent's API, over its unix socket or over the remote
//! API's TLS: huskctl's, and any Rust program's that drives a Husk
//! machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::tls::{ClientIdentity, Fingerprint, Seen, ServerTrust, TlsError};

mod attach;
pub use self::attach::{DEFAULT_DETACH_KEYS, DetachScanner, Upgraded, parse_detach_keys};

/// How long connecting and the TLS handshake may take: a machine that
/// does not answer is an error, not a hang.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {path}: {source} (is husk-agent running?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot reach the agent at {address}: {message}")]
    ConnectRemote { address: String, message: String },
    /// The TLS handshake, or the machine refusing the client's
    /// certificate (an alert, seen by TLS 1.3 clients on the first read).
    #[error("TLS with {address}: {message}")]
    Tls { address: String, message: String },
    #[error("HTTP exchange with the agent failed: {}", with_causes(.0))]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    /// A non-2xx answer; shown as the agent's `error` message when the
    /// body has one.
    #[error("{}", describe_status(*status, body))]
    Status { status: u16, body: String },
    #[error("the agent's answer is not the expected JSON: {0}")]
    Decode(#[from] serde_json::Error),
    /// A failure the agent reported at the end of a stream (a pull's
    /// `error` event).
    #[error("{0}")]
    Failed(String),
    /// Refused before asking the agent (the agent would refuse it too).
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The agent's `error` message of a non-2xx answer.
    pub fn agent_message(&self) -> Option<String> {
        match self {
            Self::Status { body, .. } => serde_json::from_str::<crate::ErrorBody>(body)
                .ok()
                .map(|b| b.error),
            _ => None,
        }
    }
}

/// An error and its causes, on one line: hyper's own message alone says
/// "connection error" where the cause says which TLS alert came.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

fn describe_status(status: u16, body: &str) -> String {
    match serde_json::from_str::<crate::ErrorBody>(body) {
        Ok(b) => format!("{} (HTTP {status})", b.error),
        Err(_) => format!("the agent answered {status}: {body}"),
    }
}

/// One API client, bound to an agent: its unix socket, or its remote
/// API.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Unix(PathBuf),
    Tls(Arc<Remote>),
}

struct Remote {
    /// `host:port`, as dialled.
    address: String,
    server_name: rustls::pki_types::ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
    seen: Seen,
}

impl Client {
    /// A client of the agent's unix socket.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Self {
            target: Target::Unix(socket.as_ref().to_owned()),
        }
    }

    /// A client of a remote API at `address` (`host:port`, `[v6]:port`),
    /// with this certificate, trusting the machine's as `trust` says.
    pub fn remote(
        address: &str,
        identity: ClientIdentity,
        trust: ServerTrust,
    ) -> Result<Self, TlsError> {
        let host = host_of(address);
        let server_name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError::Roots(format!("`{host}` is not a host name or address")))?;
        let (config, seen) = crate::tls::client_config(identity, trust)?;
        Ok(Self {
            target: Target::Tls(Arc::new(Remote {
                address: address.to_owned(),
                server_name,
                connector: tokio_rustls::TlsConnector::from(config),
                seen,
            })),
        })
    }

    /// The fingerprint of the certificate the machine presented on the
    /// last connection (remote clients only).
    pub fn server_fingerprint(&self) -> Option<Fingerprint> {
        match &self.target {
            Target::Tls(remote) => remote.seen.lock().ok().and_then(|seen| *seen),
            Target::Unix(_) => None,
        }
    }

    /// Where this client connects, for messages.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Unix(path) => path.display().to_string(),
            Target::Tls(remote) => format!("tcp://{}", remote.address),
        }
    }

    /// `GET path`, decoding a 2xx JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body)?;
        self.request(Method::POST, path, Some(body)).await
    }

    /// `POST path` without a body.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.request(Method::POST, path, None).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.request(Method::DELETE, path, None).await
    }

    /// One exchange on a fresh connection, decoding a 2xx JSON answer.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, body).await?;
        let body = response.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&body)?)
    }

    /// A streamed (`application/x-ndjson`) answer: `on_line` gets each
    /// line as it arrives, decoded.
    pub async fn stream<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        mut on_line: impl FnMut(T),
    ) -> Result<(), ClientError> {
        let mut body = self.send(method, path, body).await?.into_body();
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    on_line(serde_json::from_slice(&line[..end])?);
                }
            }
        }
        Ok(())
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Status`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let mut request = hyper::Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let response = match &self.target {
            Target::Unix(socket) => {
                let stream =
                    UnixStream::connect(socket)
                        .await
                        .map_err(|source| ClientError::Connect {
                            path: socket.clone(),
                            source,
                        })?;
                let request = request
                    .header(hyper::header::HOST, "localhost")
                    .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
                exchange(stream, request).await?
            }
            Target::Tls(remote) => {
                let stream = remote.connect().await?;
                let request = request
                    .header(hyper::header::HOST, remote.address.as_str())
                    .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
                exchange(stream, request)
                    .await
                    .map_err(|e| remote.refused(e))?
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.into_body().collect().await?.to_bytes();
            return Err(ClientError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(response)
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Remote {
    async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
        let unreachable = |message: String| ClientError::ConnectRemote {
            address: self.address.clone(),
            message,
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| unreachable(format!("no answer in {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let handshake = self.connector.connect(self.server_name.clone(), tcp);
        tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| ClientError::Tls {
                address: self.address.clone(),
                message: format!("no handshake in {CONNECT_TIMEOUT:?}"),
            })?
            .map_err(|e| ClientError::Tls {
                address: self.address.clone(),
                message: with_causes(&e),
            })
    }

    /// A TLS 1.3 server refuses a client certificate after the client's
    /// side of the handshake is done: the alert arrives as the answer.
    fn refused(&self, error: hyper::Error) -> ClientError {
        let message = with_causes(&error);
        if message.contains("alert") {
            ClientError::Tls {
                address: self.address.clone(),
                message: format!("the machine refused this client: {message}"),
            }
        } else {
            ClientError::Http(error)
        }
    }
}

/// `host` of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// One request over a fresh connection.
async fn exchange<S>(
    stream: S,
    request: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection future drives the socket; it ends with the request.
    tokio::spawn(connection);
    sender.send_request(request).await
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("192.0.2.1:7443"), "192.0.2.1");
        assert_eq!(host_of("[2001:db8::1]:7443"), "2001:db8::1");
        assert_eq!(host_of("node.example:7443"), "node.example");
    }
}
