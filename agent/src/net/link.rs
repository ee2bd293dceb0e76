//! Links, addresses and routes over rtnetlink (not `ip`: there is no
//! shell or iproute2 on a Husk machine).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, CacheInfo};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

/// A network interface as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub ethernet: bool,
    pub up: bool,
    /// The carrier (IFF_LOWER_UP).
    pub carrier: bool,
}

impl Link {
    /// The link a dump or an `RTM_NEWLINK` event describes.
    pub fn from_message(msg: &LinkMessage) -> Self {
        let mut name = String::new();
        let mut mac = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 => {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(a);
                    mac = Some(m);
                }
                _ => {}
            }
        }
        Link {
            index: msg.header.index,
            name,
            mac,
            ethernet: msg.header.link_layer_type == LinkLayerType::Ether,
            up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        }
    }
}

pub async fn list(handle: &Handle) -> Result<Vec<Link>, rtnetlink::Error> {
    let mut links = handle.link().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = links.try_next().await? {
        out.push(Link::from_message(&msg));
    }
    Ok(out)
}

pub async fn set_up(handle: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
}

pub async fn set_mtu(handle: &Handle, index: u32, mtu: u32) -> Result<(), rtnetlink::Error> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
        .execute()
        .await
}

/// Adds (or keeps) `address/prefix` on the link.
pub async fn add_address(
    handle: &Handle,
    index: u32,
    address: Ipv4Addr,
    prefix: u8,
) -> Result<(), rtnetlink::Error> {
    handle
        .address()
        .add(index, IpAddr::V4(address), prefix)
        .replace()
        .execute()
        .await
}

/// Removes the IPv4 addresses of the link but `keep` (a lease that
/// expired: none kept; a new lease: the old address goes).
pub async fn flush_addresses(
    handle: &Handle,
    index: u32,
    keep: Option<Ipv4Addr>,
) -> Result<(), rtnetlink::Error> {
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    let mut found = Vec::new();
    while let Some(msg) = addresses.try_next().await? {
        let stale = msg
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(v4)) if Some(*v4) != keep));
        if stale {
            found.push(msg);
        }
    }
    for msg in found {
        handle.address().del(msg).execute().await?;
    }
    Ok(())
}

/// The default route through `gateway` on the link (replacing one).
pub async fn default_route(
    handle: &Handle,
    index: u32,
    gateway: Ipv4Addr,
) -> Result<(), rtnetlink::Error> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .output_interface(index)
        .gateway(gateway)
        .build();
    handle.route().add(route).replace().execute().await
}

/// Adds (or refreshes) a DHCPv6 address, `/128` (the on-link prefix is
/// the router advertisements'), with its lifetimes: the kernel drops it
/// when the valid one runs out, even if the agent is gone by then.
pub async fn add_address6(
    handle: &Handle,
    index: u32,
    address: Ipv6Addr,
    preferred: u32,
    valid: u32,
) -> Result<(), rtnetlink::Error> {
    let mut request = handle
        .address()
        .add(index, IpAddr::V6(address), 128)
        .replace();
    request
        .message_mut()
        .attributes
        .push(AddressAttribute::CacheInfo({
            let mut lifetimes = CacheInfo::default();
            lifetimes.ifa_preferred = preferred;
            lifetimes.ifa_valid = valid;
            lifetimes
        }));
    request.execute().await
}

/// Removes one address of the link (a DHCPv6 lease that ended).
pub async fn del_address6(
    handle: &Handle,
    index: u32,
    address: Ipv6Addr,
) -> Result<(), rtnetlink::Error> {
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(IpAddr::V6(address))
        .execute();
    while let Some(msg) = addresses.try_next().await? {
        handle.address().del(msg).execute().await?;
    }
    Ok(())
}

/// The link's global IPv6 addresses (SLAAC's and DHCPv6's; not
/// link-local ones), as `address/prefix`.
pub async fn global_addresses6(
    handle: &Handle,
    index: u32,
) -> Result<Vec<String>, rtnetlink::Error> {
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    let mut out = Vec::new();
    while let Some(msg) = addresses.try_next().await? {
        for attr in &msg.attributes {
            if let AddressAttribute::Address(IpAddr::V6(a)) = attr
                && !a.is_unicast_link_local()
                && !a.is_loopback()
            {
                out.push(format!("{a}/{}", msg.header.prefix_len));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The IPv6 default route's gateway through the link (from router
/// advertisements), if there is one.
pub async fn default_gateway6(
    handle: &Handle,
    index: u32,
) -> Result<Option<Ipv6Addr>, rtnetlink::Error> {
    let filter = RouteMessageBuilder::<Ipv6Addr>::new().build();
    let mut routes = handle.route().get(filter).execute();
    let mut found = None;
    while let Some(msg) = routes.try_next().await? {
        if msg.header.destination_prefix_length != 0 {
            continue;
        }
        let mut oif = None;
        let mut gateway = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some(*g),
                _ => {}
            }
        }
        if oif == Some(index) && gateway.is_some() {
            found = gateway;
        }
    }
    Ok(found)
}
