//! Published ports: checked when a container is created, reserved on the
//! host when it starts. A published port is a socket the agent binds (and
//! never listens on) for as long as the container runs, as dockerd does
//! without its userland proxy: a host process or a host-network container
//! already on the port is found at start with a clear error instead of
//! being shadowed by the DNAT rule, none can take the port later, and a
//! port asked as 0 is one the kernel picks from its ephemeral range.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use husk_api::containers::{NetworkMode, PortMapping, PortProtocol, RunOptions, parse_extra_host};

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error(
        "published ports need a bridge network (--network bridge or a user network): \
         with --network {0} there is nothing to publish to"
    )]
    NotBridged(NetworkMode),
    #[error("{0} is published twice")]
    Twice(String),
    #[error("port {port} is already published by container {owner}")]
    Published { port: String, owner: String },
    #[error(
        "port {port} is already in use on the host (a process or a host-network container has it)"
    )]
    InUse { port: String },
    #[error("port {port}: {ip} is not an address of this machine")]
    NotLocal { port: String, ip: IpAddr },
    #[error("port {port}: the bridge has no IPv6 ([network] ipv6 = false)")]
    Ipv6 { port: String },
    #[error("reserving port {port}: {source}")]
    Socket {
        port: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Checks what a container asks for at create.
pub fn check_options(opts: &RunOptions) -> Result<(), PortError> {
    if !opts.ports.is_empty() && !opts.network.is_bridged() {
        return Err(PortError::NotBridged(opts.network.clone()));
    }
    if let NetworkMode::Named(network) = &opts.network {
        husk_api::networks::check_network_name(network).map_err(PortError::Invalid)?;
        // The network's server, on the machine, asks the `--dns` servers
        // for the container (resolver.rs): a loopback one would be the
        // machine's, not the container's own.
        if let Some(ip) = opts.dns.iter().find(|ip| ip.to_canonical().is_loopback()) {
            return Err(PortError::Invalid(format!(
                "--dns {ip} on a user network ({network}): the network's DNS server asks it from the machine, where a loopback address is the machine's, not the container's"
            )));
        }
    }
    for alias in &opts.network_aliases {
        if !matches!(opts.network, NetworkMode::Named(_)) {
            return Err(PortError::Invalid(format!(
                "network alias {alias:?}: aliases are names on a user network's DNS (--network NAME)"
            )));
        }
        husk_api::networks::check_alias(alias).map_err(PortError::Invalid)?;
    }
    if opts.metadata_access && !opts.network.is_bridged() {
        return Err(PortError::Invalid(format!(
            "metadata access is for bridged containers: with --network {} the firewall does not stand between the container and the metadata service",
            opts.network
        )));
    }
    for entry in &opts.extra_hosts {
        parse_extra_host(entry).map_err(PortError::Invalid)?;
    }
    let mut seen = std::collections::HashSet::new();
    for port in &opts.ports {
        if port.host_port != 0 && !seen.insert((port.host_port, port.protocol)) {
            return Err(PortError::Twice(format!(
                "host port {}/{}",
                port.host_port, port.protocol
            )));
        }
    }
    Ok(())
}

/// One container's reserved ports (a port on every address is held on
/// IPv4 and, on a dual-stack bridge, IPv6).
#[derive(Debug, Default)]
pub struct Reservations(Vec<(PortMapping, Vec<OwnedFd>)>);

impl Reservations {
    /// The mappings as published (picked host ports filled in).
    pub fn mappings(&self) -> Vec<PortMapping> {
        self.0.iter().map(|(m, _)| *m).collect()
    }
}

/// Reserves `ports` for `container`, refusing one another container has.
pub fn reserve(
    container: &str,
    ports: &[PortMapping],
    others: &BTreeMap<String, Reservations>,
    ipv6: bool,
) -> Result<Reservations, PortError> {
    for port in ports.iter().filter(|p| p.host_port != 0) {
        for (owner, theirs) in others.iter().filter(|(n, _)| n.as_str() != container) {
            let clash = theirs.0.iter().any(|(m, _)| {
                m.host_port == port.host_port
                    && m.protocol == port.protocol
                    && (m.host_ip.is_none() || port.host_ip.is_none() || m.host_ip == port.host_ip)
            });
            if clash {
                return Err(PortError::Published {
                    port: describe(port),
                    owner: owner.clone(),
                });
            }
        }
    }
    reserve_exact(container, ports, ipv6)
}

/// Binds each port (for an agent that restarts, the ports its running
/// containers already publish).
pub fn reserve_exact(
    _container: &str,
    ports: &[PortMapping],
    ipv6: bool,
) -> Result<Reservations, PortError> {
    let mut held = Vec::new();
    for port in ports {
        let named = |e: std::io::Error, ip: IpAddr| match e.raw_os_error() {
            Some(libc::EADDRINUSE) => PortError::InUse {
                port: describe(port),
            },
            Some(libc::EADDRNOTAVAIL) => PortError::NotLocal {
                port: describe(port),
                ip,
            },
            _ => PortError::Socket {
                port: describe(port),
                source: e,
            },
        };
        let first: IpAddr = match port.host_ip {
            None => Ipv4Addr::UNSPECIFIED.into(),
            Some(ip) => ip,
        };
        if first.is_ipv6() && !ipv6 {
            return Err(PortError::Ipv6 {
                port: describe(port),
            });
        }
        let fd = bind(port.protocol, SocketAddr::new(first, port.host_port))
            .map_err(|e| named(e, first))?;
        let mut mapping = *port;
        if mapping.host_port == 0 {
            mapping.host_port = local_port(&fd).map_err(|source| PortError::Socket {
                port: describe(port),
                source,
            })?;
        }
        let mut fds = vec![fd];
        // Every address: IPv6's too, on the same port.
        if port.host_ip.is_none() && ipv6 {
            let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            let fd6 = bind(mapping.protocol, SocketAddr::new(any6, mapping.host_port))
                .map_err(|e| named(e, any6))?;
            fds.push(fd6);
        }
        held.push((mapping, fds));
    }
    Ok(Reservations(held))
}

fn describe(port: &PortMapping) -> String {
    match port.host_ip {
        Some(ip) => format!("{ip}:{}/{}", port.host_port, port.protocol),
        None => format!("{}/{}", port.host_port, port.protocol),
    }
}

/// A socket bound to `addr` and never listened on: it holds the port.
fn bind(protocol: PortProtocol, addr: SocketAddr) -> std::io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let kind = match protocol {
        PortProtocol::Tcp => SocketType::STREAM,
        PortProtocol::Udp => SocketType::DGRAM,
    };
    let family = if addr.is_ipv6() {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    };
    let fd = rustix::net::socket_with(family, kind, SocketFlags::CLOEXEC, None)?;
    if addr.is_ipv6() {
        // Only IPv6: the IPv4 socket holds IPv4.
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr)?;
    Ok(fd)
}

