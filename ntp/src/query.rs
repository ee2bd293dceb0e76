//! One exchange with one server (RFC 5905 client mode, RFC 4330 SNTP):
//! a request, its reply checked as a client must check it, and the
//! offset and delay it gives.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::duration::SignedDuration;
use crate::error::{NtpError, Problem};
use crate::packet::{self, Packet};
use crate::sys;
use crate::timestamp::{NtpTimestamp, unix_nanos};

/// Root delay above this is not a server to trust (RFC 5905's MAXDIST
/// is 1.5 s for the whole root distance).
pub const MAX_ROOT_DELAY: Duration = Duration::from_secs(1);
/// Root dispersion above this is MAXDISP (RFC 5905 §7.3): unknown time.
pub const MAX_ROOT_DISPERSION: Duration = Duration::from_secs(16);
/// How many ignored datagrams a timeout error lists (a flood must not
/// grow it without bound).
const MAX_IGNORED: usize = 8;

/// What one exchange measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub server: SocketAddr,
    /// How far the server's clock is ahead of ours: add it to ours.
    pub offset: SignedDuration,
    /// The round trip, less the time the server held the request.
    pub delay: Duration,
    pub stratum: u8,
    pub leap: u8,
    pub reference_id: [u8; 4],
    pub root_delay: Duration,
    pub root_dispersion: Duration,
}

impl Sample {
    /// The bound on this sample's error against the primary reference
    /// (RFC 5905's root distance, without dispersion growth): what
    /// choosing among servers compares.
    pub fn root_distance(&self) -> Duration {
        (self.root_delay + self.delay) / 2 + self.root_dispersion
    }
}

/// One exchange with `server`: a request whose transmit timestamp is a
/// random nonce, then the first reply that echoes it, checked. Datagrams
/// that do not echo it, or come from elsewhere, are ignored (anyone can
/// send them) until `timeout`; a reply that echoes it but is bad fails
/// the query at once.
pub async fn query(server: SocketAddr, timeout: Duration) -> Result<Sample, NtpError> {
    let deadline = Instant::now() + timeout;
    let io = |op| move |source| NtpError::Io { server, op, source };
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(io("binding a socket"))?;
    let nonce = NtpTimestamp(sys::random_u64().map_err(io("drawing a nonce"))?);
    let request = Packet::request(nonce).encode();

    // T1 on the wall clock; T4 as T1 plus the monotonic time elapsed, so
    // that a step of the clock by someone else mid-exchange cannot show
    // up as delay (both clocks are slewed alike).
    let t1 = SystemTime::now();
    let sent = Instant::now();
    socket
        .send_to(&request, server)
        .await
        .map_err(io("sending the request"))?;

    let mut buf = [0u8; 1024];
    let mut ignored = Vec::new();
    loop {
        let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        else {
            return Err(NtpError::Timeout {
                server,
                timeout,
                ignored,
            });
        };
        let (len, from) = received.map_err(io("receiving the reply"))?;
        let t4 = t1 + sent.elapsed();
        match check_reply(server, nonce, &buf[..len], from, t1, t4) {
            Ok(sample) => {
                log::debug!(
                    "NTP server {server}: offset {}, delay {:?}, stratum {}",
                    sample.offset,
                    sample.delay,
                    sample.stratum
                );
                return Ok(sample);
            }
            Err(NtpError::Rejected { problem, .. }) if problem.is_ignored() => {
                log::debug!("NTP server {server}: ignored {problem}");
                if ignored.len() < MAX_IGNORED {
                    ignored.push(problem);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The checks of one datagram, in the order that matters: first whether
/// it is the reply to our request at all (source, length, our nonce
/// echoed), then whether the server's answer is one to trust.
pub fn check_reply(
    server: SocketAddr,
    nonce: NtpTimestamp,
    datagram: &[u8],
    from: SocketAddr,
    t1: SystemTime,
    t4: SystemTime,
) -> Result<Sample, NtpError> {
    let reject = |problem| NtpError::Rejected { server, problem };
    // Address and port, not the whole `SocketAddr`: an IPv6 source comes
    // back with whatever flow label the kernel saw.
    if from.ip() != server.ip() || from.port() != server.port() {
        return Err(reject(Problem::ForeignSource(from)));
    }
    let reply = Packet::decode(datagram).ok_or(reject(Problem::Short(datagram.len())))?;
    if reply.origin != nonce {
        return Err(reject(Problem::OriginMismatch {
            sent: nonce.0,
            got: reply.origin.0,
        }));
    }
    if reply.mode != packet::MODE_SERVER {
        return Err(reject(Problem::Mode(reply.mode)));
    }
    if !(3..=4).contains(&reply.version) {
        return Err(reject(Problem::Version(reply.version)));
    }
    // Before the leap indicator: a kiss-o'-death carries leap 3 too, and
    // its code is what the operator needs to see.
    if reply.stratum == 0 {
        return Err(NtpError::KissOfDeath {
            server,
            code: packet::kiss_code(reply.reference_id),
        });
    }
    if reply.stratum > 15 {
        return Err(reject(Problem::Stratum(reply.stratum)));
    }
    if reply.leap == packet::LEAP_UNSYNCHRONISED {
        return Err(reject(Problem::Unsynchronised));
    }
    if reply.receive == NtpTimestamp::ZERO {
        return Err(reject(Problem::ZeroTimestamp("receive")));
    }
    if reply.transmit == NtpTimestamp::ZERO {
        return Err(reject(Problem::ZeroTimestamp("transmit")));
    }
    let root_delay = packet::short_to_duration(reply.root_delay);
    if root_delay > MAX_ROOT_DELAY {
        return Err(reject(Problem::RootDelay(root_delay)));
    }
    let root_dispersion = packet::short_to_duration(reply.root_dispersion);
    if root_dispersion > MAX_ROOT_DISPERSION {
        return Err(reject(Problem::RootDispersion(root_dispersion)));
    }

    // RFC 5905 §8. The server's timestamps are read in the era nearest
    // our clock (T1): right while the two are within 68 years.
    let t1 = unix_nanos(t1);
    let t4 = unix_nanos(t4);
    let t2 = reply.receive.to_unix_nanos(t1);
    let t3 = reply.transmit.to_unix_nanos(t1);
    let offset = ((t2 - t1) + (t3 - t4)) / 2;
    let delay = (t4 - t1) - (t3 - t2);
    if delay < 0 {
        return Err(reject(Problem::NegativeDelay(
            SignedDuration::from_nanos_i128(delay),
        )));
    }
    Ok(Sample {
        server,
        offset: SignedDuration::from_nanos_i128(offset),
        delay: Duration::from_nanos(u64::try_from(delay).unwrap_or(u64::MAX)),
        stratum: reply.stratum,
        leap: reply.leap,
        reference_id: reply.reference_id,
        root_delay,
        root_dispersion,
    })
}

#[cfg(test)]
mod tests;
