//! The bridge's address book: which container holds which address of the
//! subnet. Kept on the data partition (`network/bridge.json`), written
//! before an address is used, so that a container keeps its address
//! across restarts of its own, of the agent and of the machine, and two
//! containers never get one. An address is free again only when its
//! container is removed; the next one handed out is the one after the
//! last (not the lowest free), so a removed container's address is not
//! at once someone else's while peers still hold it in their ARP caches
//! and conntrack.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not the bridge's address book ({source}); move it away to start afresh")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the subnet {subnet} has no address left for another container ({used} in use)")]
    Exhausted { subnet: Ipv4Net, used: usize },
    #[error("the subnet {0} is too small: a bridge needs at least a /30")]
    TooSmall(Ipv4Net),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Book {
    subnet: Ipv4Net,
    /// The address handed out last (where the next search starts).
    last: Option<Ipv4Addr>,
    /// Container name → its address.
    addresses: BTreeMap<String, Ipv4Addr>,
    /// The bridge's IPv6 /64 when none is configured: a unique local
    /// prefix (RFC 4193) drawn once at random and kept, so a machine's
    /// containers keep their IPv6 addresses across reboots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ula: Option<Ipv6Net>,
}

/// The address book of one bridge, in memory and on disk.
#[derive(Debug)]
pub struct Ipam {
    path: PathBuf,
    book: Book,
}

