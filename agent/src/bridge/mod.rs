//! Containers' own networks: the agent's bridge (`husk0`), a veth pair
//! and an address per bridged container, NAT out of the host and the
//! published ports as nftables rules (`crate::nft`), the container's
//! resolv.conf, hosts and hostname files.
//!
//! What lives where, and what survives what:
//! - the address book (`<root>/network/bridge.json`): across reboots, an
//!   address freed only when its container is removed;
//! - a running container's attachment (`<run>/network/<name>.json`) and
//!   its namespace (`<run>/netns/<name>`): until it stops, or the
//!   machine does; an agent that restarts reads them back;
//! - the firewall: one nftables table, rewritten whole and atomically
//!   from the attachments after every change, so it never holds a rule
//!   twice nor one of a container that is gone.
//!
//! At start ([`Networks::restore`]) whatever the attachments do not
//! account for — a namespace, a veth, an address of a container that no
//! longer exists — is removed: an agent killed halfway through an attach
//! leaves nothing behind once it is back.
//!
//! Must not know: the container manager's records, the runtime, the API
//! server.

mod files;
mod ipam;
mod links;
pub mod netns;
mod ports;
mod sys;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use husk_api::containers::{NetworkInfo, NetworkMode, PortMapping, RunOptions};

pub use self::ipam::IpamError;
pub use self::ports::PortError;

/// Host ends of the containers' veths: `vh` and a hash of the name.
const VETH_PREFIX: &str = "vh";

/// A link the containers' networks own (a bridge, a container's veth),
/// which the machine's network must leave alone: no DHCP on it.
pub fn is_containers_link(name: &str) -> bool {
    name.starts_with(crate::nft::BRIDGE_PREFIX) || name.starts_with(VETH_PREFIX)
}

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
        if self.subnet.prefix_len() > 30 {
            return Err(format!(
                "[network] subnet {}: at least a /30 (a gateway and a container)",
                self.subnet
            ));
        }
        if self.subnet != self.subnet.trunc() {
            return Err(format!(
                "[network] subnet {}: the address has host bits set (did you mean {}?)",
                self.subnet,
                self.subnet.trunc()
            ));
        }
        let metadata = Ipv4Addr::new(169, 254, 169, 254);
        if self.subnet.contains(&metadata) || self.subnet.contains(&Ipv4Addr::LOCALHOST) {
            return Err(format!(
                "[network] subnet {}: overlaps the loopback or link-local range",
                self.subnet
            ));
        }
        if let Some(net) = self.subnet_v6 {
            if net.prefix_len() > 96 {
                return Err(format!(
                    "[network] subnet_v6 {net}: at most a /96 (a container's address is the prefix and its IPv4 address)"
                ));
            }
            if net != net.trunc() {
                return Err(format!(
                    "[network] subnet_v6 {net}: the address has host bits set (did you mean {}?)",
                    net.trunc()
                ));
            }
            let first = net.network().segments()[0];
            if first & 0xffc0 == 0xfe80 || first & 0xff00 == 0xff00 || net.network().is_loopback() {
                return Err(format!(
                    "[network] subnet_v6 {net}: not a link-local, multicast or loopback prefix"
                ));
            }
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
fn parse_inbound(entry: &str) -> Result<(crate::nft::Protocol, u16), String> {
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

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("the firewall: {0}")]
    Firewall(#[from] crate::nft::NftError),
}

impl NetError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Self {
        let what = what.into();
        move |source| Self::Netlink { what, source }
    }
}

/// Where the networks keep their state.
#[derive(Debug, Clone)]
pub struct NetworkPaths {
    /// `<root>/network`: the address book.
    pub state: PathBuf,
    /// `<run>/network`: the running containers' attachments.
    pub attachments: PathBuf,
    /// `<run>/netns`: the pinned namespaces.
    pub netns: PathBuf,
    /// The host's resolv.conf (the net module writes it).
    pub host_resolv_conf: PathBuf,
}

/// A running container's place on the bridge, as written to its
/// attachment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Attachment {
    info: NetworkInfo,
    veth: String,
    /// It may reach the metadata service (`metadata_access`).
    #[serde(default)]
    metadata_access: bool,
}

struct State {
    ipam: ipam::Ipam,
    /// The bridge's IPv6 prefix (dual stack), None: IPv4 only.
    subnet_v6: Option<Ipv6Net>,
    bridge_index: Option<u32>,
    attached: BTreeMap<String, Attachment>,
    /// The sockets holding each container's published host ports.
    reservations: BTreeMap<String, ports::Reservations>,
}

