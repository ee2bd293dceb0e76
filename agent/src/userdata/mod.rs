//! First-boot configuration, as cloud-init, Ignition or Bottlerocket's
//! early-boot-config do it: at the first boot the agent looks for a
//! user-data document ([`source`]), validates all of it ([`schema`]) and
//! only then applies it: hostname, name servers, networks and containers
//! to run.
//! The applied document is kept on the data partition
//! (`<root>/user-data.toml`): later boots take it from there and do not
//! depend on the metadata service. A document that is invalid is
//! refused as a whole, logged with its error and reported in
//! `/run/husk/user-data.json` (served as `user_data` by `GET /v1/system`);
//! the machine carries on with its defaults.

pub mod schema;
pub mod source;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::schema::{UserData, UserDataError};
use self::source::Found;
use crate::containers::Manager;

/// Where the user-data machinery looks and writes.
#[derive(Debug, Clone)]
pub struct UserDataConfig {
    /// The data partition (the applied document is kept there).
    pub root: PathBuf,
    /// `/run/husk`: the status file, the config drive's mount point,
    /// resolv.conf.
    pub run: PathBuf,
    pub sys_block: PathBuf,
    pub dev: PathBuf,
    pub cmdline: PathBuf,
    /// The metadata service's address; None: not asked.
    pub imds: Option<String>,
    pub imds_timeout: Duration,
}

impl UserDataConfig {
    pub fn new(root: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            run: run.into(),
            sys_block: "/sys/class/block".into(),
            dev: "/dev".into(),
            cmdline: "/proc/cmdline".into(),
            imds: Some(source::IMDS.into()),
            imds_timeout: Duration::from_secs(2),
        }
    }

    pub fn persisted(&self) -> PathBuf {
        self.root.join("user-data.toml")
    }

    pub fn status_file(&self) -> PathBuf {
        self.run.join("user-data.json")
    }

    pub fn resolv_conf(&self) -> PathBuf {
        self.run.join("resolv.conf")
    }
}

/// What happened, as `/run/husk/user-data.json` says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `applied`, `none` (no user-data anywhere) or `rejected`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Why the document was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Parts that could not be applied (a container whose image is not in
    /// the store…): the rest was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
}

/// Finds, validates and applies the user-data; writes and returns the
/// status. Never fails: every problem is in the status and the log.
pub async fn run(
    config: &UserDataConfig,
    remote: &crate::server::RemoteApi,
    manager: &Manager,
    puller: &crate::pulls::Puller,
    network: Option<&crate::net::Network>,
    updater: &crate::update::Updater,
    time: &crate::timesync::TimeSync,
) -> Status {
    let status = if let Ok(text) = source::read_limited(&config.persisted()) {
        match UserData::parse(&text) {
            Ok(doc) => {
                let mut status = applied("data partition", &doc);
                apply_every_boot(config, &doc, network, updater, puller, time, &mut status);
                start_remote_api(remote, &doc, &mut status);
                status
            }
            Err(e) => rejected("data partition", &e),
        }
    } else {
        match discover(config, network).await {
            None => Status {
                state: "none".into(),
                ..Status::default()
            },
            Some(found) => match found
                .text
                .map_err(UserDataError)
                .and_then(|text| UserData::parse(&text).map(|doc| (text, doc)))
            {
                Err(e) => rejected(&found.source, &e),
                Ok((text, doc)) => {
                    let mut status = applied(&found.source, &doc);
                    apply_every_boot(config, &doc, network, updater, puller, time, &mut status);
                    start_remote_api(remote, &doc, &mut status);
                    apply_first_boot(manager, puller, &doc, &mut status).await;
                    if let Err(e) = husk_common::atomic::write_atomic(
                        &config.persisted(),
                        text.as_bytes(),
                        0o600,
                    ) {
                        status.warnings.push(format!(
                            "keeping it in {}: {e}",
                            config.persisted().display()
                        ));
                    }
                    status
                }
            },
        }
    };
    // Without user-data (or with a refused one): agent.toml's remote API.
    // Once started, this does nothing.
    let _ = remote.start(&remote.configured());
    match status.state.as_str() {
        "rejected" => log::error!(
            "user-data from {} rejected, nothing of it applied: {}",
            status.source.as_deref().unwrap_or("?"),
            status.error.as_deref().unwrap_or("?")
        ),
        "applied" => log::info!(
            "user-data from {} applied{}",
            status.source.as_deref().unwrap_or("?"),
            if status.warnings.is_empty() {
                String::new()
            } else {
                format!(" with warnings: {}", status.warnings.join("; "))
            }
        ),
        _ => log::info!("no user-data (config drive, metadata service, kernel command line)"),
    }
    let _ = std::fs::create_dir_all(&config.run);
    if let Ok(json) = serde_json::to_vec(&status)
        && let Err(e) = husk_common::atomic::write_atomic(&config.status_file(), &json, 0o644)
    {
        log::warn!("{}: {e}", config.status_file().display());
    }
    status
}

