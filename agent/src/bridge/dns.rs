//! A user network's DNS server (`husk-dns`), run by the agent in the
//! host's namespace on the network's gateway addresses: its containers'
//! names answered, the rest forwarded to the host's name servers (those
//! in the host's resolv.conf, loopback ones included: the server is on
//! the host; upstreams.rs sets them again when the machine's change), or,
//! for a container with `--dns`, to those (resolver.rs). An internal
//! network's server forwards nothing.
//!
//! The server listens on a port the kernel picks, never on port 53 of
//! the host, which a host-network DNS server may hold (on `0.0.0.0:53`);
//! the firewall redirects the containers' queries to their gateway's
//! port 53 there. The port is remembered (`<root>/network/dns-ports.json`)
//! and taken again after a restart or a reboot, so that the firewall's
//! table comes back the same.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use super::NetError;
use super::net::Net;

/// The ports the networks' servers listened on, by network.
fn remembered(ports_file: &Path) -> BTreeMap<String, u16> {
    std::fs::read(ports_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn remember(ports_file: &Path, network: &str, port: Option<u16>) {
    let mut ports = remembered(ports_file);
    let changed = match port {
        Some(port) => ports.insert(network.to_owned(), port) != Some(port),
        None => ports.remove(network).is_some(),
    };
    if !changed {
        return;
    }
    let written = serde_json::to_vec(&ports)
        .map_err(std::io::Error::other)
        .and_then(|json| husk_common::atomic::write_atomic(ports_file, &json, 0o644));
    if let Err(e) = written {
        // Only the next start's port is at stake: it will be a new one.
        log::warn!("network {network}: {}: {e}", ports_file.display());
    }
}

/// Forgets a removed network's port.
pub(super) fn forget_port(ports_file: &Path, network: &str) {
    remember(ports_file, network, None);
}

/// Starts the network's server if it has none; refreshes its upstream
/// servers otherwise (DHCP may have changed them). `host_resolv_conf`:
/// the machine's resolv.conf, as read.
pub(super) async fn ensure_server(
    net: &mut Net,
    host_resolv_conf: &str,
    ports_file: &Path,
) -> Result<(), NetError> {
    let upstream = if net.internal {
        Vec::new()
    } else {
        upstream_servers(host_resolv_conf)
    };
    if let Some(server) = &net.dns {
        server.set_upstream(upstream);
        return Ok(());
    }
    let config = |port| husk_dns::ServerConfig {
        listen: net.dns_listen(port),
        clients: net.dns_clients(),
        upstream: upstream.clone(),
        internal: net.internal,
    };
    let last = remembered(ports_file).get(&net.name).copied();
    let mut started = husk_dns::Server::start(config(last.unwrap_or(0)), net.names.clone()).await;
    if last.is_some()
        && let Err(husk_dns::DnsError::Bind { source, .. }) = &started
        && source.kind() == std::io::ErrorKind::AddrInUse
    {
        // Taken meanwhile: a new port (and a new redirect).
        started = husk_dns::Server::start(config(0), net.names.clone()).await;
    }
    let server = started.map_err(|source| NetError::Dns {
        network: net.name.clone(),
        source,
    })?;
    let port = server.local_addrs().first().map(SocketAddr::port);
    remember(ports_file, &net.name, port);
    log::info!(
        "network {}: DNS server on {}",
        net.name,
        server
            .local_addrs()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    net.dns = Some(server);
    Ok(())
}

/// Stops the network's server (the network is being removed).
pub(super) async fn stop_server(net: &mut Net) {
    if let Some(server) = net.dns.take() {
        server.stop().await;
    }
}

/// The `nameserver` lines of a resolv.conf, as port 53 addresses.
pub(super) fn upstream_servers(resolv_conf: &str) -> Vec<SocketAddr> {
    super::files::name_servers(resolv_conf)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_servers_are_the_name_servers_loopback_included() {
        let text = "# by DHCP\nsearch example.internal\nnameserver 10.0.2.3\nnameserver 127.0.0.53\nnameserver fd00::3\nnameserver bogus\n";
        let servers: Vec<String> = upstream_servers(text)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(servers, ["10.0.2.3:53", "127.0.0.53:53", "[fd00::3]:53"]);
    }
}
