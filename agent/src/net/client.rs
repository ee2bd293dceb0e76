//! The DHCP client of one interface: discover, request, bound; renew at
//! T1, rebind at T2, and at expiry drop the address and start over. A
//! server that does not answer is retried with a backoff; nothing here
//! ends the agent. The lease held is kept in a [`LeaseSlot`] that
//! outlives the client: the link's manager stops the client while the
//! carrier is gone, and a new one asks for the same address.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dhcproto::v4::MessageType;
use rtnetlink::Handle;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

use super::Shared;
use super::dhcp::{self, Lease};
use super::link::{self, Link};

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
/// Per attempt, then doubled (RFC 2131 suggests 4 s, randomised).
const FIRST_WAIT: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(64);

/// A transaction id from the clock: no OS randomness, which can block
/// for long after boot on a VM without a hardware RNG (and would stall
/// the agent's one thread). Uniqueness, not secrecy, is what it needs.
fn xid() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u32) ^ ((nanos >> 32) as u32).rotate_left(16)
}

/// The lease a link holds and when it was granted; `None` when it has
/// none (never had, or expired).
#[derive(Clone, Default)]
pub struct LeaseSlot(Arc<Mutex<Option<(Lease, Instant)>>>);

impl LeaseSlot {
    pub fn get(&self) -> Option<(Lease, Instant)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, held: Option<(Lease, Instant)>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = held;
    }

    /// When the lease held runs out (None: no lease).
    pub fn expiry(&self) -> Option<Instant> {
        self.get().map(|(lease, got)| got + lease.expires_after())
    }

    /// The address held, while its lease runs.
    fn address(&self) -> Option<Ipv4Addr> {
        let (lease, got) = self.get()?;
        (got.elapsed() < lease.expires_after()).then_some(lease.address)
    }
}

/// The lease held has run out: its address goes from the link.
pub async fn expire(handle: &Handle, link: &Link, slot: &LeaseSlot, shared: &Shared) {
    if let Some((lease, _)) = slot.get() {
        log::warn!("net: {}: lease of {} expired", link.name, lease.address);
    }
    slot.set(None);
    let _ = link::flush_addresses(handle, link.index, None).await;
    shared.update(&link.name, |i| {
        i.address = None;
        i.gateway = None;
        i.lease_seconds = None;
    });
}

