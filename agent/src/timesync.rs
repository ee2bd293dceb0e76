//! The machine's time, kept true over husk-ntp: TLS certificates and
//! TUF expiry depend on it, and a VM's clock can be far off at boot.
//!
//! The servers, in this order and each once: agent.toml's `[time]
//! servers` (a host or `host:port`, names resolved at every poll) and
//! user-data's after them ([`TimeOverrides`], through [`TimeSync`]), then
//! those the DHCP leases gave (option 42, read from `/run/husk/net.json`),
//! and, when nothing else is known, the cloud's link-local one
//! ([`CLOUD_DEFAULT`]: AWS's Time Sync Service; elsewhere it only times
//! out). The first polls ask one sample of each server so that a far-off
//! clock is stepped moments after boot; they are repeated after 2, 4, 8…
//! s, at most every [`RETRY`], until one succeeds, then every [`STEADY`]
//! with a full burst.
//!
//! An agent started with `--no-machine-setup` (tests, a workstation)
//! measures but never changes the clock ([`Mode::MeasureOnly`]). What the
//! last poll found goes to `/run/husk/time.json`, served as `time` by
//! `GET /v1/system`. A failure is logged once per change of error.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use husk_ntp::{Burst, Clock, Correction, CorrectionKind, NtpError, Options, Report};
use serde::{Deserialize, Serialize};

/// Asked when no server is configured or given by DHCP: the link-local
/// address of AWS's Time Sync Service (also served on some other clouds).
pub const CLOUD_DEFAULT: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 123);
pub const NTP_PORT: u16 = 123;
/// Between polls until the first success, at most: the first retries
/// come sooner (2, 4, 8… s), as the network is often still coming up
/// when the agent starts, and a clock far off at boot is wanted right.
pub const RETRY: Duration = Duration::from_secs(64);
/// Between polls once the clock has been synced (ntpd's maxpoll 10).
pub const STEADY: Duration = Duration::from_secs(1024);
/// Of each exchange.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Of resolving one server's name.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The addresses of one name that are asked (a pool gives several).
const PER_NAME: usize = 4;

/// `[time]` of agent.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeSettings {
    /// False: the agent neither measures nor sets the clock.
    pub enabled: bool,
    /// `169.254.169.123`, `time.example`, `time.example:123`,
    /// `[2001:db8::1]:123`: asked before DHCP's.
    pub servers: Vec<String>,
    /// Offsets from this on are stepped, smaller ones slewed.
    pub step_threshold_ms: u64,
}

impl Default for TimeSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            servers: Vec::new(),
            step_threshold_ms: husk_ntp::DEFAULT_STEP_THRESHOLD.as_millis() as u64,
        }
    }
}

impl TimeSettings {
    pub fn check(&self) -> Result<(), String> {
        for (i, server) in self.servers.iter().enumerate() {
            Server::from_str(server).map_err(|e| format!("time.servers[{i}]: {e}"))?;
        }
        if self.step_threshold_ms > 3_600_000 {
            return Err(format!(
                "time.step_threshold_ms: {} is more than an hour: offsets that large would be slewed for weeks",
                self.step_threshold_ms
            ));
        }
        Ok(())
    }

    /// With user-data's `[time]`: its servers after these, its
    /// threshold instead of this one; it can turn the service off, not on.
    pub fn with(&self, extra: &TimeOverrides) -> Self {
        let mut merged = self.clone();
        merged.enabled &= extra.enabled.unwrap_or(true);
        merged.servers.extend(extra.servers.iter().cloned());
        if let Some(ms) = extra.step_threshold_ms {
            merged.step_threshold_ms = ms;
        }
        merged
    }

    fn parsed_servers(&self) -> Vec<Server> {
        self.servers
            .iter()
            .filter_map(|s| Server::from_str(s).ok())
            .collect()
    }
}

/// User-data's `[time]`: the same keys, each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_threshold_ms: Option<u64>,
}

impl TimeOverrides {
    pub fn check(&self) -> Result<(), String> {
        TimeSettings::default().with(self).check()
    }
}

/// One configured server: an address, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Server {
    Addr(SocketAddr),
    Name { host: String, port: u16 },
}

