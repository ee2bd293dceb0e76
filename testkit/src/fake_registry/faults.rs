//! The misbehaviours the fake registry can be told to show, per digest,
//! and how a faulty body goes out on the socket.

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use super::http::Response;

/// A misbehaviour, set on a digest with
/// [`FakeRegistry::fault`](super::FakeRegistry::fault): it applies to the requests for the blob,
/// or the manifest, of that digest (a manifest asked for by tag included).
///
/// `Status` and `Redirect` apply to GET and HEAD; the others are about
/// bodies and apply to GET only (a HEAD passes them by, unconsumed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `code` (with an OCI error body, code `UNKNOWN`) to the next
    /// `times` requests, then normally.
    Status { code: u16, times: usize },
    /// For the next `times` requests: the head with the full
    /// Content-Length, then only `bytes` of the body, then the connection
    /// closed. What follows (a `Range` request, to resume) is served right.
    DropAfter { bytes: usize, times: usize },
    /// The head and `after_bytes` of the body, then nothing more, the
    /// connection held open until the registry is dropped.
    Stall { after_bytes: usize },
    /// A body of the right length but wrong bytes (each one inverted);
    /// the headers (Docker-Content-Digest) still those of the real one.
    WrongBytes,
    /// A 307 to `http://HOST/_redirected/<digest>` on this registry,
    /// which serves the blob (or manifest) with no authentication and the
    /// digest's other faults (not this one). The log says whether the
    /// client sent its Authorization there.
    Redirect,
    /// The body at about `bytes_per_sec` (in 50 ms slices).
    Slow { bytes_per_sec: usize },
}

impl Fault {
    fn times(&self) -> Option<usize> {
        match *self {
            Fault::Status { times, .. } | Fault::DropAfter { times, .. } => Some(times),
            _ => None,
        }
    }
}

/// A fault and the requests it has left (`None`: until cleared).
#[derive(Debug)]
struct Armed {
    fault: Fault,
    remaining: Option<usize>,
}

/// The faults set, per digest, in the order they were set.
#[derive(Debug, Default)]
pub(super) struct Faults {
    by_digest: HashMap<String, Vec<Armed>>,
}

impl Faults {
    /// Adds `fault` behind those `digest` has; `times` overrides its own
    /// count (or makes a lasting one count down).
    pub fn add(&mut self, digest: &str, fault: Fault, times: Option<usize>) {
        let remaining = times.or(fault.times());
        if remaining == Some(0) {
            return;
        }
        let armed = Armed { fault, remaining };
        self.by_digest
            .entry(digest.to_string())
            .or_default()
            .push(armed);
    }

    pub fn clear(&mut self, digest: &str) {
        self.by_digest.remove(digest);
    }

    pub fn clear_all(&mut self) {
        self.by_digest.clear();
    }

    /// The fault a request for `digest` meets (the first set that applies
    /// to it), counted down. `redirected`: on the `/_redirected/` path,
    /// where a `Redirect` does not apply; `body`: a GET.
    pub fn take(&mut self, digest: &str, redirected: bool, body: bool) -> Option<Fault> {
        let list = self.by_digest.get_mut(digest)?;
        let index = list.iter().position(|armed| match armed.fault {
            Fault::Status { .. } => true,
            Fault::Redirect => !redirected,
            _ => body,
        })?;
        let fault = list[index].fault.clone();
        if let Some(remaining) = &mut list[index].remaining {
            *remaining -= 1;
            if *remaining == 0 {
                list.remove(index);
            }
        }
        Some(fault)
    }
}

/// How a response's body goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    Full,
    /// This many bytes, then the connection closed.
    DropAfter(usize),
    /// This many bytes, then silence until the registry stops.
    Stall(usize),
    /// At this many bytes a second.
    Slow(usize),
}

impl Delivery {
    pub fn of(fault: Option<&Fault>) -> Self {
        match fault {
            Some(&Fault::DropAfter { bytes, .. }) => Delivery::DropAfter(bytes),
            Some(&Fault::Stall { after_bytes }) => Delivery::Stall(after_bytes),
            Some(&Fault::Slow { bytes_per_sec }) => Delivery::Slow(bytes_per_sec),
            _ => Delivery::Full,
        }
    }
}

const TICK: Duration = Duration::from_millis(50);

/// Writes `response` the way its delivery says; `Ok(true)` when the
/// connection can take another request.
pub(super) fn send(
    stream: &mut TcpStream,
    response: &Response,
    stop: &AtomicBool,
) -> io::Result<bool> {
    stream.write_all(&response.head())?;
    let body: &[u8] = if response.head_only {
        &[]
    } else {
        &response.body
    };
    let delivery = if response.head_only {
        Delivery::Full
    } else {
        response.delivery
    };
    match delivery {
        Delivery::Full => stream.write_all(body)?,
        Delivery::DropAfter(bytes) => {
            stream.write_all(&body[..bytes.min(body.len())])?;
            stream.flush()?;
            let _ = stream.shutdown(Shutdown::Write);
            return Ok(false);
        }
        Delivery::Stall(bytes) => {
            stream.write_all(&body[..bytes.min(body.len())])?;
            stream.flush()?;
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(TICK);
            }
            return Ok(false);
        }
        Delivery::Slow(bytes_per_sec) => {
            let slice = (bytes_per_sec / 20).max(1);
            for chunk in body.chunks(slice) {
                if stop.load(Ordering::SeqCst) {
                    return Ok(false);
                }
                stream.write_all(chunk)?;
                stream.flush()?;
                thread::sleep(TICK);
            }
        }
    }
    stream.flush()?;
    if response.close {
        let _ = stream.shutdown(Shutdown::Write);
        return Ok(false);
    }
    Ok(true)
}
