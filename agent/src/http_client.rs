//! A small HTTP/1.1 client over plain TCP, one connection per request:
//! for the update repository (whose contents TUF authenticates, so the
//! channel need not), resumable downloads, health checks and the EC2
//! metadata service.

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

/// GETs `url` (http only), from byte `from` on when it is not 0. The
/// timeout bounds connecting and the response head, not the body.
pub async fn get(url: &Url, from: u64, timeout: Duration) -> io::Result<Response> {
    if url.scheme() != "http" {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{url}: only http:// and file:// are supported"),
        ));
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
