//! Links, addresses and routes over rtnetlink (not `ip`: there is no
//! shell or iproute2 on a Husk machine).

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType};
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

pub async fn list(handle: &Handle) -> Result<Vec<Link>, rtnetlink::Error> {
    let mut links = handle.link().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = links.try_next().await? {
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
        out.push(Link {
            index: msg.header.index,
            name,
            mac,
            ethernet: msg.header.link_layer_type == LinkLayerType::Ether,
            up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        });
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

/// Removes every IPv4 address of the link (a lease that expired).
pub async fn flush_addresses(handle: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    let mut found = Vec::new();
    while let Some(msg) = addresses.try_next().await? {
        let v4 = msg
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(_))));
        if v4 {
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
