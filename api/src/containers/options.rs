//! What the user asks for when running a container (`huskctl run`'s flags,
//! the API's JSON), before it meets an image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::restart::RestartPolicy;

/// The user's flags. Everything but `name` and `image` is optional; an
/// unknown field is an error so that a misspelt flag is not silently
/// ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// The container's name: its id on this machine (cgroup `husk/<name>`,
    /// default hostname). The container manager picks one when the user
    /// gave none (an empty name).
    #[serde(default)]
    pub name: String,
    /// The image reference, as the store resolves it.
    pub image: String,
    /// Replaces the image's `Cmd` (`huskctl run IMAGE CMD…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's `Entrypoint` (`--entrypoint`); `Some([])`
    /// clears it, as `--entrypoint ""` does in Docker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` entries (`-e`), merged over the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `uid[:gid]`, `name[:group]` (resolved from the image's /etc/passwd
    /// and /etc/group), replacing the image's `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Absolute working directory, replacing the image's `WorkingDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Default: the container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Mount the root filesystem read-only (`--read-only`).
    #[serde(default)]
    pub read_only: bool,
    /// Volumes, host paths and tmpfs mounts (`-v`, `--mount`, `--tmpfs`):
    /// tables, or `-v` strings as in a compose file.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::mounts::deserialize_mounts"
    )]
    pub mounts: Vec<super::mounts::Mount>,
    /// Memory limit in bytes (`memory.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// CPUs (`--cpus 1.5`): a `cpu.max` quota over a 100 ms period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Maximum number of tasks (`pids.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// The most the container's writable layer may hold, in bytes
    /// (`--storage-opt size=`; ext4 project quotas on the data partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_size: Option<u64>,
    /// Relative I/O weight, 10 to 1000 as Docker's `--blkio-weight`
    /// (the runtime scales it to cgroup v2's io.weight as runc does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u16>,
    /// Docker's default: the agent's bridge (`husk0`, NAT out); or a
    /// user network by name (`--network NAME`).
    #[serde(default)]
    pub network: NetworkMode,
    /// Published ports (`-p`); only on the bridge. Mappings, or `-p`
    /// strings as in a compose file.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::ports::deserialize_ports"
    )]
    pub ports: Vec<super::ports::PortMapping>,
    /// More names it answers to on a user network's DNS besides its own
    /// (`--network-alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_aliases: Vec<String>,
    /// Name servers for the container's /etc/resolv.conf (`--dns`),
    /// instead of the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<std::net::IpAddr>,
    /// `NAME:IP` lines for its /etc/hosts (`--add-host`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Let this bridged container reach the cloud's metadata service
    /// (`--metadata-access`), which every other container is kept from;
    /// only where agent.toml allows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metadata_access: bool,
    /// All capabilities, no seccomp, no masked paths (if the agent's
    /// security policy allows it).
    #[serde(default)]
    pub privileged: bool,
    /// Run in a user namespace: container ids 0..size are host ids
    /// host_uid.. / host_gid...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<UserNamespace>,
    /// `--userns auto`: the agent picks `userns`, a range of 65536 host
    /// ids no other container has (kept across reboots with the
    /// container), and the image's files appear owned as in the image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub userns_auto: bool,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Remove the container once it exits (`--rm`); excludes a restart
    /// policy.
    #[serde(default)]
    pub auto_remove: bool,
    /// Metadata, kept as the spec's annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A pty for the container's process (`-t`, the runtime's
    /// `process.terminal`): its output is one stream, logged as stdout,
    /// and attach clients get it raw; `TERM=xterm` unless set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Keep the container's stdin open for attach clients (`-i`); without
    /// it the container's stdin is /dev/null (or a pty nobody types on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
}

impl RunOptions {
    /// Options with every flag at its default.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            cmd: None,
            entrypoint: None,
            env: Vec::new(),
            user: None,
            workdir: None,
            hostname: None,
            read_only: false,
            mounts: Vec::new(),
            memory: None,
            cpus: None,
            pids_limit: None,
            storage_size: None,
            io_weight: None,
            network: NetworkMode::default(),
            ports: Vec::new(),
            network_aliases: Vec::new(),
            dns: Vec::new(),
            extra_hosts: Vec::new(),
            metadata_access: false,
            privileged: false,
            userns: None,
            userns_auto: false,
            restart: RestartPolicy::default(),
            auto_remove: false,
            labels: BTreeMap::new(),
            tty: false,
            interactive: false,
        }
    }
}

/// The container's network: `"bridge"` (the default), `"none"`,
/// `"host"`, or the name of a user network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum NetworkMode {
    /// Its own namespace, on the agent's bridge: an address from the
    /// bridge's subnet, a default route through it, NAT out of the host.
    #[default]
    Bridge,
    /// Its own namespace with only `lo`.
    None,
    /// The host's namespace (if the security policy allows it).
    Host,
    /// Its own namespace on a user network (`huskctl network create`),
    /// where containers resolve each other by name.
    Named(String),
}

impl NetworkMode {
    /// On a bridge (the agent's or a user network's): an address, a veth.
    pub fn is_bridged(&self) -> bool {
        matches!(self, Self::Bridge | Self::Named(_))
    }

    /// The network it is on, if bridged.
    pub fn network_name(&self) -> Option<&str> {
        match self {
            Self::Bridge => Some(crate::networks::DEFAULT_NETWORK),
            Self::Named(name) => Some(name),
            Self::None | Self::Host => None,
        }
    }
}

impl From<String> for NetworkMode {
    fn from(text: String) -> Self {
        match text.as_str() {
            "bridge" | "default" => Self::Bridge,
            "none" => Self::None,
            "host" => Self::Host,
            _ => Self::Named(text),
        }
    }
}

impl From<NetworkMode> for String {
    fn from(mode: NetworkMode) -> Self {
        mode.to_string()
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bridge => "bridge",
            Self::None => "none",
            Self::Host => "host",
            Self::Named(name) => name,
        })
    }
}

/// Checks an `--add-host` entry, `NAME:IP` (an IPv6 address may be in
/// brackets), and gives back the two parts.
pub fn parse_extra_host(entry: &str) -> Result<(String, std::net::IpAddr), String> {
    let (name, ip) = entry
        .split_once(':')
        .ok_or_else(|| format!("extra host {entry:?}: expected NAME:IP"))?;
    let ip_text = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip_text
        .parse()
        .map_err(|_| format!("extra host {entry:?}: {ip_text:?} is not an IP address"))?;
    let valid_name = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !valid_name {
        return Err(format!(
            "extra host {entry:?}: the name must be letters, digits, '-', '.' and '_'"
        ));
    }
    Ok((name.to_string(), ip))
}

/// A user namespace mapping: one contiguous range for uids, one for gids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserNamespace {
    pub host_uid: u32,
    pub host_gid: u32,
    pub size: u32,
}
