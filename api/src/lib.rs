//! The contract between Husk's agent and its clients (docs/API.md): every
//! request and answer as a serde type, the paths, the error body, and
//! [`client::Client`], which speaks it over the agent's unix socket.
//!
//! The agent's server and huskctl both use these types and nothing else
//! of each other. This crate knows the wire and nothing behind it: no
//! store, no runtime, no container manager, no HTTP server. Domain crates
//! keep their own typed values (digests, records) and the agent turns
//! them into these; identifiers here are the strings that travel.

pub mod client;
pub mod containers;
pub mod images;
pub mod networks;
pub mod roles;
pub mod tls;
pub mod update;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::client::{Client, ClientError, Method};

/// Where the agent serves the API on a machine.
pub const DEFAULT_SOCKET: &str = husk_common::paths::AGENT_SOCKET;

/// Request bodies are small JSON documents (an archive is named by its
/// path, never sent); anything larger is refused before it is read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `GET /v1/health`.
pub const HEALTH_PATH: &str = "/v1/health";
/// `GET /v1/system`: the machine's state (the data partition).
pub const SYSTEM_PATH: &str = "/v1/system";

/// The `GET /v1/system` answer. `data` is init's data.json as it is, or
/// `{"state":"unknown"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub data: serde_json::Value,
    /// `/run/husk/user-data.json`, or `{"state":"unknown"}`.
    #[serde(default)]
    pub user_data: serde_json::Value,
    /// `/run/husk/net.json`: links, addresses, leases.
    #[serde(default)]
    pub network: serde_json::Value,
    /// `/run/husk/time.json`: the time service's last sync (server,
    /// offset_ms, delay_ms, stratum, correction, at), its servers, mode,
    /// `clock_set`, last success and error; `{"state":"unknown"}`.
    #[serde(default)]
    pub time: serde_json::Value,
    /// The remote API: `state` (`off`, `serving`, `failed` with
    /// `error`), `listen`, `certificate` (`machine` or `operator`),
    /// `fingerprint`, and the counts of `connections`,
    /// `handshake_failures` and `refused_requests`.
    #[serde(default)]
    pub api: serde_json::Value,
}

/// The health answer: the agent is up and serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// The body of every error answer: 4xx when the client is at fault, 5xx
/// for the agent's own failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// A path segment for clients: slashes kept (image references contain
/// them and the routes take them), everything that would break the URL
/// percent-encoded.
pub fn encode_path_segment(reference: &str) -> String {
    let mut out = String::with_capacity(reference.len());
    for b in reference.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One line for people of `System::data` (init's data partition
/// outcome): what `huskctl status` prints and the agent logs.
pub fn describe_data(data: &Value) -> String {
    let field = |name: &str| data.get(name).and_then(Value::as_str).unwrap_or("?");
    match field("state") {
        "mounted" => {
            let mib = data.get("size_bytes").and_then(Value::as_u64).unwrap_or(0) >> 20;
            let grown = if data.get("grown").and_then(Value::as_bool) == Some(true) {
                ", grown this boot"
            } else {
                ""
            };
            format!(
                "mounted {} on {} ({mib} MiB, fsck {}{grown})",
                field("device"),
                husk_common::paths::STATE_DIR,
                field("fsck")
            )
        }
        "absent" => format!(
            "absent (no {} partition; {} is a tmpfs)",
            husk_common::paths::DATA_PARTITION_NAME,
            husk_common::paths::STATE_DIR
        ),
        "failed" => format!(
            "FAILED {}: {} ({} is a tmpfs; the partition was left untouched)",
            field("device"),
            field("error"),
            husk_common::paths::STATE_DIR
        ),
        other => format!("{other} ({})", field("error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_partition_in_one_line() {
        let failed = serde_json::json!({"state":"failed","device":"/dev/vda2","error":"e2fsck: exit status 4","fsck":"failed","grown":false,"size_bytes":0});
        assert_eq!(
            describe_data(&failed),
            "FAILED /dev/vda2: e2fsck: exit status 4 (/var/lib/husk is a tmpfs; the partition was left untouched)"
        );
        let mounted = serde_json::json!({"state":"mounted","device":"/dev/vda2","error":null,"fsck":"clean","grown":true,"size_bytes":2u64<<30});
        assert_eq!(
            describe_data(&mounted),
            "mounted /dev/vda2 on /var/lib/husk (2048 MiB, fsck clean, grown this boot)"
        );
        let unknown = serde_json::json!({"state":"unknown","error":"/run/husk/data.json: missing"});
        assert_eq!(
            describe_data(&unknown),
            "unknown (/run/husk/data.json: missing)"
        );
    }
}
