//! A token server in front of a real registry: Docker's bearer-token flow for a registry that knows nothing of it.
//!
//! distribution 2.8 (Debian's docker-registry) does token auth only with
//! JWTs signed by a certificate chain it trusts; [`TokenProxy`] stands in
//! front of an anonymous one instead, on plain HTTP/1.1 on `127.0.0.1`:
//!
//! - `GET /token?service=husk-test&scope=repository:NAME:pull`: checks
//!   Basic credentials when it has some (a 401 with `WWW-Authenticate:
//!   Basic realm="husk-test"` otherwise; anonymous tokens when it has
//!   none) and answers `{"token": "…", "expires_in": 300}`, a random
//!   token that may pull the scopes' repositories (several scopes, in one
//!   parameter or several, as the fake registry takes them);
//! - `GET|HEAD /v2/…` without `Authorization: Bearer` and a token for the
//!   repository of the path: 401 with `WWW-Authenticate: Bearer
//!   realm="http://127.0.0.1:PORT/token",service="husk-test",
//!   scope="repository:NAME:pull"` (no scope for the `/v2/` ping; and
//!   `error="invalid_token"` or `error="insufficient_scope"` for a token
//!   it did not issue or one for other repositories);
//! - with one: the request forwarded to the upstream registry (plain
//!   HTTP, its own connection, `Connection: close`) without the
//!   Authorization header, and the answer streamed back as it is: status
//!   line, headers (but the hop-by-hop `Connection` and `Keep-Alive`),
//!   and the body by Content-Length, chunked (relayed chunk by chunk,
//!   trailers too) or to the upstream's end of stream (the client's
//!   connection then closed). The client's connection stays open for
//!   more requests when it can. An upstream that cannot be reached is a
//!   502.
//!
//! Pulls only: other methods are 405 (request bodies are not
//! forwarded), and `/v2/` paths other than the ping and
//! `/v2/NAME/KIND/REFERENCE` (manifests, blobs, tags/list, referrers)
//! are 404. Tokens do not expire. The log ([`TokenProxy::requests`]) is
//! the fake registry's [`RequestLog`], the `/token` requests in it too.
//! Dropping the proxy stops it: every connection (and its upstream one)
//! is shut and every thread joined.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::json;

use crate::fake_registry::RequestLog;
use crate::fake_registry::auth::{
    basic_credentials, bearer_token, pull_repositories, random_token,
};
use crate::fake_registry::http::{self, Request, Response};

/// The `service` of the challenge, which `/token` wants back.
pub const SERVICE: &str = "husk-test";

/// How long connecting to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the upstream may keep the proxy waiting on one read or
/// write (a stopping proxy also shuts the upstream connection).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest upstream response head, and chunk-size or trailer line.
const MAX_HEAD: usize = 64 * 1024;

/// Request headers not forwarded: the credentials, the hop-by-hop ones,
/// the Host (the upstream's is sent) and the framing of a body that is
/// not forwarded.
const NOT_FORWARDED: &[&str] = &[
    "authorization",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "transfer-encoding",
];

/// Response headers not relayed: the hop-by-hop ones this proxy answers
/// for itself.
const NOT_RELAYED: &[&str] = &["connection", "keep-alive", "proxy-connection"];

/// A running token proxy (see the module's doc); stopped on drop.
pub struct TokenProxy {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    user_pass: Option<(String, String)>,
    stop: AtomicBool,
    /// Token → the repositories it may pull.
    tokens: Mutex<HashMap<String, BTreeSet<String>>>,
    log: Mutex<Vec<RequestLog>>,
    connections: Mutex<Vec<Connection>>,
}

