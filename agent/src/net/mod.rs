//! The machine's network: `lo` and every Ethernet link brought up, IPv4
//! by DHCP on each (or a static address for the first link from the
//! kernel command line), routes, MTU and name servers from the lease.
//! The state is written to `/run/husk/net.json` (served as `network` by
//! `GET /v1/system`) and the name servers to `/run/husk/resolv.conf`.
//! Links are followed through the kernel's link events (rtnetlink's
//! link group), not polled: a NIC that appears later is configured when
//! it appears, one whose carrier goes is `no-carrier` until it is back
//! (its lease kept until it runs out), one that goes is forgotten.
//! A DHCP server that goes away is retried; nothing here stops the agent.

mod client;
mod client6;
pub mod cmdline;
pub mod dhcp;
mod dhcp6;
mod link;
mod links;
mod sys;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
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
    /// `dhcp` (asking), `bound`, `static`, `expired`, `no-carrier`.
    pub state: String,
    pub mac: String,
    /// Whether the link has a carrier (IFF_LOWER_UP).
    #[serde(default)]
    pub carrier: bool,
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    /// NTP servers from the lease (DHCP option 42), for the time service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp: Vec<String>,
    pub lease_seconds: Option<u32>,
    /// Leases extended from the server that gave them (at T1), and from
    /// any server (at T2, that one not answering).
    #[serde(default)]
    pub renewals: u32,
    #[serde(default)]
    pub rebinds: u32,
    pub error: Option<String>,
    /// Global IPv6 addresses: SLAAC's (the kernel's, from router
    /// advertisements) and DHCPv6's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses_v6: Vec<String>,
    /// The IPv6 default route's router (from router advertisements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_v6: Option<String>,
    /// The DHCPv6 client: `bound ADDRESS`, `expired`, or what failed;
    /// absent while no server has answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp6: Option<String>,
}

/// The state every link's task updates.
#[derive(Clone)]
pub(crate) struct Shared {
    state: Arc<Mutex<NetState>>,
    config: Arc<NetConfig>,
    /// Name servers the user-data names: they win over the leases'.
    dns_override: Arc<Mutex<Option<Vec<Ipv4Addr>>>>,
    /// The IPv4 name servers last chosen (a lease's, a static address's
    /// or the user-data's), and DHCPv6's by link: resolv.conf lists both.
    dns_v4: Arc<Mutex<Vec<Ipv4Addr>>>,
    dns_v6: Arc<Mutex<BTreeMap<String, Vec<Ipv6Addr>>>>,
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
        *self.dns_v4.lock().unwrap_or_else(PoisonError::into_inner) = chosen;
        self.write_resolv_conf();
    }

    /// The name servers DHCPv6 gave `link` (none: its lease ended).
    pub fn set_dns6(&self, link: &str, servers: &[Ipv6Addr]) {
        let mut v6 = self.dns_v6.lock().unwrap_or_else(PoisonError::into_inner);
        let before = v6.get(link).cloned().unwrap_or_default();
        if before == servers {
            return;
        }
        if servers.is_empty() {
            v6.remove(link);
        } else {
            v6.insert(link.to_owned(), servers.to_vec());
        }
        drop(v6);
        self.write_resolv_conf();
    }

    /// resolv.conf: the IPv4 name servers, then DHCPv6's (user-data's
    /// override replaces both).
    fn write_resolv_conf(&self) {
        let overridden = self
            .dns_override
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        let mut servers: Vec<std::net::IpAddr> = self
            .dns_v4
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|&a| a.into())
            .collect();
        if !overridden {
            for list in self
                .dns_v6
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
            {
                servers.extend(list.iter().map(|&a| std::net::IpAddr::from(a)));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        servers.retain(|s| seen.insert(*s));
        if servers.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.dns = servers.iter().map(|s| s.to_string()).collect();
        let text: String = servers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect();
        if let Err(e) =
            husk_common::atomic::write_atomic(&self.config.resolv_conf, text.as_bytes(), 0o644)
        {
            log::warn!("net: {}: {e}", self.config.resolv_conf.display());
        }
        self.write(&state);
    }

    /// A link that went: its entry goes too.
    pub fn forget(&self, name: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.interfaces.remove(name).is_some() {
            self.write(&state);
        }
    }

    fn write(&self, state: &NetState) {
        if let Ok(json) = serde_json::to_vec(state)
            && let Err(e) = husk_common::atomic::write_atomic(&self.config.state_file, &json, 0o644)
        {
            log::warn!("net: {}: {e}", self.config.state_file.display());
        }
    }
}

/// After the kernel's link events stopped (the socket failed): the
/// pause before subscribing and listing the links again.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

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
            dns_v4: Arc::new(Mutex::new(Vec::new())),
            dns_v6: Arc::new(Mutex::new(BTreeMap::new())),
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

/// Subscribes to the link events, lists the links, then follows them;
/// subscribes again if the events stop.
async fn run(control: Network) -> std::io::Result<()> {
    if let Some(dir) = control.shared.config.state_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut links = None;
    loop {
        let (connection, handle, mut events) = rtnetlink::new_multicast_connection(&[
            rtnetlink::MulticastGroup::Link,
            rtnetlink::MulticastGroup::Ipv6Ifaddr,
            rtnetlink::MulticastGroup::Ipv6Route,
        ])?;
        tokio::spawn(connection);
        let links =
            links.get_or_insert_with(|| links::Links::new(control.shared.clone(), handle.clone()));
        links.set_handle(handle.clone());
        // Subscribed before the dump: a link that appears in between is
        // seen twice, which changes nothing.
        match link::list(&handle).await {
            Ok(all) => {
                for l in all {
                    links.seen(l).await;
                }
            }
            Err(e) => log::warn!("net: listing links: {e}"),
        }
        links.apply_requests(&control.requests).await;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some((message, _)) => links.event(message).await,
                    None => break,
                },
                _ = control.wake.notified() => links.apply_requests(&control.requests).await,
            }
        }
        log::warn!("net: the kernel's link events stopped; subscribing again");
        tokio::time::sleep(RESUBSCRIBE).await;
    }
}
