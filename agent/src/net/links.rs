//! The machine's links as the kernel's events describe them, and what
//! each is given: `lo` is brought up, each Ethernet link (not the
//! containers' bridges and veths) gets DHCP or a static address. The
//! carrier decides whether DHCP runs: without one the client stops, the
//! lease is kept until it runs out, and a new client asks for the same
//! address when the carrier is back. DHCPv6 runs beside DHCPv4 while
//! the carrier is there; the link's global IPv6 addresses (SLAAC's and
//! DHCPv6's) and IPv6 router are reported as the kernel's address and
//! route events announce them.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use rtnetlink::Handle;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::route::RouteAttribute;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tokio::task::JoinHandle;

use super::client::{self, LeaseSlot};
use super::client6;
use super::link::{self, Link};
use super::{Shared, StaticConfig, StaticRequest};

/// What a managed link is given.
enum Role {
    Loopback,
    Static,
    Dhcp {
        lease: LeaseSlot,
        /// Running while the link has a carrier: DHCPv4's and DHCPv6's.
        client: Option<JoinHandle<()>>,
        client6: Option<JoinHandle<()>>,
        /// Running while it has none: drops the address at the lease's
        /// end.
        expiry: Option<JoinHandle<()>>,
    },
}

struct Managed {
    link: Link,
    role: Role,
}

impl Drop for Managed {
    fn drop(&mut self) {
        if let Role::Dhcp {
            client,
            client6,
            expiry,
            ..
        } = &mut self.role
        {
            stop(client);
            stop(client6);
            stop(expiry);
        }
    }
}

fn stop(task: &mut Option<JoinHandle<()>>) {
    if let Some(task) = task.take() {
        task.abort();
    }
}

pub struct Links {
    handle: Handle,
    shared: Shared,
    managed: BTreeMap<u32, Managed>,
    /// The kernel command line's static address is for the first
    /// Ethernet link seen.
    first_taken: bool,
}

impl Links {
    pub fn new(shared: Shared, handle: Handle) -> Self {
        Self {
            handle,
            shared,
            managed: BTreeMap::new(),
            first_taken: false,
        }
    }

    /// The netlink handle requests go through (a new one after the
    /// events were subscribed to again).
    pub fn set_handle(&mut self, handle: Handle) {
        self.handle = handle;
    }

    fn handle(&self) -> Handle {
        self.handle.clone()
    }

