//! User networks (`huskctl network create|ls|inspect|rm`): made and
//! removed through the API, each a bridge of its own with its address
//! book and, once a container is on it, its DNS server. Networks are
//! isolated from each other by the firewall; an internal one has no way
//! out.

use std::path::Path;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use husk_api::networks::{Network, NetworkCreate, check_labels, check_network_name};

use super::net::Net;
use super::registry::{self, NetworkDef};
use super::{NETWORKS_FILE, NetError, Networks, State, dns, ipam, links};

/// A user network as it was written down, with its address book.
pub(super) fn open(state: &Path, def: &NetworkDef) -> Result<Net, NetError> {
    let mut book = ipam::Ipam::open(&registry::book_path(state, &def.name), def.subnet)?;
    let subnet_v6 = if def.ipv6 {
        Some(book.subnet_v6(def.subnet_v6)?)
    } else {
        None
    };
    Ok(Net::user(def, book, subnet_v6))
}

impl Networks {
    /// Makes a user network (its bridge comes with its first container).
    pub async fn create(&self, request: &NetworkCreate) -> Result<Network, NetError> {
        let Checked {
            subnet,
            subnet_v6,
            ipv6,
        } = check_request(request, self.0.settings.ipv6)?;
        let machine = machine_networks().await?;
        let mut state = self.0.state.lock().await;
        if let Some(e) = &state.registry_error {
            return Err(NetError::Registry(e.clone()));
        }
        if state.nets.contains_key(&request.name)
            || state.broken.iter().any(|d| d.name == request.name)
        {
            return Err(NetError::NetworkExists(request.name.clone()));
        }
        let mut taken: Vec<Ipv4Net> = state.nets.values().map(|n| n.ipam.subnet()).collect();
        taken.extend(state.broken.iter().map(|d| d.subnet));
        let subnet = match subnet {
            Some(subnet) => {
                if let Some((link, net)) = machine.iter().find(|(_, net)| match net {
                    IpNet::V4(net) => registry::overlaps(*net, subnet),
                    IpNet::V6(_) => false,
                }) {
                    return Err(NetError::InvalidNetwork(format!(
                        "--subnet {subnet} overlaps the machine's own network {net} on {link}"
                    )));
                }
                if let Some(other) = taken.iter().find(|t| registry::overlaps(**t, subnet)) {
                    let owner = state
                        .nets
                        .values()
                        .find(|n| n.ipam.subnet() == *other)
                        .map(|n| n.name.clone())
                        .or_else(|| {
                            state
                                .broken
                                .iter()
                                .find(|d| d.subnet == *other)
                                .map(|d| d.name.clone())
                        })
                        .unwrap_or_default();
                    return Err(NetError::InvalidNetwork(format!(
                        "--subnet {subnet} overlaps network {owner} ({other})"
                    )));
                }
                subnet
            }
            None => {
                // Nor one of the machine's own, as dockerd's pools skip
                // the host's routes.
                let mut around = taken.clone();
                around.extend(machine.iter().filter_map(|(_, net)| match net {
                    IpNet::V4(net) => Some(*net),
                    IpNet::V6(_) => None,
                }));
                registry::pick_subnet(&around).ok_or_else(|| {
                NetError::InvalidNetwork(
                    "no free subnet left in 172.18–172.30/16 or 10.89.0.0/16: give one with --subnet".into(),
                )
            })?
            }
        };
        if let Some(v6) = subnet_v6
            && let Some((link, net)) = machine.iter().find(|(_, net)| match net {
                IpNet::V6(net) => registry::overlaps_v6(*net, v6),
                IpNet::V4(_) => false,
            })
        {
            return Err(NetError::InvalidNetwork(format!(
                "--subnet-v6 {v6} overlaps the machine's own network {net} on {link}"
            )));
        }
        if let Some(v6) = subnet_v6
            && let Some(other) = state
                .nets
                .values()
                .find(|n| n.subnet_v6.is_some_and(|o| registry::overlaps_v6(o, v6)))
        {
            return Err(NetError::InvalidNetwork(format!(
                "--subnet-v6 {v6} overlaps network {}",
                other.name
            )));
        }
        let interface = registry::interface_for(&request.name);
        if let Some(other) = state.nets.values().find(|n| n.interface == interface) {
            // 32 bits of a hash: unlikely, and refused rather than shared.
            return Err(NetError::InvalidNetwork(format!(
                "network {}'s bridge would be {interface}, which network {} has: choose another name",
                request.name, other.name
            )));
        }
        let def = NetworkDef {
            name: request.name.clone(),
            interface,
            subnet,
            ipv6,
            subnet_v6,
            internal: request.internal,
            created: now(),
            labels: request.labels.clone(),
        };
        // A network made again under an old name starts a fresh book.
        let book = registry::book_path(&self.0.paths.state, &def.name);
        let _ = std::fs::remove_file(&book);
        let net = open(&self.0.paths.state, &def)?;
        state.nets.insert(def.name.clone(), net);
        if let Err(e) = self.save(&state) {
            state.nets.remove(&def.name);
            let _ = std::fs::remove_file(&book);
            return Err(e);
        }
        if let Err(e) = self.apply_firewall(&state) {
            log::error!("network {}: {e}", def.name);
        }
        log::info!(
            "network {}: created ({subnet}{}{} on {})",
            def.name,
            state.nets[&def.name]
                .subnet_v6
                .map(|v6| format!(", {v6}"))
                .unwrap_or_default(),
            if def.internal { ", internal" } else { "" },
            def.interface
        );
        Ok(state.nets[&def.name].describe(&state.attached))
    }