/// The containers' networks, cheap to clone.
#[derive(Clone)]
pub struct Networks(Arc<Inner>);

struct Inner {
    settings: NetworkSettings,
    paths: NetworkPaths,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Networks")
            .field("settings", &self.0.settings)
            .finish()
    }
}

/// What a container gets mounted for its network: source files in its
/// directory, by their place in the container.
pub type NetworkFiles = Vec<(&'static str, PathBuf)>;

impl Networks {
    pub fn new(settings: NetworkSettings, paths: NetworkPaths) -> Result<Self, NetError> {
        let mut ipam = ipam::Ipam::open(&paths.state.join("bridge.json"), settings.subnet)?;
        let subnet_v6 = if settings.ipv6 {
            Some(ipam.subnet_v6(settings.subnet_v6)?)
        } else {
            None
        };
        Ok(Self(Arc::new(Inner {
            settings,
            paths,
            state: tokio::sync::Mutex::new(State {
                ipam,
                subnet_v6,
                bridge_index: None,
                attached: BTreeMap::new(),
                reservations: BTreeMap::new(),
            }),
        })))
    }

    /// Where a bridged container's namespace is pinned (the spec's
    /// network namespace path).
    pub fn netns_path(&self, container: &str) -> PathBuf {
        self.0.paths.netns.join(container)
    }

    /// Checks a container's network options when it is created: ports
    /// only on the bridge, no host port twice in one container.
    pub fn check_options(opts: &RunOptions) -> Result<(), PortError> {
        ports::check_options(opts)
    }

    /// Writes the container's network files into `dir` and says where
    /// they go. Called before every start (the host's name servers may
    /// have changed).
    pub fn write_files(
        &self,
        opts: &RunOptions,
        dir: &Path,
        address: Option<Ipv4Addr>,
        address_v6: Option<std::net::Ipv6Addr>,
    ) -> Result<NetworkFiles, NetError> {
        let hostname = opts.hostname.clone().unwrap_or_else(|| opts.name.clone());
        let host_resolv =
            std::fs::read_to_string(&self.0.paths.host_resolv_conf).unwrap_or_default();
        let mut out = Vec::new();
        let mut write = |name: &'static str, target: &'static str, text: String| {
            let path = dir.join(name);
            husk_common::atomic::write_atomic(&path, text.as_bytes(), 0o644)
                .map_err(NetError::io(format!("writing {}", path.display())))?;
            out.push((target, path));
            Ok::<(), NetError>(())
        };
        if opts.network != NetworkMode::Host {
            write("hostname", "/etc/hostname", format!("{hostname}\n"))?;
            write(
                "hosts",
                "/etc/hosts",
                files::hosts(&hostname, address, address_v6, &opts.extra_hosts),
            )?;
        }
        if opts.network != NetworkMode::None {
            let text = if opts.network == NetworkMode::Host {
                host_resolv
            } else {
                files::resolv_conf(&host_resolv, &opts.dns)
            };
            write("resolv.conf", "/etc/resolv.conf", text)?;
        }
        Ok(out)
    }

    /// Puts a container on the bridge before it starts: its address (kept
    /// from an earlier start), its namespace, its veth, its published
    /// ports (reserved on the host, then in the firewall). On failure
    /// nothing of it is left but its address in the book.
    pub async fn attach(&self, opts: &RunOptions) -> Result<NetworkInfo, NetError> {
        let name = opts.name.as_str();
        let mut state = self.0.state.lock().await;
        // A start after a crash or an unclean stop.
        self.detach_locked(&mut state, name).await;
        let reservations = ports::reserve(
            name,
            &opts.ports,
            &state.reservations,
            state.subnet_v6.is_some(),
        )?;
        let bridge = self.ensure_bridge(&mut state).await?;
        let address = state.ipam.address_of(name)?;
        let info = NetworkInfo {
            bridge: self.0.settings.bridge.clone(),
            ip_address: address,
            prefix_len: state.ipam.subnet().prefix_len(),
            gateway: state.ipam.gateway(),
            mac_address: format_mac(mac_for(address)),
            ipv6_address: state.subnet_v6.map(|net| ipam::address_v6(net, address)),
            ipv6_prefix_len: state.subnet_v6.map(|net| net.prefix_len()),
            ipv6_gateway: state.subnet_v6.map(ipam::gateway_v6),
            ports: reservations.mappings(),
        };
        let attachment = Attachment {
            info: info.clone(),
            veth: veth_name(name),
            metadata_access: opts.metadata_access,
        };
        // Written first: an agent that dies while plumbing finds the
        // attachment when it is back, and removes what it made (the
        // container never started).
        let file = self.attachment_file(name);
        std::fs::create_dir_all(&self.0.paths.attachments)
            .and_then(|()| serde_json::to_vec(&attachment).map_err(std::io::Error::other))
            .and_then(|json| husk_common::atomic::write_atomic(&file, &json, 0o600))
            .map_err(NetError::io(format!("writing {}", file.display())))?;
        let made = self.plumb(name, &attachment, bridge).await;
        if let Err(e) = made {
            self.unplumb(name, &attachment.veth).await;
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
        state.attached.insert(name.to_string(), attachment.clone());
        state.reservations.insert(name.to_string(), reservations);
        if let Err(e) = self.apply_firewall(&state) {
            state.attached.remove(name);
            state.reservations.remove(name);
            self.unplumb(name, &attachment.veth).await;
            let _ = std::fs::remove_file(&file);
            let _ = self.apply_firewall(&state);
            return Err(e);
        }
        log::info!(
            "bridge: {name} is {address}/{} on {}{}",
            info.prefix_len,
            info.bridge,
            if info.ports.is_empty() {
                String::new()
            } else {
                format!(
                    ", publishing {}",
                    info.ports
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        Ok(info)
    }

    /// Takes a container off the bridge once it has stopped: its ports,
    /// its namespace (and with it its veth). Its address stays its own.
    pub async fn detach(&self, container: &str) {
        let mut state = self.0.state.lock().await;
        if self.detach_locked(&mut state, container).await
            && let Err(e) = self.apply_firewall(&state)
        {
            log::error!("bridge: after {container} stopped: {e}");
        }
    }

    /// A container was removed: detached, and its address freed.
    pub async fn release(&self, container: &str) {
        self.detach(container).await;
        let mut state = self.0.state.lock().await;
        if let Err(e) = state.ipam.release(container) {
            log::error!("bridge: freeing the address of {container}: {e}");
        }
    }

    /// After the agent starts: takes back the attachments of the
    /// containers still running, removes everything else the bridge made
    /// (namespaces, veths, addresses of containers that are gone), and
    /// writes the firewall once.
    pub async fn restore(&self, running: &[String], exists: impl Fn(&str) -> bool) {
        let mut state = self.0.state.lock().await;
        for name in running {
            let file = self.attachment_file(name);
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            match serde_json::from_slice::<Attachment>(&bytes) {
                Ok(attachment) => {
                    let mappings = attachment.info.ports.clone();
                    match ports::reserve_exact(name, &mappings, state.subnet_v6.is_some()) {
                        Ok(r) => {
                            state.reservations.insert(name.clone(), r);
                        }
                        Err(e) => log::error!("bridge: {name}: {e}"),
                    }
                    state.attached.insert(name.clone(), attachment);
                }
                Err(e) => log::error!("bridge: {}: {e}; left out", file.display()),
            }
        }
        // Namespaces and attachment files of containers not running.
        for (name, path) in netns::pinned(&self.0.paths.netns) {
            if !state.attached.contains_key(&name) {
                log::info!("bridge: removing the stale namespace of {name}");
                if let Err(e) = netns::remove(&path) {
                    log::error!("bridge: {}: {e}", path.display());
                }
            }
        }
        for (name, path) in netns::pinned(&self.0.paths.attachments) {
            let name = name.trim_end_matches(".json");
            if !state.attached.contains_key(name) {
                let _ = std::fs::remove_file(&path);
            }
        }
        let keep: Vec<String> = state.attached.values().map(|a| a.veth.clone()).collect();
        if let Ok(handle) = links::connect() {
            match links::names_with_prefix(&handle, VETH_PREFIX).await {
                Ok(names) => {
                    for veth in names.iter().filter(|n| !keep.contains(n)) {
                        log::info!("bridge: removing the stale veth {veth}");
                        if let Err(e) = links::delete(&handle, veth).await {
                            log::error!("bridge: deleting {veth}: {e}");
                        }
                    }
                }
                Err(e) => log::error!("bridge: listing links: {e}"),
            }
        }
        if let Err(e) = state.ipam.retain(&exists) {
            log::error!("bridge: {e}");
        }
        if !state.attached.is_empty()
            && let Err(e) = self.ensure_bridge(&mut state).await
        {
            log::error!("bridge: {e}");
        }
        // The machine's own firewall is there from the start, containers
        // or not.
        if !state.attached.is_empty() || self.0.settings.host_firewall == Some(true) {
            match self.apply_firewall(&state) {
                Ok(()) if self.0.settings.host_firewall == Some(true) => {
                    log::info!(
                        "firewall: inbound traffic limited to replies, DHCP, ICMP and {} port(s)",
                        self.0.settings.inbound.len()
                    );
                }
                Ok(()) => {}
                Err(e) => log::error!("firewall: {e}"),
            }
        }
    }

    /// The attachment of a running container.
    pub async fn info(&self, container: &str) -> Option<NetworkInfo> {
        let state = self.0.state.lock().await;
        state.attached.get(container).map(|a| a.info.clone())
    }

    async fn ensure_bridge(&self, state: &mut State) -> Result<u32, NetError> {
        if let Some(index) = state.bridge_index {
            return Ok(index);
        }
        let settings = &self.0.settings;
        let handle = links::connect().map_err(NetError::io("a netlink socket"))?;
        let v6 = state
            .subnet_v6
            .map(|net| (ipam::gateway_v6(net), net.prefix_len()));
        let index = links::ensure_bridge(
            &handle,
            &settings.bridge,
            state.ipam.gateway(),
            state.ipam.subnet().prefix_len(),
            v6,
        )
        .await
        .map_err(NetError::netlink(format!(
            "setting up the bridge {}",
            settings.bridge
        )))?;
        // Containers reach the outside through the host's routing.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(NetError::io("enabling IPv4 forwarding"))?;
        if v6.is_some() {
            keep_accepting_router_advertisements();
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
                .map_err(NetError::io("enabling IPv6 forwarding"))?;
        }
        state.bridge_index = Some(index);
        Ok(index)
    }

    /// The namespace, the veth, the addresses inside.
    async fn plumb(
        &self,
        name: &str,
        attachment: &Attachment,
        bridge: u32,
    ) -> Result<(), NetError> {
        let path = self.netns_path(name);
        netns::create(&path).map_err(NetError::io(format!(
            "making the network namespace {}",
            path.display()
        )))?;
        let mtu = self.mtu().await;
        let handle = links::connect().map_err(NetError::io("a netlink socket"))?;
        let ns = std::fs::File::open(&path)
            .map_err(NetError::io(format!("opening {}", path.display())))?;
        let info = &attachment.info;
        links::add_veth(
            &handle,
            &attachment.veth,
            bridge,
            &ns,
            mtu,
            mac_for(info.ip_address),
        )
        .await
        .map_err(NetError::netlink(format!(
            "adding the veth {}",
            attachment.veth
        )))?;
        let (address, prefix, gateway) = (info.ip_address, info.prefix_len, info.gateway);
        let v6 = match (info.ipv6_address, info.ipv6_prefix_len, info.ipv6_gateway) {
            (Some(a), Some(p), Some(g)) => Some((a, p, g)),
            _ => None,
        };
        netns::run_in(&path, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let handle = links::connect()?;
                links::configure_inside(&handle, address, prefix, gateway, v6)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })
        })
        .and_then(|r| r)
        .map_err(NetError::io(format!("configuring {name}'s namespace")))
    }

    /// Undoes [`Self::plumb`] as far as it got.
    async fn unplumb(&self, container: &str, veth: &str) {
        let path = self.netns_path(container);
        if let Err(e) = netns::remove(&path) {
            log::error!("bridge: removing {}: {e}", path.display());
        }
        // The namespace's end goes with the namespace; a pair whose inner
        // end never reached it would be left: delete it by name.
        if let Ok(handle) = links::connect()
            && let Err(e) = links::delete(&handle, veth).await
        {
            log::warn!("bridge: deleting {veth}: {e}");
        }
    }

    /// True when there was something to take down.
    async fn detach_locked(&self, state: &mut State, container: &str) -> bool {
        let reserved = state.reservations.remove(container).is_some();
        let attached = state.attached.remove(container);
        let _ = std::fs::remove_file(self.attachment_file(container));
        if let Some(attachment) = &attached {
            self.unplumb(container, &attachment.veth).await;
        } else if self.netns_path(container).exists() {
            self.unplumb(container, &veth_name(container)).await;
        }
        attached.is_some() || reserved
    }

    fn apply_firewall(&self, state: &State) -> Result<(), NetError> {
        let settings = &self.0.settings;
        let mut firewall = crate::nft::FirewallState {
            bridges: vec![crate::nft::BridgeRules {
                interface: settings.bridge.clone(),
                subnet_v4: (
                    state.ipam.subnet().network(),
                    state.ipam.subnet().prefix_len(),
                ),
                subnet_v6: state.subnet_v6.map(|net| (net.network(), net.prefix_len())),
                internal: false,
            }],
            ports: Vec::new(),
            metadata_allowed: Vec::new(),
            host: settings
                .host_firewall
                .unwrap_or(false)
                .then(|| crate::nft::HostFirewall {
                    inbound: settings
                        .inbound
                        .iter()
                        .filter_map(|e| parse_inbound(e).ok())
                        .collect(),
                }),
        };
        for (name, attachment) in &state.attached {
            for port in &attachment.info.ports {
                firewall
                    .ports
                    .extend(port_rules(name, &attachment.info, port));
            }
            if attachment.metadata_access {
                let info = &attachment.info;
                firewall.metadata_allowed.push(IpAddr::V4(info.ip_address));
                firewall
                    .metadata_allowed
                    .extend(info.ipv6_address.map(IpAddr::V6));
            }
        }
        crate::nft::apply(&firewall)?;
        Ok(())
    }

    async fn mtu(&self) -> u32 {
        if let Some(mtu) = self.0.settings.mtu {
            return mtu;
        }
        let uplink = match links::connect() {
            Ok(handle) => links::uplink_mtu(&handle).await.ok().flatten(),
            Err(_) => None,
        };
        uplink.unwrap_or(1500)
    }

    fn attachment_file(&self, container: &str) -> PathBuf {
        self.0.paths.attachments.join(format!("{container}.json"))
    }
}

/// The DNAT rules of one published port: to the container's IPv4
/// address, and to its IPv6 one on a dual-stack bridge (a port on every
/// address is both; one on a given address, that address's family).
fn port_rules(
    container: &str,
    info: &NetworkInfo,
    port: &PortMapping,
) -> Vec<crate::nft::PortRule> {
    let rule = |container_ip: IpAddr| crate::nft::PortRule {
        protocol: match port.protocol {
            husk_api::containers::PortProtocol::Tcp => crate::nft::Protocol::Tcp,
            husk_api::containers::PortProtocol::Udp => crate::nft::Protocol::Udp,
        },
        host_ip: port.host_ip,
        host_port: port.host_port,
        container_ip,
        container_port: port.container_port,
        bridge: info.bridge.clone(),
        comment: format!("{container} {port}"),
    };
    let mut rules = Vec::new();
    if !matches!(port.host_ip, Some(IpAddr::V6(_))) {
        rules.push(rule(IpAddr::V4(info.ip_address)));
    }
    if let Some(v6) = info.ipv6_address
        && !matches!(port.host_ip, Some(IpAddr::V4(_)))
    {
        rules.push(rule(IpAddr::V6(v6)));
    }
    rules
}

/// A router ignores router advertisements (`accept_ra = 1` means "unless
/// forwarding"): before IPv6 forwarding goes on for the bridge, the
/// machine's own links (and links that appear later) are told to keep
/// taking them (`2`), so an uplink's SLAAC address and default route
/// survive the bridge.
fn keep_accepting_router_advertisements() {
    let conf = Path::new("/proc/sys/net/ipv6/conf");
    let Ok(entries) = std::fs::read_dir(conf) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "all" || name == "lo" || name.starts_with(crate::nft::BRIDGE_PREFIX) {
            continue;
        }
        let file = entry.path().join("accept_ra");
        if std::fs::read_to_string(&file).is_ok_and(|v| v.trim() == "1")
            && let Err(e) = std::fs::write(&file, "2")
        {
            log::warn!("bridge: {}: {e}", file.display());
        }
    }
}

/// The host end of a container's veth: short enough for IFNAMSIZ, one
/// per container name, and found again after a crash.
fn veth_name(container: &str) -> String {
    let digest = Sha256::digest(container.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{VETH_PREFIX}{hex}")
}

/// Docker's scheme: a locally administered MAC made of the address, so
/// that a container's MAC follows its address (and neighbours' caches
/// stay right across its restarts).
fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_and_differ() {
        let (a, b) = (veth_name("web"), veth_name("db"));
        assert!(a.len() <= 15 && a.starts_with(VETH_PREFIX), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, veth_name("web"));
    }

    #[test]
    fn the_machines_network_leaves_the_bridges_links_alone() {
        assert!(is_containers_link("husk0"));
        assert!(is_containers_link(&veth_name("web")));
        assert!(!is_containers_link("eth0"));
        assert!(!is_containers_link("ens5"));
    }

    #[test]
    fn macs_follow_addresses() {
        assert_eq!(
            format_mac(mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }

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
