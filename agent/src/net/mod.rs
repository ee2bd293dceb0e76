//! The machine's network: `lo` and every Ethernet link brought up, IPv4
//! by DHCP on each (or a static address for the first link from the
//! kernel command line), routes, MTU and name servers from the lease.
//! The state is written to `/run/husk/net.json` (served as `network` by
//! `GET /v1/system`) and the name servers to `/run/husk/resolv.conf`.
//! A link without carrier or a DHCP server that goes away is retried;
//! nothing here stops the agent.

mod client;
pub mod cmdline;
pub mod dhcp;
mod link;
mod sys;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::cmdline::StaticConfig;

/// Where the network's state goes.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub state_file: PathBuf,
    pub resolv_conf: PathBuf,
    /// From the kernel command line: the first link's static address.
    pub first_link: Option<StaticConfig>,
}

impl NetConfig {
    pub fn new(run: impl Into<PathBuf>) -> Self {
        let run = run.into();
        Self {
            state_file: run.join("net.json"),
            resolv_conf: run.join("resolv.conf"),
            first_link: None,
        }
    }
}

/// `/run/husk/net.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetState {
    pub interfaces: BTreeMap<String, Interface>,
    pub dns: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// `dhcp` (asking), `bound`, `static`, `expired`, `down`.
    pub state: String,
    pub mac: String,
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    /// NTP servers from the lease (DHCP option 42), for the time service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp: Vec<String>,
    pub lease_seconds: Option<u32>,
    pub error: Option<String>,
}

/// The state every link's task updates.
#[derive(Clone)]
pub(crate) struct Shared {
    state: Arc<Mutex<NetState>>,
    config: Arc<NetConfig>,
    /// Name servers the user-data names: they win over the leases'.
    dns_override: Arc<Mutex<Option<Vec<Ipv4Addr>>>>,
}

impl Shared {
    pub fn update(&self, name: &str, change: impl FnOnce(&mut Interface)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        change(state.interfaces.entry(name.to_string()).or_default());
        self.write(&state);
    }

    /// The name servers a lease or a static address brings; the
    /// user-data's override wins. The one writer of resolv.conf.
    pub fn set_dns(&self, servers: &[Ipv4Addr]) {
        let chosen = self
            .dns_override
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| servers.to_vec());
        if chosen.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.dns = chosen.iter().map(|s| s.to_string()).collect();
        let text: String = chosen.iter().map(|s| format!("nameserver {s}\n")).collect();
        if let Err(e) =
            husk_common::atomic::write_atomic(&self.config.resolv_conf, text.as_bytes(), 0o644)
        {
            log::warn!("net: {}: {e}", self.config.resolv_conf.display());
        }
        self.write(&state);
    }

    fn write(&self, state: &NetState) {
        if let Ok(json) = serde_json::to_vec(state)
            && let Err(e) = husk_common::atomic::write_atomic(&self.config.state_file, &json, 0o644)
        {
            log::warn!("net: {}: {e}", self.config.state_file.display());
        }
    }
}

/// How often new links are looked for (a NIC hot-plugged later).
const RESCAN: Duration = Duration::from_secs(5);

/// A static address asked for later (user-data): for the link named, or
/// the first Ethernet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRequest {
    pub link: Option<String>,
    pub config: StaticConfig,
}

/// The running network, to change its configuration.
#[derive(Clone)]
pub struct Network {
    requests: Arc<Mutex<Vec<StaticRequest>>>,
    wake: Arc<tokio::sync::Notify>,
    shared: Shared,
}

impl Network {
    /// Replaces DHCP by a static address (user-data's
    /// `[[network.interfaces]]`); applied within moments.
    pub fn set_static(&self, request: StaticRequest) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        self.wake.notify_one();
    }

    /// Name servers from user-data, replacing those of the leases.
    pub fn set_dns(&self, servers: Vec<Ipv4Addr>) {
        *self
            .shared
            .dns_override
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(servers.clone());
        self.shared.set_dns(&servers);
    }

    /// Whether a link has an address (a lease, or a static one).
    pub fn configured(&self) -> bool {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .interfaces
            .values()
            .any(|i| i.state == "bound" || i.state == "static")
    }

    /// Whether any link is managed (none: no NIC at all).
    pub fn has_links(&self) -> bool {
        !self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .interfaces
            .is_empty()
    }
}