fn applied(source: &str, doc: &UserData) -> Status {
    Status {
        state: "applied".into(),
        source: Some(source.into()),
        hostname: doc.hostname.clone(),
        containers: doc.containers.iter().map(|c| c.name.clone()).collect(),
        ..Status::default()
    }
}

fn rejected(source: &str, error: &UserDataError) -> Status {
    Status {
        state: "rejected".into(),
        source: Some(source.into()),
        error: Some(error.to_string()),
        ..Status::default()
    }
}

/// The sources in order; the first that has a document wins.
async fn discover(config: &UserDataConfig, network: Option<&crate::net::Network>) -> Option<Found> {
    for (device, fstype) in source::config_drives(&config.sys_block, &config.dev) {
        let mount_point = config.run.join("config-drive");
        match source::read_config_drive(&device, fstype, &mount_point) {
            Ok(text) => {
                return Some(Found {
                    source: format!("config drive {}", device.display()),
                    text: Ok(text),
                });
            }
            Err(e) => log::warn!("config drive {}: {e}", device.display()),
        }
    }
    if let (Some(address), Some(network)) = (&config.imds, network)
        && network_up(network, NETWORK_WAIT).await
    {
        match source::from_imds(address, config.imds_timeout).await {
            Ok(Some(text)) => {
                return Some(Found {
                    source: format!("metadata service {address}"),
                    text: Ok(text),
                });
            }
            Ok(None) => log::info!("metadata service {address}: no user-data"),
            Err(e) => log::info!("metadata service {address}: {e}"),
        }
    }
    let cmdline = std::fs::read_to_string(&config.cmdline).unwrap_or_default();
    source::from_cmdline(&cmdline).map(|text| Found {
        source: "kernel command line".into(),
        text,
    })
}

/// How long the metadata service waits for a first DHCP lease.
const NETWORK_WAIT: Duration = Duration::from_secs(30);

