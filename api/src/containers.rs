//! `/v1/containers`: the container manager's requests and answers.
//! Streams (logs, exec) are `application/x-ndjson`: one JSON document per
//! line ([`Frame`]), sent as the container writes.

mod mounts;
mod options;
mod ports;
mod restart;

use serde::{Deserialize, Serialize};

pub use self::mounts::{
    Mount, MountKind, check_volume_name, parse_mount_flag, parse_tmpfs_flag, parse_volume_flag,
};
pub use self::options::{NetworkMode, RunOptions, UserNamespace, parse_extra_host};
pub use self::ports::{MAX_RANGE, PortMapping, PortProtocol, PortSpecError, parse_publish};
pub use self::restart::{ParseRestartPolicyError, RestartPolicy};

/// `GET` (list) and `POST` (create, a [`RunOptions`]).
pub const CONTAINERS_PATH: &str = "/v1/containers";

/// `/v1/containers/{name}` and its actions (`start`, `stop`, …).
pub fn container_path(name: &str, action: Option<&str>) -> String {
    match action {
        Some(action) => format!("{CONTAINERS_PATH}/{name}/{action}"),
        None => format!("{CONTAINERS_PATH}/{name}"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerList {
    pub containers: Vec<ContainerInfo>,
}

/// `POST …/wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitResponse {
    /// None when the container never ran or its end is unknown.
    pub exit_code: Option<i32>,
}

/// `DELETE …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedContainer {
    pub removed: String,
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    Created,
    Running,
    /// Exited; its restart policy starts it again after a backoff.
    Restarting,
    Exited,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
        })
    }
}

/// A container as `ps` and `inspect` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    /// The image's id (`sha256:<hex>`), fixed at create.
    pub image_id: String,
    pub command: Vec<String>,
    pub status: Status,
    /// The container's init, as the host sees it, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    pub restart_policy: RestartPolicy,
    pub restart_count: u32,
    pub manually_stopped: bool,
    /// Why the last start failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the epoch of created/started/finished, for
    /// clients that compute ages.
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    pub options: RunOptions,
    /// Its place on the bridge while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkInfo>,
    /// The user networks connected to it besides its own
    /// (`network connect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connected: Vec<crate::networks::Connected>,
}

/// A bridged container's addresses and the ports it really published
/// (a host port asked as 0 is the one the agent picked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The network (`bridge`, or a user network's name).
    #[serde(default = "default_network")]
    pub network: String,
    /// The bridge interface (`husk0`).
    pub bridge: String,
    pub ip_address: std::net::Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: std::net::Ipv4Addr,
    pub mac_address: String,
    /// Its IPv6 address on a dual-stack bridge (docs/NETWORK.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_prefix_len: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_gateway: Option<std::net::Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
}

/// `logs`' options (the query of `GET …/logs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogOptions {
    /// Keep streaming until the container stops.
    pub follow: bool,
    /// Only the last N lines of what is stored.
    pub tail: Option<usize>,
    /// Only this stream (both when None).
    pub stream: Option<Stream>,
}

/// Which of the container's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One log line as stored (Docker's json-file format) and as the API
/// streams it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The text, with its newline unless the line was split or cut short.
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

/// `POST /v1/containers/{name}/exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// `KEY=VALUE`, over the container's environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `uid[:gid]` or `name[:group]` from the container's /etc/passwd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// A pty for the process (`exec -t`): its output is one raw stream.
    /// Only with the upgraded form of the endpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// What the client writes is the process's stdin, its EOF the
    /// stdin's end (`exec -i`); without it stdin is /dev/null. Only with
    /// the upgraded form of the endpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
}

/// The header of the upgraded exec's `101` answer that names the exec,
/// for [`exec_path`]: its state and exit code, its resizes.
pub const EXEC_ID_HEADER: &str = "husk-exec-id";

/// `/v1/containers/{name}/exec/{id}` (`GET`: an [`ExecInfo`]) and its
/// `resize`.
pub fn exec_path(name: &str, id: &str, action: Option<&str>) -> String {
    let exec = format!("{}/exec/{id}", container_path(name, None));
    match action {
        Some(action) => format!("{exec}/{action}"),
        None => exec,
    }
}

/// An exec started through the upgraded endpoint, while it runs and for
/// a few minutes after it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecInfo {
    pub id: String,
    pub container: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub interactive: bool,
    pub running: bool,
    /// The process as the host sees it, once it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Once it ended: its exit code, 128 + the signal when killed, 126
    /// when it could not be started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// The last line of an exec's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecExit {
    pub exit_code: i32,
}

/// One line of a stream, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Frame {
    Log(LogEntry),
    Exit(ExecExit),
}

/// `GET …/stats`: one sample of the container's cgroup. Limits are None
/// when unlimited ("max").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub memory_bytes: u64,
    pub memory_limit: Option<u64>,
    /// Total CPU time used, in microseconds (`cpu.stat` usage_usec).
    pub cpu_usec: u64,
    /// The `cpu.max` quota as CPUs (1.5 = one and a half).
    pub cpu_limit: Option<f64>,
    pub pids: u64,
    pub pids_limit: Option<u64>,
    pub oom_kills: u64,
    /// Milliseconds since the epoch, to compute rates between samples.
    pub time_ms: u64,
}

fn default_network() -> String {
    crate::networks::DEFAULT_NETWORK.to_owned()
}
