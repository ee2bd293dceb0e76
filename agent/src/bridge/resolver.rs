//! Which network's DNS server answers a container (its "resolver"), what
//! that server is told of it, and the resolv.conf that names it.
//!
//! A container on a user network asks that network's server. One on the
//! agent's bridge, which has none, asks the first user network connected
//! to it that is not internal, as Docker gives such a container its
//! embedded DNS: an internal network's server refuses every outside name,
//! which the container resolves today through the host's name servers,
//! so one connected alone changes nothing. The resolver answers the
//! container — and only it, by its addresses on that network — the names
//! of every network it is on (`Names::link`), and forwards its other
//! questions to its `--dns` servers when it has some
//! (`Names::set_upstream_for`), else to the machine's.
//!
//! [`refresh`] sets all of that again from the attachment after every
//! change (attach, connect, disconnect, restore), the same whatever was
//! there before; [`forget`] undoes it when the container stops.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use husk_api::containers::{NetworkInfo, NetworkMode, RunOptions};

use super::net::Net;
use super::{Attachment, NetError, Networks, files};

/// The network whose server answers the container, and the container's
/// place there.
pub(super) fn resolver<'a>(
    nets: &'a BTreeMap<String, Net>,
    attachment: &'a Attachment,
) -> Option<(&'a Net, &'a NetworkInfo)> {
    if let Some(own) = nets.get(&attachment.info.network)
        && own.has_dns()
    {
        return Some((own, &attachment.info));
    }
    // A loopback `--dns` server is in the container's own namespace (on
    // the agent's bridge it may be): the network's server, on the host,
    // cannot ask it, so the container keeps its resolv.conf.
    if attachment
        .dns
        .iter()
        .any(|ip| ip.to_canonical().is_loopback())
    {
        return None;
    }
    attachment.connected.iter().find_map(|endpoint| {
        let net = nets.get(&endpoint.info.network)?;
        (net.has_dns() && !net.internal).then_some((net, &endpoint.info))
    })
}

/// A container's addresses on one network: the clients a server knows it
/// by.
fn clients(info: &NetworkInfo) -> impl Iterator<Item = IpAddr> {
    std::iter::once(IpAddr::V4(info.ip_address)).chain(info.ipv6_address.map(IpAddr::V6))
}

/// Forgets, on every network the container is on, what its server knew
/// of it as a client (links, its own upstream servers).
pub(super) fn forget(nets: &BTreeMap<String, Net>, attachment: &Attachment) {
    for (network, _, info) in attachment.endpoints() {
        if let Some(net) = nets.get(network) {
            for client in clients(info) {
                net.names.forget_client(client);
            }
        }
    }
}

/// Tells the container's resolver what it sees and whom it asks: the
/// names of its other networks, its `--dns` servers.
pub(super) fn refresh(
    nets: &BTreeMap<String, Net>,
    attachment: &Attachment,
) -> Result<(), NetError> {
    forget(nets, attachment);
    let Some((resolver, place)) = resolver(nets, attachment) else {
        return Ok(());
    };
    let upstream: Vec<SocketAddr> = attachment
        .dns
        .iter()
        .map(|ip| SocketAddr::new(*ip, 53))
        .collect();
    if upstream.len() > husk_dns::MAX_CLIENT_UPSTREAMS {
        log::warn!(
            "network {}: {} --dns servers, the first {} asked",
            resolver.name,
            upstream.len(),
            husk_dns::MAX_CLIENT_UPSTREAMS
        );
    }
    for client in clients(place) {
        for (network, _, _) in attachment.endpoints() {
            if let Some(other) = nets.get(network)
                && other.name != resolver.name
                && other.has_dns()
            {
                resolver.names.link(client, &other.names);
            }
        }
        // An internal network's server forwards nothing, these included:
        // nothing to tell it.
        if !resolver.internal {
            resolver
                .names
                .set_upstream_for(client, &upstream)
                .map_err(|source| NetError::Dns {
                    network: resolver.name.clone(),
                    source,
                })?;
        }
    }
    Ok(())
}

impl Networks {
    /// The container's resolv.conf: on the host network, the host's; with
    /// a resolver, its gateway and the host's search domains; else the
    /// host's name servers, or `--dns`.
    pub(super) async fn resolv_conf(&self, opts: &RunOptions, host: &str) -> String {
        if opts.network == NetworkMode::Host {
            return host.to_owned();
        }
        let state = self.0.state.lock().await;
        let gateway = state
            .attached
            .get(&opts.name)
            .and_then(|attachment| resolver(&state.nets, attachment))
            .map(|(_, place)| place.gateway);
        match gateway {
            Some(gateway) => files::resolv_conf_user(host, gateway),
            None => files::resolv_conf(host, &opts.dns),
        }
    }

    /// Writes a running container's resolv.conf again (in `dir`, its
    /// directory) after a network was connected or disconnected: its
    /// resolver may have changed.
    pub async fn update_resolv_conf(&self, opts: &RunOptions, dir: &Path) -> Result<(), NetError> {
        if opts.network == NetworkMode::None {
            return Ok(());
        }
        let host = std::fs::read_to_string(&self.0.paths.host_resolv_conf).unwrap_or_default();
        let text = self.resolv_conf(opts, &host).await;
        let path = dir.join("resolv.conf");
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(());
        }
        // In place, not renamed over: the container sees the file through
        // a bind mount of its inode, which a rename would leave behind
        // (Docker rewrites its containers' resolv.conf in place too).
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .create(true)
            .mode(0o644)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(NetError::io(format!("writing {}", path.display())))
    }
}
