//! Connections the agent takes over (`101 Switching Protocols`,
//! `Upgrade: tcp`): a container's attach, as Docker's, and an exec with
//! a terminal or stdin. Over the unix socket and over the remote API's
//! TLS alike.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;

use super::{Client, ClientError, Method, Target};

/// Docker's default detach keys: ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// The upgraded connection: tokio's `AsyncRead` and `AsyncWrite`; a
/// `shutdown` is a half-close (the other side reads EOF and can still
/// answer).
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

impl Client {
    /// `POST path` asking for the connection (`Upgrade: tcp`): the
    /// stream once the agent answered 101. Any other answer is
    /// [`ClientError::Status`].
    pub async fn upgrade(&self, path: &str) -> Result<Upgraded, ClientError> {
        self.upgrade_with(path, None)
            .await
            .map(|(_, stream)| stream)
    }

    /// [`Client::upgrade`] with a JSON body: the 101's headers (an
    /// exec's id) and the stream.
    pub async fn upgrade_with(
        &self,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(hyper::HeaderMap, Upgraded), ClientError> {
        let mut request = hyper::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(hyper::header::CONNECTION, "Upgrade")
            .header(hyper::header::UPGRADE, "tcp");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default()));
        match &self.target {
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
                    .body(body)?;
                upgrade(stream, request).await
            }
            Target::Tls(remote) => {
                let stream = remote.connect().await?;
                let request = request
                    .header(hyper::header::HOST, remote.address.as_str())
                    .body(body)?;
                upgrade(stream, request).await.map_err(|e| match e {
                    ClientError::Http(e) => remote.refused(e),
                    e => e,
                })
            }
        }
    }
}

async fn upgrade<S>(
    stream: S,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(hyper::HeaderMap, Upgraded), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Driven until the upgrade hands the socket over.
    tokio::spawn(connection.with_upgrades());
    let response = sender.send_request(request).await?;
    let status = response.status();
    if status != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let body = response.into_body().collect().await?.to_bytes();
        return Err(ClientError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let headers = response.headers().clone();
    Ok((headers, TokioIo::new(hyper::upgrade::on(response).await?)))
}

/// Docker's detach key list: `ctrl-p,ctrl-q`, `ctrl-@` … `ctrl-_`, or
/// single characters; empty: none.
pub fn parse_detach_keys(text: &str) -> Result<Vec<u8>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|key| {
            let lower = key.to_ascii_lowercase();
            if let Some(c) = lower.strip_prefix("ctrl-") {
                match c.as_bytes() {
                    [c @ b'a'..=b'z'] => Ok(c - b'a' + 1),
                    [c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => Ok(c & 0x1f),
                    _ => Err(format!("detach key `{key}`: expected ctrl-a … ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^ or ctrl-_")),
                }
            } else if key.len() == 1 {
                Ok(key.as_bytes()[0])
            } else {
                Err(format!(
                    "detach key `{key}`: expected one character or ctrl-<key>"
                ))
            }
        })
        .collect()
}

/// Finds the detach keys in what a client types, holding back a partial
/// match until the next byte tells.
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, matched: 0 }
    }

    /// Appends to `out` what goes on to the container; true once the
    /// whole sequence came (what follows it is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &byte in input {
            if self.keys.is_empty() {
                out.push(byte);
                continue;
            }
            if byte != self.keys[self.matched] {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
            if byte == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
            } else {
                out.push(byte);
            }
        }
        false
    }

    /// A partial match held back, at the end of the input.
    pub fn release(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.keys[..self.matched]);
        self.matched = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_dockers() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [0x10, 0x11]);
        assert_eq!(
            parse_detach_keys("ctrl-@,x,ctrl-_").unwrap(),
            [0, b'x', 0x1f]
        );
        assert_eq!(parse_detach_keys("").unwrap(), Vec::<u8>::new());
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
    }

    #[test]
    fn the_scanner_forwards_everything_but_the_sequence() {
        let mut scanner = DetachScanner::new(vec![0x10, 0x11]);
        let mut out = Vec::new();
        // A ctrl-p alone is held, then sent with what follows.
        assert!(!scanner.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        assert!(!scanner.feed(b"c\x10\x10", &mut out));
        assert_eq!(out, b"ab\x10c\x10");
        assert!(scanner.feed(b"\x11after", &mut out));
        assert_eq!(out, b"ab\x10c\x10");
        let mut scanner = DetachScanner::new(vec![0x10, 0x11]);
        let mut out = Vec::new();
        assert!(!scanner.feed(b"x\x10", &mut out));
        scanner.release(&mut out);
        assert_eq!(out, b"x\x10");
        let mut none = DetachScanner::new(Vec::new());
        let mut out = Vec::new();
        assert!(!none.feed(b"\x10\x11", &mut out));
        assert_eq!(out, b"\x10\x11");
    }
}