/// A client's connection: its socket, the upstream one of the request
/// being forwarded (if any), and its thread.
struct Connection {
    client: TcpStream,
    upstream: Arc<Mutex<Option<TcpStream>>>,
    thread: JoinHandle<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl TokenProxy {
    /// Listens on `127.0.0.1:0` for requests to forward to the registry
    /// on `upstream` (plain HTTP, anonymous), issuing tokens to the
    /// holders of `user_pass` (to anyone when `None`).
    pub fn start(upstream: SocketAddr, user_pass: Option<(String, String)>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            upstream,
            user_pass,
            stop: AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("token-proxy".into())
            .spawn(move || accept_loop(&listener, &accepting))?;
        Ok(TokenProxy {
            shared,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.shared.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The registry requests are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Every request so far, in order (`/token` ones included).
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Forgets every token issued, as if they had expired.
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).clear();
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Unblocks accept(), which then sees the flag.
        let _ = TcpStream::connect(self.shared.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for connection in &connections {
            let _ = connection.client.shutdown(Shutdown::Both);
            if let Some(upstream) = &*lock(&connection.upstream) {
                let _ = upstream.shutdown(Shutdown::Both);
            }
        }
        for connection in connections {
            let _ = connection.thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(client) = stream.try_clone() else {
            continue;
        };
        let upstream = Arc::new(Mutex::new(None));
        let (serving, slot) = (Arc::clone(shared), Arc::clone(&upstream));
        let thread = thread::Builder::new()
            .name("token-proxy-conn".into())
            .spawn(move || serving.serve_connection(stream, &slot));
        if let Ok(thread) = thread {
            lock(&shared.connections).push(Connection {
                client,
                upstream,
                thread,
            });
        }
    }
}

/// What the proxy does with a request.
enum Route {
    /// Answers it itself.
    Answer(Response),
    /// Forwards it upstream.
    Forward,
}

/// Writes one of the proxy's own responses; `Ok(true)` when the
/// connection can take another request.
fn send(client: &mut TcpStream, response: &Response) -> io::Result<bool> {
    client.write_all(&response.head())?;
    if !response.head_only {
        client.write_all(&response.body)?;
    }
    client.flush()?;
    if response.close {
        let _ = client.shutdown(Shutdown::Write);
        return Ok(false);
    }
    Ok(true)
}

impl Shared {
    fn serve_connection(&self, stream: TcpStream, slot: &Mutex<Option<TcpStream>>) {
        let _ = stream.set_nodelay(true);
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(read_half);
        let mut client = stream;
        while !self.stop.load(Ordering::SeqCst) {
            let request = match http::read_request(&mut reader) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    let mut response = Response::error(400, "UNSUPPORTED", &e.to_string());
                    response.close = true;
                    let _ = send(&mut client, &response);
                    break;
                }
                Err(_) => break,
            };
            lock(&self.log).push(RequestLog {
                method: request.method.clone(),
                path: request.target.clone(),
                range: request.header("range").map(str::to_string),
                authorization: request.header("authorization").map(str::to_string),
                accept: request.header("accept").map(str::to_string),
            });
            let kept = match self.route(&request) {
                Route::Answer(mut response) => {
                    response.head_only = request.method == "HEAD";
                    response.close |= !request.keep_alive;
                    send(&mut client, &response)
                }
                Route::Forward => self.forward(&request, &mut client, slot),
            };
            *lock(slot) = None;
            match kept {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
        }
        // The proxy's Drop holds a handle of this socket: closing this
        // one does not end the connection.
        let _ = client.shutdown(Shutdown::Both);
    }

    fn route(&self, request: &Request) -> Route {
        let path = request.path.as_str();
        if path == "/token" {
            return Route::Answer(self.token(request));
        }
        if path != "/v2" && !path.starts_with("/v2/") {
            let message = format!("no route for {path}");
            return Route::Answer(Response::error(404, "NOT_FOUND", &message));
        }
        if request.method != "GET" && request.method != "HEAD" {
            let message = "this proxy only forwards pulls";
            return Route::Answer(Response::error(405, "UNSUPPORTED", message));
        }
        let name = if path == "/v2" || path == "/v2/" {
            None
        } else {
            match repository_of(path) {
                Some(name) => Some(name),
                None => {
                    let message = format!("no route for {path}");
                    return Route::Answer(Response::error(404, "NOT_FOUND", &message));
                }
            }
        };
        match self.authorize(request, name) {
            Ok(()) => Route::Forward,
            Err(refusal) => Route::Answer(refusal),
        }
    }

    /// The 401 a request for repository `name` (or the ping) gets
    /// without a token for it.
    fn authorize(&self, request: &Request, name: Option<&str>) -> Result<(), Response> {
        let pulls = |repositories: &BTreeSet<String>| name.is_none_or(|n| repositories.contains(n));
        let error = match bearer_token(request.header("authorization")) {
            None => "",
            Some(token) => match lock(&self.tokens).get(token) {
                Some(repositories) if pulls(repositories) => return Ok(()),
                Some(_) => ",error=\"insufficient_scope\"",
                None => ",error=\"invalid_token\"",
            },
        };
        let mut challenge = format!(
            "Bearer realm=\"http://{}/token\",service=\"{SERVICE}\"",
            self.addr
        );
        if let Some(name) = name {
            challenge.push_str(&format!(",scope=\"repository:{name}:pull\""));
        }
        challenge.push_str(error);
        Err(
            Response::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", challenge),
        )
    }

    /// `GET /token`: a token for the repositories the scopes pull.
    fn token(&self, request: &Request) -> Response {
        if request.method != "GET" {
            return Response::error(405, "UNSUPPORTED", "GET a token");
        }
        if let Some((user, pass)) = &self.user_pass {
            match basic_credentials(request.header("authorization")) {
                Some((u, p)) if u == *user && p == *pass => {}
                _ => {
                    return Response::error(401, "UNAUTHORIZED", "bad credentials")
                        .header("WWW-Authenticate", format!("Basic realm=\"{SERVICE}\""));
                }
            }
        }
        if request.query_all("service").next() != Some(SERVICE) {
            return Response::error(400, "DENIED", &format!("service must be {SERVICE}"));
        }
        let token = random_token();
        lock(&self.tokens).insert(token.clone(), pull_repositories(request));
        Response::json(200, &json!({"token": token, "expires_in": 300}))
    }

    /// Forwards `request` upstream and relays the answer to `client`
    /// (a 502 of its own when the upstream does not answer); `Ok(true)`
    /// when the client's connection can take another request.
    fn forward(
        &self,
        request: &Request,
        client: &mut TcpStream,
        slot: &Mutex<Option<TcpStream>>,
    ) -> io::Result<bool> {
        let (mut upstream, head) = match self.ask_upstream(request, slot) {
            Ok(answer) => answer,
            Err(e) => {
                let message = format!("upstream {}: {e}", self.upstream);
                let mut response = Response::error(502, "UNAVAILABLE", &message);
                response.head_only = request.method == "HEAD";
                response.close = true;
                return send(client, &response);
            }
        };
        let body = head.body(&request.method)?;
        let close = !request.keep_alive || body == Body::UntilClose;
        let mut out = format!("{}\r\n", head.status_line);
        for (name, value) in &head.headers {
            if !NOT_RELAYED.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        client.write_all(out.as_bytes())?;
        match body {
            Body::None => {}
            Body::Length(length) => copy_exactly(&mut upstream, client, length)?,
            Body::Chunked => relay_chunked(&mut upstream, client)?,
            Body::UntilClose => {
                io::copy(&mut upstream, client)?;
            }
        }
        client.flush()?;
        if close {
            let _ = client.shutdown(Shutdown::Write);
            return Ok(false);
        }
        Ok(true)
    }

    /// Sends `request` to the upstream on a new connection (kept in
    /// `slot`, for a stopping proxy to shut); returns the connection and
    /// the head of its answer.
    fn ask_upstream(
        &self,
        request: &Request,
        slot: &Mutex<Option<TcpStream>>,
    ) -> io::Result<(BufReader<TcpStream>, UpstreamHead)> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("the proxy is stopping"));
        }
        let stream = TcpStream::connect_timeout(&self.upstream, CONNECT_TIMEOUT)?;
        stream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
        stream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        *lock(slot) = Some(stream.try_clone()?);
        // Headers the client's Connection names are hop-by-hop too.
        let connection = request.header("connection").unwrap_or("").to_lowercase();
        let listed: Vec<&str> = connection.split(',').map(str::trim).collect();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            request.method, request.target, self.upstream
        );
        for (name, value) in &request.headers {
            if !NOT_FORWARDED.contains(&name.as_str()) && !listed.contains(&name.as_str()) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("Connection: close\r\n\r\n");
        (&stream).write_all(head.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader)?;
        Ok((reader, head))
    }
}

/// The path's repository: `NAME` of `/v2/NAME/KIND/REFERENCE` (a name
/// with slashes too).
fn repository_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    let (rest, reference) = rest.rsplit_once('/')?;
    let (name, _kind) = rest.rsplit_once('/')?;
    (!name.is_empty() && !reference.is_empty()).then_some(name)
}

