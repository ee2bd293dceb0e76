//! `[network]` of agent.toml: the agent's own bridge and the machine's
//! inbound firewall.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;

/// `[network]` of agent.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSettings {
    /// The bridge interface.
    pub bridge: String,
    /// The bridge's subnet. Docker's default; it is none of the clouds'
    /// own ranges (AWS's default VPC is 172.31.0.0/16, GCP's 10.128.0.0/9,
    /// Azure's 10.0.0.0/16) nor their metadata addresses.
    pub subnet: Ipv4Net,
    /// The containers' MTU; default: the uplink's (that of the link the
    /// default route leaves by), else 1500.
    pub mtu: Option<u32>,
    /// Dual stack: an IPv6 address for every container besides its IPv4
    /// one, published ports on IPv6 too.
    pub ipv6: bool,
    /// The bridge's IPv6 prefix (at most a /96: a container's address is
    /// the prefix and its IPv4 address); default: a unique local /64
    /// drawn at random once per machine (RFC 4193).
    pub subnet_v6: Option<Ipv6Net>,
    /// The machine's inbound firewall (docs/NETWORK.md): on, unless the
    /// agent leaves the machine alone (`--no-machine-setup`: tests, an
    /// agent run by hand on a workstation).
    pub host_firewall: Option<bool>,
    /// Ports the machine itself accepts connections on besides replies
    /// (`"8080/tcp"`): ports host-network containers serve.
    pub inbound: Vec<String>,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            bridge: "husk0".into(),
            subnet: Ipv4Net::new(Ipv4Addr::new(172, 17, 0, 0), 16).unwrap_or_default(),
            mtu: None,
            ipv6: true,
            subnet_v6: None,
            host_firewall: None,
            inbound: Vec::new(),
        }
    }
}

impl NetworkSettings {
    /// Refuses settings that cannot work, naming the field.
    pub fn check(&self) -> Result<(), String> {
        let name_ok = (1..=15).contains(&self.bridge.len())
            && self
                .bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(format!(
                "[network] bridge {:?}: 1 to 15 of letters, digits, '-', '_' and '.'",
                self.bridge
            ));
        }
        if !self.bridge.starts_with(crate::nft::BRIDGE_PREFIX) {
            return Err(format!(
                "[network] bridge {:?}: must start with {:?} (the firewall's rules match bridges by it)",
                self.bridge,
                crate::nft::BRIDGE_PREFIX
            ));
        }
        for entry in &self.inbound {
            parse_inbound(entry)?;
        }
        super::registry::check_subnet("[network] subnet", self.subnet)?;
        if let Some(net) = self.subnet_v6 {
            super::registry::check_subnet_v6("[network] subnet_v6", net)?;
        }
        if let Some(mtu) = self.mtu
            && !(1280..=65535).contains(&mtu)
        {
            return Err(format!("[network] mtu {mtu}: 1280 to 65535"));
        }
        Ok(())
    }
}

/// `"8080/tcp"`, `"53/udp"` (`/tcp` may be left out).
pub(super) fn parse_inbound(entry: &str) -> Result<(crate::nft::Protocol, u16), String> {
    let (port, proto) = entry.split_once('/').unwrap_or((entry, "tcp"));
    let protocol = match proto {
        "tcp" => crate::nft::Protocol::Tcp,
        "udp" => crate::nft::Protocol::Udp,
        _ => {
            return Err(format!(
                "[network] inbound {entry:?}: the protocol is tcp or udp"
            ));
        }
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((protocol, p)),
        _ => Err(format!(
            "[network] inbound {entry:?}: a port is 1 to 65535 (\"8080/tcp\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_are_named() {
        let mut s = NetworkSettings::default();
        assert_eq!(s.check(), Ok(()));
        s.subnet = "172.17.0.1/16".parse().unwrap();
        assert!(s.check().unwrap_err().contains("host bits"));
        s.subnet = "169.254.0.0/16".parse().unwrap();
        assert!(s.check().unwrap_err().contains("link-local"));
        s = NetworkSettings::default();
        s.bridge = "a-very-long-bridge-name".into();
        assert!(s.check().unwrap_err().contains("1 to 15"));
        s.bridge = "br0".into();
        assert!(s.check().unwrap_err().contains("must start with"), "{s:?}");
        s = NetworkSettings::default();
        s.inbound = vec!["22/sctp".into()];
        assert!(s.check().unwrap_err().contains("tcp or udp"));
        s.inbound = vec!["0".into()];
        assert!(s.check().unwrap_err().contains("1 to 65535"));
        s.inbound = vec!["22".into(), "53/udp".into()];
        assert_eq!(s.check(), Ok(()));
    }
}
