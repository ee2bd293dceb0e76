//! The server: its listeners, the state they share, and how it starts and
//! stops.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::stats::{Counters, Stats};
use crate::{DnsError, Names};

/// How long one upstream resolver has to answer before the next is asked
/// (glibc's own timeout is 5 s: two servers fit in one client attempt).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a TCP client has to send a whole query (its length and its
/// bytes) after connecting or after its last answer before it is closed:
/// a slow or idle client must not hold one of the few connections.
pub const TCP_IDLE: Duration = Duration::from_secs(3);

/// TCP connections served at once, over all listen addresses; more are
/// closed at once (and counted).
pub const MAX_TCP_CONNECTIONS: usize = 64;

/// Queries waiting on an upstream at once; more are dropped (and
/// counted), so that a dead upstream and a flood cannot grow memory.
pub const MAX_IN_FLIGHT: usize = 256;

/// Where the server listens, whom it answers and whom it asks.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen, UDP and TCP on each (the bridge's gateway
    /// addresses; port 0 is the kernel's pick, one port for UDP and TCP
    /// and for every address given with port 0).
    pub listen: Vec<SocketAddr>,
    /// Only queries from these networks (address, prefix length) are
    /// answered; anything else is dropped and counted (it is not an open
    /// resolver).
    pub clients: Vec<(IpAddr, u8)>,
    /// Resolvers other names are forwarded to (a client with servers of
    /// its own, [`Names::set_upstream_for`], asks those instead). Empty:
    /// those of the other clients are answered REFUSED.
    pub upstream: Vec<SocketAddr>,
    /// An internal network: only the network's names, everything else
    /// answered REFUSED, whatever the upstream servers (the network's or
    /// a client's). A question is a way out too: the names it asks reach
    /// the resolver it is forwarded to.
    pub internal: bool,
}

/// What the listeners share.
pub(crate) struct Shared {
    pub names: Names,
    clients: Vec<(IpAddr, u8)>,
    /// Where this server listens: never an upstream of its own.
    own: Vec<SocketAddr>,
    internal: bool,
    upstream: RwLock<Arc<[SocketAddr]>>,
    pub counters: Counters,
    pub in_flight: Arc<Semaphore>,
    pub connections: Arc<Semaphore>,
}

