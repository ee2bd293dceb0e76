//! husk-dns: the DNS server of one user-defined container network, as
//! Docker's embedded DNS and dnsmasq are. It answers the network's
//! container names and aliases (A, AAAA, and PTR for their addresses)
//! from a [`Names`] table, and forwards every other question to the host's
//! resolvers, or to a client's own (a container's `--dns`); REFUSED on an
//! internal network, which has no way out. It answers only the network's
//! clients: it is not an open resolver.
//!
//! It owns the DNS protocol side: parsing and answering queries
//! ([`decide`], the pure part), UDP and TCP listeners, forwarding, and
//! the limits that keep it standing under hostile input (dropped
//! responses, bounded connections and forwards, idle TCP clients closed).
//!
//! It must not know containers, the agent, netlink or the API: the agent
//! feeds it names and addresses ([`Names::set`]), where to listen and whom
//! to serve ([`ServerConfig`]), the upstream resolvers
//! ([`Server::set_upstream`]) and those of one client of its own
//! ([`Names::set_upstream_for`], a container's `--dns`).

mod answer;
mod forward;
mod names;
mod server;
mod stats;
mod tcp;
mod udp;

use std::net::{IpAddr, SocketAddr};

pub use answer::{Decision, TTL, decide};
pub use names::{MAX_CLIENT_UPSTREAMS, MAX_CLIENTS_WITH_UPSTREAMS, Names};
pub use server::{
    MAX_IN_FLIGHT, MAX_TCP_CONNECTIONS, Server, ServerConfig, TCP_IDLE, UPSTREAM_TIMEOUT,
};
pub use stats::Stats;

/// Why a server could not start, or a client's upstream servers could
/// not be set.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("DNS server: nothing to listen on")]
    NoListenAddress,
    #[error("DNS server: cannot listen on {addr}/{transport}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("DNS server: client network {addr}/{prefix}: the prefix is longer than the address")]
    ClientNetwork { addr: IpAddr, prefix: u8 },
    #[error(
        "DNS server: upstream servers of client {client}: {limit} clients already have servers of their own"
    )]
    TooManyClientUpstreams { client: IpAddr, limit: usize },
}