/// Whether a link has an address, waiting up to `limit` while one is
/// still asking DHCP. No link at all (after a moment for the network to
/// list them): false.
async fn network_up(network: &crate::net::Network, limit: Duration) -> bool {
    let start = tokio::time::Instant::now();
    loop {
        if network.configured() {
            return true;
        }
        let settling = start.elapsed() < Duration::from_secs(2);
        if (!network.has_links() && !settling) || start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// User-data's `[update]` overrides the image's repository, channel and
/// window.
fn apply_update_settings(updater: &crate::update::Updater, doc: &UserData, status: &mut Status) {
    let Some(update) = &doc.update else {
        return;
    };
    let mut settings = updater.settings();
    settings.repository = Some(update.repository.clone());
    if let Some(channel) = &update.channel {
        settings.channel = channel.clone();
    }
    if let Some(window) = &update.apply_window {
        settings.apply_window = Some(window.clone());
    }
    match settings.validate() {
        Ok(()) => updater.set_settings(settings),
        Err(e) => status.warnings.push(e),
    }
}

/// What does not survive a reboot: the hostname, the name servers, the
/// update settings.
/// The remote API with user-data's `[api]` over agent.toml's; an error
/// is the document's warning (the unix socket serves on).
fn start_remote_api(remote: &crate::server::RemoteApi, doc: &UserData, status: &mut Status) {
    let settings = match &doc.api {
        Some(over) => remote.configured().overridden_by(over),
        None => remote.configured(),
    };
    if let Err(e) = remote.start(&settings) {
        status.warnings.push(format!("api: {e}"));
    }
}

fn apply_every_boot(
    config: &UserDataConfig,
    doc: &UserData,
    network: Option<&crate::net::Network>,
    updater: &crate::update::Updater,
    puller: &crate::pulls::Puller,
    time: &crate::timesync::TimeSync,
    status: &mut Status,
) {
    apply_update_settings(updater, doc, status);
    if let Some(extra) = &doc.time {
        time.set_user_data(extra.clone());
    }
    if let Some(registry) = &doc.registry {
        match puller.extend(registry) {
            Ok(None) => {}
            Ok(Some(warning)) | Err(warning) => {
                log::warn!("user-data registry: {warning}");
                status.warnings.push(format!("registry: {warning}"));
            }
        }
    }
    if let Some(policy) = &doc.policy {
        match policy.load("user-data", &config.root.join("trust")) {
            Ok(layer) => puller.add_policy(layer),
            Err(e) => {
                // Its rules cannot be enforced: nothing is admitted
                // rather than more than it allows.
                status
                    .warnings
                    .push(format!("policy: {e}; no image is pulled until it is fixed"));
                let deny_all = husk_registry::policy::PolicyConfig {
                    default: husk_registry::policy::Action::Deny,
                    rules: Vec::new(),
                };
                if let Ok(layer) = deny_all.load("user-data (unusable)", &config.root) {
                    puller.add_policy(layer);
                }
            }
        }
    }
    if let Some(hostname) = &doc.hostname
        && let Err(e) = rustix::system::sethostname(hostname.as_bytes())
    {
        status.warnings.push(format!("hostname {hostname}: {e}"));
    }
    if let (Some(settings), Some(net)) = (&doc.network, network) {
        for iface in &settings.interfaces {
            // Validated with the document: the address parses.
            let Ok((std::net::IpAddr::V4(address), prefix)) = schema::parse_cidr(&iface.address)
            else {
                status.warnings.push(format!(
                    "{}: only IPv4 static addresses are applied",
                    iface.address
                ));
                continue;
            };
            let gateway = match iface.gateway {
                Some(std::net::IpAddr::V4(g)) => Some(g),
                _ => None,
            };
            let dns = ipv4_only(&settings.dns);
            net.set_static(crate::net::StaticRequest {
                link: iface.name.clone(),
                config: crate::net::StaticConfig {
                    address,
                    prefix,
                    gateway,
                    dns,
                },
            });
        }
    }
    if let Some(settings) = &doc.network
        && !settings.dns.is_empty()
    {
        let v4 = ipv4_only(&settings.dns);
        match network {
            // The network module writes resolv.conf, this list winning
            // over the leases'.
            Some(net) => net.set_dns(v4),
            None => {
                let text: String = settings
                    .dns
                    .iter()
                    .map(|ip| format!("nameserver {ip}\n"))
                    .collect();
                if let Err(e) =
                    husk_common::atomic::write_atomic(&config.resolv_conf(), text.as_bytes(), 0o644)
                {
                    status
                        .warnings
                        .push(format!("{}: {e}", config.resolv_conf().display()));
                }
            }
        }
    }
}

/// The IPv4 ones of `ips` (the network module is IPv4 only so far).
fn ipv4_only(ips: &[std::net::IpAddr]) -> Vec<std::net::Ipv4Addr> {
    ips.iter()
        .filter_map(|ip| match ip {
            std::net::IpAddr::V4(v4) => Some(*v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect()
}

/// How long first boot keeps trying to pull a container's image while
/// the network (or the registry) is not there yet.
const FIRST_BOOT_PULL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// What is done once: the containers are made and started; from then on
/// their restart policies keep them (and `rm` removes them for good).
async fn apply_first_boot(
    manager: &Manager,
    puller: &crate::pulls::Puller,
    doc: &UserData,
    status: &mut Status,
) {
    for network in &doc.networks {
        // A first boot that was cut short and runs again finds it made.
        if manager.inspect_network(&network.name).await.is_ok() {
            continue;
        }
        match manager.create_network(network).await {
            Ok(_) => log::info!("user-data: network {} made", network.name),
            Err(e) => status
                .warnings
                .push(format!("network {}: {e}", network.name)),
        }
    }
    for options in &doc.containers {
        let name = options.name.clone();
        if !puller.has_image(&options.image).await {
            log::info!("container {name}: pulling {}", options.image);
            if let Err(e) = puller
                .pull_patiently(&options.image, FIRST_BOOT_PULL_DEADLINE)
                .await
            {
                status
                    .warnings
                    .push(format!("container {name}: pull {}: {e}", options.image));
                continue;
            }
        }
        let result = match manager.create(options.clone()).await {
            Ok(_) => manager.start(&name).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            status.warnings.push(format!("container {name}: {e}"));
        }
    }
}

/// `user_data` in `GET /v1/system`: the status file, or `unknown`.
pub fn status_value(path: &Path) -> serde_json::Value {
    match std::fs::read(path)
        .ok()
        .and_then(|data| serde_json::from_slice::<serde_json::Value>(&data).ok())
    {
        Some(value) => value,
        None => serde_json::json!({"state": "unknown"}),
    }
}
