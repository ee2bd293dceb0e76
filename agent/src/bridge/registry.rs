//! The user networks' definitions (`<root>/network/networks.json`): what
//! `huskctl network create` asked for, checked, with the subnet and the
//! bridge interface chosen once. Their address books live beside it, one
//! per network (`<root>/network/networks/<name>.json`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One user network, as written down.
/// Unknown fields are kept out of the check: a newer agent may have
/// written them, and an older one (after a rollback) must still read the
/// networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    /// Its bridge: `husk` and a hash of the name, so that it is found
    /// again after a crash and matched by the firewall's prefix.
    pub interface: String,
    pub subnet: Ipv4Net,
    pub ipv6: bool,
    /// Given at create; else the book's unique local /64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_v6: Option<Ipv6Net>,
    pub internal: bool,
    pub created: u64,
    /// Absent in the records of agents before labels existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    networks: Vec<NetworkDef>,
}

/// Reads the definitions; none when the file does not exist yet.
pub fn load(path: &Path) -> Result<Vec<NetworkDef>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<File>(&bytes)
            .map(|f| f.networks)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes them atomically (a crash leaves the old list or the new one).
pub fn save(path: &Path, networks: &[NetworkDef]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File {
        networks: networks.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    husk_common::atomic::write_atomic(path, &json, 0o600)
}

/// Where a user network's address book is.
pub fn book_path(state: &Path, name: &str) -> PathBuf {
    state.join("networks").join(format!("{name}.json"))
}

/// `husk` and eight hex digits of the name's hash: within IFNAMSIZ, never
/// `husk0`, the same after a restart.
pub fn interface_for(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", crate::nft::BRIDGE_PREFIX)
}

/// Refuses an IPv4 subnet no bridge can use, naming `field`.
pub fn check_subnet(field: &str, subnet: Ipv4Net) -> Result<(), String> {
    if subnet.prefix_len() > 30 {
        return Err(format!(
            "{field} {subnet}: at least a /30 (a gateway and a container)"
        ));
    }
    if subnet != subnet.trunc() {
        return Err(format!(
            "{field} {subnet}: the address has host bits set (did you mean {}?)",
            subnet.trunc()
        ));
    }
    let metadata = Ipv4Addr::new(169, 254, 169, 254);
    let special = [
        Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8),
        Ipv4Net::new(Ipv4Addr::new(169, 254, 0, 0), 16),
        Ipv4Net::new(Ipv4Addr::new(224, 0, 0, 0), 3),
        Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 8),
    ];
    if subnet.contains(&metadata)
        || subnet.contains(&Ipv4Addr::LOCALHOST)
        || special.iter().flatten().any(|s| overlaps(*s, subnet))
    {
        return Err(format!(
            "{field} {subnet}: overlaps the loopback, link-local, multicast or reserved range"
        ));
    }
    Ok(())
}

/// Refuses an IPv6 prefix no bridge can use, naming `field`.
pub fn check_subnet_v6(field: &str, net: Ipv6Net) -> Result<(), String> {
    if net.prefix_len() > 96 {
        return Err(format!(
            "{field} {net}: at most a /96 (a container's address is the prefix and its IPv4 address)"
        ));
    }
    if net != net.trunc() {
        return Err(format!(
            "{field} {net}: the address has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    let first = net.network().segments()[0];
    if first & 0xffc0 == 0xfe80 || first & 0xff00 == 0xff00 || net.network().is_loopback() {
        return Err(format!(
            "{field} {net}: not a link-local, multicast or loopback prefix"
        ));
    }
    Ok(())
}

pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

pub fn overlaps_v6(a: Ipv6Net, b: Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Docker's choice for a network made without a subnet: the first /16 of
/// 172.18–172.30 that overlaps nothing taken (172.31/16 is AWS's default
/// VPC), then a /24 of 10.89.0.0/16 (Podman's pool).
pub fn pick_subnet(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    let sixteens = (18..=30).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let twentyfours = (0..=255).filter_map(|c| Ipv4Net::new(Ipv4Addr::new(10, 89, c, 0), 24).ok());
    sixteens
        .chain(twentyfours)
        .find(|candidate| !taken.iter().any(|t| overlaps(*t, *candidate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn interfaces_fit_start_with_the_prefix_and_differ() {
        let (a, b) = (interface_for("app"), interface_for("db"));
        assert!(a.len() <= 15 && a.starts_with("husk"), "{a}");
        assert_ne!(a, b);
        assert_ne!(a, "husk0");
        assert_eq!(a, interface_for("app"));
    }

    #[test]
    fn subnets_are_picked_around_what_is_taken() {
        assert_eq!(
            pick_subnet(&[net("172.17.0.0/16")]),
            Some(net("172.18.0.0/16"))
        );
        let taken = [
            net("172.17.0.0/16"),
            net("172.18.5.0/24"),
            net("172.16.0.0/12"),
        ];
        assert_eq!(pick_subnet(&taken), Some(net("10.89.0.0/24")));
    }

    #[test]
    fn subnets_that_cannot_work_are_named() {
        assert!(
            check_subnet("--subnet", net("10.0.0.1/24"))
                .unwrap_err()
                .contains("host bits")
        );
        assert!(
            check_subnet("--subnet", net("10.0.0.0/31"))
                .unwrap_err()
                .contains("/30")
        );
        assert!(
            check_subnet("--subnet", net("169.254.0.0/16"))
                .unwrap_err()
                .contains("link-local")
        );
        assert!(check_subnet("--subnet", net("127.0.0.0/16")).is_err());
        assert!(check_subnet("--subnet", net("0.0.0.0/0")).is_err());
        assert_eq!(check_subnet("--subnet", net("10.20.0.0/24")), Ok(()));
        assert!(overlaps(net("10.0.0.0/8"), net("10.20.0.0/24")));
        assert!(!overlaps(net("10.0.0.0/24"), net("10.0.1.0/24")));
    }

    #[test]
    fn definitions_survive_a_round_trip_and_a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("networks.json");
        assert_eq!(load(&path), Ok(Vec::new()));
        let def = NetworkDef {
            name: "app".into(),
            interface: interface_for("app"),
            subnet: net("172.18.0.0/16"),
            ipv6: false,
            subnet_v6: None,
            internal: true,
            created: 1,
            labels: BTreeMap::from([("com.docker.compose.project".into(), "shop".into())]),
        };
        save(&path, std::slice::from_ref(&def)).unwrap();
        assert_eq!(load(&path), Ok(vec![def]));
        std::fs::write(&path, b"{").unwrap();
        assert!(load(&path).unwrap_err().contains("networks.json"));
    }

    #[test]
    fn records_written_before_labels_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("networks.json");
        std::fs::write(
            &path,
            br#"{"networks":[{"name":"app","interface":"husk1a2b3c4d","subnet":"172.18.0.0/16","ipv6":false,"internal":false,"created":5}]}"#,
        )
        .unwrap();
        let defs = load(&path).unwrap();
        assert_eq!(defs[0].name, "app");
        assert!(defs[0].labels.is_empty());
        // And a record without labels is written as it was.
        save(&path, &defs).unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("labels"));
    }
}