/// The head of the upstream's answer.
struct UpstreamHead {
    status_line: String,
    status: u16,
    /// Names as sent, values trimmed.
    headers: Vec<(String, String)>,
}

/// How the body of an upstream answer is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl UpstreamHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// RFC 9112 6.3: none for a HEAD, a 204 or a 304; chunked when the
    /// last transfer coding is; else by Content-Length, else until the
    /// upstream closes.
    fn body(&self, method: &str) -> io::Result<Body> {
        if method == "HEAD" || self.status == 204 || self.status == 304 {
            return Ok(Body::None);
        }
        if let Some(codings) = self.header("transfer-encoding") {
            let last = codings.rsplit(',').next().unwrap_or("").trim();
            return Ok(if last.eq_ignore_ascii_case("chunked") {
                Body::Chunked
            } else {
                Body::UntilClose
            });
        }
        match self.header("content-length") {
            Some(length) => length
                .parse()
                .map(Body::Length)
                .map_err(|_| invalid(format!("upstream Content-Length {length:?}"))),
            None => Ok(Body::UntilClose),
        }
    }
}

/// Reads the status line and headers of an answer, past any interim
/// (1xx) ones.
fn read_head(r: &mut impl BufRead) -> io::Result<UpstreamHead> {
    loop {
        let mut budget = MAX_HEAD;
        let status_line = http::read_line(r, &mut budget)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the upstream closed the connection without answering",
            )
        })?;
        let status = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.split(' ').nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| invalid(format!("upstream status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = http::read_line(r, &mut budget)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("upstream header {line:?}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok(UpstreamHead {
            status_line,
            status,
            headers,
        });
    }
}

