//! The agent's HTTP client for the update repository (whose contents
//! TUF authenticates), resumable downloads, health checks and the EC2
//! metadata service: `http://` over plain TCP, one connection per
//! request; `https://` through husk-registry's client (rustls, Mozilla's
//! roots and the CAs of agent.toml's `[registry]`), the one TLS stack of
//! the agent.

use std::io;
use std::time::Duration;

use futures_util::Stream;
use http_body_util::{BodyExt, BodyStream, Empty};
use hyper::body::{Bytes, Incoming};
use url::Url;

/// A response: status, and the body as a stream of chunks.
pub struct Response {
    pub status: u16,
    pub body: Incoming,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .finish()
    }
}

impl Response {
    /// The body as a stream of byte chunks.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> + Send + Sync + Unpin {
        use futures_util::StreamExt;
        BodyStream::new(self.body)
            .filter_map(|frame| async move {
                match frame {
                    Ok(frame) => frame.into_data().ok().map(Ok),
                    Err(e) => Some(Err(io::Error::other(e))),
                }
            })
            .boxed()
            .into_sync()
    }

    /// The whole body, refused past `limit` bytes.
    pub async fn bytes(self, limit: usize) -> io::Result<Bytes> {
        http_body_util::Limited::new(self.body, limit)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// hyper's body stream is `Send` but not `Sync`, which tough's transport
/// streams must be: a mutex makes it so. It is only polled through
/// `&mut` (`get_mut`), so it is never locked.
trait IntoSync: Sized {
    fn into_sync(self) -> SyncStream<Self> {
        SyncStream(std::sync::Mutex::new(self))
    }
}

impl<S> IntoSync for S {}

pub struct SyncStream<S>(std::sync::Mutex<S>);

impl<S: Stream + Unpin> Stream for SyncStream<S> {
    type Item = S::Item;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        std::pin::Pin::new(inner).poll_next(cx)
    }
}

/// The HTTPS client, once the configured CAs are known (Mozilla's
/// roots alone until then).
static HTTPS: std::sync::RwLock<Option<husk_registry::http::HttpClient>> =
    std::sync::RwLock::new(None);

/// Trusts these CAs (PEM files and PEM text) besides Mozilla's roots for
/// every `https://` request from now on.
pub fn configure_tls(ca_files: &[String], ca_pems: &[String]) -> Result<(), String> {
    let tls = husk_registry::http::tls_config(ca_files, ca_pems).map_err(|e| e.to_string())?;
    *HTTPS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        Some(husk_registry::http::HttpClient::new(tls));
    Ok(())
}

/// The agent's HTTP(S) client, with the configured CAs: for what needs
/// more than one plain request (the update repository, through tough).
pub fn shared() -> io::Result<husk_registry::http::HttpClient> {
    let mut guard = HTTPS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = guard.as_ref() {
        return Ok(client.clone());
    }
    let tls = husk_registry::http::tls_config(&[], &[]).map_err(io::Error::other)?;
    let client = husk_registry::http::HttpClient::new(tls);
    *guard = Some(client.clone());
    Ok(client)
}

/// GETs `url` (http or https), from byte `from` on when it is not 0. The
/// timeout bounds connecting and the response head, not the body.
pub async fn get(url: &Url, from: u64, timeout: Duration) -> io::Result<Response> {
    match url.scheme() {
        "http" => {}
        "https" => return get_https(url, from, timeout).await,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{url}: only http://, https:// and file:// are supported"),
            ));
        }
    }
    let host = url
        .host_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: no host")))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let address = format!("{host}:{port}");
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let range = format!("bytes={from}-");
    let headers: &[(&str, &str)] = if from > 0 {
        &[("range", range.as_str())]
    } else {
        &[]
    };
    request(&address, "GET", &path, headers, timeout).await
}

async fn get_https(url: &Url, from: u64, timeout: Duration) -> io::Result<Response> {
    let client = shared()?;
    let mut headers = Vec::new();
    if from > 0 {
        let range = hyper::header::HeaderValue::from_str(&format!("bytes={from}-"))
            .map_err(io::Error::other)?;
        headers.push((hyper::header::RANGE, range));
    }
    let response = tokio::time::timeout(timeout, client.get(url, &headers, false))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{url}: no answer")))?
        .map_err(io::Error::other)?;
    Ok(Response {
        status: response.status,
        body: response.into_body(),
    })
}

/// One request without a body to `address` (`host:port`). The timeout
/// bounds connecting and the response head, not the body.
pub async fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<Response> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(address).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(io::Error::other)?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, address);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(io::Error::other)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        Ok(Response {
            status: response.status().as_u16(),
            body: response.into_body(),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{address}: no answer")))?
}