/// Configures the network and keeps it configured, in the background.
pub fn start(config: NetConfig) -> Network {
    let network = Network {
        requests: Arc::new(Mutex::new(Vec::new())),
        wake: Arc::new(tokio::sync::Notify::new()),
        shared: Shared {
            state: Arc::new(Mutex::new(NetState::default())),
            config: Arc::new(config),
            dns_override: Arc::new(Mutex::new(None)),
        },
    };
    let control = network.clone();
    tokio::spawn(async move {
        if let Err(e) = run(control).await {
            log::error!("net: {e}");
        }
    });
    network
}

async fn run(control: Network) -> std::io::Result<()> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    let shared = control.shared.clone();
    if let Some(dir) = shared.config.state_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut managed: Vec<u32> = Vec::new();
    // The DHCP client of each link, to stop when a static address comes.
    let mut dhcp: Vec<(link::Link, tokio::task::JoinHandle<()>)> = Vec::new();
    let mut first = true;
    loop {
        match link::list(&handle).await {
            Ok(links) => {
                for l in links {
                    if managed.contains(&l.index) {
                        continue;
                    }
                    if l.name == "lo" {
                        if let Err(e) = link::set_up(&handle, l.index).await {
                            log::error!("net: lo: {e}");
                        }
                        managed.push(l.index);
                        continue;
                    }
                    // The containers' bridge and veths are Ethernet too,
                    // but no DHCP server is behind them.
                    if !l.ethernet || crate::bridge::is_containers_link(&l.name) {
                        continue;
                    }
                    managed.push(l.index);
                    if let Err(e) = link::set_up(&handle, l.index).await {
                        log::error!("net: {}: up: {e}", l.name);
                    }
                    let mac = l.mac.map(|m| {
                        m.iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(":")
                    });
                    shared.update(&l.name, |i| i.mac = mac.unwrap_or_default());
                    let static_config = if first {
                        shared.config.first_link.clone()
                    } else {
                        None
                    };
                    first = false;
                    match static_config {
                        Some(s) => {
                            apply_static(&handle, &l, &s, &shared, "kernel command line").await
                        }
                        None => {
                            log::info!("net: {}: up, asking DHCP", l.name);
                            let task = tokio::spawn(client::run(
                                handle.clone(),
                                l.clone(),
                                shared.clone(),
                            ));
                            dhcp.push((l, task));
                        }
                    }
                }
            }
            Err(e) => log::warn!("net: listing links: {e}"),
        }
        let requests: Vec<StaticRequest> = std::mem::take(
            &mut *control
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for request in requests {
            let position = match &request.link {
                Some(name) => dhcp.iter().position(|(l, _)| &l.name == name),
                None => (!dhcp.is_empty()).then_some(0),
            };
            let Some(position) = position else {
                log::error!(
                    "net: static address for {}: no such link under DHCP",
                    request.link.as_deref().unwrap_or("the first link")
                );
                continue;
            };
            let (l, task) = dhcp.remove(position);
            task.abort();
            let _ = link::flush_addresses(&handle, l.index).await;
            apply_static(&handle, &l, &request.config, &shared, "user-data").await;
        }
        tokio::select! {
            _ = tokio::time::sleep(RESCAN) => {}
            _ = control.wake.notified() => {}
        }
    }
}

async fn apply_static(
    handle: &rtnetlink::Handle,
    l: &link::Link,
    s: &StaticConfig,
    shared: &Shared,
    from: &str,
) {
    let result = async {
        link::add_address(handle, l.index, s.address, s.prefix).await?;
        if let Some(gateway) = s.gateway {
            link::default_route(handle, l.index, gateway).await?;
        }
        Ok::<(), rtnetlink::Error>(())
    }
    .await;
    shared.set_dns(&s.dns);
    match result {
        Ok(()) => {
            log::info!(
                "net: {}: {}/{} (static, {from})",
                l.name,
                s.address,
                s.prefix
            );
            shared.update(&l.name, |i| {
                i.state = "static".into();
                i.address = Some(format!("{}/{}", s.address, s.prefix));
                i.gateway = s.gateway.map(|g| g.to_string());
                i.dns = s.dns.iter().map(|d| d.to_string()).collect();
            });
        }
        Err(e) => {
            log::error!("net: {}: static address: {e}", l.name);
            shared.update(&l.name, |i| i.error = Some(e.to_string()));
        }
    }
}