impl FromStr for Server {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(addr) = SocketAddr::from_str(text) {
            return Ok(Self::Addr(addr));
        }
        if let Ok(ip) = IpAddr::from_str(text) {
            return Ok(Self::Addr(SocketAddr::new(ip, NTP_PORT)));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("`{text}`: `{port}` is not a port"))?,
            ),
            None => (text, NTP_PORT),
        };
        let valid = (1..=253).contains(&host.len())
            && host.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return Err(format!(
                "`{text}` is not an address or host name (host, host:port, [v6]:port)"
            ));
        }
        Ok(Self::Name {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(addr) => write!(f, "{addr}"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Server {
    /// Its addresses (a name's first few).
    async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        match self {
            Self::Addr(addr) => Ok(vec![*addr]),
            Self::Name { host, port } => {
                let lookup = tokio::net::lookup_host((host.as_str(), *port));
                match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Ok(Ok(addrs)) => {
                        let addrs: Vec<SocketAddr> = addrs.take(PER_NAME).collect();
                        if addrs.is_empty() {
                            Err(format!("resolving {self}: no address"))
                        } else {
                            Ok(addrs)
                        }
                    }
                    Ok(Err(e)) => Err(format!("resolving {self}: {e}")),
                    Err(_) => Err(format!(
                        "resolving {self}: no answer within {LOOKUP_TIMEOUT:?}"
                    )),
                }
            }
        }
    }
}

/// The servers to ask: the configured ones, then DHCP's, each once; the
/// cloud default when there is none.
pub fn server_list(configured: &[Server], dhcp: &[Ipv4Addr]) -> Vec<Server> {
    let from_dhcp = dhcp
        .iter()
        .map(|&ip| Server::Addr(SocketAddr::new(IpAddr::V4(ip), NTP_PORT)));
    let mut list: Vec<Server> = Vec::new();
    for server in configured.iter().cloned().chain(from_dhcp) {
        if !list.contains(&server) {
            list.push(server);
        }
    }
    if list.is_empty() {
        list.push(Server::Addr(SocketAddr::new(
            IpAddr::V4(CLOUD_DEFAULT),
            NTP_PORT,
        )));
    }
    list
}

/// The NTP servers of every lease in net.json (`interfaces.*.ntp`), in
/// the file's order, each once. No file (no machine network): none.
pub fn dhcp_servers(net_json: &Path) -> Vec<Ipv4Addr> {
    let Some(state) = std::fs::read(net_json)
        .ok()
        .and_then(|data| serde_json::from_slice::<crate::net::NetState>(&data).ok())
    else {
        return Vec::new();
    };
    let mut servers = Vec::new();
    for interface in state.interfaces.values() {
        for ip in interface.ntp.iter().filter_map(|s| s.parse().ok()) {
            if !servers.contains(&ip) {
                servers.push(ip);
            }
        }
    }
    servers
}

/// How long until the next poll, after `failures` in a row.
pub fn interval(synced_once: bool, failures: u32) -> Duration {
    if synced_once {
        STEADY
    } else {
        Duration::from_secs(2u64.saturating_pow(failures.clamp(1, 6))).min(RETRY)
    }
}

/// The samples asked of each server: one until the first success (a
/// far-off clock is stepped at once), then a full burst.
pub fn burst(synced_once: bool) -> Burst {
    if synced_once {
        Burst::default()
    } else {
        Burst {
            samples: 1,
            ..Burst::default()
        }
    }
}

/// Whether the agent may change the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Step or slew it (a Husk machine).
    Set,
    /// Measure only (`--no-machine-setup`): the report's correction is
    /// always `none`.
    MeasureOnly,
}

