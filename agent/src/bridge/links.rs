//! The bridge's links over rtnetlink: the bridge itself, a veth pair per
//! container (its inner end made straight inside the container's
//! namespace, so no host-side `eth0` ever exists to collide or leak), and
//! the container's addresses and default route, set from inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

/// The container's end of its veth.
pub const CONTAINER_IFNAME: &str = "eth0";

/// A netlink connection on the calling thread's namespace, driven on the
/// current runtime.
pub fn connect() -> std::io::Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The link's index, None when there is no such link.
pub async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

/// The bridge `name` with `gateway/prefix` on it, up; made if missing.
/// Returns its index.
pub async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    v6: Option<(Ipv6Addr, u8)>,
) -> Result<u32, rtnetlink::Error> {
    let index = match index_of(handle, name).await? {
        Some(index) => index,
        None => {
            handle
                .link()
                .add(LinkBridge::new(name).build())
                .execute()
                .await?;
            index_of(handle, name)
                .await?
                .ok_or(rtnetlink::Error::RequestFailed)?
        }
    };
    // A MAC of its own (Docker's scheme, of the gateway's address): a
    // bridge without one takes its ports' lowest, and every change of it
    // flushes the bridge's neighbour entries, the containers' permanent
    // ones included ([`pin_neighbours`]).
    let o = gateway.octets();
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .address(vec![0x02, 0x42, o[0], o[1], o[2], o[3]])
                .build(),
        )
        .execute()
        .await?;
    add_address(handle, index, IpAddr::V4(gateway), prefix).await?;
    if let Some((gateway6, prefix6)) = v6 {
        // No duplicate address detection: the bridge's address is the
        // agent's to give, and a tentative address would stall the
        // containers' first packets for a second or two.
        let dad = format!("/proc/sys/net/ipv6/conf/{name}/accept_dad");
        if let Err(e) = std::fs::write(&dad, "0") {
            log::debug!("bridge: {dad}: {e}");
        }
        add_address(handle, index, IpAddr::V6(gateway6), prefix6).await?;
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await?;
    Ok(index)
}

/// Deletes the link `name` if it exists.
pub async fn delete(handle: &Handle, name: &str) -> Result<(), rtnetlink::Error> {
    if let Some(index) = index_of(handle, name).await? {
        match handle.link().del(index).execute().await {
            // Gone meanwhile (its namespace was freed).
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {}
            other => other?,
        }
    }
    Ok(())
}

