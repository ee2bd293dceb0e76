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

mod connect;
mod dns;
mod files;
mod ipam;
mod links;
mod net;
pub mod netns;
mod ports;
mod registry;
mod resolver;
mod settings;
mod sys;
mod upstreams;
mod user;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use husk_api::containers::{NetworkInfo, NetworkMode, PortMapping, RunOptions};

pub use self::ipam::IpamError;
use self::net::Net;
pub use self::ports::PortError;
pub use self::settings::NetworkSettings;
pub use self::user::check_network_request;

/// The user networks' definitions, in the state directory.
const NETWORKS_FILE: &str = "networks.json";
const DNS_PORTS_FILE: &str = "dns-ports.json";

/// Host ends of the containers' veths: `vh` and a hash of the name.
const VETH_PREFIX: &str = "vh";

/// A link the containers' networks own (a bridge, a container's veth),
/// which the machine's network must leave alone: no DHCP on it.
pub fn is_containers_link(name: &str) -> bool {
    name.starts_with(crate::nft::BRIDGE_PREFIX) || name.starts_with(VETH_PREFIX)
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
    #[error("no such network: {0}")]
    NoSuchNetwork(String),
    #[error("a network named {0} already exists")]
    NetworkExists(String),
    #[error("{0}")]
    InvalidNetwork(String),
    #[error("network {name} is in use by {}", containers.join(", "))]
    NetworkInUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("network {0} is the agent's own (agent.toml's [network]); it cannot be removed")]
    Builtin(String),
    #[error("network {0} is internal: it has no way in, so nothing can be published on it")]
    InternalPorts(String),
    #[error("network mode {0} has no network to attach to")]
    NotBridged(String),
    #[error("container {0} is not running (a stopped one is connected when it starts)")]
    NotRunning(String),
    #[error("container {container} is already on network {network}")]
    AlreadyConnected { container: String, network: String },
    #[error("the user networks ({0}) cannot be read")]
    Registry(String),
    #[error("the DNS server of network {network}: {source}")]
    Dns {
        network: String,
        source: husk_dns::DnsError,
    },
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
    /// `<root>/network`: the address books, the user networks.
    pub state: PathBuf,
    /// `<run>/network`: the running containers' attachments.
    pub attachments: PathBuf,
    /// `<run>/netns`: the pinned namespaces.
    pub netns: PathBuf,
    /// The host's resolv.conf (the net module writes it).
    pub host_resolv_conf: PathBuf,
}

/// A running container's place on its network, as written to its
/// attachment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Attachment {
    info: NetworkInfo,
    veth: String,
    /// It may reach the metadata service (`metadata_access`).
    #[serde(default)]
    metadata_access: bool,
    /// The names it answers to on a user network's DNS (its own and
    /// `--network-alias`es).
    #[serde(default)]
    names: Vec<String>,
    /// The networks connected to it besides its own (`network connect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    connected: Vec<Endpoint>,
    /// Its `--dns` servers: the upstream its resolver's DNS server asks
    /// for it (resolver.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dns: Vec<IpAddr>,
}

/// A container's place on a network connected to it while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Endpoint {
    info: NetworkInfo,
    veth: String,
    /// Its name inside (`eth1`…).
    ifname: String,
    names: Vec<String>,
}

impl Attachment {
    /// Every endpoint: its own network's, then the connected ones, as
    /// (network, names, info).
    fn endpoints(&self) -> impl Iterator<Item = (&str, &[String], &NetworkInfo)> {
        std::iter::once((
            self.info.network.as_str(),
            self.names.as_slice(),
            &self.info,
        ))
        .chain(
            self.connected
                .iter()
                .map(|e| (e.info.network.as_str(), e.names.as_slice(), &e.info)),
        )
    }
}

struct State {
    /// By name: `bridge` (the agent's) and the user networks.
    nets: BTreeMap<String, Net>,
    /// User networks whose address book could not be opened: kept as
    /// written (their names, subnets and bridges stay taken) until it can.
    broken: Vec<registry::NetworkDef>,
    /// Why networks.json could not be read: nothing is written over it
    /// (no network made or removed) until someone looks.
    registry_error: Option<String>,
    attached: BTreeMap<String, Attachment>,
    /// The sockets holding each container's published host ports.
    reservations: BTreeMap<String, ports::Reservations>,
    /// The machine's own services listening for the outside (the remote
    /// API): open in the machine's firewall beside `[network] inbound`.
    service_ports: Vec<(crate::nft::Protocol, u16)>,
}

