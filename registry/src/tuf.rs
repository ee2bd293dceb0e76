//! tough's transport for TUF repositories (the trusted tags, and the OS
//! update repository the agent follows): http:// and https:// through
//! [`HttpClient`], file:// through tough's own. TUF authenticates what
//! comes through it, so plain HTTP is fine for a repository whose URL
//! says `http://` (and only then: an https:// repository that redirects
//! to http:// is refused).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyDataStream;
use hyper::body::{Body, Bytes, Frame};
use tokio::time::{Instant, Sleep};
use tough::{FilesystemTransport, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use crate::http::{HttpClient, STALL_TIMEOUT};

#[derive(Debug, Clone)]
pub struct TufTransport {
    http: HttpClient,
}

impl TufTransport {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }
}

#[tough::async_trait]
impl Transport for TufTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        match url.scheme() {
            "file" => FilesystemTransport.fetch(url).await,
            "http" | "https" => {
                let plain_http = url.scheme() == "http";
                let response = self.http.get(&url, &[], plain_http).await.map_err(|e| {
                    TransportError::new_with_cause(TransportErrorKind::Other, &url, e)
                })?;
                match response.status {
                    200 => {}
                    // TUF looks for root N+1 until one is missing.
                    403 | 404 | 410 => {
                        return Err(TransportError::new(TransportErrorKind::FileNotFound, &url));
                    }
                    status => {
                        return Err(TransportError::new_with_cause(
                            TransportErrorKind::Other,
                            &url,
                            format!("HTTP {status}"),
                        ));
                    }
                }
                let body = StallBody::new(response.into_body(), url, STALL_TIMEOUT);
                Ok(Box::pin(BodyDataStream::new(body)))
            }
            _ => Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                &url,
            )),
        }
    }
}

/// A response body that fails when the peer sends nothing for `stall`
/// (tough bounds how much it reads, not how long it waits).
struct StallBody<B> {
    inner: B,
    url: Url,
    stall: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<B> StallBody<B> {
    fn new(inner: B, url: Url, stall: Duration) -> Self {
        Self {
            inner,
            url,
            stall,
            deadline: Box::pin(tokio::time::sleep(stall)),
        }
    }
}

impl<B> Body for StallBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.stall;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|frame| {
                    frame.map_err(|e| {
                        TransportError::new_with_cause(TransportErrorKind::Other, &this.url, e)
                    })
                }))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(TransportError::new_with_cause(
                    TransportErrorKind::Other,
                    &this.url,
                    format!("stalled: no data for {}s", this.stall.as_secs_f32()),
                )))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tough::IntoVec;

    /// A body whose peer sent one chunk, then nothing.
    struct Silent {
        sent: bool,
    }

    impl Body for Silent {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if self.sent {
                Poll::Pending
            } else {
                self.sent = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{")))))
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_body_is_an_error() {
        let url = Url::parse("https://tags.example/metadata/timestamp.json").unwrap();
        let body = StallBody::new(Silent { sent: false }, url, Duration::from_millis(50));
        let stream: TransportStream = Box::pin(BodyDataStream::new(body));
        let started = std::time::Instant::now();
        let err = stream.into_vec().await.unwrap_err();
        assert!(err.to_string().contains("stalled"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
