//! The DHCPv6 client of one interface (RFC 8415, one IA_NA): solicit,
//! request, bound; renew at T1, rebind at T2, and when the valid
//! lifetime ends the address goes and it starts over. It runs beside the
//! DHCPv4 client on every link with a carrier; on a network without a
//! DHCPv6 server it only solicits, ever less often (at most every
//! [`SOL_MAX_RT`]). The kernel takes SLAAC addresses and the default
//! route from router advertisements by itself; this adds what the clouds
//! hand out by DHCPv6 only.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use dhcproto::v6::MessageType;
use rtnetlink::Handle;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

use super::Shared;
use super::dhcp6::{self, Lease6};
use super::link::{self, Link};

/// All_DHCP_Relay_Agents_and_Servers.
const SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// RFC 8415's SOL_TIMEOUT, then doubled up to SOL_MAX_RT (shorter than
/// the RFC's hour: a cloud's server that comes late is found in minutes).
const SOL_TIMEOUT: Duration = Duration::from_secs(1);
const SOL_MAX_RT: Duration = Duration::from_secs(120);
/// How long an answer to a Request, Renew or Rebind is waited for.
const REPLY_WAIT: Duration = Duration::from_secs(4);

/// A transaction id from the clock (see [`super::client`]'s `xid`).
fn xid() -> [u8; 3] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = (nanos as u32) ^ ((nanos >> 32) as u32).rotate_left(11);
    let [a, b, c, _] = mixed.to_be_bytes();
    [a, b, c]
}

struct Client {
    handle: Handle,
    link: Link,
    shared: Shared,
    socket: UdpSocket,
    duid: Vec<u8>,
    iaid: u32,
    servers: SocketAddrV6,
}

/// Runs forever for `link`.
pub async fn run(handle: Handle, link: Link, shared: Shared) {
    let Some(mac) = link.mac else {
        return;
    };
    let socket = match super::sys::dhcp6_socket(&link.name).and_then(UdpSocket::from_std) {
        Ok(s) => s,
        Err(e) => {
            log::error!("net: {}: DHCPv6 socket: {e}", link.name);
            shared.update(&link.name, |i| i.dhcp6 = Some(format!("no socket: {e}")));
            return;
        }
    };
    let client = Client {
        servers: SocketAddrV6::new(SERVERS, 547, 0, link.index),
        iaid: link.index,
        duid: dhcp6::duid(&mac),
        handle,
        link,
        shared,
        socket,
    };
    let mut wait = SOL_TIMEOUT;
    loop {
        match client.acquire().await {
            Some(lease) => {
                wait = SOL_TIMEOUT;
                client.bound(lease).await;
            }
            None => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(SOL_MAX_RT);
            }
        }
    }
}

impl Client {
    /// Solicit → Advertise → Request → Reply, once.
    async fn acquire(&self) -> Option<Lease6> {
        let xid = xid();
        self.send(&dhcp6::solicit(xid, &self.duid, self.iaid)).await;
        let offered = loop {
            let (kind, msg) = self.receive(xid, SOL_TIMEOUT).await?;
            if kind != MessageType::Advertise {
                continue;
            }
            match dhcp6::lease_of(&msg, self.iaid) {
                Ok(lease) => break lease,
                Err(e) => log::debug!("net: {}: DHCPv6 advertise: {e}", self.link.name),
            }
        };
        self.ask(MessageType::Request, &offered).await
    }

    /// A Request, Renew or Rebind for `lease`, and the Reply's lease.
    async fn ask(&self, kind: MessageType, lease: &Lease6) -> Option<Lease6> {
        let xid = xid();
        self.send(&dhcp6::ask_for(kind, xid, &self.duid, self.iaid, lease))
            .await;
        loop {
            let (reply, msg) = self.receive(xid, REPLY_WAIT).await?;
            if reply != MessageType::Reply {
                continue;
            }
            return match dhcp6::lease_of(&msg, self.iaid) {
                Ok(lease) => Some(lease),
                Err(e) => {
                    log::warn!("net: {}: DHCPv6 {kind:?}: {e}", self.link.name);
                    None
                }
            };
        }
    }

    async fn send(&self, packet: &[u8]) {
        // Before the link-local address is ready (duplicate address
        // detection), there is no source to send from: the next try.
        if let Err(e) = self.socket.send_to(packet, self.servers).await {
            log::debug!("net: {}: DHCPv6 send: {e}", self.link.name);
        }
    }

    async fn receive(
        &self,
        xid: [u8; 3],
        wait: Duration,
    ) -> Option<(MessageType, dhcproto::v6::Message)> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 1500];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let (n, _) = timeout(left, self.socket.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            if let Some(reply) = dhcp6::parse_reply(&buf[..n], xid, &self.duid) {
                return Some(reply);
            }
        }
    }

    /// Applies the lease and keeps it until its valid lifetime ends.
    async fn bound(&self, mut lease: Lease6) {
        let name = &self.link.name;
        loop {
            let got = Instant::now();
            self.apply(&lease).await;
            tokio::time::sleep(secs(lease.renew)).await;
            let mut extended = None;
            let mut rebinding = false;
            while extended.is_none() && got.elapsed() < secs(lease.valid) {
                rebinding = got.elapsed() >= secs(lease.rebind);
                let kind = if rebinding {
                    MessageType::Rebind
                } else {
                    MessageType::Renew
                };
                extended = self.ask(kind, &lease).await;
                if extended.is_none() {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
            match extended {
                Some(new) => {
                    log::info!(
                        "net: {name}: DHCPv6 lease of {} extended ({})",
                        new.address,
                        if rebinding { "rebinding" } else { "renewing" }
                    );
                    if new.address != lease.address {
                        let _ =
                            link::del_address6(&self.handle, self.link.index, lease.address).await;
                    }
                    lease = new;
                }
                None => {
                    log::warn!("net: {name}: DHCPv6 lease of {} expired", lease.address);
                    let _ = link::del_address6(&self.handle, self.link.index, lease.address).await;
                    self.shared.set_dns6(name, &[]);
                    self.shared
                        .update(name, |i| i.dhcp6 = Some("expired".into()));
                    return;
                }
            }
        }
    }

    async fn apply(&self, lease: &Lease6) {
        let name = &self.link.name;
        match link::add_address6(
            &self.handle,
            self.link.index,
            lease.address,
            lease.preferred,
            lease.valid,
        )
        .await
        {
            Ok(()) => {
                log::info!(
                    "net: {name}: {}/128 (DHCPv6, valid {} s)",
                    lease.address,
                    lease.valid
                );
                self.shared
                    .update(name, |i| i.dhcp6 = Some(format!("bound {}", lease.address)));
            }
            Err(e) => {
                log::error!("net: {name}: DHCPv6 address {}: {e}", lease.address);
                self.shared.update(name, |i| {
                    i.dhcp6 = Some(format!("applying {}: {e}", lease.address))
                });
            }
        }
        self.shared.set_dns6(name, &lease.dns);
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}