impl State {
    fn net(&mut self, name: &str) -> Result<&mut Net, NetError> {
        self.nets
            .get_mut(name)
            .ok_or_else(|| NetError::NoSuchNetwork(name.to_owned()))
    }
}

/// The containers' networks, cheap to clone.
#[derive(Clone)]
pub struct Networks(Arc<Inner>);

struct Inner {
    settings: NetworkSettings,
    paths: NetworkPaths,
    state: tokio::sync::Mutex<State>,
    /// The machine's resolv.conf is being followed (upstreams.rs).
    watching: std::sync::atomic::AtomicBool,
    /// The table has been written once (by the restore): later changes
    /// of the service ports rewrite it; earlier ones wait for it.
    firewall_applied: std::sync::atomic::AtomicBool,
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
        let mut nets = BTreeMap::new();
        let builtin = Net::builtin(&settings.bridge, ipam, subnet_v6);
        nets.insert(builtin.name.clone(), builtin);
        let (defs, registry_error) = match registry::load(&paths.state.join(NETWORKS_FILE)) {
            Ok(defs) => (defs, None),
            Err(e) => {
                log::error!(
                    "network: {e}; the user networks are unavailable, and no network is made or removed until the file is fixed or moved away"
                );
                (Vec::new(), Some(e))
            }
        };
        let mut broken = Vec::new();
        for def in defs {
            match user::open(&paths.state, &def) {
                Ok(net) => {
                    nets.insert(def.name.clone(), net);
                }
                Err(e) => {
                    log::error!("network {}: {e}; its containers cannot start", def.name);
                    broken.push(def);
                }
            }
        }
        Ok(Self(Arc::new(Inner {
            settings,
            paths,
            state: tokio::sync::Mutex::new(State {
                nets,
                broken,
                registry_error,
                attached: BTreeMap::new(),
                reservations: BTreeMap::new(),
                service_ports: Vec::new(),
            }),
            watching: std::sync::atomic::AtomicBool::new(false),
            firewall_applied: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    /// Where a bridged container's namespace is pinned (the spec's
    /// network namespace path).
    pub fn netns_path(&self, container: &str) -> PathBuf {
        self.0.paths.netns.join(container)
    }

    /// Checks a container's network options when it is created: ports
    /// only on a bridge, no host port twice in one container.
    pub fn check_options(opts: &RunOptions) -> Result<(), PortError> {
        ports::check_options(opts)
    }

    /// Whether a network of this name exists.
    pub async fn exists(&self, name: &str) -> bool {
        self.0.state.lock().await.nets.contains_key(name)
    }

    /// Whether it is internal; None when there is no such network.
    pub async fn is_internal(&self, name: &str) -> Option<bool> {
        self.0.state.lock().await.nets.get(name).map(|n| n.internal)
    }

    /// Writes the container's network files into `dir` and says where
    /// they go. Called before every start (the host's name servers may
    /// have changed), once it is attached and its networks connected.
    /// `info`: where it was just attached, if bridged.
    pub async fn write_files(
        &self,
        opts: &RunOptions,
        dir: &Path,
        info: Option<&NetworkInfo>,
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
        let address = info.map(|i| i.ip_address);
        let address_v6 = info.and_then(|i| i.ipv6_address);
        if opts.network != NetworkMode::Host {
            write("hostname", "/etc/hostname", format!("{hostname}\n"))?;
            write(
                "hosts",
                "/etc/hosts",
                files::hosts(&hostname, address, address_v6, &opts.extra_hosts),
            )?;
        }
        if opts.network != NetworkMode::None {
            let text = self.resolv_conf(opts, &host_resolv).await;
            write("resolv.conf", "/etc/resolv.conf", text)?;
        }
        Ok(out)
    }

    /// Puts a container on its network before it starts: its address
    /// (kept from an earlier start), its namespace, its veth, its
    /// published ports (reserved on the host, then in the firewall), its
    /// names on the network's DNS. On failure nothing of it is left but
    /// its address in the book.
    pub async fn attach(&self, opts: &RunOptions) -> Result<NetworkInfo, NetError> {
        let name = opts.name.as_str();
        let network = opts
            .network
            .network_name()
            .ok_or_else(|| NetError::NotBridged(opts.network.to_string()))?;
        let mut state = self.0.state.lock().await;
        // A start after a crash or an unclean stop.
        self.detach_locked(&mut state, name).await;
        let net = state.net(network)?;
        if net.internal && !opts.ports.is_empty() {
            return Err(NetError::InternalPorts(network.to_owned()));
        }
        let dual_stack = net.subnet_v6.is_some();
        let reservations = ports::reserve(name, &opts.ports, &state.reservations, dual_stack)?;
        let bridge = self.ensure_bridge(state.net(network)?).await?;
        let net = state.net(network)?;
        let address = net.ipam.address_of(name)?;
        let info = net.endpoint(address, reservations.mappings());
        let mut names = vec![name.to_owned()];
        names.extend(opts.network_aliases.iter().cloned());
        let attachment = Attachment {
            info: info.clone(),
            veth: veth_name(name),
            metadata_access: opts.metadata_access,
            names,
            connected: Vec::new(),
            dns: opts.dns.clone(),
        };
        // Written first: an agent that dies while plumbing finds the
        // attachment when it is back, and removes what it made (the
        // container never started).
        let file = self.attachment_file(name);
        self.write_attachment(name, &attachment)?;
        let made = match self.plumb(name, &attachment, bridge).await {
            Ok(()) => match self
                .announce(state.net(network)?, name, &attachment.names, &info)
                .await
            {
                Ok(()) => resolver::refresh(&state.nets, &attachment),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            self.unplumb(name, &attachment.veth).await;
            let _ = std::fs::remove_file(&file);
            resolver::forget(&state.nets, &attachment);
            if let Ok(net) = state.net(network) {
                net.names.remove(name);
            }
            return Err(e);
        }
        state.attached.insert(name.to_string(), attachment.clone());
        state.reservations.insert(name.to_string(), reservations);
        if let Err(e) = self.apply_firewall(&state) {
            state.attached.remove(name);
            state.reservations.remove(name);
            resolver::forget(&state.nets, &attachment);
            if let Ok(net) = state.net(network) {
                net.names.remove(name);
            }
            self.unplumb(name, &attachment.veth).await;
            let _ = std::fs::remove_file(&file);
            let _ = self.apply_firewall(&state);
            return Err(e);
        }
        log::info!(
            "bridge: {name} is {address}/{} on {} ({}){}",
            info.prefix_len,
            info.network,
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

    /// Takes a container off its network once it has stopped: its ports,
    /// its names, its namespace (and with it its veth). Its address stays
    /// its own.
    pub async fn detach(&self, container: &str) {
        let mut state = self.0.state.lock().await;
        if self.detach_locked(&mut state, container).await
            && let Err(e) = self.apply_firewall(&state)
        {
            log::error!("bridge: after {container} stopped: {e}");
        }
    }

    /// A container was removed: detached, and its addresses freed.
    pub async fn release(&self, container: &str) {
        self.detach(container).await;
        let mut state = self.0.state.lock().await;
        for net in state.nets.values_mut() {
            if let Err(e) = net.ipam.release(container) {
                log::error!("bridge: freeing the address of {container}: {e}");
            }
        }
    }

    /// After the agent starts: takes back the attachments of the
    /// containers still running, removes everything else the networks
    /// made (namespaces, veths, bridges of removed networks, addresses of
    /// containers that are gone), brings the DNS servers of the networks
    /// in use back, writes the firewall once, and from then on follows
    /// the machine's name servers.
    pub async fn restore(&self, running: &[String], exists: impl Fn(&str) -> bool) {
        let mut state = self.0.state.lock().await;
        for name in running {
            let file = self.attachment_file(name);
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            match serde_json::from_slice::<Attachment>(&bytes) {
                Ok(attachment) if state.nets.contains_key(&attachment.info.network) => {
                    let mappings = attachment.info.ports.clone();
                    let dual_stack = attachment.info.ipv6_address.is_some();
                    match ports::reserve_exact(name, &mappings, dual_stack) {
                        Ok(r) => {
                            state.reservations.insert(name.clone(), r);
                        }
                        Err(e) => log::error!("bridge: {name}: {e}"),
                    }
                    state.attached.insert(name.clone(), attachment);
                }
                Ok(attachment) => log::error!(
                    "bridge: {name} is on {}, which no longer exists; left out",
                    attachment.info.network
                ),
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
        let mut keep: Vec<String> = state
            .attached
            .values()
            .flat_map(|a| {
                std::iter::once(a.veth.clone()).chain(a.connected.iter().map(|e| e.veth.clone()))
            })
            .collect();
        keep.extend(state.nets.values().map(|n| n.interface.clone()));
        keep.extend(state.broken.iter().map(|d| d.interface.clone()));
        // Which bridges are stale is not known without the registry.
        let bridges_known = state.registry_error.is_none();
        if let Ok(handle) = links::connect() {
            let mut stale = Vec::new();
            let prefixes: &[&str] = if bridges_known {
                &[VETH_PREFIX, crate::nft::BRIDGE_PREFIX]
            } else {
                &[VETH_PREFIX]
            };
            for prefix in prefixes {
                match links::names_with_prefix(&handle, prefix).await {
                    Ok(names) => stale.extend(names.into_iter().filter(|n| !keep.contains(n))),
                    Err(e) => log::error!("bridge: listing links: {e}"),
                }
            }
            for link in stale {
                log::info!("bridge: removing the stale link {link}");
                if let Err(e) = links::delete(&handle, &link).await {
                    log::error!("bridge: deleting {link}: {e}");
                }
            }
        }
        for net in state.nets.values_mut() {
            if let Err(e) = net.ipam.retain(&exists) {
                log::error!("bridge: {e}");
            }
        }
        let in_use: Vec<String> = state
            .attached
            .values()
            .flat_map(|a| a.endpoints().map(|(network, _, _)| network.to_owned()))
            .collect();
        for network in in_use {
            if let Ok(net) = state.net(&network)
                && let Err(e) = self.ensure_bridge(net).await
            {
                log::error!("bridge: {e}");
            }
        }
        let attachments: Vec<(String, Attachment)> = state
            .attached
            .iter()
            .map(|(c, a)| (c.clone(), a.clone()))
            .collect();
        for (container, attachment) in &attachments {
            for (network, names, info) in attachment.endpoints() {
                if let Ok(net) = state.net(network)
                    && let Err(e) = self.announce(net, container, names, info).await
                {
                    log::error!("bridge: {e}");
                }
            }
            if let Err(e) = resolver::refresh(&state.nets, attachment) {
                log::error!("bridge: {container}: {e}");
            }
        }
        self.watch_host_resolv_conf();
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

    /// Opens the ports the machine's own services listen on (the remote
    /// API's) in the machine's firewall, which otherwise drops everything
    /// but `[network] inbound`: a user-data `[api] listen` must be
    /// reachable without a second setting saying so.
    pub async fn open_service_ports(&self, ports: Vec<(crate::nft::Protocol, u16)>) {
        let mut state = self.0.state.lock().await;
        state.service_ports = ports;
        if self.0.settings.host_firewall != Some(true)
            || !self
                .0
                .firewall_applied
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        match self.apply_firewall(&state) {
            Ok(()) => log::info!(
                "firewall: the machine's services are reachable on {}",
                state
                    .service_ports
                    .iter()
                    .map(|(_, port)| format!("{port}/tcp"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => log::error!("firewall: opening the services' ports: {e}"),
        }
    }

    /// The attachment of a running container.
    pub async fn info(&self, container: &str) -> Option<NetworkInfo> {
        let state = self.0.state.lock().await;
        state.attached.get(container).map(|a| a.info.clone())
    }

    async fn ensure_bridge(&self, net: &mut Net) -> Result<u32, NetError> {
        if let Some(index) = net.bridge_index {
            return Ok(index);
        }
        let handle = links::connect().map_err(NetError::io("a netlink socket"))?;
        let v6 = net
            .subnet_v6
            .map(|v6| (ipam::gateway_v6(v6), v6.prefix_len()));
        let index = links::ensure_bridge(
            &handle,
            &net.interface,
            net.gateway(),
            net.ipam.subnet().prefix_len(),
            v6,
        )
        .await
        .map_err(NetError::netlink(format!(
            "setting up the bridge {} of {}",
            net.interface, net.name
        )))?;
        // Containers reach the outside through the host's routing.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(NetError::io("enabling IPv4 forwarding"))?;
        if v6.is_some() {
            keep_accepting_router_advertisements();
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
                .map_err(NetError::io("enabling IPv6 forwarding"))?;
        }
        net.bridge_index = Some(index);
        Ok(index)
    }

    /// A container's names on a user network's DNS server (started on
    /// the network's first container).
    async fn announce(
        &self,
        net: &mut Net,
        container: &str,
        names: &[String],
        info: &NetworkInfo,
    ) -> Result<(), NetError> {
        if !net.has_dns() {
            return Ok(());
        }
        let host = std::fs::read_to_string(&self.0.paths.host_resolv_conf).unwrap_or_default();
        set_names(net, container, names, info, &host);
        dns::ensure_server(net, &host, &self.dns_ports_file()).await
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
        self.plumb_endpoint(
            name,
            &attachment.veth,
            links::CONTAINER_IFNAME,
            &attachment.info,
            bridge,
        )
        .await
    }

    /// One veth into the container's namespace, its addresses inside
    /// (and the default routes, on `eth0`).
    async fn plumb_endpoint(
        &self,
        name: &str,
        veth: &str,
        ifname: &str,
        info: &NetworkInfo,
        bridge: u32,
    ) -> Result<(), NetError> {
        let path = self.netns_path(name);
        let mtu = self.mtu().await;
        let handle = links::connect().map_err(NetError::io("a netlink socket"))?;
        let ns = std::fs::File::open(&path)
            .map_err(NetError::io(format!("opening {}", path.display())))?;
        links::add_veth(
            &handle,
            veth,
            ifname,
            bridge,
            &ns,
            mtu,
            mac_for(info.ip_address),
        )
        .await
        .map_err(NetError::netlink(format!("adding the veth {veth}")))?;
        let mut addresses = vec![IpAddr::V4(info.ip_address)];
        addresses.extend(info.ipv6_address.map(IpAddr::V6));
        links::pin_neighbours(&handle, bridge, veth, mac_for(info.ip_address), &addresses)
            .await
            .map_err(NetError::netlink(format!(
                "pinning {name}'s addresses to its port"
            )))?;
        let ifname = ifname.to_owned();
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
                links::configure_inside(&handle, &ifname, address, prefix, gateway, v6)
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
            for (network, _, _) in attachment.endpoints() {
                if let Ok(net) = state.net(network) {
                    net.names.remove(container);
                }
            }
            resolver::forget(&state.nets, attachment);
            self.unplumb(container, &attachment.veth).await;
            // The connected networks' veths go with the namespace; a host
            // end the kernel has not freed yet is deleted by name.
            if let Ok(handle) = links::connect() {
                for endpoint in &attachment.connected {
                    let _ = links::delete(&handle, &endpoint.veth).await;
                }
            }
        } else if self.netns_path(container).exists() {
            self.unplumb(container, &veth_name(container)).await;
        }
        attached.is_some() || reserved
    }

    fn apply_firewall(&self, state: &State) -> Result<(), NetError> {
        let settings = &self.0.settings;
        let mut firewall = crate::nft::FirewallState {
            bridges: state.nets.values().map(Net::firewall_rules).collect(),
            ports: Vec::new(),
            metadata_allowed: Vec::new(),
            host: settings
                .host_firewall
                .unwrap_or(false)
                .then(|| crate::nft::HostFirewall {
                    inbound: settings
                        .inbound
                        .iter()
                        .filter_map(|e| settings::parse_inbound(e).ok())
                        .chain(state.service_ports.iter().copied())
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
        self.0
            .firewall_applied
            .store(true, std::sync::atomic::Ordering::SeqCst);
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

    fn write_attachment(&self, container: &str, attachment: &Attachment) -> Result<(), NetError> {
        let file = self.attachment_file(container);
        std::fs::create_dir_all(&self.0.paths.attachments)
            .and_then(|()| serde_json::to_vec(attachment).map_err(std::io::Error::other))
            .and_then(|json| husk_common::atomic::write_atomic(&file, &json, 0o600))
            .map_err(NetError::io(format!("writing {}", file.display())))
    }

    fn attachment_file(&self, container: &str) -> PathBuf {
        self.0.paths.attachments.join(format!("{container}.json"))
    }

    /// Where the networks' DNS servers listened last ([`dns`]).
    fn dns_ports_file(&self) -> PathBuf {
        self.0.paths.state.join(DNS_PORTS_FILE)
    }
}

/// What a container answers to on a network's DNS server: its `names` and,
/// for resolvers that try only the search domains for a name without dots
/// (busybox's nslookup, musl's with ndots: `db.example.internal`), each
/// with each of the machine's search domains (`host`: its resolv.conf), as
/// Podman's aardvark-dns answers.
fn set_names(net: &Net, container: &str, names: &[String], info: &NetworkInfo, host: &str) {
    let mut addresses = vec![IpAddr::V4(info.ip_address)];
    addresses.extend(info.ipv6_address.map(IpAddr::V6));
    let mut all: Vec<String> = names.to_vec();
    for domain in files::search_domains(host) {
        all.extend(names.iter().map(|n| format!("{n}.{domain}")));
    }
    net.names.set(container, &all, &addresses);
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
}
