//! A user network's DNS server (`husk-dns`), run by the agent in the
//! host's namespace on the network's gateway addresses: its containers'
//! names answered, the rest forwarded to the host's name servers (those
//! in the host's resolv.conf, loopback ones included: the server is on
//! the host). An internal network's server forwards nothing.

use std::net::SocketAddr;

use super::NetError;
use super::net::Net;

/// Starts the network's server if it has none; refreshes its upstream
/// servers otherwise (DHCP may have changed them). `host_resolv_conf`:
/// the machine's resolv.conf, as read.
pub(super) async fn ensure_server(net: &mut Net, host_resolv_conf: &str) -> Result<(), NetError> {
    let upstream = if net.internal {
        Vec::new()
    } else {
        upstream_servers(host_resolv_conf)
    };
    if let Some(server) = &net.dns {
        server.set_upstream(upstream);
        return Ok(());
    }
    let config = husk_dns::ServerConfig {
        listen: net.dns_listen(),
        clients: net.dns_clients(),
        upstream,
    };
    let server = husk_dns::Server::start(config, net.names.clone())
        .await
        .map_err(|source| NetError::Dns {
            network: net.name.clone(),
            source,
        })?;
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
fn upstream_servers(resolv_conf: &str) -> Vec<SocketAddr> {
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