impl Ipam {
    /// Opens the book at `path` for `subnet`. A book of another subnet
    /// (the operator changed it) starts empty: its addresses would be
    /// outside the new subnet.
    pub fn open(path: &Path, subnet: Ipv4Net) -> Result<Self, IpamError> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(IpamError::TooSmall(subnet));
        }
        let fresh = Book {
            subnet,
            last: None,
            addresses: BTreeMap::new(),
            ula: None,
        };
        let book = match std::fs::read(path) {
            Ok(bytes) => {
                let book: Book =
                    serde_json::from_slice(&bytes).map_err(|source| IpamError::Corrupt {
                        path: path.to_path_buf(),
                        source,
                    })?;
                if book.subnet == subnet {
                    book
                } else {
                    log::warn!(
                        "bridge: the subnet changed from {} to {subnet}; its addresses are handed out afresh",
                        book.subnet
                    );
                    Book {
                        ula: book.ula,
                        ..fresh
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh,
            Err(source) => {
                return Err(IpamError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            book,
        })
    }

    pub fn subnet(&self) -> Ipv4Net {
        self.book.subnet
    }

    /// The bridge's own address: the subnet's first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        first_host(self.book.subnet)
    }

    /// The bridge's IPv6 /64: `configured`, else the machine's own unique
    /// local prefix, drawn (and written down) the first time.
    pub fn subnet_v6(&mut self, configured: Option<Ipv6Net>) -> Result<Ipv6Net, IpamError> {
        if let Some(net) = configured {
            return Ok(net.trunc());
        }
        if let Some(net) = self.book.ula {
            return Ok(net);
        }
        let mut random = [0u8; 7];
        // 40 bits of global id and 16 of subnet id: fdXX:XXXX:XXXX:SSSS::/64.
        rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty()).map_err(
            |e| IpamError::Write {
                path: self.path.clone(),
                source: e.into(),
            },
        )?;
        let mut octets = [0u8; 16];
        octets[0] = 0xfd;
        octets[1..8].copy_from_slice(&random);
        let net = Ipv6Net::new(Ipv6Addr::from(octets), 64)
            .unwrap_or_default()
            .trunc();
        self.book.ula = Some(net);
        self.save()?;
        Ok(net)
    }

    /// The container's address, handed out (and written down) if it has
    /// none yet.
    pub fn address_of(&mut self, container: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.book.addresses.get(container) {
            return Ok(*ip);
        }
        let ip = self.next_free()?;
        self.book.addresses.insert(container.to_string(), ip);
        self.book.last = Some(ip);
        if let Err(e) = self.save() {
            self.book.addresses.remove(container);
            return Err(e);
        }
        Ok(ip)
    }

    /// Frees the container's address (it was removed).
    pub fn release(&mut self, container: &str) -> Result<(), IpamError> {
        if self.book.addresses.remove(container).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// Frees the addresses of containers that no longer exist (removed
    /// while the agent was down).
    pub fn retain(&mut self, exists: impl Fn(&str) -> bool) -> Result<(), IpamError> {
        let before = self.book.addresses.len();
        self.book.addresses.retain(|name, _| exists(name));
        if self.book.addresses.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Who holds which address.
    pub fn allocations(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        self.book.addresses.iter().map(|(n, ip)| (n.as_str(), *ip))
    }

    fn next_free(&self) -> Result<Ipv4Addr, IpamError> {
        let subnet = self.book.subnet;
        let (first, last) = (
            u32::from(first_host(subnet)) + 1,
            u32::from(subnet.broadcast()) - 1,
        );
        let used: std::collections::HashSet<u32> = self
            .book
            .addresses
            .values()
            .map(|ip| u32::from(*ip))
            .collect();
        let start = self
            .book
            .last
            .map(u32::from)
            .filter(|ip| (first..=last).contains(ip))
            .map_or(first, |ip| if ip >= last { first } else { ip + 1 });
        let span = last - first + 1;
        (0..span)
            .map(|i| first + (start - first + i) % span)
            .find(|ip| !used.contains(ip))
            .map(Ipv4Addr::from)
            .ok_or(IpamError::Exhausted {
                subnet,
                used: used.len(),
            })
    }

    fn save(&self) -> Result<(), IpamError> {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let json = serde_json::to_vec_pretty(&self.book).map_err(std::io::Error::other)?;
            husk_common::atomic::write_atomic(&self.path, &json, 0o600)
        };
        write().map_err(|source| IpamError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// A container's IPv6 address: the /64 with its IPv4 address as the last
/// 32 bits, so it needs no book of its own and follows the IPv4 one.
pub fn address_v6(subnet: Ipv6Net, v4: Ipv4Addr) -> Ipv6Addr {
    let prefix = u128::from(subnet.network());
    Ipv6Addr::from(prefix | u128::from(u32::from(v4)))
}

/// The bridge's own IPv6 address: `…::1` of the /64.
pub fn gateway_v6(subnet: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) | 1)
}

fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_after_the_gateway_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.json");
        let mut ipam = Ipam::open(&path, net("172.17.0.0/16")).unwrap();
        assert_eq!(ipam.gateway(), Ipv4Addr::new(172, 17, 0, 1));
        let a = ipam.address_of("a").unwrap();
        let b = ipam.address_of("b").unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(172, 17, 0, 2), Ipv4Addr::new(172, 17, 0, 3))
        );
        assert_eq!(ipam.address_of("a").unwrap(), a, "asked again: the same");
        let mut reopened = Ipam::open(&path, net("172.17.0.0/16")).unwrap();
        assert_eq!(reopened.address_of("b").unwrap(), b, "kept on disk");
    }

    #[test]
    fn a_released_address_is_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(&dir.path().join("b.json"), net("10.1.0.0/29")).unwrap();
        let a = ipam.address_of("a").unwrap();
        ipam.release("a").unwrap();
        let b = ipam.address_of("b").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_full_subnet_is_named_and_wraps_around() {
        let dir = tempfile::tempdir().unwrap();
        // /29: .0 network, .1 gateway, .2-.6 containers, .7 broadcast.
        let mut ipam = Ipam::open(&dir.path().join("b.json"), net("10.1.0.0/29")).unwrap();
        for i in 0..5 {
            ipam.address_of(&format!("c{i}")).unwrap();
        }
        let err = ipam.address_of("c5").unwrap_err().to_string();
        assert!(
            err.contains("10.1.0.0/29") && err.contains("5 in use"),
            "{err}"
        );
        ipam.release("c1").unwrap();
        assert_eq!(ipam.address_of("c5").unwrap(), Ipv4Addr::new(10, 1, 0, 3));
    }

    #[test]
    fn a_unique_local_prefix_is_drawn_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let mut ipam = Ipam::open(&path, net("10.1.0.0/24")).unwrap();
        let ula = ipam.subnet_v6(None).unwrap();
        assert_eq!(ula.prefix_len(), 64);
        assert_eq!(ula.network().octets()[0], 0xfd, "{ula}");
        assert_eq!(ipam.subnet_v6(None).unwrap(), ula);
        // Across a reopen, and a change of the IPv4 subnet.
        let mut reopened = Ipam::open(&path, net("10.2.0.0/24")).unwrap();
        assert_eq!(reopened.subnet_v6(None).unwrap(), ula);
        let configured: Ipv6Net = "fd00:1:2:3::/64".parse().unwrap();
        assert_eq!(reopened.subnet_v6(Some(configured)).unwrap(), configured);
        assert_eq!(
            address_v6(configured, Ipv4Addr::new(172, 17, 0, 2)).to_string(),
            "fd00:1:2:3::ac11:2"
        );
        assert_eq!(gateway_v6(configured).to_string(), "fd00:1:2:3::1");
    }

    #[test]
    fn a_corrupt_book_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        std::fs::write(&path, b"{not json").unwrap();
        let err = Ipam::open(&path, net("10.1.0.0/24"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("address book"), "{err}");
        assert!(Ipam::open(&path, net("10.1.0.0/31")).is_err());
    }

    #[test]
    fn forgets_containers_that_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let mut ipam = Ipam::open(&path, net("10.1.0.0/24")).unwrap();
        ipam.address_of("kept").unwrap();
        ipam.address_of("gone").unwrap();
        ipam.retain(|n| n == "kept").unwrap();
        let names: Vec<_> = Ipam::open(&path, net("10.1.0.0/24"))
            .unwrap()
            .allocations()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, ["kept"]);
    }
}
