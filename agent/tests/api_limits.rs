//! What one client may hold of the API: a deadline for each request's
//! headers (agent.toml `[api] header_timeout_secs`), over the whole
//! header and again on a kept-alive connection, and a cap on connections
//! (`max_connections`), with the agent serving everyone else meanwhile.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::{Agent, eventually, huskctl_bin};

const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: husk\r\n\r\n";

/// Far past every deadline these tests set: a connection still open then
/// was never going to be closed.
const PATIENCE: Duration = Duration::from_secs(20);

/// An agent on `dir` with this agent.toml.
fn agent(dir: &Path, agent_toml: &str) -> Agent {
    huskctl_bin(); // built before any deadline runs
    let config = dir.join("agent.toml");
    std::fs::write(&config, agent_toml).unwrap();
    let store = dir.join("store");
    Agent::start(
        dir,
        &[
            "--root",
            store.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    )
}

fn connect(agent: &Agent) -> UnixStream {
    let stream = UnixStream::connect(&agent.socket).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// What the agent did with a connection, waiting up to [`PATIENCE`].
#[derive(Debug, PartialEq)]
enum Fate {
    /// Closed (end of file or reset), after sending these bytes.
    Closed(String),
    /// Still open after sending these.
    Open(String),
}

fn fate(stream: &mut UnixStream) -> Fate {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            // Closed by the agent with our bytes unread.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Fate::Open(String::from_utf8_lossy(&received).into_owned());
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
    Fate::Closed(String::from_utf8_lossy(&received).into_owned())
}

#[test]
fn a_stalled_request_line_is_closed_at_the_deadline_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), "[api]\nheader_timeout_secs = 1\n");
    let mut stalled = connect(&agent);
    stalled.write_all(b"GET /v1/hea").unwrap();
    assert!(agent.huskctl_ok(&["health"]).contains("ok"));
    assert!(
        matches!(fate(&mut stalled), Fate::Closed(ref sent) if !sent.contains("200 OK")),
        "the stalled connection is closed, unanswered"
    );
    // And the agent still serves.
    assert!(agent.huskctl_ok(&["health"]).contains("ok"));
    agent.stop();
}

#[test]
fn a_kept_alive_connection_has_the_deadline_for_its_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), "[api]\nheader_timeout_secs = 1\n");
    let mut client = connect(&agent);
    client.write_all(HEALTH).unwrap();
    match fate(&mut client) {
        // One answer, and no second request: closed.
        Fate::Closed(sent) => {
            assert!(sent.starts_with("HTTP/1.1 200 OK"), "{sent}");
            assert_eq!(sent.matches("HTTP/1.1").count(), 1, "{sent}");
        }
        open => panic!("kept open with no request: {open:?}"),
    }
    agent.stop();
}

#[test]
fn headers_trickled_a_byte_at_a_time_are_cut_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), "[api]\nheader_timeout_secs = 1\n");
    let mut client = connect(&agent);
    // 10 s of headers at a byte per 100 ms: every byte comes well
    // within the deadline, the whole header far past it.
    let request = format!(
        "GET /v1/health HTTP/1.1\r\nHost: husk\r\nX-Trickle: {}\r\n\r\n",
        "a".repeat(50)
    );
    assert!(request.len() >= 100);
    let mut cut_at = None;
    for (at, byte) in request.bytes().enumerate() {
        if let Err(e) = client.write_all(&[byte]) {
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{e}"
            );
            cut_at = Some(at);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cut_at = cut_at.unwrap_or_else(|| {
        panic!(
            "the whole trickled request got through: {:?}",
            fate(&mut client)
        )
    });
    assert!(cut_at < request.len());
    assert!(
        matches!(fate(&mut client), Fate::Closed(ref sent) if sent.is_empty()),
        "cut unanswered"
    );
    agent.stop();
}

#[test]
fn connections_over_the_cap_are_closed_until_idle_ones_time_out() {
    let dir = tempfile::tempdir().unwrap();
    // The idle connections must outlive the refusal: 3 s is ample.
    let agent = agent(
        dir.path(),
        "[api]\nmax_connections = 3\nheader_timeout_secs = 3\n",
    );
    let mut idle: Vec<UnixStream> = (0..3).map(|_| connect(&agent)).collect();
    // The kernel queues connections in order and the agent accepts them
    // in order: this one comes after the three.
    let mut extra = connect(&agent);
    // Refused already (a broken pipe), or right after.
    let _ = extra.write_all(HEALTH);
    match fate(&mut extra) {
        Fate::Closed(sent) => assert!(sent.is_empty(), "answered over the cap: {sent}"),
        open => panic!("a connection over the cap was kept: {open:?}"),
    }
    // The deadline frees the slots the idle connections held...
    for stream in &mut idle {
        assert_eq!(fate(stream), Fate::Closed(String::new()));
    }
    // ...and a client is served again (the agent may still be closing
    // the last of them when the reads see their end).
    eventually(Duration::from_secs(10), "a served health request", || {
        let out = agent.huskctl(&["health"]);
        out.status.success().then_some(())
    });
    let log = agent.stop();
    assert!(log.contains("[api] max_connections"), "{log}");
    assert!(log.contains("accepting connections again"), "{log}");
}

#[test]
fn the_deadline_is_the_headers_not_a_slow_body() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path(), "[api]\nheader_timeout_secs = 1\n");
    let mut client = connect(&agent);
    // 2 s of body at a byte per 100 ms, read whole by the JSON extractor
    // before it answers.
    let body = format!("{{\"bogus\": \"{}\"}}", "a".repeat(8));
    assert!(body.len() >= 20);
    let head = format!(
        "POST /v1/containers HTTP/1.1\r\nHost: husk\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).unwrap();
    for byte in body.bytes() {
        client
            .write_all(&[byte])
            .expect("the body was cut short: the deadline is for headers only");
        std::thread::sleep(Duration::from_millis(100));
    }
    match fate(&mut client) {
        // The answer to the whole body: its unknown field named.
        Fate::Closed(sent) => {
            assert!(sent.starts_with("HTTP/1.1 400"), "{sent}");
            assert!(sent.contains("unknown field `bogus`"), "{sent}");
        }
        open => panic!("{open:?}"),
    }
    agent.stop();
}
