//! The HTTP client: HTTP/1.1 over rustls (Mozilla's roots, plus the
//! CAs the configuration adds), pooled connections, redirects followed
//! the way registries need them (a blob is usually a 307 to a CDN), and
//! deadlines: one for the response head, one for each chunk of a body,
//! so a peer that stalls is noticed. Plain HTTP is only for the hosts
//! a caller says may have it. The update agent's repository and the
//! registry client share it.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, LOCATION};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;

/// How long a request may wait for the response head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a body may go without a byte before it counts as stalled.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("{url}: {}", error_chain(.source))]
    Transport {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url}: no response within {}s", .after.as_secs())]
    Timeout { url: String, after: Duration },
    #[error("{url}: reading the body: {reason}")]
    Body { url: String, reason: String },
    #[error("CA file {path}: {reason}")]
    Ca { path: String, reason: String },
}

/// An error and its causes on one line, each said once: the outer
/// message often does not say why (hyper's "client error (Connect)":
/// a certificate, a refused port; tough's: "signature threshold not met",
/// "expired", "version rollback").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

impl HttpError {
    /// Whether another try (or another mirror) might do better: the
    /// network, not the request, failed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Refused { .. } | Self::Ca { .. })
    }
}

/// The TLS settings: Mozilla's roots and these CAs (PEM).
pub fn tls_config(
    ca_files: &[String],
    ca_pems: &[String],
) -> Result<rustls::ClientConfig, HttpError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut add = |source: &str, pem: &[u8]| -> Result<(), HttpError> {
        let bad = |reason: String| HttpError::Ca {
            path: source.into(),
            reason,
        };
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(bad("no PEM certificate in it".into()));
        }
        Ok(())
    };
    for path in ca_files {
        let pem = std::fs::read(path).map_err(|e| HttpError::Ca {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        add(path, &pem)?;
    }
    for (i, pem) in ca_pems.iter().enumerate() {
        add(&format!("ca_pems[{i}]"), pem.as_bytes())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Ca {
            path: "(TLS versions)".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A pooled client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    head_timeout: Duration,
    stall_timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

/// A response: its status and headers, the URL that answered (after
/// redirects), and the body, read chunk by chunk.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub url: Url,
    body: Incoming,
    stall_timeout: Duration,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next chunk of the body (`None` at its end); a peer silent for
    /// longer than the stall deadline is an error.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            let frame = tokio::time::timeout(self.stall_timeout, self.body.frame())
                .await
                .map_err(|_| HttpError::Body {
                    url: self.url.to_string(),
                    reason: format!("stalled: no data for {}s", self.stall_timeout.as_secs()),
                })?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(HttpError::Body {
                        url: self.url.to_string(),
                        reason: e.to_string(),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The body as hyper has it, for a caller that streams it itself
    /// (no stall deadline then).
    pub fn into_body(self) -> Incoming {
        self.body
    }

    /// The whole body, refused past `limit` bytes.
    pub async fn bytes(self, limit: usize) -> Result<Bytes, HttpError> {
        let url = self.url.to_string();
        let read = Limited::new(self.body, limit).collect();
        let collected = tokio::time::timeout(self.stall_timeout, read)
            .await
            .map_err(|_| HttpError::Body {
                url: url.clone(),
                reason: format!("not complete within {}s", self.stall_timeout.as_secs()),
            })?
            .map_err(|e| HttpError::Body {
                url,
                reason: if e.is::<http_body_util::LengthLimitError>() {
                    format!("larger than {limit} bytes")
                } else {
                    e.to_string()
                },
            })?;
        Ok(collected.to_bytes())
    }
}

impl HttpClient {
    pub fn new(tls: rustls::ClientConfig) -> Self {
        Self::with_timeouts(tls, HEAD_TIMEOUT, STALL_TIMEOUT)
    }

    pub fn with_timeouts(tls: rustls::ClientConfig, head: Duration, stall: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(head));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            head_timeout: head,
            stall_timeout: stall,
        }
    }

    /// GETs `url`, following redirects. `plain_http` says whether
    /// `http://` may be used (the first URL's and any redirect's). An
    /// `Authorization` header is not sent to a host other than the
    /// first's.
    pub async fn get(
        &self,
        url: &Url,
        headers: &[(HeaderName, HeaderValue)],
        plain_http: bool,
    ) -> Result<Response, HttpError> {
        let mut url = url.clone();
        let origin = (
            url.host_str().map(str::to_owned),
            url.port_or_known_default(),
        );
        for _ in 0..=MAX_REDIRECTS {
            let refused = |reason: String| HttpError::Refused {
                url: url.to_string(),
                reason,
            };
            match url.scheme() {
                "https" => {}
                "http" if plain_http => {}
                "http" => {
                    return Err(refused(
                        "plain HTTP is refused: list the registry as insecure to allow it".into(),
                    ));
                }
                other => return Err(refused(format!("unsupported scheme `{other}`"))),
            }
            let same_origin = (
                url.host_str().map(str::to_owned),
                url.port_or_known_default(),
            ) == origin;
            let mut request = hyper::Request::get(url.as_str());
            for (name, value) in headers {
                if *name == AUTHORIZATION && !same_origin {
                    continue;
                }
                request = request.header(name, value);
            }
            let request = request
                .body(Empty::new())
                .map_err(|e| refused(e.to_string()))?;
            let response = tokio::time::timeout(self.head_timeout, self.client.request(request))
                .await
                .map_err(|_| HttpError::Timeout {
                    url: url.to_string(),
                    after: self.head_timeout,
                })?
                .map_err(|source| HttpError::Transport {
                    url: url.to_string(),
                    source,
                })?;
            let status = response.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| refused(format!("{status} without a Location")))?;
                url = url
                    .join(location)
                    .map_err(|e| refused(format!("redirect to `{location}`: {e}")))?;
                continue;
            }
            let (parts, body) = response.into_parts();
            return Ok(Response {
                status,
                headers: parts.headers,
                url,
                body,
                stall_timeout: self.stall_timeout,
            });
        }
        Err(HttpError::Refused {
            url: url.to_string(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}