    pub async fn event(&mut self, message: NetlinkMessage<RouteNetlinkMessage>) {
        match message.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                self.seen(Link::from_message(&m)).await;
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                self.gone(m.header.index);
            }
            NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewAddress(m) | RouteNetlinkMessage::DelAddress(m),
            ) if m.header.family == AddressFamily::Inet6 => {
                self.refresh_v6(m.header.index).await;
            }
            NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m),
            ) if m.header.address_family == AddressFamily::Inet6
                && m.header.destination_prefix_length == 0 =>
            {
                for attr in &m.attributes {
                    if let RouteAttribute::Oif(index) = attr {
                        self.refresh_v6(*index).await;
                    }
                }
            }
            _ => {}
        }
    }

    /// The link's global IPv6 addresses and router, as the kernel has
    /// them now, into its state (managed Ethernet links only).
    pub async fn refresh_v6(&self, index: u32) {
        let Some(m) = self.managed.get(&index) else {
            return;
        };
        if matches!(m.role, Role::Loopback) {
            return;
        }
        let handle = self.handle();
        let addresses = link::global_addresses6(&handle, index).await;
        let gateway = link::default_gateway6(&handle, index).await;
        match (addresses, gateway) {
            (Ok(addresses), Ok(gateway)) => self.shared.update(&m.link.name, |i| {
                i.addresses_v6 = addresses;
                i.gateway_v6 = gateway.map(|g| g.to_string());
            }),
            (Err(e), _) | (_, Err(e)) => {
                log::warn!("net: {}: reading its IPv6 state: {e}", m.link.name);
            }
        }
    }

    /// A link listed or announced: taken on if new, followed if known.
    pub async fn seen(&mut self, l: Link) {
        let known = self.managed.get(&l.index).map(|m| m.link.clone());
        match known {
            None => self.adopt(l).await,
            Some(before) if before.name != l.name => {
                // Renamed: the state is keyed by name.
                self.gone(l.index);
                self.adopt(l).await;
            }
            Some(before) if before.carrier != l.carrier => self.carrier_changed(l).await,
            Some(_) => {
                if let Some(m) = self.managed.get_mut(&l.index) {
                    m.link = l;
                }
            }
        }
    }

    async fn adopt(&mut self, l: Link) {
        let handle = self.handle();
        if l.name == "lo" {
            if let Err(e) = link::set_up(&handle, l.index).await {
                log::error!("net: lo: {e}");
            }
            self.managed.insert(
                l.index,
                Managed {
                    link: l,
                    role: Role::Loopback,
                },
            );
            return;
        }
        // The containers' bridges and veths are Ethernet too, but no
        // DHCP server is behind them.
        if !l.ethernet || crate::bridge::is_containers_link(&l.name) {
            return;
        }
        if let Err(e) = link::set_up(&handle, l.index).await {
            log::error!("net: {}: up: {e}", l.name);
        }
        let mac = l.mac.map(|m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        });
        self.shared.update(&l.name, |i| {
            i.mac = mac.unwrap_or_default();
            i.carrier = l.carrier;
        });
        let static_config = if self.first_taken {
            None
        } else {
            self.first_taken = true;
            self.shared.config.first_link.clone()
        };
        let role = match static_config {
            Some(s) => {
                apply_static(&handle, &l, &s, &self.shared, "kernel command line").await;
                Role::Static
            }
            None => {
                let lease = LeaseSlot::default();
                let (client, client6) = if l.carrier {
                    log::info!("net: {}: up, asking DHCP", l.name);
                    (
                        Some(self.start_client(&l, &lease)),
                        Some(self.start_client6(&l)),
                    )
                } else {
                    log::info!("net: {}: no carrier yet; DHCP waits for it", l.name);
                    self.shared
                        .update(&l.name, |i| i.state = "no-carrier".into());
                    (None, None)
                };
                Role::Dhcp {
                    lease,
                    client,
                    client6,
                    expiry: None,
                }
            }
        };
        let index = l.index;
        self.managed.insert(index, Managed { link: l, role });
        self.refresh_v6(index).await;
    }

    fn start_client6(&self, l: &Link) -> JoinHandle<()> {
        tokio::spawn(client6::run(self.handle(), l.clone(), self.shared.clone()))
    }

    fn start_client(&self, l: &Link, lease: &LeaseSlot) -> JoinHandle<()> {
        tokio::spawn(client::run(
            self.handle(),
            l.clone(),
            self.shared.clone(),
            lease.clone(),
        ))
    }

    async fn carrier_changed(&mut self, l: Link) {
        let handle = self.handle();
        let shared = self.shared.clone();
        let Some(mut m) = self.managed.remove(&l.index) else {
            return;
        };
        m.link = l.clone();
        // `lo` is not reported: an entry for it would read as a NIC.
        if !matches!(m.role, Role::Loopback) {
            shared.update(&l.name, |i| i.carrier = l.carrier);
        }
        match &mut m.role {
            Role::Loopback => {}
            Role::Static => {
                let state = if l.carrier { "static" } else { "no-carrier" };
                log::info!("net: {}: carrier {}", l.name, on_off(l.carrier));
                shared.update(&l.name, |i| i.state = state.into());
            }
            Role::Dhcp {
                lease,
                client,
                client6,
                expiry,
            } => {
                stop(client);
                stop(client6);
                stop(expiry);
                if l.carrier {
                    log::info!("net: {}: carrier on, asking DHCP", l.name);
                    *client = Some(self.start_client(&l, lease));
                    *client6 = Some(self.start_client6(&l));
                } else {
                    log::warn!(
                        "net: {}: carrier off; the lease is kept until it runs out",
                        l.name
                    );
                    shared.update(&l.name, |i| i.state = "no-carrier".into());
                    if let Some(end) = lease.expiry() {
                        let lease = lease.clone();
                        let l = l.clone();
                        *expiry = Some(tokio::spawn(async move {
                            tokio::time::sleep_until(end).await;
                            client::expire(&handle, &l, &lease, &shared).await;
                        }));
                    }
                }
            }
        }
        self.managed.insert(l.index, m);
    }

    fn gone(&mut self, index: u32) {
        if let Some(m) = self.managed.remove(&index) {
            log::info!("net: {}: gone", m.link.name);
            self.shared.forget(&m.link.name);
        }
    }

    /// Static addresses asked for by user-data replace DHCP on their
    /// link (or the first link under DHCP).
    pub async fn apply_requests(&mut self, requests: &Mutex<Vec<StaticRequest>>) {
        let requests: Vec<StaticRequest> =
            std::mem::take(&mut *requests.lock().unwrap_or_else(PoisonError::into_inner));
        let handle = self.handle();
        for request in requests {
            let index = self
                .managed
                .iter()
                .find(|(_, m)| {
                    matches!(m.role, Role::Dhcp { .. })
                        && request
                            .link
                            .as_ref()
                            .is_none_or(|name| &m.link.name == name)
                })
                .map(|(index, _)| *index);
            let Some(mut m) = index.and_then(|i| self.managed.remove(&i)) else {
                log::error!(
                    "net: static address for {}: no such link under DHCP",
                    request.link.as_deref().unwrap_or("the first link")
                );
                continue;
            };
            if let Role::Dhcp {
                client,
                client6,
                expiry,
                ..
            } = &mut m.role
            {
                stop(client);
                stop(client6);
                stop(expiry);
            }
            m.role = Role::Static;
            let _ = link::flush_addresses(&handle, m.link.index, None).await;
            apply_static(&handle, &m.link, &request.config, &self.shared, "user-data").await;
            self.managed.insert(m.link.index, m);
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

async fn apply_static(handle: &Handle, l: &Link, s: &StaticConfig, shared: &Shared, from: &str) {
    let result = async {
        link::add_address(handle, l.index, s.address, s.prefix).await?;
        if let Some(gateway) = s.gateway {
            link::default_route(handle, l.index, gateway).await?;
        }
        Ok::<(), rtnetlink::Error>(())
    }
    .await;
    shared.set_dns(&s.dns);
    match result {
        Ok(()) => {
            log::info!(
                "net: {}: {}/{} (static, {from})",
                l.name,
                s.address,
                s.prefix
            );
            shared.update(&l.name, |i| {
                i.state = if l.carrier { "static" } else { "no-carrier" }.into();
                i.address = Some(format!("{}/{}", s.address, s.prefix));
                i.gateway = s.gateway.map(|g| g.to_string());
                i.dns = s.dns.iter().map(|d| d.to_string()).collect();
            });
        }
        Err(e) => {
            log::error!("net: {}: static address: {e}", l.name);
            shared.update(&l.name, |i| i.error = Some(e.to_string()));
        }
    }
}