    /// Removes a user network none of whose containers exist
    /// (`containers`: those the manager has on it).
    pub async fn remove(&self, name: &str, containers: Vec<String>) -> Result<(), NetError> {
        let mut state = self.0.state.lock().await;
        let net = state.net(name)?;
        if net.builtin {
            return Err(NetError::Builtin(name.to_owned()));
        }
        let mut users: Vec<String> = state
            .attached
            .iter()
            .filter(|(_, a)| a.endpoints().any(|(network, _, _)| network == name))
            .map(|(c, _)| c.clone())
            .chain(containers)
            .collect();
        users.sort();
        users.dedup();
        if !users.is_empty() {
            return Err(NetError::NetworkInUse {
                name: name.to_owned(),
                containers: users,
            });
        }
        if let Some(e) = &state.registry_error {
            return Err(NetError::Registry(e.clone()));
        }
        let Some(mut net) = state.nets.remove(name) else {
            return Err(NetError::NoSuchNetwork(name.to_owned()));
        };
        // The bridge first: a network whose bridge stays (with its
        // gateway's address and route) must not look removed, nor its
        // subnet free.
        dns::stop_server(&mut net).await;
        dns::forget_port(&self.dns_ports_file(), name);
        let deleted = match links::connect() {
            Ok(handle) => links::delete(&handle, &net.interface)
                .await
                .map_err(NetError::netlink(format!(
                    "deleting the bridge {}",
                    net.interface
                ))),
            Err(e) => Err(NetError::io("a netlink socket")(e)),
        };
        if let Err(e) = deleted {
            net.bridge_index = None;
            state.nets.insert(name.to_owned(), net);
            return Err(e);
        }
        if let Err(e) = self.save(&state) {
            net.bridge_index = None;
            state.nets.insert(name.to_owned(), net);
            return Err(e);
        }
        let _ = std::fs::remove_file(registry::book_path(&self.0.paths.state, name));
        if let Err(e) = self.apply_firewall(&state) {
            log::error!("network {name}: {e}");
        }
        log::info!("network {name}: removed");
        Ok(())
    }

    /// Every network, the agent's own first.
    pub async fn list(&self) -> Vec<Network> {
        let state = self.0.state.lock().await;
        let mut list: Vec<Network> = state
            .nets
            .values()
            .map(|n| n.describe(&state.attached))
            .collect();
        list.sort_by_key(|n| (!n.builtin, n.name.clone()));
        list
    }

    pub async fn inspect(&self, name: &str) -> Result<Network, NetError> {
        let state = self.0.state.lock().await;
        state
            .nets
            .get(name)
            .map(|n| n.describe(&state.attached))
            .ok_or_else(|| NetError::NoSuchNetwork(name.to_owned()))
    }

    fn save(&self, state: &State) -> Result<(), NetError> {
        let mut defs: Vec<NetworkDef> = state
            .nets
            .values()
            .filter(|n| !n.builtin)
            .map(Net::def)
            .collect();
        defs.extend(state.broken.iter().cloned());
        let path = self.0.paths.state.join(NETWORKS_FILE);
        registry::save(&path, &defs).map_err(NetError::io(format!("writing {}", path.display())))
    }
}

/// What a create asks for, checked without looking at the other
/// networks.
struct Checked {
    subnet: Option<Ipv4Net>,
    subnet_v6: Option<Ipv6Net>,
    ipv6: bool,
}

/// Checks a create's fields on their own (user-data checks its networks
/// with this before anything of it is applied). `ipv6_default`: the
/// agent's bridge's.
fn check_request(request: &NetworkCreate, ipv6_default: bool) -> Result<Checked, NetError> {
    check_network_name(&request.name).map_err(NetError::InvalidNetwork)?;
    check_labels(&request.labels).map_err(NetError::InvalidNetwork)?;
    let subnet = request
        .subnet
        .as_deref()
        .map(|text| parse_subnet(text, "--subnet"))
        .transpose()?;
    let subnet_v6 = request
        .subnet_v6
        .as_deref()
        .map(|text| {
            let net: Ipv6Net = text.parse().map_err(|_| {
                NetError::InvalidNetwork(format!(
                    "--subnet-v6 {text:?} is not an IPv6 prefix (fd00:1::/64)"
                ))
            })?;
            registry::check_subnet_v6("--subnet-v6", net).map_err(NetError::InvalidNetwork)?;
            Ok::<_, NetError>(net)
        })
        .transpose()?;
    let ipv6 = request.ipv6.unwrap_or(ipv6_default || subnet_v6.is_some());
    if subnet_v6.is_some() && !ipv6 {
        return Err(NetError::InvalidNetwork(
            "--subnet-v6 with --ipv6=false: a prefix for a network without IPv6".into(),
        ));
    }
    Ok(Checked {
        subnet,
        subnet_v6,
        ipv6,
    })
}

/// [`check_request`] for user-data, whose networks are checked before
/// anything is made.
pub fn check_network_request(request: &NetworkCreate) -> Result<(), String> {
    check_request(request, true)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The machine's own networks (its links' subnets), which no user
/// network may overlap.
async fn machine_networks() -> Result<Vec<(String, IpNet)>, NetError> {
    let handle = links::connect().map_err(NetError::io("a netlink socket"))?;
    links::machine_networks(&handle)
        .await
        .map_err(NetError::netlink("listing the machine's addresses"))
}

fn parse_subnet(text: &str, field: &str) -> Result<Ipv4Net, NetError> {
    let subnet: Ipv4Net = text.parse().map_err(|_| {
        NetError::InvalidNetwork(format!(
            "{field} {text:?} is not an IPv4 subnet (10.20.0.0/24)"
        ))
    })?;
    registry::check_subnet(field, subnet).map_err(NetError::InvalidNetwork)?;
    Ok(subnet)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
