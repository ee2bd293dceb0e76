//! A client for the agent's API over its unix socket: huskctl's, and any
//! Rust program's that drives a Husk machine.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {path}: {source} (is husk-agent running?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP exchange with the agent failed: {0}")]
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

fn describe_status(status: u16, body: &str) -> String {
    match serde_json::from_str::<crate::ErrorBody>(body) {
        Ok(b) => format!("{} (HTTP {status})", b.error),
        Err(_) => format!("the agent answered {status}: {body}"),
    }
}

/// One API client, bound to a socket path.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Self {
            socket: socket.as_ref().to_owned(),
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
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection future drives the socket; it ends with the request.
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = sender.send_request(request).await?;
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