/// One poll of `servers`: measured, and in [`Mode::Set`] corrected
/// through `clock`; in [`Mode::MeasureOnly`] `clock` is only read.
pub async fn poll(
    servers: &[SocketAddr],
    clock: &(dyn Clock + Sync),
    mode: Mode,
    options: &Options,
) -> Result<Report, NtpError> {
    match mode {
        Mode::Set => husk_ntp::sync_with(servers, clock, options).await,
        Mode::MeasureOnly => {
            let sample = husk_ntp::measure_with(servers, options.timeout, options.burst).await?;
            log::debug!(
                "time: NTP server {} (stratum {}) is {} from this clock, delay {:?} (measure only)",
                sample.server,
                sample.stratum,
                sample.offset,
                sample.delay
            );
            Ok(Report::new(
                &sample,
                Correction::None,
                unix_secs(clock.now()),
            ))
        }
    }
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `/run/husk/time.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `synced` (the last poll succeeded), `unsynced` (it failed, or
    /// none has yet), `disabled`.
    pub state: String,
    pub mode: Mode,
    /// Whether the last sync stepped or slewed the clock (never in
    /// measure-only mode).
    pub clock_set: bool,
    /// Asked at the last poll, in order.
    pub servers: Vec<String>,
    /// The last successful sync: server, offset_ms, delay_ms, stratum,
    /// correction, at.
    #[serde(flatten)]
    pub last: Option<Report>,
    /// Seconds since the epoch.
    pub last_success: Option<u64>,
    /// The last poll's error, while it fails.
    pub error: Option<String>,
    pub error_at: Option<u64>,
    pub step_threshold_ms: u64,
}

impl Status {
    fn new(mode: Mode, settings: &TimeSettings) -> Self {
        Self {
            state: if settings.enabled {
                "unsynced"
            } else {
                "disabled"
            }
            .into(),
            mode,
            clock_set: false,
            servers: Vec::new(),
            last: None,
            last_success: None,
            error: None,
            error_at: None,
            step_threshold_ms: settings.step_threshold_ms,
        }
    }

    /// Takes a poll's outcome in; returns whether it is worth a log line
    /// (the first success, a recovery, an error unlike the last).
    fn record(&mut self, outcome: Result<Report, String>, now: u64) -> bool {
        match outcome {
            Ok(report) => {
                let news = self.state != "synced";
                self.state = "synced".into();
                self.clock_set =
                    self.mode == Mode::Set && report.correction != CorrectionKind::None;
                self.last_success = Some(report.at);
                self.last = Some(report);
                self.error = None;
                self.error_at = None;
                news
            }
            Err(error) => {
                let news = self.error.as_ref() != Some(&error);
                self.state = "unsynced".into();
                self.error = Some(error);
                self.error_at = Some(now);
                news
            }
        }
    }

    fn write(&self, path: &Path) {
        let json = match serde_json::to_vec(self) {
            Ok(json) => json,
            Err(e) => return log::warn!("time: {e}"),
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = husk_common::atomic::write_atomic(path, &json, 0o644) {
            log::warn!("time: {}: {e}", path.display());
        }
    }
}

/// What the service needs.
#[derive(Debug, Clone)]
pub struct TimeConfig {
    pub settings: TimeSettings,
    pub mode: Mode,
    /// `/run/husk/time.json`.
    pub status_file: PathBuf,
    /// `/run/husk/net.json`: DHCP's NTP servers.
    pub net_state: PathBuf,
}

impl TimeConfig {
    pub fn new(settings: TimeSettings, mode: Mode, run: &Path) -> Self {
        Self {
            settings,
            mode,
            status_file: run.join("time.json"),
            net_state: run.join("net.json"),
        }
    }
}

/// The running service, to hand it user-data's `[time]`.
#[derive(Debug, Clone, Default)]
pub struct TimeSync {
    extra: Arc<Mutex<Option<TimeOverrides>>>,
    wake: Arc<tokio::sync::Notify>,
}

impl TimeSync {
    /// User-data's `[time]`, taken at once (a poll follows).
    pub fn set_user_data(&self, extra: TimeOverrides) {
        *self.extra.lock().unwrap_or_else(PoisonError::into_inner) = Some(extra);
        self.wake.notify_one();
    }

    fn settings(&self, base: &TimeSettings) -> TimeSettings {
        match &*self.extra.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(extra) => base.with(extra),
            None => base.clone(),
        }
    }
}

/// Starts the service in the background (disabled by agent.toml: only
/// says so).
pub fn start(config: TimeConfig) -> TimeSync {
    let handle = TimeSync::default();
    if !config.settings.enabled {
        log::info!("time: disabled by [time] enabled = false");
        Status::new(config.mode, &config.settings).write(&config.status_file);
        return handle;
    }
    tokio::spawn(run(config, handle.clone()));
    handle
}

async fn run(config: TimeConfig, handle: TimeSync) {
    let clock = husk_ntp::SystemClock;
    let mut status = Status::new(config.mode, &config.settings);
    if config.mode == Mode::MeasureOnly {
        log::info!("time: measuring only (--no-machine-setup): the clock is never changed");
    }
    let mut failures = 0u32;
    loop {
        let settings = handle.settings(&config.settings);
        if !settings.enabled {
            log::info!("time: disabled by user-data's [time] enabled = false");
            status = Status::new(config.mode, &settings);
            status.write(&config.status_file);
            return;
        }
        status.step_threshold_ms = settings.step_threshold_ms;
        let configured = settings.parsed_servers();
        let synced_once = status.last_success.is_some();
        let list = server_list(&configured, &dhcp_servers(&config.net_state));
        status.servers = list.iter().map(ToString::to_string).collect();
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        for server in &list {
            match server.resolve().await {
                Ok(found) => {
                    for addr in found {
                        if !addrs.contains(&addr) {
                            addrs.push(addr);
                        }
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        let options = Options {
            timeout: TIMEOUT,
            burst: burst(synced_once),
            step_threshold: Duration::from_millis(settings.step_threshold_ms),
        };
        let outcome = if addrs.is_empty() {
            Err(problems.join("; "))
        } else {
            poll(&addrs, &clock, config.mode, &options)
                .await
                .map_err(|e| {
                    problems.push(e.to_string());
                    problems.join("; ")
                })
        };
        let now = unix_secs(SystemTime::now());
        failures = if outcome.is_ok() {
            0
        } else {
            failures.saturating_add(1)
        };
        if status.record(outcome, now) {
            match (&status.last, &status.error) {
                (_, Some(error)) => log::warn!("time: {error}"),
                (Some(r), None) => log::info!(
                    "time: synced to {} (stratum {}), offset {:.3} ms, delay {:.3} ms, correction {}",
                    r.server,
                    r.stratum,
                    r.offset_ms,
                    r.delay_ms,
                    correction_word(r.correction, config.mode)
                ),
                (None, None) => {}
            }
        }
        status.write(&config.status_file);
        tokio::select! {
            () = tokio::time::sleep(interval(status.last_success.is_some(), failures)) => {}
            () = handle.wake.notified() => {}
        }
    }
}

fn correction_word(kind: CorrectionKind, mode: Mode) -> &'static str {
    match (kind, mode) {
        (_, Mode::MeasureOnly) => "none (measure only)",
        (CorrectionKind::Step, _) => "step",
        (CorrectionKind::Slew, _) => "slew",
        (CorrectionKind::None, _) => "none",
    }
}

#[cfg(test)]
mod tests;
