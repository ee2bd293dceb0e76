//! tough's transport over [`crate::http_client`] (http://, https://) and the file
//! system (file://). TUF authenticates what comes through it.

use std::time::Duration;

use futures_util::StreamExt;
use tough::{FilesystemTransport, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

/// Connecting and the response head; metadata files are small.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct RepoTransport;

#[tough::async_trait]
impl Transport for RepoTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        match url.scheme() {
            "file" => FilesystemTransport.fetch(url).await,
            "http" | "https" => {
                let response = crate::http_client::get(&url, 0, TIMEOUT)
                    .await
                    .map_err(|e| {
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
                let error_url = url.clone();
                let stream = response.into_stream().map(move |chunk| {
                    chunk.map_err(|e| {
                        TransportError::new_with_cause(TransportErrorKind::Other, &error_url, e)
                    })
                });
                Ok(Box::pin(stream))
            }
            _ => Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                &url,
            )),
        }
    }
}