impl Shared {
    /// Where a question of `client` that is not one of the network's names
    /// goes: nowhere on an internal network; to the client's own servers
    /// when it has some (`--dns`); else to the network's.
    pub fn upstream_for(&self, client: IpAddr) -> Arc<[SocketAddr]> {
        if self.internal {
            return Arc::from(Vec::new());
        }
        match self.names.upstream_for(client) {
            // Never itself (see `without_self`); checked here, as the
            // table does not know where the server listens. Quietly: it is
            // asked for every question of that client.
            Some(own) if own.iter().any(|server| self.own.contains(server)) => own
                .iter()
                .filter(|server| !self.own.contains(server))
                .copied()
                .collect(),
            Some(own) => own,
            None => self
                .upstream
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// `upstream` without this server's own addresses: forwarding to
    /// itself would send every unknown name round until the forwards in
    /// flight run out (Docker leaves its own address out of the host's
    /// resolv.conf for the same reason).
    fn without_self(&self, mut upstream: Vec<SocketAddr>) -> Vec<SocketAddr> {
        upstream.retain(|server| {
            let own = self.own.contains(server);
            if own {
                log::warn!("DNS upstream {server} is this server itself: left out");
            }
            !own
        });
        upstream
    }

    pub fn is_client(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.clients
            .iter()
            .any(|&(net, prefix)| within(ip, net, prefix))
    }
}

/// Whether `ip` is in the network `net`/`prefix` (of the same family).
fn within(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net.to_canonical()) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A running server: UDP and TCP listeners on every listen address. Its
/// tasks stop with [`Server::stop`], or when it is dropped.
pub struct Server {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    /// Dropping it (or sending) tells the listeners to stop.
    stop: Option<watch::Sender<bool>>,
}

impl Server {
    /// Binds every listen address (UDP + TCP) before returning: a bind
    /// failure is an error naming the address. Must be called within a
    /// tokio runtime, which runs the server's tasks.
    pub async fn start(config: ServerConfig, names: Names) -> Result<Server, DnsError> {
        if config.listen.is_empty() {
            return Err(DnsError::NoListenAddress);
        }
        for &(addr, prefix) in &config.clients {
            let max = if addr.to_canonical().is_ipv4() {
                32
            } else {
                128
            };
            if prefix > max {
                return Err(DnsError::ClientNetwork { addr, prefix });
            }
        }
        let sockets = bind_all(&config.listen).await?;
        let mut shared = Shared {
            names,
            clients: config.clients,
            own: sockets.iter().map(|(addr, _, _)| *addr).collect(),
            internal: config.internal,
            upstream: RwLock::new(Arc::from(Vec::new())),
            counters: Counters::default(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            connections: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
        };
        let upstream = shared.without_self(config.upstream);
        *shared
            .upstream
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Arc::from(upstream);
        let shared = Arc::new(shared);
        let (stop, stopped) = watch::channel(false);
        let mut addrs = Vec::with_capacity(sockets.len());
        let mut tasks = Vec::with_capacity(sockets.len() * 2);
        for (addr, udp, tcp) in sockets {
            log::info!("DNS server listening on {addr}");
            addrs.push(addr);
            tasks.push(tokio::spawn(crate::udp::serve(
                Arc::new(udp),
                shared.clone(),
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(crate::tcp::serve(
                tcp,
                shared.clone(),
                stopped.clone(),
            )));
        }
        Ok(Server {
            shared,
            addrs,
            tasks,
            stop: Some(stop),
        })
    }

    /// The addresses actually bound (a port 0 resolved), one per listen
    /// address, UDP and TCP alike.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Replaces the upstream resolvers (DHCP may change them); queries
    /// already being forwarded finish with the old ones. Empty: the
    /// clients without servers of their own are answered REFUSED from now
    /// on. The server's own addresses are left out. An internal network's
    /// server keeps them and forwards nothing.
    pub fn set_upstream(&self, upstream: Vec<SocketAddr>) {
        let upstream = self.shared.without_self(upstream);
        *self
            .shared
            .upstream
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::from(upstream);
    }

    /// The counters, as of now.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Stops every task (listeners, connections, forwards) and returns
    /// when they are gone and the sockets closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // No runtime to wait in: the tasks are told to stop (the channel
        // closes) and aborted, which drops their sockets.
        self.stop.take();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// UDP and TCP on `addr`, on the same port when the port is the kernel's
/// pick (the UDP one's, which TCP may find taken: another pick then).
type Bound = (SocketAddr, UdpSocket, TcpListener);

/// Binds every listen address. Port 0 is the kernel's pick for the
/// first, and that same port for the others (so that a network's server
/// is one port on its IPv4 and IPv6 gateways, which the firewall
/// redirects to); a port taken on a later address starts over, a few
/// times.
async fn bind_all(listen: &[SocketAddr]) -> Result<Vec<Bound>, DnsError> {
    let mut attempts = 0;
    'again: loop {
        let mut sockets: Vec<Bound> = Vec::with_capacity(listen.len());
        let mut picked = None;
        for &asked in listen {
            let addr = match (asked.port(), picked) {
                (0, Some(port)) => SocketAddr::new(asked.ip(), port),
                _ => asked,
            };
            match bind(addr).await {
                Ok(bound) => {
                    if asked.port() == 0 {
                        picked = picked.or(Some(bound.0.port()));
                    }
                    sockets.push(bound);
                }
                Err(DnsError::Bind { source, .. })
                    if asked.port() == 0
                        && picked.is_some()
                        && source.kind() == std::io::ErrorKind::AddrInUse
                        && attempts < 16 =>
                {
                    attempts += 1;
                    continue 'again;
                }
                Err(e) => return Err(e),
            }
        }
        return Ok(sockets);
    }
}

async fn bind(addr: SocketAddr) -> Result<Bound, DnsError> {
    let bind_error = |addr, transport| {
        move |source| DnsError::Bind {
            addr,
            transport,
            source,
        }
    };
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(bind_error(addr, "udp"))?;
        let bound = udp.local_addr().map_err(bind_error(addr, "udp"))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((bound, udp, tcp)),
            Err(e)
                if addr.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempts < 16 =>
            {
                attempts += 1;
            }
            Err(e) => return Err(bind_error(bound, "tcp")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::within;

    #[test]
    fn networks_contain_their_addresses_only() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(within(ip("172.18.0.5"), ip("172.18.0.0"), 16));
        assert!(!within(ip("172.19.0.5"), ip("172.18.0.0"), 16));
        assert!(within(ip("10.1.2.3"), ip("0.0.0.0"), 0));
        assert!(within(ip("10.1.2.3"), ip("10.1.2.3"), 32));
        assert!(!within(ip("10.1.2.4"), ip("10.1.2.3"), 32));
        assert!(within(ip("fd00::5"), ip("fd00::"), 64));
        assert!(!within(ip("fd01::5"), ip("fd00::"), 64));
        assert!(within(ip("::1"), ip("::"), 0));
        assert!(!within(ip("10.0.0.1"), ip("::"), 0));
        assert!(!within(ip("fd00::1"), ip("0.0.0.0"), 0));
    }
}
