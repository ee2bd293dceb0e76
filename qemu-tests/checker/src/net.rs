//! `net STATE HOST PORT BODY`: the first interface reached STATE
//! (`bound` by DHCP, `static`) in /run/husk/net.json, and an HTTP GET to
//! HOST:PORT through it answers BODY (the test's server on the host).
//!
//! `net-isolated HOST:PORT BODY PROBE...`: on a restricted slirp network
//! (an interface with a gateway, so every probe leaves the guest), the
//! forwarded server HOST:PORT answers BODY and nothing else answers:
//! each PROBE, `tcp:HOST:PORT` (a connect) or `dns:HOST:PORT` (a query
//! over UDP), must fail. The first that succeeds fails the scenario, so
//! a leak stops the probing there: the test puts the probes that stay
//! on the host's loopback first.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use super::{Outcome, say};

const STATE: &str = "/run/husk/net.json";
const DEADLINE: Duration = Duration::from_secs(40);
/// Long enough for a connection slirp lets through to the host's side
/// (slirp answers a refused one at once, with a reset).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: &[String]) -> Outcome {
    let [state, host, port, body] = args else {
        return Err("usage: net STATE HOST PORT BODY".into());
    };
    wait_for_interface(&format!("an interface {state}"), |i| {
        i["state"] == state.as_str()
    })?;
    // Through the image's /etc/resolv.conf link to /run/husk/resolv.conf.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    say("net", &format!("resolv.conf: {}", resolv.trim()));
    let address = format!("{host}:{port}");
    expect_answer("net", &address, body)
}

pub fn isolated(args: &[String]) -> Outcome {
    const NAME: &str = "net-isolated";
    let [forwarded, body, probes @ ..] = args else {
        return Err("usage: net-isolated HOST:PORT BODY PROBE...".into());
    };
    // Without a route the guest itself would refuse the probes, which
    // would prove nothing of slirp.
    wait_for_interface("an interface with a gateway", |i| i["gateway"].is_string())?;
    expect_answer(NAME, forwarded, body)?;
    for probe in probes {
        let reached = match probe.split_once(':') {
            Some(("tcp", address)) => tcp_probe(address)?,
            Some(("dns", address)) => dns_probe(address)?,
            _ => return Err(format!("{probe}: expected tcp:HOST:PORT or dns:HOST:PORT")),
        };
        if let Some(what) = reached {
            return Err(format!(
                "{probe} is reachable ({what}): the network is not restricted"
            ));
        }
    }
    say(NAME, &format!("{} probes blocked", probes.len()));
    Ok(())
}

/// Waits for /run/husk/net.json to list an interface for which
/// `wanted` holds; says the whole state.
fn wait_for_interface(what: &str, wanted: impl Fn(&serde_json::Value) -> bool) -> Outcome {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let current = std::fs::read(STATE)
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok());
        if let Some(net) = &current
            && net["interfaces"]
                .as_object()
                .is_some_and(|i| i.values().any(&wanted))
        {
            say("net", &net.to_string());
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("no {what}: {current:?}"));
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// An HTTP GET of `/` from `address` answers `body`.
fn expect_answer(scenario: &str, address: &str, body: &str) -> Outcome {
    let mut stream = TcpStream::connect(address).map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    write!(stream, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("reading from {address}: {e}"))?;
    if !response.contains(body) {
        return Err(format!("{address} answered {response:?}"));
    }
    say(scenario, &format!("{address} answered {body}"));
    Ok(())
}

/// Some(what answered) when a TCP connection to `address` is made.
fn tcp_probe(address: &str) -> Result<Option<String>, String> {
    let target: SocketAddr = address.parse().map_err(|e| format!("tcp:{address}: {e}"))?;
    match TcpStream::connect_timeout(&target, PROBE_TIMEOUT) {
        Ok(_) => Ok(Some("connected".into())),
        Err(e) => {
            say("net-isolated", &format!("tcp:{address}: blocked ({e})"));
            Ok(None)
        }
    }
}

/// Some(what answered) when a DNS query over UDP to `address` gets a
/// reply.
fn dns_probe(address: &str) -> Result<Option<String>, String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    // A query for example.com's A record, recursion desired.
    let mut query = vec![0x48, 0x75, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["example", "com"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    if let Err(e) = socket.send_to(&query, address) {
        say("net-isolated", &format!("dns:{address}: blocked ({e})"));
        return Ok(None);
    }
    let mut reply = [0u8; 512];
    match socket.recv_from(&mut reply) {
        Ok((n, from)) => Ok(Some(format!("{n} bytes from {from}"))),
        Err(e) => {
            say("net-isolated", &format!("dns:{address}: no answer ({e})"));
            Ok(None)
        }
    }
}