/// The pair `host_name` (on the bridge, up) and `inside` (`eth0`, or
/// `eth1`… for a network connected later) in the namespace `netns`, with
/// the container's MAC address.
pub async fn add_veth(
    handle: &Handle,
    host_name: &str,
    inside: &str,
    bridge: u32,
    netns: &std::fs::File,
    mtu: u32,
    mac: [u8; 6],
) -> Result<(), rtnetlink::Error> {
    // A pair left by a crash, or one the kernel has not freed yet.
    delete(handle, host_name).await?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(inside.to_string())
        .mtu(mtu)
        .address(mac.to_vec())
        .setns_by_fd(netns.as_raw_fd())
        .build();
    let pair = LinkVeth::new(host_name, inside)
        .mtu(mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    handle.link().add(pair).execute().await?;
    let index = index_of(handle, host_name)
        .await?
        .ok_or(rtnetlink::Error::RequestFailed)?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
}

/// Inside the container's namespace: `lo` and `ifname` up, the
/// addresses, and for its first network (`eth0`) the default routes
/// through the gateway.
pub async fn configure_inside(
    handle: &Handle,
    ifname: &str,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
    v6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
) -> Result<(), rtnetlink::Error> {
    let mut eth0 = 0;
    for name in ["lo", ifname] {
        let index = index_of(handle, name)
            .await?
            .ok_or(rtnetlink::Error::RequestFailed)?;
        if name == ifname {
            eth0 = index;
            add_address(handle, index, IpAddr::V4(address), prefix).await?;
            if let Some((address6, prefix6, _)) = v6 {
                add_address(handle, index, IpAddr::V6(address6), prefix6).await?;
            }
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await?;
    }
    // A network connected later reaches its own subnet only (Docker's
    // too): the way out stays the first network's.
    if ifname != CONTAINER_IFNAME {
        return Ok(());
    }
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .build();
    handle.route().add(route).replace().execute().await?;
    if let Some((_, _, gateway6)) = v6 {
        let route = RouteMessageBuilder::<Ipv6Addr>::new()
            .output_interface(eth0)
            .gateway(gateway6)
            .build();
        handle.route().add(route).replace().execute().await?;
    }
    Ok(())
}

/// The MTU of the link the default route leaves by (the uplink), None
/// when there is no default route yet.
pub async fn uplink_mtu(handle: &Handle) -> Result<Option<u32>, rtnetlink::Error> {
    use rtnetlink::packet_route::route::RouteAttribute;
    let mut routes = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    let mut oif = None;
    while let Some(route) = routes.try_next().await? {
        if route.header.destination_prefix_length != 0 {
            continue;
        }
        oif = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        if oif.is_some() {
            break;
        }
    }
    let Some(oif) = oif else { return Ok(None) };
    let mut links = handle.link().get().match_index(oif).execute();
    Ok(links.try_next().await?.and_then(|l| {
        l.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
    }))
}

/// The machine's own networks: the subnet of each address on a link that
/// is not loopback nor the containers' (a bridge, a veth), with the
/// link's name. A user network there would take the machine's own
/// neighbours' addresses (its uplink's gateway, its name servers) away.
pub async fn machine_networks(
    handle: &Handle,
) -> Result<Vec<(String, ipnet::IpNet)>, rtnetlink::Error> {
    use rtnetlink::packet_route::address::AddressAttribute;
    let mut names = std::collections::HashMap::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.try_next().await? {
        for attr in &link.attributes {
            if let LinkAttribute::IfName(name) = attr {
                names.insert(link.header.index, name.clone());
            }
        }
    }
    let mut networks = Vec::new();
    let mut addresses = handle.address().get().execute();
    while let Some(msg) = addresses.try_next().await? {
        let Some(name) = names.get(&msg.header.index) else {
            continue;
        };
        if name == "lo" || super::is_containers_link(name) {
            continue;
        }
        for attr in &msg.attributes {
            let AddressAttribute::Address(address) = attr else {
                continue;
            };
            let link_local = match address {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            if address.is_loopback() || link_local {
                continue;
            }
            if let Ok(net) = ipnet::IpNet::new(*address, msg.header.prefix_len) {
                networks.push((name.clone(), net.trunc()));
            }
        }
    }
    networks.sort();
    networks.dedup();
    Ok(networks)
}

/// The host links whose names start with `prefix` (the veths the agent
/// made), for cleaning up after a crash.
pub async fn names_with_prefix(
    handle: &Handle,
    prefix: &str,
) -> Result<Vec<String>, rtnetlink::Error> {
    let mut links = handle.link().get().execute();
    let mut names = Vec::new();
    while let Some(link) = links.try_next().await? {
        for attr in &link.attributes {
            if let LinkAttribute::IfName(name) = attr
                && name.starts_with(prefix)
            {
                names.push(name.clone());
            }
        }
    }
    Ok(names)
}

/// Adds (or keeps) `address/prefix` on the link.
async fn add_address(
    handle: &Handle,
    index: u32,
    address: IpAddr,
    prefix: u8,
) -> Result<(), rtnetlink::Error> {
    handle
        .address()
        .add(index, address, prefix)
        .replace()
        .execute()
        .await
}

/// Pins a container's addresses to its MAC, and its MAC to its port,
/// so that a neighbour on the bridge with CAP_NET_RAW cannot take them
/// over by spoofing (ARP or neighbour advertisements poisoning the
/// host's neighbour table; frames from the victim's MAC moving it to
/// the attacker's port in the bridge's forwarding table): the host's
/// entries for the addresses are permanent, and the port's entry for
/// the MAC is static and sticky. Replies to a spoofed source address
/// then still reach only its owner (so a connection to the metadata
/// service with an allowed container's address is never made). The
/// entries go with the veth (the forwarding entry) or are replaced by
/// the next holder of the address, whose MAC is the same (derived from
/// the address).
pub async fn pin_neighbours(
    handle: &Handle,
    bridge: u32,
    veth: &str,
    mac: [u8; 6],
    addresses: &[IpAddr],
) -> Result<(), rtnetlink::Error> {
    use rtnetlink::packet_route::neighbour::{NeighbourFlags, NeighbourState};
    for &address in addresses {
        handle
            .neighbours()
            .add(bridge, address)
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await?;
    }
    let port = index_of(handle, veth)
        .await?
        .ok_or(rtnetlink::Error::RequestFailed)?;
    handle
        .neighbours()
        .add_bridge(port, &mac)
        .state(NeighbourState::Noarp)
        .flags(NeighbourFlags::Controller | NeighbourFlags::Sticky)
        .replace()
        .execute()
        .await
}