/// Runs forever for `link`.
pub async fn run(handle: Handle, link: Link, shared: Shared, slot: LeaseSlot) {
    let Some(mac) = link.mac else {
        shared.update(&link.name, |i| i.error = Some("no MAC address".into()));
        return;
    };
    let socket = match super::sys::dhcp_socket(&link.name).and_then(UdpSocket::from_std) {
        Ok(s) => s,
        Err(e) => {
            shared.update(&link.name, |i| i.error = Some(format!("DHCP socket: {e}")));
            log::error!("net: {}: DHCP socket: {e}", link.name);
            return;
        }
    };
    let mut retry = FIRST_WAIT;
    loop {
        shared.update(&link.name, |i| i.state = "dhcp".into());
        match acquire(&socket, &mac, slot.address()).await {
            Some(lease) => {
                retry = FIRST_WAIT;
                bound(&handle, &link, &socket, &mac, lease, &shared, &slot).await;
            }
            None => {
                shared.update(&link.name, |i| {
                    i.error = Some("no DHCP server answered".into());
                });
                log::warn!("net: {}: no DHCP answer; retrying in {retry:?}", link.name);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// DISCOVER → OFFER → REQUEST → ACK, a few tries.
async fn acquire(socket: &UdpSocket, mac: &[u8; 6], hint: Option<Ipv4Addr>) -> Option<Lease> {
    let mut wait = FIRST_WAIT;
    for _ in 0..4 {
        let xid = xid();
        let msg = dhcp::discover(xid, mac, hint);
        if let Err(e) = socket.send_to(&msg, SERVER).await {
            log::warn!("net: DHCP discover: {e}");
        }
        if let Some((MessageType::Offer, offer)) = receive(socket, xid, wait).await
            && let Some(offered) = dhcp::lease_of(&offer)
        {
            let request = dhcp::request(xid, mac, offered.address, Some(offered.server));
            let _ = socket.send_to(&request, SERVER).await;
            match receive(socket, xid, wait).await {
                Some((MessageType::Ack, ack)) => return dhcp::lease_of(&ack),
                Some((MessageType::Nak, _)) => continue,
                _ => {}
            }
        }
        wait = (wait * 2).min(Duration::from_secs(16));
    }
    None
}

/// The reply to `xid` within `wait`, skipping others.
async fn receive(
    socket: &UdpSocket,
    xid: u32,
    wait: Duration,
) -> Option<(MessageType, dhcproto::v4::Message)> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 1500];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let (n, from) = timeout(left, socket.recv_from(&mut buf)).await.ok()?.ok()?;
        match dhcp::parse_reply(&buf[..n], xid) {
            Some(reply) => return Some(reply),
            None => log::debug!("net: ignoring {n} bytes from {from}"),
        }
    }
}

/// Applies the lease and keeps it: renew at T1, rebind at T2, expire.
async fn bound(
    handle: &Handle,
    link: &Link,
    socket: &UdpSocket,
    mac: &[u8; 6],
    mut lease: Lease,
    shared: &Shared,
    slot: &LeaseSlot,
) {
    loop {
        let got = Instant::now();
        slot.set(Some((lease.clone(), got)));
        if let Err(e) = apply(handle, link, &lease, shared).await {
            log::error!("net: {}: applying the lease: {e}", link.name);
            shared.update(&link.name, |i| {
                i.error = Some(format!("applying the lease: {e}"))
            });
        }
        tokio::time::sleep(lease.renew_after()).await;
        // Renewal (T1) then rebinding (T2): the same REQUEST with ciaddr,
        // retried until the lease expires.
        let mut renewed = None;
        let mut rebinding = false;
        while renewed.is_none() && got.elapsed() < lease.expires_after() {
            let xid = xid();
            let request = dhcp::request(xid, mac, lease.address, None);
            rebinding = got.elapsed() >= lease.rebind_after();
            let to = if rebinding {
                SERVER
            } else {
                SocketAddrV4::new(lease.server, 67)
            };
            let _ = socket.send_to(&request, to).await;
            match receive(socket, xid, Duration::from_secs(4)).await {
                Some((MessageType::Ack, ack)) => renewed = dhcp::lease_of(&ack),
                Some((MessageType::Nak, _)) => break,
                _ => tokio::time::sleep(Duration::from_secs(10)).await,
            }
        }
        match renewed {
            Some(new) => {
                let how = if rebinding { "rebinding" } else { "renewing" };
                log::info!(
                    "net: {}: lease of {} extended ({how}, from {})",
                    link.name,
                    new.address,
                    new.server
                );
                shared.update(&link.name, |i| {
                    if rebinding {
                        i.rebinds += 1;
                    } else {
                        i.renewals += 1;
                    }
                });
                lease = new;
            }
            None => {
                expire(handle, link, slot, shared).await;
                shared.update(&link.name, |i| i.state = "expired".into());
                return;
            }
        }
    }
}

async fn apply(
    handle: &Handle,
    link: &Link,
    lease: &Lease,
    shared: &Shared,
) -> Result<(), rtnetlink::Error> {
    if let Some(mtu) = lease.mtu.filter(|&m| m >= 576) {
        link::set_mtu(handle, link.index, u32::from(mtu)).await?;
    }
    link::add_address(handle, link.index, lease.address, lease.prefix).await?;
    // A server that gave another address than the one held: the old one
    // goes, or the link would answer on both.
    link::flush_addresses(handle, link.index, Some(lease.address)).await?;
    if let Some(router) = lease.router {
        link::default_route(handle, link.index, router).await?;
    }
    shared.set_dns(&lease.dns);
    log::info!(
        "net: {}: {}/{} via {} (DHCP from {}, {} s)",
        link.name,
        lease.address,
        lease.prefix,
        lease
            .router
            .map_or_else(|| "no router".to_string(), |r| r.to_string()),
        lease.server,
        lease.lease_time
    );
    shared.update(&link.name, |i| {
        i.state = "bound".into();
        i.address = Some(format!("{}/{}", lease.address, lease.prefix));
        i.gateway = lease.router.map(|r| r.to_string());
        i.dns = lease.dns.iter().map(|d| d.to_string()).collect();
        i.ntp = lease.ntp.iter().map(|n| n.to_string()).collect();
        i.lease_seconds = Some(lease.lease_time);
        i.error = None;
    });
    Ok(())
}