/// Copies `length` bytes, failing if the stream ends first.
fn copy_exactly(from: &mut impl BufRead, to: &mut impl io::Write, length: u64) -> io::Result<()> {
    let copied = io::copy(&mut from.by_ref().take(length), to)?;
    if copied != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the upstream sent {copied} of {length} bytes"),
        ));
    }
    Ok(())
}

/// The next line of a chunked body's framing (a size line, a chunk's
/// CRLF, a trailer), without its CRLF.
fn framing_line(from: &mut impl BufRead) -> io::Result<String> {
    let mut budget = MAX_HEAD;
    http::read_line(from, &mut budget)?.ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
}

/// Relays a chunked body as it is: each chunk's size line and bytes,
/// the last chunk, the trailers and the final CRLF.
fn relay_chunked(from: &mut impl BufRead, to: &mut impl io::Write) -> io::Result<()> {
    loop {
        let line = framing_line(from)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("upstream chunk size line {line:?}")))?;
        to.write_all(format!("{line}\r\n").as_bytes())?;
        if size == 0 {
            loop {
                let trailer = framing_line(from)?;
                to.write_all(format!("{trailer}\r\n").as_bytes())?;
                if trailer.is_empty() {
                    return Ok(());
                }
            }
        }
        copy_exactly(from, to, size)?;
        let end = framing_line(from)?;
        if !end.is_empty() {
            return Err(invalid("an upstream chunk longer than its size"));
        }
        to.write_all(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::fake_registry::{Content, FakeRegistry, Layer, basic_authorization};

    /// One connection to the proxy, requests one after another on it.
    struct Client {
        reader: BufReader<TcpStream>,
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// The raw chunked framing, when the body was chunked.
        chunked: Option<Vec<u8>>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("a JSON body")
        }
    }

    impl Client {
        fn connect(proxy: &TokenProxy) -> Self {
            let stream = TcpStream::connect(proxy.addr()).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            Client {
                reader: BufReader::new(stream),
            }
        }

        fn send(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
            let mut request = format!("{method} {target} HTTP/1.1\r\nHost: proxy\r\n");
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            self.reader.get_mut().write_all(request.as_bytes()).unwrap();
            self.read_reply(method == "HEAD")
        }

        fn get(&mut self, target: &str, authorization: Option<&str>) -> Reply {
            let headers: Vec<_> = authorization
                .map(|a| ("Authorization", a))
                .into_iter()
                .collect();
            self.send("GET", target, &headers)
        }

        fn line(&mut self) -> String {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(line.ends_with("\r\n"), "{line:?}");
            line.truncate(line.len() - 2);
            line
        }

        fn read_reply(&mut self, head_only: bool) -> Reply {
            let status_line = self.line();
            let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
            let mut headers = Vec::new();
            loop {
                let line = self.line();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
            let mut reply = Reply {
                status,
                headers,
                body: Vec::new(),
                chunked: None,
            };
            if head_only {
                return reply;
            }
            if reply.header("transfer-encoding") == Some("chunked") {
                let mut raw = Vec::new();
                loop {
                    let line = self.line();
                    raw.extend_from_slice(format!("{line}\r\n").as_bytes());
                    let size = usize::from_str_radix(line.split(';').next().unwrap(), 16).unwrap();
                    if size == 0 {
                        loop {
                            let trailer = self.line();
                            raw.extend_from_slice(format!("{trailer}\r\n").as_bytes());
                            if trailer.is_empty() {
                                break;
                            }
                        }
                        break;
                    }
                    let mut chunk = vec![0; size];
                    self.reader.read_exact(&mut chunk).unwrap();
                    raw.extend_from_slice(&chunk);
                    reply.body.extend_from_slice(&chunk);
                    assert_eq!(self.line(), "");
                    raw.extend_from_slice(b"\r\n");
                }
                reply.chunked = Some(raw);
            } else if let Some(length) = reply.header("content-length") {
                let mut body = vec![0; length.parse().unwrap()];
                self.reader.read_exact(&mut body).unwrap();
                reply.body = body;
            } else {
                self.reader.read_to_end(&mut reply.body).unwrap();
            }
            reply
        }

        /// Whether the proxy has closed the connection.
        fn closed(&mut self) -> bool {
            let mut byte = [0];
            matches!(self.reader.read(&mut byte), Ok(0))
        }
    }

    const TOKEN_FOR_APP: &str = "/token?service=husk-test&scope=repository%3Ateam%2Fapp%3Apull";

    fn bearer(reply: &Reply) -> String {
        assert_eq!(reply.status, 200, "{reply:?}");
        let answer = reply.json();
        assert_eq!(answer["expires_in"], 300, "{answer}");
        format!("Bearer {}", answer["token"].as_str().expect("a token"))
    }

    fn app() -> (FakeRegistry, crate::fake_registry::Image, Vec<u8>) {
        let layer: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut content = Content::new();
        let image = content.image("team/app", "1", &[Layer::tar(layer.clone())]);
        (FakeRegistry::start(content), image, layer)
    }

    #[test]
    fn token_proxy_challenges_issues_scoped_tokens_and_forwards() {
        let (upstream, image, layer) = app();
        let user_pass = ("puller".to_string(), "s3cret".to_string());
        let proxy = TokenProxy::start(upstream.addr(), Some(user_pass)).unwrap();
        let mut client = Client::connect(&proxy);

        let ping = client.get("/v2/", None);
        assert_eq!(ping.status, 401);
        let realm = format!(
            "Bearer realm=\"http://{}/token\",service=\"husk-test\"",
            proxy.host()
        );
        assert_eq!(ping.header("WWW-Authenticate"), Some(realm.as_str()));
        let manifest = client.get("/v2/team/app/manifests/1", None);
        assert_eq!(manifest.status, 401);
        let challenge = format!("{realm},scope=\"repository:team/app:pull\"");
        assert_eq!(
            manifest.header("www-authenticate"),
            Some(challenge.as_str())
        );
        assert_eq!(manifest.json()["errors"][0]["code"], "UNAUTHORIZED");

        let anonymous = client.get(TOKEN_FOR_APP, None);
        assert_eq!(anonymous.status, 401);
        assert_eq!(
            anonymous.header("WWW-Authenticate"),
            Some("Basic realm=\"husk-test\"")
        );
        let wrong = client.get(TOKEN_FOR_APP, Some(&basic_authorization("puller", "nope")));
        assert_eq!(wrong.status, 401);
        let good = basic_authorization("puller", "s3cret");
        let other_service = client.get(
            "/token?service=x&scope=repository:team/app:pull",
            Some(&good),
        );
        assert_eq!(other_service.status, 400);
        let token = bearer(&client.get(TOKEN_FOR_APP, Some(&good)));
        let other = bearer(&client.get(
            "/token?service=husk-test&scope=repository:team/other:pull",
            Some(&good),
        ));
        assert_ne!(token, other);

        // Forwarded, on the same connection, the upstream's headers kept.
        let ping = client.get("/v2/", Some(&token));
        assert_eq!((ping.status, ping.json()), (200, serde_json::json!({})));
        let manifest = client.get("/v2/team/app/manifests/1", Some(&token));
        assert_eq!(manifest.status, 200);
        assert_eq!(crate::sha256(&manifest.body), image.manifest);
        assert_eq!(
            manifest.header("Docker-Content-Digest"),
            Some(image.manifest.as_str())
        );
        assert_eq!(
            manifest.header("Content-Type"),
            Some(crate::fake_registry::OCI_MANIFEST)
        );
        let blob = format!("/v2/team/app/blobs/{}", image.layers[0]);
        let head = client.send("HEAD", &blob, &[("Authorization", &token)]);
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(layer.len().to_string().as_str())
        );
        let ranged = client.send(
            "GET",
            &blob,
            &[("Authorization", &token), ("Range", "bytes=10-")],
        );
        assert_eq!(ranged.status, 206);
        assert_eq!(ranged.body, layer[10..]);
        let range = format!("bytes 10-{}/{}", layer.len() - 1, layer.len());
        assert_eq!(ranged.header("Content-Range"), Some(range.as_str()));
        let full = client.get(&blob, Some(&token));
        assert_eq!(full.body, layer);
        let unknown = client.get("/v2/team/app/manifests/2", Some(&token));
        assert_eq!(unknown.status, 404);
        assert_eq!(unknown.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");

        // A token for another repository, and one never issued.
        let refused = client.get("/v2/team/app/manifests/1", Some(&other));
        assert_eq!(refused.status, 401);
        let insufficient = format!("{challenge},error=\"insufficient_scope\"");
        assert_eq!(
            refused.header("WWW-Authenticate"),
            Some(insufficient.as_str())
        );
        let forged = client.get("/v2/team/app/manifests/1", Some("Bearer forged"));
        let invalid = format!("{challenge},error=\"invalid_token\"");
        assert_eq!(forged.header("WWW-Authenticate"), Some(invalid.as_str()));
        let pushed = client.send(
            "PUT",
            "/v2/team/app/manifests/1",
            &[("Authorization", &token), ("Content-Length", "0")],
        );
        assert_eq!(pushed.status, 405);
        proxy.revoke_tokens();
        assert_eq!(
            client.get("/v2/team/app/manifests/1", Some(&token)).status,
            401
        );

        // The upstream saw the forwarded requests only, without the token.
        let seen = upstream.requests();
        let paths: Vec<_> = seen
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("GET", "/v2/"),
                ("GET", "/v2/team/app/manifests/1"),
                ("HEAD", blob.as_str()),
                ("GET", blob.as_str()),
                ("GET", blob.as_str()),
                ("GET", "/v2/team/app/manifests/2"),
            ]
        );
        assert!(seen.iter().all(|r| r.authorization.is_none()), "{seen:?}");
        assert_eq!(seen[3].range.as_deref(), Some("bytes=10-"));

        let log = proxy.requests();
        assert_eq!(log.len(), 17, "{log:?}");
        let tokens: Vec<_> = log
            .iter()
            .filter(|r| r.path.starts_with("/token"))
            .collect();
        assert_eq!(tokens.len(), 5);
        assert_eq!(tokens[4].authorization.as_deref(), Some(good.as_str()));
        assert_eq!(log[7].path, "/v2/");
        assert_eq!(log[7].authorization.as_deref(), Some(token.as_str()));
    }

    #[test]
    fn token_proxy_anonymous_tokens() {
        let (upstream, image, _) = app();
        let proxy = TokenProxy::start(upstream.addr(), None).unwrap();
        let mut client = Client::connect(&proxy);
        let token = bearer(&client.get(TOKEN_FOR_APP, None));
        let manifest = client.get(
            &format!("/v2/team/app/manifests/{}", image.manifest),
            Some(&token),
        );
        assert_eq!(manifest.status, 200);
        assert_eq!(crate::sha256(&manifest.body), image.manifest);
        // Several scopes in one parameter, as some clients ask.
        let both =
            "/token?service=husk-test&scope=repository:a:pull%20repository:team/app:pull,push";
        let token = bearer(&client.get(both, None));
        assert_eq!(client.get("/v2/a/tags/list", Some(&token)).status, 404);
        assert_eq!(
            client.get("/v2/team/app/tags/list", Some(&token)).status,
            200
        );
        assert_eq!(client.get("/v2/b/tags/list", Some(&token)).status, 401);
    }

    /// An upstream that answers chunked, or to its end of stream, and
    /// records the request heads it read.
    type Heads = Arc<Mutex<Vec<Vec<(String, String)>>>>;

    fn scripted_upstream() -> (SocketAddr, Heads) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let Ok(Some(request)) = http::read_request(&mut reader) else {
                    continue;
                };
                seen.lock().unwrap().push(request.headers.clone());
                let answer: &[u8] = match request.path.as_str() {
                    "/v2/x/blobs/chunked" => {
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDocker-Content-Digest: sha256:c\r\n\
                          Connection: close\r\nTrailer: X-Check\r\n\r\n\
                          5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Check: done\r\n\r\n"
                    }
                    "/v2/x/blobs/eof" => {
                        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
                    }
                    "/v2/x/manifests/moved" => {
                        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://elsewhere/blob\r\nContent-Length: 0\r\n\r\n"
                    }
                    _ => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab",
                };
                let _ = stream.write_all(answer);
            }
        });
        (addr, heads)
    }

    #[test]
    fn token_proxy_relays_chunked_and_close_delimited_bodies() {
        let (upstream, heads) = scripted_upstream();
        let proxy = TokenProxy::start(upstream, None).unwrap();
        let mut client = Client::connect(&proxy);
        let token = bearer(&client.get("/token?service=husk-test&scope=repository:x:pull", None));
        let chunked = client.send(
            "GET",
            "/v2/x/blobs/chunked",
            &[
                ("Authorization", &token),
                ("Accept", "*/*"),
                ("Connection", "keep-alive, x-drop"),
                ("X-Drop", "1"),
            ],
        );
        assert_eq!(chunked.status, 200);
        assert_eq!(chunked.body, b"hello, world");
        assert_eq!(
            chunked.chunked.as_deref(),
            Some(&b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Check: done\r\n\r\n"[..])
        );
        assert_eq!(chunked.header("Docker-Content-Digest"), Some("sha256:c"));
        assert_eq!(chunked.header("Connection"), None, "{chunked:?}");
        let moved = client.get("/v2/x/manifests/moved", Some(&token));
        assert_eq!(
            (moved.status, moved.header("location")),
            (307, Some("http://elsewhere/blob"))
        );
        let eof = client.get("/v2/x/blobs/eof", Some(&token));
        assert_eq!((eof.status, &eof.body[..]), (200, &b"until the end"[..]));
        assert_eq!(eof.header("connection"), Some("close"));
        assert!(client.closed());

        // A body shorter than its Content-Length: the client's connection is cut.
        let mut stream = TcpStream::connect(proxy.addr()).unwrap();
        let request = format!("GET /v2/x/blobs/short HTTP/1.1\r\nAuthorization: {token}\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut short = String::new();
        stream.read_to_string(&mut short).unwrap();
        assert!(
            short.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"),
            "{short:?}"
        );
        assert!(short.ends_with("\r\n\r\nab"), "{short:?}");
        let heads = heads.lock().unwrap();
        let expected = [
            ("host".to_string(), upstream.to_string()),
            ("accept".to_string(), "*/*".to_string()),
            ("connection".to_string(), "close".to_string()),
        ];
        assert_eq!(heads[0], expected);
        assert!(
            heads
                .iter()
                .all(|h| h.iter().all(|(n, _)| n != "authorization")),
            "{heads:?}"
        );
    }

    #[test]
    fn token_proxy_answers_502_without_upstream_and_stops_on_drop() {
        let gone = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = TokenProxy::start(gone, None).unwrap();
        assert_eq!(proxy.upstream(), gone);
        let mut client = Client::connect(&proxy);
        let token = bearer(&client.get("/token?service=husk-test", None));
        let reply = client.get("/v2/", Some(&token));
        assert_eq!(reply.status, 502);
        assert_eq!(reply.json()["errors"][0]["code"], "UNAVAILABLE");
        assert!(client.closed());

        let mut idle = Client::connect(&proxy);
        assert_eq!(idle.get("/v2/", None).status, 401);
        let addr = proxy.addr();
        drop(proxy);
        assert!(idle.closed());
        assert!(TcpStream::connect(addr).is_err());
    }
}
