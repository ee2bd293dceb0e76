//! One network at run time: the agent's own bridge or a user network,
//! with its address book, its bridge (once made) and, on a user network,
//! the names its DNS server answers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv6Net;

use husk_api::networks::{Endpoint, Network};

use super::Attachment;
use super::ipam::{self, Ipam};
use super::registry::NetworkDef;

pub(super) struct Net {
    pub name: String,
    pub interface: String,
    pub internal: bool,
    /// The agent's own (agent.toml): no DNS server, not removable.
    pub builtin: bool,
    pub created: u64,
    pub labels: BTreeMap<String, String>,
    pub ipam: Ipam,
    /// The IPv6 prefix (dual stack); None: IPv4 only.
    pub subnet_v6: Option<Ipv6Net>,
    pub bridge_index: Option<u32>,
    /// What its DNS server answers (user networks).
    pub names: husk_dns::Names,
    pub dns: Option<husk_dns::Server>,
}

impl Net {
    pub fn builtin(interface: &str, ipam: Ipam, subnet_v6: Option<Ipv6Net>) -> Self {
        Self {
            name: husk_api::networks::DEFAULT_NETWORK.to_owned(),
            interface: interface.to_owned(),
            internal: false,
            builtin: true,
            created: 0,
            labels: BTreeMap::new(),
            ipam,
            subnet_v6,
            bridge_index: None,
            names: husk_dns::Names::new(),
            dns: None,
        }
    }

    pub fn user(def: &NetworkDef, ipam: Ipam, subnet_v6: Option<Ipv6Net>) -> Self {
        Self {
            name: def.name.clone(),
            interface: def.interface.clone(),
            internal: def.internal,
            builtin: false,
            created: def.created,
            labels: def.labels.clone(),
            ipam,
            subnet_v6,
            bridge_index: None,
            names: husk_dns::Names::new(),
            dns: None,
        }
    }

    /// Containers on it resolve each other by name.
    pub fn has_dns(&self) -> bool {
        !self.builtin
    }

    pub fn gateway_v6(&self) -> Option<std::net::Ipv6Addr> {
        self.subnet_v6.map(ipam::gateway_v6)
    }

    /// What is written down of it (user networks).
    pub fn def(&self) -> NetworkDef {
        NetworkDef {
            name: self.name.clone(),
            interface: self.interface.clone(),
            subnet: self.ipam.subnet(),
            ipv6: self.subnet_v6.is_some(),
            subnet_v6: self.subnet_v6,
            internal: self.internal,
            created: self.created,
            labels: self.labels.clone(),
        }
    }

    pub fn firewall_rules(&self) -> crate::nft::BridgeRules {
        crate::nft::BridgeRules {
            interface: self.interface.clone(),
            subnet_v4: (
                self.ipam.subnet().network(),
                self.ipam.subnet().prefix_len(),
            ),
            subnet_v6: self.subnet_v6.map(|net| (net.network(), net.prefix_len())),
            internal: self.internal,
            dns: self
                .dns
                .as_ref()
                .map(husk_dns::Server::local_addrs)
                .unwrap_or_default(),
        }
    }

    /// The API's view: the network and the containers holding an address
    /// on it (attached when they run).
    pub fn describe(&self, attached: &BTreeMap<String, Attachment>) -> Network {
        let containers = self
            .ipam
            .allocations()
            .map(|(container, ip_address)| Endpoint {
                container: container.to_owned(),
                ip_address,
                ipv6_address: self.subnet_v6.map(|net| ipam::address_v6(net, ip_address)),
                attached: attached
                    .get(container)
                    .is_some_and(|a| a.endpoints().any(|(network, _, _)| network == self.name)),
            })
            .collect();
        Network {
            name: self.name.clone(),
            interface: self.interface.clone(),
            subnet: self.ipam.subnet().to_string(),
            gateway: self.ipam.gateway(),
            subnet_v6: self.subnet_v6.map(|net| net.to_string()),
            gateway_v6: self.gateway_v6(),
            internal: self.internal,
            builtin: self.builtin,
            dns: self.has_dns(),
            created: self.created,
            labels: self.labels.clone(),
            containers,
        }
    }

    /// Where its DNS server listens: the gateway's addresses, on `port`
    /// (0: the kernel's pick, the same for UDP and TCP); the firewall
    /// redirects the gateway's port 53 there.
    pub fn dns_listen(&self, port: u16) -> Vec<std::net::SocketAddr> {
        let mut listen = vec![std::net::SocketAddr::new(
            IpAddr::V4(self.ipam.gateway()),
            port,
        )];
        if let Some(v6) = self.gateway_v6() {
            listen.push(std::net::SocketAddr::new(IpAddr::V6(v6), port));
        }
        listen
    }

    /// Who may ask it: its own subnets.
    pub fn dns_clients(&self) -> Vec<(IpAddr, u8)> {
        let subnet = self.ipam.subnet();
        let mut clients = vec![(IpAddr::V4(subnet.network()), subnet.prefix_len())];
        if let Some(net) = self.subnet_v6 {
            clients.push((IpAddr::V6(net.network()), net.prefix_len()));
        }
        clients
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.ipam.gateway()
    }

    /// A container's place on it: `address` (and its IPv6 one on a dual
    /// stack), the MAC that follows it, the gateways, `ports`.
    pub fn endpoint(
        &self,
        address: Ipv4Addr,
        ports: Vec<husk_api::containers::PortMapping>,
    ) -> husk_api::containers::NetworkInfo {
        husk_api::containers::NetworkInfo {
            network: self.name.clone(),
            bridge: self.interface.clone(),
            ip_address: address,
            prefix_len: self.ipam.subnet().prefix_len(),
            gateway: self.gateway(),
            mac_address: super::format_mac(super::mac_for(address)),
            ipv6_address: self.subnet_v6.map(|v6| ipam::address_v6(v6, address)),
            ipv6_prefix_len: self.subnet_v6.map(|v6| v6.prefix_len()),
            ipv6_gateway: self.gateway_v6(),
            ports,
        }
    }
}
