//! What can go wrong, each error naming the server it came from.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::duration::SignedDuration;

#[derive(Debug, thiserror::Error)]
pub enum NtpError {
    #[error("no NTP server to ask")]
    NoServers,
    #[error("NTP server {server}: {op}: {source}")]
    Io {
        server: SocketAddr,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Nothing acceptable came back in time. What did come and was
    /// ignored (anyone on the path can send it) is listed: a server
    /// answering from the wrong port, or a spoofer, shows up here.
    #[error(
        "NTP server {server}: no valid reply within {timeout:?}{}",
        ignored_list(ignored)
    )]
    Timeout {
        server: SocketAddr,
        timeout: Duration,
        ignored: Vec<Problem>,
    },
    /// The server asked not to be asked (stratum 0). RFC 5905 §7.4:
    /// `DENY` and `RSTR` mean never again, `RATE` means less often.
    #[error("NTP server {server}: kiss-o'-death {code:?}")]
    KissOfDeath { server: SocketAddr, code: String },
    /// The server's answer, but not one to set a clock by.
    #[error("NTP server {server}: {problem}")]
    Rejected {
        server: SocketAddr,
        #[source]
        problem: Problem,
    },
    #[error("no NTP server gave a usable time: {}", join(errors))]
    AllFailed { errors: Vec<NtpError> },
    #[error("{op} the clock by {offset}: {source}")]
    Clock {
        op: &'static str,
        offset: SignedDuration,
        #[source]
        source: io::Error,
    },
}

/// What was wrong with a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    // Not the server's answer, so not taken as one (an off-path attacker
    // can send these to anyone): ignored while waiting for the real reply.
    #[error("a datagram from {0}, not from the server")]
    ForeignSource(SocketAddr),
    #[error("a {0}-byte datagram, shorter than an NTP header")]
    Short(usize),
    #[error("origin timestamp {got:#018x} is not the {sent:#018x} sent (a stale or spoofed reply)")]
    OriginMismatch { sent: u64, got: u64 },
    // The server's answer (it echoed our nonce), and a bad one.
    #[error("mode {0}, not 4 (server)")]
    Mode(u8),
    #[error("version {0}, not 3 or 4")]
    Version(u8),
    #[error("stratum {0}: the server is not synchronised")]
    Stratum(u8),
    #[error("leap indicator 3: the server's clock is not synchronised")]
    Unsynchronised,
    #[error("its {0} timestamp is zero")]
    ZeroTimestamp(&'static str),
    #[error("root delay {0:?}, more than 1 s")]
    RootDelay(Duration),
    #[error("root dispersion {0:?}, more than 16 s")]
    RootDispersion(Duration),
    #[error("negative round-trip delay {0} (the server took longer than the round trip)")]
    NegativeDelay(SignedDuration),
}

impl Problem {
    /// Whether the datagram is ignored (it may not be the server's)
    /// rather than the server's answer rejected.
    pub fn is_ignored(&self) -> bool {
        matches!(
            self,
            Self::ForeignSource(_) | Self::Short(_) | Self::OriginMismatch { .. }
        )
    }
}

fn ignored_list(ignored: &[Problem]) -> String {
    if ignored.is_empty() {
        return String::new();
    }
    let list: Vec<String> = ignored.iter().map(ToString::to_string).collect();
    format!(" (ignored: {})", list.join("; "))
}

fn join(errors: &[NtpError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    list.join("; ")
}
