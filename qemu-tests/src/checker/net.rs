//! `net STATE HOST PORT BODY`: the first interface reached STATE
//! (`bound` by DHCP, `static`) in /run/husk/net.json, and an HTTP GET to
//! HOST:PORT through it answers BODY (the test's server on the host).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::{Outcome, say};

const STATE: &str = "/run/husk/net.json";
const DEADLINE: Duration = Duration::from_secs(40);

pub fn run(args: &[String]) -> Outcome {
    let [state, host, port, body] = args else {
        return Err("usage: net STATE HOST PORT BODY".into());
    };
    let deadline = Instant::now() + DEADLINE;
    let net: serde_json::Value = loop {
        let current = std::fs::read(STATE)
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok());
        if let Some(net) = &current
            && net["interfaces"]
                .as_object()
                .is_some_and(|i| i.values().any(|i| i["state"] == state.as_str()))
        {
            break net.clone();
        }
        if Instant::now() >= deadline {
            return Err(format!("no interface reached {state}: {current:?}"));
        }
        thread::sleep(Duration::from_millis(250));
    };
    say("net", &net.to_string());
    // Through the image's /etc/resolv.conf link to /run/husk/resolv.conf.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    say("net", &format!("resolv.conf: {}", resolv.trim()));
    let address = format!("{host}:{port}");
    let mut stream = TcpStream::connect(&address).map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("reading from {address}: {e}"))?;
    if !response.contains(body.as_str()) {
        return Err(format!("{address} answered {response:?}"));
    }
    say("net", &format!("{address} answered {body}"));
    Ok(())
}