fn local_port(fd: &OwnedFd) -> std::io::Result<u16> {
    let addr = rustix::net::getsockname(fd)?;
    let addr = SocketAddr::try_from(addr).map_err(|_| std::io::Error::other("not an IP socket"))?;
    Ok(addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(ports: &str, network: NetworkMode) -> RunOptions {
        let mut o = RunOptions::new("c", "busybox");
        o.network = network;
        o.ports = husk_api::containers::parse_publish(ports).unwrap();
        o
    }

    #[test]
    fn ports_need_the_bridge() {
        let err = check_options(&opts("8080:80", NetworkMode::None)).unwrap_err();
        assert!(err.to_string().contains("--network none"), "{err}");
        assert!(check_options(&opts("8080:80", NetworkMode::Bridge)).is_ok());
    }

    #[test]
    fn dns_on_a_user_network_is_any_but_a_loopback_server() {
        let mut o = opts("80", NetworkMode::Named("app".into()));
        o.dns = vec![
            "192.0.2.53".parse().unwrap(),
            "2001:db8::53".parse().unwrap(),
        ];
        assert!(check_options(&o).is_ok());
        for lo in ["127.0.0.1", "::1", "::ffff:127.0.0.53"] {
            o.dns = vec![lo.parse().unwrap()];
            let err = check_options(&o).unwrap_err().to_string();
            assert!(err.contains("loopback"), "{lo}: {err}");
        }
        // On the agent's bridge a loopback server is the container's own.
        let mut o = opts("80", NetworkMode::Bridge);
        o.dns = vec!["127.0.0.1".parse().unwrap()];
        assert!(check_options(&o).is_ok());
    }

    #[test]
    fn a_host_port_twice_is_refused() {
        let mut o = opts("8080:80", NetworkMode::Bridge);
        o.ports
            .extend(husk_api::containers::parse_publish("8080:81").unwrap());
        let err = check_options(&o).unwrap_err().to_string();
        assert!(err.contains("8080/tcp is published twice"), "{err}");
        // The same number over UDP is another port.
        let mut o = opts("8080:80", NetworkMode::Bridge);
        o.ports
            .extend(husk_api::containers::parse_publish("8080:80/udp").unwrap());
        assert!(check_options(&o).is_ok());
    }

    #[test]
    fn a_bound_port_and_another_containers_are_named() {
        let mapping = husk_api::containers::parse_publish("127.0.0.1::80").unwrap();
        let first = reserve("a", &mapping, &BTreeMap::new(), true).unwrap();
        let picked = first.mappings()[0];
        assert_ne!(picked.host_port, 0, "the kernel picked a port");
        let mut others = BTreeMap::new();
        others.insert("a".to_string(), first);
        let again = [picked];
        let err = reserve("b", &again, &others, true).unwrap_err().to_string();
        assert!(err.contains("already published by container a"), "{err}");
        // A socket of someone else on the port.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let mapping = husk_api::containers::parse_publish(&format!("127.0.0.1:{port}:80")).unwrap();
        let err = reserve("c", &mapping, &BTreeMap::new(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already in use on the host"), "{err}");
        let mapping = husk_api::containers::parse_publish("192.0.2.77:8080:80").unwrap();
        let err = reserve("d", &mapping, &BTreeMap::new(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an address of this machine"), "{err}");
    }
}
